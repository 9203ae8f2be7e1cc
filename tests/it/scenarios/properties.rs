//! Properties of the engine under any order of events, duplicates and
//! hang-ups: it never panics, never sends a request for a call Graph
//! reported terminated, and every run ends with a recorded outcome.

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::Value;

use callflow::engine::{
    self, Bot, CommandId, Event, IncomingCall, OperationUpdate, Party, Session, StateChange,
    TimerId,
};
use callflow::flow::Flow;
use callflow::graph::wire::{CallState, CommsOperation, OperationStatus, ResultInfo};
use callflow::sim::{self, GraphBehaviour, PerAttempt, SimDuration, SimulateOptions, TransferMode};

fn reception() -> Flow {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows/reception.yaml");
    callflow::flow::load_file(&path)
        .flow
        .expect("flows/reception.yaml loads")
}

const CALLS: [&str; 3] = ["c1", "c2", "c3"];

fn state() -> impl Strategy<Value = CallState> {
    prop_oneof![
        Just(CallState::Incoming),
        Just(CallState::Establishing),
        Just(CallState::Established),
        Just(CallState::Hold),
        Just(CallState::Transferring),
        Just(CallState::TransferAccepted),
        Just(CallState::Terminated),
        Just(CallState::Unknown("parked".into())),
    ]
}

fn result() -> impl Strategy<Value = Option<ResultInfo>> {
    prop_oneof![
        Just(None),
        Just(Some(ResultInfo::new(0, 7015))),
        Just(Some(ResultInfo::new(500, 7000))),
        Just(Some(ResultInfo::new(500, 7700))),
        Just(Some(ResultInfo::new(200, 4097))),
    ]
}

fn call() -> impl Strategy<Value = &'static str> {
    prop::sample::select(CALLS.to_vec())
}

/// One event of any kind, about the three calls a reception run can own.
fn event() -> impl Strategy<Value = Event> {
    let status = prop_oneof![
        Just(None),
        Just(Some(OperationStatus::Running)),
        Just(Some(OperationStatus::Completed)),
        Just(Some(OperationStatus::Failed)),
    ];
    prop_oneof![
        4 => (call(), state(), result(), prop::option::of(Just("AppTransferred".to_owned())))
            .prop_map(|(c, s, r, t)| Event::CallState(StateChange {
                call_id: c.into(),
                state: s,
                result: r,
                termination_reason: t,
                direction: None,
                raw: Value::Null,
            })),
        2 => (prop::sample::select(vec!['0', '1', '2', '5', '#']), prop::option::of(0i64..8))
            .prop_map(|(k, q)| Event::Tone { call_id: "c1".into(), key: Some(k), sequence_id: q }),
        2 => (call(), 1u64..40, status.clone()).prop_map(|(c, n, st)| Event::Operation(OperationUpdate {
            call_id: c.into(),
            operation_id: None,
            status: st,
            client_context: Some(format!("c1-{n}")),
            result: None,
            completion_reason: None,
            recording: None,
        })),
        2 => (1u64..40).prop_map(|n| Event::TimerFired { timer: TimerId(n) }),
        2 => (1u64..40, status).prop_map(|(n, st)| Event::Accepted {
            command: CommandId(n),
            operation: Some(CommsOperation { id: format!("op-{n}"), status: st, ..CommsOperation::default() }),
        }),
        1 => (1u64..40).prop_map(|n| Event::RequestFailed {
            command: CommandId(n),
            status: 500,
            code: "InternalServerError".into(),
            message: "boom".into(),
        }),
        1 => (prop::sample::select(vec!["consultation", "consultation-2", "main"]), prop::sample::select(vec!["c2", "c3"]))
            .prop_map(|(t, c)| Event::CallCreated { tag: t.into(), call_id: c.into() }),
        1 => call().prop_map(|c| Event::CallerHungUp { call_id: c.into() }),
    ]
}

/// A script: maybe an incoming call first, then events, some repeated.
fn script() -> impl Strategy<Value = (bool, Vec<(Event, bool)>, i64)> {
    (
        prop::bool::weighted(0.9),
        prop::collection::vec((event(), prop::bool::weighted(0.2)), 0..80),
        0i64..4,
    )
}

fn incoming() -> Event {
    Event::IncomingCall(IncomingCall {
        call_id: "c1".into(),
        from: Party::phone("+33612345678"),
        to: Party::phone("+14255550100"),
        raw: Value::Null,
    })
}

fn is_terminated(e: &Event) -> Option<&str> {
    match e {
        Event::CallState(c) if c.state == CallState::Terminated => Some(&c.call_id),
        Event::CallerHungUp { call_id } => Some(call_id),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_events_is_safe_and_ends_recorded((start, events, step_seconds) in script()) {
        let flow = reception();
        let mut s = Session::new(&flow, "c1", Bot::new("https://bot.contoso.com/api/calls"));
        let t0 = DateTime::parse_from_rfc3339("2026-11-20T10:00:00+01:00").expect("a date").with_timezone(&Utc);
        let mut now: DateTime<Utc> = t0;
        let mut gone: HashSet<String> = HashSet::new();
        let mut script: Vec<Event> = Vec::new();
        if start {
            script.push(incoming());
        }
        for (e, twice) in events {
            if twice {
                script.push(e.clone());
            }
            script.push(e);
        }
        // Whatever happened, every call ends.
        for c in CALLS {
            script.push(Event::CallerHungUp { call_id: c.into() });
        }
        for e in script {
            now += Duration::seconds(step_seconds);
            let ended_call = is_terminated(&e).map(str::to_owned);
            let commands = engine::step(&flow, &mut s, e, now);
            for cmd in &commands {
                if let Some(id) = cmd.call_id() {
                    prop_assert!(!gone.contains(id), "{cmd:?} sent for terminated call {id}\n{}", s.timeline);
                }
            }
            if let Some(c) = ended_call {
                gone.insert(c);
            }
        }
        prop_assert!(s.is_ended(), "the run did not end:\n{}", s.timeline);
        prop_assert!(s.timeline.outcome().is_some(), "no end in the timeline:\n{}", s.timeline);
        prop_assert!(s.steps_taken <= flow.max_steps + 1);
        let json = serde_json::to_string(&s).expect("a session serialises");
        let back: Session = serde_json::from_str(&json).expect("and reads back");
        prop_assert_eq!(back, s);
    }

    #[test]
    fn any_simulated_graph_behaviour_ends_cleanly(
        transfers in prop::collection::vec(prop::sample::select(vec![TransferMode::Accept, TransferMode::Fail, TransferMode::NoAnswer]), 1..4),
        dtmf in prop::collection::vec(prop::sample::select(vec!["", "0", "1", "2", "7"]), 0..4),
        hangup in prop::option::of(0u64..120),
        hour in 0u32..24,
        reorder: bool,
        duplicate: bool,
        legacy: bool,
        delay in 0u64..3,
    ) {
        let flow = reception();
        let clock = DateTime::parse_from_rfc3339(&format!("2026-11-20T{hour:02}:10:00+01:00"))
            .expect("a date")
            .with_timezone(&Utc);
        let mut o = SimulateOptions::for_flow(&flow, clock);
        o.graph = GraphBehaviour {
            transfer: PerAttempt::Each(transfers),
            dtmf: dtmf.into_iter().map(str::to_owned).collect(),
            hangup: hangup.map(SimDuration::secs),
            reorder,
            duplicate,
            legacy,
            delay: Some(SimDuration::secs(delay)),
            ..GraphBehaviour::default()
        };
        let run = sim::run(&flow, &o);
        prop_assert!(run.problems.is_empty(), "{:?}\n{}", run.problems, run.session.timeline);
        prop_assert!(run.session.outcome().is_some());
    }
}
