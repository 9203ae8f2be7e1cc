//! Who takes part in a call: identities, participant infos and roster entries.

use serde::{Deserialize, Serialize};

use super::media::Modality;

/// Graph's `identity`: one user, application, phone number, ...
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The object id (AAD id, application id) or, for `phone`, the E.164 number.
    #[serde(default)]
    pub id: String,
    /// The display name, when Graph knows it or the bot wants to show one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The tenant the identity belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

impl Identity {
    /// An identity with only an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            display_name: None,
            tenant_id: None,
        }
    }

    /// The same identity with a display name.
    pub fn with_display_name(mut self, display_name: impl Into<String>) -> Self {
        self.display_name = Some(display_name.into());
        self
    }

    /// The same identity with a tenant id.
    pub fn with_tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }
}

/// Graph's `identitySet`: exactly one of its members is normally set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySet {
    /// A Microsoft Teams / Entra ID user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Identity>,
    /// An application (a bot, by its application id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<Identity>,
    /// An application instance (a bot with a phone number, by object id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_instance: Option<Identity>,
    /// A phone number; `id` is in E.164 (`+12345678901`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Identity>,
    /// A guest (anonymous meeting attendee).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<Identity>,
    /// An identity Graph only gives in encrypted form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<Identity>,
}

impl IdentitySet {
    /// A set holding a user.
    pub fn user(identity: Identity) -> Self {
        Self {
            user: Some(identity),
            ..Self::default()
        }
    }

    /// A set holding an application.
    pub fn application(identity: Identity) -> Self {
        Self {
            application: Some(identity),
            ..Self::default()
        }
    }

    /// A set holding an application instance.
    pub fn application_instance(identity: Identity) -> Self {
        Self {
            application_instance: Some(identity),
            ..Self::default()
        }
    }

    /// A set holding a phone number in E.164.
    pub fn phone(e164: impl Into<String>) -> Self {
        Self {
            phone: Some(Identity::new(e164)),
            ..Self::default()
        }
    }

    /// A set holding a guest.
    pub fn guest(identity: Identity) -> Self {
        Self {
            guest: Some(identity),
            ..Self::default()
        }
    }

    /// The first identity set, looking at user, application instance,
    /// application, phone, guest, then encrypted.
    pub fn primary(&self) -> Option<&Identity> {
        self.user
            .as_ref()
            .or(self.application_instance.as_ref())
            .or(self.application.as_ref())
            .or(self.phone.as_ref())
            .or(self.guest.as_ref())
            .or(self.encrypted.as_ref())
    }

    /// Whether no member is set.
    pub fn is_empty(&self) -> bool {
        self.primary().is_none()
    }
}

wire_enum! {
    /// Graph's `endpointType` of a participant.
    pub enum EndpointType {
        /// A normal endpoint (what transfers use).
        Default => "default",
        /// Voicemail.
        Voicemail => "voicemail",
        /// Skype for Business.
        SkypeForBusiness => "skypeForBusiness",
        /// Skype for Business VoIP phone.
        SkypeForBusinessVoipPhone => "skypeForBusinessVoipPhone",
    }
}

/// Graph's `invitationParticipantInfo`: someone the bot calls, invites,
/// redirects or transfers to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationParticipantInfo {
    /// The kind of endpoint to ring (`default` in the transfer examples).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<EndpointType>,
    /// Who to invite.
    #[serde(default)]
    pub identity: IdentitySet,
    /// The language (`en-us`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_id: Option<String>,
    /// The region (`amer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// For a consultative transfer: the id of the consultation call this
    /// transfer replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces_call_id: Option<String>,
    /// Whether the participant is hidden (meeting invitations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// An existing participant id, when inviting someone already known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
}

impl InvitationParticipantInfo {
    /// An invitation for `identity`.
    pub fn new(identity: IdentitySet) -> Self {
        Self {
            identity,
            ..Self::default()
        }
    }

    /// An invitation for a Teams user, with optional tenant and display name.
    pub fn user(
        id: impl Into<String>,
        tenant_id: Option<&str>,
        display_name: Option<&str>,
    ) -> Self {
        let mut identity = Identity::new(id);
        identity.tenant_id = tenant_id.map(str::to_owned);
        identity.display_name = display_name.map(str::to_owned);
        Self::new(IdentitySet::user(identity))
    }

    /// An invitation for a phone number in E.164 (`+12345678901`). Only an
    /// application instance with a phone number may call or transfer to one.
    pub fn phone(e164: impl Into<String>) -> Self {
        Self::new(IdentitySet::phone(e164))
    }

    /// The same invitation with an endpoint type.
    pub fn with_endpoint_type(mut self, endpoint_type: EndpointType) -> Self {
        self.endpoint_type = Some(endpoint_type);
        self
    }

    /// The same invitation with a language id.
    pub fn with_language_id(mut self, language_id: impl Into<String>) -> Self {
        self.language_id = Some(language_id.into());
        self
    }

    /// The same invitation with a region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The same invitation replacing a consultation call (consultative transfer).
    pub fn with_replaces_call_id(mut self, call_id: impl Into<String>) -> Self {
        self.replaces_call_id = Some(call_id.into());
        self
    }
}

/// Graph's `participantInfo`: a party already in a call (a call's `source`,
/// a transfer's `transferee`, a roster entry's `info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    /// Who the participant is.
    #[serde(default)]
    pub identity: IdentitySet,
    /// The participant's id in the call (needed for a transferee).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
    /// The kind of endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<EndpointType>,
    /// The language (`en-US`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_id: Option<String>,
    /// The region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The ISO country code of a PSTN participant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

impl ParticipantInfo {
    /// A participant info for `identity`.
    pub fn new(identity: IdentitySet) -> Self {
        Self {
            identity,
            ..Self::default()
        }
    }

    /// The same info with a participant id.
    pub fn with_participant_id(mut self, participant_id: impl Into<String>) -> Self {
        self.participant_id = Some(participant_id.into());
        self
    }
}

/// One media stream of a roster participant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaStream {
    /// `audio`, `video`, `videoBasedScreenSharing`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<Modality>,
    /// The stream's source id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `sendReceive`, `receiveOnly`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Whether the server muted the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_muted: Option<bool>,
    /// A label for the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Why a participant left the roster (delta roster only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedState {
    /// Graph's reason text (`Removed from roster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Graph's `participant`: one roster entry of a group call or meeting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The participant id.
    #[serde(default)]
    pub id: String,
    /// Who the participant is.
    #[serde(default)]
    pub info: ParticipantInfo,
    /// The participant's media streams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_streams: Vec<MediaStream>,
    /// Whether the participant is muted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_muted: Option<bool>,
    /// Whether the participant waits in the meeting lobby.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_in_lobby: Option<bool>,
    /// The roster sequence number (delta roster). When a delta entry lacks
    /// its own, the notification reader fills in the delta's `sequenceNumber`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roster_sequence_number: Option<i64>,
    /// Set when the participant left (delta roster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_state: Option<RemovedState>,
    /// Free-form metadata attached to the participant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

impl Participant {
    /// Whether a delta roster reports this participant as gone.
    pub fn is_removed(&self) -> bool {
        self.removed_state.is_some()
    }
}
