//! Bodies of the actions the bot posts on a call (`.../calls/{id}/<action>`).
//!
//! Each body has a constructor for the usual case and, where Graph sets
//! limits, a `validate` that checks them before anything is sent.

use serde::{Deserialize, Serialize, Serializer};

use super::call::CallOptions;
use super::identity::{IdentitySet, InvitationParticipantInfo, ParticipantInfo};
use super::media::{MediaConfig, MediaInfo, Modality};
use super::odata::serialize_tagged;

/// The longest `clientContext` Graph accepts, in characters.
pub const MAX_CLIENT_CONTEXT_CHARS: usize = 256;
/// The most targets a `redirect` may have.
pub const MAX_REDIRECT_TARGETS: usize = 25;
/// The shortest and longest `redirect` timeouts, in seconds.
pub const REDIRECT_TIMEOUT_SECONDS: std::ops::RangeInclusive<u32> = 15..=90;
/// The most prompts one `playPrompt` may carry.
pub const MAX_PROMPTS: usize = 20;

/// A request body that breaks one of Graph's documented limits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `clientContext` is longer than Graph allows.
    #[error(
        "clientContext is {length} characters long; Graph accepts at most {MAX_CLIENT_CONTEXT_CHARS}"
    )]
    ClientContextTooLong {
        /// Its length in characters.
        length: usize,
    },
    /// A phone identity is not in E.164 (`+` then 7 to 15 digits, [`crate::phone`]).
    #[error(
        "phone number {number:?} is not in E.164 form (+ then 7 to 15 digits, e.g. +12345678901)"
    )]
    NotE164 {
        /// The offending number.
        number: String,
    },
    /// An identity set names nobody.
    #[error("{field} has an empty identity: set a user, application, phone, ...")]
    EmptyIdentity {
        /// Which field (`transferTarget`, `targets[2]`, ...).
        field: String,
    },
    /// A list has fewer or more entries than Graph accepts.
    #[error("{field} has {count} entries; Graph accepts {min} to {max}")]
    WrongCount {
        /// Which list (`targets`, `prompts`, ...).
        field: &'static str,
        /// How many it has.
        count: usize,
        /// The least allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// The redirect timeout is outside 15–90 seconds.
    #[error("redirect timeout {seconds} s is outside Graph's 15 to 90 s")]
    TimeoutOutOfRange {
        /// The timeout asked for.
        seconds: u32,
    },
}

fn check_client_context(client_context: Option<&str>) -> Result<(), RequestError> {
    match client_context.map(|c| c.chars().count()) {
        Some(length) if length > MAX_CLIENT_CONTEXT_CHARS => {
            Err(RequestError::ClientContextTooLong { length })
        }
        _ => Ok(()),
    }
}

fn check_identity(
    identity: &IdentitySet,
    field: impl FnOnce() -> String,
) -> Result<(), RequestError> {
    if identity.is_empty() {
        return Err(RequestError::EmptyIdentity { field: field() });
    }
    if let Some(phone) = &identity.phone
        && !crate::phone::is_e164(&phone.id)
    {
        return Err(RequestError::NotE164 {
            number: phone.id.clone(),
        });
    }
    Ok(())
}

fn check_count(
    field: &'static str,
    count: usize,
    min: usize,
    max: usize,
) -> Result<(), RequestError> {
    if (min..=max).contains(&count) {
        Ok(())
    } else {
        Err(RequestError::WrongCount {
            field,
            count,
            min,
            max,
        })
    }
}

/// `POST .../calls/{id}/transfer`: hand the call to someone else.
///
/// Blind transfer: [`TransferRequest::new`]. Consultative transfer: the bot
/// first calls the target, then [`TransferRequest::consultative`] with that
/// call's id. Out of a group call: add the [`transferee`](Self::transferee).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferRequest {
    /// Who takes the call.
    pub transfer_target: InvitationParticipantInfo,
    /// Who is transferred; required when transferring out of a group call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transferee: Option<ParticipantInfo>,
    /// A unique string echoed in the notifications (at most 256 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
}

impl TransferRequest {
    /// A blind transfer to `target`.
    pub fn new(target: InvitationParticipantInfo) -> Self {
        Self {
            transfer_target: target,
            transferee: None,
            client_context: None,
        }
    }

    /// A consultative transfer to `target`, replacing the consultation call
    /// `replaces_call_id` the bot placed to it.
    pub fn consultative(
        target: InvitationParticipantInfo,
        replaces_call_id: impl Into<String>,
    ) -> Self {
        Self::new(target.with_replaces_call_id(replaces_call_id))
    }

    /// The same transfer, of `transferee` (transfer out of a group call).
    pub fn with_transferee(mut self, transferee: ParticipantInfo) -> Self {
        self.transferee = Some(transferee);
        self
    }

    /// The same transfer with a client context.
    pub fn with_client_context(mut self, client_context: impl Into<String>) -> Self {
        self.client_context = Some(client_context.into());
        self
    }

    /// Checks Graph's limits: a target identity (E.164 if a phone), a
    /// transferee identity if any, a client context of at most 256 characters.
    ///
    /// # Errors
    ///
    /// The first [`RequestError`] found.
    pub fn validate(&self) -> Result<(), RequestError> {
        check_identity(&self.transfer_target.identity, || "transferTarget".into())?;
        if let Some(transferee) = &self.transferee {
            check_identity(&transferee.identity, || "transferee".into())?;
        }
        check_client_context(self.client_context.as_deref())
    }
}

/// `POST .../calls/{id}/answer`: take an incoming call (within 15 s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerRequest {
    /// Where Graph posts this call's notifications from now on.
    pub callback_uri: String,
    /// The modalities accepted (`["audio"]`).
    pub accepted_modalities: Vec<Modality>,
    /// Service-hosted or app-hosted media.
    pub media_config: MediaConfig,
    /// How many calls the bot can take (app-hosted media).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant_capacity: Option<u32>,
    /// Call options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_options: Option<CallOptions>,
}

impl AnswerRequest {
    /// Answer with audio only.
    pub fn new(callback_uri: impl Into<String>, media_config: MediaConfig) -> Self {
        Self {
            callback_uri: callback_uri.into(),
            accepted_modalities: vec![Modality::Audio],
            media_config,
            participant_capacity: None,
            call_options: None,
        }
    }
}

wire_enum! {
    /// Why the bot rejects an incoming call.
    pub enum RejectReason {
        /// No reason given.
        None => "none",
        /// The bot is busy.
        Busy => "busy",
        /// The caller is not allowed.
        Forbidden => "forbidden",
    }
}

/// `POST .../calls/{id}/reject`: decline an incoming call (within 15 s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectRequest {
    /// Why.
    pub reason: RejectReason,
    /// Where Graph posts the call's last notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_uri: Option<String>,
}

impl RejectRequest {
    /// Reject for `reason`.
    pub fn new(reason: RejectReason) -> Self {
        Self {
            reason,
            callback_uri: None,
        }
    }
}

/// `POST .../calls/{id}/redirect`: send an incoming call elsewhere without
/// answering it (within 15 s).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedirectRequest {
    /// Where to send the call (1 to 25 targets).
    pub targets: Vec<InvitationParticipantInfo>,
    /// How long to ring, 15 to 90 seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// Where Graph posts the call's notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_uri: Option<String>,
}

impl RedirectRequest {
    /// Redirect to `targets` with Graph's default timeout.
    pub fn new(targets: Vec<InvitationParticipantInfo>) -> Self {
        Self {
            targets,
            timeout: None,
            callback_uri: None,
        }
    }

    /// The same redirect with a ringing timeout in seconds.
    pub fn with_timeout(mut self, seconds: u32) -> Self {
        self.timeout = Some(seconds);
        self
    }

    /// Checks Graph's limits: 1 to 25 targets with identities, a timeout of
    /// 15 to 90 seconds.
    ///
    /// # Errors
    ///
    /// The first [`RequestError`] found.
    pub fn validate(&self) -> Result<(), RequestError> {
        check_count("targets", self.targets.len(), 1, MAX_REDIRECT_TARGETS)?;
        for (i, target) in self.targets.iter().enumerate() {
            check_identity(&target.identity, || format!("targets[{i}]"))?;
        }
        match self.timeout {
            Some(seconds) if !REDIRECT_TIMEOUT_SECONDS.contains(&seconds) => {
                Err(RequestError::TimeoutOutOfRange { seconds })
            }
            _ => Ok(()),
        }
    }
}

/// A `mediaPrompt`: one audio file to play. Written with its
/// `@odata.type`, which Graph needs to tell prompt kinds apart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaPrompt {
    /// The file to play.
    #[serde(default)]
    pub media_info: MediaInfo,
}

impl MediaPrompt {
    /// A prompt playing the file at `uri`.
    pub fn new(media_info: MediaInfo) -> Self {
        Self { media_info }
    }
}

impl Serialize for MediaPrompt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields<'a> {
            media_info: &'a MediaInfo,
        }
        serialize_tagged(
            "#microsoft.graph.mediaPrompt",
            &Fields {
                media_info: &self.media_info,
            },
            serializer,
        )
    }
}

/// `POST .../calls/{id}/playPrompt` (service-hosted media only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayPromptRequest {
    /// What to play, in order (1 to 20 prompts).
    pub prompts: Vec<MediaPrompt>,
    /// A unique string echoed in the operation's notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
}

impl PlayPromptRequest {
    /// Play `prompts` in order.
    pub fn new(prompts: Vec<MediaPrompt>) -> Self {
        Self {
            prompts,
            client_context: None,
        }
    }

    /// The same request with a client context.
    pub fn with_client_context(mut self, client_context: impl Into<String>) -> Self {
        self.client_context = Some(client_context.into());
        self
    }

    /// Checks Graph's limits: 1 to 20 prompts, a client context of at most
    /// 256 characters.
    ///
    /// # Errors
    ///
    /// The first [`RequestError`] found.
    pub fn validate(&self) -> Result<(), RequestError> {
        check_count("prompts", self.prompts.len(), 1, MAX_PROMPTS)?;
        check_client_context(self.client_context.as_deref())
    }
}

/// The most seconds Graph records, and the most of each silence timeout.
pub const MAX_RECORD_SECONDS: u32 = 120;

/// `POST .../calls/{id}/recordResponse` (service-hosted media only):
/// record a short answer from the caller, at most 2 minutes. The completed
/// operation (a `recordOperation`) carries `recordingLocation` and
/// `recordingAccessToken`; Graph keeps the recording only briefly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordResponseRequest {
    /// The prompt played before recording (at most 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<MediaPrompt>,
    /// Whether the request barges into queued or playing prompts and recordings. Graph's default: false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barge_in_allowed: Option<bool>,
    /// Most seconds of silence before the caller starts (after the prompt), 1 to 120. Graph's default: 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_silence_timeout_in_seconds: Option<u32>,
    /// Most seconds of pause once the caller has started, 1 to 120. Graph's default: 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_silence_timeout_in_seconds: Option<u32>,
    /// Most seconds recorded, 1 to 120. Graph's default: 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_record_duration_in_seconds: Option<u32>,
    /// Whether a beep tells the caller to start. Graph's default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_beep: Option<bool>,
    /// Keys that end the recording (`"#"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_tones: Vec<String>,
    /// A unique string echoed in the operation's notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
}

impl RecordResponseRequest {
    /// Checks Graph's limits: at most 1 prompt, each time 1 to 120 s, a
    /// client context of at most 256 characters.
    ///
    /// # Errors
    ///
    /// The first [`RequestError`] found.
    pub fn validate(&self) -> Result<(), RequestError> {
        check_count("prompts", self.prompts.len(), 0, 1)?;
        for (field, v) in [
            (
                "initialSilenceTimeoutInSeconds",
                self.initial_silence_timeout_in_seconds,
            ),
            (
                "maxSilenceTimeoutInSeconds",
                self.max_silence_timeout_in_seconds,
            ),
            (
                "maxRecordDurationInSeconds",
                self.max_record_duration_in_seconds,
            ),
        ] {
            if let Some(v) = v
                && !(1..=MAX_RECORD_SECONDS).contains(&v)
            {
                return Err(RequestError::WrongCount {
                    field,
                    count: v as usize,
                    min: 1,
                    max: MAX_RECORD_SECONDS as usize,
                });
            }
        }
        check_client_context(self.client_context.as_deref())
    }
}

/// `POST .../calls/{id}/subscribeToTone`: report key presses as
/// `toneInfo` in call notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeToToneRequest {
    /// A unique string echoed in the operation's notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
}

/// `POST .../calls/{id}/cancelMediaProcessing`: cancels the `playPrompt`
/// and `recordResponse` operations in progress or queued (not a
/// `subscribeToTone`); `200` with a `commsOperation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelMediaProcessingRequest {
    /// A unique string echoed in the operation's notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
}

/// `POST .../calls/{id}/keepAlive`: an empty body, at least every 45
/// minutes (every 15 recommended), or Graph ends the call with 408/8537.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepAlive {}

/// `POST .../calls/{id}/participants/invite`: add people to a group call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteParticipantsRequest {
    /// Who to invite.
    pub participants: Vec<InvitationParticipantInfo>,
    /// A unique string echoed in the operation's notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
}

impl InviteParticipantsRequest {
    /// Invite `participants`.
    pub fn new(participants: Vec<InvitationParticipantInfo>) -> Self {
        Self {
            participants,
            client_context: None,
        }
    }

    /// Checks Graph's limits: at least one participant, each with an
    /// identity, a client context of at most 256 characters.
    ///
    /// # Errors
    ///
    /// The first [`RequestError`] found.
    pub fn validate(&self) -> Result<(), RequestError> {
        check_count("participants", self.participants.len(), 1, usize::MAX)?;
        for (i, participant) in self.participants.iter().enumerate() {
            check_identity(&participant.identity, || format!("participants[{i}]"))?;
        }
        check_client_context(self.client_context.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cancel_media_processing_is_written_as_the_reference_page_writes_it() {
        // The example of Microsoft's `call: cancelMediaProcessing` page.
        let body = CancelMediaProcessingRequest {
            client_context: Some("clientContext-value".into()),
        };
        assert_eq!(
            serde_json::to_value(&body).expect("json"),
            json!({"clientContext": "clientContext-value"})
        );
    }

    #[test]
    fn record_response_is_written_as_the_reference_page_writes_it() {
        // Example 1 of Microsoft's `call: recordResponse` page, field for field.
        let body = RecordResponseRequest {
            prompts: vec![MediaPrompt::new(MediaInfo {
                uri: "https://cdn.contoso.com/beep.wav".into(),
                resource_id: Some("1D6DE2D4-CD51-4309-8DAA-70768651088E".into()),
            })],
            barge_in_allowed: Some(true),
            initial_silence_timeout_in_seconds: Some(5),
            max_silence_timeout_in_seconds: Some(2),
            max_record_duration_in_seconds: Some(10),
            play_beep: Some(true),
            stop_tones: vec!["#".into(), "1".into(), "*".into()],
            client_context: Some("d45324c1-fcb5-430a-902c-f20af696537c".into()),
        };
        assert_eq!(
            serde_json::to_value(&body).expect("serialises"),
            json!({
              "bargeInAllowed": true,
              "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
              "prompts": [
                {
                  "@odata.type": "#microsoft.graph.mediaPrompt",
                  "mediaInfo": {
                    "uri": "https://cdn.contoso.com/beep.wav",
                    "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E"
                  }
                }
              ],
              "maxRecordDurationInSeconds": 10,
              "initialSilenceTimeoutInSeconds": 5,
              "maxSilenceTimeoutInSeconds": 2,
              "playBeep": true,
              "stopTones": [ "#", "1", "*" ]
            })
        );
        body.validate().expect("within Graph's limits");
        let too_long = RecordResponseRequest {
            max_record_duration_in_seconds: Some(121),
            ..RecordResponseRequest::default()
        };
        assert!(too_long.validate().is_err());
    }

    #[test]
    fn play_prompt_is_written_with_prompt_tags() {
        let request =
            PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new("https://cdn/x.wav"))])
                .with_client_context("c");
        assert_eq!(
            serde_json::to_value(&request).expect("serialises"),
            json!({"prompts": [{"@odata.type": "#microsoft.graph.mediaPrompt",
                                "mediaInfo": {"uri": "https://cdn/x.wav"}}],
                   "clientContext": "c"})
        );
        assert_eq!(request.validate(), Ok(()));
        assert!(PlayPromptRequest::new(vec![]).validate().is_err());
    }

    #[test]
    fn keep_alive_is_an_empty_object() {
        assert_eq!(
            serde_json::to_string(&KeepAlive::default()).expect("serialises"),
            "{}"
        );
    }

    #[test]
    fn validation_catches_graph_limits() {
        let long = "x".repeat(257);
        let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+12345678901"))
            .with_client_context(long);
        assert_eq!(
            transfer.validate(),
            Err(RequestError::ClientContextTooLong { length: 257 })
        );
        let bad_phone = TransferRequest::new(InvitationParticipantInfo::phone("0612345678"));
        assert!(matches!(
            bad_phone.validate(),
            Err(RequestError::NotE164 { .. })
        ));
        let nobody = TransferRequest::default();
        assert!(matches!(
            nobody.validate(),
            Err(RequestError::EmptyIdentity { .. })
        ));
        let redirect = RedirectRequest::new(vec![InvitationParticipantInfo::phone("+33123456789")])
            .with_timeout(10);
        assert_eq!(
            redirect.validate(),
            Err(RequestError::TimeoutOutOfRange { seconds: 10 })
        );
        let reject =
            serde_json::to_value(RejectRequest::new(RejectReason::Busy)).expect("serialises");
        assert_eq!(reject, json!({"reason": "busy"}));
    }
}
