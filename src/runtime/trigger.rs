//! Which flow takes a call nobody owns: an incoming call, or a state change
//! (`state_change` flows). Reads flows and evaluates their `when`; starts
//! nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::engine::{Bot, IncomingCall, Leg, LegRole, Session, StateChange, scope};
use crate::flow::load::specificity;
use crate::flow::{Flow, FlowSet, Trigger};

/// The flow for a new incoming call: among the flows whose `incoming_call`
/// trigger takes it, the most specific ([`specificity`]); ties go to the
/// first in the set. A `when` that fails to evaluate counts as not taking it.
pub(super) fn pick_flow(
    set: &FlowSet,
    call: &IncomingCall,
    now: DateTime<Utc>,
) -> Option<Arc<Flow>> {
    type Rank = (u8, u8, u8);
    let mut best: Option<(&Arc<Flow>, Rank)> = None;
    for flow in set.flows.values() {
        match crate::engine::matches_incoming(flow, call, now) {
            Ok(true) => {
                let rank = specificity(&flow.trigger);
                if best.is_none_or(|(_, r)| rank > r) {
                    best = Some((flow, rank));
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(flow = %flow.name, error = %e,
                "the flow's `when` failed on an incoming call; the flow does not take it"),
        }
    }
    best.map(|(f, _)| f.clone())
}

/// The `state_change` flow for a change on a call nobody owns: the first
/// whose states name it (or are any) and whose `when` holds; flows that
/// name states win over those that take any.
pub(super) fn pick_state_flow(
    set: &FlowSet,
    change: &StateChange,
    now: DateTime<Utc>,
) -> Option<Arc<Flow>> {
    let mut best: Option<(&Arc<Flow>, bool)> = None;
    for flow in set.flows.values() {
        let Trigger::StateChange { states, when } = &flow.trigger else {
            continue;
        };
        let named = !states.is_empty();
        if named && !states.iter().any(|s| s == change.state.as_str()) {
            continue;
        }
        if best.is_some_and(|(_, b)| b || !named) {
            continue;
        }
        if let Some(when) = when {
            let mut probe = Session::new(flow, change.call_id.clone(), Bot::default());
            let mut leg = Leg::new("main", LegRole::Main);
            leg.call_id = Some(change.call_id.clone());
            leg.state = Some(change.state.clone());
            leg.direction = change.direction.clone();
            leg.result = change.result.clone();
            probe.legs.push(leg);
            probe.last_event = crate::engine::EventJson::new(&change.raw);
            let input = scope::eval_input(flow, &probe);
            match scope::eval_bool(flow, when, &input, now) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(flow = %flow.name, error = %e,
                        "the flow's `when` failed on a state change; the flow does not take it");
                    continue;
                }
            }
        }
        best = Some((flow, named));
    }
    best.map(|(f, _)| f.clone())
}
