//! A studio on loopback over a copy of the bundled flows, for the tests of
//! its API and of its pages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use callflow::studio::{Studio, StudioConfig};
use tokio::sync::oneshot;

/// A studio serving on `127.0.0.1:0`; stopped when dropped.
pub struct TestStudio {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its flows folder (a temporary copy).
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    _temp: tempfile::TempDir,
}

/// Copies `from` (recursively) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The bundled flows folder.
pub fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows")
}

impl TestStudio {
    /// A studio over a fresh copy of the bundled flows.
    pub async fn start() -> TestStudio {
        Self::start_in(&bundled()).await
    }

    /// A studio over a fresh copy of `source`.
    pub async fn start_in(source: &Path) -> TestStudio {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("flows");
        copy_dir(source, &dir);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let studio = Studio::new(StudioConfig {
            flows_dir: dir.clone(),
            read_only: false,
            live: None,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let watcher = studio.watch();
        tokio::spawn(async move {
            let _ = callflow::studio::serve(listener, studio, async move {
                let _ = stopped.await;
            })
            .await;
            watcher.abort();
        });
        TestStudio {
            addr,
            dir,
            stop: Some(stop),
            _temp: temp,
        }
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for TestStudio {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens the reception of the flows copy in `dir` round the clock, so that a
/// call placed at the wall clock's time (`serve --simulate`) reaches its menu.
pub fn reception_always_open(dir: &Path) {
    let path = dir.join("reception.yaml");
    let text = std::fs::read_to_string(&path).expect("reception.yaml");
    let open = text.replace(
        r#"hours: ["mon-fri 09:00-12:30", "mon-fri 13:30-17:00"]"#,
        r#"hours: ["daily 00:00-24:00"]"#,
    );
    let open = open.replace(r#"closed: ["2026-12-25", "2027-01-01"]"#, "closed: []");
    assert_ne!(
        open, text,
        "the reception's calendar is where the tests expect it"
    );
    std::fs::write(&path, open).expect("write");
}
