//! Reading flow files and folders, and checking a set of flows together.
//!
//! [`load_str`] checks one text; [`load_file`] reads one file (bounded
//! size, UTF-8 checked); [`load_paths`] reads files and folders, skips
//! scenario files, and adds the checks that need every flow at once
//! (duplicate names, overlapping `incoming_call` triggers). A [`FlowSet`] is
//! the result of a clean load: it is swapped whole, never edited.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::actions::fetch::FetchPolicy;
use super::check;
use super::compiled::{Flow, Pattern, Trigger};
use super::diagnostic::{Diagnostic, SourceFile, count};
use super::span::Span;
use super::yaml::Budget;

/// One file's result: the flow when it has no error, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled flow, when the file has no error.
    pub flow: Option<Flow>,
    /// Every problem found, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

/// The result of loading several files.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Flows without errors.
    pub flows: Vec<Arc<Flow>>,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The flow files read.
    pub files: Vec<PathBuf>,
}

impl LoadReport {
    /// `checked 7 files: 7 flows, 0 errors, 1 warning`: the last line of
    /// `callflow validate`, and the studio's status line.
    pub fn summary(&self) -> String {
        let (errors, warnings) = self.tally();
        format!(
            "checked {}: {}, {}, {}",
            count(self.files.len(), "file", "files"),
            count(self.flows.len(), "flow", "flows"),
            count(errors, "error", "errors"),
            count(warnings, "warning", "warnings"),
        )
    }

    /// How many diagnostics are errors, and how many warnings.
    pub fn tally(&self) -> (usize, usize) {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        (errors, self.diagnostics.len() - errors)
    }

    /// The JSON report of `callflow validate --format json`:
    /// `{"files", "errors", "warnings", "diagnostics"}`, pretty-printed,
    /// ending with a newline.
    pub fn to_json(&self) -> String {
        let (errors, warnings) = self.tally();
        let value = serde_json::json!({
            "files": self.files.len(),
            "errors": errors,
            "warnings": warnings,
            "diagnostics": self.diagnostics.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
        });
        let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The flows as a set, when nothing is wrong.
    pub fn into_flow_set(self, version: u64) -> Result<FlowSet, Vec<Diagnostic>> {
        if self.has_errors() {
            return Err(self.diagnostics);
        }
        let flows = self
            .flows
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        Ok(FlowSet { version, flows })
    }
}

/// A checked, complete set of flows, swapped whole on reload.
#[derive(Debug, Default, Clone)]
pub struct FlowSet {
    /// Increases by one on each successful load.
    pub version: u64,
    /// The flows by name.
    pub flows: IndexMap<String, Arc<Flow>>,
}

impl FlowSet {
    /// The flow named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Flow>> {
        self.flows.get(name)
    }
}

/// Checks the text of one flow file.
pub fn load_str(path: impl Into<PathBuf>, text: &str) -> Loaded {
    let file = Arc::new(SourceFile::new(path, text));
    let (flow, diagnostics) = check::check(&file, Budget::default());
    Loaded { flow, diagnostics }
}

/// Reads and checks one flow file.
pub fn load_file(path: &Path) -> Loaded {
    match read_source(path, Budget::default().max_bytes) {
        Ok(file) => {
            let (flow, diagnostics) = check::check(&file, Budget::default());
            Loaded { flow, diagnostics }
        }
        Err(d) => Loaded {
            flow: None,
            diagnostics: vec![*d],
        },
    }
}

/// Reads a file within `max_bytes`, as UTF-8; a failure is a diagnostic.
pub fn read_source(path: &Path, max_bytes: usize) -> Result<Arc<SourceFile>, Box<Diagnostic>> {
    use std::io::Read;
    let empty = || Arc::new(SourceFile::new(path, ""));
    let f = std::fs::File::open(path).map_err(|e| {
        Box::new(Diagnostic::error(
            "callflow::input::read",
            &empty(),
            Span::default(),
            format!("cannot read the file: {e}"),
        ))
    })?;
    let mut bytes = Vec::new();
    f.take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            Box::new(Diagnostic::error(
                "callflow::input::read",
                &empty(),
                Span::default(),
                format!("cannot read the file: {e}"),
            ))
        })?;
    if bytes.len() > max_bytes {
        return Err(Box::new(
            Diagnostic::error(
                "callflow::input::too_large",
                &empty(),
                Span::default(),
                format!("the file is larger than {max_bytes} bytes, the most a flow file may hold"),
            )
            .help("split it into several flows"),
        ));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Arc::new(SourceFile::from_bytes(path, &bytes, text))),
        Err(e) => {
            let good = e.valid_up_to();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let file = Arc::new(SourceFile::from_bytes(path, &bytes, &text));
            // The lossy text holds U+FFFD where the bad byte was.
            let width = text[good..].chars().next().map_or(0, char::len_utf8);
            let span = Span::new(good, good + width);
            let (line, col) = super::span::line_col(&text, good);
            Err(Box::new(
                Diagnostic::error(
                    "callflow::input::utf8",
                    &file,
                    span,
                    format!("the file is not valid UTF-8: byte {good} (line {line}, column {col}) is not text"),
                )
                .label("not UTF-8")
                .help("save the file as UTF-8 (it may have been saved as Latin-1 or Windows-1252)"),
            ))
        }
    }
}

/// Whether a YAML file is a scenario (its text has a top-level `scenario:` key).
pub fn is_scenario_text(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("scenario:"))
}

/// Lists the YAML files under `paths` (files as given, folders recursively, sorted).
pub fn yaml_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found, 0);
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out, depth + 1);
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

/// Reads every flow file under `paths` (scenario files are skipped) and
/// checks them as one set; each calendar file (under `paths`, or used by a
/// flow) is checked once and its problems reported once.
pub fn load_paths(paths: &[PathBuf]) -> LoadReport {
    let mut report = LoadReport::default();
    let mut shared = super::shared::CalendarFiles::disk();
    for path in yaml_files(paths) {
        let shown = super::diagnostic::display_path(&path);
        let file = match read_source(&path, Budget::default().max_bytes) {
            Ok(f) => Arc::new(SourceFile::from_bytes(&shown, f.text.as_bytes(), &f.text)),
            Err(d) => {
                report.files.push(shown);
                report.diagnostics.push(*d);
                continue;
            }
        };
        if is_scenario_text(&file.text) {
            continue;
        }
        if super::shared::is_calendar_text(&file.text) {
            shared.load(&path);
            continue;
        }
        report.files.push(shown);
        let (flow, diagnostics) = check::check_with(&file, Budget::default(), &mut shared);
        report.diagnostics.extend(diagnostics);
        if let Some(flow) = flow {
            report.flows.push(Arc::new(flow));
        }
    }
    report
        .files
        .extend(shared.files().iter().map(PathBuf::from));
    report.diagnostics.extend(shared.take_diagnostics());
    let set_problems = check_set(&report.flows);
    report.diagnostics.extend(set_problems);
    report
}

/// Checks that need every flow: unique names, no ambiguous incoming-call triggers.
pub fn check_set(flows: &[Arc<Flow>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, a) in flows.iter().enumerate() {
        for b in &flows[..i] {
            if a.name == b.name {
                out.push(
                    Diagnostic::error(
                        "callflow::flow::duplicate",
                        &a.source,
                        name_span(a),
                        format!("two flows are named `{}`", a.name),
                    )
                    .label("this name")
                    .help(format!(
                        "the other is {}; rename one",
                        location(b, name_span(b))
                    )),
                );
            } else if let Some((why, shared)) = ambiguous(a, b) {
                let here = shared
                    .as_deref()
                    .and_then(|s| pattern_span(a, s))
                    .unwrap_or_else(|| trigger_span(a));
                let there = shared
                    .as_deref()
                    .and_then(|s| pattern_span(b, s))
                    .unwrap_or_else(|| trigger_span(b));
                out.push(
                    Diagnostic::error(
                        "callflow::trigger::overlap",
                        &a.source,
                        here,
                        format!(
                            "flows `{}` and `{}` both take {why}, and neither is more specific",
                            b.name, a.name
                        ),
                    )
                    .label("also taken by another flow")
                    .help(format!(
                        "narrow one of them with `to`, `from` or `when`; `{}` is {}",
                        b.name,
                        location(b, there)
                    )),
                );
            }
        }
    }
    out
}

/// The span of the flow's name (after `flow:`), or of the key.
fn name_span(f: &Flow) -> Span {
    let key = find_key(&f.source.text, "flow:");
    let text = &f.source.text;
    if key.is_empty() {
        return key;
    }
    let rest = text.get(key.end + 1..).unwrap_or_default();
    let line = rest.split('\n').next().unwrap_or_default();
    let value = line.split(" #").next().unwrap_or_default().trim();
    let value = value.trim_matches(['"', '\'']);
    match line.find(value) {
        Some(i) if !value.is_empty() => Span::new(key.end + 1 + i, key.end + 1 + i + value.len()),
        _ => key,
    }
}

/// The span of the `incoming_call` pattern `text` in `f`.
fn pattern_span(f: &Flow, text: &str) -> Option<Span> {
    let Trigger::IncomingCall { to, from, .. } = &f.trigger else {
        return None;
    };
    to.iter()
        .chain(from)
        .find(|p| p.text == text)
        .map(|p| unquoted(&f.source.text, p.span))
}

fn unquoted(text: &str, span: Span) -> Span {
    let raw = text.get(span.start..span.end).unwrap_or_default();
    if raw.len() >= 2 && (raw.starts_with('"') || raw.starts_with('\'')) {
        Span::new(span.start + 1, span.end - 1)
    } else {
        span
    }
}

/// `in FILE:LINE:COL`, for a help that names another file.
fn location(f: &Flow, span: Span) -> String {
    let (line, col) = super::span::line_col(&f.source.text, span.start);
    format!("in {}:{line}:{col}", f.source.name())
}

fn trigger_span(f: &Flow) -> Span {
    find_key(&f.source.text, "trigger:")
}

fn find_key(text: &str, key: &str) -> Span {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with(key) {
            return Span::new(offset, offset + key.len() - 1);
        }
        offset += line.len();
    }
    Span::default()
}

/// How specific a trigger is: more exact filters win.
pub fn specificity(t: &Trigger) -> (u8, u8, u8) {
    match t {
        Trigger::IncomingCall { to, from, when } => (
            pattern_rank(to),
            pattern_rank(from),
            u8::from(when.is_some()),
        ),
        _ => (0, 0, 0),
    }
}

fn pattern_rank(p: &[Pattern]) -> u8 {
    if p.is_empty() {
        0
    } else if p.iter().any(Pattern::is_glob) {
        1
    } else {
        2
    }
}

/// What two triggers both take, and the pattern of `a` they share, if any.
fn ambiguous(a: &Flow, b: &Flow) -> Option<(String, Option<String>)> {
    let (
        Trigger::IncomingCall {
            to: to_a,
            from: from_a,
            ..
        },
        Trigger::IncomingCall {
            to: to_b,
            from: from_b,
            ..
        },
    ) = (&a.trigger, &b.trigger)
    else {
        return None;
    };
    if specificity(&a.trigger) != specificity(&b.trigger) {
        return None;
    }
    let to = overlap(to_a, to_b)?;
    let from = overlap(from_a, from_b)?;
    let shared = to.clone().or_else(|| from.clone());
    let why = match (to, from) {
        (Some(t), Some(f)) => format!("calls from `{f}` to `{t}`"),
        (Some(t), None) => format!("calls to `{t}`"),
        (None, Some(f)) => format!("calls from `{f}`"),
        (None, None) => "every incoming call".into(),
    };
    Some((why, shared))
}

/// Whether two filters can both hold: `None` when they cannot, else the
/// value (or pattern) they share, if any.
fn overlap(a: &[Pattern], b: &[Pattern]) -> Option<Option<String>> {
    if a.is_empty() || b.is_empty() {
        let any = a.iter().chain(b).next().map(|p| p.text.clone());
        return Some(any);
    }
    for x in a {
        for y in b {
            let shared = match (x.is_glob(), y.is_glob()) {
                (false, false) => x.text == y.text,
                (true, false) => x.matches(&y.text),
                (false, true) => y.matches(&x.text),
                (true, true) => {
                    let px = x.text.split(['*', '?']).next().unwrap_or_default();
                    let py = y.text.split(['*', '?']).next().unwrap_or_default();
                    px.starts_with(py) || py.starts_with(px)
                }
            };
            if shared {
                return Some(Some(x.text.clone()));
            }
        }
    }
    None
}

/// The checks of `fetch` steps that need the server's configuration: each
/// host written in a URL must be allowed, and each secret a header reads
/// must be configured (when the names are known). `callflow serve` runs
/// them on every load and reload; `callflow validate --fetch-allow` too.
///
/// A host the allow-list leaves out is an error; on a server that allows
/// no host at all (fetch not set up there, as with the bundled flows on a
/// fresh install) it is a warning: the step will take `on_failure`, and
/// the other flows still load. Secrets likewise.
pub fn check_fetch(flows: &[Arc<Flow>], policy: &FetchPolicy) -> Vec<Diagnostic> {
    let host_problem = if policy.allow.is_empty() {
        Diagnostic::warning
    } else {
        Diagnostic::error
    };
    let mut out = Vec::new();
    for flow in flows {
        for step in &flow.steps {
            let crate::flow::Action::Fetch(f) = &step.action else {
                continue;
            };
            if let Some(host) = &f.host
                && !policy.allows_authority(host)
            {
                let allowed = if policy.allow.is_empty() {
                    "this server allows no host yet, so the step will take `on_failure`".to_owned()
                } else {
                    format!("allowed: {}", policy.allow.join(", "))
                };
                let url = unquoted(&flow.source.text, f.url_span);
                let written = flow.source.text.get(url.start..url.end).unwrap_or_default();
                let at = written
                    .find("://")
                    .map(|i| url.start + i + 3)
                    .filter(|at| flow.source.text.get(*at..at + host.len()) == Some(host.as_str()))
                    .map_or(url, |at| Span::new(at, at + host.len()));
                out.push(
                    host_problem(
                        "callflow::fetch::host",
                        &flow.source,
                        at,
                        format!("`{host}` is not a host this server may fetch from"),
                    )
                    .label("host not allowed")
                    .help(format!(
                        "{allowed}; add it to `fetch-allow` in the server's config file, or \
                         `--fetch-allow {host}`"
                    )),
                );
            }
            let Some(known) = &policy.secrets else {
                continue;
            };
            let secret_problem = if known.is_empty() {
                Diagnostic::warning
            } else {
                Diagnostic::error
            };
            for (name, span) in &f.secrets {
                if known.iter().any(|k| k == name) {
                    continue;
                }
                let hint = super::suggest::did_you_mean(name, known.iter().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "set it in the config file's `[secrets]` table, or as \
                             CALLFLOW_SECRET_{}",
                            name.to_ascii_uppercase()
                        )
                    });
                out.push(
                    secret_problem(
                        "callflow::fetch::secret",
                        &flow.source,
                        *span,
                        format!("no secret `{name}` is configured"),
                    )
                    .label("unknown secret")
                    .help(hint),
                );
            }
        }
    }
    out
}
