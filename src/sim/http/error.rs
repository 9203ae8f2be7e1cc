//! Graph's error body and the headers every answer carries.
//!
//! Graph answers an error with `{"error": {"code", "message", "innerError":
//! {"request-id", "date", "client-request-id"}}}` and echoes the caller's
//! `client-request-id`; sim-graph does the same for every refusal (`400`,
//! `401`, `404`, `409`, `429`, `503`, ...), so that no failure reaches a
//! client as a bare status or a `500`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The ids of one request: Graph's own and the caller's.
#[derive(Clone, Debug)]
pub struct RequestIds {
    /// The id sim-graph gives the request (`request-id`).
    pub request_id: String,
    /// The caller's `client-request-id`, if it sent one.
    pub client_request_id: Option<String>,
}

impl RequestIds {
    /// New ids for a request with these headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        RequestIds {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: headers
                .get("client-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    fn stamp(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.insert(HeaderName::from_static("request-id"), v);
        }
        if let Some(c) = &self.client_request_id
            && let Ok(v) = HeaderValue::from_str(c)
        {
            headers.insert(HeaderName::from_static("client-request-id"), v);
        }
    }

    /// An answer with `status`, extra headers and an optional JSON body.
    pub fn answer(
        &self,
        status: u16,
        headers: Vec<(HeaderName, String)>,
        body: Option<&Value>,
    ) -> Response {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let mut response = match body {
            Some(b) => (status, axum::Json(b.clone())).into_response(),
            None => status.into_response(),
        };
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        self.stamp(&mut response);
        response
    }

    /// Graph's error body, with `status`.
    pub fn error(&self, status: u16, code: &str, message: &str) -> Response {
        self.error_with(status, code, message, Vec::new())
    }

    /// Graph's error body, with `status` and extra headers (`Retry-After`).
    pub fn error_with(
        &self,
        status: u16,
        code: &str,
        message: &str,
        headers: Vec<(HeaderName, String)>,
    ) -> Response {
        let body = error_body(
            code,
            message,
            &self.request_id,
            self.client_request_id.as_deref(),
        );
        let status = if (400..=599).contains(&status) {
            status
        } else {
            500
        };
        self.answer(status, headers, Some(&body))
    }
}

/// Graph's error body.
pub fn error_body(
    code: &str,
    message: &str,
    request_id: &str,
    client_request_id: Option<&str>,
) -> Value {
    let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut inner = json!({"request-id": request_id, "date": date});
    if let Some(c) = client_request_id {
        inner["client-request-id"] = Value::String(c.to_owned());
    }
    json!({"error": {"code": code, "message": message, "innerError": inner}})
}
