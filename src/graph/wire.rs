//! Serde types for Microsoft Graph's calling JSON.
//!
//! Every type here mirrors one Graph resource or request body, field for
//! field, in Graph's camelCase spelling. Optional fields are left out when
//! serialising, so a request built here is exactly the body Microsoft's
//! reference pages show. Reading is lenient: unknown fields are ignored,
//! enumerations keep values they do not know (`Unknown(String)`), and
//! polymorphic objects (`mediaConfig`, `meetingInfo`) are told apart by their
//! `@odata.type`, or by their fields when the tag is missing.
//!
//! This module must never know about flows or the engine, and it sends
//! nothing: it only describes shapes.

/// Declares a string enumeration as Graph spells it, with an `Unknown`
/// fallback so that a value Graph adds later never breaks reading.
///
/// Reading ignores ASCII case; writing uses Graph's exact spelling.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The string Graph uses for this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Unknown(other) => other.as_str(),
                }
            }

            /// Reads Graph's string, ignoring ASCII case; a string this crate
            /// does not know becomes `Unknown`.
            pub fn from_wire(value: &str) -> Self {
                $( if value.eq_ignore_ascii_case($wire) { return Self::$variant; } )+
                Self::Unknown(value.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::from_wire(value)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                Ok(Self::from_wire(&text))
            }
        }
    };
}

mod call;
mod identity;
mod media;
mod meeting;
mod odata;
mod operation;
mod requests;
mod result;
mod state;

pub use call::{Call, CallOptions, CallTranscriptionInfo};
pub use identity::{
    EndpointType, Identity, IdentitySet, InvitationParticipantInfo, MediaStream, Participant,
    ParticipantInfo, RemovedState,
};
pub use media::{
    AppHostedMediaConfig, CallMediaState, MediaConfig, MediaInfo, MediaState, Modality,
    ServiceHostedMediaConfig, Tone, ToneInfo,
};
pub use meeting::{
    ChatInfo, JoinMeetingIdMeetingInfo, MeetingInfo, OrganizerMeetingInfo, TokenMeetingInfo,
};
pub use operation::{CommsOperation, GraphError, GraphErrorDetail, InnerError, OperationStatus};
pub use requests::{
    AnswerRequest, CancelMediaProcessingRequest, InviteParticipantsRequest, KeepAlive,
    MAX_CLIENT_CONTEXT_CHARS, MAX_PROMPTS, MAX_RECORD_SECONDS, MAX_REDIRECT_TARGETS, MediaPrompt,
    PlayPromptRequest, REDIRECT_TIMEOUT_SECONDS, RecordResponseRequest, RedirectRequest,
    RejectReason, RejectRequest, RequestError, SubscribeToToneRequest, TransferRequest,
};
pub use result::{Code, ResultInfo};
pub use state::{CallDirection, CallState};

pub(crate) use odata::{odata_short_name, odata_type_of};
