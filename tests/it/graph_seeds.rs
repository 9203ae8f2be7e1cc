//! `graph` against Microsoft's own examples.
//!
//! Every JSON example of the reference pages in `../shared/seeds/` (call:
//! transfer in French v1.0, Chinese beta and Russian old beta; create call
//! and get call in French v1.0) is extracted and checked: notifications read
//! with `parse_batch` into the values the page shows; request bodies read
//! into the typed requests and write back to the same JSON (ignoring
//! `@odata.type` keys and nulls); call resources read into `Call`. The
//! `tolerant_reader` module then covers the variants and defects the pages
//! do not show.

use crate::support::seeds;

use std::collections::BTreeMap;

use callflow::graph::{
    Call, CallDirection, CallOptions, CallState, CallsRoot, ChangeType, ChatInfo, Code,
    EndpointType, Identity, IdentitySet, InvitationParticipantInfo, MediaConfig, MediaInfo,
    MeetingInfo, Notification, NotificationPayload, OperationStatus, ParticipantInfo,
    ResourceTarget, TransferRequest, parse_batch,
};
use seeds::{Example, normalize};
use serde_json::Value;

/// What an example is, from its content and the HTTP line before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A `commsNotifications` body posted to the bot.
    Notification,
    /// A `POST .../transfer` body.
    Transfer,
    /// A `POST /communications/calls` body.
    CreateCall,
    /// A call returned by `GET` or `create call`.
    CallResponse,
}

fn classify(example: &Example) -> Kind {
    let json = &example.json;
    let http = example.http.as_deref().unwrap_or("");
    if json.get("value").is_some_and(Value::is_array) || json.get("resourceData").is_some() {
        Kind::Notification
    } else if json.get("transferTarget").is_some() {
        Kind::Transfer
    } else if http.starts_with("HTTP/1.1 2") {
        Kind::CallResponse
    } else if http.starts_with("POST ")
        && http
            .trim_end_matches('/')
            .ends_with("/communications/calls")
    {
        Kind::CreateCall
    } else {
        panic!(
            "{}: cannot tell what this example is (after {http:?})",
            example.location()
        )
    }
}

fn examples(kind: Kind) -> Vec<Example> {
    seeds::all_examples()
        .into_iter()
        .filter(|e| classify(e) == kind)
        .collect()
}

fn examples_in(seed_prefix: &str, kind: Kind) -> Vec<Example> {
    examples(kind)
        .into_iter()
        .filter(|e| e.seed.starts_with(seed_prefix))
        .collect()
}

/// Minimum number of examples per seed: notifications, transfers,
/// create-call bodies, call responses.
const EXPECTED: &[(&str, &str, [usize; 4])] = &[
    (
        "000_",
        "call: transfer (French, v1.0): 5 kinds x (request + 4 notifications)",
        [20, 5, 0, 0],
    ),
    (
        "001_",
        "call: transfer (Chinese, beta): 4 kinds x (request + 4 notifications)",
        [16, 4, 0, 0],
    ),
    (
        "002_",
        "call: transfer (Russian, old beta): 2 x (request + 3 notifications)",
        [6, 2, 0, 0],
    ),
    (
        "003_",
        "create call (French, v1.0): 10 requests, 10 responses, 9 notifications",
        [9, 0, 10, 10],
    ),
    ("004_", "get call (French, v1.0): 2 responses", [0, 0, 0, 2]),
];

#[test]
fn every_seed_yields_its_examples() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut found: BTreeMap<String, [usize; 4]> = BTreeMap::new();
    for example in seeds::all_examples() {
        let slot = match classify(&example) {
            Kind::Notification => 0,
            Kind::Transfer => 1,
            Kind::CreateCall => 2,
            Kind::CallResponse => 3,
        };
        found.entry(example.seed.clone()).or_default()[slot] += 1;
    }
    for (prefix, what, minimum) in EXPECTED {
        let (name, counts) = found
            .iter()
            .find(|(name, _)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no examples at all from seed {prefix}* ({what})"));
        for (i, label) in [
            "notifications",
            "transfer bodies",
            "create-call bodies",
            "call responses",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                counts[i] >= minimum[i],
                "{name} ({what}): found {} {label}, expected at least {}",
                counts[i],
                minimum[i]
            );
        }
    }
    let total: usize = found.values().flatten().sum();
    assert!(
        total >= 84,
        "found {total} examples in all, expected at least 84"
    );
}

#[test]
fn the_extractor_skips_page_metadata_and_repairs_trailing_commas() {
    if !crate::support::require::seeds() {
        return;
    }
    // The markdown pages keep `{ "blockType": ... }` metadata in HTML comments:
    // none of it may come out as an example.
    for example in seeds::all_examples() {
        assert!(
            example.json.get("blockType").is_none(),
            "{}: metadata taken as an example",
            example.location()
        );
        assert!(
            example.json.get("type").is_none(),
            "{}: page annotation taken as an example",
            example.location()
        );
    }
    let (fixed, repaired) = seeds::strip_trailing_commas(r#"{"a": [1, 2, ], "b": "x,}", }"#);
    assert!(repaired);
    assert_eq!(
        serde_json::from_str::<Value>(&fixed).expect("valid now"),
        serde_json::json!({"a": [1, 2], "b": "x,}"})
    );
}

// ---------------------------------------------------------------------------
// (a) notifications

/// Every notification example, read, with the JSON of each notification.
fn read_notifications() -> Vec<(Example, Vec<(Value, Notification)>)> {
    examples(Kind::Notification)
        .into_iter()
        .map(|example| {
            // parse_batch gets the page's bytes as they are: no notification
            // example needed the trailing-comma repair.
            assert!(
                !example.repaired,
                "{}: notification example had trailing commas",
                example.location()
            );
            let batch = parse_batch(example.text.as_bytes())
                .unwrap_or_else(|e| panic!("{}: parse_batch failed: {e}", example.location()));
            let raw: Vec<Value> = example.json["value"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![example.json.clone()]);
            assert_eq!(
                batch.len(),
                raw.len(),
                "{}: wrong number of notifications",
                example.location()
            );
            let pairs = raw.into_iter().zip(batch).collect();
            (example, pairs)
        })
        .collect()
}

fn code_of(value: &Value) -> Option<Code> {
    match value {
        Value::Number(n) => n.as_i64().map(Code::Number),
        Value::String(s) => Some(Code::from_text(s)),
        _ => None,
    }
}

/// Checks one read notification against the JSON it came from.
fn check_against_json(at: &str, raw: &Value, read: &Notification) {
    let change = raw["changeType"]
        .as_str()
        .expect("seed notifications have a changeType");
    assert_eq!(
        read.change_type.as_str(),
        change.to_ascii_lowercase(),
        "{at}: changeType"
    );
    let resource = raw
        .get("resourceUrl")
        .or_else(|| raw.get("resource"))
        .and_then(Value::as_str)
        .expect("a resource");
    assert_eq!(read.resource, resource, "{at}: resource");
    let call_id = resource
        .split("/calls/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a call id");
    assert_eq!(read.path.call_id, call_id, "{at}: call id");
    assert_eq!(
        read.callback_uri.as_deref(),
        raw.get("callbackUri").and_then(Value::as_str),
        "{at}: callbackUri"
    );

    let data = &raw["resourceData"];
    let check_result = |result: Option<&callflow::graph::ResultInfo>| {
        let expected = data.get("resultInfo");
        assert_eq!(
            result.is_some(),
            expected.is_some(),
            "{at}: resultInfo presence"
        );
        if let (Some(result), Some(expected)) = (result, expected) {
            assert_eq!(
                result.code,
                expected.get("code").and_then(code_of),
                "{at}: code"
            );
            let subcode = expected.get("subcode").or_else(|| expected.get("subCode"));
            assert_eq!(result.subcode, subcode.and_then(code_of), "{at}: subcode");
            assert_eq!(
                result.message.as_deref(),
                expected.get("message").and_then(Value::as_str),
                "{at}: message"
            );
        }
    };
    match &read.payload {
        NotificationPayload::Call(call) => {
            assert_eq!(
                data["@odata.type"], "#microsoft.graph.call",
                "{at}: read as a call"
            );
            let state = call
                .state
                .as_ref()
                .expect("seed call notifications have a state");
            assert!(
                !matches!(state, CallState::Unknown(_)),
                "{at}: state {state} not recognised"
            );
            assert_eq!(Some(state.as_str()), data["state"].as_str(), "{at}: state");
            assert_eq!(
                call.termination_reason.as_deref(),
                data.get("terminationReason").and_then(Value::as_str)
            );
            assert_eq!(
                call.replaces_context.as_deref(),
                data.get("replacesContext").and_then(Value::as_str)
            );
            assert_eq!(
                call.id.as_deref(),
                data.get("id").and_then(Value::as_str),
                "{at}: id"
            );
            assert_eq!(&call.raw, data, "{at}: raw resourceData kept");
            check_result(call.result_info.as_ref());
        }
        NotificationPayload::Operation(op) => {
            assert_eq!(
                data["@odata.type"], "#microsoft.graph.commsOperation",
                "{at}: read as an operation"
            );
            assert_eq!(
                op.status.as_ref().map(OperationStatus::as_str),
                data["status"].as_str(),
                "{at}: status"
            );
            assert_eq!(
                op.client_context.as_deref(),
                data["clientContext"].as_str(),
                "{at}: clientContext"
            );
            assert_eq!(
                op.id.as_deref(),
                read.path.operation_id(),
                "{at}: operation id from the path"
            );
            check_result(op.result_info.as_ref());
        }
        NotificationPayload::Participants(participants) => {
            assert!(
                read.path.is_participants(),
                "{at}: roster on a non-roster path"
            );
            let expected: usize = data
                .as_array()
                .expect("roster data is an array")
                .iter()
                .map(|entry| {
                    entry
                        .get("participants")
                        .and_then(Value::as_array)
                        .map_or(1, Vec::len)
                })
                .sum();
            assert_eq!(participants.len(), expected, "{at}: participant count");
        }
        NotificationPayload::Other(value) => {
            assert!(
                read.path.is_content_sharing(),
                "{at}: only content sharing should be left as Other"
            );
            assert_eq!(value, data, "{at}: Other keeps resourceData");
        }
    }
}

#[test]
fn every_notification_example_reads_as_the_page_shows() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut count = 0;
    for (example, pairs) in read_notifications() {
        for (raw, read) in &pairs {
            check_against_json(&example.location(), raw, read);
            count += 1;
        }
    }
    assert!(count >= 51, "only {count} notifications checked");
}

/// Transfer notifications, each with the transfer request it follows.
fn transfer_outcomes() -> Vec<(String, bool, Notification)> {
    let mut consultative = None;
    let mut out = Vec::new();
    let all = seeds::all_examples();
    let transfer_pages = ["000_", "001_", "002_"];
    for example in all
        .iter()
        .filter(|e| transfer_pages.iter().any(|p| e.seed.starts_with(p)))
    {
        match classify(example) {
            Kind::Transfer => {
                let request: TransferRequest =
                    serde_json::from_value(example.json.clone()).expect("a transfer body");
                consultative = Some(request.transfer_target.replaces_call_id.is_some());
            }
            Kind::Notification => {
                let is_consultative =
                    consultative.expect("notifications follow a transfer request");
                for n in parse_batch(example.text.as_bytes()).expect("reads") {
                    out.push((example.location(), is_consultative, n));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn transfer_notifications_follow_the_documented_sequence() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for (at, consultative, n) in transfer_outcomes() {
        let NotificationPayload::Call(call) = &n.payload else {
            continue;
        };
        match call.state.as_ref().expect("a state") {
            CallState::Transferring => *tally.entry("transferring").or_default() += 1,
            CallState::TransferAccepted => *tally.entry("transferAccepted").or_default() += 1,
            CallState::Terminated => {
                assert_eq!(
                    n.change_type,
                    ChangeType::Deleted,
                    "{at}: a terminated call is deleted"
                );
                if consultative {
                    assert_eq!(
                        call.termination_reason.as_deref(),
                        Some("AppTransferred"),
                        "{at}"
                    );
                    *tally.entry("AppTransferred").or_default() += 1;
                } else {
                    let result = call
                        .result_info
                        .as_ref()
                        .expect("a completed blind transfer has a resultInfo");
                    assert_eq!(
                        (result.code_number(), result.subcode_number()),
                        (Some(0), Some(7015)),
                        "{at}"
                    );
                    assert_eq!(
                        result.message.as_deref(),
                        Some("GracefulTransferCompleted"),
                        "{at}"
                    );
                    *tally.entry("7015").or_default() += 1;
                }
            }
            CallState::Established => {
                // A failed transfer: back to established, with the reason.
                assert_eq!(n.change_type, ChangeType::Updated, "{at}");
                let result = call
                    .result_info
                    .as_ref()
                    .expect("a failed transfer has a resultInfo");
                assert_eq!(result.code_number(), Some(500), "{at}");
                let expected = if consultative { 7700 } else { 7000 };
                assert_eq!(result.subcode_number(), Some(expected), "{at}");
                *tally
                    .entry(if consultative { "7700" } else { "7000" })
                    .or_default() += 1;
                if call.replaces_context.is_some() {
                    assert!(
                        consultative,
                        "{at}: replacesContext only after a consultative transfer"
                    );
                    *tally.entry("replacesContext").or_default() += 1;
                }
            }
            other => panic!("{at}: unexpected state {other} in a transfer sequence"),
        }
        // "State only moves forward", except for the documented failure case.
        let rank = call.state.as_ref().and_then(CallState::rank);
        assert!(rank.is_some(), "{at}: every seed state has a rank");
    }
    let expected = [
        ("transferring", 9),
        ("transferAccepted", 9),
        ("7015", 5),
        ("AppTransferred", 6),
        ("7000", 5),
        ("7700", 4),
        ("replacesContext", 2),
    ];
    for (what, minimum) in expected {
        let got = tally.get(what).copied().unwrap_or(0);
        assert!(
            got >= minimum,
            "{what}: {got} notifications, expected at least {minimum} ({tally:?})"
        );
    }
}

#[test]
fn old_beta_sends_operations_with_text_subcodes() {
    if !crate::support::require::seeds() {
        return;
    }
    let operations: Vec<_> = transfer_outcomes()
        .into_iter()
        .filter_map(|(at, _, n)| match n.payload {
            NotificationPayload::Operation(op) => Some((at, n.change_type, n.path, op)),
            _ => None,
        })
        .collect();
    assert_eq!(
        operations.len(),
        4,
        "the Russian page shows 2 x (transferring, transferAccepted)"
    );
    for (at, change, path, op) in operations {
        assert_eq!(path.root, CallsRoot::App, "{at}");
        assert_eq!(path.call_id, "57DAB8B1894C409AB240BD8BEAE78896", "{at}");
        assert_eq!(
            op.id.as_deref(),
            Some("0FE0623FD62842EDB4BD8AC290072CC5"),
            "{at}"
        );
        assert_eq!(op.kind.as_deref(), Some("commsOperation"), "{at}");
        assert_eq!(
            op.client_context.as_deref(),
            Some("d45324c1-fcb5-430a-902c-f20af696537c"),
            "{at}"
        );
        let result = op.result_info.expect("a resultInfo");
        assert_eq!(
            result.code,
            Some(Code::Number(200)),
            "{at}: \"200\" reads as a number"
        );
        match (change, op.status.expect("a status")) {
            (ChangeType::Updated, OperationStatus::Running) => {
                assert_eq!(
                    result.subcode,
                    Some(Code::Text("transferring".into())),
                    "{at}"
                );
            }
            (ChangeType::Deleted, OperationStatus::Completed) => {
                assert_eq!(
                    result.subcode,
                    Some(Code::Text("transferAccepted".into())),
                    "{at}"
                );
            }
            other => panic!("{at}: unexpected {other:?}"),
        }
    }
}

#[test]
fn create_call_notifications_carry_states_meetings_rosters_and_sharing() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut states = Vec::new();
    let mut rosters = Vec::new();
    let mut sharing = Vec::new();
    for (example, pairs) in read_notifications()
        .into_iter()
        .filter(|(e, _)| e.seed.starts_with("003_"))
    {
        for (_, n) in pairs {
            assert_eq!(
                n.path.root,
                CallsRoot::Communications,
                "{}",
                example.location()
            );
            match n.payload {
                NotificationPayload::Call(call) => states.push((n.callback_uri, call)),
                NotificationPayload::Participants(p) => rosters.push((n.resource, p)),
                NotificationPayload::Other(_) => sharing.push((n.change_type, n.path.target)),
                NotificationPayload::Operation(_) => {
                    panic!("{}: no operation expected", example.location())
                }
            }
        }
    }
    // establishing then established, for the P2P call and for the meeting.
    let names: Vec<&str> = states
        .iter()
        .filter_map(|(_, c)| c.state.as_ref().map(CallState::as_str))
        .collect();
    assert_eq!(
        names,
        ["establishing", "established", "establishing", "established"]
    );
    assert!(
        states
            .iter()
            .all(|(uri, _)| uri.as_deref() == Some("https://bot.contoso.com/callback"))
    );
    assert_eq!(states[1].1.direction, Some(CallDirection::Outgoing));
    for (_, call) in &states[2..] {
        let Some(MeetingInfo::Organizer(meeting)) = &call.meeting_info else {
            panic!("an organizer meeting")
        };
        assert_eq!(
            meeting.organizer.user.as_ref().map(|u| u.id.as_str()),
            Some("5810cede-f3cc-42eb-b2c1-e9bd5d53ec96")
        );
        assert_eq!(meeting.allow_conversation_without_host, Some(true));
        let chat = call.chat_info.as_ref().expect("a chat");
        assert!(chat.thread_id.starts_with("19:meeting_"));
    }

    // The roster: a plain array, then a delta roster with sequence numbers.
    assert_eq!(rosters.len(), 2);
    let (_, plain) = &rosters[0];
    let ids: Vec<&str> = plain.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "0d7664b6-6432-43ed-8d27-d9e7adec188c",
            "05491616-385f-44a8-9974-18cc5f9933c1"
        ]
    );
    assert_eq!(
        plain[0]
            .info
            .identity
            .user
            .as_ref()
            .and_then(|u| u.display_name.as_deref()),
        Some("John")
    );
    assert_eq!(plain[0].is_muted, Some(true));
    assert_eq!(plain[0].media_streams.len(), 3);
    assert_eq!(
        plain[1]
            .info
            .identity
            .application
            .as_ref()
            .map(|a| a.id.as_str()),
        Some("2891555a-92ff-42e6-80fa-6e1300c6b5c6")
    );
    let (resource, delta) = &rosters[1];
    assert_eq!(
        resource, "/communications/calls/421f7700-f4ad-4ea9-a3fc-c1d2195675ad/participants",
        "resourceUrl wins over resource"
    );
    assert_eq!(delta.len(), 2);
    assert!(delta.iter().all(|p| p.roster_sequence_number == Some(1)));
    assert!(!delta[0].is_removed());
    assert_eq!(
        delta[1]
            .removed_state
            .as_ref()
            .and_then(|r| r.reason.as_deref()),
        Some("Removed from roster")
    );

    // Content sharing: created, updated, deleted, left as Other.
    let changes: Vec<ChangeType> = sharing.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        changes,
        [
            ChangeType::Created,
            ChangeType::Updated,
            ChangeType::Deleted
        ]
    );
    assert!(
        sharing
            .iter()
            .all(|(_, t)| *t == ResourceTarget::ContentSharingSessions(None))
    );
}

// ---------------------------------------------------------------------------
// (b) request bodies

fn assert_round_trip<T>(example: &Example, value: &Value) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| {
        panic!(
            "{}: does not read as {}: {e}",
            example.location(),
            std::any::type_name::<T>()
        )
    });
    let written = serde_json::to_value(&typed).expect("serialises");
    assert_eq!(
        normalize(&written),
        normalize(value),
        "{}: {} does not write back the same JSON",
        example.location(),
        std::any::type_name::<T>()
    );
    typed
}

fn transfer_kind(request: &TransferRequest) -> &'static str {
    let target = &request.transfer_target;
    match (
        request.transferee.is_some(),
        target.identity.phone.is_some(),
        target.replaces_call_id.is_some(),
    ) {
        (true, _, _) => "out of a group call",
        (false, false, false) => "blind to a user",
        (false, false, true) => "consultative to a user",
        (false, true, false) => "to a PSTN number",
        (false, true, true) => "consultative to a PSTN number",
    }
}

#[test]
fn transfer_bodies_round_trip() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut kinds: BTreeMap<(String, &str), usize> = BTreeMap::new();
    let all = examples(Kind::Transfer);
    for example in &all {
        let request: TransferRequest = assert_round_trip(example, &example.json);
        request
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", example.location()));
        *kinds
            .entry((example.seed[..4].to_owned(), transfer_kind(&request)))
            .or_default() += 1;
    }
    assert!(all.len() >= 11, "only {} transfer bodies", all.len());
    for kind in [
        "blind to a user",
        "consultative to a user",
        "to a PSTN number",
        "consultative to a PSTN number",
        "out of a group call",
    ] {
        assert_eq!(
            kinds.get(&("000_".to_owned(), kind)),
            Some(&1),
            "the v1.0 page shows one transfer {kind}: {kinds:?}"
        );
    }
}

fn create_kind(call: &Call) -> &'static str {
    match (&call.meeting_info, call.targets.as_deref()) {
        (Some(MeetingInfo::JoinMeetingId(m)), _) if m.passcode.is_some() => {
            "join by meeting id with passcode"
        }
        (Some(MeetingInfo::JoinMeetingId(_)), _) => "join by meeting id without passcode",
        (Some(MeetingInfo::Organizer(_)), _) if call.chat_info.is_some() => {
            "join by chat and organizer"
        }
        (None, Some(targets)) if targets.iter().any(|t| t.identity.phone.is_some()) => "PSTN",
        (None, Some([_])) => "peer to peer",
        (None, Some(targets)) if targets.len() > 1 => "group",
        _ => "unexpected",
    }
}

#[test]
fn create_call_bodies_round_trip_with_their_odata_types() {
    if !crate::support::require::seeds() {
        return;
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let all = examples(Kind::CreateCall);
    for example in &all {
        let call: Call = assert_round_trip(example, &example.json);
        *kinds.entry(create_kind(&call)).or_default() += 1;
        let written = serde_json::to_value(&call).expect("serialises");
        for polymorphic in ["mediaConfig", "meetingInfo"] {
            assert_eq!(
                written.get(polymorphic).map(|v| &v["@odata.type"]),
                example.json.get(polymorphic).map(|v| &v["@odata.type"]),
                "{}: {polymorphic} must be written with its @odata.type",
                example.location()
            );
        }
    }
    assert!(all.len() >= 10, "only {} create-call bodies", all.len());
    assert_eq!(kinds.get("unexpected"), None, "{kinds:?}");
    for kind in [
        "peer to peer",
        "group",
        "join by meeting id with passcode",
        "join by meeting id without passcode",
        "join by chat and organizer",
        "PSTN",
    ] {
        assert!(
            kinds.get(kind).is_some_and(|n| *n >= 1),
            "no create-call example {kind}: {kinds:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// (c) call resources

#[test]
fn call_responses_read_into_call() {
    if !crate::support::require::seeds() {
        return;
    }
    let all = examples(Kind::CallResponse);
    assert!(all.len() >= 12, "only {} call responses", all.len());
    for example in &all {
        let mut expected = example.json.clone();
        if let Some(map) = expected.as_object_mut() {
            map.remove("@odata.context");
        }
        let call: Call = assert_round_trip(example, &expected);
        let at = example.location();
        assert!(
            call.id.as_deref().is_some_and(|id| !id.is_empty()),
            "{at}: an id"
        );
        assert!(
            matches!(
                call.state,
                Some(CallState::Establishing | CallState::Established)
            ),
            "{at}: {:?}",
            call.state
        );
        assert_eq!(call.direction, Some(CallDirection::Outgoing), "{at}");
        assert!(call.my_participant_id.is_some(), "{at}: myParticipantId");
        assert!(
            call.source.as_ref().is_some_and(|s| !s.identity.is_empty()),
            "{at}: the bot as source"
        );
    }

    let get = examples_in("004_", Kind::CallResponse);
    let p2p: Call = serde_json::from_value(get[0].json.clone()).expect("a call");
    assert_eq!(
        p2p.id.as_deref(),
        Some("2e1a0b00-2db4-4022-9570-243709c565ab")
    );
    assert_eq!(p2p.state, Some(CallState::Established));
    assert_eq!(
        p2p.source
            .and_then(|s| s.identity.application)
            .and_then(|a| a.display_name)
            .as_deref(),
        Some("Calling Bot")
    );
    let Some(MediaConfig::ServiceHosted(media)) = p2p.media_config else {
        panic!("service-hosted media")
    };
    assert_eq!(media.pre_fetch_media.map(|m| m.len()), Some(2));
    assert_eq!(
        p2p.meeting_info, None,
        "\"meetingInfo\": null reads as None"
    );

    let group: Call = serde_json::from_value(get[1].json.clone()).expect("a call");
    let Some(MeetingInfo::Organizer(meeting)) = group.meeting_info else {
        panic!("an organizer meeting")
    };
    assert_eq!(
        meeting.organizer.user.map(|u| u.id).as_deref(),
        Some("5810cede-f3cc-42eb-b2c1-e9bd5d53ec96")
    );
    assert_eq!(
        group.chat_info.map(|c| c.message_id),
        Some(Some("0".to_owned()))
    );
    assert_eq!(
        group.transcription.and_then(|t| t.state).as_deref(),
        Some("inactive")
    );
}

// ---------------------------------------------------------------------------
// constructors make the pages' bodies

fn assert_builds(example: &Example, built: &impl serde::Serialize) {
    let written = serde_json::to_value(built).expect("serialises");
    assert_eq!(
        normalize(&written),
        normalize(&example.json),
        "{}: the constructor does not make this body",
        example.location()
    );
}

#[test]
fn constructors_make_the_documented_transfer_bodies() {
    if !crate::support::require::seeds() {
        return;
    }
    let fr = examples_in("000_", Kind::Transfer);
    let heidi = || {
        InvitationParticipantInfo::user(
            "550fae72-d251-43ec-868c-373732c2704f",
            None,
            Some("Heidi Steen"),
        )
    };

    assert_builds(
        &fr[0],
        &TransferRequest::new(heidi().with_endpoint_type(EndpointType::Default)),
    );
    assert_builds(
        &fr[1],
        &TransferRequest::consultative(
            heidi().with_endpoint_type(EndpointType::Default),
            "e5d39592-99bd-4db8-bca8-30fb894ec51d",
        ),
    );
    let pstn = InvitationParticipantInfo::phone("+12345678901")
        .with_endpoint_type(EndpointType::Default)
        .with_language_id("en-us")
        .with_region("amer");
    assert_builds(
        &fr[3],
        &TransferRequest::consultative(pstn, "e5d39592-99bd-4db8-bca8-30fb894ec51d")
            .with_client_context("9e90d1c1-f61e-43e7-9f75-d420159aae08"),
    );
    let transferee = ParticipantInfo::new(IdentitySet::user(
        Identity::new("751f6800-3180-414d-bd94-333364659951")
            .with_tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47"),
    ))
    .with_participant_id("909c6581-5130-43e9-88f3-fcb3582cde37");
    assert_builds(
        &fr[4],
        &TransferRequest::new(heidi().with_endpoint_type(EndpointType::Default))
            .with_transferee(transferee),
    );
}

#[test]
fn constructors_make_the_documented_create_call_bodies() {
    if !crate::support::require::seeds() {
        return;
    }
    let bodies = examples_in("003_", Kind::CreateCall);
    let callback = "https://bot.contoso.com/callback";
    let prefetch = || {
        MediaConfig::service_hosted_with_prefetch(vec![
            MediaInfo::new("https://cdn.contoso.com/beep.wav")
                .with_resource_id("f8971b04-b53e-418c-9222-c82ce681a582"),
            MediaInfo::new("https://cdn.contoso.com/cool.wav")
                .with_resource_id("86dc814b-c172-4428-9112-60f8ecae1edb"),
        ])
    };

    let options = CallOptions {
        is_content_sharing_notification_enabled: Some(true),
        is_delta_roster_enabled: Some(true),
        ..CallOptions::outgoing()
    };
    let john =
        InvitationParticipantInfo::user("112f7296-5fa4-42ca-bae8-6a692b15d4b8", None, Some("John"));
    assert_builds(
        &bodies[0],
        &Call::outgoing(callback, vec![john], MediaConfig::service_hosted())
            .with_call_options(options),
    );

    let bob = Identity::new("5810cede-f3cc-42eb-b2c1-e9bd5d53ec96")
        .with_display_name("Bob")
        .with_tenant_id("86dc81db-c112-4228-9222-63f3esaa1edb");
    let thread = "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2";
    assert_builds(
        &bodies[4],
        &Call::join_meeting(
            callback,
            MeetingInfo::organizer(IdentitySet::user(bob), true),
            prefetch(),
        )
        .with_chat_info(ChatInfo::new(thread, "0"))
        .with_tenant_id("86dc81db-c112-4228-9222-63f3esaa1edb"),
    );

    for (index, passcode) in [(6, Some("psw123")), (7, None)] {
        let join = Call::join_meeting(
            callback,
            MeetingInfo::join_meeting_id("1234567", passcode),
            prefetch(),
        )
        .with_tenant_id("86dc81db-c112-4228-9222-63f3esaa1edb");
        assert_builds(&bodies[index], &join);
        let written = serde_json::to_value(&join).expect("serialises");
        assert_eq!(
            written["meetingInfo"]["@odata.type"],
            "#microsoft.graph.joinMeetingIdMeetingInfo"
        );
        assert!(
            written["meetingInfo"].get("passcode").is_some(),
            "passcode is written even when null"
        );
    }

    let bot = IdentitySet::application_instance(
        Identity::new("3d913abb-aec0-4964-8fa6-3c6850c4f278").with_display_name("Calling Bot"),
    );
    assert_builds(
        &bodies[8],
        &Call::outgoing(
            callback,
            vec![InvitationParticipantInfo::phone("+12345678901")],
            MediaConfig::service_hosted(),
        )
        .with_source(ParticipantInfo::new(bot))
        .with_tenant_id("aa67bd4c-8475-432d-bd41-39f255720e0a"),
    );
}

// ---------------------------------------------------------------------------
// the tolerant reader beyond the pages

mod tolerant_reader {
    use callflow::graph::{
        CallState, CallsRoot, ChangeType, Code, MAX_BATCH_SIZE, NotificationError,
        NotificationPayload, Tone, parse_batch,
    };
    use serde_json::{Value, json};

    fn read(value: &Value) -> Result<Vec<callflow::graph::Notification>, NotificationError> {
        parse_batch(value.to_string().as_bytes())
    }

    fn call_notification(data: Value) -> Value {
        json!({"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/c1", "resourceData": data}]})
    }

    fn the_call(value: &Value) -> callflow::graph::CallPayload {
        let mut batch = read(value).expect("reads");
        assert_eq!(batch.len(), 1);
        match batch.remove(0).payload {
            NotificationPayload::Call(call) => call,
            other => panic!("expected a call payload, got {other:?}"),
        }
    }

    #[test]
    fn subcode_and_sub_code_are_both_read() {
        let lower = the_call(&call_notification(
            json!({"state": "terminated", "resultInfo": {"code": 0, "subcode": 7015}}),
        ));
        let camel = the_call(&call_notification(
            json!({"state": "established", "resultInfo": {"code": 500, "subCode": 7000}}),
        ));
        assert_eq!(
            lower.result_info.and_then(|r| r.subcode_number()),
            Some(7015)
        );
        assert_eq!(
            camel.result_info.and_then(|r| r.subcode_number()),
            Some(7000)
        );
    }

    #[test]
    fn codes_may_be_strings() {
        let call = the_call(&call_notification(
            json!({"resultInfo": {"code": "408", "subcode": "8537", "message": "m"}}),
        ));
        let result = call.result_info.expect("a resultInfo");
        assert_eq!(
            (result.code, result.subcode),
            (Some(Code::Number(408)), Some(Code::Number(8537)))
        );
        let call = the_call(&call_notification(
            json!({"resultInfo": {"code": "200", "subCode": "transferAccepted"}}),
        ));
        assert_eq!(
            call.result_info.and_then(|r| r.subcode),
            Some(Code::Text("transferAccepted".into()))
        );
    }

    #[test]
    fn resource_is_accepted_instead_of_resource_url() {
        let batch = read(
            &json!({"value": [{"changeType": "updated", "resource": "/communications/calls/c2",
                                             "resourceData": {"state": "established"}}]}),
        )
        .expect("reads");
        assert_eq!(batch[0].resource, "/communications/calls/c2");
        assert_eq!(batch[0].call_id(), "c2");
    }

    #[test]
    fn old_paths_and_versions_are_accepted() {
        for (resource, root) in [
            ("/app/calls/c3", CallsRoot::App),
            ("/beta/app/calls/c3", CallsRoot::App),
            ("/v1.0/communications/calls/c3", CallsRoot::Communications),
            (
                "/applications/a1/calls/c3",
                CallsRoot::Application("a1".into()),
            ),
        ] {
            let batch = read(
                &json!({"value": [{"changeType": "updated", "resource": resource,
                                                 "resourceData": {"state": "established"}}]}),
            )
            .unwrap_or_else(|e| panic!("{resource}: {e}"));
            assert_eq!(
                (batch[0].call_id(), &batch[0].path.root),
                ("c3", &root),
                "{resource}"
            );
        }
    }

    #[test]
    fn change_type_ignores_case() {
        let body = json!({"value": [{"changeType": "Deleted", "resourceUrl": "/communications/calls/c",
                                      "resourceData": {"state": "terminated"}}]});
        assert_eq!(
            read(&body).expect("reads")[0].change_type,
            ChangeType::Deleted
        );
    }

    #[test]
    fn unknown_fields_and_missing_odata_types_are_fine() {
        let body = json!({
            "validationTokens": ["x"],
            "value": [{
                "subscriptionId": "s", "tenantId": "t", "newField": {"deep": [1, 2]},
                "changeType": "created",
                "resourceUrl": "/communications/calls/c4",
                "resourceData": {
                    "state": "incoming", "direction": "incoming", "futureField": true,
                    "source": {"identity": {"phone": {"id": "+33123456789", "extra": 1}}, "newThing": 2},
                    "targets": [{"identity": {"applicationInstance": {"id": "bot", "displayName": "Bot"}}}],
                    "toneInfo": {"sequenceId": 4, "tone": "tone5", "other": null}
                }
            }]
        });
        let call = the_call(&body);
        assert_eq!(call.state, Some(CallState::Incoming));
        assert_eq!(
            call.source
                .and_then(|s| s.identity.phone)
                .map(|p| p.id)
                .as_deref(),
            Some("+33123456789")
        );
        assert_eq!(
            call.targets[0]
                .identity
                .application_instance
                .as_ref()
                .map(|a| a.id.as_str()),
            Some("bot")
        );
        let tone = call.tone_info.expect("a tone");
        assert_eq!((tone.sequence_id, tone.tone), (Some(4), Some(Tone::Tone5)));
    }

    #[test]
    fn unknown_states_are_kept_not_refused() {
        let call = the_call(&call_notification(json!({"state": "parked"})));
        assert_eq!(call.state, Some(CallState::Unknown("parked".into())));
    }

    #[test]
    fn payload_kind_comes_from_the_path_without_odata_type() {
        let body = json!({"value": [
            {"changeType": "updated", "resourceUrl": "/communications/calls/c/operations/o",
             "resourceData": {"status": "completed", "clientContext": "cc"}},
            {"changeType": "updated", "resourceUrl": "/communications/calls/c/participants",
             "resourceData": [{"id": "p1", "info": {"identity": {"user": {"id": "u"}}}}]},
            {"changeType": "deleted", "resourceUrl": "/communications/calls/c"}
        ]});
        let batch = read(&body).expect("reads");
        assert!(
            matches!(&batch[0].payload, NotificationPayload::Operation(op) if op.id.as_deref() == Some("o"))
        );
        assert!(
            matches!(&batch[1].payload, NotificationPayload::Participants(p) if p[0].id == "p1")
        );
        assert!(matches!(&batch[2].payload, NotificationPayload::Call(c) if c.state.is_none()));
    }

    #[test]
    fn a_single_notification_without_envelope_is_accepted() {
        let body = json!({"changeType": "updated", "resourceUrl": "/communications/calls/c5",
                          "resourceData": {"state": "established"}});
        assert_eq!(read(&body).expect("reads")[0].call_id(), "c5");
    }

    #[test]
    fn an_empty_value_array_is_an_empty_batch() {
        assert_eq!(read(&json!({"value": []})).expect("reads"), vec![]);
    }

    #[test]
    fn malformed_json_is_an_error_with_a_position() {
        let error = parse_batch(b"{\"value\": [} nope").expect_err("not JSON");
        assert!(
            matches!(error, NotificationError::Json { line: 1, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("not valid JSON"), "{error}");
        assert_eq!(
            parse_batch(b"   ").expect_err("empty"),
            NotificationError::Empty
        );
        assert_eq!(
            parse_batch(b"").expect_err("empty"),
            NotificationError::Empty
        );
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let body = call_notification(
            json!({"state": "terminated", "resultInfo": {"code": 0, "subcode": 7015}}),
        )
        .to_string();
        for end in 0..body.len() {
            assert!(
                parse_batch(&body.as_bytes()[..end]).is_err(),
                "prefix of {end} bytes accepted"
            );
        }
        let error = parse_batch(&body.as_bytes()[..body.len() / 2]).expect_err("truncated");
        assert!(
            matches!(error, NotificationError::Truncated { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("truncated"), "{error}");
    }

    #[test]
    fn wrong_shapes_are_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("hello"), "found a string"),
            (json!(42), "found a number"),
            (
                json!({"value": {"changeType": "updated"}}),
                "`value` must be an array",
            ),
            (json!({"hello": "world"}), "keys [\"hello\"]"),
            (json!({"value": [1]}), "notification #0 is a number"),
            (
                json!({"value": [{"resourceUrl": "/communications/calls/c"}]}),
                "no `changeType`",
            ),
            (
                json!({"value": [{"changeType": "moved", "resourceUrl": "/communications/calls/c"}]}),
                "changeType \"moved\"",
            ),
            (
                json!({"value": [{"changeType": 3, "resourceUrl": "/communications/calls/c"}]}),
                "changeType 3",
            ),
            (
                json!({"value": [{"changeType": "updated", "resourceData": {}}]}),
                "no `resourceUrl` or `resource`",
            ),
            (
                json!({"value": [{"changeType": "updated", "resourceUrl": ""}]}),
                "no `resourceUrl` or `resource`",
            ),
            (
                json!({"value": [{"changeType": "updated", "resourceUrl": "/users/u1"}]}),
                "not a call path",
            ),
            (
                json!({"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/c",
                                  "resourceData": {"state": 5}}]}),
                "resourceData is not a valid call",
            ),
            (
                json!({"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/c/participants",
                                  "resourceData": ["not a participant"]}]}),
                "not a valid participant list",
            ),
        ];
        for (body, expected) in cases {
            let error = read(&body).expect_err(&format!("{body} must be refused"));
            assert!(
                error.to_string().contains(expected),
                "{body}: {error} (wanted {expected:?})"
            );
        }
    }

    #[test]
    fn batches_are_capped() {
        let one = json!({"changeType": "updated", "resourceUrl": "/communications/calls/c", "resourceData": {"state": "established"}});
        let full = json!({"value": vec![one.clone(); MAX_BATCH_SIZE]});
        assert_eq!(
            read(&full).expect("the limit itself is fine").len(),
            MAX_BATCH_SIZE
        );
        let over = json!({"value": vec![one; MAX_BATCH_SIZE + 1]});
        let error = read(&over).expect_err("over the limit");
        assert_eq!(
            error,
            NotificationError::TooMany {
                count: MAX_BATCH_SIZE + 1,
                limit: MAX_BATCH_SIZE
            }
        );
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(
            call_notification(json!({"state": "established"}))
                .to_string()
                .as_bytes(),
        );
        assert_eq!(parse_batch(&body).expect("reads").len(), 1);
    }
}
