//! Checking values: targets, phone numbers, durations and prompts.

use super::*;

impl Cx {
    pub(in crate::flow) fn target(
        &mut self,
        t: &Spanned<TargetDef>,
        cals: &[&str],
    ) -> Option<Target> {
        let d = &t.value;
        let display_name = d.display_name.as_ref().and_then(|n| self.template(n, cals));
        match (&d.user, &d.phone) {
            (Some(user), None) => {
                let id = self.template(user, cals)?;
                let tenant = d.tenant.as_ref().and_then(|x| self.template(x, cals));
                Some(Target::User {
                    id,
                    tenant,
                    display_name,
                })
            }
            (None, Some(phone)) => {
                if d.tenant.is_some() {
                    let tenant = d.tenant.as_ref().map_or(t.span, |x| {
                        key_before(&self.file.text.clone(), x.span, "tenant")
                    });
                    self.warning(
                        "callflow::target::tenant",
                        tenant,
                        "`tenant` is ignored for a phone number",
                    )
                    .label("ignored")
                    .help("remove `tenant`, or call the user by `user` instead");
                }
                self.phone(phone);
                let number = self.template(phone, cals)?;
                Some(Target::Phone {
                    number,
                    display_name,
                })
            }
            (Some(_), Some(phone)) => {
                self.error(
                    "callflow::target::both",
                    phone.span,
                    "a target is a `user` or a `phone`, not both",
                )
                .label("second identity")
                .help("make two steps, one per target, linked by `on_failure`");
                None
            }
            (None, None) => {
                self.error("callflow::target::none", t.span, "the target names no one")
                    .label("empty target")
                    .help("write `{user: \"<object id>\"}` or `{phone: \"+14255550100\"}`");
                None
            }
        }
    }

    pub(super) fn phone(&mut self, t: &Text) {
        if t.value.contains("${") {
            // `phone: "${vars.operator}"`: that variable holds a number.
            if let Some(name) = t
                .value
                .trim()
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .and_then(|r| r.trim().strip_prefix("vars."))
                .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                self.phone_vars.push(name.to_owned());
            }
            return;
        }
        if let Some(help) = e164_problem(&t.value) {
            let (span, label) = match t.value.find(['O', 'o']) {
                Some(i) => {
                    let map = ValueMap::new(&self.file.text, t.span, &t.value);
                    (Span::new(map.at(i), map.at(i + 1)), "letter O")
                }
                None => (t.span, "not E.164"),
            };
            self.error(
                "callflow::phone::e164",
                span,
                format!("`{}` is not an E.164 phone number", t.value),
            )
            .label(label)
            .help(help);
        }
    }

    /// Every text in `vars` (alone, in lists, in maps) written as a phone
    /// number, `+` and a digit: checked as E.164 where it is written, since
    /// it is dialled or compared with `call.from.phone` (a VIP list whose
    /// numbers have spaces never matches).
    /// A variable the flow dials or compares with a caller's number
    /// ([`Cx::phone_vars`]) is checked whole, numbers without `+` (and
    /// YAML integers) included.
    pub(super) fn var_phones(&mut self, f: &FlowFile) {
        fn texts(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Number(n) => out.push(n.to_string()),
                serde_json::Value::Array(a) => a.iter().for_each(|v| texts(v, out)),
                serde_json::Value::Object(m) => m.values().for_each(|v| texts(v, out)),
                _ => {}
            }
        }
        for (name, v) in &f.vars {
            let mut found = Vec::new();
            texts(&v.value, &mut found);
            let used_as_phone = self.phone_vars.contains(&name.value);
            let mut from = v.span.start;
            for s in found {
                let s = s.as_str();
                let phone_like = s
                    .strip_prefix('+')
                    .is_some_and(|r| r.trim_start().starts_with(|c: char| c.is_ascii_digit()));
                if !(phone_like || used_as_phone) || s.contains("${") {
                    continue;
                }
                let Some(problem) = e164_problem(s) else {
                    continue;
                };
                let text = Arc::clone(&self.file.text);
                let span = text
                    .get(from..v.span.end.max(from))
                    .and_then(|r| r.find(s))
                    .map_or(v.span, |i| Span::new(from + i, from + i + s.len()));
                from = span.end.max(from);
                self.error(
                    "callflow::phone::e164",
                    span,
                    format!("`{s}` is not an E.164 phone number"),
                )
                .label(format!("in `vars.{}`", name.value))
                .help(problem);
            }
        }
    }

    pub(in crate::flow) fn duration_in(
        &mut self,
        t: Option<&Text>,
        default_secs: u64,
        range: Option<(u64, u64)>,
    ) -> Option<Duration> {
        match t {
            None => Some(Duration::from_secs(default_secs)),
            Some(t) => self.duration(t, range),
        }
    }

    pub(in crate::flow) fn duration(
        &mut self,
        t: &Text,
        range: Option<(u64, u64)>,
    ) -> Option<Duration> {
        let text = t.value.trim();
        let parsed = humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero());
        match parsed {
            Some(d) => {
                if let Some((lo, hi)) = range
                    && (d < Duration::from_secs(lo) || d > Duration::from_secs(hi))
                {
                    self.error(
                        "callflow::duration::range",
                        t.span,
                        format!("`{text}` is not between {lo}s and {hi}s"),
                    )
                    .label("out of range")
                    .help(format!(
                        "Graph accepts {lo}s to {hi}s here, e.g. `{}s`",
                        30.clamp(lo, hi)
                    ));
                    return None;
                }
                Some(d)
            }
            None => {
                let help = if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
                    format!("add a unit: `{text}s`")
                } else {
                    "write a number and a unit: `500ms`, `10s`, `2m`, `1m30s`".into()
                };
                let label = if help.starts_with("add a unit") {
                    "no unit"
                } else {
                    "not a duration"
                };
                self.error(
                    "callflow::duration",
                    t.span,
                    format!("`{text}` is not a duration"),
                )
                .label(label)
                .help(help);
                None
            }
        }
    }

    pub(in crate::flow) fn prompt(&mut self, t: &Text, cals: &[&str]) -> Option<Template> {
        let tpl = self.template(t, cals)?;
        if let Some(lit) = tpl.as_literal()
            && !(lit.starts_with("https://") || lit.starts_with("http://"))
        {
            self.error(
                "callflow::prompt::url",
                t.span,
                format!("`{lit}` is not a URL"),
            )
            .label("prompt")
            .help("a prompt is the https:// URL of a WAV file Graph can fetch");
            return None;
        }
        Some(tpl)
    }

    /// The part of `t` that a calendar error message names in backticks.
    pub(super) fn culprit(&self, t: &Text, msg: &str) -> Span {
        let named = msg.split('`').nth(1).filter(|n| !n.is_empty());
        match named.and_then(|n| t.value.find(n).map(|i| (i, n.len()))) {
            Some((i, len)) if len < t.value.trim().len() => {
                let map = ValueMap::new(&self.file.text, t.span, &t.value);
                Span::new(map.at(i), map.at(i + len))
            }
            _ => t.span,
        }
    }
}

/// `not a day` from "`fry` is not a day; …", or `fallback`.
pub(super) fn culprit_label(msg: &str, fallback: &str) -> String {
    msg.split_once("` is ")
        .and_then(|(_, rest)| rest.split(';').next())
        .map_or_else(|| fallback.to_owned(), str::to_owned)
}

/// Why `s` is not an E.164 number, as a hint; `None` when it is one.
pub fn e164_problem(s: &str) -> Option<String> {
    if crate::phone::is_e164(s) {
        return None;
    }
    // `+33 (0)4 78 …`: the bracketed trunk `0` is not dialled from abroad.
    let without_trunk = match s.find('(') {
        Some(open) if s.starts_with('+') => {
            let close = s[open..].find(')').map(|c| open + c);
            match close {
                Some(close) if s[open + 1..close].trim() == "0" => {
                    format!("{}{}", &s[..open], &s[close + 1..])
                }
                _ => s.to_owned(),
            }
        }
        _ => s.to_owned(),
    };
    let fixed: String = without_trunk
        .chars()
        .map(|c| if c == 'O' || c == 'o' { '0' } else { c })
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    Some(if s.contains(['O', 'o']) {
        format!("the letter O is not the digit 0: did you mean `{fixed}`?")
    } else if without_trunk.len() < s.len() {
        format!(
            "drop the trunk `(0)`, which is not dialled after a country code, and the spaces: `{fixed}`"
        )
    } else if s.contains([' ', '-', '(', ')', '.']) {
        format!("write it without spaces or punctuation: `{fixed}`")
    } else if let Some(national) = s
        .strip_prefix('0')
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
    {
        format!(
            "`{s}` is a national number: write `+`, the country code, then the number without its leading `0` (in France `+33{national}`)"
        )
    } else if !s.starts_with('+') {
        "start with `+` and the country code, e.g. `+14255550100`".into()
    } else {
        format!(
            "E.164 is `+`, a country code, then the number: {} to {} digits, e.g. `+14255550100`",
            crate::phone::MIN_DIGITS,
            crate::phone::MAX_DIGITS
        )
    })
}
