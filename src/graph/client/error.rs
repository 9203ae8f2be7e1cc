//! What can go wrong when talking to Graph, as one typed error.
//!
//! Every variant names the request (method and path) and, where there is
//! one, the call it was about. It must never carry a secret or a token.

use std::fmt;
use std::time::Duration;

use crate::graph::wire::{GraphError, RequestError};

/// One request as the logs and errors name it: `POST /v1.0/communications/calls/abc/transfer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestName {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The URL path (no host, no query).
    pub path: String,
}

impl fmt::Display for RequestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Shows ` for call {id}` or nothing.
struct ForCall<'a>(&'a Option<String>);

impl fmt::Display for ForCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " for call {id}"),
            None => Ok(()),
        }
    }
}

/// Why the token endpoint gave no token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The authority refused (`invalid_client`, `unauthorized_client`, ...).
    #[error("the token endpoint answered {status}: {error}: {description}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code.
        error: String,
        /// The authority's explanation (`AADSTS...`).
        description: String,
    },
    /// The answer was not a token (not JSON, or no `access_token`).
    #[error("the token endpoint answered {status} with an unreadable body: {detail}")]
    Malformed {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
    /// The authority could not be reached or did not answer in time.
    #[error("the token endpoint could not be reached: {detail}")]
    Unreachable {
        /// What happened.
        detail: String,
    },
}

/// Why a Graph request failed.
///
/// [`ClientError::MaybeSent`] is the one a caller must treat with care: the
/// request left this process and Graph may have acted on it (see the module
/// documentation of [`crate::graph::client`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Graph answered with an error status and its error body.
    #[error(
        "{request}{} failed: HTTP {status}, Graph error {}: {} (request-id {})",
        ForCall(call_id),
        error.error.code,
        error.error.message,
        request_id.as_deref().unwrap_or("none")
    )]
    Graph {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// The HTTP status.
        status: u16,
        /// Graph's error body.
        error: Box<GraphError>,
        /// Graph's request id (from the body, else the `request-id` header).
        request_id: Option<String>,
    },
    /// Graph answered with an error status and a body that is not Graph's
    /// error JSON.
    #[error("{request}{} failed: HTTP {status}: {body}", ForCall(call_id))]
    Status {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// The HTTP status.
        status: u16,
        /// The start of the body, as text.
        body: String,
    },
    /// Graph answered with a success status but the answer cannot be read:
    /// malformed or truncated JSON, a missing `Location` or call id. Graph
    /// did act on the request.
    #[error(
        "{request}{} succeeded (HTTP {status}) but the answer is unreadable: {detail}",
        ForCall(call_id)
    )]
    MalformedResponse {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
    /// A `POST` left this process but no answer came (timeout, connection
    /// lost): Graph may or may not have acted on it, so it was not repeated.
    #[error(
        "{request}{} may have reached Graph but got no answer ({cause}); it was not repeated (client-request-id {client_request_id})",
        ForCall(call_id)
    )]
    MaybeSent {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// The `client-request-id` sent, to look the request up with Microsoft.
        client_request_id: String,
        /// What happened (`timed out after 10s`, `connection reset`, ...).
        cause: String,
        /// Whether it was a timeout.
        timed_out: bool,
    },
    /// No answer within the request timeout, for a request safe to repeat
    /// (`GET`, `DELETE`), after every allowed attempt.
    #[error(
        "{request}{} timed out after {timeout:?} ({attempts} attempts)",
        ForCall(call_id)
    )]
    Timeout {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// The configured timeout.
        timeout: Duration,
        /// How many attempts were made.
        attempts: u32,
    },
    /// Graph could not be reached (no connection was made): nothing was sent.
    #[error("{request}{} could not reach Graph: {detail}", ForCall(call_id))]
    Unreachable {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// What happened.
        detail: String,
    },
    /// Graph kept answering `429` or `503` until the retry policy's bound.
    #[error(
        "{request}{} gave up after {attempts} attempts: Graph kept answering HTTP {status}{}",
        ForCall(call_id),
        match retry_after { Some(d) => format!(" (Retry-After {}s exceeds the retry budget)", d.as_secs()), None => String::new() }
    )]
    RetriesExhausted {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// Attempts made.
        attempts: u32,
        /// The last status (`429` or `503`).
        status: u16,
        /// The last `Retry-After`, when it alone made the client give up.
        retry_after: Option<Duration>,
    },
    /// The body breaks one of Graph's documented limits; nothing was sent.
    #[error("{request}{} was not sent: {source}", ForCall(call_id))]
    InvalidRequest {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// The limit broken.
        source: RequestError,
    },
    /// The request cannot be sent as given (an empty call id, a body that
    /// does not serialise); nothing was sent.
    #[error("{request}{} was not sent: {detail}", ForCall(call_id))]
    Unsendable {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// What is wrong.
        detail: String,
    },
    /// No token could be had; nothing was sent to Graph.
    #[error("{request}{} was not sent: {source}", ForCall(call_id))]
    Token {
        /// The request.
        request: RequestName,
        /// The call it was about.
        call_id: Option<String>,
        /// Why.
        source: TokenError,
    },
}

impl ClientError {
    /// The request that failed.
    pub fn request(&self) -> &RequestName {
        match self {
            ClientError::Graph { request, .. }
            | ClientError::Status { request, .. }
            | ClientError::MalformedResponse { request, .. }
            | ClientError::MaybeSent { request, .. }
            | ClientError::Timeout { request, .. }
            | ClientError::Unreachable { request, .. }
            | ClientError::RetriesExhausted { request, .. }
            | ClientError::InvalidRequest { request, .. }
            | ClientError::Unsendable { request, .. }
            | ClientError::Token { request, .. } => request,
        }
    }

    /// The call the request was about, if any.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            ClientError::Graph { call_id, .. }
            | ClientError::Status { call_id, .. }
            | ClientError::MalformedResponse { call_id, .. }
            | ClientError::MaybeSent { call_id, .. }
            | ClientError::Timeout { call_id, .. }
            | ClientError::Unreachable { call_id, .. }
            | ClientError::RetriesExhausted { call_id, .. }
            | ClientError::InvalidRequest { call_id, .. }
            | ClientError::Unsendable { call_id, .. }
            | ClientError::Token { call_id, .. } => call_id.as_deref(),
        }
    }

    /// The HTTP status Graph answered, or `0` when none came back.
    pub fn status(&self) -> u16 {
        match self {
            ClientError::Graph { status, .. }
            | ClientError::Status { status, .. }
            | ClientError::MalformedResponse { status, .. }
            | ClientError::RetriesExhausted { status, .. } => *status,
            _ => 0,
        }
    }

    /// A short machine-readable code: Graph's own (`BadRequest`, ...) or
    /// this client's (`MaybeSent`, `Timeout`, `Unreachable`,
    /// `RetriesExhausted`, `MalformedResponse`, `InvalidRequest`, `Token`,
    /// `HttpStatus`).
    pub fn code(&self) -> &str {
        match self {
            ClientError::Graph { error, .. } if !error.error.code.is_empty() => &error.error.code,
            ClientError::Graph { .. } | ClientError::Status { .. } => "HttpStatus",
            ClientError::MalformedResponse { .. } => "MalformedResponse",
            ClientError::MaybeSent { .. } => "MaybeSent",
            ClientError::Timeout { .. } => "Timeout",
            ClientError::Unreachable { .. } => "Unreachable",
            ClientError::RetriesExhausted { .. } => "RetriesExhausted",
            ClientError::InvalidRequest { .. } | ClientError::Unsendable { .. } => "InvalidRequest",
            ClientError::Token { .. } => "Token",
        }
    }

    /// Whether Graph may have acted on the request although no success came
    /// back: [`ClientError::MaybeSent`], or a success status whose answer
    /// was unreadable.
    pub fn may_have_acted(&self) -> bool {
        matches!(
            self,
            ClientError::MaybeSent { .. } | ClientError::MalformedResponse { .. }
        )
    }

    /// Graph's request id, when Graph sent an error body or header.
    pub fn graph_request_id(&self) -> Option<&str> {
        match self {
            ClientError::Graph { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}
