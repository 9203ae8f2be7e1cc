//! The bodies of the fuzz targets in `fuzz/`, shared with the test that
//! replays their corpus (`tests/it/fuzz_corpus.rs`), so that both run the
//! same code: each function feeds one input to a production entry point
//! and panics when a property the entry point promises does not hold.
//!
//! - [`notification`]: [`read_callback`], what `serve`'s callback route
//!   calls on a POST body (the legacy Skype body included), and
//!   [`parse_batch`], its strict form.
//! - [`token`]: the `Authorization` header as the callback route reads it
//!   ([`authorization_header`]), through [`Verifier::verify`] with keys in
//!   memory: the bearer parsing, the JWT header and the claims.
//! - [`flow_loader`]: [`load_str`], YAML to diagnostics.
//!
//! Not a stable API: it exists for the fuzzer and the replay test.

use std::sync::OnceLock;

use crate::flow::{Diagnostic, load_str};
use crate::graph::notification::{CallbackBody, read_callback};
use crate::graph::notification::{NotificationError, parse_batch};
use crate::server::auth::{
    AuthConfig, AuthError, GRAPH_ISSUERS, KeySource, VerifiedToken, Verifier, authorization_header,
};

/// Reads `body` as the callback route does, and checks what it promises:
/// no panic; every entry either read or refused with a reason, never more
/// of them than the body has bytes; every notification names a call;
/// [`parse_batch`] agrees with [`read_callback`]; reading is deterministic.
pub fn notification(body: &[u8]) {
    let read = read_callback(body);
    assert_eq!(read, read_callback(body), "reading is deterministic");
    let strict = parse_batch(body);
    match read {
        Ok(CallbackBody::LegacySkype) => {
            assert!(
                matches!(strict, Err(NotificationError::Shape(_))),
                "parse_batch refuses the legacy body: {strict:?}"
            );
        }
        Ok(CallbackBody::Graph(batch)) => {
            assert!(
                batch.notifications.len() + batch.refused.len() <= body.len(),
                "{} notifications and {} refused entries from {} bytes",
                batch.notifications.len(),
                batch.refused.len(),
                body.len()
            );
            for n in &batch.notifications {
                assert!(!n.call_id().is_empty(), "a notification without call id");
                let _ = n.change_type.as_str();
            }
            for r in &batch.refused {
                assert!(!r.reason().is_empty());
                bounded_message(&r.error.to_string(), body.len());
            }
            match (batch.refused.first(), strict) {
                (None, Ok(strict)) => assert_eq!(strict, batch.notifications),
                (Some(first), Err(e)) => assert_eq!(e, first.error),
                (first, strict) => {
                    panic!("read_callback refused {first:?}, parse_batch gave {strict:?}")
                }
            }
        }
        Err(e) => {
            assert_eq!(strict, Err(e.clone()), "parse_batch fails as read_callback");
            assert!(!e.reason().is_empty());
            bounded_message(&e.to_string(), body.len());
        }
    }
}

/// An error message stays within a fixed size plus what it quotes.
fn bounded_message(message: &str, input_len: usize) {
    assert!(
        message.len() <= 1024 + 4 * input_len,
        "a {}-byte message for a {input_len}-byte input",
        message.len()
    );
}

/// The audience the fuzzing verifier expects.
pub const FUZZ_AUDIENCE: &str = "fuzz-bot";

/// The tenant the fuzzing verifier accepts.
pub const FUZZ_TENANT: &str = "fuzz-tenant";

/// The keys the fuzzing verifier trusts: an RSA key (its private half
/// thrown away, so RS256 tokens only reach the signature check) and the
/// Ed25519 key whose seed is the bytes 0, 1, …, 31 (so that
/// `fuzz/seeds/tokens.py` can sign valid tokens for the corpus).
pub const FUZZ_JWKS: &str = r#"{"keys":[
{"kty":"RSA","kid":"fuzz-rsa","use":"sig","alg":"RS256","n":"vmzskyazveuUrjwgGS4S5Y99mS8DpbMDsPal4dXGHqmdjk0IgHvv1tKUOQs968fC2xPc2WVBu6jIpbdxwdO9mLXEK183QGKmYdzGOLIvxQy2FPC06E4VQIISQwc4HwqH20hBs7NJut7nKLj_bnA045Z2eAQn-eI-ObQPWXp18bTHc3oWHD0mJq90qckIF5f_r4VyCVUMiASyu722P89OCmd-XEPxs2kYCnkTqrQ-IU3jv3NpcUWjZGVgIu5nd9QrmFFfnG5QLVQnp1N_-9IJqFTVdgsG-PjyMe-WzZ_Mj2lNRr3lH-gpIxsTu8AuXCIe2v8WM_VdioQ8v1z3yRqwLQ","e":"AQAB"},
{"kty":"OKP","crv":"Ed25519","kid":"fuzz-ed25519","use":"sig","alg":"EdDSA","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"}
]}"#;

struct TokenBench {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
}

fn token_bench() -> &'static TokenBench {
    static BENCH: OnceLock<TokenBench> = OnceLock::new();
    BENCH.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let keys = serde_json::from_str(FUZZ_JWKS).expect("FUZZ_JWKS is a JWKS");
        let mut config = AuthConfig::new(KeySource::Static(keys), FUZZ_AUDIENCE);
        config.tenant = Some(FUZZ_TENANT.into());
        let verifier = runtime
            .block_on(Verifier::start(config))
            .expect("the fuzzing verifier starts");
        TokenBench { runtime, verifier }
    })
}

/// Puts `header` in an `Authorization` header (when HTTP allows those
/// bytes there), reads it as the callback route does and verifies it
/// twice: no panic; a refusal is a 401 or a 403 with a code and a bounded
/// message; an accepted token has one of Graph's issuers and the tenant;
/// the second answer (from the cache of verified tokens) is the first.
pub fn token(header: &[u8]) {
    let Some(first) = verify_as_served(header) else {
        return; // hyper refuses such a request before any handler runs
    };
    let again = verify_as_served(header);
    assert_eq!(
        Some(&first),
        again.as_ref(),
        "verifying twice gives the same answer"
    );
    match first {
        Ok(verified) => {
            assert!(GRAPH_ISSUERS.contains(&verified.issuer.as_str()));
            assert_eq!(verified.tenant, FUZZ_TENANT);
        }
        Err(e) => {
            assert!(matches!(e.status(), 401 | 403), "{e:?}");
            assert!(!e.code().is_empty());
            bounded_message(&e.to_string(), header.len());
        }
    }
}

/// Whether the fuzzing verifier accepts `header` as an `Authorization`
/// header (for the replay test: the corpus must hold a valid token).
pub fn token_accepted(header: &[u8]) -> bool {
    matches!(verify_as_served(header), Some(Ok(_)))
}

/// `header` as the callback route's `Authorization` header, verified;
/// `None` when HTTP does not allow those bytes in a header.
fn verify_as_served(header: &[u8]) -> Option<Result<VerifiedToken, AuthError>> {
    let value = axum::http::HeaderValue::from_bytes(header).ok()?;
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(axum::http::header::AUTHORIZATION, value);
    let bench = token_bench();
    Some(
        bench
            .runtime
            .block_on(bench.verifier.verify(authorization_header(&headers))),
    )
}

/// Loads `data` (when it is UTF-8, as a flow file must be) and checks what
/// the loader promises: no panic; every span within the text and on
/// character boundaries; a flow exactly when no diagnostic is an error;
/// at most [`crate::flow::check::MAX_DIAGNOSTICS`] diagnostics plus a note;
/// every diagnostic renders and serialises.
pub fn flow_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `load_file` refuses such a file before parsing
    };
    let loaded = load_str("fuzz.yaml", text);
    if let Err(e) = spans_valid(&loaded.diagnostics) {
        panic!("{e}");
    }
    let errors = loaded.diagnostics.iter().any(Diagnostic::is_error);
    assert_eq!(
        loaded.flow.is_some(),
        !errors,
        "a flow exactly when there is no error"
    );
    assert!(
        loaded.diagnostics.len() <= crate::flow::check::MAX_DIAGNOSTICS + 1,
        "{} diagnostics",
        loaded.diagnostics.len()
    );
    for d in &loaded.diagnostics {
        assert!(!d.code.is_empty());
        let _ = d.render(100);
        let _ = d.to_json();
    }
}

/// Every span of `diagnostics` lies within its file's text, on character
/// boundaries.
///
/// # Errors
///
/// A message naming the first diagnostic whose span is not.
pub fn spans_valid(diagnostics: &[Diagnostic]) -> Result<(), String> {
    for d in diagnostics {
        let text = &d.file.text;
        for s in d.span.into_iter().chain(d.related.iter().map(|r| r.span)) {
            if !(s.start <= s.end && s.end <= text.len()) {
                return Err(format!(
                    "{}: span {s:?} outside {} bytes",
                    d.code,
                    text.len()
                ));
            }
            if !(text.is_char_boundary(s.start) && text.is_char_boundary(s.end)) {
                return Err(format!("{}: span {s:?} not on a char boundary", d.code));
            }
        }
    }
    Ok(())
}
