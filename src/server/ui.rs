//! `/ui`: the studio's pages, read-only, behind the admin token, with the
//! runtime's live and recently ended sessions.
//!
//! A browser cannot send a bearer token when it opens a page, so `/ui/`
//! without a token answers a small form (`POST /ui/login`) that checks the
//! token and keeps it in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! `/ui`; the studio's API then takes either that cookie or `Authorization:
//! Bearer`. Without a configured admin token `/ui` is closed like the rest
//! of the admin API. Everything behind the check is [`crate::studio`] with
//! `read_only` set: nothing here writes a file or changes a session.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::studio::{Studio, StudioConfig, assets};

use super::error::ApiError;
use super::{ServerState, same_secret};

/// The cookie that holds the admin token for `/ui`.
pub const COOKIE: &str = "callflow_admin";

/// The `/ui` routes over `state`'s runtime and flows folder.
pub(crate) fn routes(state: ServerState) -> Router {
    let studio = Studio::new(StudioConfig {
        flows_dir: state.runtime().config().flows_dir.clone(),
        read_only: true,
        live: Some(state.runtime().clone()),
    });
    let ui = Arc::new(Ui {
        state: state.clone(),
        studio: studio.clone(),
        started: OnceLock::new(),
    });
    let inner = studio
        .router_at("/ui")
        .layer(middleware::from_fn_with_state(ui, check));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/login", post(login).with_state(state))
        .merge(inner)
}

/// What `/ui`'s check needs: the server, its studio, and whether the
/// studio's watcher runs yet.
struct Ui {
    state: ServerState,
    studio: Studio,
    started: OnceLock<()>,
}

impl Ui {
    /// On the first request: live reload of the pages, and their event
    /// streams ended once the server stops taking requests (so that its
    /// graceful stop finishes). A server whose `/ui` nobody opens pays nothing.
    fn start(&self) {
        self.started.get_or_init(|| {
            let watcher = self.studio.watch();
            let (studio, state) = (self.studio.clone(), self.state.clone());
            tokio::spawn(async move {
                while !state.is_closing() {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                studio.close();
                watcher.abort();
            });
        });
    }
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_owned())
    })
}

async fn check(State(ui): State<Arc<Ui>>, request: Request, next: Next) -> Response {
    ui.start();
    let state = &ui.state;
    let Some(expected) = state.config().admin_token.as_deref() else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "/ui is closed: no admin token is configured (--admin-token)",
        )
        .logged("/ui")
        .into_response();
    };
    // The style sheet holds no data; the sign-in form needs it.
    if request.uri().path() == "/ui/studio.css" {
        return next.run(request).await;
    }
    match token_of(request.headers()) {
        Some(t) if same_secret(&t, expected) => next.run(request).await,
        given => {
            let page = request.uri().path() == "/ui/";
            if page {
                return (StatusCode::UNAUTHORIZED, login_page(given.is_some())).into_response();
            }
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin token is needed: Authorization: Bearer <token>, or sign in at /ui/",
            )
            .logged("/ui")
            .into_response()
        }
    }
}

fn login_page(wrong: bool) -> Response {
    let note = if wrong {
        "<p class=\"error\" role=\"alert\">That token is not the admin token.</p>"
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>callflow: sign in</title><link rel=\"stylesheet\" href=\"/ui/studio.css\"></head>\
         <body><main class=\"welcome\"><h1>callflow</h1><p>The flows and live calls of this \
         server are behind its admin token (<code>--admin-token</code>).</p>{note}\
         <form method=\"post\" action=\"/ui/login\"><label>Admin token \
         <input name=\"token\" type=\"password\" autocomplete=\"current-password\" autofocus></label>\
         <button class=\"primary\" type=\"submit\">Open</button></form></main></body></html>"
    );
    ([(header::CONTENT_SECURITY_POLICY, assets::CSP)], Html(html)).into_response()
}

/// `POST /ui/login` with `token=…` (a form): sets the cookie and goes to
/// `/ui/`, or shows the form again.
async fn login(State(state): State<ServerState>, body: Bytes) -> Response {
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let ok = state
        .config()
        .admin_token
        .as_deref()
        .is_some_and(|expected| same_secret(token.trim(), expected));
    if !ok {
        tracing::warn!(route = "/ui/login", "wrong admin token for /ui");
        return (StatusCode::UNAUTHORIZED, login_page(true)).into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict",
        token.trim()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/ui/".to_owned()),
        ],
    )
        .into_response()
}
