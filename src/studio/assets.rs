//! The page: HTML, CSS and JavaScript embedded in the binary.
//!
//! Plain files under `src/studio/assets/`, written by hand, with no build
//! step (see docs/decisions.md): what is in the repository is what the
//! browser runs. Every answer carries a `Content-Security-Policy` that lets
//! the page load and connect to this server only.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its style sheet.
pub const STUDIO_CSS: &str = include_str!("assets/studio.css");
/// Its script.
pub const STUDIO_JS: &str = include_str!("assets/studio.js");

/// No request to anything but this server; no inline script.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /studio.css`.
pub async fn css() -> Response {
    asset("text/css; charset=utf-8", STUDIO_CSS)
}

/// `GET /studio.js`.
pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", STUDIO_JS)
}
