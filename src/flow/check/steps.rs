//! Checking triggers, calendars, steps, their actions, transitions and handlers.

use super::*;

impl Cx {
    pub(super) fn calendars(&mut self, f: &FlowFile) -> IndexMap<String, Calendar> {
        let mut out = IndexMap::new();
        for (name, cal) in &f.calendars {
            let mut parsed = Calendar::default();
            for h in &cal.value.hours {
                match calendar::parse_period(&h.value) {
                    Ok(p) => parsed.hours.push(p),
                    Err(msg) => {
                        let at = self.culprit(h, &msg);
                        let label = culprit_label(&msg, "opening hours");
                        self.error("callflow::calendar::spec", at, msg)
                            .label(label)
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
                        let at = self.culprit(c, &msg);
                        let label = culprit_label(&msg, "closed day");
                        self.error("callflow::calendar::spec", at, msg)
                            .label(label)
                            .help("write a date `2026-12-25` or a range `2026-12-24..2026-12-26`");
                    }
                }
            }
            out.insert(name.value.clone(), parsed);
        }
        out
    }

    pub(super) fn trigger(
        &mut self,
        t: &Spanned<model::Trigger>,
        cals: &[&str],
    ) -> Option<Trigger> {
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

    pub(super) fn patterns(&mut self, p: Option<&OneOrMany<Text>>) -> Vec<Pattern> {
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

    pub(super) fn state_name(&mut self, s: &Text) {
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

    /// The step `name` names; `what` says who names it (`` `next` ``, ``key `1` ``).
    pub(super) fn resolve(&mut self, r: &Resolver<'_>, name: &Text, what: &str) -> Option<StepId> {
        match r.ids.get(name.value.as_str()) {
            Some(id) => Some(*id),
            None => {
                let closest = if self.saturated() {
                    None
                } else {
                    crate::flow::suggest::closest(&name.value, r.names.iter().copied())
                };
                if let Some(c) = closest {
                    self.suggested.push(c.to_owned());
                }
                let hint = match closest {
                    Some(c) => format!("did you mean `{c}`?"),
                    None if r.names.len() <= 8 => format!("the steps are {}", list(r.names)),
                    None => "no step has a similar name; add the step, or name one under `steps:`"
                        .into(),
                };
                self.error(
                    "callflow::step::unknown",
                    name.span,
                    format!("{what} names `{}`, which is not a step", name.value),
                )
                .label("no such step")
                .help(hint);
                None
            }
        }
    }

    pub(super) fn step(
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
            [] if self.removed.iter().any(|(parent, _)| *parent == def.span) => {
                // Its action was dropped for an error already reported.
                return None;
            }
            [] => {
                self.error(
                    "callflow::step::no_action",
                    name.span,
                    format!("step `{}` has no action", name.value),
                )
                .label("this step does nothing")
                .help("give it one action: `answer`, `play`, `menu`, `transfer`, `hangup`, …");
                return None;
            }
            [_] => {}
            [(first, first_span), (second, second_span), ..] => {
                let text = Arc::clone(&self.file.text);
                let first_span = key_before(&text, *first_span, first);
                let second_span = key_before(&text, *second_span, second);
                self.error(
                    "callflow::step::two_actions",
                    second_span,
                    format!("step `{}` has two actions, `{first}` and `{second}`", name.value),
                )
                .label(format!("second action, `{second}`"))
                .related(first_span, format!("first action, `{first}`"))
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
                let at = key_before(&cx.file.text.clone(), t.span, field);
                cx.error(
                    "callflow::outcome::impossible",
                    at,
                    format!("`{kind}` never produces `{field}`"),
                )
                .label(format!("`{kind}` has no `{field}` outcome"))
                .help(help);
                return None;
            }
            cx.resolve(r, t, &format!("`{field}`"))
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

    pub(super) fn action(
        &mut self,
        d: &StepDef,
        r: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Action> {
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
                let at = key_before(&self.file.text.clone(), a.span, "redirect");
                self.error(
                    "callflow::target::too_many",
                    at,
                    format!(
                        "this redirect has {} targets; Graph redirects to at most 25",
                        a.value.to.as_slice().len()
                    ),
                )
                .label("too many targets")
                .help("keep 25 targets, or redirect to a call queue");
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
                    )
                    .label("too long")
                    .help("keep it short: an id, e.g. `${call.id}`");
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
                        let at = key_before(&self.file.text.clone(), a.span, "join_meeting");
                        self.error(
                            "callflow::meeting::incomplete",
                            at,
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
                    let at = key_before(&self.file.text.clone(), thread.span, "thread_id");
                    self.error(
                        "callflow::meeting::both",
                        at,
                        "give `join_meeting_id` or `thread_id`, not both",
                    )
                    .label("second way to name the meeting")
                    .help("keep `join_meeting_id` (with `passcode`), or `thread_id` with `message_id` and `organizer`");
                    return None;
                }
                (None, None) => {
                    let at = key_before(&self.file.text.clone(), a.span, "join_meeting");
                    self.error("callflow::meeting::incomplete", at, "`join_meeting` names no meeting")
                        .label("which meeting?")
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
                let at = key_before(&self.file.text.clone(), a.span, "call");
                self.error(
                    "callflow::target::too_many",
                    at,
                    format!(
                        "this call invites {} targets; a group call invites at most 5",
                        defs.len()
                    ),
                )
                .label("too many targets")
                .help("call at most 5, or place several calls");
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
                        .help("a key is one of `0` to `9`, `*` or `#`");
                        None
                    }
                };
                let id = self.resolve(r, step, &format!("key `{}`", key.value));
                if let (Some(d), Some(id)) = (digit, id) {
                    choices.push((d, id));
                }
            }
            if m.choices.is_empty() {
                let at = key_before(&self.file.text.clone(), a.span, "menu");
                self.error("callflow::menu::empty", at, "the menu offers no choice")
                    .label("no `choices`")
                    .help("add `choices: {\"1\": some_step}`");
            }
            let timeout = self.duration_in(m.timeout.as_ref(), 10, None)?;
            let invalid_prompt = m.invalid_prompt.as_ref().and_then(|p| self.prompt(p, cals));
            if choices.len() != m.choices.len() {
                return None;
            }
            return Some(Action::Menu {
                prompt: prompt?,
                choices,
                timeout,
                retries: m.retries.as_ref().map_or(0, |r| r.value),
                invalid_prompt,
            });
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
                            let at = key_before(&self.file.text.clone(), c.value.goto.span, "goto");
                            self.warning(
                                "callflow::switch::unreachable_case",
                                at,
                                "this case always holds, so the cases after it never run",
                            )
                            .label("case without `when`")
                            .help("move it last, as the default");
                        }
                        None
                    }
                };
                match self.resolve(r, &c.value.goto, "`goto`") {
                    Some(id) => out.push((when, id)),
                    None => ok = false,
                }
            }
            let has_default = cases.value.iter().any(|c| c.value.when.is_none());
            if let Some(last) = cases.value.last().and_then(|c| c.value.when.as_ref())
                && !has_default
            {
                self.warning(
                    "callflow::switch::no_default",
                    last.span,
                    "no case is the default; when none holds, the run fails",
                )
                .label("the last case has a `when`")
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

    pub(super) fn assignments(
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
                .label("variable name")
                .help({
                    let fixed: String = k
                        .value
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    let fixed = if fixed.starts_with(|c: char| c.is_ascii_digit()) {
                        format!("_{fixed}")
                    } else {
                        fixed
                    };
                    format!(
                        "use letters, digits and `_`, e.g. `{fixed}`, read back as `vars.{fixed}`"
                    )
                });
                ok = false;
            }
            match self.condition(v, cals) {
                Some(e) => out.push((k.value.clone(), e)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn handler(
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
                if let Some(id) = self.resolve(r, g, "`goto`") {
                    ops.push(HandlerOp::Goto(id));
                }
            } else {
                ops.push(HandlerOp::Hangup);
            }
        }
        ops
    }

    pub(super) fn reachability(
        &mut self,
        f: &FlowFile,
        ids: &IndexMap<&str, StepId>,
        start: StepId,
    ) {
        // A link to a step that does not exist leaves the graph broken:
        // which steps it would reach is unknown, so say nothing about them.
        if self
            .diags
            .iter()
            .any(|d| d.code == "callflow::step::unknown")
        {
            return;
        }
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
            if unreachable.contains(&i) && !self.suggested.contains(&name.value) {
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
}
