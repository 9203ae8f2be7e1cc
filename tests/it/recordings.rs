//! Recordings (`record`): the client downloads a recording with its access
//! token and delivers it to a folder or by POST, retrying what may pass on a
//! second try, against a real loopback HTTP server.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use callflow::graph::client::recordings::RecordingDelivery;
use callflow::graph::client::{ClientSecret, Cloud, GraphClient, GraphConfig, RetryPolicy};

const TOKEN: &str = "recording-token-1";

#[derive(Default)]
struct Far {
    gets: AtomicUsize,
    posts: AtomicUsize,
    received: Mutex<Vec<(String, Vec<u8>)>>,
}

async fn recording(State(far): State<Arc<Far>>, headers: HeaderMap) -> Response {
    let n = far.gets.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if n == 0 {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    (StatusCode::OK, b"RIFF....WAVEdata".to_vec()).into_response()
}

async fn inbox(State(far): State<Arc<Far>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = far.posts.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let name = headers
        .get("x-callflow-recording")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    far.received.lock().unwrap().push((name, body.to_vec()));
    StatusCode::NO_CONTENT.into_response()
}

async fn start() -> (Arc<Far>, String) {
    let far = Arc::new(Far::default());
    let app = Router::new()
        .route("/recordings/{id}", get(recording))
        .route("/inbox", post(inbox))
        .with_state(far.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("it serves") });
    (far, base)
}

fn client(base: &str, to: RecordingDelivery) -> GraphClient {
    let mut config = GraphConfig::new(Cloud::Global, "t", "c", ClientSecret::new("s"))
        .with_base_urls(base, base)
        .expect("URLs");
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(10),
    };
    config.recordings = Some(to);
    GraphClient::new(config).expect("a client")
}

#[tokio::test]
async fn a_recording_is_downloaded_with_its_token_and_posted_each_after_one_retry() {
    let (far, base) = start().await;
    let c = client(
        &base,
        RecordingDelivery::Post(format!("{base}/inbox").parse().unwrap()),
    );
    let audio = c
        .download_recording(&format!("{base}/recordings/op-1"), TOKEN)
        .await
        .expect("downloaded on the second try");
    assert_eq!(audio, b"RIFF....WAVEdata");
    assert_eq!(far.gets.load(Ordering::SeqCst), 2, "a 503 is tried again");
    let at = c
        .deliver_recording("call-1-message-5.wav", audio)
        .await
        .expect("delivered on the second try");
    assert_eq!(at, format!("{base}/inbox"));
    assert_eq!(far.posts.load(Ordering::SeqCst), 2, "a 500 is tried again");
    assert_eq!(
        far.received.lock().unwrap().as_slice(),
        [(
            "call-1-message-5.wav".to_owned(),
            b"RIFF....WAVEdata".to_vec()
        )]
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_once_and_not_retried() {
    let (far, base) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&base, RecordingDelivery::Folder(dir.path().to_path_buf()));
    let e = c
        .download_recording(&format!("{base}/recordings/op-1"), "not-the-token")
        .await
        .expect_err("refused");
    assert_eq!(e.status, 401);
    assert!(
        !e.message.contains("not-the-token"),
        "the token is never shown"
    );
    assert_eq!(far.gets.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_recording_delivered_to_a_folder_is_a_file_there() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(
        "http://127.0.0.1:9",
        RecordingDelivery::Folder(dir.path().join("vm")),
    );
    let at = c
        .deliver_recording("../escape.wav", b"RIFFdata".to_vec())
        .await
        .expect("written");
    let path = std::path::PathBuf::from(&at);
    assert_eq!(path.parent(), Some(dir.path().join("vm").as_path()), "{at}");
    assert_eq!(std::fs::read(&path).unwrap(), b"RIFFdata");
    let none = GraphClient::new(GraphConfig::new(
        Cloud::Global,
        "t",
        "c",
        ClientSecret::new("s"),
    ))
    .expect("a client");
    let e = none
        .deliver_recording("x.wav", Vec::new())
        .await
        .expect_err("nowhere");
    assert_eq!(e.code, "NoRecordingsDestination");
}
