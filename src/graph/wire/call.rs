//! Graph's `call` resource: the body of `create call` and what `GET` returns.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::identity::{InvitationParticipantInfo, ParticipantInfo};
use super::media::{CallMediaState, MediaConfig, Modality, ToneInfo};
use super::meeting::{ChatInfo, MeetingInfo};
use super::result::ResultInfo;
use super::state::{CallDirection, CallState};

/// A call's `callOptions` (`outgoingCallOptions` or `incomingCallOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallOptions {
    /// `#microsoft.graph.outgoingCallOptions` or
    /// `#microsoft.graph.incomingCallOptions`; kept as read, set by the
    /// constructors.
    #[serde(rename = "@odata.type", skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    /// Hide the bot once the call is escalated to a group call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_bot_after_escalation: Option<bool>,
    /// Send content-sharing notifications (`.../contentsharingsessions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_content_sharing_notification_enabled: Option<bool>,
    /// Send roster changes as deltas (`deltaParticipants`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_delta_roster_enabled: Option<bool>,
    /// Send the interactive roster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_interactive_roster_enabled: Option<bool>,
}

impl CallOptions {
    /// Options for `create call`, with nothing switched on.
    pub fn outgoing() -> Self {
        Self {
            odata_type: Some("#microsoft.graph.outgoingCallOptions".into()),
            ..Self::default()
        }
    }

    /// Options for `answer`, with nothing switched on.
    pub fn incoming() -> Self {
        Self {
            odata_type: Some("#microsoft.graph.incomingCallOptions".into()),
            ..Self::default()
        }
    }
}

/// A call's `transcription` state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallTranscriptionInfo {
    /// `active` or `inactive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the state last changed (ISO 8601, as Graph wrote it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<String>,
}

/// Graph's `call`: the body of `POST /communications/calls` and the answer
/// to `GET /communications/calls/{id}`.
///
/// Every field is optional because the same type serves both: a request
/// sets `callbackUri`, `targets` (or `chatInfo` + `meetingInfo`),
/// `requestedModalities`, `mediaConfig` and perhaps `source`, `subject`,
/// `tenantId`; Graph fills in `id`, `state`, `myParticipantId`, ... Unknown
/// fields (`@odata.context`, ...) are ignored when reading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// The call id (set by Graph).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The call's state (set by Graph).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<CallState>,
    /// Incoming or outgoing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<CallDirection>,
    /// Where Graph posts this call's notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_uri: Option<String>,
    /// The id shared by all calls of one conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_chain_id: Option<String>,
    /// The caller (for an outgoing call: the bot, as `application` or
    /// `applicationInstance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ParticipantInfo>,
    /// Who to call (none when joining a meeting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<InvitationParticipantInfo>>,
    /// The modalities asked for (`["audio"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_modalities: Option<Vec<Modality>>,
    /// The modalities in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_modalities: Option<Vec<Modality>>,
    /// Service-hosted or app-hosted media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_config: Option<MediaConfig>,
    /// The meeting chat, when joining a meeting by organizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_info: Option<ChatInfo>,
    /// The meeting to join.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_info: Option<MeetingInfo>,
    /// The bot's participant id in the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_participant_id: Option<String>,
    /// The subject of a group call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Why the call is in its state (for example why it ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
    /// Who answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<ParticipantInfo>,
    /// Routing policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_policies: Option<Vec<String>>,
    /// The tenant of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Why the call ended (`AppTransferred`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_reason: Option<String>,
    /// How long to ring an outgoing call (15–90 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ringing_timeout_in_seconds: Option<u32>,
    /// Whether audio flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_state: Option<CallMediaState>,
    /// The last key press.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tone_info: Option<ToneInfo>,
    /// Transcription state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription: Option<CallTranscriptionInfo>,
    /// Call options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_options: Option<CallOptions>,
    /// How the call was routed, as Graph wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_routes: Option<Vec<Value>>,
    /// What the meeting allows, as Graph wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_capability: Option<Value>,
    /// Context of a forwarded or transferred incoming call, as Graph wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incoming_context: Option<Value>,
}

impl Call {
    /// The body of an outgoing call to `targets` (one for peer-to-peer, up to
    /// five for a group call), audio only.
    pub fn outgoing(
        callback_uri: impl Into<String>,
        targets: Vec<InvitationParticipantInfo>,
        media_config: MediaConfig,
    ) -> Self {
        Self {
            callback_uri: Some(callback_uri.into()),
            targets: Some(targets),
            requested_modalities: Some(vec![Modality::Audio]),
            media_config: Some(media_config),
            ..Self::default()
        }
    }

    /// The body that joins a meeting, audio only. With
    /// [`MeetingInfo::Organizer`], add the meeting's chat with
    /// [`Call::with_chat_info`].
    pub fn join_meeting(
        callback_uri: impl Into<String>,
        meeting_info: MeetingInfo,
        media_config: MediaConfig,
    ) -> Self {
        Self {
            callback_uri: Some(callback_uri.into()),
            requested_modalities: Some(vec![Modality::Audio]),
            media_config: Some(media_config),
            meeting_info: Some(meeting_info),
            ..Self::default()
        }
    }

    /// The same call with the bot as `source`.
    pub fn with_source(mut self, source: ParticipantInfo) -> Self {
        self.source = Some(source);
        self
    }

    /// The same call with a tenant id.
    pub fn with_tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The same call with a subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The same call with a meeting chat.
    pub fn with_chat_info(mut self, chat_info: ChatInfo) -> Self {
        self.chat_info = Some(chat_info);
        self
    }

    /// The same call with call options.
    pub fn with_call_options(mut self, call_options: CallOptions) -> Self {
        self.call_options = Some(call_options);
        self
    }
}
