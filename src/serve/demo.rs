//! `serve --simulate`: the whole product on loopback, sample calls, and a
//! narration of what each call really did.
//!
//! An in-process sim-graph (real HTTP, real time) plays Graph; the real
//! server, runtime and Graph client are wired to it
//! ([`super::wire_to_sim_graph`]); three sample calls are placed through
//! sim-graph's control API ([`SimGraphControl`]) and each one's timeline is
//! printed as it happens. The demo runs on the real clock, so whether the
//! office is open depends on when it runs: the samples say what the caller
//! will do (press 1 *if the menu asks*), and the summary of each call says
//! the path its flow really took (`greet → hours → closed`), whether the
//! keys were pressed, and how it ended. It never claims what did not happen.
//!
//! Output goes to a [`std::io::Write`] the caller gives (stdout for the
//! command line); nothing here reads the terminal.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::engine::{Entry, Party};
use crate::runtime::Runtime;
use crate::sim::http::client::{CallSummary, SimGraphControl};
use crate::sim::http::{SimClock, SimGraphConfig, SimGraphServer};

use super::{ServeError, Settings, SimWiring, spawn_sighup, stop_signal, wire_to_sim_graph};

/// One sample call.
struct Sample {
    /// What the caller does, said before the call.
    label: &'static str,
    to: &'static str,
    digits: Option<&'static str>,
}

const SAMPLES: [Sample; 3] = [
    Sample {
        label: "reception +14255550100; the caller presses 1 (sales) if the menu asks",
        to: "+14255550100",
        digits: Some("1"),
    },
    Sample {
        label: "reception +14255550100; the caller presses 2 (support) if the menu asks",
        to: "+14255550100",
        digits: Some("2"),
    },
    Sample {
        label: "branch office +12065550180 (open or closed by its calendar)",
        to: "+12065550180",
        digits: None,
    },
];

/// Runs the demo: writes to `out`; with `keep_running`, serves on after the
/// samples until Ctrl-C or SIGTERM, reloading edited flows.
///
/// # Errors
///
/// [`ServeError`] when something would not start or the flows do not load.
/// A sample call that does not end in time is reported as `Ok(false)`.
pub async fn run(
    s: &Settings,
    keep_running: bool,
    out: &mut (dyn Write + Send),
) -> Result<bool, ServeError> {
    let (flows, temporary) = if s.flows_given || s.flows.is_dir() {
        (s.flows.clone(), false)
    } else {
        (bundled::write().map_err(ServeError::Failed)?, true)
    };
    let outcome = demo(s, flows.clone(), keep_running, out).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&flows);
    }
    outcome
}

fn io(e: std::io::Error) -> ServeError {
    ServeError::Failed(format!("cannot write the demo's output: {e}"))
}

async fn demo(
    s: &Settings,
    flows: PathBuf,
    keep_running: bool,
    out: &mut (dyn Write + Send),
) -> Result<bool, ServeError> {
    let failed = ServeError::Failed;
    let sim_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| failed(format!("cannot listen on loopback: {e}")))?;
    let sim = SimGraphServer::start(
        SimGraphConfig {
            clock: SimClock::RealTime { speed: 1.0 },
            ..SimGraphConfig::default()
        },
        sim_listener,
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    let base = sim.base_url().to_owned();
    let listen = s.listen.clone().unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| failed(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| failed(e.to_string()))?;
    let admin_token = s
        .admin_token
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let wired = wire_to_sim_graph(
        &SimWiring {
            base: base.clone(),
            flows: flows.clone(),
            callback_path: s.callback_path.clone(),
            max_body: s.max_body,
            admin_token: Some(admin_token.clone()),
            max_sessions: 100_000,
            store: crate::runtime::StoreHandle::memory(),
            evict_after: None,
            recordings: Some(s.recordings.clone()),
            fetch: (!s.fetch.allow.is_empty())
                .then(|| {
                    let config = s.fetch.clone().with_env_secrets(std::env::vars());
                    crate::runtime::Fetcher::new(config).map(Arc::new)
                })
                .transpose()
                .map_err(failed)?,
        },
        addr,
    )
    .await?;
    let (runtime, callback) = (wired.runtime.clone(), wired.callback.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(listener, wired.state, async move {
        let _ = stopped.await;
    }));

    writeln!(out, "callflow serve --simulate").map_err(io)?;
    writeln!(out, "  flows         {}", flows.display()).map_err(io)?;
    writeln!(
        out,
        "  sim-graph     {base} (Graph API, tokens, signed notifications)"
    )
    .map_err(io)?;
    writeln!(
        out,
        "  callback      {callback} (notification tokens verified against sim-graph's keys)"
    )
    .map_err(io)?;
    writeln!(
        out,
        "  admin API     http://{addr}/api/sessions  (Authorization: Bearer {admin_token})"
    )
    .map_err(io)?;
    let recordings = match &s.recordings {
        crate::graph::client::recordings::RecordingDelivery::Folder(dir) => {
            dir.display().to_string()
        }
        crate::graph::client::recordings::RecordingDelivery::Post(url) => {
            format!("POSTed to {url}")
        }
    };
    writeln!(
        out,
        "  recordings    {recordings} (what `record` steps keep)"
    )
    .map_err(io)?;
    let fetching = if s.fetch.allow.is_empty() {
        "no host allowed (--fetch-allow): they take on_failure".to_owned()
    } else {
        s.fetch.allow.join(", ")
    };
    writeln!(out, "  fetch         {fetching}").map_err(io)?;
    writeln!(out).map_err(io)?;

    let control = SimGraphControl::new(&base, reqwest::Client::new());
    let mut calls = Vec::new();
    for (n, sample) in SAMPLES.iter().enumerate() {
        let id = control
            .place_call(
                &Party::phone(format!("+1555010{n}")),
                Some(&Party::phone(sample.to)),
                &callback,
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        writeln!(out, "[call {}] {} placed: {}", n + 1, id, sample.label).map_err(io)?;
        let pressed = Arc::new(AtomicBool::new(false));
        if let Some(digits) = sample.digits {
            tokio::spawn(press_when_ready(
                control.clone(),
                id.clone(),
                digits,
                pressed.clone(),
            ));
        }
        calls.push(Watched::new(n + 1, id, sample.digits, pressed));
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    let finished = loop {
        interval.tick().await;
        let states = control.calls().await.unwrap_or_default();
        for call in &mut calls {
            call.progress(&runtime, &states, out).map_err(io)?;
        }
        if calls.iter().all(Watched::finished) {
            break true;
        }
        if tokio::time::Instant::now() > deadline {
            writeln!(out, "some calls did not end in time").map_err(io)?;
            break false;
        }
    };
    if finished {
        writeln!(out).map_err(io)?;
        writeln!(out, "all {} sample calls ended", calls.len()).map_err(io)?;
    }
    if finished && keep_running {
        writeln!(
            out,
            "still serving (Ctrl-C stops); place more calls: curl -X POST {base}/sim/calls -H \
             'content-type: application/json' -d '{{\"from\":{{\"phone\":\"+15550199\"}},\"to\":\
             {{\"phone\":\"+14255550100\"}},\"callbackUri\":\"{callback}\"}}'"
        )
        .map_err(io)?;
        // Watching before saying so: an edit saved at once is not missed.
        let watcher = runtime.watch();
        writeln!(
            out,
            "edits to {} reload when saved (a broken edit keeps the old flows serving; \
             GET /api/flows shows why)",
            flows.display()
        )
        .map_err(io)?;
        out.flush().map_err(io)?;
        let hangups = spawn_sighup(runtime.clone());
        stop_signal().await;
        watcher.abort();
        if let Some(h) = hangups {
            h.abort();
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    let _ = sim.shutdown().await;
    Ok(finished)
}

/// Presses `digits` once the call listens for tones (sim-graph answers
/// `409` until then); gives up when the call ends first.
async fn press_when_ready(
    control: SimGraphControl,
    call_id: String,
    digits: &'static str,
    pressed: Arc<AtomicBool>,
) {
    for _ in 0..400 {
        match control.press(&call_id, digits).await {
            Ok(()) => {
                pressed.store(true, Ordering::Release);
                return;
            }
            Err(e) if e.status() == Some(409) => {}
            Err(_) => return,
        }
        let ended = control
            .calls()
            .await
            .unwrap_or_default()
            .iter()
            .any(|c| c.id == call_id && c.is_terminated());
        if ended {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A sample call and how much of its timeline was printed.
struct Watched {
    number: usize,
    call_id: String,
    digits: Option<&'static str>,
    pressed: Arc<AtomicBool>,
    printed: usize,
    ended: bool,
    terminated: bool,
    summarised: bool,
}

impl Watched {
    fn new(
        number: usize,
        call_id: String,
        digits: Option<&'static str>,
        pressed: Arc<AtomicBool>,
    ) -> Self {
        Watched {
            number,
            call_id,
            digits,
            pressed,
            printed: 0,
            ended: false,
            terminated: false,
            summarised: false,
        }
    }

    fn finished(&self) -> bool {
        self.ended && self.terminated && self.summarised
    }

    fn progress(
        &mut self,
        runtime: &Runtime,
        sim_calls: &[CallSummary],
        out: &mut (dyn Write + Send),
    ) -> std::io::Result<()> {
        self.terminated = sim_calls
            .iter()
            .any(|c| c.id == self.call_id && c.is_terminated());
        let Some(detail) = session_of(runtime, &self.call_id) else {
            return Ok(());
        };
        let lines = timeline_lines(&detail);
        for line in lines.iter().skip(self.printed) {
            writeln!(out, "[call {}] {line}", self.number)?;
        }
        self.printed = self.printed.max(lines.len());
        self.ended = detail.summary.state == "ended";
        if self.ended && self.terminated && !self.summarised {
            self.summarised = true;
            writeln!(out, "[call {}] {}", self.number, self.narration(&detail))?;
        }
        Ok(())
    }

    /// What the call really did: the steps its flow took, whether the
    /// caller's keys were pressed, how it ended.
    fn narration(&self, detail: &crate::runtime::SessionDetail) -> String {
        let path: Vec<&str> = detail
            .timeline
            .iter()
            .filter_map(|e| match &e.what {
                Entry::Enter { step, .. } => Some(step.as_str()),
                _ => None,
            })
            .collect();
        let mut said = format!(
            "=> {} took {}",
            detail.summary.flow,
            if path.is_empty() {
                "no step".to_owned()
            } else {
                path.join(" → ")
            }
        );
        if let Some(digits) = self.digits {
            if self.pressed.load(Ordering::Acquire) {
                said.push_str(&format!("; the caller pressed {digits}"));
            } else {
                said.push_str(&format!(
                    "; no menu listened for keys, so the caller never pressed {digits}"
                ));
            }
        }
        match (&detail.summary.outcome, &detail.reason) {
            (Some(outcome), Some(reason)) => said.push_str(&format!("; ended {outcome}: {reason}")),
            (Some(outcome), None) => said.push_str(&format!("; ended {outcome}")),
            (None, _) => said.push_str("; still running"),
        }
        said
    }
}

/// The session that owns `call_id`, in full.
fn session_of(runtime: &Runtime, call_id: &str) -> Option<crate::runtime::SessionDetail> {
    let summary = runtime
        .sessions()
        .into_iter()
        .find(|s| s.calls.iter().any(|c| c == call_id))?;
    runtime.session(&summary.id)
}

/// The printable timeline lines of a session: offset, step, kind, what.
pub fn timeline_lines(detail: &crate::runtime::SessionDetail) -> Vec<String> {
    let start = detail.timeline.first().map(|e| e.at);
    detail
        .timeline
        .iter()
        .map(|e| timeline_line(e, start))
        .collect()
}

/// One timeline entry as printed: its offset from `start` (the first
/// entry's time), the step, the kind of entry, what happened.
pub fn timeline_line(
    e: &crate::engine::TimelineEntry,
    start: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    let offset = start.map_or(0, |s| (e.at - s).num_milliseconds());
    format!(
        "{:>7.3}s  {:<12} {:<8} {}",
        offset as f64 / 1000.0,
        e.step.as_deref().unwrap_or("-"),
        e.what.kind(),
        e.what
    )
}

mod bundled {
    //! The bundled flows, for a binary run away from the source tree.

    use std::path::PathBuf;

    const FLOWS: [(&str, &str); 7] = [
        (
            "branch-office.yaml",
            include_str!("../../flows/branch-office.yaml"),
        ),
        (
            "escalation.yaml",
            include_str!("../../flows/escalation.yaml"),
        ),
        (
            "group-handoff.yaml",
            include_str!("../../flows/group-handoff.yaml"),
        ),
        ("helpdesk.yaml", include_str!("../../flows/helpdesk.yaml")),
        (
            "meeting-join.yaml",
            include_str!("../../flows/meeting-join.yaml"),
        ),
        (
            "outbound-reminder.yaml",
            include_str!("../../flows/outbound-reminder.yaml"),
        ),
        ("reception.yaml", include_str!("../../flows/reception.yaml")),
    ];

    /// Writes them to a fresh temporary folder.
    pub(super) fn write() -> Result<PathBuf, String> {
        let dir = std::env::temp_dir().join(format!(
            "callflow-simulate-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (name, text) in FLOWS {
            std::fs::write(dir.join(name), text)
                .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Outcome, TimelineEntry};
    use crate::runtime::{SessionDetail, SessionSummary};

    fn detail(steps: &[&str], outcome: Outcome) -> SessionDetail {
        let at = chrono::Utc::now();
        SessionDetail {
            summary: SessionSummary {
                id: "call-1".into(),
                flow: "reception".into(),
                version: String::new(),
                step: None,
                state: "ended",
                outcome: Some(outcome),
                end: None,
                started_at: Some(at),
                calls: vec!["call-1".into()],
                evicted: false,
            },
            reason: None,
            timezone: chrono_tz::Tz::UTC,
            vars: serde_json::Map::new(),
            params: serde_json::Map::new(),
            timeline: steps
                .iter()
                .map(|s| TimelineEntry {
                    at,
                    step: Some((*s).into()),
                    what: Entry::Enter {
                        step: (*s).into(),
                        via: "next".into(),
                    },
                })
                .collect(),
            timeline_text: String::new(),
        }
    }

    #[test]
    fn the_narration_says_the_path_taken_not_the_plan() {
        let pressed = Arc::new(AtomicBool::new(false));
        let w = Watched::new(1, "call-1".into(), Some("1"), pressed.clone());
        let closed = w.narration(&detail(&["greet", "hours", "closed"], Outcome::Transferred));
        assert_eq!(
            closed,
            "=> reception took greet → hours → closed; no menu listened for keys, so the caller \
             never pressed 1; ended transferred"
        );
        pressed.store(true, Ordering::Release);
        let open = w.narration(&detail(
            &["greet", "hours", "menu", "sales"],
            Outcome::Transferred,
        ));
        assert!(
            open.contains("menu → sales; the caller pressed 1; ended transferred"),
            "{open}"
        );
    }
}
