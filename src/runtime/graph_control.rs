//! [`GraphClient`] as the engine's [`CallControl`]: the production side of
//! the seam, on the runtime's side of it (so that `graph` never depends on
//! `engine`).
//!
//! A thin mapping: each trait method calls the client's method of the same
//! request, and a [`ClientError`] becomes a [`ControlError`] with the HTTP
//! status (`0` when none came back), the code ([`ClientError::code`]:
//! Graph's, or `MaybeSent`, `Timeout`, ...) and the full message. It must
//! never decide anything about the flow.
//!
//! One thing it adds: when an `answer`, `reject`, `redirect` or `transfer`
//! may have reached Graph without an answer coming back
//! ([`ClientError::MaybeSent`]), it reconciles with a `GET` of the call
//! instead of repeating the POST: if the call's state shows the request took
//! effect (a transfer is `transferring`, an answered call `establishing`,
//! …, or the call is gone after a reject), the request counts as accepted;
//! otherwise the `MaybeSent` error stands, and the POST is not repeated.

use crate::engine::{CallControl, ControlError, RequestKind};
use crate::graph::wire::{
    AnswerRequest, Call, CallState, CommsOperation, InviteParticipantsRequest, PlayPromptRequest,
    RecordResponseRequest, RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
};

use crate::graph::client::{ClientError, GraphClient};

impl From<ClientError> for ControlError {
    fn from(error: ClientError) -> Self {
        ControlError::new(error.status(), error.code(), error.to_string())
    }
}

impl GraphClient {
    /// Settles the outcome of a request on `call_id`: a [`ClientError::MaybeSent`]
    /// is reconciled with a `GET` of the call; anything else passes through.
    async fn settle(
        &self,
        call_id: &str,
        request: RequestKind,
        outcome: Result<(), ClientError>,
    ) -> Result<(), ControlError> {
        let error = match outcome {
            Err(error @ ClientError::MaybeSent { .. }) => error,
            other => return Ok(other?),
        };
        // The same reading of the call's state as recovery's (a call that
        // no longer exists reads as terminated).
        let state = match self.get_call(call_id).await {
            Ok(call) => call.state,
            Err(e) if e.status() == 404 => Some(CallState::Terminated),
            Err(_) => None,
        };
        let confirmed = state.is_some_and(|s| request.shown_by(&s) == Some(true));
        if confirmed {
            tracing::info!(
                target: "callflow::graph",
                call_id,
                request = ?request,
                "a request that may have been lost took effect (reconciled with GET)"
            );
            Ok(())
        } else {
            Err(error.into())
        }
    }
}

impl CallControl for GraphClient {
    async fn answer(&self, call_id: &str, body: &AnswerRequest) -> Result<(), ControlError> {
        let outcome = GraphClient::answer(self, call_id, body).await;
        self.settle(call_id, RequestKind::Answer, outcome).await
    }

    async fn reject(&self, call_id: &str, body: &RejectRequest) -> Result<(), ControlError> {
        let outcome = GraphClient::reject(self, call_id, body).await;
        self.settle(call_id, RequestKind::Reject, outcome).await
    }

    async fn redirect(&self, call_id: &str, body: &RedirectRequest) -> Result<(), ControlError> {
        let outcome = GraphClient::redirect(self, call_id, body).await;
        self.settle(call_id, RequestKind::Redirect, outcome).await
    }

    async fn transfer(&self, call_id: &str, body: &TransferRequest) -> Result<(), ControlError> {
        let outcome = GraphClient::transfer(self, call_id, body).await;
        self.settle(call_id, RequestKind::Transfer, outcome).await
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

    async fn record_response(
        &self,
        call_id: &str,
        body: &RecordResponseRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(GraphClient::record_response(self, call_id, body).await?)
    }

    async fn download_recording(
        &self,
        location: &str,
        access_token: &str,
    ) -> Result<Vec<u8>, ControlError> {
        GraphClient::download_recording(self, location, access_token).await
    }

    async fn deliver_recording(&self, name: &str, audio: Vec<u8>) -> Result<String, ControlError> {
        GraphClient::deliver_recording(self, name, audio).await
    }

    async fn cancel_media_processing(
        &self,
        call_id: &str,
        body: &crate::graph::wire::CancelMediaProcessingRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(GraphClient::cancel_media_processing(self, call_id, body).await?)
    }

    async fn hangup(&self, call_id: &str) -> Result<(), ControlError> {
        Ok(GraphClient::delete_call(self, call_id).await?)
    }

    async fn keep_alive(&self, call_id: &str) -> Result<(), ControlError> {
        Ok(GraphClient::keep_alive(self, call_id).await?)
    }

    async fn get_call(&self, call_id: &str) -> Result<Option<Call>, ControlError> {
        Ok(Some(GraphClient::get_call(self, call_id).await?))
    }
}
