//! Reading the model from the node tree, every deserialisation error reported.
//!
//! serde stops at the first error; `Cx::read_model` reports it, drops the
//! entry that holds it, and reads on, so that one round shows every mistake.

use super::*;

impl Cx {
    /// Reads the model, dropping each offending entry and reading on, so
    /// that every deserialisation error is reported.
    pub(super) fn read_model<T: serde::de::DeserializeOwned>(
        &mut self,
        mut root: Node,
    ) -> Option<T> {
        if !matches!(root.kind, NodeKind::Map(_)) {
            let text = &self.file.text;
            let line_end = text[root.span.start..]
                .find('\n')
                .map_or(root.span.end, |i| root.span.start + i)
                .min(root.span.end.max(root.span.start));
            self.error(
                "callflow::field::type",
                Span::new(root.span.start, line_end),
                "a flow file is a mapping",
            )
            .label("expected `flow: NAME` here")
            .help("start with `flow: NAME`, then `trigger:`, `start:` and `steps:`");
            return None;
        }
        for _ in 0..200 {
            match from_node::<T>(&root) {
                Ok(f) => return Some(f),
                Err(e) => {
                    let span = e.span.unwrap_or(root.span);
                    if let DeErrorKind::MissingField(field) = &e.kind
                        && self.removed.iter().any(|(p, k)| *p == span && k == field)
                    {
                        return None;
                    }
                    // An error on a mapping an entry was just dropped from
                    // is that drop's echo (`trigger:` left empty): the
                    // first report already says what to fix.
                    if !self.removed.iter().any(|(p, _)| *p == span) {
                        self.report_de_error(&e, &root);
                    }
                    match remove_entry(&mut root, span) {
                        Some(removal) => self.removed.push(removal),
                        None => return None,
                    }
                }
            }
        }
        self.stopped = true;
        None
    }

    pub(super) fn report_de_error(&mut self, e: &DeError, root: &Node) {
        let span = e.span.unwrap_or(root.span);
        match &e.kind {
            DeErrorKind::UnknownField { field, expected } => {
                let hint = did_you_mean(field, expected.iter().copied())
                    .unwrap_or_else(|| format!("the fields here are {}", list(expected)));
                self.error(
                    "callflow::field::unknown",
                    span,
                    format!("unknown field `{field}`"),
                )
                .label("not a field here")
                .help(hint);
            }
            DeErrorKind::UnknownVariant { variant, expected } => {
                let hint = did_you_mean(variant, expected.iter().copied())
                    .unwrap_or_else(|| format!("write one of {}", list(expected)));
                self.error(
                    "callflow::field::unknown",
                    span,
                    format!("`{variant}` is not one of {}", list(expected)),
                )
                .label("unknown name")
                .help(hint);
            }
            DeErrorKind::MissingField(field) => {
                // Point at the key that holds the incomplete mapping: the
                // mapping itself may span many lines, or start on another
                // field.
                let (at, message, help) = match key_of(root, span) {
                    Some(key) => {
                        let key = key.as_str().unwrap_or_default();
                        (
                            key_of(root, span).map_or(span, |k| k.span),
                            format!("`{key}` is missing the field `{field}`"),
                            format!("add `{field}:` under `{key}`"),
                        )
                    }
                    None if span == root.span => (
                        first_key(root, span).unwrap_or(Span::new(span.start, span.start)),
                        format!("the flow has no `{field}`"),
                        format!("add `{field}:` at the top level"),
                    ),
                    None => (
                        first_key(root, span).unwrap_or(Span::new(span.start, span.start)),
                        format!("this entry is missing the field `{field}`"),
                        format!("add `{field}:` to it"),
                    ),
                };
                self.error("callflow::field::missing", at, message)
                    .label(format!("`{field}` is required here"))
                    .help(help);
            }
            DeErrorKind::InvalidType { found, expected } => {
                let mut help = type_help(expected);
                let expected = plain_type(expected);
                let (at, message) = match key_of(root, span) {
                    Some(key) => {
                        // A multi-line mapping or list is pointed at by its key.
                        let is_scalar = self
                            .file
                            .text
                            .get(span.start..span.end)
                            .is_some_and(|t| !t.contains('\n'));
                        let at = if is_scalar { span } else { key.span };
                        let name = key.as_str().unwrap_or_default();
                        if ActionKind::from_name(name).is_some_and(ActionKind::bare) {
                            help = format!("write `{name}: {{}}`");
                        }
                        (at, format!("`{name}` must be {expected}, not {found}"))
                    }
                    None => (span, format!("expected {expected}, found {found}")),
                };
                self.error("callflow::field::type", at, message)
                    .label("wrong type")
                    .help(help);
            }
            DeErrorKind::Custom(msg) => {
                self.error("callflow::field::type", span, msg.clone())
                    .label("here");
            }
        }
    }

    // -------------------------------------------------------------- compiling
}

/// The key whose value is the node at `span`, anywhere under `node`.
pub(super) fn key_of(node: &Node, span: Span) -> Option<&Node> {
    match &node.kind {
        NodeKind::Map(entries) => entries.iter().find_map(|(k, v)| {
            if v.span == span && !v.span.is_empty() {
                Some(k)
            } else if contains(v.span, span) {
                key_of(v, span)
            } else {
                None
            }
        }),
        NodeKind::Seq(items) => items
            .iter()
            .filter(|v| contains(v.span, span))
            .find_map(|v| key_of(v, span)),
        NodeKind::Scalar { .. } => None,
    }
}

/// The first key of the mapping at `span` (a list item has no key of its own).
pub(super) fn first_key(node: &Node, span: Span) -> Option<Span> {
    if node.span == span {
        return match &node.kind {
            NodeKind::Map(entries) => entries.first().map(|(k, _)| k.span),
            _ => None,
        };
    }
    match &node.kind {
        NodeKind::Map(entries) => entries
            .iter()
            .filter(|(_, v)| contains(v.span, span))
            .find_map(|(_, v)| first_key(v, span)),
        NodeKind::Seq(items) => items
            .iter()
            .filter(|v| contains(v.span, span))
            .find_map(|v| first_key(v, span)),
        NodeKind::Scalar { .. } => None,
    }
}

pub(super) fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if !chars.as_str().starts_with(char::is_uppercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s.to_owned(),
    }
}

/// A Rust type name from serde, in the words of a flow file.
pub(super) fn plain_type(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "`true` or `false`".into(),
        "a sequence" => "a list".into(),
        e if e.starts_with("struct ") || e == "a map" => "a mapping".into(),
        e => e.to_owned(),
    }
}

pub(super) fn type_help(expected: &str) -> String {
    if expected.contains("string") {
        "put the value in quotes".into()
    } else if expected.contains("u32") || expected.contains("integer") {
        "write a whole number, e.g. `2`".into()
    } else if expected.contains("sequence") {
        "write a list: `[a, b]` or one `- item` per line".into()
    } else if expected.contains("map") || expected.contains("struct") {
        "write a mapping: `{key: value}` or `key: value` lines".into()
    } else {
        format!("write {expected}")
    }
}

/// Removes the innermost mapping entry (or list item) that holds `span`;
/// returns the parent's span and the key removed.
pub(super) fn remove_entry(node: &mut Node, span: Span) -> Option<(Span, String)> {
    let parent = node.span;
    match &mut node.kind {
        NodeKind::Map(entries) => {
            let i = entries
                .iter()
                .position(|(k, v)| contains(k.span, span) || contains(v.span, span))?;
            if let Some(inner) = remove_entry(&mut entries[i].1, span) {
                return Some(inner);
            }
            let key = entries[i].0.as_str().unwrap_or_default().to_owned();
            entries.remove(i);
            Some((parent, key))
        }
        NodeKind::Seq(items) => {
            let i = items.iter().position(|v| contains(v.span, span))?;
            if let Some(inner) = remove_entry(&mut items[i], span) {
                return Some(inner);
            }
            items.remove(i);
            Some((parent, String::new()))
        }
        NodeKind::Scalar { .. } => None,
    }
}

pub(super) fn contains(outer: Span, inner: Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && !(outer.is_empty() && inner != outer)
}
