//! The engine against Microsoft's reference pages in `../shared/seeds/`:
//! the requests it makes for a step serialise to the pages' JSON, and the
//! pages' notification sequences drive it to the right outcome.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use callflow::engine::{
    self, Bot, Command, Entry, Event, IncomingCall, Outcome, Party, Session, StateChange,
};
use callflow::flow::Flow;
use callflow::graph::parse_batch;
use callflow::graph::wire::CallState;

use super::actions::flow;
use crate::support::seeds::{Example, all_examples, normalize};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T10:00:00+01:00")
        .expect("a date")
        .with_timezone(&Utc)
}

/// Feeds an event; returns the Graph requests it caused.
fn feed(flow: &Flow, s: &mut Session, event: Event) -> Vec<Command> {
    engine::step(flow, s, event, t0())
        .into_iter()
        .filter(Command::is_request)
        .collect()
}

/// Feeds every event of a notification body.
fn feed_body(flow: &Flow, s: &mut Session, body: &Value) -> Vec<Command> {
    let list = parse_batch(body.to_string().as_bytes()).expect("a seed notification reads");
    let mut out = Vec::new();
    for n in &list {
        for e in Event::from_notification(n) {
            out.extend(feed(flow, s, e));
        }
    }
    out
}

/// A session of `flow` whose incoming call `call_id` was answered and is established.
fn answered(flow: &Flow, call_id: &str, bot: Bot) -> Session {
    let mut s = Session::new(flow, call_id, bot);
    let answer = feed(
        flow,
        &mut s,
        Event::IncomingCall(IncomingCall {
            call_id: call_id.into(),
            from: Party::phone("+33612345678"),
            to: Party::phone("+14255550100"),
            raw: Value::Null,
        }),
    );
    assert!(
        matches!(answer.as_slice(), [Command::Answer { .. }]),
        "{answer:?}"
    );
    s
}

fn seed_examples(prefix: &str) -> Vec<Example> {
    all_examples()
        .into_iter()
        .filter(|e| e.seed.starts_with(prefix))
        .collect()
}

fn is_notification(e: &Example) -> bool {
    e.json.get("value").is_some_and(Value::is_array) || e.json.get("resourceData").is_some()
}

/// The flow-file words of a seed's identity, or `None` when the flow
/// language cannot say it.
fn target_words(identity: &Value) -> Option<Value> {
    if let Some(u) = identity.get("user") {
        let mut m = serde_json::Map::new();
        m.insert("user".into(), u.get("id")?.clone());
        if let Some(t) = u.get("tenantId") {
            m.insert("tenant".into(), t.clone());
        }
        if let Some(d) = u.get("displayName") {
            m.insert("display_name".into(), d.clone());
        }
        return Some(Value::Object(m));
    }
    identity
        .get("phone")
        .and_then(|p| p.get("id"))
        .map(|id| json!({"phone": id}))
}

const CALLER: &str = "341a0500-d4bf-4224-8b19-1581168d328b";

/// What the flow language does not say about a transfer (the target's
/// language and region; a consultative transfer's client context): removed
/// from the page's JSON before comparing.
fn unsaid(example: &Value) -> Value {
    let mut v = normalize(example);
    let consultative = v.pointer("/transferTarget/replacesCallId").is_some();
    if let Some(Value::Object(t)) = v.get_mut("transferTarget") {
        t.remove("languageId");
        t.remove("region");
    }
    if consultative && let Value::Object(m) = &mut v {
        m.remove("clientContext");
    }
    v
}

/// The transfer body the engine sends for the step that says what `example` says.
fn engine_transfer_for(example: &Value) -> Option<Value> {
    let target = example.get("transferTarget")?;
    let to = target_words(target.get("identity")?)?;
    let replaces = target.get("replacesCallId").and_then(Value::as_str);
    let mut action = serde_json::Map::new();
    action.insert("to".into(), to);
    if let Some(t) = example.get("transferee") {
        let mut who = target_words(t.get("identity")?)?.as_object()?.clone();
        who.insert("participant_id".into(), t.get("participantId")?.clone());
        action.insert("transferee".into(), Value::Object(who));
    }
    if let Some(c) = example.get("clientContext") {
        action.insert("client_context".into(), c.clone());
    }
    let kind = if replaces.is_some() {
        action.remove("transferee");
        action.remove("client_context");
        "consultative_transfer"
    } else {
        "transfer"
    };
    let text = format!(
        "flow: seed\ntrigger: {{incoming_call: {{}}}}\nstart: a\nsteps:\n  a: {{answer: {{}}, next: t}}\n  t: {{{kind}: {}}}\n",
        Value::Object(action)
    );
    let f = flow(&text);
    let mut s = answered(&f, CALLER, Bot::new("https://bot.contoso.com/api/calls"));
    let mut sent = feed(
        &f,
        &mut s,
        Event::CallState(StateChange::new(CALLER, CallState::Established)),
    );
    if let Some(consult) = replaces {
        let Some(Command::CreateCall { tag, .. }) = sent.first() else {
            panic!("a consultative transfer first calls the target: {sent:?}");
        };
        let tag = tag.clone();
        feed(
            &f,
            &mut s,
            Event::CallCreated {
                tag,
                call_id: consult.into(),
            },
        );
        sent = feed(
            &f,
            &mut s,
            Event::CallState(StateChange::new(consult, CallState::Established)),
        );
    }
    match sent.as_slice() {
        [Command::Transfer { call_id, body, .. }] => {
            assert_eq!(call_id, CALLER);
            Some(serde_json::to_value(body).expect("serialises"))
        }
        other => panic!("expected one transfer, got {other:?}"),
    }
}

#[test]
fn transfer_requests_are_the_seeds_json() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut compared = 0;
    for e in all_examples() {
        if e.json.get("transferTarget").is_none() {
            continue;
        }
        let Some(body) = engine_transfer_for(&e.json) else {
            continue;
        };
        assert_eq!(
            normalize(&body),
            unsaid(&e.json),
            "{}: the engine's transfer differs from the page's",
            e.location()
        );
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} transfer examples compared");
}

/// Whether every member of `ours` is in `theirs` with the same value.
fn within(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| within(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| within(x, y))
        }
        (a, b) => a == b,
    }
}

/// The create-call body the engine sends for the step that says what `example` says.
fn engine_create_for(example: &Value) -> Option<Value> {
    let tenant = example.get("tenantId").and_then(Value::as_str);
    let mut bot = Bot::new(example.get("callbackUri")?.as_str()?);
    bot.tenant_id = tenant.map(str::to_owned);
    if let Some(identity) = example.get("source").and_then(|s| s.get("identity")) {
        if let Some(a) = identity.get("applicationInstance") {
            bot.application_instance_id = a.get("id").and_then(Value::as_str).map(str::to_owned);
            bot.display_name = a
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_owned);
        } else if let Some(a) = identity.get("application") {
            bot.application_id = a.get("id").and_then(Value::as_str).map(str::to_owned);
            bot.display_name = a
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
    }
    let action = if let Some(m) = example.get("meetingInfo") {
        let mut j = serde_json::Map::new();
        if let Some(id) = m.get("joinMeetingId") {
            j.insert("join_meeting_id".into(), id.clone());
            if let Some(p) = m.get("passcode").filter(|p| !p.is_null()) {
                j.insert("passcode".into(), p.clone());
            }
        } else {
            let chat = example.get("chatInfo")?;
            j.insert("thread_id".into(), chat.get("threadId")?.clone());
            j.insert("message_id".into(), chat.get("messageId")?.clone());
            j.insert(
                "organizer".into(),
                m.get("organizer")?.get("user")?.get("id")?.clone(),
            );
        }
        if let Some(t) = tenant {
            j.insert("tenant".into(), t.into());
        }
        format!("join_meeting: {}", Value::Object(j))
    } else {
        let targets: Vec<Value> = example
            .get("targets")?
            .as_array()?
            .iter()
            .map(|t| target_words(t.get("identity")?))
            .collect::<Option<_>>()?;
        let mut c = serde_json::Map::new();
        c.insert("to".into(), Value::Array(targets));
        if let Some(s) = example.get("subject") {
            c.insert("subject".into(), s.clone());
        }
        format!("call: {}", Value::Object(c))
    };
    Some(api_create_body(&action, bot))
}

/// The create-call body an `api` run whose one step is `step` sends as `bot`.
fn api_create_body(step: &str, bot: Bot) -> Value {
    let f = flow(&format!(
        "flow: seed\ntrigger: {{api: {{}}}}\nstart: a\nsteps:\n  a: {{{step}}}\n"
    ));
    let mut s = Session::new(&f, "run", bot);
    let sent = feed(
        &f,
        &mut s,
        Event::ApiStart {
            params: serde_json::Map::new(),
        },
    );
    match sent.as_slice() {
        [Command::CreateCall { body, .. }] => serde_json::to_value(body).expect("serialises"),
        other => panic!("expected one create_call, got {other:?}"),
    }
}

#[test]
fn create_call_requests_say_only_what_the_seeds_say() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut within_count = 0;
    let mut exact = 0;
    for e in seed_examples("003") {
        let http = e.http.as_deref().unwrap_or("");
        if !http.starts_with("POST ")
            || !http.trim_end().ends_with("/communications/calls")
            || is_notification(&e)
        {
            continue;
        }
        let Some(body) = engine_create_for(&e.json) else {
            continue;
        };
        let (ours, theirs) = (normalize(&body), normalize(&e.json));
        assert!(
            within(&ours, &theirs),
            "{}: the engine says something the page does not:\n ours: {ours}\n page: {theirs}",
            e.location()
        );
        within_count += 1;
        if ours == theirs {
            exact += 1;
        }
    }
    assert!(
        within_count >= 5,
        "only {within_count} create-call examples compared"
    );
    assert!(
        exact >= 1,
        "no create-call example matched exactly (the PSTN one should)"
    );
}

#[test]
fn every_seed_notification_becomes_the_events_it_says() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut seen = 0;
    for e in all_examples().iter().filter(|e| is_notification(e)) {
        let list = parse_batch(e.json.to_string().as_bytes())
            .unwrap_or_else(|err| panic!("{}: {err}", e.location()));
        let raw: Vec<Value> = match e.json.get("value") {
            Some(Value::Array(v)) => v.clone(),
            _ => vec![e.json.clone()],
        };
        for (n, r) in list.iter().zip(&raw) {
            let events = Event::from_notification(n);
            let data = r.get("resourceData").cloned().unwrap_or(Value::Null);
            let resource = r
                .get("resourceUrl")
                .or_else(|| r.get("resource"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            let at = e.location();
            if resource.contains("/operations/") {
                assert!(
                    matches!(events.as_slice(), [Event::Operation(_)]),
                    "{at}: {events:?}"
                );
            } else if resource.ends_with("/participants") {
                let Some([Event::Roster { participants, .. }]) = Some(events.as_slice()) else {
                    panic!("{at}: a roster gives one roster event: {events:?}");
                };
                assert!(!participants.is_empty(), "{at}");
            } else if resource.contains("contentsharingsessions") {
                assert!(
                    events.is_empty(),
                    "{at}: content sharing is ignored: {events:?}"
                );
            } else if let Some(state) = data.get("state").and_then(Value::as_str) {
                let got = match events.first() {
                    Some(Event::CallState(c)) => c.state.as_str().to_owned(),
                    Some(Event::IncomingCall(_)) => "incoming".into(),
                    other => panic!("{at}: a state notification gave {other:?}"),
                };
                assert!(got.eq_ignore_ascii_case(state), "{at}: {got} for {state}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} seed notifications checked");
}

/// The notification examples of one seed, in page order.
fn notifications(prefix: &str) -> Vec<Value> {
    seed_examples(prefix)
        .into_iter()
        .filter(is_notification)
        .map(|e| e.json)
        .collect()
}

const TRANSFER_FLOW: &str = r#"
flow: seed-transfer
trigger: { incoming_call: {} }
start: a
steps:
  a: { answer: {}, next: t }
  t:
    transfer: { to: { user: "550fae72-d251-43ec-868c-373732c2704f", display_name: "Heidi Steen" } }
    on_failure: f
  f:
    log: "failed: ${call.result.message}"
"#;

fn entered(s: &Session, step: &str, via: &str) -> bool {
    s.timeline.steps().any(|x| x == (step, via))
}

#[test]
fn the_seeds_blind_transfer_notifications_complete_or_fail_it() {
    if !crate::support::require::seeds() {
        return;
    }
    let page = notifications("000");
    let f = flow(TRANSFER_FLOW);
    let start = |f: &Flow| {
        let mut s = answered(f, CALLER, Bot::new("https://bot.contoso.com/api/calls"));
        let sent = feed(
            f,
            &mut s,
            Event::CallState(StateChange::new(CALLER, CallState::Established)),
        );
        assert!(
            matches!(sent.as_slice(), [Command::Transfer { .. }]),
            "{sent:?}"
        );
        s
    };
    // transferring, transferAccepted, terminated 0/7015.
    let mut s = start(&f);
    for body in &page[0..3] {
        assert!(
            feed_body(&f, &mut s, body).is_empty(),
            "nothing is sent while transferring"
        );
    }
    assert_eq!(s.outcome(), Some(Outcome::Transferred));
    // transferring, then established again with 500/7000.
    let mut s = start(&f);
    feed_body(&f, &mut s, &page[0]);
    let sent = feed_body(&f, &mut s, &page[3]);
    assert!(entered(&s, "f", "on_failure"), "{}", s.timeline);
    assert!(
        matches!(sent.as_slice(), [Command::Hangup { .. }]),
        "the flow ends; the bot hangs up: {sent:?}"
    );
    // The same failure before `transferring` (reordered), and duplicates.
    let mut s = start(&f);
    feed_body(&f, &mut s, &page[3]);
    feed_body(&f, &mut s, &page[3]);
    feed_body(&f, &mut s, &page[0]);
    assert!(entered(&s, "f", "on_failure"), "{}", s.timeline);
    assert_eq!(s.outcome(), Some(Outcome::HungUp));
}

#[test]
fn the_seeds_consultative_transfer_notifications_complete_or_fail_it() {
    if !crate::support::require::seeds() {
        return;
    }
    let page = notifications("000");
    let consult = "e5d39592-99bd-4db8-bca8-30fb894ec51d";
    let f = flow(
        r#"
flow: seed-consult
trigger: { incoming_call: {} }
start: a
steps:
  a: { answer: {}, next: t }
  t:
    consultative_transfer: { to: { user: "550fae72-d251-43ec-868c-373732c2704f", display_name: "Heidi Steen" } }
    on_failure: f
  f:
    log: "failed"
"#,
    );
    let start = |f: &Flow| {
        let mut s = answered(f, CALLER, Bot::new("https://bot.contoso.com/api/calls"));
        let sent = feed(
            f,
            &mut s,
            Event::CallState(StateChange::new(CALLER, CallState::Established)),
        );
        let Some(Command::CreateCall { tag, .. }) = sent.first() else {
            panic!("{sent:?}");
        };
        let tag = tag.clone();
        feed(
            f,
            &mut s,
            Event::CallCreated {
                tag,
                call_id: consult.into(),
            },
        );
        let sent = feed(
            f,
            &mut s,
            Event::CallState(StateChange::new(consult, CallState::Established)),
        );
        assert!(
            matches!(sent.as_slice(), [Command::Transfer { .. }]),
            "{sent:?}"
        );
        s
    };
    let mut s = start(&f);
    for body in &page[4..7] {
        feed_body(&f, &mut s, body);
    }
    assert_eq!(s.outcome(), Some(Outcome::Transferred), "{}", s.timeline);
    let mut s = start(&f);
    feed_body(&f, &mut s, &page[4]);
    let sent = feed_body(&f, &mut s, &page[7]);
    assert!(entered(&s, "f", "on_failure"), "{}", s.timeline);
    assert!(
        sent.iter()
            .any(|c| matches!(c, Command::Hangup { call_id, .. } if call_id == consult)),
        "after a 7700 failure the consultation call is hung up: {sent:?}"
    );
}

#[test]
fn the_old_betas_operation_notifications_complete_a_transfer() {
    if !crate::support::require::seeds() {
        return;
    }
    let page = notifications("002");
    let call = "57DAB8B1894C409AB240BD8BEAE78896";
    let f = flow(TRANSFER_FLOW);
    let mut s = answered(&f, call, Bot::new("https://bot.contoso.com/api/calls"));
    feed(
        &f,
        &mut s,
        Event::CallState(StateChange::new(call, CallState::Established)),
    );
    for body in &page[0..3] {
        feed_body(&f, &mut s, body);
    }
    assert_eq!(s.outcome(), Some(Outcome::Transferred), "{}", s.timeline);
}

#[test]
fn the_seeds_join_notifications_join_in_any_order() {
    if !crate::support::require::seeds() {
        return;
    }
    let page = notifications("003");
    let meeting = "2f1a1100-b174-40a0-aba7-0b405e01ed92";
    let bodies: Vec<&Value> = page
        .iter()
        .filter(|b| b.to_string().contains(meeting))
        .collect();
    assert!(
        bodies.len() >= 3,
        "establishing, established and a roster for the meeting"
    );
    let f = flow(
        r#"
flow: seed-join
trigger: { api: {} }
start: j
steps:
  j:
    join_meeting:
      thread_id: "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2"
      message_id: "0"
      organizer: "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96"
"#,
    );
    let mut s = Session::new(&f, "run", Bot::new("https://bot.contoso.com/callback"));
    let sent = feed(
        &f,
        &mut s,
        Event::ApiStart {
            params: serde_json::Map::new(),
        },
    );
    let Some(Command::CreateCall { tag, .. }) = sent.first() else {
        panic!("{sent:?}");
    };
    let tag = tag.clone();
    feed(
        &f,
        &mut s,
        Event::CallCreated {
            tag,
            call_id: meeting.into(),
        },
    );
    // established first, then the stale establishing, then the roster.
    feed_body(&f, &mut s, bodies[1]);
    feed_body(&f, &mut s, bodies[0]);
    for b in &bodies[2..] {
        feed_body(&f, &mut s, b);
    }
    assert_eq!(s.outcome(), Some(Outcome::Joined), "{}", s.timeline);
    assert!(
        s.timeline
            .entries
            .iter()
            .any(|e| matches!(&e.what, Entry::Note(t) if t.contains("stale"))),
        "{}",
        s.timeline
    );
    assert!(
        s.main().is_some_and(|m| m.roster >= 1),
        "the roster was read"
    );
}

/// The seeds' bot: its application instance, name and tenant (example 9
/// of the create-call page).
fn seeds_identity(tenant: &str) -> callflow::engine::BotIdentity {
    callflow::engine::BotIdentity {
        application_id: Some("2891555a-92ff-42e6-80fa-6e1300c6b5c6".into()),
        display_name: Some("Calling Bot".into()),
        tenant_id: Some(tenant.into()),
        instances: vec![callflow::engine::Instance {
            id: "3d913abb-aec0-4964-8fa6-3c6850c4f278".into(),
            number: Some("+14255550100".into()),
            name: None,
        }],
    }
}

/// The create-call request example of the create-call page that `pick` chooses.
fn create_example(pick: impl Fn(&Value) -> bool) -> Value {
    let found: Vec<Example> = seed_examples("003")
        .into_iter()
        .filter(|e| {
            let http = e.http.as_deref().unwrap_or("");
            http.starts_with("POST ")
                && http.trim_end().ends_with("/communications/calls")
                && !is_notification(e)
                && e.json.get("id").is_none()
                && pick(&e.json)
        })
        .collect();
    assert!(!found.is_empty(), "no such create-call example");
    normalize(&found[0].json)
}

/// `v` without the members at `paths` (`/a/b`).
fn without(v: &Value, paths: &[&str]) -> Value {
    let mut v = v.clone();
    for path in paths {
        let (parent, key) = path.rsplit_once('/').expect("a path");
        if let Some(Value::Object(m)) = v.pointer_mut(parent) {
            m.remove(key);
        } else if parent.is_empty()
            && let Value::Object(m) = &mut v
        {
            m.remove(key);
        }
    }
    v
}

/// The create-call body an `api` run of `step` sends, as the configured
/// `identity` speaks.
fn api_create(step: &str, identity: &callflow::engine::BotIdentity) -> Value {
    let bot = identity
        .for_api("https://bot.contoso.com/callback", None)
        .expect("the default instance");
    normalize(&api_create_body(step, bot))
}

/// Every create call the engine makes from a configured identity, field by
/// field against the create-call page's example of the same case: PSTN,
/// a consultation call, P2P to a user, a group call, a join by
/// joinMeetingId. Where the page's example says less (no `tenantId` or
/// `source` in the P2P example), only those two members differ, and they
/// are exactly what the PSTN example shows; where it says what the flow
/// language cannot (`callOptions`, `preFetchMedia`, `direction` in a
/// request), those are named and left out.
#[test]
fn create_calls_from_the_configured_identity_are_the_seeds_bodies() {
    if !crate::support::require::seeds() {
        return;
    }
    let tenant = "aa67bd4c-8475-432d-bd41-39f255720e0a";
    let identity = seeds_identity(tenant);

    // PSTN, example 9: the same body, member for member.
    let pstn = create_example(|j| {
        j.pointer("/targets/0/identity/phone").is_some() && j.pointer("/mediaConfig/blob").is_none()
    });
    let ours = api_create("call: { to: { phone: \"+12345678901\" } }", &identity);
    assert_eq!(ours, pstn, "PSTN");

    // A consultation call to a number, from a call to the bot's number:
    // the same PSTN body, as the instance that was called.
    let f = flow(
        "flow: seed\ntrigger: {incoming_call: {}}\nstart: a\nsteps:\n  a: {answer: {}, next: c}\n  c: {consultative_transfer: {to: {phone: \"+12345678901\"}}}\n",
    );
    let bot = identity.for_incoming(
        "https://bot.contoso.com/callback",
        &Party::phone("+14255550100"),
    );
    let mut s = answered(&f, CALLER, bot);
    let sent = feed(
        &f,
        &mut s,
        Event::CallState(StateChange::new(CALLER, CallState::Established)),
    );
    let Some(Command::CreateCall { body, .. }) = sent.first() else {
        panic!("the consultation call first: {sent:?}");
    };
    assert_eq!(
        normalize(&serde_json::to_value(body).expect("json")),
        pstn,
        "consultation"
    );

    // P2P to a Teams user, example 1: the page sends no source or
    // tenantId; ours adds exactly the PSTN example's.
    let p2p = create_example(|j| {
        j.get("source").is_none()
            && j.pointer("/targets/0/identity/user").is_some()
            && j.pointer("/mediaConfig/blob").is_none()
    });
    let ours = api_create(
        "call: { to: { user: \"112f7296-5fa4-42ca-bae8-6a692b15d4b8\", display_name: John } }",
        &identity,
    );
    assert_eq!(
        without(&ours, &["/source", "/tenantId"]),
        without(&p2p, &["/callOptions"]),
        "P2P"
    );
    assert_eq!(ours["source"], pstn["source"]);
    assert_eq!(ours["tenantId"], pstn["tenantId"]);

    // A group call, example 3, from a bot with no instance: its application.
    let group = create_example(|j| {
        j.get("targets")
            .and_then(Value::as_array)
            .is_some_and(|t| t.len() == 2)
            && j.pointer("/mediaConfig/blob").is_none()
    });
    let app = callflow::engine::BotIdentity {
        application_id: Some("dd3885da-f9ab-486b-bfae-85de3d445555".into()),
        display_name: Some("TestBot".into()),
        tenant_id: Some(tenant.into()),
        instances: Vec::new(),
    };
    let ours = api_create(
        "call: { to: [ { user: \"98da8a1a-1b87-452c-a713-65d3f10b5555\", display_name: user1 }, { user: \"bf5aae9a-d11d-47a8-93b1-782504c95555\", display_name: user2 } ], subject: \"Create a group call with service hosted media\" }",
        &app,
    );
    assert_eq!(
        without(&ours, &["/tenantId"]),
        without(
            &group,
            &["/direction", "/mediaConfig/removeFromDefaultAudioGroup"]
        ),
        "group"
    );
    assert_eq!(ours["tenantId"], tenant);

    // Join by joinMeetingId and passcode, example 7: tenantId from the
    // configuration (the flow names none).
    let join = create_example(|j| {
        j.pointer("/meetingInfo/joinMeetingId").is_some()
            && j.pointer("/meetingInfo/passcode")
                .is_some_and(|p| !p.is_null())
    });
    let join_tenant = join["tenantId"].as_str().expect("the page's tenant");
    let ours = api_create(
        "join_meeting: { join_meeting_id: \"1234567\", passcode: psw123 }",
        &seeds_identity(join_tenant),
    );
    assert_eq!(
        ours,
        without(&join, &["/mediaConfig/preFetchMedia"]),
        "join"
    );
}

/// A `call` with `from:` goes out as the instance it names (by number or
/// id), whatever the run speaks as; a `from` naming no instance fails the
/// step with the configured ones named.
#[test]
fn a_calls_from_picks_the_instance_it_goes_out_as() {
    let mut identity = seeds_identity("aa67bd4c-8475-432d-bd41-39f255720e0a");
    identity.instances.push(callflow::engine::Instance {
        id: "branch-instance".into(),
        number: Some("+12065550180".into()),
        name: Some("Branch office".into()),
    });
    for from in ["+12065550180", "branch-instance"] {
        let ours = api_create(
            &format!("call: {{ to: {{ phone: \"+12345678901\" }}, from: \"{from}\" }}"),
            &identity,
        );
        assert_eq!(
            ours["source"]["identity"]["applicationInstance"],
            json!({"id": "branch-instance", "displayName": "Branch office"}),
            "from {from}: {ours}"
        );
    }
    let ours = api_create("call: { to: { phone: \"+12345678901\" } }", &identity);
    assert_eq!(
        ours["source"]["identity"]["applicationInstance"]["id"],
        "3d913abb-aec0-4964-8fa6-3c6850c4f278",
        "without from, the default instance"
    );
    let f = flow(
        "flow: seed\ntrigger: {api: {}}\nstart: a\nsteps:\n  a: {call: {to: {phone: \"+12345678901\"}, from: \"+33100000000\"}, on_failure: b}\n  b: {log: refused}\n",
    );
    let bot = identity
        .for_api("https://bot.contoso.com/callback", None)
        .expect("bot");
    let mut s = Session::new(&f, "run", bot);
    let sent = feed(
        &f,
        &mut s,
        Event::ApiStart {
            params: serde_json::Map::new(),
        },
    );
    assert!(sent.is_empty(), "nothing is sent: {sent:?}");
    let text = s.timeline.render(f.timezone);
    assert!(
        text.contains("`from: +33100000000` names no application instance")
            && text.contains("+14255550100, +12065550180"),
        "{text}"
    );
    assert!(
        s.step_name(&f) == Some("b") || text.contains("b (on_failure)"),
        "{text}"
    );
}
