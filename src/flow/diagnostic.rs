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
    ///
    /// A span on a very long line is shown in an excerpt of that line (miette
    /// would print the whole line, and cannot draw a label past column 65,535).
    pub fn render(&self, width: usize) -> String {
        if let Some(out) = self.render_excerpt(width) {
            return out;
        }
        let text = &*self.file.text;
        let on_long_line = |s: &Span| {
            let start = floor(text, s.start.min(text.len()));
            let from = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let to = text[start..].find('\n').map_or(text.len(), |i| start + i);
            to - from > LONG_LINE
        };
        if self.related.iter().any(|r| on_long_line(&r.span)) {
            let mut copy = self.clone();
            copy.related.retain(|r| !on_long_line(&r.span));
            return copy.render_whole(width);
        }
        self.render_whole(width)
    }

    /// miette's rendering, with the header's column counted in characters
    /// (miette counts bytes) so that it matches [`Diagnostic::location`].
    fn render_whole(&self, width: usize) -> String {
        let out = self.render_miette(width);
        let Some(span) = self.span else {
            return out;
        };
        let text = &*self.file.text;
        let (line, col) = line_col(text, span.start);
        let bytes = byte_col(text, span.start);
        if bytes == col {
            return out;
        }
        let name = self.file.name();
        out.replacen(
            &format!("{name}:{line}:{bytes}]"),
            &format!("{name}:{line}:{col}]"),
            1,
        )
    }

    fn render_miette(&self, width: usize) -> String {
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

/// Lines longer than this are shown as an excerpt around the span.
const LONG_LINE: usize = 400;
/// Characters of context kept either side of a span in an excerpt.
const EXCERPT_CONTEXT: usize = 40;

impl Diagnostic {
    /// The rendering of a diagnostic whose span stands on a long line: the
    /// same report over a text that holds only an excerpt of that line, at
    /// the same line number, with the header's column put back.
    fn render_excerpt(&self, width: usize) -> Option<String> {
        let text = &*self.file.text;
        let span = self.span?;
        let start = floor(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        if line_end - line_start <= LONG_LINE {
            return None;
        }
        let from = floor(text, start.saturating_sub(EXCERPT_CONTEXT).max(line_start));
        let span_end = floor(text, span.end.clamp(start, line_end));
        let to = floor(
            text,
            (span_end.min(start + LONG_LINE / 2) + EXCERPT_CONTEXT).min(line_end),
        );
        let newlines = text[..line_start].matches('\n').count();
        let mut excerpt = "\n".repeat(newlines);
        if from > line_start {
            excerpt.push('…');
        }
        let offset = excerpt.len();
        excerpt.push_str(&text[from..to]);
        if to < line_end {
            excerpt.push('…');
        }
        let shown = SourceFile {
            path: self.file.path.clone(),
            text: Arc::from(excerpt.as_str()),
            sha256: self.file.sha256.clone(),
        };
        let inner = Span::new(
            offset + start - from,
            offset + span_end.min(to).max(start) - from,
        );
        let copy = Diagnostic {
            file: Arc::new(shown),
            span: Some(inner),
            related: Vec::new(),
            ..self.clone()
        };
        let (line, col) = line_col(text, span.start);
        let shown_col = byte_col(&copy.file.text, inner.start);
        let name = self.file.name();
        Some(copy.render_miette(width).replacen(
            &format!("{name}:{line}:{shown_col}]"),
            &format!("{name}:{line}:{col}]"),
            1,
        ))
    }
}

/// The 1-based column of `offset` counted in bytes, as miette counts it.
fn byte_col(text: &str, offset: usize) -> usize {
    let offset = floor(text, offset.min(text.len()));
    offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1
}

fn floor(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
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

/// `1 warning`, `2 warnings`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
