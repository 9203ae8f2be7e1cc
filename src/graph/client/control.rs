//! [`GraphClient`] as the engine's [`CallControl`]: the production side of
//! the seam.
//!
//! A thin mapping: each trait method calls the client's method of the same
//! request, and a [`ClientError`] becomes a [`ControlError`] with the HTTP
//! status (`0` when none came back), the code ([`ClientError::code`]:
//! Graph's, or `MaybeSent`, `Timeout`, ...) and the full message. It must
//! never decide anything about the flow.

use crate::engine::{CallControl, ControlError};
use crate::graph::wire::{
    AnswerRequest, Call, CommsOperation, InviteParticipantsRequest, PlayPromptRequest,
    RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
};

use super::{ClientError, GraphClient};

impl From<ClientError> for ControlError {
    fn from(error: ClientError) -> Self {
        ControlError::new(error.status(), error.code(), error.to_string())
    }
}

impl CallControl for GraphClient {
    async fn answer(&self, call_id: &str, body: &AnswerRequest) -> Result<(), ControlError> {
        Ok(GraphClient::answer(self, call_id, body).await?)
    }

    async fn reject(&self, call_id: &str, body: &RejectRequest) -> Result<(), ControlError> {
        Ok(GraphClient::reject(self, call_id, body).await?)
    }

    async fn redirect(&self, call_id: &str, body: &RedirectRequest) -> Result<(), ControlError> {
        Ok(GraphClient::redirect(self, call_id, body).await?)
    }

    async fn transfer(&self, call_id: &str, body: &TransferRequest) -> Result<(), ControlError> {
        Ok(GraphClient::transfer(self, call_id, body).await?)
    }

    async fn create_call(&self, body: &Call) -> Result<Call, ControlError> {
        Ok(GraphClient::create_call(self, body).await?.call)
    }

    async fn play_prompt(
        &self,
        call_id: &str,
        body: &PlayPromptRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(GraphClient::play_prompt(self, call_id, body).await?)
    }

    async fn subscribe_to_tone(
        &self,
        call_id: &str,
        body: &SubscribeToToneRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(GraphClient::subscribe_to_tone(self, call_id, body).await?)
    }

    async fn invite(
        &self,
        call_id: &str,
        body: &InviteParticipantsRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(GraphClient::invite_participants(self, call_id, body).await?)
    }

    async fn hangup(&self, call_id: &str) -> Result<(), ControlError> {
        Ok(GraphClient::delete_call(self, call_id).await?)
    }

    async fn keep_alive(&self, call_id: &str) -> Result<(), ControlError> {
        Ok(GraphClient::keep_alive(self, call_id).await?)
    }
}
