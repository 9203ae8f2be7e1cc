//! Microsoft Graph calling: the wire format and the notifications Graph posts back.
//!
//! This is the only part of the crate that knows Graph's JSON (field names,
//! `@odata.type` tags, the `commsNotifications` envelope) and Graph's resource
//! paths (`/communications/calls/{id}`, `/app/calls/{id}`, ...). Everything it
//! hands out is plain owned Rust data.
//!
//! It must never know about flows, the engine or the command line: it does not
//! decide what a notification *means* for a call flow, it only reads and
//! writes Graph's shapes faithfully. Sending requests (HTTP, tokens, retries)
//! belongs to a separate `client` module.
//!
//! - [`wire`]: serde types for request bodies and Graph resources
//!   ([`Call`], [`TransferRequest`], [`CommsOperation`], [`GraphError`], ...),
//!   with constructors that make the common requests one line each.
//! - [`notification`]: a tolerant reader for the callbacks Graph posts to the
//!   bot ([`parse_batch`]).

pub mod client;
pub mod notification;
pub mod wire;

pub use notification::{
    Batch, CallPayload, CallbackBody, CallsRoot, ChangeType, MAX_BATCH_SIZE, Notification,
    NotificationError, NotificationPayload, OperationPayload, RefusedEntry, ResourcePath,
    ResourcePathError, ResourceTarget, parse_batch, read_callback,
};
pub use wire::{
    AnswerRequest, AppHostedMediaConfig, Call, CallDirection, CallMediaState, CallOptions,
    CallState, CallTranscriptionInfo, CancelMediaProcessingRequest, ChatInfo, Code, CommsOperation,
    EndpointType, GraphError, GraphErrorDetail, Identity, IdentitySet, InnerError,
    InvitationParticipantInfo, InviteParticipantsRequest, JoinMeetingIdMeetingInfo, KeepAlive,
    MediaConfig, MediaInfo, MediaPrompt, MediaState, MediaStream, MeetingInfo, Modality,
    OperationStatus, OrganizerMeetingInfo, Participant, ParticipantInfo, PlayPromptRequest,
    RecordResponseRequest, RedirectRequest, RejectReason, RejectRequest, RemovedState,
    RequestError, ResultInfo, ServiceHostedMediaConfig, SubscribeToToneRequest, TokenMeetingInfo,
    Tone, ToneInfo, TransferRequest,
};
