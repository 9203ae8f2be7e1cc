//! The notification bodies the simulated Graph posts, in the seeds' shapes.
//!
//! Each function returns one callback body (a `commsNotifications`
//! envelope) as JSON, shaped like the examples of Microsoft's reference
//! pages: `@odata.type` tags, `resourceUrl`, `subcode`. With `legacy` they
//! take the old beta's shape instead (`resource` on `/app/calls/…`,
//! `subCode`, codes as strings, no tags). The bodies go through the same
//! tolerant reader as production's. Nothing here keeps state.

use serde_json::{Map, Value, json};

use crate::engine::Party;
use crate::graph::wire::{CallState, Identity, IdentitySet};

/// Who builds the bodies: the callback URI and the dialect.
#[derive(Clone, Debug)]
pub struct Notifier {
    /// The bot's callback URI.
    pub callback_uri: String,
    /// Speak the old beta.
    pub legacy: bool,
}

/// A `resultInfo`: code, subcode, message.
#[derive(Clone, Debug, PartialEq)]
pub struct SimResult {
    /// The code.
    pub code: i64,
    /// The subcode.
    pub subcode: i64,
    /// The message.
    pub message: String,
}

impl SimResult {
    /// A result.
    pub fn new(code: i64, subcode: i64, message: &str) -> Self {
        SimResult {
            code,
            subcode,
            message: message.to_owned(),
        }
    }
}

/// A party as Graph's `identitySet` JSON.
pub fn identity_json(p: &Party) -> Value {
    let named = |id: &str| {
        let mut who = Identity::new(id);
        who.display_name = p.display_name.clone();
        who.tenant_id = p.tenant.clone();
        Some(who)
    };
    let mut set = IdentitySet::default();
    if let Some(u) = &p.user {
        set.user = named(u);
    }
    if let Some(n) = &p.phone {
        set.phone = Some(Identity::new(n.clone()));
    }
    if let Some(a) = &p.application {
        set.application_instance = named(a);
    }
    serde_json::to_value(set).unwrap_or(Value::Null)
}

impl Notifier {
    fn tagged(&self, tag: &str, mut fields: Map<String, Value>) -> Value {
        if !self.legacy {
            fields.insert(
                "@odata.type".into(),
                Value::String(format!("#microsoft.graph.{tag}")),
            );
        }
        Value::Object(fields)
    }

    fn envelope(&self, change: &str, resource: String, data: Value) -> Value {
        let mut n = Map::new();
        n.insert("changeType".into(), change.into());
        if self.legacy {
            n.insert("resource".into(), resource.into());
        } else {
            n.insert(
                "@odata.type".into(),
                "#microsoft.graph.commsNotification".into(),
            );
            n.insert("resourceUrl".into(), resource.into());
            n.insert("callbackUri".into(), self.callback_uri.clone().into());
        }
        n.insert("resourceData".into(), data);
        let mut body = Map::new();
        if !self.legacy {
            body.insert(
                "@odata.type".into(),
                "#microsoft.graph.commsNotifications".into(),
            );
        }
        body.insert("value".into(), Value::Array(vec![Value::Object(n)]));
        Value::Object(body)
    }

    fn call_path(&self, call_id: &str) -> String {
        if self.legacy {
            format!("/app/calls/{call_id}")
        } else {
            format!("/communications/calls/{call_id}")
        }
    }

    fn result_json(&self, r: &SimResult) -> Value {
        let mut m = Map::new();
        if self.legacy {
            m.insert("code".into(), r.code.to_string().into());
            m.insert("subCode".into(), r.subcode.to_string().into());
        } else {
            m.insert("code".into(), r.code.into());
            m.insert("subcode".into(), r.subcode.into());
        }
        m.insert("message".into(), r.message.clone().into());
        self.tagged("resultInfo", m)
    }

    /// `created`, state `incoming`: a call to the bot.
    pub fn incoming(&self, call_id: &str, from: &Party, to: &Party) -> Value {
        let mut data = Map::new();
        data.insert("state".into(), "incoming".into());
        data.insert("direction".into(), "incoming".into());
        data.insert("callbackUri".into(), self.callback_uri.clone().into());
        data.insert(
            "source".into(),
            json!({"@odata.type": "#microsoft.graph.participantInfo", "identity": identity_json(from)}),
        );
        data.insert(
            "targets".into(),
            json!([{"@odata.type": "#microsoft.graph.invitationParticipantInfo", "identity": identity_json(to)}]),
        );
        data.insert("requestedModalities".into(), json!(["audio"]));
        data.insert("id".into(), call_id.into());
        self.envelope(
            "created",
            self.call_path(call_id),
            self.tagged("call", data),
        )
    }

    /// A state change; `terminated` is sent as `deleted`.
    pub fn state(
        &self,
        call_id: &str,
        state: &CallState,
        result: Option<&SimResult>,
        termination_reason: Option<&str>,
        replaces_context: Option<&str>,
    ) -> Value {
        let mut data = Map::new();
        data.insert("state".into(), state.as_str().into());
        if let Some(r) = result {
            data.insert("resultInfo".into(), self.result_json(r));
        }
        if let Some(t) = termination_reason {
            data.insert("terminationReason".into(), t.into());
        }
        if let Some(c) = replaces_context {
            data.insert("replacesContext".into(), c.into());
        }
        let change = if *state == CallState::Terminated {
            "deleted"
        } else {
            "updated"
        };
        self.envelope(change, self.call_path(call_id), self.tagged("call", data))
    }

    /// `mediaState.audio` changed.
    pub fn media(&self, call_id: &str, audio: &str) -> Value {
        let mut data = Map::new();
        data.insert("mediaState".into(), json!({"audio": audio}));
        self.envelope(
            "updated",
            self.call_path(call_id),
            self.tagged("call", data),
        )
    }

    /// A key press (`toneInfo`).
    pub fn tone(&self, call_id: &str, key: char, sequence_id: i64) -> Value {
        let tone = match key {
            '*' => "star".to_owned(),
            '#' => "pound".to_owned(),
            'A'..='D' => key.to_ascii_lowercase().to_string(),
            d => format!("tone{d}"),
        };
        let mut data = Map::new();
        data.insert(
            "toneInfo".into(),
            json!({"@odata.type": "#microsoft.graph.toneInfo", "sequenceId": sequence_id, "tone": tone}),
        );
        self.envelope(
            "updated",
            self.call_path(call_id),
            self.tagged("call", data),
        )
    }

    /// An operation's last update.
    pub fn operation(
        &self,
        call_id: &str,
        kind: &str,
        operation_id: &str,
        status: &str,
        client_context: Option<&str>,
        result: Option<&SimResult>,
    ) -> Value {
        let mut data = Map::new();
        data.insert("id".into(), operation_id.into());
        data.insert("status".into(), status.into());
        if let Some(c) = client_context {
            data.insert("clientContext".into(), c.into());
        }
        if let Some(r) = result {
            data.insert("resultInfo".into(), self.result_json(r));
        }
        let change = if status == "completed" || status == "failed" {
            "deleted"
        } else {
            "updated"
        };
        let path = format!("{}/operations/{operation_id}", self.call_path(call_id));
        self.envelope(change, path, self.tagged(kind, data))
    }

    /// A `recordOperation`'s end: `completionReason`, and for a recording
    /// `recordingLocation` and `recordingAccessToken` (as in the example of
    /// Microsoft's `call: recordResponse` page).
    #[allow(clippy::too_many_arguments)]
    pub fn record_operation(
        &self,
        call_id: &str,
        operation_id: &str,
        status: &str,
        client_context: Option<&str>,
        result: &SimResult,
        completion_reason: &str,
        recording: Option<(&str, &str)>,
    ) -> Value {
        let mut data = Map::new();
        data.insert("id".into(), operation_id.into());
        data.insert("status".into(), status.into());
        if let Some(c) = client_context {
            data.insert("clientContext".into(), c.into());
        }
        data.insert("resultInfo".into(), self.result_json(result));
        data.insert("completionReason".into(), completion_reason.into());
        if let Some((location, token)) = recording {
            data.insert("recordingLocation".into(), location.into());
            data.insert("recordingAccessToken".into(), token.into());
        }
        let path = format!("{}/operations/{operation_id}", self.call_path(call_id));
        self.envelope("deleted", path, self.tagged("recordOperation", data))
    }

    /// The old beta's transfer progress: an operation with a text subcode.
    pub fn legacy_transfer(
        &self,
        call_id: &str,
        operation_id: &str,
        stage: &str,
        status: &str,
    ) -> Value {
        let data = json!({
            "@odata.type": "#microsoft.graph.commsOperation",
            "clientContext": Value::Null,
            "resultInfo": {"code": "200", "subCode": stage},
            "status": status,
        });
        let change = if status == "completed" {
            "deleted"
        } else {
            "updated"
        };
        let path = format!("{}/operations/{operation_id}", self.call_path(call_id));
        self.envelope(change, path, data)
    }

    /// A roster: the bot and `others`, as an array of participants.
    pub fn roster(&self, call_id: &str, bot_id: &str, others: &[Party]) -> Value {
        let participant = |id: String, identity: Value| {
            json!({
                "@odata.type": "#microsoft.graph.participant",
                "info": {"@odata.type": "#microsoft.graph.participantInfo", "identity": identity},
                "mediaStreams": [{"@odata.type": "#microsoft.graph.mediaStream", "mediaType": "audio",
                                  "sourceId": "1", "direction": "sendReceive", "serverMuted": false}],
                "isMuted": false,
                "isInLobby": false,
                "id": id,
            })
        };
        let mut list = vec![participant(
            format!("{call_id}-bot"),
            json!({"application": {"id": bot_id}}),
        )];
        for (n, p) in others.iter().enumerate() {
            list.push(participant(
                format!("{call_id}-p{}", n + 1),
                identity_json(p),
            ));
        }
        self.envelope(
            "updated",
            format!("{}/participants", self.call_path(call_id)),
            Value::Array(list),
        )
    }
}
