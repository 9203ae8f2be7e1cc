//! Pulls the JSON examples out of Microsoft's reference pages in
//! `../shared/seeds/` (plain-text French pages and markdown Chinese/Russian
//! pages), so tests can use them verbatim as fixtures.
//!
//! The pages are read where they are; their prose is never copied into this
//! repository. This helper must not interpret the examples: it only finds
//! them, remembers which HTTP line they follow, and repairs the one defect
//! the pages have (trailing commas), saying so.

#![allow(dead_code)] // not every part is used by every test

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

/// One JSON example found in a seed page.
#[derive(Clone, Debug)]
pub struct Example {
    /// The seed file name.
    pub seed: String,
    /// The 1-based line where the example starts.
    pub line: usize,
    /// The last `POST ...`, `GET ...` or `HTTP/1.1 ...` line before the
    /// example, if any.
    pub http: Option<String>,
    /// The example's text, trailing commas removed.
    pub text: String,
    /// The example, parsed.
    pub json: Value,
    /// Whether trailing commas had to be removed for it to parse.
    pub repaired: bool,
}

impl Example {
    /// `seed:line`, for assertion messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.seed, self.line)
    }
}

/// The folder holding the seed pages: `../shared/seeds` next to the crate.
pub fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds")
}

/// Every seed page, as `(file name, text)`, sorted by name. Panics with a
/// clear message when the folder is missing or empty.
pub fn load_seeds() -> Vec<(String, String)> {
    let dir = seeds_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the seed pages are missing: cannot read {} ({e}). These tests read Microsoft's reference \
             pages from ../shared/seeds relative to the crate; restore that folder.",
            dir.display()
        )
    });
    let mut seeds: Vec<(String, String)> = entries
        .map(|entry| {
            let path = entry.expect("a readable directory entry").path();
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (name, text)
        })
        .filter(|(name, _)| name.ends_with(".txt") || name.ends_with(".md"))
        .collect();
    seeds.sort();
    assert!(
        !seeds.is_empty(),
        "no seed pages (*.txt, *.md) in {}",
        dir.display()
    );
    seeds
}

/// Every JSON example of every seed page.
pub fn all_examples() -> Vec<Example> {
    load_seeds()
        .iter()
        .flat_map(|(name, text)| extract_examples(name, text))
        .collect()
}

/// Every JSON example of one page: each object that starts on a line of
/// its own (`{` alone), outside HTML comments (the markdown pages keep
/// metadata JSON in `<!-- ... -->`), up to its balanced closing brace.
/// Panics if an example does not parse even after removing trailing commas.
pub fn extract_examples(seed: &str, text: &str) -> Vec<Example> {
    let text = blank_html_comments(text);
    let mut examples = Vec::new();
    let mut http: Option<String> = None;
    let mut offset = 0;
    let mut skip_until = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        if start < skip_until {
            continue;
        }
        let trimmed = line.trim();
        if ["POST ", "GET ", "PATCH ", "DELETE ", "HTTP/1.1 "]
            .iter()
            .any(|p| trimmed.starts_with(p))
        {
            http = Some(trimmed.to_owned());
        }
        if trimmed != "{" {
            continue;
        }
        let brace = start + line.find('{').expect("the line holds a brace");
        let end = balanced_end(&text, brace).unwrap_or_else(|| {
            panic!(
                "{seed}:{}: the JSON example never closes its braces",
                index + 1
            )
        });
        skip_until = end;
        let raw = &text[brace..end];
        let (repaired_text, repaired) = strip_trailing_commas(raw);
        let json: Value = serde_json::from_str(&repaired_text).unwrap_or_else(|e| {
            panic!(
                "{seed}:{}: example is not JSON even without trailing commas: {e}",
                index + 1
            )
        });
        examples.push(Example {
            seed: seed.to_owned(),
            line: index + 1,
            http: http.clone(),
            text: repaired_text,
            json,
            repaired,
        });
    }
    examples
}

/// Replaces every `<!-- ... -->` with spaces, keeping newlines so line
/// numbers stay right.
fn blank_html_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("<!--") {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find("-->").map_or(after.len(), |c| c + 3);
        out.extend(
            after[..close]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

/// The byte index just past the brace closing the one at `open`, minding
/// strings and escapes.
fn balanced_end(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text[open..].char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + i + c.len_utf8());
                }
            }
            _ => {}
        }
    }
    None
}

/// Removes commas that directly precede `}` or `]` (outside strings), as
/// the reference pages' hand-written examples have them. Returns whether
/// any was removed.
pub fn strip_trailing_commas(json: &str) -> (String, bool) {
    let chars: Vec<char> = json.chars().collect();
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut removed = false;
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|n| !n.is_whitespace());
            if matches!(next, Some('}' | ']')) {
                removed = true;
                continue;
            }
        }
        out.push(c);
    }
    (out, removed)
}

/// The value without `@odata.type` keys and without null members,
/// recursively: how request bodies are compared.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| k.as_str() != "@odata.type" && !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}
