//! Shared calendars: files of calendars that several flows `use:`.
//!
//! A calendar file holds `calendars:` (and may say what it is for in
//! `description:`), written as a flow's own `calendars:` are. A flow names
//! the files it uses, relative to itself: `use: [calendars/clinic.yaml]`.
//! [`CalendarFiles`] reads and checks each file once, however many flows
//! use it, and keeps the file's own diagnostics (at its file, line and
//! column) to be reported once; a flow that uses a file with an error, or
//! one that cannot be read, is an error at its `use:` entry. The files a
//! flow uses are part of its version ([`version`]): a call pinned to a
//! version finishes on the calendars it began with. Nothing here runs a
//! flow.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::calendar::Calendar;
use super::diagnostic::{Diagnostic, SourceFile};
use super::model::{self, Text};
use super::span::Spanned;
use super::yaml::Budget;

/// A calendar file as written.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "callflow calendar file")]
pub struct CalendarFileModel {
    /// What these calendars are for.
    #[serde(default)]
    pub description: Option<String>,
    /// Named opening hours, read by `open("name")` in every flow that uses the file.
    pub calendars: IndexMap<Text, Spanned<model::Calendar>>,
}

/// Calendars by name, each with where its name is written.
pub type NamedCalendars = IndexMap<String, (Calendar, super::span::Span)>;

/// The calendar files a flow uses: each as written in `use:`, and read.
pub type UsedFiles = Vec<(String, Arc<SourceFile>)>;

/// A calendar file, checked.
#[derive(Clone, Debug)]
pub struct CalendarFile {
    /// Its text and where it was read.
    pub file: Arc<SourceFile>,
    /// Its calendars, by name, with where each name is written.
    pub calendars: NamedCalendars,
}

/// What a flow's `use:` entry finds.
#[derive(Clone, Debug)]
pub enum Found {
    /// The file, without error.
    File(Arc<CalendarFile>),
    /// The file has errors (reported at the file itself).
    Broken(String),
    /// The file cannot be read: why.
    Unreadable(String),
}

/// Whether `text` is a calendar file rather than a flow (or a scenario).
pub fn is_calendar_text(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("calendars:"))
        && !text
            .lines()
            .any(|l| l.starts_with("flow:") || l.starts_with("scenario:"))
}

/// The version of a flow: its file's SHA-256 when it uses no calendar
/// file, else the SHA-256 of its text and of each file it uses (as
/// written, and its text), so that a calendar's edit is a new version.
pub fn version(flow: &SourceFile, used: &[(String, Arc<SourceFile>)]) -> String {
    if used.is_empty() {
        return flow.sha256.clone();
    }
    let mut h = Sha256::new();
    h.update(flow.text.as_bytes());
    for (written, file) in used {
        h.update([0u8]);
        h.update(written.as_bytes());
        h.update([0u8]);
        h.update(file.text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a flow's `use:` entries are read from: the disk, or (for a flow
/// version kept in the store) the texts kept with it. Each file is read and
/// checked once.
#[derive(Debug, Default)]
pub struct CalendarFiles {
    /// Texts by path as written, instead of the disk.
    stored: Option<HashMap<String, String>>,
    /// Files read so far, by path.
    seen: HashMap<PathBuf, Found>,
    /// The diagnostics of the files read, each file's once.
    diagnostics: Vec<Diagnostic>,
    /// Files read, in order (for reports).
    read: Vec<String>,
}

impl CalendarFiles {
    /// Files read from the disk, relative to the flow that uses them.
    pub fn disk() -> Self {
        CalendarFiles::default()
    }

    /// Files from `texts` (path as written → text), as a flow version kept
    /// in the store holds them.
    pub fn stored(texts: HashMap<String, String>) -> Self {
        CalendarFiles {
            stored: Some(texts),
            ..CalendarFiles::default()
        }
    }

    /// The file `written` in `use:` of the flow at `from`.
    pub fn get(&mut self, from: &Path, written: &str) -> Found {
        if let Some(texts) = &self.stored {
            let key = PathBuf::from(format!("stored:{written}"));
            if let Some(found) = self.seen.get(&key) {
                return found.clone();
            }
            let found = match texts.get(written) {
                Some(text) => {
                    let file = Arc::new(SourceFile::new(written, text));
                    self.check(file)
                }
                None => Found::Unreadable("it is not kept with this flow version".into()),
            };
            self.seen.insert(key, found.clone());
            return found;
        }
        let path = from.parent().unwrap_or(Path::new("")).join(written);
        let path = normalise(&path);
        self.load(&path)
    }

    /// Reads and checks the calendar file at `path`, once.
    pub fn load(&mut self, path: &Path) -> Found {
        if let Some(found) = self.seen.get(path) {
            return found.clone();
        }
        let found = match super::load::read_source(path, Budget::default().max_bytes) {
            Ok(file) => {
                let shown = super::diagnostic::display_path(path);
                let file = Arc::new(SourceFile::from_bytes(
                    &shown,
                    file.text.as_bytes(),
                    &file.text,
                ));
                self.check(file)
            }
            Err(d) => Found::Unreadable(
                d.message
                    .strip_prefix("cannot read the file: ")
                    .unwrap_or(&d.message)
                    .to_owned(),
            ),
        };
        self.seen.insert(path.to_path_buf(), found.clone());
        found
    }

    fn check(&mut self, file: Arc<SourceFile>) -> Found {
        self.read.push(file.name());
        let (calendars, diagnostics) = super::check::check_calendar_file(&file);
        let broken = diagnostics.iter().any(Diagnostic::is_error);
        self.diagnostics.extend(diagnostics);
        match calendars {
            Some(calendars) if !broken => Found::File(Arc::new(CalendarFile { file, calendars })),
            _ => Found::Broken(file.name()),
        }
    }

    /// The diagnostics of every file read, each once; they are taken.
    pub fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.diagnostics)
    }

    /// The calendar files read, as shown.
    pub fn files(&self) -> &[String] {
        &self.read
    }
}

/// `a/b/../c` as `a/c`, without touching the disk.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A flow's text as the store keeps it under its version: the text alone
/// when it uses no calendar file, else a JSON bundle of its text and of
/// each file it uses (read back by [`unbundle`]).
pub fn bundle(flow: &super::Flow) -> String {
    if flow.calendar_files.is_empty() {
        return flow.source.text.to_string();
    }
    let calendars: serde_json::Map<String, serde_json::Value> = flow
        .calendar_files
        .iter()
        .map(|(written, file)| (written.clone(), file.text.to_string().into()))
        .collect();
    serde_json::json!({
        BUNDLE_KEY: 1,
        "flow": &*flow.source.text,
        "calendars": calendars,
    })
    .to_string()
}

const BUNDLE_KEY: &str = "callflow_bundle";

/// Loads a flow kept by [`bundle`] (or a plain flow text), named `name`,
/// with the calendar files kept with it: the version a call began on.
pub fn unbundle(name: &str, text: &str) -> super::Loaded {
    let parsed = text
        .starts_with('{')
        .then(|| serde_json::from_str::<serde_json::Value>(text).ok())
        .flatten()
        .filter(|v| v.get(BUNDLE_KEY).is_some());
    let Some(v) = parsed else {
        return super::load_str(name, text);
    };
    let flow_text = v["flow"].as_str().unwrap_or_default();
    let texts: HashMap<String, String> = v["calendars"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, t)| Some((k.clone(), t.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let file = Arc::new(SourceFile::new(name, flow_text));
    let mut files = CalendarFiles::stored(texts);
    let (flow, mut diagnostics) = super::check::check_with(&file, Budget::default(), &mut files);
    diagnostics.extend(files.take_diagnostics());
    super::Loaded { flow, diagnostics }
}
