//! The load generator: signed notifications POSTed over keep-alive
//! connections, as fast as they are answered or at a constant offered
//! rate, and a prober that places a new call every 10 ms.
//!
//! Generates load and counts answers; never judges them (that is
//! [`super::Report`]'s).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::header;

use crate::engine::Party;
use crate::sim::http::client::{ControlError, SimGraphControl};

/// The number the load calls dial.
pub const DIALLED: &str = "+14255550100";

/// Places incoming call number `n` (caller `+3316nnnnnnn`) through sim-graph; its id.
///
/// # Errors
///
/// [`ControlError`] when sim-graph does not place it.
pub async fn place(
    control: &SimGraphControl,
    callback: &str,
    n: usize,
) -> Result<String, ControlError> {
    place_to(control, callback, n, DIALLED).await
}

/// [`place`], dialling `dialled`.
///
/// # Errors
///
/// [`ControlError`] when sim-graph does not place it.
pub async fn place_to(
    control: &SimGraphControl,
    callback: &str,
    n: usize,
    dialled: &str,
) -> Result<String, ControlError> {
    control
        .place_call(
            &Party::phone(format!("+3316{n:07}")),
            Some(&Party::phone(dialled)),
            callback,
        )
        .await
}

/// Places `count` calls (numbered from `first`), `parallel` at a time; their ids.
///
/// # Errors
///
/// The first [`ControlError`].
pub async fn place_many(
    control: &SimGraphControl,
    callback: &str,
    first: usize,
    count: usize,
    parallel: usize,
) -> Result<Vec<String>, String> {
    place_many_to(control, callback, first, count, parallel, DIALLED).await
}

/// [`place_many`], dialling `dialled`.
///
/// # Errors
///
/// The first [`ControlError`].
pub async fn place_many_to(
    control: &SimGraphControl,
    callback: &str,
    first: usize,
    count: usize,
    parallel: usize,
    dialled: &str,
) -> Result<Vec<String>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel.clamp(1, count) {
        let (control, callback, next) = (control.clone(), callback.to_owned(), next.clone());
        let dialled = dialled.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= count {
                    return Ok::<_, String>(ids);
                }
                ids.push(
                    place_to(&control, &callback, first + n, &dialled)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
        }));
    }
    let mut ids = Vec::with_capacity(count);
    for task in tasks {
        ids.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(ids)
}

/// What one run of the generator saw.
#[derive(Debug, Default)]
pub struct Blast {
    /// Requests sent.
    pub sent: u64,
    /// Answers by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that got no answer.
    pub transport_errors: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// Round trips, in microseconds, sorted.
    pub round_trips: Vec<u32>,
}

impl Blast {
    /// `202` answers.
    pub fn accepted(&self) -> u64 {
        self.by_status.get(&202).copied().unwrap_or(0)
    }

    /// `202` answers per second.
    pub fn per_second(&self) -> f64 {
        self.accepted() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Quantile `q` of the round trips.
    pub fn round_trip(&self, q: f64) -> Duration {
        if self.round_trips.is_empty() {
            return Duration::ZERO;
        }
        let i = ((q * self.round_trips.len() as f64).ceil() as usize)
            .clamp(1, self.round_trips.len())
            - 1;
        Duration::from_micros(u64::from(self.round_trips[i]))
    }

    /// The answers other than `202`, by status, and transport errors.
    pub fn errors(&self) -> String {
        let mut parts: Vec<String> = self
            .by_status
            .iter()
            .filter(|(s, _)| **s != 202)
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        if self.transport_errors > 0 {
            parts.push(format!("transport: {}", self.transport_errors));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// `5xx` answers.
    pub fn server_errors(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// POSTs `bodies` (cycled) to `url` over `concurrency` keep-alive
/// connections until `limit` requests or `duration` have passed: as fast as
/// they are answered, or, with `rate`, request `i` no earlier than `i / rate`
/// seconds after the start (a constant offered load, not slowed down by slow
/// answers).
#[allow(clippy::too_many_arguments)]
pub async fn blast(
    http: &reqwest::Client,
    url: &str,
    authorization: &str,
    bodies: &Arc<Vec<axum::body::Bytes>>,
    limit: u64,
    duration: Duration,
    concurrency: usize,
    rate: Option<u64>,
) -> Blast {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (http, url, authorization) = (http.clone(), url.to_owned(), authorization.to_owned());
        let (bodies, next) = (bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Blast::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit || Instant::now() >= deadline {
                    break;
                }
                if let Some(rate) = rate.filter(|r| *r > 0) {
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = bodies[(i % bodies.len() as u64) as usize].clone();
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .header(header::AUTHORIZATION, &authorization)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                mine.sent += 1;
                match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        // Read the (empty or short) body so the connection is reused.
                        let _ = r.bytes().await;
                        *mine.by_status.entry(status).or_default() += 1;
                        let micros = sent.elapsed().as_micros();
                        mine.round_trips
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                    Err(_) => mine.transport_errors += 1,
                }
            }
            mine
        }));
    }
    let mut all = Blast::default();
    for task in tasks {
        if let Ok(mine) = task.await {
            all.sent += mine.sent;
            all.transport_errors += mine.transport_errors;
            for (s, n) in mine.by_status {
                *all.by_status.entry(s).or_default() += n;
            }
            all.round_trips.extend(mine.round_trips);
        }
    }
    all.elapsed = started.elapsed();
    all.round_trips.sort_unstable();
    all
}

/// A new call every 10 ms through sim-graph, while a phase runs: its
/// `incoming` (answered at once) is what the dispatch latency measures.
pub struct Prober {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<usize>,
}

impl Prober {
    /// Starts placing calls (numbered from `first`) to `callback`.
    pub fn start(control: &SimGraphControl, callback: &str, first: usize) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (control, callback) = (control.clone(), callback.to_owned());
        let task = tokio::spawn(async move {
            let mut placed = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = &mut stopped => return placed,
                    _ = tick.tick() => {
                        if place(&control, &callback, first + placed).await.is_ok() {
                            placed += 1;
                        }
                    }
                }
            }
        });
        Prober { stop, task }
    }

    /// Stops it; how many calls it placed.
    pub async fn stop(self) -> usize {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}
