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
