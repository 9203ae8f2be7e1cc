//! Posting notifications to the bot, one queue (and one task) per call.
//!
//! Each body is posted to the call's callback URI with `Authorization:
//! Bearer <JWT>` signed by sim-graph's key, in the order the simulated Graph
//! produced it, except where the faults say otherwise: `duplicate` posts it
//! twice, `reorder` swaps it with the next one (when the next one comes
//! within a short window). Every attempt and its outcome is logged for
//! `GET /sim/calls/{id}/notifications`. A failed post is logged, not
//! retried: Graph does not promise more.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::Shared;

/// A body on its way to the bot.
#[derive(Debug)]
pub struct Outgoing {
    /// Where it goes.
    pub uri: String,
    /// The `commsNotifications` envelope.
    pub body: Value,
    /// Post it twice.
    pub duplicate: bool,
    /// Swap it with the next one.
    pub reorder: bool,
}

/// One post and what came of it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    /// Where it went.
    pub uri: String,
    /// The body.
    pub body: Value,
    /// The bot's status, if it answered.
    pub status: Option<u16>,
    /// Why it did not reach the bot.
    pub error: Option<String>,
}

/// Starts the worker of one call's queue.
pub fn spawn(
    shared: Arc<Shared>,
    log: Arc<Mutex<Vec<Delivered>>>,
) -> mpsc::UnboundedSender<Outgoing> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if first.reorder {
                match tokio::time::timeout(shared.clock.reorder_window(), rx.recv()).await {
                    Ok(Some(second)) => {
                        post(&shared, &log, &second).await;
                        post(&shared, &log, &first).await;
                    }
                    Ok(None) => {
                        post(&shared, &log, &first).await;
                        break;
                    }
                    Err(_) => post(&shared, &log, &first).await,
                }
            } else {
                post(&shared, &log, &first).await;
            }
        }
    });
    tx
}

/// Posts one body (twice when duplicated), then no longer counts it in flight.
async fn post(shared: &Shared, log: &Mutex<Vec<Delivered>>, item: &Outgoing) {
    post_all(shared, log, item).await;
    shared.in_flight.fetch_sub(1, Ordering::AcqRel);
}

async fn post_all(shared: &Shared, log: &Mutex<Vec<Delivered>>, item: &Outgoing) {
    let times = if item.duplicate { 2 } else { 1 };
    for _ in 0..times {
        let outcome = send(shared, item).await;
        let (status, error) = match outcome {
            Ok(status) => (Some(status), None),
            Err(e) => (None, Some(e)),
        };
        if let Some(e) = &error {
            tracing::warn!(uri = %item.uri, error = %e, "sim-graph: notification not delivered");
        }
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Delivered {
                uri: item.uri.clone(),
                body: item.body.clone(),
                status,
                error,
            });
    }
}

async fn send(shared: &Shared, item: &Outgoing) -> Result<u16, String> {
    let token = shared.signer.sign(
        &shared.config.issuer,
        &shared.config.bot_app_id,
        &shared.config.tenant_id,
    )?;
    let response = shared
        .http
        .post(&item.uri)
        .bearer_auth(token)
        .json(&item.body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}
