//! Who may post notifications: the bearer JWT Graph signs every callback with.
//!
//! [`Verifier`] checks a token's signature against keys from a [`KeySource`]
//! (Graph's OpenID configuration, a JWKS URL, a local JWKS file or keys in
//! memory), then its expiry, issuer (`https://graph.microsoft.com` or
//! `https://api.botframework.com`), audience (the bot's application id) and
//! tenant (`tid` present, and equal to the configured tenant when one is
//! set). Keys are cached, refreshed when older than
//! [`AuthConfig::refresh_every`], and on a token whose `kid` is unknown (at
//! most once per [`AuthConfig::min_refresh_gap`], so that forged `kid`s
//! cannot make the server hammer the key endpoint). Only RS256 and EdDSA are
//! accepted: a token asking for HMAC or `none` is refused before any key is
//! touched.
//!
//! This module must never read a notification's body: authentication comes
//! first, and a request that fails it is never processed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

/// The issuers Graph's notification tokens carry.
pub const GRAPH_ISSUERS: [&str; 2] = [
    "https://graph.microsoft.com",
    "https://api.botframework.com",
];

/// Graph's OpenID configuration, where its notification keys are listed.
pub const GRAPH_OPENID_CONFIGURATION: &str =
    "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration";

/// Where the keys that sign notifications come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// An OpenID configuration URL; its `jwks_uri` is fetched.
    OpenIdConfiguration(String),
    /// A JWKS URL, fetched directly.
    JwksUrl(String),
    /// A local JWKS file, read again on each refresh.
    JwksFile(PathBuf),
    /// Keys given in memory (tests, embedding).
    Static(JwkSet),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::OpenIdConfiguration(url) => write!(f, "OpenID configuration {url}"),
            KeySource::JwksUrl(url) => write!(f, "JWKS {url}"),
            KeySource::JwksFile(path) => write!(f, "JWKS file {}", path.display()),
            KeySource::Static(set) => write!(f, "{} key(s) in memory", set.keys.len()),
        }
    }
}

/// How notification tokens are checked.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Where the keys come from.
    pub keys: KeySource,
    /// The expected audience: the bot's application id.
    pub audience: String,
    /// The accepted issuers (default [`GRAPH_ISSUERS`]).
    pub issuers: Vec<String>,
    /// The only tenant accepted in `tid`, when set; any tenant otherwise
    /// (but `tid` must be present).
    pub tenant: Option<String>,
    /// Keys older than this are fetched again.
    pub refresh_every: Duration,
    /// The shortest time between two fetches caused by an unknown `kid`.
    pub min_refresh_gap: Duration,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl AuthConfig {
    /// Defaults for `audience` and `keys`: Graph's issuers, any tenant,
    /// refresh hourly, at most one forced refresh per 30 s, 60 s of skew.
    pub fn new(keys: KeySource, audience: impl Into<String>) -> Self {
        AuthConfig {
            keys,
            audience: audience.into(),
            issuers: GRAPH_ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            tenant: None,
            refresh_every: Duration::from_secs(3600),
            min_refresh_gap: Duration::from_secs(30),
            leeway_secs: 60,
        }
    }
}

/// Why a token was refused. [`AuthError::status`] says 401 or 403.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no bearer token: the Authorization header is missing")]
    Missing,
    /// Not `Bearer <JWT>`, or not a JWT.
    #[error("the bearer token is malformed: {0}")]
    Malformed(String),
    /// The token asks for an algorithm other than RS256 or EdDSA.
    #[error("the token's algorithm {0} is not accepted (RS256 or EdDSA only)")]
    Algorithm(String),
    /// No known key has the token's `kid`.
    #[error("no signing key with kid {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` is past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Some other claim problem (missing `exp`, bad format).
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    /// `iss` is not one of Graph's.
    #[error("the token's issuer {0:?} is not accepted")]
    WrongIssuer(String),
    /// `aud` is not the bot.
    #[error("the token's audience is not this bot")]
    WrongAudience,
    /// `tid` missing, or another tenant.
    #[error("the token's tenant is missing or not accepted")]
    WrongTenant,
    /// The keys could not be fetched (the request is refused: unverifiable).
    #[error("the signing keys could not be loaded: {0}")]
    Keys(String),
}

impl AuthError {
    /// `401` for a missing or invalid token, `403` for a valid token that is
    /// not for this bot (issuer, audience, tenant).
    pub fn status(&self) -> u16 {
        match self {
            AuthError::WrongIssuer(_) | AuthError::WrongAudience | AuthError::WrongTenant => 403,
            _ => 401,
        }
    }

    /// A short stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missingToken",
            AuthError::Malformed(_) => "malformedToken",
            AuthError::Algorithm(_) => "unsupportedAlgorithm",
            AuthError::UnknownKey(_) => "unknownKey",
            AuthError::BadSignature => "invalidSignature",
            AuthError::Expired => "tokenExpired",
            AuthError::NotYetValid => "tokenNotYetValid",
            AuthError::Claims(_) => "invalidClaims",
            AuthError::WrongIssuer(_) => "wrongIssuer",
            AuthError::WrongAudience => "wrongAudience",
            AuthError::WrongTenant => "wrongTenant",
            AuthError::Keys(_) => "keysUnavailable",
        }
    }
}

/// The claims a valid token carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `iss`.
    pub issuer: String,
    /// `tid`.
    pub tenant: String,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<Jwk>,
    fetched_at: Option<Instant>,
    forced_at: Option<Instant>,
}

/// Checks notification tokens; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Verifier {
    config: AuthConfig,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    fetching: Mutex<()>,
    verified: std::sync::Mutex<HashMap<String, (VerifiedToken, u64)>>,
}

/// At most this many verified tokens are remembered (Graph reuses one
/// token for many notifications, so a handful is the usual number).
const VERIFIED_CACHE_SIZE: usize = 1024;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// Builds a verifier and loads its keys once.
    ///
    /// # Errors
    ///
    /// A message when the keys cannot be fetched or read, or hold no usable key.
    pub async fn start(config: AuthConfig) -> Result<Self, String> {
        crate::graph::client::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the HTTP client for keys would not build: {e}"))?;
        let verifier = Verifier {
            config,
            http,
            cache: RwLock::new(KeyCache::default()),
            fetching: Mutex::new(()),
            verified: std::sync::Mutex::new(HashMap::new()),
        };
        let keys = verifier.fetch().await?;
        if keys.is_empty() {
            return Err(format!(
                "{} holds no RS256 or EdDSA signing key",
                verifier.config.keys
            ));
        }
        let mut cache = verifier.cache.write().await;
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        drop(cache);
        Ok(verifier)
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// How many usable keys are cached.
    pub async fn key_count(&self) -> usize {
        self.cache.read().await.keys.len()
    }

    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
        let set: JwkSet = match &self.config.keys {
            KeySource::Static(set) => set.clone(),
            KeySource::JwksFile(path) => {
                let text = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || std::fs::read(path)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                serde_json::from_slice(&text)
                    .map_err(|e| format!("{} is not a JWKS: {e}", path.display()))?
            }
            KeySource::JwksUrl(url) => self.get_json(url).await?,
            KeySource::OpenIdConfiguration(url) => {
                let config: Value = self.get_json(url).await?;
                let Some(jwks_uri) = config.get("jwks_uri").and_then(Value::as_str) else {
                    return Err(format!("the OpenID configuration at {url} has no jwks_uri"));
                };
                self.get_json(jwks_uri).await?
            }
        };
        Ok(set
            .keys
            .into_iter()
            .filter(|k| {
                matches!(
                    k.algorithm,
                    AlgorithmParameters::RSA(_) | AlgorithmParameters::OctetKeyPair(_)
                )
            })
            .collect())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not the JSON expected: {e}"))
    }

    /// Fetches the keys again (unless another task just did); keeps the old
    /// ones when the fetch fails.
    async fn refresh(&self, forced: bool) {
        let _guard = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            let recent = |at: Option<Instant>, gap: Duration| at.is_some_and(|t| t.elapsed() < gap);
            if forced && recent(cache.forced_at, self.config.min_refresh_gap) {
                return;
            }
            if !forced && recent(cache.fetched_at, self.config.refresh_every) {
                return;
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        if forced {
            cache.forced_at = Some(Instant::now());
        }
        match fetched {
            Ok(keys) if !keys.is_empty() => {
                tracing::info!(source = %self.config.keys, keys = keys.len(), "notification keys refreshed");
                if cache.keys != keys {
                    // A key may have been withdrawn: check every token again.
                    self.verified_tokens().clear();
                }
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
            }
            Ok(_) => {
                tracing::warn!(source = %self.config.keys, "notification keys: the source holds no usable key; keeping the old ones");
            }
            Err(e) => {
                tracing::warn!(source = %self.config.keys, error = %e, "notification keys could not be refreshed; keeping the old ones");
            }
        }
    }

    async fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Jwk> {
        let cache = self.cache.read().await;
        cache
            .keys
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.common.key_id.as_deref() == Some(kid),
                None => key_fits(k, alg),
            })
            .cloned()
            .collect()
    }

    fn verified_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, (VerifiedToken, u64)>> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the `Authorization` header's value. A token that passed every
    /// check is remembered until its `exp` (keyed by the whole token, at most
    /// [`VERIFIED_CACHE_SIZE`] of them, forgotten when the keys change), so
    /// the signature of the token Graph reuses is checked once.
    ///
    /// # Errors
    ///
    /// An [`AuthError`]; its [`status`](AuthError::status) is the answer.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<VerifiedToken, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?.trim();
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::Malformed("expected `Bearer <JWT>`".into())),
        };
        if let Some((verified, exp)) = self.verified_tokens().get(token)
            && unix_now() < *exp
        {
            return Ok(verified.clone());
        }
        let (verified, exp) = self.verify_token(token).await?;
        let now = unix_now();
        if exp > now {
            let mut remembered = self.verified_tokens();
            if remembered.len() >= VERIFIED_CACHE_SIZE {
                remembered.retain(|_, (_, exp)| *exp > now);
                if remembered.len() >= VERIFIED_CACHE_SIZE {
                    remembered.clear();
                }
            }
            remembered.insert(token.to_owned(), (verified.clone(), exp));
        }
        Ok(verified)
    }

    /// Every check of one token; what it carried and its `exp`.
    async fn verify_token(&self, token: &str) -> Result<(VerifiedToken, u64), AuthError> {
        let head =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let alg = head.alg;
        if !matches!(alg, Algorithm::RS256 | Algorithm::EdDSA) {
            return Err(AuthError::Algorithm(format!("{alg:?}")));
        }
        let stale = self
            .cache
            .read()
            .await
            .fetched_at
            .is_none_or(|t| t.elapsed() >= self.config.refresh_every);
        if stale {
            self.refresh(false).await;
        }
        let kid = head.kid.as_deref();
        let mut candidates = self.find_key(kid, alg).await;
        if candidates.is_empty() {
            self.refresh(true).await;
            candidates = self.find_key(kid, alg).await;
        }
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey(kid.unwrap_or("(none)").to_owned()));
        }
        let mut validation = Validation::new(alg);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway_secs;
        validation.set_required_spec_claims(&["exp"]);
        let mut last = AuthError::BadSignature;
        for jwk in candidates.iter().filter(|k| key_fits(k, alg)) {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                Ok(data) => {
                    let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                    return self.check_claims(&data.claims).map(|v| (v, exp));
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => AuthError::BadSignature,
                        ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                        ErrorKind::ImmatureSignature => return Err(AuthError::NotYetValid),
                        ErrorKind::MissingRequiredClaim(c) => {
                            return Err(AuthError::Claims(format!("no `{c}` claim")));
                        }
                        ErrorKind::InvalidClaimFormat(c) => {
                            return Err(AuthError::Claims(format!("`{c}` has the wrong format")));
                        }
                        ErrorKind::InvalidToken
                        | ErrorKind::Base64(_)
                        | ErrorKind::Json(_)
                        | ErrorKind::Utf8(_) => return Err(AuthError::Malformed(e.to_string())),
                        _ => AuthError::BadSignature,
                    };
                }
            }
        }
        Err(last)
    }

    fn check_claims(&self, claims: &Value) -> Result<VerifiedToken, AuthError> {
        let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if !self.config.issuers.iter().any(|i| i == issuer) {
            return Err(AuthError::WrongIssuer(issuer.to_owned()));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.config.audience,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str() == Some(self.config.audience.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(AuthError::WrongAudience);
        }
        let tenant = claims
            .get("tid")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .ok_or(AuthError::WrongTenant)?;
        if let Some(expected) = &self.config.tenant
            && !expected.eq_ignore_ascii_case(tenant)
        {
            return Err(AuthError::WrongTenant);
        }
        Ok(VerifiedToken {
            issuer: issuer.to_owned(),
            tenant: tenant.to_owned(),
        })
    }
}

/// The `Authorization` header of a request as [`Verifier::verify`] takes
/// it: absent is `None`; a value that is not visible ASCII is kept as a
/// replacement character, so that it is refused as malformed rather than
/// as missing.
pub fn authorization_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Whether a key can verify `alg` (RSA for RS256, an OKP for EdDSA).
fn key_fits(key: &Jwk, alg: Algorithm) -> bool {
    matches!(
        (&key.algorithm, alg),
        (AlgorithmParameters::RSA(_), Algorithm::RS256)
            | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

/// How `authorization` headers of notifications are checked.
#[derive(Clone, Debug)]
pub enum NotificationAuth {
    /// Every token is verified.
    Verify(std::sync::Arc<Verifier>),
    /// Nothing is checked (`--insecure-no-auth`, local development only).
    InsecureNoAuth,
}
