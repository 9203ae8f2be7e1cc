//! Who may talk to sim-graph, and how sim-graph proves who it is.
//!
//! [`TokenBook`] issues opaque bearer tokens at the client-credentials
//! endpoint and checks them on every Graph request. [`NotificationSigner`]
//! holds sim-graph's own Ed25519 key, made at startup from the operating
//! system's random source: it signs the JWT sent with every notification
//! and publishes its public half as a JWKS. The private key never leaves
//! this module and is never printed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The issuer Graph puts in the tokens of its notifications.
pub const GRAPH_ISSUER: &str = "https://graph.microsoft.com";

/// The claims of a notification token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationClaims {
    /// The issuer (`https://graph.microsoft.com`).
    pub iss: String,
    /// The audience: the bot's application id.
    pub aud: String,
    /// The tenant.
    pub tid: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expires at.
    pub exp: u64,
}

/// sim-graph's signing key for notifications, and its JWKS.
pub struct NotificationSigner {
    key: EncodingKey,
    kid: String,
    jwk: Jwk,
}

impl std::fmt::Debug for NotificationSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The PKCS#8 v1 prefix of a bare Ed25519 private key (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The key could not be made.
#[derive(Debug, thiserror::Error)]
#[error("sim-graph could not make its signing key: {0}")]
pub struct KeyError(String);

impl NotificationSigner {
    /// A fresh Ed25519 key with a random key id.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the system's random source fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| KeyError("no random bytes".into()))?;
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let key = EncodingKey::from_ed_der(&der);
        let kid = format!("sim-graph-{}", uuid::Uuid::new_v4().simple());
        let mut jwk =
            Jwk::from_encoding_key(&key, Algorithm::EdDSA).map_err(|e| KeyError(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(NotificationSigner { key, kid, jwk })
    }

    /// The key id (`kid`) in the tokens' header and the JWKS.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The JWKS to publish: this one key.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// A token for one notification: `iss`, `aud` = the bot, `tid`, valid
    /// for an hour.
    ///
    /// # Errors
    ///
    /// A message when signing fails (it should not).
    pub fn sign(&self, issuer: &str, audience: &str, tenant: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = NotificationClaims {
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            tid: tenant.to_owned(),
            iat: now,
            nbf: now.saturating_sub(60),
            exp: now + 3600,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

/// The access tokens sim-graph issued, and until when each is good.
#[derive(Debug, Default)]
pub struct TokenBook {
    issued: Mutex<HashMap<String, Instant>>,
    requests: Mutex<u64>,
}

impl TokenBook {
    /// Issues a token valid for `lifetime`.
    pub fn issue(&self, lifetime: Duration) -> String {
        let token = format!(
            "sim-graph.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        issued.retain(|_, until| *until > now);
        issued.insert(token.clone(), now + lifetime);
        token
    }

    /// Counts one request to the token endpoint.
    pub fn count_request(&self) {
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    }

    /// How many requests reached the token endpoint.
    pub fn requests(&self) -> u64 {
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `token` was issued here and has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .is_some_and(|until| *until > Instant::now())
    }
}
