//! Every rule of the flow language, checked at once.
//!
//! [`check`] parses a file, reads it into the [`model`](super::model) types
//! collecting every deserialisation error (it drops the offending entry and
//! reads on), then checks names, transitions, outcomes, phone numbers,
//! durations, calendars and expressions. It returns the compiled
//! [`Flow`] only when there is no error, and every [`Diagnostic`] in any
//! case. It never touches I/O.

use std::collections::{BTreeSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use super::calendar::{self, Calendar};
use super::compiled::*;
use super::de::{DeError, DeErrorKind, from_node, list};
use super::diagnostic::{Diagnostic, SourceFile};
use super::expr::{self, CompileProblemKind, Expr};
use super::model::{self, FlowFile, OneOrMany, StepDef, TargetDef, Text};
use super::span::{Span, Spanned};
use super::suggest::did_you_mean;
use super::yaml::{self, Budget, Node, NodeKind, YamlErrorKind};

/// Default most steps per run.
pub const DEFAULT_MAX_STEPS: u32 = 200;

/// The call states a flow may name.
pub const STATES: &[&str] = &[
    "incoming",
    "establishing",
    "established",
    "ringing",
    "hold",
    "transferring",
    "transferAccepted",
    "redirecting",
    "terminating",
    "terminated",
];

/// Checks one file: the flow when it has no error, and every diagnostic.
pub fn check(file: &Arc<SourceFile>, budget: Budget) -> (Option<Flow>, Vec<Diagnostic>) {
    let mut cx = Cx {
        file: Arc::clone(file),
        diags: Vec::new(),
    };
    let doc = match yaml::parse(&file.text, budget) {
        Ok(doc) => doc,
        Err(e) => {
            let (code, help) = match e.kind {
                YamlErrorKind::Syntax => (
                    "callflow::yaml::syntax",
                    "check the indentation and the quotes around this point",
                ),
                YamlErrorKind::TooLarge => {
                    ("callflow::input::too_large", "split it into several flows")
                }
                YamlErrorKind::TooDeep => (
                    "callflow::input::too_deep",
                    "a flow file never needs this much nesting",
                ),
                YamlErrorKind::TooManyNodes => (
                    "callflow::input::alias_bomb",
                    "write the values out, or use fewer aliases",
                ),
                YamlErrorKind::MultipleDocuments => (
                    "callflow::yaml::documents",
                    "put each flow in a file of its own",
                ),
                YamlErrorKind::Empty => {
                    ("callflow::yaml::empty", "a flow starts with `flow: NAME`")
                }
            };
            cx.diags.push(
                Diagnostic::error(code, file, e.span, e.message)
                    .label("here")
                    .help(help),
            );
            return (None, cx.diags);
        }
    };
    for d in &doc.duplicates {
        cx.diags.push(
            Diagnostic::error(
                "callflow::yaml::duplicate_key",
                file,
                d.span,
                format!("`{}` is given twice", d.key),
            )
            .label("second time")
            .related(d.first, "first time")
            .help("a later key would silently replace the first; rename or remove one"),
        );
    }
    let Some(flow_file) = cx.read_model(doc.root) else {
        return (None, cx.diags);
    };
    let clean_read = !cx.has_errors();
    let flow = cx.compile(&flow_file, clean_read);
    let flow = if cx.has_errors() { None } else { flow };
    (flow, cx.diags)
}

struct Cx {
    file: Arc<SourceFile>,
    diags: Vec<Diagnostic>,
}

impl Cx {
    fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> Pushed<'_> {
        self.diags
            .push(Diagnostic::error(code, &self.file, span, message));
        Pushed(self.diags.last_mut().expect("just pushed"))
    }

    fn warning(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> Pushed<'_> {
        self.diags
            .push(Diagnostic::warning(code, &self.file, span, message));
        Pushed(self.diags.last_mut().expect("just pushed"))
    }

    // ---------------------------------------------------------------- reading

    /// Reads the model, dropping each offending entry and reading on, so
    /// that every deserialisation error is reported.
    fn read_model(&mut self, mut root: Node) -> Option<FlowFile> {
        if !matches!(root.kind, NodeKind::Map(_)) {
            self.error(
                "callflow::field::type",
                root.span,
                "a flow file is a mapping",
            )
            .help("start with `flow: NAME`, then `trigger:`, `start:` and `steps:`");
            return None;
        }
        let mut removed: Vec<(Span, String)> = Vec::new();
        for _ in 0..200 {
            match from_node::<FlowFile>(&root) {
                Ok(f) => return Some(f),
                Err(e) => {
                    let span = e.span.unwrap_or(root.span);
                    if let DeErrorKind::MissingField(field) = &e.kind
                        && removed.iter().any(|(p, k)| *p == span && k == field)
                    {
                        return None;
                    }
                    self.report_de_error(&e, &root);
                    match remove_entry(&mut root, span) {
                        Some(removal) => removed.push(removal),
                        None => return None,
                    }
                }
            }
        }
        None
    }

    fn report_de_error(&mut self, e: &DeError, root: &Node) {
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
                let span = Span::new(span.start, span.start);
                self.error(
                    "callflow::field::missing",
                    span,
                    format!("missing field `{field}`"),
                )
                .label(format!("`{field}` is required here"))
                .help(format!("add `{field}:`"));
            }
            DeErrorKind::InvalidType { found, expected } => {
                let help = type_help(expected);
                self.error(
                    "callflow::field::type",
                    span,
                    format!("expected {expected}, found {found}"),
                )
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

    fn compile(&mut self, f: &FlowFile, clean_read: bool) -> Option<Flow> {
        let name = f.flow.value.clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.error(
                "callflow::flow::name",
                f.flow.span,
                format!("`{name}` is not a valid flow name"),
            )
            .label("flow name")
            .help("use letters, digits, `-` and `_`, e.g. `main-line`");
        }
        let timezone = match &f.timezone {
            None => chrono_tz::Tz::UTC,
            Some(tz) => match chrono_tz::Tz::from_str(&tz.value) {
                Ok(t) => t,
                Err(_) => {
                    let hint =
                        did_you_mean(&tz.value, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                            .unwrap_or_else(|| {
                                "use an IANA name such as `Europe/Paris` or `America/New_York`"
                                    .into()
                            });
                    self.error(
                        "callflow::timezone",
                        tz.span,
                        format!("`{}` is not a time zone", tz.value),
                    )
                    .label("unknown time zone")
                    .help(hint);
                    chrono_tz::Tz::UTC
                }
            },
        };

        let calendars = self.calendars(f);
        let cal_names: Vec<String> = calendars.keys().cloned().collect();
        let cal_refs: Vec<&str> = cal_names.iter().map(String::as_str).collect();

        let step_names: Vec<&str> = f.steps.keys().map(|k| k.value.as_str()).collect();
        let ids: IndexMap<&str, StepId> = step_names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, StepId(i as u32)))
            .collect();
        let resolver = Resolver {
            ids: &ids,
            names: &step_names,
        };

        let trigger = self.trigger(&f.trigger, &cal_refs);

        let mut vars = IndexMap::new();
        for (k, v) in &f.vars {
            vars.insert(k.value.clone(), v.value.clone());
        }

        let start = match &f.start {
            Some(s) => self.resolve(&resolver, s, "start"),
            None => {
                let first = step_names.first().copied();
                let at = f.flow.span;
                let help = match first {
                    Some(n) => format!("add `start: {n}` to name the first step"),
                    None => "add `start:` and `steps:`".into(),
                };
                self.error(
                    "callflow::start::missing",
                    Span::new(at.start, at.start),
                    "the flow has no `start`",
                )
                .label("this flow")
                .help(help);
                None
            }
        };

        if f.steps.is_empty() {
            self.error("callflow::step::none", f.flow.span, "the flow has no steps")
                .help("add `steps:` with at least one step");
        }

        let mut steps = Vec::with_capacity(f.steps.len());
        for (name, def) in &f.steps {
            if let Some(step) = self.step(name, def, &resolver, &cal_refs) {
                steps.push(step);
            }
        }

        let mut on_state = IndexMap::new();
        let mut on_error = Vec::new();
        for (key, items) in &f.on {
            let ops = self.handler(items, &resolver, &cal_refs);
            if key.value == "error" {
                on_error = ops;
            } else if STATES.contains(&key.value.as_str()) {
                on_state.insert(key.value.clone(), ops);
            } else {
                let hint = did_you_mean(&key.value, STATES.iter().copied().chain(["error"]))
                    .unwrap_or_else(|| {
                        format!("handlers are `error` or a call state: {}", list(STATES))
                    });
                self.error(
                    "callflow::handler::unknown",
                    key.span,
                    format!("`{}` is not a call state", key.value),
                )
                .label("unknown handler")
                .help(hint);
            }
        }

        let max_steps = f.max_steps.as_ref().map_or(DEFAULT_MAX_STEPS, |m| {
            if m.value == 0 {
                self.error(
                    "callflow::field::type",
                    m.span,
                    "`max_steps` must be at least 1",
                );
            }
            m.value
        });

        if clean_read && let Some(start) = start {
            self.reachability(f, &ids, start);
        }

        let start = start?;
        if steps.len() != f.steps.len() {
            return None;
        }
        Some(Flow {
            name,
            description: f.description.clone(),
            source: Arc::clone(&self.file),
            timezone,
            trigger: trigger?,
            calendars: Arc::new(calendars),
            vars,
            start,
            steps,
            max_steps,
            on_state,
            on_error,
        })
    }

    fn calendars(&mut self, f: &FlowFile) -> IndexMap<String, Calendar> {
        let mut out = IndexMap::new();
        for (name, cal) in &f.calendars {
            let mut parsed = Calendar::default();
            for h in &cal.value.hours {
                match calendar::parse_period(&h.value) {
                    Ok(p) => parsed.hours.push(p),
                    Err(msg) => {
                        self.error("callflow::calendar::spec", h.span, msg)
                            .label("opening hours")
                            .help(
                                "write days then hours: `mon-fri 09:00-12:30`, `sat 10:00-12:00`",
                            );
                    }
                }
            }
            for c in &cal.value.closed {
                match calendar::parse_closed(&c.value) {
                    Ok(r) => parsed.closed.push(r),
                    Err(msg) => {
                        self.error("callflow::calendar::spec", c.span, msg)
                            .label("closed day")
                            .help("write a date `2026-12-25` or a range `2026-12-24..2026-12-26`");
                    }
                }
            }
            out.insert(name.value.clone(), parsed);
        }
        out
    }

    fn trigger(&mut self, t: &Spanned<model::Trigger>, cals: &[&str]) -> Option<Trigger> {
        Some(match &t.value {
            model::Trigger::IncomingCall(ic) => {
                let to = self.patterns(ic.to.as_ref());
                let from = self.patterns(ic.from.as_ref());
                let when = ic.when.as_ref().and_then(|w| self.condition(w, cals));
                Trigger::IncomingCall { to, from, when }
            }
            model::Trigger::StateChange(sc) => {
                let mut states = Vec::new();
                for s in sc.state.iter().flat_map(OneOrMany::as_slice) {
                    self.state_name(s);
                    states.push(s.value.clone());
                }
                let when = sc.when.as_ref().and_then(|w| self.condition(w, cals));
                Trigger::StateChange { states, when }
            }
            model::Trigger::Api(api) => {
                let mut params = IndexMap::new();
                for (name, p) in &api.params {
                    let default = p.value.default.as_ref().map(|d| d.value.clone());
                    if let Some(d) = &p.value.default {
                        let ok = match p.value.kind.value {
                            model::ParamType::String => d.value.is_string(),
                            model::ParamType::Phone => {
                                d.value.as_str().is_some_and(|s| e164_problem(s).is_none())
                            }
                            model::ParamType::Integer => d.value.is_i64(),
                            model::ParamType::Bool => d.value.is_boolean(),
                        };
                        if !ok {
                            self.error(
                                "callflow::field::type",
                                d.span,
                                format!(
                                    "the default does not fit the type `{:?}`",
                                    p.value.kind.value
                                )
                                .to_lowercase(),
                            )
                            .label("default value");
                        }
                    }
                    params.insert(
                        name.value.clone(),
                        Param {
                            kind: p.value.kind.value,
                            required: p.value.required.unwrap_or(default.is_none()),
                            default,
                        },
                    );
                }
                Trigger::Api { params }
            }
        })
    }

    fn patterns(&mut self, p: Option<&OneOrMany<Text>>) -> Vec<Pattern> {
        let mut out = Vec::new();
        for t in p.iter().flat_map(|p| p.as_slice()) {
            let looks_phone = t.value.starts_with('+')
                || t.value.chars().next().is_some_and(|c| c.is_ascii_digit());
            if looks_phone && !t.value.contains(['*', '?']) {
                self.phone(t);
            }
            out.push(Pattern {
                text: t.value.clone(),
                span: t.span,
            });
        }
        out
    }

    fn state_name(&mut self, s: &Text) {
        if !STATES.contains(&s.value.as_str()) {
            let hint = did_you_mean(&s.value, STATES.iter().copied())
                .unwrap_or_else(|| format!("the states are {}", list(STATES)));
            self.error(
                "callflow::state::unknown",
                s.span,
                format!("`{}` is not a call state", s.value),
            )
            .label("unknown state")
            .help(hint);
        }
    }

    fn resolve(&mut self, r: &Resolver<'_>, name: &Text, what: &str) -> Option<StepId> {
        match r.ids.get(name.value.as_str()) {
            Some(id) => Some(*id),
            None => {
                let hint = did_you_mean(&name.value, r.names.iter().copied())
                    .unwrap_or_else(|| format!("the steps are {}", list(r.names)));
                self.error(
                    "callflow::step::unknown",
                    name.span,
                    format!("`{what}` names `{}`, which is not a step", name.value),
                )
                .label("no such step")
                .help(hint);
                None
            }
        }
    }

    fn step(
        &mut self,
        name: &Text,
        def: &Spanned<StepDef>,
        r: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Step> {
        let d = &def.value;
        let present: Vec<(&'static str, Span)> = [
            ("answer", d.answer.as_ref().map(|a| a.span)),
            ("reject", d.reject.as_ref().map(|a| a.span)),
            ("redirect", d.redirect.as_ref().map(|a| a.span)),
            ("transfer", d.transfer.as_ref().map(|a| a.span)),
            (
                "consultative_transfer",
                d.consultative_transfer.as_ref().map(|a| a.span),
            ),
            ("join_meeting", d.join_meeting.as_ref().map(|a| a.span)),
            ("call", d.call.as_ref().map(|a| a.span)),
            ("play", d.play.as_ref().map(|a| a.span)),
            ("menu", d.menu.as_ref().map(|a| a.span)),
            ("switch", d.switch.as_ref().map(|a| a.span)),
            ("set", d.set.as_ref().map(|a| a.span)),
            ("log", d.log.as_ref().map(|a| a.span)),
            ("hangup", d.hangup.as_ref().map(|a| a.span)),
            ("wait", d.wait.as_ref().map(|a| a.span)),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        match present.as_slice() {
            [] => {
                self.error(
                    "callflow::step::no_action",
                    name.span,
                    format!("step `{}` has no action", name.value),
                )
                .label("this step does nothing")
                .help("give it one action: answer, menu, transfer, play, hangup, …");
                return None;
            }
            [_] => {}
            [(first, first_span), (second, second_span), ..] => {
                self.error(
                    "callflow::step::two_actions",
                    *second_span,
                    format!("step `{}` has two actions, `{first}` and `{second}`", name.value),
                )
                .label(format!("second action, `{second}`"))
                .related(*first_span, format!("first action, `{first}`"))
                .help(format!(
                    "a step does one thing: move `{second}` to a step of its own and link it with `next`"
                ));
                return None;
            }
        }
        let kind = present[0].0;
        let allowed = outcomes(kind);
        let link = |cx: &mut Cx, field: &'static str, v: &Option<Text>| -> Option<StepId> {
            let t = v.as_ref()?;
            if !allowed.contains(&field) {
                let help = if allowed.is_empty() {
                    format!("`{kind}` ends the run; remove `{field}`")
                } else {
                    format!("`{kind}` can lead on with {}", list(allowed))
                };
                cx.error(
                    "callflow::outcome::impossible",
                    t.span,
                    format!("`{kind}` never produces `{field}`"),
                )
                .label(format!("`{field}` cannot happen after `{kind}`"))
                .help(help);
                return None;
            }
            cx.resolve(r, t, field)
        };
        let next = link(self, "next", &d.next);
        let on_failure = link(self, "on_failure", &d.on_failure);
        let on_timeout = link(self, "on_timeout", &d.on_timeout);
        let on_invalid = link(self, "on_invalid", &d.on_invalid);
        let action = self.action(d, r, cals)?;
        Some(Step {
            name: name.value.clone(),
            span: name.span,
            action,
            next,
            on_failure,
            on_timeout,
            on_invalid,
        })
    }

    fn action(&mut self, d: &StepDef, r: &Resolver<'_>, cals: &[&str]) -> Option<Action> {
        if let Some(a) = &d.answer {
            let prefetch = a
                .value
                .prefetch
                .iter()
                .filter_map(|p| self.template(p, cals))
                .collect();
            return Some(Action::Answer { prefetch });
        }
        if let Some(a) = &d.reject {
            return Some(Action::Reject {
                reason: a.value.reason.as_ref().map(|r| r.value).unwrap_or_default(),
            });
        }
        if let Some(a) = &d.redirect {
            let targets: Vec<Target> = a
                .value
                .to
                .as_slice()
                .iter()
                .filter_map(|t| self.target(t, cals))
                .collect();
            if a.value.to.as_slice().len() > 25 {
                self.error(
                    "callflow::target::too_many",
                    a.span,
                    "Graph redirects to at most 25 targets",
                );
            }
            let timeout = self.duration_in(a.value.timeout.as_ref(), 30, Some((15, 90)))?;
            return (targets.len() == a.value.to.as_slice().len())
                .then_some(Action::Redirect { targets, timeout });
        }
        if let Some(a) = &d.transfer {
            let to = self.target(&a.value.to, cals);
            let transferee = a.value.transferee.as_ref().and_then(|t| {
                let participant_id = self.template(&t.value.participant_id, cals)?;
                let identity = if t.value.user.is_some() || t.value.phone.is_some() {
                    let as_target = TargetDef {
                        user: t.value.user.clone(),
                        tenant: t.value.tenant.clone(),
                        phone: t.value.phone.clone(),
                        display_name: t.value.display_name.clone(),
                    };
                    Some(self.target(&Spanned::new(t.span, as_target), cals)?)
                } else {
                    None
                };
                Some(Transferee {
                    participant_id,
                    identity,
                })
            });
            let client_context = a.value.client_context.as_ref().and_then(|c| {
                if c.value.len() > 256 {
                    self.error(
                        "callflow::field::type",
                        c.span,
                        "`client_context` is longer than 256 characters, Graph's limit",
                    );
                }
                self.template(c, cals)
            });
            let timeout = self.duration_in(a.value.timeout.as_ref(), 60, None)?;
            return Some(Action::Transfer {
                to: to?,
                transferee,
                client_context,
                timeout,
            });
        }
        if let Some(a) = &d.consultative_transfer {
            let to = self.target(&a.value.to, cals);
            let announce = a
                .value
                .announce
                .as_ref()
                .and_then(|p| self.template(p, cals));
            let timeout = self.duration_in(a.value.timeout.as_ref(), 30, None)?;
            return Some(Action::ConsultativeTransfer {
                to: to?,
                announce,
                timeout,
            });
        }
        if let Some(a) = &d.join_meeting {
            let j = &a.value;
            let tenant = j.tenant.as_ref().and_then(|t| self.template(t, cals));
            let timeout = self.duration_in(j.timeout.as_ref(), 30, None)?;
            let meeting = match (&j.join_meeting_id, &j.thread_id) {
                (Some(id), None) => {
                    if id.value.chars().any(|c| !c.is_ascii_digit() && c != ' ')
                        && !id.value.contains("${")
                    {
                        self.error(
                            "callflow::meeting::id",
                            id.span,
                            format!("`{}` is not a meeting id", id.value),
                        )
                        .label("expected digits")
                        .help("copy the numeric Meeting ID from the invitation, e.g. `1234567890`");
                    }
                    Meeting::JoinId {
                        join_meeting_id: self.template(id, cals)?,
                        passcode: j.passcode.as_ref().and_then(|p| self.template(p, cals)),
                    }
                }
                (None, Some(thread)) => {
                    let (Some(msg), Some(org)) = (&j.message_id, &j.organizer) else {
                        self.error(
                            "callflow::meeting::incomplete",
                            a.span,
                            "joining by thread needs `thread_id`, `message_id` and `organizer`",
                        )
                        .help("add the missing fields, or join by `join_meeting_id`");
                        return None;
                    };
                    Meeting::Thread {
                        thread_id: self.template(thread, cals)?,
                        message_id: self.template(msg, cals)?,
                        organizer: self.template(org, cals)?,
                    }
                }
                (Some(_), Some(thread)) => {
                    self.error(
                        "callflow::meeting::both",
                        thread.span,
                        "give `join_meeting_id` or `thread_id`, not both",
                    )
                    .label("second way to name the meeting");
                    return None;
                }
                (None, None) => {
                    self.error("callflow::meeting::incomplete", a.span, "`join_meeting` names no meeting")
                        .help("give `join_meeting_id` (and `passcode`), or `thread_id`, `message_id` and `organizer`");
                    return None;
                }
            };
            return Some(Action::JoinMeeting {
                meeting,
                tenant,
                timeout,
            });
        }
        if let Some(a) = &d.call {
            let defs = a.value.to.as_slice();
            let targets: Vec<Target> = defs.iter().filter_map(|t| self.target(t, cals)).collect();
            if defs.len() > 5 {
                self.error(
                    "callflow::target::too_many",
                    a.span,
                    "a group call invites at most 5 users",
                );
            }
            let subject = a
                .value
                .subject
                .as_ref()
                .and_then(|s| self.template(s, cals));
            let timeout = self.duration_in(a.value.timeout.as_ref(), 30, None)?;
            return (targets.len() == defs.len()).then_some(Action::Call {
                targets,
                subject,
                timeout,
            });
        }
        if let Some(a) = &d.play {
            return Some(Action::Play {
                prompt: self.prompt(&a.value.prompt, cals)?,
            });
        }
        if let Some(a) = &d.menu {
            let m = &a.value;
            let prompt = self.prompt(&m.prompt, cals);
            let mut choices = Vec::new();
            for (key, step) in &m.choices {
                let mut chars = key.value.chars();
                let digit = match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
                    _ => {
                        self.error(
                            "callflow::menu::key",
                            key.span,
                            format!("`{}` is not a key of a phone keypad", key.value),
                        )
                        .label("menu key")
                        .help("use one of 0-9, * or #");
                        None
                    }
                };
                let id = self.resolve(r, step, &format!("menu key {}", key.value));
                if let (Some(d), Some(id)) = (digit, id) {
                    choices.push((d, id));
                }
            }
            if m.choices.is_empty() {
                self.error("callflow::menu::empty", a.span, "the menu offers no choice")
                    .help("add `choices: {\"1\": some_step}`");
            }
            let timeout = self.duration_in(m.timeout.as_ref(), 10, None)?;
            let invalid_prompt = m.invalid_prompt.as_ref().and_then(|p| self.prompt(p, cals));
            return Some(Action::Menu {
                prompt: prompt?,
                choices,
                timeout,
                retries: m.retries.as_ref().map_or(0, |r| r.value),
                invalid_prompt,
            })
            .filter(|_| m.choices.len() == m.choices.len());
        }
        if let Some(cases) = &d.switch {
            let mut out = Vec::new();
            let n = cases.value.len();
            let mut ok = true;
            for (i, c) in cases.value.iter().enumerate() {
                let when = match &c.value.when {
                    Some(w) => match self.condition(w, cals) {
                        Some(e) => Some(e),
                        None => {
                            ok = false;
                            None
                        }
                    },
                    None => {
                        if i + 1 < n {
                            self.warning(
                                "callflow::switch::unreachable_case",
                                c.span,
                                "this case always holds, so the cases after it never run",
                            )
                            .label("case without `when`")
                            .help("move it last, as the default");
                        }
                        None
                    }
                };
                match self.resolve(r, &c.value.goto, "goto") {
                    Some(id) => out.push((when, id)),
                    None => ok = false,
                }
            }
            if cases.value.last().is_some_and(|c| c.value.when.is_some()) {
                self.warning(
                    "callflow::switch::no_default",
                    cases.span,
                    "no case is the default; when none holds, the run fails",
                )
                .label("every case has `when`")
                .help("add a last case with only `goto`");
            }
            return ok.then_some(Action::Switch { cases: out });
        }
        if let Some(s) = &d.set {
            let assignments = self.assignments(s, cals)?;
            return Some(Action::Set { assignments });
        }
        if let Some(l) = &d.log {
            return Some(Action::Log {
                text: self.template(l, cals)?,
            });
        }
        if d.hangup.is_some() {
            return Some(Action::Hangup);
        }
        if let Some(w) = &d.wait {
            if let Some(s) = &w.value.state {
                self.state_name(s);
            }
            let timeout = self.duration(&w.value.timeout, None)?;
            return Some(Action::Wait {
                state: w.value.state.as_ref().map(|s| s.value.clone()),
                timeout,
            });
        }
        None
    }

    fn assignments(
        &mut self,
        s: &Spanned<IndexMap<Text, Text>>,
        cals: &[&str],
    ) -> Option<Vec<(String, Expr)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in &s.value {
            if !k
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                || k.value.starts_with(|c: char| c.is_ascii_digit())
            {
                self.error(
                    "callflow::set::name",
                    k.span,
                    format!("`{}` is not a variable name", k.value),
                )
                .help("use letters, digits and `_`; read it back as `vars.NAME`");
                ok = false;
            }
            match self.expression(&v.value, v.span, 0, cals) {
                Some(e) => out.push((k.value.clone(), e)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn handler(
        &mut self,
        items: &Spanned<Vec<Spanned<model::HandlerItem>>>,
        r: &Resolver<'_>,
        cals: &[&str],
    ) -> Vec<HandlerOp> {
        let mut ops = Vec::new();
        for item in &items.value {
            let i = &item.value;
            let count = [
                i.log.is_some(),
                i.set.is_some(),
                i.goto.is_some(),
                i.hangup.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if count != 1 {
                self.error(
                    "callflow::handler::item",
                    item.span,
                    "each handler item does one thing: `log`, `set`, `goto` or `hangup`",
                )
                .label(if count == 0 {
                    "nothing to do"
                } else {
                    "more than one thing"
                })
                .help("write one item per line: `- log: \"…\"`, `- goto: operator`");
                continue;
            }
            if let Some(l) = &i.log {
                if let Some(t) = self.template(l, cals) {
                    ops.push(HandlerOp::Log(t));
                }
            } else if let Some(s) = &i.set {
                if let Some(a) = self.assignments(s, cals) {
                    ops.push(HandlerOp::Set(a));
                }
            } else if let Some(g) = &i.goto {
                if let Some(id) = self.resolve(r, g, "goto") {
                    ops.push(HandlerOp::Goto(id));
                }
            } else {
                ops.push(HandlerOp::Hangup);
            }
        }
        ops
    }

    fn reachability(&mut self, f: &FlowFile, ids: &IndexMap<&str, StepId>, start: StepId) {
        let names: Vec<&str> = ids.keys().copied().collect();
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        let idx = |t: &Text| ids.get(t.value.as_str()).map(|i| i.index());
        for (i, (_, def)) in f.steps.iter().enumerate() {
            let d = &def.value;
            let mut targets: Vec<&Text> = [&d.next, &d.on_failure, &d.on_timeout, &d.on_invalid]
                .into_iter()
                .flatten()
                .collect();
            if let Some(m) = &d.menu {
                targets.extend(m.value.choices.values());
            }
            if let Some(s) = &d.switch {
                targets.extend(s.value.iter().map(|c| &c.value.goto));
            }
            edges[i].extend(targets.into_iter().filter_map(idx));
        }
        let mut seen = vec![false; names.len()];
        let mut queue: VecDeque<usize> = VecDeque::from([start.index()]);
        for items in f.on.values() {
            for item in &items.value {
                if let Some(g) = item.value.goto.as_ref().and_then(idx) {
                    queue.push_back(g);
                }
            }
        }
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            queue.extend(edges[i].iter().copied());
        }
        let unreachable: BTreeSet<usize> = (0..names.len()).filter(|i| !seen[*i]).collect();
        for (i, (name, _)) in f.steps.iter().enumerate() {
            if unreachable.contains(&i) {
                self.warning(
                    "callflow::step::unreachable",
                    name.span,
                    format!("step `{}` is never reached", name.value),
                )
                .label("no step leads here")
                .help(format!(
                    "link it from another step, or remove it (the run starts at `{}`)",
                    names[start.index()]
                ));
            }
        }
    }

    // ------------------------------------------------------------ values

    fn target(&mut self, t: &Spanned<TargetDef>, cals: &[&str]) -> Option<Target> {
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
                    self.warning(
                        "callflow::target::tenant",
                        t.span,
                        "`tenant` is ignored for a phone number",
                    );
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

    fn phone(&mut self, t: &Text) {
        if t.value.contains("${") {
            return;
        }
        if let Some(help) = e164_problem(&t.value) {
            self.error(
                "callflow::phone::e164",
                t.span,
                format!("`{}` is not an E.164 phone number", t.value),
            )
            .label("not E.164")
            .help(help);
        }
    }

    fn duration_in(
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

    fn duration(&mut self, t: &Text, range: Option<(u64, u64)>) -> Option<Duration> {
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
                        format!("`{text}` is out of range"),
                    )
                    .label("duration")
                    .help(format!("Graph accepts {lo}s to {hi}s here"));
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
                self.error(
                    "callflow::duration",
                    t.span,
                    format!("`{text}` is not a duration"),
                )
                .label("bad duration")
                .help(help);
                None
            }
        }
    }

    fn prompt(&mut self, t: &Text, cals: &[&str]) -> Option<Template> {
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

    fn condition(&mut self, t: &Text, cals: &[&str]) -> Option<Expr> {
        self.expression(&t.value, t.span, 0, cals)
    }

    /// Compiles the expression `source`, which starts `offset` bytes into
    /// the value of the scalar at `span`.
    fn expression(
        &mut self,
        source: &str,
        span: Span,
        offset: usize,
        cals: &[&str],
    ) -> Option<Expr> {
        let base = value_start(&self.file.text, span, source, offset);
        let at = |o: usize, len: usize| Span::new(base + o, base + o + len.max(1));
        match expr::compile(source, cals) {
            Ok(ast) => Some(Expr {
                source: source.to_owned(),
                span: Span::new(base, base + source.len()),
                ast,
            }),
            Err(problems) => {
                for p in problems {
                    match p.kind {
                        CompileProblemKind::Syntax(msg) => {
                            self.error("callflow::expr::syntax", at(p.offset, p.len), format!("this expression does not parse: {msg}"))
                                .label("here")
                                .help("expressions are rhai: `call.from.phone == \"+441234\" && open(\"office\")`");
                        }
                        CompileProblemKind::UnknownVariable(name) => {
                            let hint = did_you_mean(&name, expr::ROOTS.iter().copied())
                                .unwrap_or_else(|| {
                                    format!("expressions start from {}", list(expr::ROOTS))
                                });
                            self.error(
                                "callflow::expr::unknown_var",
                                at(p.offset, name.len()),
                                format!("`{name}` is not defined"),
                            )
                            .label("unknown variable")
                            .help(hint);
                        }
                        CompileProblemKind::UnknownFunction(name) => {
                            let hint = did_you_mean(&name, expr::HELPERS.iter().copied())
                                .unwrap_or_else(|| {
                                    format!("callflow adds {}", list(expr::HELPERS))
                                });
                            self.error(
                                "callflow::expr::unknown_fn",
                                at(p.offset, name.len()),
                                format!("`{name}` is not a function"),
                            )
                            .label("unknown function")
                            .help(hint);
                        }
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
                    }
                }
                None
            }
        }
    }

    fn template(&mut self, t: &Text, cals: &[&str]) -> Option<Template> {
        let s = &t.value;
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
                let base = value_start(&self.file.text, t.span, s, open);
                self.error(
                    "callflow::expr::syntax",
                    Span::new(base, base + 2),
                    "`${` is never closed",
                )
                .label("opened here")
                .help("close it with `}`, e.g. `${vars.name}`");
                return None;
            };
            let body = &s[body_start..body_start + close];
            match self.expression(body, t.span, body_start, cals) {
                Some(e) => parts.push(TemplatePart::Expr(e)),
                None => ok = false,
            }
            rest = body_start + close + 1;
        }
        if rest < s.len() {
            parts.push(TemplatePart::Text(s[rest..].to_owned()));
        }
        ok.then(|| Template {
            source: s.clone(),
            parts,
        })
    }
}

/// A diagnostic just recorded, to add a label, a help or a related place to.
struct Pushed<'a>(&'a mut Diagnostic);

impl Pushed<'_> {
    fn label(self, label: impl Into<String>) -> Self {
        self.0.label = label.into();
        self
    }
    fn help(self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }
    fn related(self, span: Span, label: impl Into<String>) -> Self {
        self.0.related.push(super::diagnostic::Related {
            span,
            label: label.into(),
        });
        self
    }
}

struct Resolver<'a> {
    ids: &'a IndexMap<&'a str, StepId>,
    names: &'a [&'a str],
}

/// The offset of the closing `}` of a `${`, counting nested braces and skipping strings.
fn find_close(s: &str) -> Option<usize> {
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

/// The file offset of byte `offset` of a scalar's value, given the scalar's span.
fn value_start(text: &str, span: Span, value: &str, offset: usize) -> usize {
    let raw = text.get(span.start..span.end).unwrap_or_default();
    let inner = if raw.starts_with(['"', '\'']) { 1 } else { 0 };
    let prefix = &value[..offset.min(value.len())];
    let rest = &value[offset.min(value.len())..];
    if raw.get(inner..).is_some_and(|r| r.starts_with(value)) {
        return span.start + inner + offset;
    }
    let probe = rest.get(..rest.len().min(24)).unwrap_or(rest);
    if !probe.is_empty()
        && let Some(i) = raw.find(probe)
    {
        return span.start + i;
    }
    span.start + inner + prefix.len().min(raw.len().saturating_sub(inner))
}

/// Why `s` is not an E.164 number, as a hint; `None` when it is one.
pub fn e164_problem(s: &str) -> Option<String> {
    let digits = s.strip_prefix('+');
    let ok = digits.is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    });
    if ok {
        return None;
    }
    let fixed: String = s
        .chars()
        .map(|c| if c == 'O' || c == 'o' { '0' } else { c })
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    Some(if s.contains(['O', 'o']) {
        format!("the letter O is not the digit 0: did you mean `{fixed}`?")
    } else if s.contains([' ', '-', '(', ')', '.']) {
        format!("write it without spaces or punctuation: `{fixed}`")
    } else if !s.starts_with('+') {
        "start with `+` and the country code, e.g. `+14255550100`".into()
    } else {
        "E.164 is `+`, a country code, then the number: 7 to 15 digits, e.g. `+14255550100`".into()
    })
}

/// The outcomes each action can produce.
pub fn outcomes(kind: &str) -> &'static [&'static str] {
    match kind {
        "answer" | "join_meeting" | "play" => &["next", "on_failure"],
        "reject" | "hangup" => &[],
        "redirect" => &["on_failure"],
        "transfer" | "consultative_transfer" | "call" => &["next", "on_failure", "on_timeout"],
        "menu" => &["on_timeout", "on_invalid", "on_failure"],
        "switch" => &[],
        "set" | "log" => &["next"],
        "wait" => &["next", "on_timeout"],
        _ => &[],
    }
}

fn type_help(expected: &str) -> String {
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
fn remove_entry(node: &mut Node, span: Span) -> Option<(Span, String)> {
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

fn contains(outer: Span, inner: Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && !(outer.is_empty() && inner != outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Option<Flow>, Vec<Diagnostic>) {
        check(
            &Arc::new(SourceFile::new("t.yaml", text)),
            Budget::default(),
        )
    }

    #[test]
    fn the_reception_flow_loads_clean() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flows/reception.yaml"))
                .expect("bundled flow");
        let (flow, diags) = load(&text);
        for d in &diags {
            eprintln!("{}", d.render(100));
        }
        assert!(diags.is_empty());
        let flow = flow.expect("flow");
        assert_eq!(flow.steps.len(), 9);
        assert_eq!(flow.step(flow.start).name, "greet");
    }

    #[test]
    fn collects_errors_in_several_steps() {
        let text = "flow: x\ntrigger: { api: {} }\nstart: a\nsteps:\n  a:\n    log: hi\n    nxt: b\n  b:\n    menu: { prompt: https://x/y.wav, choices: {\"1\": a}, retries: two }\n  c:\n    hangup: {}\n    next: a\n";
        let (flow, diags) = load(text);
        assert!(flow.is_none());
        let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                "callflow::field::unknown",
                "callflow::field::type",
                "callflow::outcome::impossible"
            ],
            "{diags:#?}"
        );
    }
}
