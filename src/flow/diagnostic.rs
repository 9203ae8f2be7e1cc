//! Diagnostics that point at the text of a flow file.
//!
//! Every problem found while loading is a [`Diagnostic`]: a severity, a
//! stable code (`callflow::step::unknown`), a message, a labelled span in a
//! [`SourceFile`] and a help line. They implement [`miette::Diagnostic`] for
//! the terminal and serialise to JSON for editors (`--format json`). This
//! module only describes problems; it never decides what is one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{LabeledSpan, SourceCode};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::span::{Span, line_col};

/// A file that was read, with its text and a hash of its bytes.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user gave it.
    pub path: PathBuf,
    /// The text (empty when the file was not valid UTF-8).
    pub text: Arc<str>,
    /// The SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

impl SourceFile {
    /// A file with its text.
    pub fn new(path: impl Into<PathBuf>, text: &str) -> Self {
        Self::from_bytes(path, text.as_bytes(), text)
    }

    /// A file from its bytes and the text to show.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: &[u8], text: &str) -> Self {
        let hash = Sha256::digest(bytes);
        SourceFile {
            path: path.into(),
            text: Arc::from(text),
            sha256: hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The path for display, with `/` separators.
    pub fn name(&self) -> String {
        self.path.to_string_lossy().replace('\\', "/")
    }
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The flow cannot load.
    Error,
    /// The flow loads, but something is likely wrong.
    Warning,
}

/// A second place a diagnostic points at.
#[derive(Clone, Debug)]
pub struct Related {
    /// Where.
    pub span: Span,
    /// What it is.
    pub label: String,
}

/// One problem in one file.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code, e.g. `callflow::step::unknown`.
    pub code: &'static str,
    /// One sentence saying what is wrong.
    pub message: String,
    /// The file.
    pub file: Arc<SourceFile>,
    /// Where in the file, when known.
    pub span: Option<Span>,
    /// The label under the span.
    pub label: String,
    /// What to do about it.
    pub help: Option<String>,
    /// Other places that explain it.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A new error at `span`.
    pub fn error(
        code: &'static str,
        file: &Arc<SourceFile>,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: Arc::clone(file),
            span: Some(span),
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    /// A new warning at `span`.
    pub fn warning(
        code: &'static str,
        file: &Arc<SourceFile>,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(code, file, span, message)
        }
    }

    /// Sets the label under the span.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line when there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        self.help = help.or(self.help);
        self
    }

    /// Adds a related place.
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push(Related {
            span,
            label: label.into(),
        });
        self
    }

    /// Whether it is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` of the span's start.
    pub fn location(&self) -> String {
        match self.span {
            Some(s) => {
                let (l, c) = line_col(&self.file.text, s.start);
                format!("{}:{l}:{c}", self.file.name())
            }
            None => self.file.name(),
        }
    }

    /// The diagnostic as JSON for tools and editors.
    pub fn to_json(&self) -> JsonDiagnostic {
        let pos = |o: usize| line_col(&self.file.text, o);
        let (start, end) = match self.span {
            Some(s) => (Some(pos(s.start)), Some(pos(s.end))),
            None => (None, None),
        };
        JsonDiagnostic {
            file: self.file.name(),
            severity: self.severity,
            code: self.code,
            message: self.message.clone(),
            line: start.map(|p| p.0),
            column: start.map(|p| p.1),
            end_line: end.map(|p| p.0),
            end_column: end.map(|p| p.1),
            label: (!self.label.is_empty()).then(|| self.label.clone()),
            help: self.help.clone(),
        }
    }

    /// Renders the diagnostic as miette draws it, without colour, at `width` columns.
    pub fn render(&self, width: usize) -> String {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(width)
                .with_links(false);
        let mut out = String::new();
        if handler.render_report(&mut out, self).is_err() {
            out = format!("{}: {}", self.location(), self.message);
        }
        out
    }
}

/// A diagnostic as JSON (`callflow validate --format json`).
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    /// The file.
    pub file: String,
    /// `error` or `warning`.
    pub severity: Severity,
    /// The stable code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// 1-based line of the start.
    pub line: Option<usize>,
    /// 1-based column (characters) of the start.
    pub column: Option<usize>,
    /// 1-based line of the end.
    pub end_line: Option<usize>,
    /// 1-based column of the end.
    pub end_column: Option<usize>,
    /// The label under the span.
    pub label: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl SourceCode for SourceFile {
    fn read_span<'s>(
        &'s self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'s> + 's>, miette::MietteError> {
        let contents = (*self.text).read_span(span, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name(),
            contents.data(),
            *contents.span(),
            contents.line(),
            contents.column(),
            contents.line_count(),
        )))
    }
}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&*self.file)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = (!self.label.is_empty()).then(|| self.label.clone());
        let main = LabeledSpan::new_primary_with_span(label, span);
        let related = self
            .related
            .iter()
            .map(|r| LabeledSpan::new_with_span(Some(r.label.clone()), r.span));
        Some(Box::new(std::iter::once(main).chain(related)))
    }
}

/// Path to a file for display, relative to the working directory when below it.
pub fn display_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}
