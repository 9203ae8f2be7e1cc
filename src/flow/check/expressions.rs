//! Compiling `when` conditions and `${…}` templates, with positions inside the YAML text.

use super::*;
use crate::flow::actions::fetch::HeaderPiece;

/// The secrets a header reads, with where each is written.
type SecretsRead = Vec<(String, Span)>;

impl Cx {
    pub(in crate::flow) fn condition(&mut self, t: &Text, cals: &[&str]) -> Option<Expr> {
        if t.value.trim().is_empty() {
            self.error("callflow::expr::syntax", t.span, "the expression is empty")
                .label("empty")
                .help("write one, e.g. `open(\"office\")`, or remove the key");
            return None;
        }
        let map = ValueMap::new(&self.file.text, t.span, &t.value);
        self.expression(&t.value, &map, 0, cals, true)
    }

    /// A `set` value: any expression.
    pub(in crate::flow) fn value(&mut self, t: &Text, cals: &[&str]) -> Option<Expr> {
        if t.value.trim().is_empty() {
            self.error("callflow::expr::syntax", t.span, "the expression is empty")
                .label("empty")
                .help("write one, e.g. `vars.tries + 1` or `\"yes\"`");
            return None;
        }
        let map = ValueMap::new(&self.file.text, t.span, &t.value);
        self.expression(&t.value, &map, 0, cals, false)
    }

    /// Compiles the expression `source`, which starts `offset` bytes into
    /// the value of a scalar whose bytes stand in the file as `map` says.
    pub(super) fn expression(
        &mut self,
        source: &str,
        map: &ValueMap,
        offset: usize,
        cals: &[&str],
        condition: bool,
    ) -> Option<Expr> {
        let text = Arc::clone(&self.file.text);
        let at = |o: usize, len: usize| {
            let start = map.at(offset + o);
            let end = map.at(offset + o + len).max(start);
            if end > start {
                Span::new(start, end)
            } else {
                Span::new(
                    start,
                    start
                        + text
                            .get(start..)
                            .and_then(|r| r.chars().next())
                            .map_or(0, char::len_utf8),
                )
            }
        };
        if self.saturated() {
            return None;
        }
        let mut phone_vars = Vec::new();
        let compiled = expr::compile(source, cals).and_then(|ast| {
            let problems = match &self.roots {
                Some(roots) => {
                    let (problems, vars) = typing::check_all(&ast, source, roots, condition);
                    phone_vars = vars;
                    problems
                }
                None => Vec::new(),
            };
            if problems.is_empty() {
                Ok(ast)
            } else {
                Err(problems)
            }
        });
        self.phone_vars.extend(phone_vars);
        match compiled {
            Ok(ast) => Some(Expr::new(
                source.to_owned(),
                Span::new(map.at(offset), map.at(offset + source.len())),
                ast,
            )),
            Err(problems) => {
                for p in problems {
                    match p.kind {
                        CompileProblemKind::Syntax(msg) => {
                            let incomplete = p.offset >= source.trim_end().len();
                            let (span, message, label) = if msg.contains("maximum complexity") {
                                (
                                    at(p.offset, p.len),
                                    format!(
                                        "this expression nests deeper than {} levels",
                                        expr::limits::EXPR_DEPTH.0
                                    ),
                                    "too deep from here",
                                )
                            } else if incomplete {
                                let (o, len) = last_token(source);
                                (
                                    at(o, len),
                                    "this expression is incomplete".to_owned(),
                                    "it ends here",
                                )
                            } else {
                                (
                                    at(p.offset, p.len),
                                    format!(
                                        "this expression does not parse: {}",
                                        lowercase_first(&msg)
                                    ),
                                    "here",
                                )
                            };
                            let help = if msg.contains("'='") {
                                "to compare, write `==`; an expression cannot assign"
                            } else if msg.contains("'eval'") {
                                "expressions cannot run code from text"
                            } else {
                                "expressions are rhai: `call.from.phone == \"+441234\" && open(\"office\")`"
                            };
                            self.error("callflow::expr::syntax", span, message)
                                .label(label)
                                .help(help);
                        }
                        CompileProblemKind::UnknownVariable(name) => {
                            // A bare word is most often a text meant as such
                            // (`set: {answer: confirmed}`): say how to write it.
                            let bare = source.trim() == name;
                            let roots = did_you_mean(&name, expr::ROOTS.iter().copied())
                                .unwrap_or_else(|| {
                                    format!("expressions start from {}", list(expr::ROOTS))
                                });
                            let hint = if bare {
                                format!(
                                    "a text is quoted inside the expression: `'\"{name}\"'`; {roots}"
                                )
                            } else {
                                roots
                            };
                            self.error(
                                "callflow::expr::unknown_var",
                                at(p.offset, name.len()),
                                format!("`{name}` is not a variable"),
                            )
                            .label("unknown variable")
                            .help(hint);
                        }
                        CompileProblemKind::UnknownFunction(name) => {
                            let hint =
                                did_you_mean(&name, expr::function_names()).unwrap_or_else(|| {
                                    "the functions an expression may call are listed in \
                                     docs/flow-language.md (Expressions): `starts_with`, \
                                     `contains`, `in`, `open`, `url_encode`, …"
                                        .to_owned()
                                });
                            self.error(
                                "callflow::expr::unknown_fn",
                                at(p.offset, name.len()),
                                format!("`{name}` is not a function"),
                            )
                            .label("unknown function")
                            .help(hint);
                        }
                        CompileProblemKind::Phone { value, help } => {
                            self.error(
                                "callflow::phone::e164",
                                at(p.offset, p.len),
                                format!("`{value}` is not an E.164 phone number"),
                            )
                            .label("compared with the caller's number: never equal")
                            .help(help);
                        }
                        CompileProblemKind::UnknownCalendar(_) if self.calendars_unknown => {}
                        CompileProblemKind::UnknownCalendar(name) => {
                            let hint =
                                did_you_mean(&name, cals.iter().copied()).unwrap_or_else(|| {
                                    if cals.is_empty() {
                                        "define it under `calendars:`".into()
                                    } else {
                                        format!("the calendars are {}", list(cals))
                                    }
                                });
                            let off = source[p.offset..]
                                .find(&name)
                                .map_or(p.offset, |i| p.offset + i);
                            self.error(
                                "callflow::calendar::unknown",
                                at(off, name.len()),
                                format!("no calendar is named `{name}`"),
                            )
                            .label("unknown calendar")
                            .help(hint);
                        }
                        CompileProblemKind::UnknownField {
                            parent,
                            field,
                            known,
                            api,
                        } => {
                            let near = did_you_mean(&field, known.iter().map(String::as_str));
                            let known: Vec<&str> = known.iter().map(String::as_str).collect();
                            let (message, label, help) = match parent.as_str() {
                                "vars" => (
                                    format!("`vars.{field}` is not a variable of this flow"),
                                    "unknown variable",
                                    near.unwrap_or_else(|| {
                                        let have = if known.is_empty() {
                                            "the flow has no variables".to_owned()
                                        } else {
                                            format!("its variables are {}", list(&known))
                                        };
                                        format!("{have}; declare it under `vars:` or give it a value with `set:`")
                                    }),
                                ),
                                "params" => (
                                    format!("`params.{field}` is not a parameter of this flow"),
                                    "unknown parameter",
                                    if !api {
                                        "only an `api` flow has parameters (`trigger: {api: {params: …}}`)".to_owned()
                                    } else {
                                        near.unwrap_or_else(|| {
                                            let have = if known.is_empty() {
                                                "it declares none".to_owned()
                                            } else {
                                                format!("its parameters are {}", list(&known))
                                            };
                                            format!("declare it under `trigger: {{api: {{params: …}}}}`; {have}")
                                        })
                                    },
                                ),
                                _ => (
                                    format!("`{parent}` has no field `{field}`"),
                                    "unknown field",
                                    near.unwrap_or_else(|| {
                                        format!("`{parent}` holds {}", list(&known))
                                    }),
                                ),
                            };
                            self.error(
                                "callflow::expr::unknown_field",
                                at(p.offset, p.len),
                                message,
                            )
                            .label(label)
                            .help(help);
                        }
                        CompileProblemKind::Type {
                            message,
                            label,
                            help,
                        } => {
                            self.error("callflow::expr::type", at(p.offset, p.len), message)
                                .label(label)
                                .help(help);
                        }
                    }
                }
                None
            }
        }
    }

    pub(in crate::flow) fn template(&mut self, t: &Text, cals: &[&str]) -> Option<Template> {
        self.template_pieces(t, cals, None).map(|(t, _)| t)
    }

    /// A `fetch` header's value: a template in which `${secrets.NAME}`
    /// reads a secret of the server's configuration. Its pieces, and the
    /// secrets it reads with where each is written.
    pub(in crate::flow) fn header_template(
        &mut self,
        t: &Text,
        cals: &[&str],
    ) -> Option<(Vec<HeaderPiece>, SecretsRead)> {
        let mut secrets = Vec::new();
        let (tpl, marks) = self.template_pieces(t, cals, Some(&mut secrets))?;
        // Split the template at the secrets it holds.
        let mut pieces = Vec::new();
        let mut current = Vec::new();
        for (i, part) in tpl.parts.into_iter().enumerate() {
            if let Some(name) = marks
                .iter()
                .find(|(at, _)| *at == i)
                .map(|(_, n)| n.clone())
            {
                if !current.is_empty() {
                    pieces.push(HeaderPiece::Template(Template {
                        source: String::new(),
                        parts: std::mem::take(&mut current),
                    }));
                }
                pieces.push(HeaderPiece::Secret(name));
            } else {
                current.push(part);
            }
        }
        if !current.is_empty() {
            pieces.push(HeaderPiece::Template(Template {
                source: String::new(),
                parts: current,
            }));
        }
        Some((pieces, secrets))
    }

    /// A template; with `secrets`, `${secrets.NAME}` is taken as a secret
    /// (a placeholder part whose index is returned with the name, and the
    /// name and span pushed to `secrets`), else it is an error that says
    /// where secrets may be read.
    fn template_pieces(
        &mut self,
        t: &Text,
        cals: &[&str],
        mut secrets: Option<&mut Vec<(String, Span)>>,
    ) -> Option<(Template, Vec<(usize, String)>)> {
        let mut marks = Vec::new();
        let s = &t.value;
        if !s.contains("${") {
            return Some((
                Template {
                    source: s.clone(),
                    parts: if s.is_empty() {
                        Vec::new()
                    } else {
                        vec![TemplatePart::Text(s.clone())]
                    },
                },
                marks,
            ));
        }
        let map = ValueMap::new(&self.file.text, t.span, s);
        let mut parts = Vec::new();
        let mut rest = 0;
        let mut ok = true;
        while let Some(open) = s[rest..].find("${") {
            let open = rest + open;
            if open > rest {
                parts.push(TemplatePart::Text(s[rest..open].to_owned()));
            }
            let body_start = open + 2;
            let Some(close) = find_close(&s[body_start..]) else {
                self.error(
                    "callflow::expr::syntax",
                    Span::new(map.at(open), map.at(open + 2)),
                    "`${` is never closed",
                )
                .label("opened here")
                .help("close it with `}`, e.g. `${vars.name}`");
                return None;
            };
            let body = &s[body_start..body_start + close];
            if body.trim().is_empty() {
                self.error(
                    "callflow::expr::syntax",
                    Span::new(map.at(open), map.at(body_start + close + 1)),
                    "`${}` holds no expression",
                )
                .label("empty")
                .help("write an expression inside, e.g. `${call.id}`");
                ok = false;
                rest = body_start + close + 1;
                continue;
            }
            let trimmed = body.trim();
            if let Some(name) = trimmed.strip_prefix("secrets.") {
                let span = Span::new(map.at(open), map.at(body_start + close + 1));
                let plain = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                match secrets.as_deref_mut() {
                    Some(list) if plain => {
                        list.push((name.to_owned(), span));
                        marks.push((parts.len(), name.to_owned()));
                        parts.push(TemplatePart::Text(String::new()));
                    }
                    Some(_) => {
                        self.error(
                            "callflow::fetch::secret",
                            span,
                            format!("`{trimmed}` is not a secret's name"),
                        )
                        .label("secret")
                        .help("a secret is read whole, by its name: `${secrets.crm_token}`");
                        ok = false;
                    }
                    None => {
                        self.error(
                            "callflow::fetch::secret",
                            span,
                            "secrets are read only in a fetch's headers",
                        )
                        .label("a secret here would be written in the timeline")
                        .help("put it in a header of the fetch, e.g. `headers: {Authorization: \"Bearer ${secrets.crm_token}\"}`");
                        ok = false;
                    }
                }
                rest = body_start + close + 1;
                continue;
            }
            match self.expression(body, &map, body_start, cals, false) {
                Some(e) => parts.push(TemplatePart::Expr(e)),
                None => ok = false,
            }
            rest = body_start + close + 1;
        }
        if rest < s.len() {
            parts.push(TemplatePart::Text(s[rest..].to_owned()));
        }
        ok.then(|| {
            (
                Template {
                    source: s.clone(),
                    parts,
                },
                marks,
            )
        })
    }
}

/// The offset of the closing `}` of a `${`, counting nested braces and skipping strings.
pub(super) fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '{') => depth += 1,
            (None, '}') if depth == 0 => return Some(i),
            (None, '}') => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Where each byte of a scalar's value stands in the file.
///
/// A plain or quoted scalar without escapes is its value, shifted by the
/// opening quote. Otherwise (escapes, `''`, folded lines, block scalars)
/// the value is walked along the raw text: each character is matched to
/// the next raw character equal to it, skipping what YAML removes
/// (indentation, line breaks, quotes, backslashes, a block header).
pub(super) enum ValueMap {
    /// The value is the raw text from this file offset.
    Direct(usize),
    /// The file offset of each byte of the value, and one past its end.
    Walked(Vec<usize>),
}

impl ValueMap {
    pub(super) fn new(text: &str, span: Span, value: &str) -> ValueMap {
        let raw = text.get(span.start..span.end).unwrap_or_default();
        let quoted = raw.starts_with(['"', '\'']);
        let inner = usize::from(quoted);
        if raw.get(inner..).is_some_and(|r| r.starts_with(value)) && !raw.starts_with(['|', '>']) {
            return ValueMap::Direct(span.start + inner);
        }
        let mut j = if raw.starts_with(['|', '>']) {
            raw.find('\n').map_or(raw.len(), |i| i + 1)
        } else {
            inner
        };
        let mut map = Vec::with_capacity(value.len() + 1);
        for c in value.chars() {
            let mut k = j;
            let mut others = 0;
            let found = loop {
                let Some(r) = raw.get(k..).and_then(|r| r.chars().next()) else {
                    break None;
                };
                if r == c {
                    break Some(k);
                }
                if !(r.is_whitespace() || matches!(r, '\\' | '"' | '\'')) {
                    others += 1;
                    if others > 8 {
                        break None;
                    }
                }
                k += r.len_utf8();
            };
            let at = match found {
                Some(k) => {
                    j = k + c.len_utf8();
                    k
                }
                None => j,
            };
            map.extend(std::iter::repeat_n(span.start + at, c.len_utf8()));
        }
        map.push(span.start + j.min(raw.len()));
        ValueMap::Walked(map)
    }

    /// The file offset of byte `offset` of the value.
    pub(super) fn at(&self, offset: usize) -> usize {
        match self {
            ValueMap::Direct(base) => base + offset,
            ValueMap::Walked(map) => map[offset.min(map.len() - 1)],
        }
    }
}

/// `span` without its quotes, when it covers exactly a quoted scalar.
pub(super) fn unquote(text: &str, span: Span) -> Span {
    let raw = text.get(span.start..span.end).unwrap_or_default();
    let quote = raw.chars().next().filter(|c| matches!(c, '"' | '\''));
    match quote {
        Some(q) if raw.len() >= 2 && raw.ends_with(q) => Span::new(span.start + 1, span.end - 1),
        _ => span,
    }
}

/// The span of `key` written just before the value at `value` (only `:`,
/// spaces and line breaks between them); the value's span when it is not.
pub(super) fn key_before(text: &str, value: Span, key: &str) -> Span {
    let before = text.get(..value.start).unwrap_or_default();
    let gap = before.trim_end_matches([' ', '\t', '\r', '\n']);
    let Some(gap) = gap.strip_suffix(':') else {
        return value;
    };
    let gap = gap.trim_end_matches(['"', '\'']);
    match gap.strip_suffix(key) {
        Some(head) => Span::new(head.len(), head.len() + key.len()),
        None => value,
    }
}

/// The last token of an expression (where an incomplete one stops).
pub(super) fn last_token(source: &str) -> (usize, usize) {
    let trimmed = source.trim_end();
    let start = trimmed
        .char_indices()
        .rev()
        .take_while(|(_, c)| !c.is_whitespace())
        .last()
        .map_or(trimmed.len(), |(i, _)| i);
    (start, trimmed.len() - start)
}
