//! The engine driven by hand, one event at a time: Graph's quirks and races.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::*;
use crate::flow::{Flow, load_str};
use crate::graph::wire::{CallState, CommsOperation, OperationStatus, ResultInfo};

const FLOW: &str = r#"
flow: t
trigger:
  incoming_call:
    to: ["+14255550100"]
    from: "+33*"
    when: 'call.from.phone != "+33600000000"'
start: greet
steps:
  greet:
    answer: {}
    next: menu
  menu:
    menu:
      prompt: https://cdn/menu.wav
      choices: { "1": sales, "2": support }
      timeout: 5s
    on_timeout: sales
  sales:
    transfer: { to: { phone: "+14255550123" } }
    on_failure: sorry
  support:
    consultative_transfer:
      to: { phone: "+12345678901" }
      timeout: 10s
    on_failure: sorry
  sorry:
    play: { prompt: https://cdn/sorry.wav }
"#;

struct Harness {
    flow: Flow,
    s: Session,
    now: DateTime<Utc>,
}

impl Harness {
    fn new() -> Self {
        Self::with(FLOW)
    }

    fn with(text: &str) -> Self {
        let flow = load_str("t.yaml", text).flow.expect("the test flow loads");
        let s = Session::new(&flow, "c1", Bot::new("https://bot/cb"));
        let now = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
            .expect("a date")
            .with_timezone(&Utc);
        Harness { flow, s, now }
    }

    fn feed(&mut self, e: Event) -> Vec<Command> {
        self.now += Duration::milliseconds(100);
        step(&self.flow, &mut self.s, e, self.now)
    }

    fn requests(&mut self, e: Event) -> Vec<Command> {
        self.feed(e)
            .into_iter()
            .filter(Command::is_request)
            .collect()
    }

    fn state(&mut self, call: &str, state: CallState) -> Vec<Command> {
        self.requests(Event::CallState(StateChange::new(call, state)))
    }

    fn incoming(&mut self) -> Vec<Command> {
        self.requests(Event::IncomingCall(IncomingCall {
            call_id: "c1".into(),
            from: Party::phone("+33612345678"),
            to: Party::phone("+14255550100"),
            raw: Value::Null,
        }))
    }

    /// Answered and in the menu, its prompt playing; returns the prompt's context.
    fn in_menu(&mut self) -> String {
        self.incoming();
        let sent = self.state("c1", CallState::Established);
        let Some(Command::PlayPrompt { body, .. }) = sent.last() else {
            panic!("the menu plays its prompt: {sent:?}");
        };
        body.client_context.clone().expect("a client context")
    }

    fn prompt_done(&mut self, context: &str) -> Vec<Command> {
        self.feed(Event::Operation(OperationUpdate {
            call_id: "c1".into(),
            operation_id: Some("op".into()),
            status: Some(OperationStatus::Completed),
            client_context: Some(context.into()),
            result: None,
            completion_reason: None,
            recording: None,
        }))
    }

    fn key(&mut self, key: char, seq: i64) -> Vec<Command> {
        self.requests(Event::Tone {
            call_id: "c1".into(),
            key: Some(key),
            sequence_id: Some(seq),
        })
    }

    fn step_name(&self) -> Option<&str> {
        self.s.step_name(&self.flow)
    }
}

#[test]
fn duplicates_and_stale_states_change_nothing() {
    let mut h = Harness::new();
    assert!(matches!(h.incoming().as_slice(), [Command::Answer { .. }]));
    assert!(
        h.incoming().is_empty(),
        "a duplicate incoming call is ignored"
    );
    assert_eq!(
        h.state("c1", CallState::Established).len(),
        2,
        "subscribe + prompt"
    );
    assert!(
        h.state("c1", CallState::Established).is_empty(),
        "duplicate"
    );
    assert!(h.state("c1", CallState::Establishing).is_empty(), "stale");
    assert_eq!(
        h.s.main().and_then(|m| m.state.clone()),
        Some(CallState::Established)
    );
    assert_eq!(h.step_name(), Some("menu"));
}

#[test]
fn a_key_during_the_prompt_is_taken_and_repeats_are_dropped() {
    let mut h = Harness::new();
    h.in_menu();
    let sent = h.key('1', 1);
    assert!(
        matches!(sent.as_slice(), [Command::Transfer { .. }]),
        "{sent:?}"
    );
    assert!(h.key('1', 1).is_empty(), "the same sequence id again");
    assert_eq!(h.s.digits, "1");
}

#[test]
fn the_menu_timeout_runs_from_the_end_of_the_prompt_and_stale_timers_are_ignored() {
    let mut h = Harness::new();
    let context = h.in_menu();
    let guard =
        h.s.timer
            .map(|t| t.id)
            .expect("a guard timer while the prompt plays");
    let out = h.prompt_done(&context);
    let timer = out
        .iter()
        .find_map(|c| match c {
            Command::SetTimer { timer, .. } => Some(*timer),
            _ => None,
        })
        .expect("the menu timer starts when the prompt ends");
    assert!(out.contains(&Command::CancelTimer { timer: guard }));
    assert!(
        h.feed(Event::TimerFired { timer: guard }).is_empty(),
        "stale"
    );
    let sent = h.requests(Event::TimerFired { timer });
    assert!(
        matches!(sent.as_slice(), [Command::Transfer { .. }]),
        "on_timeout: {sent:?}"
    );
}

#[test]
fn a_prompt_done_before_its_200_still_counts_and_the_late_200_is_ignored() {
    let mut h = Harness::new();
    let context = h.in_menu();
    let prompt_command =
        h.s.pending
            .iter()
            .find(|p| p.kind == RequestKind::PlayPrompt)
            .map(|p| p.command)
            .expect("the prompt is awaited");
    h.prompt_done(&context);
    assert!(matches!(
        h.s.waiting,
        Waiting::Menu {
            prompt_done: true,
            ..
        }
    ));
    let late = h.feed(Event::Accepted {
        command: prompt_command,
        operation: Some(CommsOperation {
            id: "op".into(),
            status: Some(OperationStatus::Running),
            ..CommsOperation::default()
        }),
    });
    assert!(late.is_empty());
    assert!(matches!(
        h.s.waiting,
        Waiting::Menu {
            prompt_done: true,
            ..
        }
    ));
}

#[test]
fn transfer_accepted_before_transferring_still_completes() {
    let mut h = Harness::new();
    h.in_menu();
    h.key('1', 1);
    h.state("c1", CallState::TransferAccepted);
    assert!(
        h.state("c1", CallState::Transferring).is_empty(),
        "late transferring"
    );
    let end = h.requests(Event::CallState(
        StateChange::new("c1", CallState::Terminated).with_result(ResultInfo::new(0, 7015)),
    ));
    assert!(end.is_empty(), "nothing is sent for a terminated call");
    assert_eq!(h.s.outcome(), Some(Outcome::Transferred));
}

#[test]
fn nothing_is_sent_once_the_call_terminated() {
    let mut h = Harness::new();
    let context = h.in_menu();
    let sent = h.requests(Event::CallerHungUp {
        call_id: "c1".into(),
    });
    assert!(sent.is_empty());
    assert_eq!(h.s.outcome(), Some(Outcome::CallerHungUp));
    assert!(h.prompt_done(&context).is_empty());
    assert!(h.key('1', 2).is_empty());
    assert!(h.state("c1", CallState::Established).is_empty());
    for n in 0..20 {
        assert!(h.feed(Event::TimerFired { timer: TimerId(n) }).is_empty());
    }
}

#[test]
fn a_consultation_call_reported_ended_before_its_201_is_never_used() {
    let mut h = Harness::new();
    h.in_menu();
    let sent = h.key('2', 1);
    let Some(Command::CreateCall { tag, .. }) = sent.first() else {
        panic!("support first calls the target: {sent:?}");
    };
    let tag = tag.clone();
    // Graph's terminated notification races ahead of the 201.
    assert!(h.state("c2", CallState::Terminated).is_empty());
    let sent = h.requests(Event::CallCreated {
        tag,
        call_id: "c2".into(),
    });
    assert!(
        sent.iter().all(|c| c.call_id() != Some("c2")),
        "nothing for the dead consultation call: {sent:?}"
    );
    assert_eq!(
        h.step_name(),
        Some("sorry"),
        "the target did not take the call: on_failure"
    );
}

#[test]
fn a_consultation_target_that_never_answers_is_hung_up_once_named() {
    let mut h = Harness::new();
    h.in_menu();
    let sent = h.key('2', 1);
    let Some(Command::CreateCall { tag, .. }) = sent.first() else {
        panic!("{sent:?}");
    };
    let tag = tag.clone();
    let timer = h.s.timer.map(|t| t.id).expect("the answer timeout");
    h.feed(Event::TimerFired { timer });
    assert_eq!(h.step_name(), Some("sorry"));
    let sent = h.requests(Event::CallCreated {
        tag,
        call_id: "c2".into(),
    });
    assert!(
        matches!(sent.as_slice(), [Command::Hangup { call_id, .. }] if call_id == "c2"),
        "the late consultation call is hung up: {sent:?}"
    );
}

#[test]
fn a_refused_request_routes_on_failure() {
    let mut h = Harness::new();
    h.in_menu();
    let sent = h.key('1', 1);
    let id = sent[0].id().expect("a request");
    let sent = h.requests(Event::RequestFailed {
        command: id,
        status: 403,
        code: "Forbidden".into(),
        message: "no".into(),
    });
    assert!(
        matches!(sent.as_slice(), [Command::PlayPrompt { .. }]),
        "sorry plays: {sent:?}"
    );
    assert!(
        h.s.timeline
            .entries
            .iter()
            .any(|e| matches!(&e.what, Entry::Error(t) if t.contains("403 Forbidden"))),
        "{}",
        h.s.timeline
    );
}

#[test]
fn the_runtime_learns_its_deadlines_and_keep_alives() {
    let mut h = Harness::new();
    h.incoming();
    assert_eq!(h.s.answer_deadline(), None, "the answer is on its way");
    h.state("c1", CallState::Established);
    let now = h.now;
    let keep = h.s.keep_alive(now);
    assert!(matches!(keep.as_slice(), [Command::KeepAlive { call_id, .. }] if call_id == "c1"));
    assert_eq!(h.s.live_call_ids(), vec!["c1"]);

    let mut fresh = Harness::new();
    fresh.s.legs.push(Leg::new("main", LegRole::Main));
    fresh.s.legs[0].call_id = Some("c9".into());
    fresh.s.legs[0].state = Some(CallState::Incoming);
    fresh.s.incoming_at = Some(fresh.now);
    assert_eq!(fresh.s.answer_deadline(), Some(fresh.now + ANSWER_WITHIN));
}

#[test]
fn sessions_are_data() {
    let mut h = Harness::new();
    h.in_menu();
    h.key('2', 1);
    let json = serde_json::to_string(&h.s).expect("serialises");
    let back: Session = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, h.s);
    assert!(
        json.len() < 16_000,
        "a session stays small: {} bytes",
        json.len()
    );
}

#[test]
fn incoming_triggers_filter_on_to_from_and_when() {
    let h = Harness::new();
    let call = |from: &str, to: &str| IncomingCall {
        call_id: "x".into(),
        from: Party::phone(from),
        to: Party::phone(to),
        raw: Value::Null,
    };
    let yes = |c: &IncomingCall| matches_incoming(&h.flow, c, h.now).expect("evaluates");
    assert!(yes(&call("+33612345678", "+14255550100")));
    assert!(!yes(&call("+44712345678", "+14255550100")), "from is +33*");
    assert!(!yes(&call("+33612345678", "+14255550999")), "to");
    assert!(!yes(&call("+33600000000", "+14255550100")), "when");
}

#[test]
fn finished_actions_are_reported_once_each_with_how_they_finished() {
    fn feed(h: &mut Harness, done: &mut Vec<ActionDone>, e: Event) {
        h.now += Duration::milliseconds(100);
        let stepped = step_reported(&h.flow, &mut h.s, e, h.now);
        done.extend(stepped.actions);
    }
    let mut h = Harness::new();
    let mut done = Vec::new();
    feed(
        &mut h,
        &mut done,
        Event::IncomingCall(IncomingCall {
            call_id: "c1".into(),
            from: Party::phone("+33612345678"),
            to: Party::phone("+14255550100"),
            raw: Value::Null,
        }),
    );
    feed(
        &mut h,
        &mut done,
        Event::CallState(StateChange::new("c1", CallState::Established)),
    );
    // A duplicate finishes nothing more.
    feed(
        &mut h,
        &mut done,
        Event::CallState(StateChange::new("c1", CallState::Established)),
    );
    let timer = h.s.timer.map(|t| t.id).expect("the menu's guard timer");
    feed(&mut h, &mut done, Event::TimerFired { timer });
    let sales = |o| ActionDone {
        action: "transfer",
        outcome: o,
    };
    assert_eq!(
        done,
        vec![
            ActionDone {
                action: "answer",
                outcome: ActionOutcome::Ok
            },
            ActionDone {
                action: "menu",
                outcome: ActionOutcome::Timeout
            },
        ],
        "{}",
        h.s.timeline.render(h.flow.timezone)
    );
    // The caller hangs up during the transfer: interrupted, and only once.
    done.clear();
    feed(
        &mut h,
        &mut done,
        Event::CallState(StateChange::new("c1", CallState::Terminated)),
    );
    feed(
        &mut h,
        &mut done,
        Event::CallState(StateChange::new("c1", CallState::Terminated)),
    );
    assert_eq!(done, vec![sales(ActionOutcome::Interrupted)]);
}

#[test]
fn a_menu_resumed_after_a_restart_plays_its_prompt_again_unless_its_timeout_passed() {
    let mut h = Harness::new();
    let context = h.in_menu();
    h.prompt_done(&context);
    let sent = h.requests(Event::Resumed);
    let Some(Command::PlayPrompt { body, .. }) = sent.last() else {
        panic!("the menu plays its prompt again: {sent:?}");
    };
    let again = body.client_context.clone().expect("a client context");
    assert_ne!(again, context, "a fresh prompt, told apart from the first");
    assert_eq!(
        h.s.waiting,
        Waiting::Menu {
            attempt: 0,
            context: again.clone(),
            prompt_done: false,
        },
        "the same attempt: a restart uses up no retry"
    );
    assert!(
        h.s.timeline
            .render(chrono_tz::Tz::UTC)
            .contains("resumed after a restart"),
        "{}",
        h.s.timeline.render(chrono_tz::Tz::UTC)
    );
    // The first prompt's late completion changes nothing; the new one's
    // starts the timeout, and a key still chooses.
    assert!(h.prompt_done(&context).is_empty());
    assert!(
        h.prompt_done(&again)
            .iter()
            .any(|c| matches!(c, Command::SetTimer { .. }))
    );
    assert!(matches!(
        h.key('1', 1).as_slice(),
        [Command::Transfer { .. }]
    ));

    // A menu whose timeout ran out while the server was down is left to
    // its timer, which the runtime fires at once.
    let mut h = Harness::new();
    let context = h.in_menu();
    h.prompt_done(&context);
    h.now = h.s.timer.expect("the menu timer").at;
    assert!(h.requests(Event::Resumed).is_empty());
    // Outside a menu, a restart changes nothing.
    let mut h = Harness::new();
    h.incoming();
    assert!(h.requests(Event::Resumed).is_empty());
}

#[test]
fn the_rules_are_timers_in_the_session_and_decided_by_step() {
    let mut h = Harness::new();
    let start = h.now + Duration::milliseconds(100);
    let out = h.feed(Event::IncomingCall(IncomingCall {
        call_id: "c1".into(),
        from: Party::phone("+33612345678"),
        to: Party::phone("+14255550100"),
        raw: Value::Null,
    }));
    // The answer is on its way: no answer timer; the reaper is armed.
    assert_eq!(h.s.upkeep.answer, None);
    let idle = h.s.upkeep.idle.expect("the reaper is armed");
    assert_eq!(idle.at, start + REAP_AFTER);
    assert!(out.contains(&Command::SetTimer {
        timer: idle.id,
        at: idle.at
    }));
    // Established: keepAlive every 15 minutes, from then.
    h.state("c1", CallState::Established);
    let keep = h.s.upkeep.keep_alive.expect("keepAlive is armed");
    assert_eq!(keep.at, h.now + KEEP_ALIVE_EVERY);
    h.now = keep.at - Duration::milliseconds(100);
    let sent = h.feed(Event::TimerFired { timer: keep.id });
    assert!(
        sent.iter()
            .any(|c| matches!(c, Command::KeepAlive { call_id, .. } if call_id == "c1"))
    );
    assert_eq!(
        h.s.upkeep.keep_alive.map(|t| t.at),
        Some(keep.at + KEEP_ALIVE_EVERY)
    );
    // A fault ends the run with `error` and hangs up.
    let out = h.feed(Event::Fault {
        what: "the engine".into(),
        message: "boom".into(),
    });
    assert!(
        out.iter()
            .any(|c| matches!(c, Command::Hangup { call_id, .. } if call_id == "c1"))
    );
    assert_eq!(h.s.outcome(), Some(Outcome::Error));
    assert!(h.s.upkeep.faulted);
    // The session round-trips as data, its rules included.
    let back: Session = serde_json::from_value(serde_json::to_value(&h.s).unwrap()).unwrap();
    assert_eq!(back, h.s);
}

#[test]
fn an_unanswered_incoming_call_is_rejected_by_the_answer_rule() {
    let flow = load_str(
        "slow.yaml",
        "flow: slow\ntrigger:\n  incoming_call:\n    to: [\"+14255550100\"]\nstart: think\nsteps:\n  think:\n    wait: { timeout: 20s }\n    next: greet\n  greet:\n    answer: {}\n",
    )
    .flow
    .expect("loads");
    let mut s = Session::new(&flow, "c1", Bot::new("https://bot/cb"));
    let t0 = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    step(
        &flow,
        &mut s,
        Event::IncomingCall(IncomingCall {
            call_id: "c1".into(),
            ..IncomingCall::default()
        }),
        t0,
    );
    let answer = s.upkeep.answer.expect("the answer rule is armed");
    assert_eq!(answer.at, t0 + ANSWER_WITHIN - ANSWER_MARGIN);
    let out = step(
        &flow,
        &mut s,
        Event::TimerFired { timer: answer.id },
        answer.at,
    );
    assert!(
        out.iter()
            .any(|c| matches!(c, Command::Reject { body, .. } if body.reason == crate::graph::wire::RejectReason::Busy)),
        "{out:?}"
    );
    assert_eq!(s.outcome(), Some(Outcome::Error));
    assert!(!out.iter().any(|c| matches!(c, Command::Answer { .. })));
}

const RING: &str = r#"
flow: t
trigger:
  incoming_call:
    to: ["+14255550100"]
start: greet
steps:
  greet:
    answer: {}
    next: team
  team:
    ring_group:
      targets: [{ phone: "+14255550181" }, { phone: "+14255550182" }]
      strategy: STRATEGY
      ring_timeout: 10s
      max_wait: 25s
      hold_prompt: https://cdn/hold.wav
    next: done
    on_timeout: sorry
  done:
    log: bridged
  sorry:
    play: { prompt: https://cdn/sorry.wav }
"#;

fn ring_harness(strategy: &str) -> (Harness, Vec<Command>) {
    let mut h = Harness::with(&RING.replace("STRATEGY", strategy));
    h.incoming();
    let sent = h.state("c1", CallState::Established);
    (h, sent)
}

fn created_tags(sent: &[Command]) -> Vec<String> {
    sent.iter()
        .filter_map(|c| match c {
            Command::CreateCall { tag, .. } => Some(tag.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_simultaneous_ring_group_gives_the_caller_to_the_first_who_answers() {
    let (mut h, sent) = ring_harness("simultaneous");
    assert!(matches!(sent.first(), Some(Command::PlayPrompt { call_id, .. }) if call_id == "c1"));
    let tags = created_tags(&sent);
    assert_eq!(tags.len(), 2, "both targets ring at once: {sent:?}");
    for (tag, id) in tags.iter().zip(["c2", "c3"]) {
        h.requests(Event::CallCreated {
            tag: tag.clone(),
            call_id: id.into(),
        });
    }
    let sent = h.state("c3", CallState::Established);
    assert!(
        matches!(sent.as_slice(), [
            Command::Hangup { call_id: a, .. },
            Command::CancelMediaProcessing { call_id: b, .. },
            Command::Transfer { call_id: c, body, .. },
        ] if a == "c2" && b == "c1" && c == "c1"
            && body.transfer_target.replaces_call_id.as_deref() == Some("c3")),
        "the other attempt hung up, the music stopped, the caller transferred replacing c3: {sent:?}"
    );
    // A late answer of the attempt hung up changes nothing.
    assert!(h.state("c2", CallState::Established).is_empty());
}

#[test]
fn a_caller_who_hangs_up_while_held_ends_every_attempt_even_one_not_yet_named() {
    let (mut h, sent) = ring_harness("simultaneous");
    let tags = created_tags(&sent);
    h.requests(Event::CallCreated {
        tag: tags[0].clone(),
        call_id: "c2".into(),
    });
    let sent = h.state("c1", CallState::Terminated);
    assert!(
        sent.iter()
            .any(|c| matches!(c, Command::Hangup { call_id, .. } if call_id == "c2")),
        "the named attempt is hung up: {sent:?}"
    );
    assert_eq!(h.s.outcome(), Some(Outcome::CallerHungUp));
    let sent = h.requests(Event::CallCreated {
        tag: tags[1].clone(),
        call_id: "c3".into(),
    });
    assert!(
        matches!(sent.as_slice(), [Command::Hangup { call_id, .. }] if call_id == "c3"),
        "the attempt named late is hung up: {sent:?}"
    );
}

#[test]
fn a_serial_ring_group_cycles_through_its_targets_then_gives_up() {
    let (mut h, sent) = ring_harness("serial");
    let mut tags = created_tags(&sent);
    assert_eq!(tags.len(), 1, "one target at a time: {sent:?}");
    let mut rung = Vec::new();
    for n in 0..2 {
        let id = format!("k{n}");
        h.requests(Event::CallCreated {
            tag: tags[0].clone(),
            call_id: id.clone(),
        });
        let timer = h.s.timer.expect("the round's timer");
        h.now = timer.at - Duration::milliseconds(100);
        let sent = h.requests(Event::TimerFired { timer: timer.id });
        assert!(
            matches!(sent.first(), Some(Command::Hangup { call_id, .. }) if *call_id == id),
            "the attempt that rang out is hung up: {sent:?}"
        );
        for c in &sent {
            if let Command::CreateCall { body, .. } = c {
                let to = &body.targets.as_deref().unwrap_or_default()[0];
                rung.push(
                    to.identity
                        .phone
                        .as_ref()
                        .map(|p| p.id.clone())
                        .unwrap_or_default(),
                );
            }
        }
        tags = created_tags(&sent);
    }
    assert_eq!(
        rung,
        ["+14255550182", "+14255550181"],
        "back to the first after the last"
    );
    // 25 s after the start: nobody answered.
    let timer = h.s.timer.expect("the give-up timer");
    h.now = timer.at - Duration::milliseconds(100);
    let sent = h.requests(Event::TimerFired { timer: timer.id });
    assert!(
        sent.iter()
            .any(|c| matches!(c, Command::CancelMediaProcessing { .. })),
        "the music stops: {sent:?}"
    );
    assert_eq!(h.step_name(), Some("sorry"), "on_timeout");
}

fn hold_context(h: &Harness) -> String {
    match &h.s.waiting {
        Waiting::RingGroup(r) => r.hold.clone(),
        w => panic!("not holding in a ring group: {w:?}"),
    }
}

fn hold_op(h: &mut Harness, context: &str, status: OperationStatus) -> Vec<Command> {
    h.requests(Event::Operation(OperationUpdate {
        call_id: "c1".into(),
        operation_id: Some(format!("op-{context}")),
        status: Some(status),
        client_context: Some(context.into()),
        result: None,
        completion_reason: None,
        recording: None,
    }))
}

fn turn_asked(sent: &[Command]) -> (CommandId, String) {
    sent.iter()
        .find_map(|c| match c {
            Command::TakeTurn { id, group } => Some((*id, group.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the group asks for its turn: {sent:?}"))
}

fn rung(sent: &[Command]) -> Vec<String> {
    sent.iter()
        .filter_map(|c| match c {
            Command::CreateCall { body, .. } => body.targets.as_deref()?[0]
                .identity
                .phone
                .as_ref()
                .map(|p| p.id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_round_robin_group_rings_from_the_target_its_turn_names_and_wraps() {
    let (mut h, sent) = ring_harness("round_robin");
    assert!(matches!(sent.first(), Some(Command::PlayPrompt { call_id, .. }) if call_id == "c1"));
    let (asked, group) = turn_asked(&sent);
    assert_eq!(group, "t/team", "the counter is the flow's and the step's");
    assert!(
        rung(&sent).is_empty(),
        "nothing rings before the turn comes"
    );
    // Turn 3 of a group of two starts at its second target.
    let sent = h.requests(Event::Turn {
        command: asked,
        turn: 3,
    });
    assert_eq!(rung(&sent), ["+14255550182"]);
    let text = h.s.timeline.render(chrono_tz::Tz::UTC);
    assert!(
        text.contains("take_turn {group: t/team} on store"),
        "{text}"
    );
    assert!(
        text.contains("turn 3: ringing from target 2 of 2, +14255550182"),
        "{text}"
    );
    // Its ring timeout over, the next is the first: it wraps.
    let tag = created_tags(&sent)[0].clone();
    h.requests(Event::CallCreated {
        tag,
        call_id: "k1".into(),
    });
    let timer = h.s.timer.expect("the round's timer");
    h.now = timer.at - Duration::milliseconds(100);
    let sent = h.requests(Event::TimerFired { timer: timer.id });
    assert_eq!(rung(&sent), ["+14255550181"], "{sent:?}");
    // A second answer to the same question changes nothing.
    assert!(
        h.requests(Event::Turn {
            command: asked,
            turn: 4
        })
        .is_empty()
    );
}

#[test]
fn a_turn_that_does_not_come_in_time_rings_from_the_first_target() {
    let (mut h, sent) = ring_harness("round_robin");
    let (asked, _) = turn_asked(&sent);
    let timer = h.s.timer.expect("the wait for the turn");
    assert_eq!(
        timer.at,
        h.now + Duration::from_std(ring::TURN_WAIT).expect("5 s")
    );
    h.now = timer.at - Duration::milliseconds(100);
    let sent = h.requests(Event::TimerFired { timer: timer.id });
    assert_eq!(rung(&sent), ["+14255550181"]);
    assert!(
        h.s.timeline
            .render(chrono_tz::Tz::UTC)
            .contains("no turn came within 5s: ringing from the first target")
    );
    // The late turn is not used: the ringing has begun.
    assert!(
        h.requests(Event::Turn {
            command: asked,
            turn: 1
        })
        .is_empty()
    );
    // A store that cannot give a turn rings from the first target too.
    let (mut h, sent) = ring_harness("round_robin");
    let (asked, _) = turn_asked(&sent);
    let sent = h.requests(Event::RequestFailed {
        command: asked,
        status: 0,
        code: "StoreFailed".into(),
        message: "the store is closed".into(),
    });
    assert_eq!(rung(&sent), ["+14255550181"]);
    assert!(h.s.timeline.render(chrono_tz::Tz::UTC).contains(
        "no turn (take_turn failed: 0 StoreFailed: the store is closed): ringing from the first target"
    ));
}

#[test]
fn a_turn_asked_before_a_restart_is_asked_again_and_the_caller_hears_the_music_again() {
    let (mut h, sent) = ring_harness("round_robin");
    let (asked, _) = turn_asked(&sent);
    let first_hold = hold_context(&h);
    // The restart settles the question in flight as `MaybeSent`.
    let sent = h.requests(Event::RequestFailed {
        command: asked,
        status: 0,
        code: "MaybeSent".into(),
        message: "the server stopped".into(),
    });
    let (again, group) = turn_asked(&sent);
    assert_ne!(again, asked, "a new question");
    assert_eq!(group, "t/team");
    assert!(rung(&sent).is_empty());
    let sent = h.requests(Event::Resumed);
    assert!(
        matches!(sent.as_slice(), [Command::PlayPrompt { call_id, body, .. }]
            if call_id == "c1" && body.prompts[0].media_info.uri == "https://cdn/hold.wav"),
        "the hold music plays again: {sent:?}"
    );
    assert_ne!(hold_context(&h), first_hold);
    // The answer to the lost question is not used; the new one is.
    assert!(
        h.requests(Event::Turn {
            command: asked,
            turn: 0
        })
        .is_empty()
    );
    let sent = h.requests(Event::Turn {
        command: again,
        turn: 1,
    });
    assert_eq!(rung(&sent), ["+14255550182"]);
}

#[test]
fn the_hold_music_plays_on_after_an_attempt_fails_and_after_it_failed_itself() {
    let (mut h, sent) = ring_harness("serial");
    let tag = created_tags(&sent)[0].clone();
    h.requests(Event::CallCreated {
        tag,
        call_id: "k1".into(),
    });
    // The agent is busy: the attempt ends, the music goes on.
    let busy = StateChange::new("k1", CallState::Terminated).with_result(ResultInfo {
        code: Some(crate::graph::wire::Code::Number(486)),
        ..ResultInfo::default()
    });
    assert!(h.requests(Event::CallState(busy)).is_empty());
    let hold = hold_context(&h);
    let sent = hold_op(&mut h, &hold, OperationStatus::Completed);
    assert!(
        matches!(sent.as_slice(), [Command::PlayPrompt { call_id, .. }] if call_id == "c1"),
        "the music plays again after the failed attempt: {sent:?}"
    );
    // A play that fails is played again, up to 3 times in a row...
    for n in 1..=ring::HOLD_RETRIES {
        let hold = hold_context(&h);
        let sent = hold_op(&mut h, &hold, OperationStatus::Failed);
        assert!(
            matches!(sent.as_slice(), [Command::PlayPrompt { .. }]),
            "failure {n}: played again: {sent:?}"
        );
    }
    // ...then the caller holds in silence; the group still rings.
    let hold = hold_context(&h);
    assert!(hold_op(&mut h, &hold, OperationStatus::Failed).is_empty());
    assert!(h.s.timeline.render(chrono_tz::Tz::UTC).contains(
        "the hold music failed 4 times in a row; the caller holds in silence while the targets ring"
    ));
    assert!(matches!(h.s.waiting, Waiting::RingGroup(_)));
    // A success in between starts the count again.
    let (mut h, _) = ring_harness("serial");
    for _ in 0..ring::HOLD_RETRIES {
        let hold = hold_context(&h);
        hold_op(&mut h, &hold, OperationStatus::Failed);
    }
    let hold = hold_context(&h);
    hold_op(&mut h, &hold, OperationStatus::Completed);
    let hold = hold_context(&h);
    assert!(
        !hold_op(&mut h, &hold, OperationStatus::Failed).is_empty(),
        "played again: the failures were not in a row"
    );
}

#[test]
fn a_hold_music_play_in_flight_at_a_restart_is_not_a_failure_of_the_group() {
    let (mut h, sent) = ring_harness("serial");
    let play = sent
        .iter()
        .find_map(|c| match c {
            Command::PlayPrompt { id, .. } => Some(*id),
            _ => None,
        })
        .expect("the hold music");
    let sent = h.requests(Event::RequestFailed {
        command: play,
        status: 0,
        code: "MaybeSent".into(),
        message: "the server stopped".into(),
    });
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(h.step_name(), Some("team"), "still holding");
    let sent = h.requests(Event::Resumed);
    assert!(
        matches!(sent.as_slice(), [Command::PlayPrompt { .. }]),
        "{sent:?}"
    );
}

const COLLECT: &str = r#"
flow: t
trigger:
  incoming_call:
    to: ["+14255550100"]
start: greet
steps:
  greet:
    answer: {}
    next: account
  account:
    collect:
      prompt: https://cdn/account.wav
      into: account
      min_digits: 6
      max_digits: 6
      retries: 1
    next: done
  done:
    log: "account ${vars.account}"
"#;

#[test]
fn a_collect_waiting_at_a_restart_plays_its_prompt_again_and_takes_the_digits_anew() {
    let mut h = Harness::with(COLLECT);
    h.incoming();
    let sent = h.state("c1", CallState::Established);
    let Some(Command::PlayPrompt { body, .. }) = sent.last() else {
        panic!("the collect plays its prompt: {sent:?}");
    };
    let context = body.client_context.clone().expect("a client context");
    h.prompt_done(&context);
    h.key('4', 1);
    h.key('1', 2);
    let sent = h.requests(Event::Resumed);
    let Some(Command::PlayPrompt { body, .. }) = sent.last() else {
        panic!("the collect plays its prompt again: {sent:?}");
    };
    assert_eq!(body.prompts[0].media_info.uri, "https://cdn/account.wav");
    let again = body.client_context.clone().expect("a client context");
    assert!(
        matches!(&h.s.waiting, Waiting::Collect { attempt: 0, context, prompt_done: false, .. } if *context == again),
        "the same attempt: {:?}",
        h.s.waiting
    );
    assert!(h.s.digits.is_empty(), "the digits keyed before are dropped");
    assert!(h.s.timeline.render(chrono_tz::Tz::UTC).contains(
        "the collect plays its prompt again; the digits keyed before the restart are dropped"
    ));
    // The whole number keyed again is taken.
    for (n, k) in "412345".chars().enumerate() {
        h.key(k, 3 + n as i64);
    }
    assert_eq!(h.step_name(), Some("done"));
    assert_eq!(h.s.vars.get("account"), Some(&Value::from("412345")));
    // A collect whose timeout passed while the server was down is left to
    // its timer; a prompt in flight at the stop is not a failure.
    let mut h = Harness::with(COLLECT);
    h.incoming();
    let sent = h.state("c1", CallState::Established);
    let play = sent
        .iter()
        .rev()
        .find_map(|c| match c {
            Command::PlayPrompt { id, .. } => Some(*id),
            _ => None,
        })
        .expect("the prompt");
    assert!(
        h.requests(Event::RequestFailed {
            command: play,
            status: 0,
            code: "MaybeSent".into(),
            message: "the server stopped".into(),
        })
        .is_empty()
    );
    assert_eq!(h.step_name(), Some("account"));
    h.now = h.s.timer.expect("the prompt's guard").at;
    assert!(h.requests(Event::Resumed).is_empty());
}

#[test]
fn an_attempt_placed_as_the_server_stopped_counts_as_not_answered() {
    let (mut h, sent) = ring_harness("serial");
    let create = sent
        .iter()
        .find_map(|c| match c {
            Command::CreateCall { id, .. } => Some(*id),
            _ => None,
        })
        .expect("the first attempt");
    let sent = h.requests(Event::RequestFailed {
        command: create,
        status: 0,
        code: "MaybeSent".into(),
        message: "the server stopped".into(),
    });
    assert!(sent.is_empty(), "nothing stops: {sent:?}");
    assert_eq!(h.step_name(), Some("team"), "the group goes on");
    assert!(
        h.s.timeline
            .render(chrono_tz::Tz::UTC)
            .contains("the attempt counts as not answered")
    );
    // The round's end rings the next target.
    let timer = h.s.timer.expect("the round's timer");
    h.now = timer.at - Duration::milliseconds(100);
    let sent = h.requests(Event::TimerFired { timer: timer.id });
    assert_eq!(rung(&sent), ["+14255550182"], "{sent:?}");
}

const KEYED: &str = r##"
flow: t
trigger:
  incoming_call:
    to: ["+14255550100"]
start: greet
steps:
  greet:
    answer: {}
    next: account
  account:
    collect:
      prompt: https://cdn/account.wav
      into: account
      min_digits: 4
      max_digits: 4
      finish_on: "#"
      digit_timeout: 3s
    next: pin
    on_timeout: bye
    on_invalid: bye
  pin:
    collect:
      prompt: https://cdn/pin.wav
      into: pin
      min_digits: 2
      max_digits: 6
      finish_on: "#"
    next: bye
    on_timeout: bye
    on_invalid: bye
  bye:
    hangup: {}
"##;

/// Answered and in `account`, its prompt finished; returns the harness.
fn collecting() -> Harness {
    let mut h = Harness::with(KEYED);
    h.incoming();
    let sent = h.state("c1", CallState::Established);
    let Some(Command::PlayPrompt { body, .. }) = sent.last() else {
        panic!("the collect plays its prompt: {sent:?}");
    };
    let context = body.client_context.clone().expect("a client context");
    h.prompt_done(&context);
    h
}

fn timeline(h: &Harness) -> String {
    h.s.timeline.render(chrono_tz::UTC)
}

fn assert_noted(h: &Harness, text: &str) {
    let t = timeline(h);
    assert!(t.contains(text), "`{text}` is not in\n{t}");
}

#[test]
fn keys_that_overtake_each_other_are_collected_in_the_order_pressed() {
    let mut h = collecting();
    // Graph's notifications of 1 2 3 4 arrive as 1 3 2 4.
    for (key, seq) in [('1', 1), ('3', 3), ('2', 2), ('4', 4)] {
        h.key(key, seq);
    }
    assert_eq!(h.s.vars["account"], "1234", "{}", timeline(&h));
    assert_eq!(h.step_name(), Some("pin"));
}

#[test]
fn a_full_entry_waits_for_an_overtaken_key_and_takes_it_in_its_place() {
    let mut h = collecting();
    // 1 2 3 4 pressed; 2 arrives last: four keys have come only then.
    for (key, seq) in [('1', 1), ('3', 3), ('4', 4)] {
        h.key(key, seq);
    }
    assert_eq!(h.step_name(), Some("account"));
    h.key('2', 2);
    assert_eq!(h.s.vars["account"], "1234", "{}", timeline(&h));
    // The finish key the caller pressed after a full entry does not reach `pin`.
    h.key('#', 5);
    for (key, seq) in [('7', 6), ('8', 7), ('#', 8)] {
        h.key(key, seq);
    }
    assert_eq!(h.s.vars["pin"], "78", "{}", timeline(&h));
    assert_noted(&h, "main: key # after an entry already complete: ignored");
}

#[test]
fn a_finish_key_that_overtakes_a_digit_waits_for_it() {
    let mut h = collecting();
    h.key('1', 1);
    h.key('2', 2);
    h.key('#', 4);
    assert_eq!(h.step_name(), Some("account"));
    assert_noted(&h, "waiting for key press #3, overtaken by later ones");
    // A key pressed after the finish key is not part of this entry.
    h.key('9', 5);
    h.key('3', 3);
    assert_eq!(h.s.vars.get("account"), None, "three digits are too few");
    assert_noted(&h, "key 9 after the finish key of `account`: ignored");
    assert_noted(&h, "`123` is fewer than 4 digits in `account`");
}

#[test]
fn an_overtaken_key_that_never_arrives_ends_the_entry_at_the_pause() {
    let mut h = collecting();
    h.key('1', 1);
    h.key('#', 3);
    assert_eq!(h.step_name(), Some("account"));
    // The pause between digits ends the wait with what came.
    let timer =
        h.s.timer
            .map(|t| t.id)
            .expect("the pause between digits runs");
    let fired = h.feed(Event::TimerFired { timer });
    assert!(
        timeline(&h).contains("`1` is fewer than 4 digits in `account`"),
        "{}: {fired:?}",
        timeline(&h)
    );
}

#[test]
fn a_late_key_of_an_earlier_step_and_a_repeat_are_ignored() {
    let mut h = collecting();
    // 1 2 3 4 keyed, then `#`; key 2's notification is repeated, key 0
    // (pressed before the prompt, #0) arrives late.
    for (key, seq) in [('1', 1), ('2', 2), ('2', 2), ('3', 3), ('4', 4)] {
        h.key(key, seq);
    }
    assert_eq!(h.s.vars["account"], "1234", "{}", timeline(&h));
    assert_noted(&h, "main: repeated key press #2 ignored");
    // `pin` began after #4: #5 is its first key; a #0 nobody saw is late.
    h.s.legs[0].missed_tones.push(0);
    h.key('0', 0);
    assert_noted(
        &h,
        "main: key press #0 arrived after the step it was for: ignored",
    );
    assert!(h.s.digits.is_empty(), "{}", h.s.digits);
}
