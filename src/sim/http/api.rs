//! Graph's calling API, the token endpoint and the published keys.
//!
//! Paths as Graph v1.0 (`/beta` too), each request checked in Graph's
//! order: a known API version, a bearer token sim-graph issued (`401`), a
//! known call (`404`), the faults in force (`429`/`503` with
//! `Retry-After`), a body that parses (`400`), then the simulated Graph's
//! own checks and answer. Every refusal carries Graph's error body; every
//! request is logged under its call.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::engine::{CallControl, ControlError};
use crate::graph::wire::{
    AnswerRequest, Call, CallState, InviteParticipantsRequest, PlayPromptRequest,
    RecordResponseRequest, RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
};
use crate::sim::behaviour::TransferMode;
use crate::sim::notify::{Notifier, SimResult};

use super::error::RequestIds;
use super::world::{CallRecord, Core, LoggedRequest};
use super::{Shared, openid_configuration};

type S = Arc<Shared>;

/// The routes of this module.
pub(crate) fn routes() -> Router<S> {
    Router::new()
        .route("/{root}/communications/calls", post(create))
        .route(
            "/{root}/communications/calls/{id}",
            get(get_call).delete(delete_call),
        )
        .route("/{root}/communications/calls/{id}/{action}", post(action))
        .route(
            "/{root}/communications/calls/{id}/participants/invite",
            post(invite),
        )
        .route("/sim/recordings/{id}", get(recording))
        .route("/{root}/oauth2/v2.0/token", post(token))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/OpenIdConfiguration", get(openid))
        .route("/.well-known/openid-configuration", get(openid))
}

/// `GET /sim/recordings/{id}` with `Authorization: Bearer {recordingAccessToken}`:
/// a recording's WAV, as Graph serves a `recordingLocation`.
async fn recording(State(s): State<S>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    let core = s.core.lock().await;
    let location = format!("{}/sim/recordings/{id}", s.base_url);
    match core.graph.recording(&location, token) {
        Ok(wav) => axum::response::IntoResponse::into_response((
            [("content-type", "application/octet-stream")],
            wav,
        )),
        Err(e) => RequestIds::from_headers(&headers).error(e.status, &e.code, &e.message),
    }
}

/// Graph's `404` for any path it does not serve.
pub(crate) async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    RequestIds::from_headers(&headers).error(
        404,
        "UnknownError",
        &format!("no resource at {method} {}", uri.path()),
    )
}

/// Graph's `405` for a known path with the wrong method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    RequestIds::from_headers(&headers).error(
        405,
        "MethodNotAllowed",
        &format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn jwks(State(s): State<S>) -> Response {
    let ids = RequestIds::from_headers(&HeaderMap::new());
    let body = serde_json::to_value(s.signer.jwks()).unwrap_or(Value::Null);
    ids.answer(200, Vec::new(), Some(&body))
}

async fn openid(State(s): State<S>) -> Response {
    let ids = RequestIds::from_headers(&HeaderMap::new());
    ids.answer(200, Vec::new(), Some(&openid_configuration(&s)))
}

/// `POST /{tenant}/oauth2/v2.0/token`, client credentials.
async fn token(
    State(s): State<S>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.tokens.count_request();
    let ids = RequestIds::from_headers(&headers);
    let oauth_error = |status: u16, code: &str, description: &str| {
        ids.answer(
            status,
            Vec::new(),
            Some(&json!({"error": code, "error_description": description})),
        )
    };
    if tenant != s.config.tenant_id {
        return oauth_error(
            400,
            "invalid_request",
            &format!("tenant {tenant} is not sim-graph's tenant"),
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return oauth_error(
            400,
            "invalid_request",
            "client_id and client_secret are required",
        );
    };
    let wrong_id = s.config.client_id.as_deref().is_some_and(|c| c != id);
    let wrong_secret = s
        .config
        .client_secret
        .as_deref()
        .is_some_and(|c| c != secret);
    if wrong_id || wrong_secret {
        return oauth_error(401, "invalid_client", "client authentication failed");
    }
    if field("scope").is_none_or(|scope| !scope.ends_with("/.default")) {
        return oauth_error(400, "invalid_scope", "scope must be {graph}/.default");
    }
    let lifetime = s.config.token_lifetime;
    let token = s.tokens.issue(lifetime);
    ids.answer(
        200,
        Vec::new(),
        Some(&json!({
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "ext_expires_in": lifetime.as_secs(),
            "access_token": token,
        })),
    )
}

/// The Graph requests sim-graph serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Get,
    Delete,
    Answer,
    Reject,
    Redirect,
    Transfer,
    PlayPrompt,
    SubscribeToTone,
    KeepAlive,
    Invite,
    RecordResponse,
    CancelMediaProcessing,
}

impl Op {
    fn from_action(action: &str) -> Option<Op> {
        Some(match action {
            "answer" => Op::Answer,
            "reject" => Op::Reject,
            "redirect" => Op::Redirect,
            "transfer" => Op::Transfer,
            "playPrompt" => Op::PlayPrompt,
            "subscribeToTone" => Op::SubscribeToTone,
            "keepAlive" => Op::KeepAlive,
            "recordResponse" => Op::RecordResponse,
            "cancelMediaProcessing" => Op::CancelMediaProcessing,
            _ => return None,
        })
    }
}

async fn create(
    State(s): State<S>,
    Path(root): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&s, &root, None, Op::Create, method, uri, headers, body).await
}

async fn get_call(
    State(s): State<S>,
    Path((root, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&s, &root, Some(id), Op::Get, method, uri, headers, body).await
}

async fn delete_call(
    State(s): State<S>,
    Path((root, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&s, &root, Some(id), Op::Delete, method, uri, headers, body).await
}

async fn invite(
    State(s): State<S>,
    Path((root, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&s, &root, Some(id), Op::Invite, method, uri, headers, body).await
}

async fn action(
    State(s): State<S>,
    Path((root, id, action)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(op) = Op::from_action(&action) else {
        return not_found(method, uri, headers).await;
    };
    handle(&s, &root, Some(id), op, method, uri, headers, body).await
}

/// The outcome of one request, before it becomes a response.
struct Outcome {
    status: u16,
    headers: Vec<(axum::http::HeaderName, String)>,
    body: Option<Value>,
    error: Option<(String, String)>,
    /// The call a create made.
    created: Option<String>,
}

impl Outcome {
    fn ok(status: u16, body: Option<Value>) -> Self {
        Outcome {
            status,
            headers: Vec::new(),
            body,
            error: None,
            created: None,
        }
    }

    fn refused(status: u16, code: &str, message: impl Into<String>) -> Self {
        Outcome {
            status,
            headers: Vec::new(),
            body: None,
            error: Some((code.to_owned(), message.into())),
            created: None,
        }
    }

    fn from_control(e: ControlError) -> Self {
        let status = if (400..=599).contains(&e.status) {
            e.status
        } else {
            500
        };
        Outcome::refused(status, &e.code, e.message)
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    s: &S,
    root: &str,
    call_id: Option<String>,
    op: Op,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    if root != "v1.0" && root != "beta" {
        return not_found(method, uri, headers).await;
    }
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let authorised = token.is_some_and(|t| s.tokens.is_valid(t));
    let mut core = s.core.lock().await;
    core.tick(s);
    let outcome = if authorised {
        serve(s, &mut core, root, call_id.as_deref(), op, &body).await
    } else {
        Outcome::refused(
            401,
            "InvalidAuthenticationToken",
            if token.is_some() {
                "Access token validation failure: the token was not issued by sim-graph or has expired."
            } else {
                "Access token is empty."
            },
        )
    };
    let logged = LoggedRequest {
        seq: 0,
        at: core.now(s),
        method: method.to_string(),
        path: uri.path().to_owned(),
        client_request_id: ids.client_request_id.clone(),
        body: logged_body(&body),
        status: outcome.status,
        error: outcome.error.as_ref().map(|(code, _)| code.clone()),
    };
    let log_under = outcome.created.clone().or(call_id);
    let hold = match log_under.as_deref() {
        Some(id) => core.faults_for(id).hold_answers,
        None => core.faults.hold_answers,
    };
    core.log(log_under.as_deref(), logged);
    drop(core);
    if let Some(hold) = hold {
        tokio::time::sleep(hold.0).await;
    }
    match outcome.error {
        Some((code, message)) => ids.error_with(outcome.status, &code, &message, outcome.headers),
        None => ids.answer(outcome.status, outcome.headers, outcome.body.as_ref()),
    }
}

fn logged_body(body: &Bytes) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn parse<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, Box<Outcome>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Box::new(Outcome::refused(
            400,
            "BadRequest",
            format!("{what}: the request has no body"),
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(Outcome::refused(
            400,
            "BadRequest",
            format!("{what}: the body is not valid: {e}"),
        ))
    })
}

/// Answers `429`/`503` while a counted fault lasts (the call's own faults
/// first, else the global ones), and counts it down.
fn injected(core: &mut Core, call_id: Option<&str>) -> Option<Outcome> {
    let own = call_id
        .and_then(|id| core.calls.get_mut(id))
        .and_then(|r| r.faults.as_mut());
    let faults = match own {
        Some(f) => f,
        None => &mut core.faults,
    };
    let retry_after = faults.retry_after_secs().to_string();
    let (status, code, message) = if faults.throttle > 0 {
        faults.throttle -= 1;
        (
            429,
            "TooManyRequests",
            "Too many requests (simulated throttling).",
        )
    } else if faults.unavailable > 0 {
        faults.unavailable -= 1;
        (
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable (simulated).",
        )
    } else {
        return None;
    };
    let mut outcome = Outcome::refused(status, code, message);
    outcome.headers.push((RETRY_AFTER, retry_after));
    Some(outcome)
}

fn operation_json(op: &crate::graph::wire::CommsOperation, kind: &str) -> Value {
    let mut v = serde_json::to_value(op).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.type".into(),
            Value::String(format!("#microsoft.graph.{kind}")),
        );
    }
    v
}

fn call_json(call: &Call) -> Value {
    let mut v = serde_json::to_value(call).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.type".into(),
            Value::String("#microsoft.graph.call".into()),
        );
    }
    v
}

fn http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

async fn serve(
    s: &S,
    core: &mut Core,
    root: &str,
    call_id: Option<&str>,
    op: Op,
    body: &Bytes,
) -> Outcome {
    if let Some(id) = call_id
        && !core.calls.contains_key(id)
    {
        return Outcome::refused(404, "NotFound", format!("call {id} does not exist"));
    }
    if let Some(refusal) = injected(core, call_id) {
        return refusal;
    }
    let result = match (op, call_id) {
        (Op::Create, _) => return create_call(s, core, root, body).await,
        (_, None) => return Outcome::refused(404, "NotFound", "no call id"),
        (Op::Get, Some(id)) => {
            let call = &core.calls[id].call;
            return Outcome::ok(200, Some(call_json(call)));
        }
        (Op::Delete, Some(id)) => core.graph.hangup(id).await.map(|()| Outcome::ok(204, None)),
        (Op::KeepAlive, Some(id)) => core
            .graph
            .keep_alive(id)
            .await
            .map(|()| Outcome::ok(200, None)),
        (Op::Answer, Some(id)) => {
            let request: AnswerRequest = match parse(body, "answer") {
                Ok(r) => r,
                Err(o) => return *o,
            };
            if !http_url(&request.callback_uri) {
                return Outcome::refused(
                    400,
                    "BadRequest",
                    "answer: callbackUri must be an http(s) URL",
                );
            }
            let answered = core.graph.answer(id, &request).await;
            if answered.is_ok()
                && let Some(record) = core.calls.get_mut(id)
            {
                record.callback_uri = request.callback_uri.clone();
                record.call.callback_uri = Some(request.callback_uri.clone());
            }
            answered.map(|()| Outcome::ok(202, None))
        }
        (Op::Reject, Some(id)) => match parse::<RejectRequest>(body, "reject") {
            Ok(r) => core
                .graph
                .reject(id, &r)
                .await
                .map(|()| Outcome::ok(202, None)),
            Err(o) => return *o,
        },
        (Op::Redirect, Some(id)) => match parse::<RedirectRequest>(body, "redirect") {
            Ok(r) => core
                .graph
                .redirect(id, &r)
                .await
                .map(|()| Outcome::ok(202, None)),
            Err(o) => return *o,
        },
        (Op::Transfer, Some(id)) => match parse::<TransferRequest>(body, "transfer") {
            Ok(r) => transfer(s, core, id, &r)
                .await
                .map(|()| Outcome::ok(202, None)),
            Err(o) => return *o,
        },
        (Op::PlayPrompt, Some(id)) => match parse::<PlayPromptRequest>(body, "playPrompt") {
            Ok(r) => core
                .graph
                .play_prompt(id, &r)
                .await
                .map(|op| Outcome::ok(200, Some(operation_json(&op, "playPromptOperation")))),
            Err(o) => return *o,
        },
        (Op::RecordResponse, Some(id)) => {
            match parse::<RecordResponseRequest>(body, "recordResponse") {
                Ok(r) => core
                    .graph
                    .record_response(id, &r)
                    .await
                    .map(|op| Outcome::ok(200, Some(operation_json(&op, "recordOperation")))),
                Err(o) => return *o,
            }
        }
        (Op::CancelMediaProcessing, Some(id)) => {
            match parse::<crate::graph::wire::CancelMediaProcessingRequest>(
                body,
                "cancelMediaProcessing",
            ) {
                Ok(r) => core.graph.cancel_media_processing(id, &r).await.map(|op| {
                    Outcome::ok(
                        200,
                        Some(operation_json(&op, "cancelMediaProcessingOperation")),
                    )
                }),
                Err(o) => return *o,
            }
        }
        (Op::SubscribeToTone, Some(id)) => {
            match parse::<SubscribeToToneRequest>(body, "subscribeToTone") {
                Ok(r) => core.graph.subscribe_to_tone(id, &r).await.map(|op| {
                    Outcome::ok(200, Some(operation_json(&op, "subscribeToToneOperation")))
                }),
                Err(o) => return *o,
            }
        }
        (Op::Invite, Some(id)) => {
            match parse::<InviteParticipantsRequest>(body, "participants/invite") {
                Ok(r) => core.graph.invite(id, &r).await.map(|op| {
                    Outcome::ok(
                        200,
                        Some(operation_json(&op, "inviteParticipantsOperation")),
                    )
                }),
                Err(o) => return *o,
            }
        }
    };
    result.unwrap_or_else(Outcome::from_control)
}

async fn create_call(s: &S, core: &mut Core, root: &str, body: &Bytes) -> Outcome {
    let request: Call = match parse(body, "create call") {
        Ok(c) => c,
        Err(o) => return *o,
    };
    let Some(callback) = request.callback_uri.clone().filter(|u| http_url(u)) else {
        return Outcome::refused(
            400,
            "BadRequest",
            "create call: callbackUri must be an http(s) URL",
        );
    };
    let never_answers = core.faults.never_answer;
    let created = match core.graph.create_call(&request).await {
        Ok(c) => c,
        Err(e) => return Outcome::from_control(e),
    };
    let Some(id) = created.id.clone() else {
        return Outcome::refused(500, "InternalServerError", "the simulated Graph gave no id");
    };
    let mut call = created;
    call.callback_uri = Some(callback.clone());
    call.tenant_id = call.tenant_id.or_else(|| Some(s.config.tenant_id.clone()));
    call.my_participant_id = Some(format!("{id}-bot"));
    let mut record = CallRecord::new(call.clone(), callback);
    record.never_answers = never_answers;
    core.calls.insert(id.clone(), record);
    let mut outcome = Outcome::ok(201, Some(call_json(&call)));
    outcome.headers.push((
        LOCATION,
        format!("{}/{root}/communications/calls/{id}", s.base_url),
    ));
    outcome.created = Some(id);
    outcome
}

/// A transfer: by the simulated Graph, unless a fault decides its end.
async fn transfer(
    s: &S,
    core: &mut Core,
    call_id: &str,
    body: &TransferRequest,
) -> Result<(), ControlError> {
    let mode = core.faults_for(call_id).transfer;
    let Some(mode @ (TransferMode::Fail | TransferMode::NoAnswer)) = mode else {
        return core.graph.transfer(call_id, body).await;
    };
    core.graph.check_transfer(call_id, body)?;
    let record = &core.calls[call_id];
    let consultative = body.transfer_target.replaces_call_id.is_some();
    let notifier = Notifier {
        callback_uri: record.callback_uri.clone(),
        legacy: s.config.behaviour.legacy,
    };
    let now = core.graph.now();
    let transferring = notifier.state(call_id, &CallState::Transferring, None, None, None);
    core.graph
        .schedule_recorded(now + chrono::Duration::seconds(1), transferring);
    if mode == TransferMode::Fail {
        let result = SimResult::new(
            500,
            if consultative { 7700 } else { 7000 },
            "The transfer target did not accept the call (simulated)",
        );
        let back = notifier.state(
            call_id,
            &CallState::Established,
            Some(&result),
            None,
            consultative.then_some("<replacesContext>"),
        );
        core.graph
            .schedule_recorded(now + chrono::Duration::seconds(2), back);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Op;
    use crate::engine::RequestKind;

    /// Every action the engine asks for on a call has a route here, under the
    /// path the engine's table gives (the studio shows that table).
    #[test]
    fn every_call_action_has_a_route() {
        for kind in RequestKind::ALL {
            if let (_, Some(action)) = kind.http()
                && kind != RequestKind::SaveRecording
                && kind != RequestKind::Fetch
                && kind != RequestKind::TakeTurn
                && !action.is_empty()
                && !action.contains('/')
            {
                assert!(
                    Op::from_action(action).is_some(),
                    "{kind}: no route for {action}"
                );
            }
        }
    }
}
