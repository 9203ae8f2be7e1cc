//! The live flow set: the load at start, reloads, their status, and the
//! folder watcher.
//!
//! A reload loads and checks the whole folder; only a set without a single
//! error replaces the live one, atomically (`ArcSwap::store`). Sessions hold
//! the `Arc<Flow>` they started with, so a reload never changes a running
//! call. Every diagnostic of a refused reload is logged and kept for
//! [`Runtime::flows`](super::Runtime::flows). This module never touches a
//! session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::flow::load::load_paths;
use crate::flow::{Diagnostic, FlowSet, Trigger};

use super::{FlowStatus, FlowsStatus, Inner, ReloadOutcome, Runtime, lock, metrics};

/// What the runtime remembers of its reloads.
pub(super) struct ReloadState {
    /// The last reload (or the load at start).
    last: ReloadOutcome,
    /// The last refused reload since the last successful one.
    last_error: Option<ReloadOutcome>,
    /// For each file text (by SHA-256), the set version it first appeared in.
    first_seen: HashMap<String, u64>,
}

fn outcome(ok: bool, version: u64, flows: usize, diagnostics: &[Diagnostic]) -> ReloadOutcome {
    ReloadOutcome {
        ok,
        version,
        at: Utc::now(),
        flows,
        errors: diagnostics.iter().filter(|d| d.is_error()).count(),
        diagnostics: diagnostics
            .iter()
            .map(|d| serde_json::to_value(d.to_json()).unwrap_or_default())
            .collect(),
        rendered: diagnostics.iter().map(|d| d.render(100)).collect(),
    }
}

fn log_diagnostics(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        if d.is_error() {
            tracing::error!(code = d.code, location = %d.location(), "{}", d.message);
        } else {
            tracing::warn!(code = d.code, location = %d.location(), "{}", d.message);
        }
    }
}

/// Loads the folder, with the checks of `fetch` steps against the
/// server's policy when it makes them.
fn load(dir: &Path, fetch: Option<&super::Fetcher>) -> crate::flow::LoadReport {
    let mut report = load_paths(&[dir.to_path_buf()]);
    if let Some(f) = fetch {
        let problems = crate::flow::check_fetch(&report.flows, f.policy());
        report.diagnostics.extend(problems);
    }
    report
}

/// The set at start, version 1; every diagnostic when a file has an error.
pub(super) fn initial(
    dir: &Path,
    fetch: Option<&super::Fetcher>,
) -> Result<(FlowSet, ReloadState), Vec<Diagnostic>> {
    let report = load(dir, fetch);
    log_diagnostics(&report.diagnostics);
    let warnings: Vec<Diagnostic> = report.diagnostics.clone();
    let set = report.into_flow_set(1)?;
    let first_seen = set.flows.values().map(|f| (f.version.clone(), 1)).collect();
    tracing::info!(flows = set.flows.len(), dir = %dir.display(), "flows loaded");
    let last = outcome(true, 1, set.flows.len(), &warnings);
    Ok((
        set,
        ReloadState {
            last,
            last_error: None,
            first_seen,
        },
    ))
}

/// Loads the folder again; swaps only a set without errors.
pub(super) fn reload(inner: &Inner) -> ReloadOutcome {
    // One reload at a time: the lock is held through load, check and swap.
    let mut state = lock(&inner.reload);
    let report = load(&inner.config.flows_dir, inner.config.fetch.as_deref());
    log_diagnostics(&report.diagnostics);
    let diagnostics = report.diagnostics.clone();
    let old = inner.flows.load();
    let version = old.version + 1;
    match report.into_flow_set(version) {
        Ok(set) => {
            for f in set.flows.values() {
                state.first_seen.entry(f.version.clone()).or_insert(version);
            }
            let live: std::collections::HashSet<&str> =
                set.flows.values().map(|f| f.version.as_str()).collect();
            state.first_seen.retain(|k, _| live.contains(k.as_str()));
            let result = outcome(true, version, set.flows.len(), &diagnostics);
            tracing::info!(version, flows = set.flows.len(), "flows reloaded");
            // Submitted before the swap: the store writes in order, so a
            // session pinned to a new version never lands before its source.
            drop(inner.config.store.write(super::recover::flow_writes(&set)));
            inner.flows.store(Arc::new(set));
            metrics::inc(&inner.metrics.reloads_ok);
            state.last = result.clone();
            state.last_error = None;
            result
        }
        Err(diagnostics) => {
            let result = outcome(false, old.version, old.flows.len(), &diagnostics);
            tracing::error!(
                errors = result.errors,
                version = old.version,
                "reload refused: the flows have errors; the previous set keeps serving"
            );
            metrics::inc(&inner.metrics.reloads_failed);
            state.last = result.clone();
            state.last_error = Some(result.clone());
            result
        }
    }
}

fn trigger_name(t: &Trigger) -> &'static str {
    match t {
        Trigger::IncomingCall { .. } => "incoming_call",
        Trigger::StateChange { .. } => "state_change",
        Trigger::Api { .. } => "api",
    }
}

/// The live set and the last reload.
pub(super) fn status(inner: &Inner) -> FlowsStatus {
    let state = lock(&inner.reload);
    let set = inner.flows.load();
    FlowsStatus {
        status: if state.last_error.is_some() {
            "stale"
        } else {
            "ok"
        },
        version: set.version,
        dir: inner.config.flows_dir.display().to_string(),
        flows: set
            .flows
            .values()
            .map(|f| FlowStatus {
                name: f.name.clone(),
                version: state
                    .first_seen
                    .get(&f.version)
                    .copied()
                    .unwrap_or(set.version),
                file: f.source.path.display().to_string(),
                sha256: f.version.clone(),
                trigger: trigger_name(&f.trigger),
            })
            .collect(),
        last_reload: state.last.clone(),
        last_error: state.last_error.clone(),
    }
}

fn is_flow_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Watches the flows folder; reloads once changes are quiet for the debounce.
///
/// The folder is watched before this returns, so that an edit saved the
/// moment after (a user told "edits reload when saved") is never missed.
pub(super) fn watch(runtime: Runtime) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let dir: PathBuf = runtime.inner.config.flows_dir.clone();
    let debounce = runtime.inner.config.reload_debounce;
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(event) => {
            let relevant = !matches!(event.kind, EventKind::Access(_))
                && event.paths.iter().any(|p| is_flow_file(p));
            if relevant {
                let _ = tx.send(());
            }
        }
        Err(e) => tracing::warn!(error = %e, "the flows folder watcher reported an error"),
    };
    // The folders of calendar files that flows use from outside the flows
    // folder (`use: [../calendars/clinic.yaml]`) are watched too: an edit
    // there re-checks the flows that use them.
    let outside: std::collections::BTreeSet<PathBuf> = runtime
        .inner
        .flows
        .load()
        .flows
        .values()
        .flat_map(|f| f.calendar_files.iter())
        .filter_map(|(_, file)| file.path.parent().map(Path::to_path_buf))
        .filter(|p| {
            let (a, b) = (p.canonicalize(), dir.canonicalize());
            !matches!((a, b), (Ok(a), Ok(b)) if a.starts_with(&b))
        })
        .collect();
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&dir, RecursiveMode::Recursive)?;
        for extra in &outside {
            if let Err(e) = w.watch(extra, RecursiveMode::NonRecursive) {
                tracing::warn!(error = %e, dir = %extra.display(), "cannot watch a calendar folder");
            }
        }
        Ok(w)
    });
    tokio::spawn(async move {
        let watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(),
                    "cannot watch the flows folder; reload with SIGHUP");
                return;
            }
        };
        tracing::info!(dir = %dir.display(), "watching the flows folder");
        let mut stop = runtime.inner.stopping.subscribe();
        loop {
            tokio::select! {
                got = rx.recv() => if got.is_none() { break },
                _ = stop.wait_for(|s| *s) => break,
            }
            // Debounce: wait until no change came for `debounce`.
            loop {
                tokio::select! {
                    got = tokio::time::timeout(debounce, rx.recv()) => match got {
                        Ok(Some(())) => continue,
                        _ => break,
                    },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            let rt = runtime.clone();
            let _ = tokio::task::spawn_blocking(move || rt.reload()).await;
        }
        drop(watcher);
    })
}
