//! A YAML document as a tree of nodes that know where they stand.
//!
//! serde-saphyr's parser (`granit_parser`) turns the text into events; this
//! module builds them into a [`Node`] tree under explicit budgets (input
//! size, nesting depth, node count after alias expansion), so that hostile
//! input ends in a clear [`YamlError`] within bounded time and memory. The
//! tree keeps scalars as written: their type is decided by whoever reads
//! them (see [`crate::flow::de`]), so `+14255550100` stays a phone number.
//! It never touches the file system.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError};

use super::span::Span;

/// Limits on what one flow file may cost to read.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes, counting every expansion of an alias.
    pub max_nodes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_nodes: 500_000,
        }
    }
}

/// One YAML node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the node stands in the source.
    pub span: Span,
    /// What it holds.
    pub kind: NodeKind,
}

/// The content of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar, as written (after escapes), with its style.
    Scalar {
        /// The text of the scalar.
        text: String,
        /// Whether it was written plain (so `true`, `12`, `~` are typed).
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Whether the node is `null`, `~` or empty.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if is_null_text(text))
    }

    /// The text of a scalar node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value of `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// How many nodes this subtree holds.
    fn weight(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar { .. } => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::weight).sum::<usize>(),
            NodeKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.weight() + v.weight())
                    .sum::<usize>()
            }
        }
    }
}

pub(crate) fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Why a document could not be read as a tree.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlError {
    /// What kind of failure.
    pub kind: YamlErrorKind,
    /// Where it was noticed.
    pub span: Span,
    /// A sentence for the user.
    pub message: String,
}

/// The kinds of [`YamlError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YamlErrorKind {
    /// The text is not valid YAML.
    Syntax,
    /// The input is larger than the budget.
    TooLarge,
    /// Mappings and sequences nest deeper than the budget.
    TooDeep,
    /// Aliases expand to more nodes than the budget (an alias bomb).
    TooManyNodes,
    /// The document holds more nodes than the budget, without aliases.
    TooManyEntries,
    /// The file holds several YAML documents.
    MultipleDocuments,
    /// The file holds no document.
    Empty,
    /// A flow list `[` or mapping `{` is never closed.
    Unclosed,
}

/// A problem that does not stop reading: a key given twice in one mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct DuplicateKey {
    /// The key as written.
    pub key: String,
    /// The second occurrence.
    pub span: Span,
    /// The first occurrence.
    pub first: Span,
}

/// A parsed document and the duplicate keys found in it.
#[derive(Debug)]
pub struct Document {
    /// The root node.
    pub root: Node,
    /// Keys given twice (the later one is kept out of the tree).
    pub duplicates: Vec<DuplicateKey>,
}

enum Frame {
    Seq(Span, Vec<Node>, usize),
    /// Its span, entries, a key awaiting its value, anchor, and the index
    /// of each scalar key (so that a duplicate is found in constant time).
    Map(
        Span,
        Vec<(Node, Node)>,
        Option<Node>,
        usize,
        std::collections::HashMap<String, usize>,
    ),
}

/// Parses `source` into one [`Document`] within `budget`.
pub fn parse(source: &str, budget: Budget) -> Result<Document, YamlError> {
    if source.len() > budget.max_bytes {
        return Err(YamlError {
            kind: YamlErrorKind::TooLarge,
            span: Span::new(0, 0),
            message: format!(
                "the file is {} bytes; a flow file may hold at most {} bytes",
                source.len(),
                budget.max_bytes
            ),
        });
    }
    let mut parser = Parser::new_from_str(source);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut duplicates = Vec::new();
    let mut nodes = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut aliased = false;

    for item in parser.by_ref() {
        let (event, span) = item.map_err(|e| unclosed(source, &stack, &e))?;
        let here = to_span(source, &span);
        let finished: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => None,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        kind: YamlErrorKind::MultipleDocuments,
                        span: here,
                        message: "a flow file holds one YAML document; this is a second one".into(),
                    });
                }
                None
            }
            Event::Alias(id) => {
                let target = anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n)
                    .ok_or_else(|| YamlError {
                        kind: YamlErrorKind::Syntax,
                        span: here,
                        message: "this alias names no anchor defined before it".into(),
                    })?;
                nodes += target.weight();
                aliased = true;
                if nodes > budget.max_nodes {
                    return Err(too_many_nodes(budget, here));
                }
                Some((
                    Node {
                        span: here,
                        ..target.clone()
                    },
                    0,
                ))
            }
            Event::Scalar(text, style, anchor, _tag) => {
                nodes += 1;
                let node = Node {
                    span: here,
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        plain: matches!(style, ScalarStyle::Plain),
                    },
                };
                Some((node, anchor))
            }
            Event::SequenceStart(_, anchor, _) => {
                nodes += 1;
                push_frame(
                    &mut stack,
                    Frame::Seq(here, Vec::new(), anchor),
                    budget,
                    here,
                )?;
                None
            }
            Event::MappingStart(_, anchor, _) => {
                nodes += 1;
                push_frame(
                    &mut stack,
                    Frame::Map(here, Vec::new(), None, anchor, Default::default()),
                    budget,
                    here,
                )?;
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(start, items, anchor)) => Some((
                    Node {
                        span: collection_span(
                            source,
                            start,
                            here,
                            items.last().map(|n| n.span.end),
                        ),
                        kind: NodeKind::Seq(items),
                    },
                    anchor,
                )),
                _ => return Err(internal(here)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(start, entries, _, anchor, _)) => Some((
                    Node {
                        span: collection_span(
                            source,
                            start,
                            here,
                            entries.last().map(|(_, v)| v.span.end),
                        ),
                        kind: NodeKind::Map(entries),
                    },
                    anchor,
                )),
                _ => return Err(internal(here)),
            },
            _ => None,
        };
        if nodes > budget.max_nodes {
            if aliased {
                return Err(too_many_nodes(budget, here));
            }
            return Err(YamlError {
                kind: YamlErrorKind::TooManyEntries,
                span: here,
                message: format!(
                    "the file holds more than {} values; a flow file is never this large",
                    budget.max_nodes
                ),
            });
        }
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            anchors.push((anchor, node.clone()));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, pending, _, index)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let first = match key.as_str() {
                        Some(k) => match index.get(k) {
                            Some(&i) => Some(entries[i].0.span),
                            None => {
                                index.insert(k.to_owned(), entries.len());
                                None
                            }
                        },
                        None => None,
                    };
                    match first {
                        Some(first) => duplicates.push(DuplicateKey {
                            key: key.as_str().unwrap_or_default().to_owned(),
                            span: key.span,
                            first,
                        }),
                        None => entries.push((key, node)),
                    }
                }
            },
        }
    }
    let root = root.ok_or(YamlError {
        kind: YamlErrorKind::Empty,
        span: Span::new(0, 0),
        message: "the file holds no YAML document".into(),
    })?;
    Ok(Document { root, duplicates })
}

/// The span of a collection from its start to its end event. A flow
/// collection ends with its bracket; a block collection ends with its last
/// value (its end event stands at the next token, lines further on).
fn collection_span(source: &str, start: Span, end: Span, last: Option<usize>) -> Span {
    let flow = source[start.start..].starts_with(['[', '{']);
    let stop = match last {
        Some(last) if !flow => last,
        _ => end.end,
    };
    Span::new(start.start, stop.max(start.end))
}

fn push_frame(
    stack: &mut Vec<Frame>,
    frame: Frame,
    budget: Budget,
    here: Span,
) -> Result<(), YamlError> {
    if stack.len() >= budget.max_depth {
        return Err(YamlError {
            kind: YamlErrorKind::TooDeep,
            span: here,
            message: format!(
                "mappings and sequences nest more than {} levels deep here",
                budget.max_depth
            ),
        });
    }
    stack.push(frame);
    Ok(())
}

fn too_many_nodes(budget: Budget, span: Span) -> YamlError {
    YamlError {
        kind: YamlErrorKind::TooManyNodes,
        span,
        message: format!(
            "the document expands to more than {} nodes (aliases count every time they are used)",
            budget.max_nodes
        ),
    }
}

fn internal(span: Span) -> YamlError {
    YamlError {
        kind: YamlErrorKind::Syntax,
        span,
        message: "unbalanced YAML structure".into(),
    }
}

fn to_span(source: &str, span: &serde_saphyr::granit_parser::Span) -> Span {
    let start = span
        .start
        .byte_offset()
        .unwrap_or_else(|| char_to_byte(source, span.start.index()));
    let end = span
        .end
        .byte_offset()
        .unwrap_or_else(|| char_to_byte(source, span.end.index()));
    Span::new(start.min(source.len()), end.max(start).min(source.len()))
}

fn char_to_byte(source: &str, chars: usize) -> usize {
    source
        .char_indices()
        .nth(chars)
        .map_or(source.len(), |(i, _)| i)
}

/// A scan error inside a flow collection opened on an earlier line is
/// most likely that collection left open: say so, at its opening bracket.
fn unclosed(source: &str, stack: &[Frame], e: &ScanError) -> YamlError {
    let err = scan_error(source, e);
    if err.kind != YamlErrorKind::Syntax {
        return err;
    }
    let open = stack.iter().rev().find_map(|f| {
        let start = match f {
            Frame::Seq(s, ..) | Frame::Map(s, ..) => s.start,
        };
        let c = source.get(start..)?.chars().next()?;
        matches!(c, '[' | '{').then_some((start, c))
    });
    let Some((start, c)) = open else {
        return err;
    };
    let line_of = |o: usize| source[..o.min(source.len())].matches('\n').count() + 1;
    if line_of(start) >= line_of(err.span.start) {
        return err;
    }
    YamlError {
        kind: YamlErrorKind::Unclosed,
        span: Span::new(start, start + 1),
        message: format!(
            "this `{c}` is never closed (reading stopped at line {})",
            line_of(err.span.start)
        ),
    }
}

fn scan_error(source: &str, e: &ScanError) -> YamlError {
    let m = e.marker();
    let at = m
        .byte_offset()
        .unwrap_or_else(|| char_to_byte(source, m.index()))
        .min(source.len());
    let end = source[at..]
        .chars()
        .next()
        .map_or(at, |c| at + c.len_utf8());
    let info = e.info();
    if info.contains("recursion limit") {
        return YamlError {
            kind: YamlErrorKind::TooDeep,
            span: Span::new(at, end),
            message: "mappings and sequences nest too deep here".into(),
        };
    }
    let message = plain_message(&info);
    let mut span = Span::new(at, end);
    if message.starts_with("a tab") {
        // Point at the tab itself, not at the token after it.
        let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
        if let Some(i) = source[line_start..at].find('\t') {
            span = Span::new(line_start + i, line_start + i + 1);
        }
    }
    YamlError {
        kind: YamlErrorKind::Syntax,
        span,
        message,
    }
}

/// The scanner's message in a designer's words, when it is a common one.
fn plain_message(info: &str) -> String {
    let plain = if info.contains("did not find expected key") {
        "this line is not indented like the keys above it"
    } else if info.contains("mapping values are not allowed") {
        "a `: ` cannot appear here; check the indentation, or put the value in quotes"
    } else if info.contains("tab") && (info.contains("indent") || info.contains("token")) {
        "a tab cannot indent YAML; use spaces"
    } else if info.contains("unknown anchor") {
        "this alias names no anchor (`&name`) defined before it"
    } else if info.contains("quoted scalar") && info.contains("end of stream") {
        "this quote is never closed"
    } else {
        return info.to_string();
    };
    plain.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_scalars_as_written_with_spans() {
        let src = "a: +14255550100\nb: 'x'\n";
        let doc = parse(src, Budget::default()).expect("parses");
        let a = doc.root.get("a").expect("a");
        assert_eq!(a.as_str(), Some("+14255550100"));
        assert_eq!(&src[a.span.start..a.span.end], "+14255550100");
        let b = doc.root.get("b").expect("b");
        assert_eq!(
            b.kind,
            NodeKind::Scalar {
                text: "x".into(),
                plain: false
            }
        );
    }

    #[test]
    fn reports_duplicate_keys() {
        let doc = parse("a: 1\nb: 2\na: 3\n", Budget::default()).expect("parses");
        assert_eq!(doc.duplicates.len(), 1);
        assert_eq!(doc.duplicates[0].key, "a");
        assert_eq!(doc.duplicates[0].first, Span::new(0, 1));
    }

    #[test]
    fn stops_an_alias_bomb() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&src, Budget::default()).expect_err("bomb");
        assert_eq!(err.kind, YamlErrorKind::TooManyNodes);
    }

    #[test]
    fn stops_deep_nesting() {
        let src = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse(&src, Budget::default()).expect_err("deep");
        assert_eq!(err.kind, YamlErrorKind::TooDeep, "{}", err.message);
    }
}
