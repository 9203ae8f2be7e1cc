//! Application tokens by the client-credentials grant, cached and refreshed
//! ahead of expiry with a single refresh in flight.
//!
//! Many requests may find the cache cold or stale at once; they queue on one
//! lock and only the first asks the authority, the others take its token (or
//! its failure). A token that still has time left is kept in use when a
//! refresh ahead of expiry fails. This module must never log or print a
//! secret or a token: both only travel in the form body and the
//! `Authorization` header, marked sensitive.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::config::{ClientSecret, GraphConfig};
use super::error::TokenError;

/// An access token and when to replace it.
#[derive(Clone)]
pub(crate) struct AccessToken {
    /// The bearer value.
    pub(crate) value: Arc<str>,
    /// From this instant on, a request first tries to refresh it.
    refresh_at: Instant,
    /// From this instant on, it is no longer used.
    expires_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"***")
            .field("refresh_at", &self.refresh_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The state behind the refresh lock.
#[derive(Default)]
struct RefreshState {
    /// The failure of the last refresh, handed to those who waited for it.
    last_error: Option<TokenError>,
}

/// Gets, caches and refreshes the bot's application token.
pub(crate) struct TokenSource {
    http: reqwest::Client,
    url: Url,
    client_id: String,
    secret: ClientSecret,
    scope: String,
    margin: Duration,
    cached: RwLock<Option<AccessToken>>,
    refresh: tokio::sync::Mutex<RefreshState>,
    /// Refreshes finished (successful or not); bumped under the lock.
    generation: AtomicU64,
    /// Requests sent to the token endpoint.
    requests: AtomicU64,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(http: reqwest::Client, config: &GraphConfig) -> Self {
        Self {
            http,
            url: config.token_url(),
            client_id: config.client_id.clone(),
            secret: config.client_secret.clone(),
            scope: config.scope(),
            margin: config.token_refresh_margin,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            generation: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// How many requests went to the token endpoint so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn cached_if(&self, keep: impl Fn(&AccessToken) -> bool) -> Option<AccessToken> {
        let guard = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().filter(|t| keep(t)).cloned()
    }

    /// A token good to use now, from the cache or freshly fetched.
    pub(crate) async fn get(&self) -> Result<AccessToken, TokenError> {
        let now = Instant::now();
        if let Some(token) = self.cached_if(|t| now < t.refresh_at) {
            return Ok(token);
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut state = self.refresh.lock().await;
        let now = Instant::now();
        if let Some(token) = self.cached_if(|t| now < t.refresh_at) {
            return Ok(token);
        }
        if self.generation.load(Ordering::Acquire) != seen
            && let Some(error) = &state.last_error
        {
            // The refresh this caller waited for failed: share its failure
            // rather than asking again.
            return self
                .cached_if(|t| now < t.expires_at)
                .ok_or_else(|| error.clone());
        }
        let result = self.fetch().await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(token) => {
                state.last_error = None;
                *self.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
                Ok(token)
            }
            Err(error) => {
                tracing::warn!(target: "callflow::graph", token_url = %self.url, %error, "token refresh failed");
                state.last_error = Some(error.clone());
                let now = Instant::now();
                self.cached_if(|t| now < t.expires_at).ok_or(error)
            }
        }
    }

    /// Forgets `value` if it is the cached token (Graph refused it with 401).
    pub(crate) fn invalidate(&self, value: &str) {
        let mut guard = self.cached.write().unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_some_and(|t| &*t.value == value) {
            *guard = None;
        }
    }

    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.secret.expose())
            .append_pair("scope", &self.scope)
            .finish();
        let started = Instant::now();
        let response = self
            .http
            .post(self.url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| TokenError::Unreachable {
                detail: super::exchange::describe(&e),
            })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| TokenError::Malformed {
            status,
            detail: format!(
                "the body could not be read: {}",
                super::exchange::describe(&e)
            ),
        })?;
        tracing::debug!(
            target: "callflow::graph",
            token_url = %self.url,
            status,
            latency_us = started.elapsed().as_micros() as u64,
            "token request"
        );
        let json: Value = serde_json::from_slice(&body).map_err(|e| TokenError::Malformed {
            status,
            detail: super::exchange::describe_json(&e),
        })?;
        if !(200..300).contains(&status) {
            let text = |key: &str| {
                json.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            return Err(TokenError::Refused {
                status,
                error: text("error"),
                description: text("error_description"),
            });
        }
        let value = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| TokenError::Malformed {
                status,
                detail: "no access_token in the answer".into(),
            })?;
        // `expires_in` is a number, or a string in some authorities' answers.
        let expires_in = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| TokenError::Malformed {
            status,
            detail: "no usable expires_in in the answer".into(),
        })?;
        let lifetime = Duration::from_secs(expires_in);
        let refresh_after = if lifetime > self.margin * 2 {
            lifetime - self.margin
        } else {
            lifetime / 2
        };
        let expire_after = lifetime.saturating_sub((lifetime / 10).min(Duration::from_secs(30)));
        Ok(AccessToken {
            value: Arc::from(value),
            refresh_at: started + refresh_after,
            expires_at: started + expire_after,
        })
    }
}
