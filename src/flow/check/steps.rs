//! Checking triggers, calendars, steps (one action each, and the outcomes
//! it can produce), transitions, handlers and reachability. Each action's
//! own rules are in its module of [`crate::flow::actions`].

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

    pub(in crate::flow) fn state_name(&mut self, s: &Text) {
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
    pub(in crate::flow) fn resolve(
        &mut self,
        r: &Resolver<'_>,
        name: &Text,
        what: &str,
    ) -> Option<StepId> {
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
        let present = d.actions();
        let kind = match present.as_slice() {
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
            [(kind, _)] => *kind,
            [(first, first_span), (second, second_span), ..] => {
                let (first, second) = (first.name(), second.name());
                let first_span = self.key_span(*first_span, first);
                let second_span = self.key_span(*second_span, second);
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
        };
        let name_of = kind.name();
        let allowed: Vec<&str> = kind.outcomes().iter().map(|o| o.name()).collect();
        let link = |cx: &mut Cx, outcome: OutcomeField, v: &Option<Text>| -> Option<StepId> {
            let t = v.as_ref()?;
            let field = outcome.name();
            if !kind.outcomes().contains(&outcome) {
                let help = if allowed.is_empty() {
                    format!("`{name_of}` ends the run; remove `{field}`")
                } else {
                    format!("`{name_of}` can lead on with {}", list(&allowed))
                };
                let at = cx.key_span(t.span, field);
                cx.error(
                    "callflow::outcome::impossible",
                    at,
                    format!("`{name_of}` never produces `{field}`"),
                )
                .label(format!("`{name_of}` has no `{field}` outcome"))
                .help(help);
                return None;
            }
            cx.resolve(r, t, &format!("`{field}`"))
        };
        let next = link(self, OutcomeField::Next, &d.next);
        let on_failure = link(self, OutcomeField::OnFailure, &d.on_failure);
        let on_timeout = link(self, OutcomeField::OnTimeout, &d.on_timeout);
        let on_invalid = link(self, OutcomeField::OnInvalid, &d.on_invalid);
        let end = d.end.as_ref().and_then(|e| self.end_name(e));
        let action = d.check_action(kind, self, r, cals)?;
        Some(Step {
            name: name.value.clone(),
            span: name.span,
            description: d.description.clone(),
            end,
            action,
            next,
            on_failure,
            on_timeout,
            on_invalid,
        })
    }

    /// Checks a step's `end:` (a named outcome): letters, digits and `_`,
    /// not starting with a digit, and not one of the outcomes every run
    /// has; reports `callflow::end::name` if not.
    fn end_name(&mut self, e: &Text) -> Option<String> {
        let name = e.value.as_str();
        let word = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if word && !BUILTIN_ENDS.contains(&name) {
            return Some(name.to_owned());
        }
        let fixed: String = name
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        let fixed = fixed.trim_matches('_');
        let fixed = if fixed.is_empty() { "confirmed" } else { fixed };
        if word {
            self.error(
                "callflow::end::name",
                e.span,
                format!("`{name}` is an outcome every run has; a step cannot name it"),
            )
            .label("built-in outcome")
            .help(format!(
                "`{name}` is recorded anyway when the run ends so; name what it means to the \
                 business, e.g. `end: {name}_after_menu`, or remove `end:`"
            ));
        } else {
            self.error(
                "callflow::end::name",
                e.span,
                format!("`{name}` is not an outcome name"),
            )
            .label("outcome name")
            .help(format!(
                "use letters, digits and `_` (it becomes a metrics label and a scenario's `end:`), \
                 e.g. `end: {fixed}`"
            ));
        }
        None
    }

    /// Checks that `k` is a variable name (letters, digits, `_`, not
    /// starting with a digit), reporting `callflow::set::name` if not.
    pub(in crate::flow) fn variable_name(&mut self, k: &Text) -> bool {
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
                format!("use letters, digits and `_`, e.g. `{fixed}`, read back as `vars.{fixed}`")
            });
            return false;
        }
        true
    }

    pub(in crate::flow) fn assignments(
        &mut self,
        s: &Spanned<IndexMap<Text, Text>>,
        cals: &[&str],
    ) -> Option<Vec<(String, Expr)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in &s.value {
            if !self.variable_name(k) {
                ok = false;
            }
            match self.value(v, cals) {
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
            targets.extend(d.branch_names());
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
