//! The studio: the designer's workbench in the browser (`callflow studio`,
//! and read-only under `/ui` in `callflow serve`).
//!
//! A small web app served by the binary itself: the page's HTML, CSS and
//! JavaScript are embedded ([`assets`]); the page asks nothing of anyone
//! but this server (a `Content-Security-Policy` of `'self'` says so to the
//! browser). Its JSON API ([`api`], documented in `docs/studio-api.md`)
//! serves the folder's flows with their status and `callflow validate`'s
//! diagnostics ([`workspace`]), each flow's diagram as the
//! [`Graph`](crate::flow::diagram::Graph) `callflow graph` draws, calls
//! clicked through step by step on the simulator
//! ([`Interactive`](crate::sim::Interactive), the engine and simulated
//! Graph of `callflow simulate`), saved as scenario files, the flow's
//! scenarios with their coverage, and the week of `callflow hours`. The
//! folder is watched: every change reloads it and tells the page through
//! server-sent events. In `serve`, [`StudioConfig::live`] adds the
//! runtime's live and recently ended sessions, and `read_only` refuses
//! every write.
//!
//! It must never interpret a flow itself (the simulator runs it), never
//! write a file other than a scenario the user saves, and never fetch
//! anything from elsewhere.

pub mod api;
pub mod assets;
pub mod view;
pub mod workspace;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use indexmap::IndexMap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::runtime::Runtime;
use crate::sim::Interactive;

pub use workspace::Workspace;

/// Most simulated calls kept at once; the oldest goes first.
pub const MAX_SIMS: usize = 64;

/// How long the folder must be quiet before a change is reloaded.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);

/// How the studio is set up.
#[derive(Clone)]
pub struct StudioConfig {
    /// The flows folder.
    pub flows_dir: PathBuf,
    /// Refuse every write (saving a scenario): `serve`'s `/ui`.
    pub read_only: bool,
    /// The running runtime whose sessions to show (`serve`'s `/ui`).
    pub live: Option<Runtime>,
}

/// One simulated call the page is clicking through.
pub(crate) struct SimEntry {
    /// The file of its flow.
    pub(crate) file: String,
    /// The call.
    pub(crate) sim: Interactive,
}

pub(crate) struct Inner {
    pub(crate) config: StudioConfig,
    pub(crate) workspace: Mutex<Workspace>,
    pub(crate) sims: Mutex<IndexMap<String, SimEntry>>,
    pub(crate) next_sim: Mutex<u64>,
    pub(crate) version: watch::Sender<u64>,
    /// Becomes `true` when the server stops (ends the event streams).
    pub(crate) closing: watch::Sender<bool>,
}

/// The studio's state; cheap to clone.
#[derive(Clone)]
pub struct Studio {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Studio {
    /// Loads the folder.
    pub fn new(config: StudioConfig) -> Self {
        let workspace = Workspace::load(&config.flows_dir);
        let version = watch::Sender::new(workspace.version);
        Studio {
            inner: Arc::new(Inner {
                config,
                workspace: Mutex::new(workspace),
                sims: Mutex::new(IndexMap::new()),
                next_sim: Mutex::new(1),
                version,
                closing: watch::Sender::new(false),
            }),
        }
    }

    /// The folder as last loaded.
    pub fn workspace(&self) -> Workspace {
        lock(&self.inner.workspace).clone()
    }

    /// Loads the folder again and tells every page.
    pub fn reload(&self) -> u64 {
        let version = {
            let mut w = lock(&self.inner.workspace);
            w.reload();
            w.version
        };
        self.inner.version.send_replace(version);
        version
    }

    /// Watches the folder and reloads on every change (after
    /// [`RELOAD_DEBOUNCE`] of quiet). The folder is watched when this
    /// returns; the task ends when the returned handle is aborted. A
    /// folder that cannot be watched is logged (the page then shows the
    /// folder as it was at start).
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        use notify::Watcher as _;
        let studio = self.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res
                && !matches!(event.kind, notify::EventKind::Access(_))
            {
                let _ = tx.send(());
            }
        };
        let dir = studio.inner.config.flows_dir.clone();
        let watcher = notify::recommended_watcher(handler)
            .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::Recursive).map(|()| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(), "cannot watch the flows folder");
                None
            }
        };
        tokio::spawn(async move {
            let _watcher = watcher;
            while rx.recv().await.is_some() {
                while let Ok(Some(())) = tokio::time::timeout(RELOAD_DEBOUNCE, rx.recv()).await {}
                let s = studio.clone();
                let _ = tokio::task::spawn_blocking(move || s.reload()).await;
            }
        })
    }

    /// Ends the pages' event streams (so that a graceful shutdown finishes).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// The studio's routes: the page at `/`, the API under `/api/`.
    pub fn router(&self) -> Router {
        api::router(self.clone(), "").fallback(api::not_found)
    }

    /// The same routes under `prefix` (`/ui`).
    pub fn router_at(&self, prefix: &str) -> Router {
        api::router(self.clone(), prefix)
    }
}

/// Serves the studio on `listener` until `shutdown` (start
/// [`Studio::watch`] first for live reload).
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    studio: Studio,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = studio.clone();
    axum::serve(listener, studio.router())
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.close();
        })
        .await
}
