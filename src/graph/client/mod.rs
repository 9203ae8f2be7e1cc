//! The HTTP client for Microsoft Graph's calling API: [`GraphClient`].
//!
//! One async method per request the bot makes (create a call, answer,
//! reject, redirect, transfer, playPrompt, subscribeToTone, keepAlive,
//! invite participants, hang up, get a call), each taking the call id and
//! the typed [`wire`](crate::graph::wire) body and returning the typed
//! answer or a [`ClientError`] that names the call, the request and the
//! status. It knows nothing of the engine: the runtime's `graph_control`
//! makes it the engine's `CallControl`.
//!
//! What every request gets:
//! - an application token (client credentials, [`GraphConfig`]), cached and
//!   refreshed ahead of expiry with one refresh in flight however many
//!   requests wait for it; a `401` drops the token and tries once more;
//! - a `client-request-id` (a UUID v4, the same for every attempt of one
//!   request), logged with tracing together with the outcome and latency;
//! - a timeout covering the whole exchange, and pooled keep-alive
//!   connections;
//! - retries of `429` and `503`, honouring `Retry-After` (seconds) or else
//!   backing off exponentially with jitter, bounded in attempts and total
//!   time ([`RetryPolicy`]).
//!
//! # A request that may have reached Graph is never repeated
//!
//! When no answer comes back after a request was written (a timeout, a
//! connection reset), a `GET` or `DELETE` is tried again, as both are safe
//! to repeat. A `POST` is not: it may have created a call, started a
//! transfer or a prompt. The client returns [`ClientError::MaybeSent`]
//! instead (code `MaybeSent` through `CallControl`), carrying the
//! `client-request-id`, and the runtime decides. Reconciling inside the
//! client is not possible in general: Graph offers no lookup of a call by
//! `clientContext`, and an action's effect shows only in later
//! notifications. Through `CallControl` (the runtime's `graph_control`), an `answer`,
//! `reject`, `redirect` or `transfer` that is `MaybeSent` is reconciled by
//! [`GraphClient::get_call`]: a call that is `transferring`, `establishing`
//! or gone shows the request took effect, and it counts as accepted. A
//! create-call, a prompt or a tone subscription cannot be reconciled that
//! way and stays `MaybeSent`; the call's notifications tell the rest. A
//! connection that could not be opened sent nothing and is retried like a
//! `503`.
//!
//! This module must never know flows or the engine's decisions: it sends
//! what it is given. It must never log or print a secret or a token.

mod config;
mod error;
mod exchange;
pub mod recordings;
mod retry;
mod token;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::LOCATION;
use serde::Serialize;
use url::Url;

use crate::graph::wire::{
    AnswerRequest, Call, CommsOperation, InviteParticipantsRequest, PlayPromptRequest,
    RecordResponseRequest, RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
};

pub use config::{ApiVersion, ClientSecret, Cloud, ConfigError, GraphConfig, RetryPolicy, env};
pub use error::{ClientError, RequestName, TokenError};

use exchange::{describe, describe_json};
use token::TokenSource;

/// The `client-request-id` header Graph echoes and logs.
pub const CLIENT_REQUEST_ID: &str = "client-request-id";

/// The client could not be built (the TLS stack would not start).
#[derive(Debug, thiserror::Error)]
#[error("the Graph HTTP client could not be built: {0}")]
pub struct BuildError(String);

/// What `POST /communications/calls` returns: the new call and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedCall {
    /// The call, with its `id` set (from the body, else from `Location`).
    pub call: Call,
    /// The `Location` header, when Graph sent one.
    pub location: Option<String>,
}

/// Microsoft Graph's calling API over HTTPS.
///
/// Cheap to clone: clones share the connection pool and the token cache.
/// `Debug` never shows the secret or a token.
#[derive(Clone, Debug)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: GraphConfig,
    /// `{graph}/{version}/communications/calls`.
    calls_url: Url,
    tokens: TokenSource,
}

/// Installs rustls' `ring` provider as the process default, unless one is
/// already installed. reqwest is built without a provider of its own (no
/// aws-lc, which needs cmake), so any other `reqwest::Client` in this
/// process must be built after this ran; [`GraphClient::new`] calls it.
pub fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl GraphClient {
    /// A client for `config`. No request is sent until the first call.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when the HTTP stack cannot start.
    pub fn new(config: GraphConfig) -> Result<Self, BuildError> {
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("callflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError(describe(&e)))?;
        let mut calls_url = config.graph_base_url.clone();
        calls_url
            .path_segments_mut()
            .map_err(|()| BuildError("the Graph base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend([config.api_version.as_str(), "communications", "calls"]);
        let tokens = TokenSource::new(http.clone(), &config);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                calls_url,
                tokens,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.config
    }

    /// How many requests went to the token endpoint so far.
    pub fn token_requests(&self) -> u64 {
        self.inner.tokens.requests()
    }

    /// `POST /communications/calls`: place a call (peer-to-peer to a user or
    /// a phone, a group call) or join a meeting, as `body` says (`201`,
    /// `Location`, the call in state `establishing`).
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; [`ClientError::MaybeSent`] when the call may have
    /// been created although no answer came.
    pub async fn create_call(&self, body: &Call) -> Result<CreatedCall, ClientError> {
        let request = self.request(Method::POST, None, &[], Some(body))?;
        let name = request.name.clone();
        let answer = self.send(request).await?;
        let location = answer
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let malformed = |detail: String| ClientError::MalformedResponse {
            request: name.clone(),
            call_id: None,
            status: answer.status,
            detail,
        };
        let mut call: Call = if answer.body.is_empty() {
            Call::default()
        } else {
            serde_json::from_slice(&answer.body).map_err(|e| malformed(describe_json(&e)))?
        };
        if call.id.as_deref().is_none_or(str::is_empty) {
            call.id = location
                .as_deref()
                .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                .filter(|id| !id.is_empty())
                .map(str::to_owned);
        }
        if call.id.is_none() {
            return Err(malformed(
                "neither the body nor a Location header gives the new call's id".into(),
            ));
        }
        Ok(CreatedCall { call, location })
    }

    /// `GET /communications/calls/{id}` (`200` and the call).
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; a timeout is retried within the retry policy.
    pub async fn get_call(&self, call_id: &str) -> Result<Call, ClientError> {
        let request = self.request::<()>(Method::GET, Some(call_id), &[], None)?;
        self.send_for_json(request).await
    }

    /// `DELETE /communications/calls/{id}`: hang up (`204`).
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; a timeout is retried within the retry policy (a
    /// repeated `DELETE` of a call already gone answers `404`).
    pub async fn delete_call(&self, call_id: &str) -> Result<(), ClientError> {
        let request = self.request::<()>(Method::DELETE, Some(call_id), &[], None)?;
        self.send(request).await.map(drop)
    }

    /// `POST …/calls/{id}/answer` (`202`).
    ///
    /// # Errors
    ///
    /// A [`ClientError`].
    pub async fn answer(&self, call_id: &str, body: &AnswerRequest) -> Result<(), ClientError> {
        self.post_action(call_id, &["answer"], body).await
    }

    /// `POST …/calls/{id}/reject` (`202`).
    ///
    /// # Errors
    ///
    /// A [`ClientError`].
    pub async fn reject(&self, call_id: &str, body: &RejectRequest) -> Result<(), ClientError> {
        self.post_action(call_id, &["reject"], body).await
    }

    /// `POST …/calls/{id}/redirect` (`202`). The body is checked against
    /// Graph's limits first.
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; [`ClientError::InvalidRequest`] sends nothing.
    pub async fn redirect(&self, call_id: &str, body: &RedirectRequest) -> Result<(), ClientError> {
        self.check(Method::POST, call_id, &["redirect"], body.validate())?;
        self.post_action(call_id, &["redirect"], body).await
    }

    /// `POST …/calls/{id}/transfer` (`202`): blind, consultative, to a phone,
    /// out of a group call, as `body` says. The body is checked first.
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; [`ClientError::InvalidRequest`] sends nothing.
    pub async fn transfer(&self, call_id: &str, body: &TransferRequest) -> Result<(), ClientError> {
        self.check(Method::POST, call_id, &["transfer"], body.validate())?;
        self.post_action(call_id, &["transfer"], body).await
    }

    /// `POST …/calls/{id}/playPrompt` (`200` and the operation). The body is
    /// checked first.
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; [`ClientError::InvalidRequest`] sends nothing.
    pub async fn play_prompt(
        &self,
        call_id: &str,
        body: &PlayPromptRequest,
    ) -> Result<CommsOperation, ClientError> {
        self.check(Method::POST, call_id, &["playPrompt"], body.validate())?;
        self.post_operation(call_id, &["playPrompt"], body).await
    }

    /// `POST …/calls/{id}/recordResponse` (`200` and the `recordOperation`).
    /// The body is checked first.
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; [`ClientError::InvalidRequest`] sends nothing.
    pub async fn record_response(
        &self,
        call_id: &str,
        body: &RecordResponseRequest,
    ) -> Result<CommsOperation, ClientError> {
        self.check(Method::POST, call_id, &["recordResponse"], body.validate())?;
        self.post_operation(call_id, &["recordResponse"], body)
            .await
    }

    /// `POST …/calls/{id}/subscribeToTone` (`200` and the operation).
    ///
    /// # Errors
    ///
    /// A [`ClientError`].
    pub async fn subscribe_to_tone(
        &self,
        call_id: &str,
        body: &SubscribeToToneRequest,
    ) -> Result<CommsOperation, ClientError> {
        self.post_operation(call_id, &["subscribeToTone"], body)
            .await
    }

    /// `POST …/calls/{id}/participants/invite` (`200` and the operation).
    /// The body is checked first.
    ///
    /// # Errors
    ///
    /// A [`ClientError`]; [`ClientError::InvalidRequest`] sends nothing.
    pub async fn invite_participants(
        &self,
        call_id: &str,
        body: &InviteParticipantsRequest,
    ) -> Result<CommsOperation, ClientError> {
        let path = ["participants", "invite"];
        self.check(Method::POST, call_id, &path, body.validate())?;
        self.post_operation(call_id, &path, body).await
    }

    /// `POST …/calls/{id}/cancelMediaProcessing` (`200` and the operation):
    /// the prompts and recordings in progress or queued stop.
    ///
    /// # Errors
    ///
    /// A [`ClientError`].
    pub async fn cancel_media_processing(
        &self,
        call_id: &str,
        body: &crate::graph::wire::CancelMediaProcessingRequest,
    ) -> Result<CommsOperation, ClientError> {
        self.post_operation(call_id, &["cancelMediaProcessing"], body)
            .await
    }

    /// `POST …/calls/{id}/keepAlive` with no body (`200`); at least every
    /// 45 minutes, or Graph ends the call.
    ///
    /// # Errors
    ///
    /// A [`ClientError`].
    pub async fn keep_alive(&self, call_id: &str) -> Result<(), ClientError> {
        let request = self.request::<()>(Method::POST, Some(call_id), &["keepAlive"], None)?;
        self.send(request).await.map(drop)
    }

    async fn post_action<B: Serialize>(
        &self,
        call_id: &str,
        path: &[&str],
        body: &B,
    ) -> Result<(), ClientError> {
        let request = self.request(Method::POST, Some(call_id), path, Some(body))?;
        self.send(request).await.map(drop)
    }

    async fn post_operation<B: Serialize>(
        &self,
        call_id: &str,
        path: &[&str],
        body: &B,
    ) -> Result<CommsOperation, ClientError> {
        let request = self.request(Method::POST, Some(call_id), path, Some(body))?;
        self.send_for_json(request).await
    }
}
