//! A small HTTP load balancer on loopback, for the cluster tests and
//! `callflow load --store postgres://…`: each request goes to the next
//! backend in turn (round-robin, no affinity), so consecutive notifications
//! of one call land on different instances. A backend that refuses the
//! connection is skipped for the next one, as nginx's
//! `proxy_next_upstream error http_503` does (a `503` is passed back when
//! every backend answers it); its other answers are passed back as they
//! are.
//!
//! Forwards and counts; never reads a body but to pass it on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

struct Backends {
    urls: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
    /// Requests each backend answered.
    answered: Vec<AtomicUsize>,
    /// Every request to every backend at once (answered with the first
    /// `2xx`): the same notification racing on all instances.
    mirror: bool,
}

/// The balancer: its address, and how many requests each backend answered.
/// Stops when dropped.
pub struct Balancer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    backends: Arc<Backends>,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Listens on a free loopback port in front of `backends` (base URLs);
    /// with `mirror`, each request goes to every backend at the same moment.
    /// Runs on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When no loopback port can be had (the tests' use).
    pub async fn start(backends: Vec<String>, mirror: bool) -> Balancer {
        Balancer::listen(backends, mirror, 8)
            .await
            .expect("a loopback port for the balancer")
    }

    /// [`Balancer::start`], keeping up to `idle` connections to each
    /// backend (the load command keeps one per generator connection).
    ///
    /// # Errors
    ///
    /// A message when it cannot listen on loopback.
    pub async fn listen(
        backends: Vec<String>,
        mirror: bool,
        idle: usize,
    ) -> Result<Balancer, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the balancer cannot listen on loopback: {e}"))?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let backends = Arc::new(Backends {
            answered: backends.iter().map(|_| AtomicUsize::new(0)).collect(),
            urls: backends,
            next: AtomicUsize::new(0),
            mirror,
            http: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(idle.max(1))
                .build()
                .map_err(|e| format!("the balancer's HTTP client would not build: {e}"))?,
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(backends.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Balancer {
            url,
            backends,
            task,
        })
    }

    /// Sends the next request to backend `n` first (and the following in
    /// turn from there): a test that knows which instance the next
    /// notification must reach.
    pub fn next_to(&self, n: usize) {
        self.backends.next.store(n, Ordering::Relaxed);
    }

    /// How many requests each backend answered.
    pub fn answered(&self) -> Vec<usize> {
        self.backends
            .answered
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(b): State<Arc<Backends>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let send = |n: usize| {
        let mut r = b
            .http
            .request(parts.method.clone(), format!("{}{path}", b.urls[n]))
            .body(body.clone());
        for (name, value) in &parts.headers {
            if name != "host" && name != "content-length" {
                r = r.header(name, value);
            }
        }
        let b = b.clone();
        async move {
            let answer = r.send().await?;
            b.answered[n].fetch_add(1, Ordering::Relaxed);
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            Ok::<_, reqwest::Error>(response)
        }
    };
    if b.mirror {
        let answers = futures_util::future::join_all((0..b.urls.len()).map(send)).await;
        let mut last = StatusCode::BAD_GATEWAY.into_response();
        for answer in answers.into_iter().flatten() {
            if answer.status().is_success() {
                return answer;
            }
            last = answer;
        }
        return last;
    }
    let first = b.next.fetch_add(1, Ordering::Relaxed);
    let mut last = StatusCode::BAD_GATEWAY.into_response();
    for i in 0..b.urls.len() {
        let n = (first + i) % b.urls.len();
        match send(n).await {
            // An instance that cannot store what it would acknowledge says
            // 503: the next one is asked (`proxy_next_upstream http_503`).
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                last = response;
            }
            Ok(response) => return response,
            Err(e) if e.is_connect() => continue,
            Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    last
}
