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
    RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
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
