//! Joining meetings: `chatInfo` and the kinds of `meetingInfo`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::identity::IdentitySet;
use super::odata::{has_type, odata_type_of, serialize_tagged};

/// Graph's `chatInfo`: the meeting's chat thread.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatInfo {
    /// The thread id (`19:meeting_...@thread.v2`).
    #[serde(default)]
    pub thread_id: String,
    /// The message id (`0` for the meeting itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The reply chain message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_chain_message_id: Option<String>,
}

impl ChatInfo {
    /// A chat info for a meeting thread and message.
    pub fn new(thread_id: impl Into<String>, message_id: impl Into<String>) -> Self {
        Self {
            thread_id: thread_id.into(),
            message_id: Some(message_id.into()),
            reply_chain_message_id: None,
        }
    }
}

/// `organizerMeetingInfo`: join by organizer (together with a `chatInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizerMeetingInfo {
    /// The meeting organizer.
    #[serde(default)]
    pub organizer: IdentitySet,
    /// Whether the bot may stay when the organizer is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_conversation_without_host: Option<bool>,
}

/// `joinMeetingIdMeetingInfo`: join by meeting id and, if set, passcode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinMeetingIdMeetingInfo {
    /// The numeric meeting id, as text.
    #[serde(default)]
    pub join_meeting_id: String,
    /// The passcode; Graph's example writes `"passcode": null` when there is
    /// none, and so does this type.
    pub passcode: Option<String>,
}

/// `tokenMeetingInfo`: join with a meeting token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenMeetingInfo {
    /// The token.
    #[serde(default)]
    pub token: String,
}

/// A call's `meetingInfo`, told apart by `@odata.type`.
///
/// Written with the right `@odata.type`. Read from the tag; without one,
/// `joinMeetingId`, `organizer` or `token` decides; anything else is kept as
/// [`MeetingInfo::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "an identity set is a few strings; one meeting info per call is not worth boxing"
)]
pub enum MeetingInfo {
    /// `#microsoft.graph.organizerMeetingInfo`.
    Organizer(OrganizerMeetingInfo),
    /// `#microsoft.graph.joinMeetingIdMeetingInfo`.
    JoinMeetingId(JoinMeetingIdMeetingInfo),
    /// `#microsoft.graph.tokenMeetingInfo`.
    Token(TokenMeetingInfo),
    /// A meeting info this crate does not know, kept verbatim.
    Other(Value),
}

const ORGANIZER: &str = "#microsoft.graph.organizerMeetingInfo";
const JOIN_MEETING_ID: &str = "#microsoft.graph.joinMeetingIdMeetingInfo";
const TOKEN: &str = "#microsoft.graph.tokenMeetingInfo";

impl MeetingInfo {
    /// Join by meeting id, with a passcode if the meeting has one.
    pub fn join_meeting_id(join_meeting_id: impl Into<String>, passcode: Option<&str>) -> Self {
        Self::JoinMeetingId(JoinMeetingIdMeetingInfo {
            join_meeting_id: join_meeting_id.into(),
            passcode: passcode.map(str::to_owned),
        })
    }

    /// Join by organizer (send a [`ChatInfo`] along).
    pub fn organizer(organizer: IdentitySet, allow_conversation_without_host: bool) -> Self {
        Self::Organizer(OrganizerMeetingInfo {
            organizer,
            allow_conversation_without_host: Some(allow_conversation_without_host),
        })
    }

    /// The `@odata.type` this info is written with (`None` for `Other`
    /// without a tag).
    pub fn odata_type(&self) -> Option<&str> {
        match self {
            Self::Organizer(_) => Some(ORGANIZER),
            Self::JoinMeetingId(_) => Some(JOIN_MEETING_ID),
            Self::Token(_) => Some(TOKEN),
            Self::Other(value) => odata_type_of(value),
        }
    }
}

impl Serialize for MeetingInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Organizer(inner) => serialize_tagged(ORGANIZER, inner, serializer),
            Self::JoinMeetingId(inner) => serialize_tagged(JOIN_MEETING_ID, inner, serializer),
            Self::Token(inner) => serialize_tagged(TOKEN, inner, serializer),
            Self::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MeetingInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let untagged = odata_type_of(&value).is_none();
        let has = |field: &str| untagged && value.get(field).is_some();
        if has_type(&value, "joinMeetingIdMeetingInfo") || has("joinMeetingId") {
            serde_json::from_value(value)
                .map(Self::JoinMeetingId)
                .map_err(D::Error::custom)
        } else if has_type(&value, "organizerMeetingInfo") || has("organizer") {
            serde_json::from_value(value)
                .map(Self::Organizer)
                .map_err(D::Error::custom)
        } else if has_type(&value, "tokenMeetingInfo") || has("token") {
            serde_json::from_value(value)
                .map(Self::Token)
                .map_err(D::Error::custom)
        } else {
            Ok(Self::Other(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn join_meeting_id_writes_a_null_passcode() {
        let json = serde_json::to_value(MeetingInfo::join_meeting_id("1234567", None))
            .expect("serialises");
        assert_eq!(
            json,
            json!({"@odata.type": JOIN_MEETING_ID, "joinMeetingId": "1234567", "passcode": null})
        );
    }

    #[test]
    fn meeting_info_is_read_by_tag_or_by_fields() {
        let tagged: MeetingInfo = serde_json::from_value(
            json!({"@odata.type": "#microsoft.graph.tokenMeetingInfo", "token": "t"}),
        )
        .expect("reads");
        assert_eq!(
            tagged,
            MeetingInfo::Token(TokenMeetingInfo { token: "t".into() })
        );
        let untagged: MeetingInfo =
            serde_json::from_value(json!({"joinMeetingId": "1"})).expect("reads");
        assert_eq!(untagged, MeetingInfo::join_meeting_id("1", None));
        let other: MeetingInfo = serde_json::from_value(json!({"x": 1})).expect("reads");
        assert!(matches!(other, MeetingInfo::Other(_)));
    }
}
