//! The folder the studio shows: every flow file, its status, diagnostics
//! and diagram, and the last good diagram of a file that no longer loads.
//!
//! [`Workspace::load`] reads the folder with [`load_paths`] (the very
//! load `callflow validate` does, so the diagnostics are the same ones,
//! rendered the same way) and keeps, per file, the flow when it loads and
//! its [`Graph`]. [`Workspace::reload`] does it again and carries over the
//! last good flow of a file that now has errors, marked stale. Scenario
//! files are found as `callflow test` finds them. Plain data; no I/O
//! besides reading the folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::flow::diagram::{Graph, graph};
use crate::flow::{Diagnostic, Flow, Trigger, load_paths};

/// The diagnostics of `callflow validate` render at this width.
pub const RENDER_WIDTH: usize = 100;

/// One flow file of the folder.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Its path relative to the folder, with `/` (the id the API uses).
    pub id: String,
    /// Its path.
    pub path: PathBuf,
    /// Its text as read.
    pub text: String,
    /// The flow, when the file loads now.
    pub flow: Option<Arc<Flow>>,
    /// The last flow it loaded as, when it does not load now.
    pub last_good: Option<Arc<Flow>>,
    /// Every diagnostic about it.
    pub diagnostics: Vec<Diagnostic>,
}

impl FileEntry {
    /// The flow shown: the current one, else the last good one.
    pub fn shown(&self) -> Option<&Arc<Flow>> {
        self.flow.as_ref().or(self.last_good.as_ref())
    }

    /// Errors and warnings.
    pub fn counts(&self) -> (usize, usize) {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        (errors, self.diagnostics.len() - errors)
    }

    /// `errors`, `warnings` or `valid`.
    pub fn status(&self) -> &'static str {
        match self.counts() {
            (e, _) if e > 0 => "errors",
            (_, w) if w > 0 => "warnings",
            _ => "valid",
        }
    }

    /// The flow's name: the loaded one's, else what the file's `flow:` line says.
    pub fn name(&self) -> String {
        if let Some(f) = self.shown() {
            return f.name.clone();
        }
        self.text
            .lines()
            .find_map(|l| l.strip_prefix("flow:"))
            .map(|n| n.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.id.clone())
    }

    /// The diagram shown, if any.
    pub fn graph(&self) -> Option<Graph> {
        self.shown().map(|f| graph(f))
    }
}

/// `incoming_call`, `state_change` or `api`.
pub fn trigger_kind(flow: &Flow) -> &'static str {
    match flow.trigger {
        Trigger::IncomingCall { .. } => "incoming_call",
        Trigger::StateChange { .. } => "state_change",
        Trigger::Api { .. } => "api",
    }
}

/// One file in the list (`GET api/flows`).
#[derive(Clone, Debug, Serialize)]
pub struct FileSummary {
    /// The file's id.
    pub file: String,
    /// The flow's name.
    pub flow: String,
    /// `valid`, `warnings` or `errors`.
    pub status: &'static str,
    /// What starts it, when known.
    pub trigger: Option<&'static str>,
    /// The flow's description, when known.
    pub description: Option<String>,
    /// Errors.
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
    /// Whether the diagram shown is the last good one (the file has errors now).
    pub stale: bool,
    /// Whether there is a diagram at all.
    pub has_diagram: bool,
}

/// The folder, loaded.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    /// The folder.
    pub dir: PathBuf,
    /// Every flow file, in the order `callflow validate` reads them.
    pub files: Vec<FileEntry>,
    /// Diagnostics about no file in particular (a missing folder).
    pub other: Vec<Diagnostic>,
    /// `checked N files: …`, as `callflow validate` ends.
    pub summary: String,
    /// Goes up by one on every load.
    pub version: u64,
}

/// A file's path relative to the folder (the loader names files relative
/// to the working directory when they are below it).
fn file_id(dir: &Path, path: &Path) -> String {
    let shown = crate::flow::diagnostic::display_path(dir);
    path.strip_prefix(&shown)
        .or_else(|_| path.strip_prefix(dir))
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

impl Workspace {
    /// Loads `dir`.
    pub fn load(dir: &Path) -> Self {
        let mut w = Workspace {
            dir: dir.to_path_buf(),
            ..Workspace::default()
        };
        w.reload();
        w
    }

    /// Loads the folder again, keeping the last good flow of each file that
    /// now has errors.
    pub fn reload(&mut self) {
        let report = load_paths(std::slice::from_ref(&self.dir));
        let mut files: Vec<FileEntry> = report
            .files
            .iter()
            .map(|path| {
                let id = file_id(&self.dir, path);
                let text = std::fs::read_to_string(path).unwrap_or_default();
                FileEntry {
                    id,
                    path: path.clone(),
                    text,
                    flow: None,
                    last_good: None,
                    diagnostics: Vec::new(),
                }
            })
            .collect();
        let mut other = Vec::new();
        for d in &report.diagnostics {
            match files.iter_mut().find(|f| f.path == d.file.path) {
                Some(f) => f.diagnostics.push(d.clone()),
                None => other.push(d.clone()),
            }
        }
        for flow in &report.flows {
            if let Some(f) = files.iter_mut().find(|f| f.path == flow.source.path)
                && !f.diagnostics.iter().any(Diagnostic::is_error)
            {
                f.flow = Some(Arc::clone(flow));
            }
        }
        for f in &mut files {
            if f.flow.is_none() {
                f.last_good = self
                    .files
                    .iter()
                    .find(|old| old.id == f.id)
                    .and_then(|old| old.shown().cloned());
            }
        }
        self.summary = report.summary();
        self.files = files;
        self.other = other;
        self.version += 1;
    }

    /// The file with id `id`.
    pub fn file(&self, id: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.id == id)
    }

    /// The file whose current flow is named `name`.
    pub fn flow_named(&self, name: &str) -> Option<&FileEntry> {
        self.files
            .iter()
            .find(|f| f.flow.as_ref().is_some_and(|fl| fl.name == name))
    }

    /// The list of files.
    pub fn summaries(&self) -> Vec<FileSummary> {
        self.files
            .iter()
            .map(|f| {
                let (errors, warnings) = f.counts();
                let shown = f.shown();
                FileSummary {
                    file: f.id.clone(),
                    flow: f.name(),
                    status: f.status(),
                    trigger: shown.map(|fl| trigger_kind(fl)),
                    description: shown.and_then(|fl| fl.description.clone()),
                    errors,
                    warnings,
                    stale: f.flow.is_none() && f.last_good.is_some(),
                    has_diagram: shown.is_some(),
                }
            })
            .collect()
    }

    /// The scenario files of the flow named `flow`, by path, each read.
    pub fn scenarios(&self, flow: &str) -> Vec<crate::sim::scenario::Scenario> {
        crate::sim::scenario::discover(std::slice::from_ref(&self.dir))
            .iter()
            .filter_map(|p| crate::sim::scenario::load(p).ok())
            .filter(|s| {
                s.flow == flow
                    || Path::new(&s.flow)
                        .file_stem()
                        .is_some_and(|stem| stem.to_string_lossy() == flow)
            })
            .collect()
    }

    /// Where a new scenario of `flow` goes: `scenarios/FLOW/` beside the
    /// flow files, or the folder its other scenarios are in.
    pub fn scenario_dir(&self, flow: &str) -> PathBuf {
        self.scenarios(flow)
            .first()
            .and_then(|s| s.path.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| self.dir.join("scenarios").join(flow))
    }
}
