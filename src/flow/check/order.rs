//! Steps in an impossible order: every path from `start` is walked over
//! (step, phase of the main call), with what each action needs of the call
//! and does to it declared on the action ([`ActionType::RUNS_IN`],
//! `phase_after`). A step reached in a phase its action cannot run in
//! (`reject` after `answer`, `play` before it, `transfer` in an `api` flow
//! before any `call`) is an error at the step, naming the path that leads
//! there.
//!
//! [`ActionType::RUNS_IN`]: crate::flow::actions::ActionType::RUNS_IN

use std::collections::HashMap;

use super::*;
use crate::flow::actions::CallPhase;

/// Most step names shown in a path; a longer one keeps its two ends.
const PATH_SHOWN: usize = 8;

impl Cx {
    /// Reports each step that some path from `start` reaches in a phase of
    /// the call its action cannot run in, once per step, with the shortest
    /// such path.
    pub(super) fn order(&mut self, steps: &[Step], start: StepId, initial: CallPhase) {
        type Node = (StepId, CallPhase);
        let mut parent: HashMap<Node, Option<Node>> = HashMap::new();
        let mut queue: VecDeque<Node> = VecDeque::new();
        parent.insert((start, initial), None);
        queue.push_back((start, initial));
        let mut reported: BTreeSet<StepId> = BTreeSet::new();
        while let Some(node @ (id, phase)) = queue.pop_front() {
            let step = &steps[id.index()];
            let kind = step.action.action_kind();
            if phase != CallPhase::Unknown && !kind.runs_in().contains(&phase) {
                if reported.insert(id) {
                    self.impossible_order(steps, &parent, node);
                }
                continue;
            }
            let outcomes = kind
                .outcomes()
                .iter()
                .filter_map(|o| step.outcome(*o).map(|to| (to, Some(*o))));
            let branches = step.action.branches().into_iter().map(|b| (b.to, None));
            for (to, outcome) in outcomes.chain(branches) {
                let next = (to, step.action.phase_after(phase, outcome));
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(next) {
                    e.insert(Some(node));
                    queue.push_back(next);
                }
            }
        }
    }

    fn impossible_order(
        &mut self,
        steps: &[Step],
        parent: &HashMap<(StepId, CallPhase), Option<(StepId, CallPhase)>>,
        node: (StepId, CallPhase),
    ) {
        let mut path = vec![node];
        while let Some(Some(p)) = parent.get(path.last().expect("non-empty")) {
            path.push(*p);
        }
        path.reverse();
        // The step that put the call in this phase: the last one before
        // which the phase was different.
        let cause = path
            .windows(2)
            .rev()
            .find(|w| w[0].1 != w[1].1)
            .map(|w| &steps[w[0].0.index()]);
        let names: Vec<&str> = path
            .iter()
            .map(|(id, _)| steps[id.index()].name.as_str())
            .collect();
        let shown = if names.len() > PATH_SHOWN {
            let head = names[..2].join(" → ");
            let tail = names[names.len() - 3..].join(" → ");
            format!("start → {head} → … → {tail}")
        } else {
            format!("start → {}", names.join(" → "))
        };
        let step = &steps[node.0.index()];
        let kind = step.action.kind();
        let name = &step.name;
        let (message, label, help) = match node.1 {
            CallPhase::Answered => (
                format!("`{kind}` in step `{name}` needs a call that is not answered yet, but on the path {shown} the call is already answered"),
                "the call is already answered here",
                format!("only a ringing call can be rejected or redirected: move `{name}` before the step that answers, or end an answered call with `hangup: {{}}` (or hand it over with `transfer`)"),
            ),
            CallPhase::Unanswered => (
                format!("`{kind}` in step `{name}` needs an answered call, but on the path {shown} the incoming call is not answered yet"),
                "the call is not answered yet here",
                format!("answer it first: a step with `answer: {{}}` before `{name}` on this path (a ringing call can only be answered, rejected or redirected)"),
            ),
            CallPhase::NoCall if kind_takes_incoming(step) => (
                format!("`{kind}` in step `{name}` needs an incoming call, but on the path {shown} there is none: an `api` flow starts without a call"),
                "there is no incoming call here",
                "an `api` flow places its calls with `call`; `answer`, `reject` and `redirect` are for `incoming_call` flows".to_owned(),
            ),
            CallPhase::Ended => (
                format!("`{kind}` in step `{name}` needs a call, but on the path {shown} the call the flow placed has ended (nobody answered)"),
                "the call has ended here",
                format!("after its call ends, an `api` flow goes on only through steps that need no call (`wait` for a time, `switch`, `set`, `log`) until `call` places the next one: put a `call` before `{name}` on this path"),
            ),
            CallPhase::NoCall | CallPhase::Unknown => (
                format!("`{kind}` in step `{name}` needs a call, but on the path {shown} there is no call yet: an `api` flow starts without one"),
                "there is no call yet here",
                format!("place one first: a step with `call` before `{name}` on this path"),
            ),
        };
        let pushed = self
            .error("callflow::step::order", step.span, message)
            .label(label)
            .help(help);
        if let Some(cause) = cause {
            let what = match node.1 {
                CallPhase::Answered => "answered here",
                CallPhase::Ended => "the call this step placed ends unanswered here",
                _ => "the call's state changes here",
            };
            pushed.related(cause.span, what);
        }
    }
}

impl Cx {
    /// Warns about each step whose action can fail in front of a caller
    /// when neither its `on_failure` nor the flow's `on.error` routes the
    /// failure, saying what the caller would live through.
    pub(super) fn unrouted_failures(&mut self, f: &FlowFile) {
        if f.on.keys().any(|k| k.value == "error") {
            return;
        }
        for (name, def) in &f.steps {
            let d = &def.value;
            if d.on_failure.is_some() {
                continue;
            }
            let [(kind, span)] = d.actions()[..] else {
                continue;
            };
            if !kind.outcomes().contains(&OutcomeField::OnFailure) {
                continue;
            }
            let Some(experience) = kind.unrouted_failure() else {
                continue;
            };
            let at = self.key_span(span, kind.name());
            let step = &name.value;
            self.warning(
                "callflow::failure::unrouted",
                at,
                format!("{experience}: step `{step}` has no `on_failure`, and the flow no `on.error`"),
            )
            .label("a failure here is not routed")
            .help(format!(
                "add `on_failure: STEP` to `{step}`, leading to what the caller should get instead (an apology prompt, another number, voicemail), or an `on: {{ error: [...] }}` handler for every step"
            ));
        }
    }
}

/// Whether the step's action acts on an incoming call (answers, rejects or
/// redirects it) rather than on any call.
fn kind_takes_incoming(step: &Step) -> bool {
    step.action
        .action_kind()
        .runs_in()
        .contains(&CallPhase::Unanswered)
        && !step
            .action
            .action_kind()
            .runs_in()
            .contains(&CallPhase::NoCall)
}

#[cfg(test)]
mod tests {
    use crate::flow::load_str;

    /// The `callflow::step::order` messages of `text`.
    fn order(text: &str) -> Vec<String> {
        load_str("t.yaml", text)
            .diagnostics
            .into_iter()
            .filter(|d| d.code == "callflow::step::order")
            .map(|d| d.message)
            .collect()
    }

    const INCOMING: &str =
        "flow: x\ntrigger: { incoming_call: { to: \"+14255550100\" } }\nstart: a\nsteps:\n";

    #[test]
    fn a_redirect_that_fails_then_an_answer_is_a_possible_order() {
        let text = format!(
            "{INCOMING}  a:\n    redirect: {{ to: [{{ phone: \"+14255550111\" }}] }}\n    on_failure: b\n  b:\n    answer: {{}}\n    next: c\n  c:\n    play: {{ prompt: https://x.example/p.wav }}\n    next: d\n  d:\n    hangup: {{}}\n"
        );
        assert_eq!(order(&text), Vec::<String>::new());
    }

    #[test]
    fn a_menu_choice_after_answer_that_rejects_names_its_path() {
        let text = format!(
            "{INCOMING}  a:\n    answer: {{}}\n    next: m\n  m:\n    menu: {{ prompt: https://x.example/m.wav, choices: {{ \"1\": no }} }}\n    on_timeout: bye\n    on_invalid: bye\n  no:\n    reject: {{}}\n  bye:\n    hangup: {{}}\n"
        );
        let found = order(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("start → a → m → no"), "{found:?}");
    }

    #[test]
    fn a_state_change_flow_and_a_handler_goto_are_not_checked() {
        let text = "flow: x\ntrigger: { state_change: { state: established } }\nstart: a\nsteps:\n  a:\n    reject: {}\n";
        assert_eq!(order(text), Vec::<String>::new());
        let text = format!(
            "{INCOMING}  a:\n    answer: {{}}\n    next: b\n  b:\n    hangup: {{}}\n  r:\n    reject: {{}}\non:\n  incoming:\n    - goto: r\n"
        );
        assert_eq!(order(&text), Vec::<String>::new());
    }

    #[test]
    fn a_long_path_keeps_its_ends() {
        let mut text = INCOMING.to_owned();
        text.push_str("  a:\n    answer: {}\n    next: s1\n");
        for i in 1..10 {
            text.push_str(&format!(
                "  s{i}:\n    log: step {i}\n    next: s{}\n",
                i + 1
            ));
        }
        text.push_str("  s10:\n    reject: {}\n");
        let found = order(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("start → a → s1 → … → s8 → s9 → s10"),
            "{found:?}"
        );
    }

    #[test]
    fn an_unrouted_failure_is_warned_about_unless_on_error_routes_it() {
        let codes = |text: &str| -> Vec<&'static str> {
            load_str("t.yaml", text)
                .diagnostics
                .iter()
                .map(|d| d.code)
                .collect()
        };
        let flow = format!(
            "{INCOMING}  a:\n    answer: {{}}\n    next: t\n  t:\n    transfer: {{ to: {{ phone: \"+14255550123\" }} }}\n"
        );
        assert_eq!(codes(&flow), ["callflow::failure::unrouted"]);
        let routed = format!("{flow}on:\n  error:\n    - hangup: {{}}\n");
        assert_eq!(codes(&routed), Vec::<&str>::new());
        let played = format!(
            "{INCOMING}  a:\n    answer: {{}}\n    next: p\n  p:\n    play: {{ prompt: https://x.example/p.wav }}\n"
        );
        assert_eq!(
            codes(&played),
            Vec::<&str>::new(),
            "a prompt declares no unrouted failure"
        );
    }

    #[test]
    fn every_action_states_what_it_needs_of_the_call() {
        use crate::flow::actions::{ActionKind, CallPhase};
        for kind in ActionKind::ALL {
            assert!(!kind.runs_in().is_empty(), "{}", kind.name());
            assert!(
                !kind.runs_in().contains(&CallPhase::Unknown),
                "{}: Unknown is never checked",
                kind.name()
            );
        }
    }
}
