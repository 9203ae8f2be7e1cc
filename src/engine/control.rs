//! The seam between the interpreter and a Graph: [`CallControl`].
//!
//! One method per Graph request the engine can ask for. Production
//! implements it with an HTTP client; [`crate::sim`] implements it with a
//! simulated Graph. [`execute`] runs one [`Command`] through any
//! implementation and turns the answer into the [`Event`] to feed back to
//! [`step`](super::step). Nothing here spawns tasks, reads a clock or knows
//! HTTP.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::graph::wire::{
    AnswerRequest, Call, CommsOperation, InviteParticipantsRequest, PlayPromptRequest,
    RecordResponseRequest, RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
};

use super::command::Command;
use super::event::Event;

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ControlError {
    /// The HTTP status; `0` when nothing came back (network, timeout).
    pub status: u16,
    /// Graph's error code (`BadRequest`, `NotFound`, …) or the transport's.
    pub code: String,
    /// A readable message.
    pub message: String,
}

impl ControlError {
    /// An error with a status, code and message.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ControlError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// One method per Graph request the engine asks for. Each takes the target
/// call's id (except `create_call`) and the exact wire body.
///
/// Implementations must be safe to share (`&self`) and their futures `Send`,
/// so that a runtime can drive many calls at once.
pub trait CallControl {
    /// `POST …/calls/{id}/answer` (`202`).
    fn answer(
        &self,
        call_id: &str,
        body: &AnswerRequest,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;

    /// `POST …/calls/{id}/reject` (`202`).
    fn reject(
        &self,
        call_id: &str,
        body: &RejectRequest,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;

    /// `POST …/calls/{id}/redirect` (`202`).
    fn redirect(
        &self,
        call_id: &str,
        body: &RedirectRequest,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;

    /// `POST …/calls/{id}/transfer` (`202`).
    fn transfer(
        &self,
        call_id: &str,
        body: &TransferRequest,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;

    /// `POST /communications/calls` (`201` with the call, whose `id` is set).
    fn create_call(&self, body: &Call) -> impl Future<Output = Result<Call, ControlError>> + Send;

    /// `POST …/calls/{id}/playPrompt` (`200` with an operation).
    fn play_prompt(
        &self,
        call_id: &str,
        body: &PlayPromptRequest,
    ) -> impl Future<Output = Result<CommsOperation, ControlError>> + Send;

    /// `POST …/calls/{id}/subscribeToTone` (`200` with an operation).
    fn subscribe_to_tone(
        &self,
        call_id: &str,
        body: &SubscribeToToneRequest,
    ) -> impl Future<Output = Result<CommsOperation, ControlError>> + Send;

    /// `POST …/calls/{id}/participants/invite` (`200` with an operation).
    fn invite(
        &self,
        call_id: &str,
        body: &InviteParticipantsRequest,
    ) -> impl Future<Output = Result<CommsOperation, ControlError>> + Send;

    /// `POST …/calls/{id}/recordResponse` (`200` with a `recordOperation`).
    fn record_response(
        &self,
        call_id: &str,
        body: &RecordResponseRequest,
    ) -> impl Future<Output = Result<CommsOperation, ControlError>> + Send;

    /// `POST …/calls/{id}/cancelMediaProcessing` (`200` with an operation).
    fn cancel_media_processing(
        &self,
        call_id: &str,
        body: &crate::graph::wire::CancelMediaProcessingRequest,
    ) -> impl Future<Output = Result<CommsOperation, ControlError>> + Send;

    /// `GET` of a completed recording's `recordingLocation` with
    /// `Authorization: Bearer {recordingAccessToken}`: the audio (WAV).
    fn download_recording(
        &self,
        location: &str,
        access_token: &str,
    ) -> impl Future<Output = Result<Vec<u8>, ControlError>> + Send;

    /// Delivers a downloaded recording as `name` where the configuration
    /// says (a folder, or a POST to a URL, with retries); where it went.
    fn deliver_recording(
        &self,
        name: &str,
        audio: Vec<u8>,
    ) -> impl Future<Output = Result<String, ControlError>> + Send;

    /// A `fetch`: the HTTP request to the designer's service, made to an
    /// allowed host with the configuration's secrets filled in; any HTTP
    /// answer is `Ok` with its status. The default refuses: this control
    /// makes no such requests.
    fn fetch(
        &self,
        request: &super::fetch::FetchRequest,
    ) -> impl Future<Output = Result<super::fetch::FetchAnswer, ControlError>> + Send {
        let _ = request;
        std::future::ready(Err(ControlError::new(
            0,
            "FetchUnavailable",
            "this server makes no fetch requests",
        )))
    }

    /// The next turn of the `round_robin` ring group `group` (`FLOW/STEP`):
    /// how many turns its counter had handed out before (from `0`), the
    /// counter shared by every call. The default refuses: this control keeps
    /// no counter (the engine then rings from the first target).
    fn take_turn(&self, group: &str) -> impl Future<Output = Result<u64, ControlError>> + Send {
        let _ = group;
        std::future::ready(Err(ControlError::new(
            0,
            "TurnUnavailable",
            "this control keeps no turn counter",
        )))
    }

    /// `DELETE …/calls/{id}` (`204`).
    fn hangup(&self, call_id: &str) -> impl Future<Output = Result<(), ControlError>> + Send;

    /// `POST …/calls/{id}/keepAlive` (`200`).
    fn keep_alive(&self, call_id: &str) -> impl Future<Output = Result<(), ControlError>> + Send;

    /// `GET …/calls/{id}`: the call as Graph has it (a `404` when it is
    /// gone), for the runtime to reconcile a session after a restart.
    /// `Ok(None)`: this control cannot tell (the default).
    fn get_call(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<Call>, ControlError>> + Send {
        let _ = call_id;
        std::future::ready(Ok(None))
    }
}

/// Sends one command through `control` and returns the event to feed back
/// to [`step`](super::step): [`Event::Accepted`], [`Event::CallCreated`] or
/// [`Event::RequestFailed`]. Timer commands are the runtime's: they give `None`.
pub async fn execute<C: CallControl + ?Sized>(control: &C, command: &Command) -> Option<Event> {
    let id = command.id()?;
    let accepted = |operation| Event::Accepted {
        command: id,
        operation,
    };
    let result = match command {
        Command::Answer { call_id, body, .. } => {
            control.answer(call_id, body).await.map(|()| accepted(None))
        }
        Command::Reject { call_id, body, .. } => {
            control.reject(call_id, body).await.map(|()| accepted(None))
        }
        Command::Redirect { call_id, body, .. } => control
            .redirect(call_id, body)
            .await
            .map(|()| accepted(None)),
        Command::Transfer { call_id, body, .. } => control
            .transfer(call_id, body)
            .await
            .map(|()| accepted(None)),
        Command::CreateCall { tag, body, .. } => match control.create_call(body).await {
            Ok(call) => match call.id {
                Some(call_id) => Ok(Event::CallCreated {
                    tag: tag.clone(),
                    call_id,
                }),
                None => Err(ControlError::new(
                    201,
                    "MissingCallId",
                    "Graph created the call but returned no id",
                )),
            },
            Err(e) => Err(e),
        },
        Command::PlayPrompt { call_id, body, .. } => control
            .play_prompt(call_id, body)
            .await
            .map(|op| accepted(Some(op))),
        Command::SubscribeToTone { call_id, body, .. } => control
            .subscribe_to_tone(call_id, body)
            .await
            .map(|op| accepted(Some(op))),
        Command::Invite { call_id, body, .. } => control
            .invite(call_id, body)
            .await
            .map(|op| accepted(Some(op))),
        Command::RecordResponse { call_id, body, .. } => control
            .record_response(call_id, body)
            .await
            .map(|op| accepted(Some(op))),
        Command::CancelMediaProcessing { call_id, body, .. } => control
            .cancel_media_processing(call_id, body)
            .await
            .map(|op| accepted(Some(op))),
        Command::SaveRecording {
            recording, name, ..
        } => save_recording(control, id, recording, name).await,
        Command::Fetch { request, sent, .. } => control
            .fetch(sent.as_deref().unwrap_or(request))
            .await
            .map(|answer| Event::Fetched {
                command: id,
                answer,
            }),
        Command::TakeTurn { group, .. } => control
            .take_turn(group)
            .await
            .map(|turn| Event::Turn { command: id, turn }),
        Command::Hangup { call_id, .. } => control.hangup(call_id).await.map(|()| accepted(None)),
        Command::KeepAlive { call_id, .. } => {
            control.keep_alive(call_id).await.map(|()| accepted(None))
        }
        Command::SetTimer { .. } | Command::CancelTimer { .. } => return None,
    };
    Some(result.unwrap_or_else(|e| Event::RequestFailed {
        command: id,
        status: e.status,
        code: e.code,
        message: e.message,
    }))
}

async fn save_recording<C: CallControl + ?Sized>(
    control: &C,
    id: super::command::CommandId,
    recording: &super::event::Recording,
    name: &str,
) -> Result<Event, ControlError> {
    let audio = control
        .download_recording(&recording.location, &recording.access_token)
        .await?;
    let bytes = audio.len() as u64;
    let duration_seconds = wav_seconds(&audio).unwrap_or(0.0);
    let location = control.deliver_recording(name, audio).await?;
    Ok(Event::RecordingSaved {
        command: id,
        location,
        bytes,
        duration_seconds,
    })
}

/// The length of a RIFF/WAVE file's audio in seconds: its `data` chunk's
/// size over the `fmt ` chunk's byte rate. `None` when it is not one.
pub fn wav_seconds(wav: &[u8]) -> Option<f64> {
    if wav.len() < 12 || &wav[0..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return None;
    }
    let u32_at =
        |i: usize| -> Option<u32> { Some(u32::from_le_bytes(wav.get(i..i + 4)?.try_into().ok()?)) };
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= wav.len() {
        let size = u32_at(at + 4)? as usize;
        match &wav[at..at + 4] {
            b"fmt " => byte_rate = u32_at(at + 16),
            b"data" => {
                let rate = byte_rate.filter(|r| *r > 0)?;
                let size = size.min(wav.len() - at - 8);
                let seconds = size as f64 / f64::from(rate);
                return Some((seconds * 1000.0).round() / 1000.0);
            }
            _ => {}
        }
        at += 8 + size + (size & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::wav_seconds;

    #[test]
    fn a_wav_header_gives_the_length() {
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36u32 + 32_000).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&1u16.to_le_bytes()); // mono
        wav.extend_from_slice(&16_000u32.to_le_bytes()); // sample rate
        wav.extend_from_slice(&32_000u32.to_le_bytes()); // byte rate
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        wav.resize(wav.len() + 32_000, 0);
        assert_eq!(wav_seconds(&wav), Some(1.0));
        assert_eq!(wav_seconds(b"not a wav file at all"), None);
    }
}
