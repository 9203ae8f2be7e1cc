//! The callback route Graph posts notifications to.
//!
//! In order: intake open (else `503`), the bearer token (else `401`/`403`),
//! the content type (else `415`), the body within the limit (else `413`),
//! the body read by [`read_callback`] (else `400`), the batch queued on the
//! runtime (else `503` with `Retry-After`), then `202`. The work happens
//! after the answer. Every refusal is logged and counted; bad input never
//! gets a `500` and never panics.
//!
//! Two bodies are not a plain batch. The legacy (Skype calling) first
//! notification of an incoming call gets `204 No Content`, logged and
//! counted: Microsoft's "protocol determination" then posts it again in
//! Graph's format. A batch where some entries do not read still applies
//! the others; each refused entry is logged (call, resource, why) and
//! counted by reason, and the answer is `202` with the refused entries
//! listed, or `400` when no entry read (see docs/decisions.md).
//!
//! This module must never interpret a notification: reading is
//! [`crate::graph::notification`]'s, meaning is the runtime's.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::graph::notification::{CallbackBody, NotificationError, RefusedEntry, read_callback};
use crate::runtime::session_hint;

use super::ServerState;
use super::auth::{NotificationAuth, authorization_header};
use super::error::ApiError;

/// `POST {callback_path}`.
pub(crate) async fn receive(
    State(state): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let route = state.config().callback_path.as_str();
    // The session a create's callback names (see `runtime::SESSION_HINT`).
    let hint = session_hint(uri.query());
    match accept(&state, &headers, hint.as_deref(), body).await {
        Ok(Accepted::Legacy) => {
            state.stats().count_callback(204);
            state.stats().count_legacy();
            tracing::info!(
                route,
                "a notification in the legacy Skype calling format: answered 204 No Content, so \
                 that Graph sends it again in its own format (protocol determination)"
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Accepted::Batch { queued, refused }) => {
            state.stats().count_callback(202);
            tracing::debug!(route, notifications = queued, "notifications queued");
            if refused.is_empty() {
                StatusCode::ACCEPTED.into_response()
            } else {
                let listed: Vec<serde_json::Value> = refused.iter().map(refused_json).collect();
                (
                    StatusCode::ACCEPTED,
                    axum::Json(serde_json::json!({
                        "accepted": queued,
                        "refused": listed,
                    })),
                )
                    .into_response()
            }
        }
        Err(e) => {
            state.stats().count_callback(e.status.as_u16());
            e.logged(route).into_response()
        }
    }
}

/// What an accepted callback body was.
enum Accepted {
    /// The legacy Skype-calling format.
    Legacy,
    /// A batch: how many notifications were queued, and the entries refused.
    Batch {
        queued: usize,
        refused: Vec<RefusedEntry>,
    },
}

fn refused_json(r: &RefusedEntry) -> serde_json::Value {
    serde_json::json!({
        "callId": r.call_id,
        "resource": r.resource,
        "reason": r.reason(),
        "message": r.error.to_string(),
    })
}

/// Logs and counts the entries of a batch that did not read.
fn report_refused(state: &ServerState, refused: &[RefusedEntry]) {
    for r in refused {
        state.stats().count_refused_entry(r.reason());
        tracing::warn!(
            call = r.call_id.as_deref().unwrap_or("-"),
            resource = r.resource.as_deref().unwrap_or("-"),
            reason = r.reason(),
            error = %r.error,
            "a notification of the batch was refused; the others were applied"
        );
    }
}

async fn accept(
    state: &ServerState,
    headers: &HeaderMap,
    hint: Option<&str>,
    body: Body,
) -> Result<Accepted, ApiError> {
    if state.is_closing() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shuttingDown",
            "the server is shutting down and takes no new notifications",
        )
        .retry_after(5));
    }
    match &state.config().auth {
        NotificationAuth::Verify(verifier) => {
            if let Err(e) = verifier.verify(authorization_header(headers)).await {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
                return Err(ApiError::new(status, e.code(), e.to_string()));
            }
        }
        NotificationAuth::InsecureNoAuth => state.warn_insecure(),
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupportedMediaType",
            format!(
                "notifications must be sent as application/json, not {:?}",
                if content_type.is_empty() {
                    "(no content type)"
                } else {
                    content_type
                }
            ),
        ));
    }
    let limit = state.config().max_body;
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payloadTooLarge",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            too_big()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "badBody",
                format!("the body could not be read: {e}"),
            )
        }
    })?;
    let started = Instant::now();
    let read = read_callback(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            error_code(&e),
            format!("{e}; expected a commsNotifications envelope"),
        )
    })?;
    let batch = match read {
        CallbackBody::LegacySkype => return Ok(Accepted::Legacy),
        CallbackBody::Graph(batch) => batch,
    };
    report_refused(state, &batch.refused);
    if batch.notifications.is_empty()
        && let Some(first) = batch.refused.first()
    {
        let more = batch.refused.len() - 1;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            error_code(&first.error),
            if more == 0 {
                format!("{}; expected a commsNotifications envelope", first.error)
            } else {
                format!("{} (and {more} more entries refused)", first.error)
            },
        ));
    }
    let count = batch.notifications.len();
    let body = std::str::from_utf8(&bytes).ok().map(str::to_owned);
    let held = test_hold::matches(body.as_deref());
    let submitted = match held {
        Some(hold) => {
            let journaled = state
                .runtime()
                .journal_only(batch.notifications, body)
                .await;
            if journaled.is_ok() {
                hold.reached().await;
            }
            journaled
        }
        None => {
            state
                .runtime()
                .submit_recorded(batch.notifications, hint, body)
                .await
        }
    };
    if let Err(overloaded) = submitted {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("the server is overloaded, try again: {overloaded:?}"),
        )
        .retry_after(1));
    }
    tracing::trace!(
        micros = started.elapsed().as_micros() as u64,
        "batch parsed and queued"
    );
    Ok(Accepted::Batch {
        queued: count,
        refused: batch.refused,
    })
}

/// `application/json`, with or without parameters, in any case.
fn is_json(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
}

/// Whether reading the body stopped at the size limit.
fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.to_string().contains("length limit exceeded") {
            return true;
        }
        source = e.source();
    }
    false
}

fn error_code(error: &NotificationError) -> &'static str {
    match error {
        NotificationError::Empty => "emptyBody",
        NotificationError::Truncated { .. } | NotificationError::Json { .. } => "invalidJson",
        NotificationError::TooMany { .. } => "batchTooLarge",
        _ => "invalidNotification",
    }
}

/// The crash tests' hold: `CALLFLOW_TEST_HOLD=before-202:TEXT` or
/// `after-202:TEXT` (and `CALLFLOW_TEST_HOLD_MARK=PATH`). The first
/// notification body containing TEXT is journaled and not applied; with
/// `before-202` its request is then never answered (`PATH` is created, and
/// the process waits to be killed), with `after-202` it is answered `202`.
/// A test kills the process there, exactly before or after the `202`. Unset
/// (always, outside those tests), nothing changes.
mod test_hold {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    pub(super) struct Hold {
        before: bool,
        text: String,
        mark: Option<String>,
        fired: AtomicBool,
    }

    fn hold() -> Option<&'static Hold> {
        static HOLD: OnceLock<Option<Hold>> = OnceLock::new();
        HOLD.get_or_init(|| {
            let spec = std::env::var("CALLFLOW_TEST_HOLD").ok()?;
            let (when, text) = spec.split_once(':')?;
            let before = match when {
                "before-202" => true,
                "after-202" => false,
                _ => return None,
            };
            tracing::warn!(%spec, "CALLFLOW_TEST_HOLD is set: a notification will be held (tests only)");
            Some(Hold {
                before,
                text: text.to_owned(),
                mark: std::env::var("CALLFLOW_TEST_HOLD_MARK").ok(),
                fired: AtomicBool::new(false),
            })
        })
        .as_ref()
    }

    /// The hold, when `body` is the first one it is for.
    pub(super) fn matches(body: Option<&str>) -> Option<&'static Hold> {
        let hold = hold()?;
        let matched = body.is_some_and(|b| b.contains(&hold.text));
        (matched && !hold.fired.swap(true, Ordering::AcqRel)).then_some(hold)
    }

    impl Hold {
        /// The body is journaled: says so, and with `before-202` never returns.
        pub(super) async fn reached(&self) {
            tracing::warn!(
                before_202 = self.before,
                "test hold: a notification journaled and not applied"
            );
            if let Some(mark) = &self.mark {
                let _ = std::fs::write(
                    mark,
                    if self.before {
                        "before-202"
                    } else {
                        "after-202"
                    },
                );
            }
            if self.before {
                std::future::pending::<()>().await;
            }
        }
    }
}
