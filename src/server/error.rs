//! The one error body every refusal carries: `{"error": {"code", "message"}}`.
//!
//! Building a refusal also logs it (tracing, at `warn`), so that no
//! rejection goes unrecorded. This module must never put a secret (a token,
//! an admin token) in a message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refusal: status, stable code, readable message.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short stable code (`badRequest`, `invalidSignature`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A refusal with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Logs the refusal, naming the route it happened on.
    pub fn logged(self, route: &str) -> Self {
        tracing::warn!(
            route,
            status = self.status.as_u16(),
            code = %self.code,
            reason = %self.message,
            "request refused"
        );
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
