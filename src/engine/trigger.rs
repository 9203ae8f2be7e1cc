//! Which incoming calls a flow takes: its `incoming_call` trigger's filters.
//!
//! The runtime picks the flow for a new call with [`matches_incoming`]; the
//! engine itself never chooses flows. Pure: the time comes in as an argument.

use chrono::{DateTime, Utc};

use crate::flow::expr::EvalError;
use crate::flow::{Flow, Pattern, Trigger};

use super::event::{IncomingCall, Party};
use super::scope;
use super::session::{Bot, Session};

fn party_matches(patterns: &[Pattern], party: &Party) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| party.ids().any(|id| p.matches(id)))
}

/// Whether `flow` takes the incoming call `call` at `now`: it has an
/// `incoming_call` trigger whose `to`, `from` and `when` all hold.
pub fn matches_incoming(
    flow: &Flow,
    call: &IncomingCall,
    now: DateTime<Utc>,
) -> Result<bool, EvalError> {
    let Trigger::IncomingCall { to, from, when } = &flow.trigger else {
        return Ok(false);
    };
    if !party_matches(to, &call.to) || !party_matches(from, &call.from) {
        return Ok(false);
    }
    let Some(when) = when else {
        return Ok(true);
    };
    let mut probe = Session::new(flow, call.call_id.clone(), Bot::default());
    let mut leg = super::session::Leg::new("main", super::session::LegRole::Main);
    leg.call_id = Some(call.call_id.clone());
    leg.state = Some(crate::graph::wire::CallState::Incoming);
    leg.from = call.from.clone();
    leg.to = call.to.clone();
    probe.add_leg(leg, false);
    probe.last_event = super::session::EventJson::new(&call.raw);
    let input = scope::eval_input(flow, &probe);
    scope::eval_bool(flow, when, &input, now)
}
