//! The admin API and the probes: `/healthz`, `/readyz`, `/metrics`,
//! `/api/flows`, `/api/flows/{flow}/runs`, `/api/sessions[/{id}]`.
//!
//! Everything but the two probes needs `Authorization: Bearer <admin
//! token>`, compared in constant time; without a configured admin token the
//! admin routes are closed (`401`). This module only reads the runtime and
//! asks it to start runs; it must never change a session itself.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::runtime::StartError;

use super::error::ApiError;
use super::{ServerState, same_secret};

fn require_admin(state: &ServerState, headers: &HeaderMap, route: &str) -> Result<(), ApiError> {
    let refuse = |message: &str| {
        state
            .stats()
            .admin_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).logged(route)
    };
    let Some(expected) = state.config().admin_token.as_deref() else {
        return Err(refuse(
            "the admin API is closed: no admin token is configured (--admin-token)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.trim()
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
        });
    match given {
        None => Err(refuse(
            "an admin token is needed: Authorization: Bearer <token>",
        )),
        Some(token) if same_secret(token, expected) => Ok(()),
        Some(_) => Err(refuse("the admin token is wrong")),
    }
}

/// `GET /healthz`.
pub(crate) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: ready once the flows are loaded, not while shutting down
/// nor while the session store does not answer.
pub(crate) async fn readyz(State(state): State<ServerState>) -> Response {
    if state.is_closing() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shuttingDown",
            "the server is shutting down",
        )
        .into_response();
    }
    if !state.runtime().store().ready() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storeUnreachable",
            "the session store does not answer",
        )
        .into_response();
    }
    Json(json!({ "status": "ready" })).into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers, "/metrics") {
        return e.into_response();
    }
    let body = super::metrics::render(&state);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /api/flows`.
pub(crate) async fn flows(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers, "/api/flows") {
        return e.into_response();
    }
    Json(state.runtime().flows()).into_response()
}

/// `POST /api/flows/{flow}/runs` with `{"params": {...}}` (or no body).
pub(crate) async fn start_run(
    State(state): State<ServerState>,
    Path(flow): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "/api/flows/{flow}/runs";
    if let Err(e) = require_admin(&state, &headers, route) {
        return e.into_response();
    }
    let params = match read_params(&body) {
        Ok(p) => p,
        Err(message) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "badRequest", message)
                .logged(route)
                .into_response();
        }
    };
    match state.runtime().start_api_flow(&flow, params).await {
        Ok(session) => {
            tracing::info!(flow = %flow, session = %session, "api run started");
            (
                StatusCode::CREATED,
                Json(json!({ "flow": flow, "session": session })),
            )
                .into_response()
        }
        Err(e) => start_error(&flow, e).logged(route).into_response(),
    }
}

fn read_params(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the body must be a JSON object: {\"params\": {...}}".into());
    };
    match object.remove("params") {
        None => Ok(Map::new()),
        Some(Value::Object(params)) => {
            if let Some(extra) = object.keys().next() {
                return Err(format!(
                    "unknown field `{extra}`: the body is {{\"params\": {{...}}}}"
                ));
            }
            Ok(params)
        }
        Some(_) => Err("`params` must be a JSON object".into()),
    }
}

fn start_error(flow: &str, error: StartError) -> ApiError {
    let message = error.to_string();
    match error {
        StartError::UnknownFlow { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknownFlow",
            format!("{message} (flow {flow:?})"),
        ),
        StartError::InvalidParams { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalidParams", message)
        }
        StartError::NotApi { .. } => ApiError::new(StatusCode::BAD_REQUEST, "notApiFlow", message),
        StartError::Overloaded { .. } | StartError::ShuttingDown => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cannotStart", message).retry_after(1)
        }
    }
}

/// The page `/api/sessions` answers when none is asked for.
pub const SESSIONS_PAGE: usize = 1000;
/// The largest page `/api/sessions` answers.
pub const SESSIONS_PAGE_MAX: usize = 10_000;

/// `?offset=N&limit=M` of `GET /api/sessions`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct PageQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /api/sessions?offset=N&limit=M`: live sessions, then finished
/// ones, one page at a time (`next` is the offset of the next page, when
/// there is one).
pub(crate) async fn sessions(
    State(state): State<ServerState>,
    axum::extract::Query(page): axum::extract::Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = require_admin(&state, &headers, "/api/sessions") {
        return e.into_response();
    }
    let offset = page.offset.unwrap_or(0);
    let limit = page
        .limit
        .unwrap_or(SESSIONS_PAGE)
        .clamp(1, SESSIONS_PAGE_MAX);
    let page = state.runtime().sessions_page(offset, limit).await;
    Json(json!({
        "sessions": page.sessions,
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "next": page.next,
    }))
    .into_response()
}

/// `GET /api/cluster`: the instances sharing this server's PostgreSQL
/// store, whether each is alive, and the sessions each holds.
pub(crate) async fn cluster(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers, "/api/cluster") {
        return e.into_response();
    }
    let Some(cluster) = state.runtime().cluster().cloned() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "noCluster",
            "this server is the only instance on its store (the cluster needs --store postgres://…)",
        )
        .into_response();
    };
    match cluster.nodes().await {
        Ok(nodes) => {
            // The flows whose live version is not the same on every node
            // alive: a new call starts on the version of the node it reaches.
            let alive: Vec<_> = nodes.iter().filter(|n| n.alive).collect();
            let mut disagree: Vec<&str> = alive
                .iter()
                .flat_map(|n| n.flows.keys())
                .map(String::as_str)
                .filter(|flow| {
                    let first = alive[0].flows.get(*flow);
                    alive.iter().any(|n| n.flows.get(*flow) != first)
                })
                .collect();
            disagree.sort_unstable();
            disagree.dedup();
            Json(json!({
                "node": cluster.node(),
                "lease": humantime::format_duration(cluster.lease()).to_string(),
                "nodes": nodes,
                "flows_disagree": disagree,
            }))
            .into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storeUnreachable",
            format!("the cluster could not be read from the store: {e}"),
        )
        .into_response(),
    }
}

/// `GET /api/sessions/{id}` (`?verbose=true`: the timeline's text in
/// its verbose form).
pub(crate) async fn session(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    Query(query): Query<VerboseQuery>,
    headers: HeaderMap,
) -> Response {
    let route = "/api/sessions/{id}";
    if let Err(e) = require_admin(&state, &headers, route) {
        return e.into_response();
    }
    match state.runtime().session_anywhere(&id).await {
        Some(detail) if query.verbose => Json(detail.verbose()).into_response(),
        Some(detail) => Json(detail).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknownSession",
            format!("no session {id:?}"),
        )
        .logged(route)
        .into_response(),
    }
}

/// `?verbose=true` on a session's detail.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct VerboseQuery {
    /// Every timeline entry, with Graph's operation ids.
    #[serde(default)]
    verbose: bool,
}

/// `GET /api/sessions/{id}/scenario`: a stored call as a scenario that
/// replays it (what `callflow sessions export` writes).
pub(crate) async fn session_scenario(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let route = "/api/sessions/{id}/scenario";
    if let Err(e) = require_admin(&state, &headers, route) {
        return e.into_response();
    }
    match state.runtime().export_scenario(&id).await {
        Some(exported) => Json(exported).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknownSession",
            format!(
                "no stored session {id:?} with recorded notifications (the memory store keeps none)"
            ),
        )
        .logged(route)
        .into_response(),
    }
}

/// Any other path.
pub(crate) async fn not_found(uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "notFound",
        format!("no route {}", uri.path()),
    )
    .logged(uri.path())
    .into_response()
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed(uri: Uri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "methodNotAllowed",
        format!("{} does not take this method", uri.path()),
    )
    .logged(uri.path())
    .into_response()
}
