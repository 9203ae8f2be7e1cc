//! What `graph::client` adds per request on top of a raw HTTP round trip.
//!
//! A small axum server on loopback answers like Graph (`202` for a
//! transfer, `200` + a `commsOperation` for playPrompt, a token endpoint).
//! Each pair of benchmarks sends the same request twice over: once with a
//! bare `reqwest::Client` (same body, same headers, a fixed token) and once
//! through `GraphClient` (token cache, client-request-id, URL building,
//! serialisation, status handling, parsing, tracing). The difference is the
//! client's overhead; the issue asks for under 50 µs. Both keep their
//! connections alive.
//!
//! Run: `cargo bench --bench client`.

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use callflow::graph::client::{ClientSecret, Cloud, GraphClient, GraphConfig};
use callflow::graph::wire::{
    CommsOperation, InvitationParticipantInfo, MediaInfo, MediaPrompt, PlayPromptRequest,
    TransferRequest,
};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const OPERATION: &str = r##"{"@odata.type":"#microsoft.graph.playPromptOperation","id":"op-1","status":"running","clientContext":"ctx"}"##;

async fn start() -> String {
    let app = Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(|| async {
                axum::Json(json!({"token_type": "Bearer", "expires_in": 3599,
                    "access_token": "bench-token"}))
            }),
        )
        .route(
            "/v1.0/communications/calls/{id}/transfer",
            post(|| async { StatusCode::ACCEPTED }),
        )
        .route(
            "/v1.0/communications/calls/{id}/playPrompt",
            post(|| async { ([("content-type", "application/json")], OPERATION).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
    base
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let base = rt.block_on(start());
    let config = GraphConfig::new(Cloud::Global, "t", "c", ClientSecret::new("s"))
        .with_base_urls(&base, &base)
        .expect("loopback URLs");
    let client = GraphClient::new(config).expect("a client");
    // Built after GraphClient::new, which installs the TLS provider.
    let raw = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a raw client");

    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+12345678901"))
        .with_client_context("ctx");
    let prompt = PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new(
        "https://cdn.contoso.com/hello.wav",
    ))])
    .with_client_context("ctx");
    let transfer_url = format!("{base}/v1.0/communications/calls/c1/transfer");
    let prompt_url = format!("{base}/v1.0/communications/calls/c1/playPrompt");
    let transfer_body = serde_json::to_vec(&transfer).expect("serialises");
    let prompt_body = serde_json::to_vec(&prompt).expect("serialises");
    // Warm the token cache and both connection pools.
    rt.block_on(async {
        client.transfer("c1", &transfer).await.expect("warm");
        raw.post(&transfer_url).send().await.expect("warm");
    });

    let mut group = c.benchmark_group("transfer_202");
    group.bench_function("raw_reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = raw
                    .post(&transfer_url)
                    .header("authorization", "Bearer bench-token")
                    .header("client-request-id", "00000000-0000-4000-8000-000000000000")
                    .header("content-type", "application/json")
                    .body(transfer_body.clone())
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(response.status(), 202);
                black_box(response.bytes().await.expect("read"));
            })
        })
    });
    group.bench_function("graph_client", |b| {
        b.iter(|| {
            rt.block_on(async { client.transfer("c1", black_box(&transfer)).await })
                .expect("transferred")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("play_prompt_200");
    group.bench_function("raw_reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = raw
                    .post(&prompt_url)
                    .header("authorization", "Bearer bench-token")
                    .header("client-request-id", "00000000-0000-4000-8000-000000000000")
                    .header("content-type", "application/json")
                    .body(prompt_body.clone())
                    .send()
                    .await
                    .expect("sent");
                let body = response.bytes().await.expect("read");
                black_box(serde_json::from_slice::<CommsOperation>(&body).expect("parsed"))
            })
        })
    });
    group.bench_function("graph_client", |b| {
        b.iter(|| {
            rt.block_on(async { client.play_prompt("c1", black_box(&prompt)).await })
                .expect("playing")
        })
    });
    group.finish();
    assert_eq!(client.token_requests(), 1, "one token for the whole run");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = overhead
}
criterion_main!(benches);
