//! Sending one request to Graph: the URL, the headers, the token, the
//! retries, the reading of the answer, and the log line of its outcome.
//!
//! The policy is the one [`super`] documents: `429`/`503` are retried within
//! the [`RetryPolicy`](super::RetryPolicy), a request that got no answer is
//! repeated only when it is a `GET` or `DELETE`, a `POST` that may have
//! reached Graph becomes [`ClientError::MaybeSent`]. This module must never
//! log a token or a body (bodies may carry phone numbers).

use std::time::Instant;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::graph::wire::{GraphError, RequestError};

use super::error::{ClientError, RequestName};
use super::{CLIENT_REQUEST_ID, GraphClient, retry};

/// The most characters of an unreadable error body kept in an error.
const BODY_EXCERPT_CHARS: usize = 300;

/// What an exchange that ended in a success status gave.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

/// One logical request: what it is and what it is about.
pub(super) struct Request<'a> {
    pub(super) method: Method,
    pub(super) call_id: Option<&'a str>,
    pub(super) url: Url,
    pub(super) name: RequestName,
    pub(super) body: Option<Vec<u8>>,
}

/// A readable account of a transport error, with its causes.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A readable account of a JSON error, saying when the text ends early.
pub(crate) fn describe_json(error: &serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Eof => format!("the JSON ends early (truncated): {error}"),
        serde_json::error::Category::Syntax => format!("the body is not valid JSON: {error}"),
        _ => format!("the JSON is not the expected shape: {error}"),
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
    if text.chars().count() > BODY_EXCERPT_CHARS {
        excerpt.push('…');
    }
    excerpt
}

impl GraphClient {
    /// The URL of `…/calls[/{id}][/path…]`, each segment percent-encoded.
    pub(super) fn url(&self, call_id: Option<&str>, path: &[&str]) -> Url {
        let mut url = self.inner.calls_url.clone();
        {
            let mut segments = url.path_segments_mut().expect("checked at construction");
            segments.extend(call_id);
            segments.extend(path);
        }
        url
    }

    pub(super) fn name(&self, method: &Method, call_id: &str, path: &[&str]) -> RequestName {
        RequestName {
            method: method_name(method),
            path: self.url(Some(call_id), path).path().to_owned(),
        }
    }

    pub(super) fn check(
        &self,
        method: Method,
        call_id: &str,
        path: &[&str],
        verdict: Result<(), RequestError>,
    ) -> Result<(), ClientError> {
        verdict.map_err(|source| ClientError::InvalidRequest {
            request: self.name(&method, call_id, path),
            call_id: Some(call_id.to_owned()),
            source,
        })
    }

    pub(super) fn request<'a, B: Serialize>(
        &self,
        method: Method,
        call_id: Option<&'a str>,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<Request<'a>, ClientError> {
        let url = self.url(call_id, path);
        let name = RequestName {
            method: method_name(&method),
            path: url.path().to_owned(),
        };
        let unsendable = |detail: String| ClientError::Unsendable {
            request: name.clone(),
            call_id: call_id.map(str::to_owned),
            detail,
        };
        if call_id.is_some_and(|id| id.trim().is_empty()) {
            return Err(unsendable("the call id is empty".into()));
        }
        let body = match body {
            Some(body) => Some(
                serde_json::to_vec(body)
                    .map_err(|e| unsendable(format!("the body does not serialise: {e}")))?,
            ),
            None => None,
        };
        Ok(Request {
            method,
            call_id,
            url,
            name,
            body,
        })
    }

    pub(super) async fn send_for_json<T: DeserializeOwned>(
        &self,
        request: Request<'_>,
    ) -> Result<T, ClientError> {
        let name = request.name.clone();
        let call_id = request.call_id.map(str::to_owned);
        let answer = self.send(request).await?;
        let malformed = |detail: String| ClientError::MalformedResponse {
            request: name.clone(),
            call_id: call_id.clone(),
            status: answer.status,
            detail,
        };
        if answer.body.is_empty() {
            return Err(malformed("the body is empty".into()));
        }
        serde_json::from_slice(&answer.body).map_err(|e| malformed(describe_json(&e)))
    }

    /// Sends `request` with a token and retries as the module documentation
    /// says; returns a success answer or the error.
    pub(super) async fn send(&self, request: Request<'_>) -> Result<Answer, ClientError> {
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let policy = self.inner.config.retry;
        let started = Instant::now();
        let idempotent = matches!(request.method, Method::GET | Method::DELETE);
        let call_id = || request.call_id.map(str::to_owned);
        let mut attempts = 0u32;
        let mut refused_token = false;
        let outcome = loop {
            attempts += 1;
            let token = match self.inner.tokens.get().await {
                Ok(token) => token,
                Err(source) => {
                    break Err(ClientError::Token {
                        request: request.name.clone(),
                        call_id: call_id(),
                        source,
                    });
                }
            };
            let mut auth = HeaderValue::try_from(format!("Bearer {}", token.value))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
            auth.set_sensitive(true);
            let mut builder = self
                .inner
                .http
                .request(request.method.clone(), request.url.clone())
                .header(AUTHORIZATION, auth)
                .header(CLIENT_REQUEST_ID, client_request_id.as_str())
                .header(ACCEPT, "application/json");
            if let Some(body) = &request.body {
                builder = builder
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            } else if request.method == Method::POST {
                builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            let sent = Instant::now();
            let exchange = async {
                let response = builder.send().await.map_err(Failure::Send)?;
                let status = response.status();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => Ok((status, headers, body.to_vec())),
                    Err(e) => Err(Failure::Body(status, headers, e)),
                }
            }
            .await;
            let latency_us = sent.elapsed().as_micros() as u64;
            let (status, headers, body) = match exchange {
                Ok(parts) => parts,
                Err(Failure::Body(status, headers, error)) => {
                    let status = status.as_u16();
                    let graph_request_id = header_text(&headers, "request-id");
                    tracing::warn!(target: "callflow::graph", request = %request.name, call_id = request.call_id, client_request_id, attempt = attempts, status, graph_request_id, latency_us, error = %describe(&error), "graph answer unreadable");
                    if retry::is_retryable(status) && attempts < policy.max_attempts {
                        let wait = retry::backoff(&policy, attempts);
                        if started.elapsed() + wait <= policy.max_total {
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                    }
                    break Err(if (200..300).contains(&status) {
                        ClientError::MalformedResponse {
                            request: request.name.clone(),
                            call_id: call_id(),
                            status,
                            detail: format!(
                                "the body ended early or could not be read: {}",
                                describe(&error)
                            ),
                        }
                    } else {
                        ClientError::Status {
                            request: request.name.clone(),
                            call_id: call_id(),
                            status,
                            body: format!("(unreadable body: {})", describe(&error)),
                        }
                    });
                }
                Err(Failure::Send(error)) => {
                    let nothing_sent = error.is_connect();
                    tracing::warn!(target: "callflow::graph", request = %request.name, call_id = request.call_id, client_request_id, attempt = attempts, latency_us, timed_out = error.is_timeout(), nothing_sent, error = %describe(&error), "graph request failed");
                    if !nothing_sent && !idempotent {
                        break Err(ClientError::MaybeSent {
                            request: request.name.clone(),
                            call_id: call_id(),
                            client_request_id: client_request_id.clone(),
                            cause: if error.is_timeout() {
                                format!("timed out after {:?}", self.inner.config.request_timeout)
                            } else {
                                describe(&error)
                            },
                            timed_out: error.is_timeout(),
                        });
                    }
                    let wait = retry::backoff(&policy, attempts);
                    if attempts < policy.max_attempts
                        && started.elapsed() + wait <= policy.max_total
                    {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    break Err(if error.is_timeout() && !nothing_sent {
                        ClientError::Timeout {
                            request: request.name.clone(),
                            call_id: call_id(),
                            timeout: self.inner.config.request_timeout,
                            attempts,
                        }
                    } else {
                        ClientError::Unreachable {
                            request: request.name.clone(),
                            call_id: call_id(),
                            detail: describe(&error),
                        }
                    });
                }
            };
            let code = status.as_u16();
            let graph_request_id = header_text(&headers, "request-id");
            tracing::debug!(target: "callflow::graph", request = %request.name, call_id = request.call_id, client_request_id, attempt = attempts, status = code, graph_request_id, latency_us, "graph answer");
            if status.is_success() {
                break Ok(Answer {
                    status: code,
                    headers,
                    body,
                });
            }
            if status == StatusCode::UNAUTHORIZED && !refused_token {
                // The token may have been revoked or rotated: fetch a new
                // one once. Nothing was done by Graph.
                refused_token = true;
                self.inner.tokens.invalidate(&token.value);
                continue;
            }
            if retry::is_retryable(code) {
                let retry_after = retry::retry_after(&headers);
                let wait = retry_after.unwrap_or_else(|| retry::backoff(&policy, attempts));
                let over_budget = started.elapsed() + wait > policy.max_total;
                if attempts < policy.max_attempts && !over_budget {
                    tracing::warn!(target: "callflow::graph", request = %request.name, call_id = request.call_id, client_request_id, attempt = attempts, status = code, wait_ms = wait.as_millis() as u64, "graph throttled; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                break Err(ClientError::RetriesExhausted {
                    request: request.name.clone(),
                    call_id: call_id(),
                    attempts,
                    status: code,
                    retry_after: retry_after.filter(|_| over_budget),
                });
            }
            break Err(match serde_json::from_slice::<GraphError>(&body) {
                Ok(error) if !error.error.code.is_empty() || !error.error.message.is_empty() => {
                    ClientError::Graph {
                        request: request.name.clone(),
                        call_id: call_id(),
                        status: code,
                        request_id: error.request_id().map(str::to_owned).or(graph_request_id),
                        error: Box::new(error),
                    }
                }
                _ => ClientError::Status {
                    request: request.name.clone(),
                    call_id: call_id(),
                    status: code,
                    body: excerpt(&body),
                },
            });
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Ok(answer) => {
                tracing::debug!(target: "callflow::graph", request = %request.name, call_id = request.call_id, client_request_id, attempts, status = answer.status, latency_ms, "graph request done")
            }
            Err(error) => {
                tracing::warn!(target: "callflow::graph", request = %request.name, call_id = request.call_id, client_request_id, attempts, code = error.code(), status = error.status(), latency_ms, %error, "graph request failed")
            }
        }
        outcome
    }
}

/// How one exchange failed.
enum Failure {
    /// No response came (connect failure, timeout, reset).
    Send(reqwest::Error),
    /// A status came, the body did not.
    Body(StatusCode, HeaderMap, reqwest::Error),
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "POST",
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
