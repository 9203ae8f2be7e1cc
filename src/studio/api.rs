//! The studio's HTTP routes: the page, and its JSON API.
//!
//! Every answer is JSON (`{"error": {"code", "message"}}` on a refusal,
//! as the rest of callflow's HTTP); every route is relative, so that the
//! same router serves at `/` (`callflow studio`) and nested under `/ui`
//! (`callflow serve`). The routes are documented in `docs/studio-api.md`.
//! Handlers read the [`Workspace`](super::Workspace), drive the simulator
//! and write nothing but the scenario files the user saves.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::engine::Party;
use crate::flow::Flow;
use crate::flow::diagram::graph;
use crate::server::ApiError;
use crate::sim::scenario::{ScenarioReport, default_clock};
use crate::sim::{GraphBehaviour, Interactive, SimulateOptions};

use super::view::{self, sim_view};
use super::workspace::{FileEntry, RENDER_WIDTH};
use super::{MAX_SIMS, SimEntry, Studio, assets, lock};

/// The routes, over `studio`, under `prefix` (`""`, or `/ui`): the page at
/// `{prefix}/`, the API under `{prefix}/api/`.
pub fn router(studio: Studio, prefix: &str) -> Router {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/"), get(assets::index))
        .route(&at("/studio.css"), get(assets::css))
        .route(&at("/studio.js"), get(assets::js))
        .route(&at("/api/info"), get(info))
        .route(&at("/api/flows"), get(flows))
        .route(&at("/api/flow"), get(flow))
        .route(&at("/api/hours"), get(hours))
        .route(&at("/api/calendars"), get(calendars))
        .route(&at("/api/scenarios"), get(scenarios))
        .route(&at("/api/sims"), post(start_sim))
        .route(&at("/api/sims/{id}"), get(get_sim))
        .route(&at("/api/sims/{id}/press"), post(press))
        .route(&at("/api/sims/{id}/advance"), post(advance))
        .route(&at("/api/sims/{id}/hangup"), post(hang_up))
        .route(&at("/api/sims/{id}/scenario"), post(save_scenario))
        .route(&at("/api/events"), get(events))
        .route(&at("/api/live"), get(live))
        .route(&at("/api/live/{id}"), get(live_session))
        .with_state(studio)
}

type Answer = Result<Response, ApiError>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "badRequest", message)
}

fn missing(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

fn read_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not what this route takes: {e}")))
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> Response {
    missing("notFound", format!("no route {}", uri.path())).into_response()
}

/// `GET api/info`.
async fn info(State(s): State<Studio>) -> Response {
    let w = lock(&s.inner.workspace);
    Json(json!({
        "dir": w.dir.display().to_string(),
        "version": w.version,
        "read_only": s.inner.config.read_only,
        "live": s.inner.config.live.is_some(),
        "callflow": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// `GET api/flows`.
async fn flows(State(s): State<Studio>) -> Response {
    let w = lock(&s.inner.workspace);
    let other: Vec<Value> = w
        .other
        .iter()
        .map(|d| json!({ "diagnostic": d.to_json(), "rendered": d.render(RENDER_WIDTH) }))
        .collect();
    Json(json!({
        "version": w.version,
        "dir": w.dir.display().to_string(),
        "summary": w.summary,
        "files": w.summaries(),
        "other": other,
    }))
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct FileQuery {
    file: Option<String>,
    week: Option<String>,
    at: Option<String>,
}

fn entry(s: &Studio, file: Option<&str>) -> Result<FileEntry, ApiError> {
    let file = file.ok_or_else(|| bad("say which flow file: ?file=NAME.yaml"))?;
    lock(&s.inner.workspace).file(file).cloned().ok_or_else(|| {
        missing(
            "unknownFile",
            format!("no flow file {file:?} in the folder"),
        )
    })
}

fn shown(e: &FileEntry) -> Result<Arc<Flow>, ApiError> {
    e.shown().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "flowHasErrors",
            format!("{} has errors and never loaded: fix them first", e.id),
        )
    })
}

/// `GET api/flow?file=F`: the source, diagnostics, diagram.
async fn flow(State(s): State<Studio>, Query(q): Query<FileQuery>) -> Answer {
    let e = entry(&s, q.file.as_deref())?;
    let (errors, warnings) = e.counts();
    let diagnostics: Vec<Value> = e
        .diagnostics
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d.to_json()).unwrap_or_default();
            v["rendered"] = Value::String(d.render(RENDER_WIDTH).trim_end().to_owned());
            v
        })
        .collect();
    let shown = e.shown();
    let scenarios: Vec<Value> = shown
        .map(|f| lock(&s.inner.workspace).scenarios(&f.name))
        .unwrap_or_default()
        .iter()
        .map(|sc| json!({ "name": sc.name, "file": rel(&s, &sc.path) }))
        .collect();
    let params: Vec<Value> = match shown.map(|f| &f.trigger) {
        Some(crate::flow::Trigger::Api { params }) => params
            .iter()
            .map(|(name, p)| {
                json!({ "name": name, "type": format!("{:?}", p.kind).to_lowercase(),
                        "required": p.required, "default": p.default })
            })
            .collect(),
        _ => Vec::new(),
    };
    let defaults = shown.map(|f| {
        let o = SimulateOptions::for_flow(f, default_clock(f));
        json!({
            "at": o.clock.with_timezone(&f.timezone).format("%Y-%m-%dT%H:%M").to_string(),
            "from": party_text(&o.from),
            "to": party_text(&o.to),
        })
    });
    Ok(Json(json!({
        "file": e.id,
        "flow": e.name(),
        "status": e.status(),
        "errors": errors,
        "warnings": warnings,
        "source": e.text,
        "diagnostics": diagnostics,
        "stale": e.flow.is_none() && e.last_good.is_some(),
        "graph": e.graph(),
        "trigger": shown.map(|f| super::workspace::trigger_kind(f)),
        "timezone": shown.map(|f| f.timezone.name()),
        "calendars": shown.map(|f| f.calendars.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
        "params": params,
        "defaults": defaults,
        "scenarios": scenarios,
        "read_only": s.inner.config.read_only,
    }))
    .into_response())
}

fn rel(s: &Studio, path: &Path) -> String {
    path.strip_prefix(&s.inner.config.flows_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn party_text(p: &Party) -> String {
    p.phone
        .clone()
        .or_else(|| p.user.clone())
        .or_else(|| p.application.clone())
        .unwrap_or_default()
}

/// A party from what the page's field says: `+E164`, a user id, or nothing.
fn party(text: &str, application: bool) -> Party {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("anonymous") {
        Party::default()
    } else if t.starts_with('+') || t.starts_with(|c: char| c.is_ascii_digit()) && t.len() < 20 {
        Party::phone(t)
    } else if application {
        Party {
            application: Some(t.to_owned()),
            ..Party::default()
        }
    } else {
        Party::user(t)
    }
}

/// A moment the page gives: RFC 3339, or a local `YYYY-MM-DDTHH:MM[:SS]` in the flow's zone.
fn moment(flow: &Flow, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            bad(format!(
                "`{t}` is not a time; write 2026-11-20T10:00 (the flow's zone) or RFC 3339"
            ))
        })?;
    flow.timezone
        .from_local_datetime(&naive)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| {
            bad(format!(
                "{t} does not exist in {} (the clock changes)",
                flow.timezone.name()
            ))
        })
}

/// `GET api/hours?file=F&week=DATE`.
async fn hours(State(s): State<Studio>, Query(q): Query<FileQuery>) -> Answer {
    let e = entry(&s, q.file.as_deref())?;
    let flow = shown(&e)?;
    let date = match q.week.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => NaiveDate::parse_from_str(w, "%Y-%m-%d")
            .map_err(|_| bad(format!("`{w}` is not a date; write 2026-12-21")))?,
        None => Utc::now().with_timezone(&flow.timezone).date_naive(),
    };
    let week = tokio::task::spawn_blocking(move || crate::sim::hours::week(&flow, date))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(week).into_response())
}

/// `GET api/calendars?file=F&at=TIME`.
async fn calendars(State(s): State<Studio>, Query(q): Query<FileQuery>) -> Answer {
    let e = entry(&s, q.file.as_deref())?;
    let flow = shown(&e)?;
    let at = match q.at.as_deref() {
        Some(t) => moment(&flow, t)?,
        None => default_clock(&flow),
    };
    Ok(Json(json!({ "calendars": view::calendars(&flow, at) })).into_response())
}

/// `GET api/scenarios?file=F`: runs every scenario of the flow.
async fn scenarios(State(s): State<Studio>, Query(q): Query<FileQuery>) -> Answer {
    let e = entry(&s, q.file.as_deref())?;
    let flow = shown(&e)?;
    let list = lock(&s.inner.workspace).scenarios(&flow.name);
    let studio = s.clone();
    let out = tokio::task::spawn_blocking(move || {
        let reports: Vec<ScenarioReport> = list
            .iter()
            .map(|sc| crate::sim::scenario::run(sc, &flow))
            .collect();
        let g = graph(&flow);
        let mut nodes = std::collections::BTreeSet::new();
        let mut edges = std::collections::BTreeSet::new();
        let runs: Vec<Value> = reports
            .iter()
            .map(|r| {
                let w = view::walk(&flow, &r.timeline.entries);
                nodes.extend(w.nodes.iter().cloned());
                edges.extend(w.edges.iter().copied());
                json!({
                    "name": r.name,
                    "file": rel(&studio, &r.path),
                    "passed": r.passed,
                    "failures": r.failures,
                    "expected": r.expected,
                    "actual": r.actual,
                    "matched": r.matched,
                    "outcome": r.outcome.map(|o| o.as_str()),
                    "walk": w,
                })
            })
            .collect();
        let cov = crate::sim::scenario::coverage(&flow, &reports);
        let uncovered_nodes: Vec<&str> = g
            .nodes
            .iter()
            .filter(|n| n.step.is_some() && !nodes.contains(&n.id))
            .map(|n| n.id.as_str())
            .collect();
        let uncovered_edges: Vec<usize> = (0..g.edges.len())
            .filter(|i| !edges.contains(i) && g.edges[*i].from != "start")
            .collect();
        json!({
            "flow": flow.name,
            "passed": reports.iter().filter(|r| r.passed).count(),
            "failed": reports.iter().filter(|r| !r.passed).count(),
            "runs": runs,
            "coverage": {
                "missing_steps": cov.missing_steps,
                "missing_links": cov.missing_links,
                "uncovered_nodes": uncovered_nodes,
                "uncovered_edges": uncovered_edges,
            },
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(out).into_response())
}

/// `POST api/sims`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    file: Option<String>,
    at: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    graph: Option<GraphBehaviour>,
}

/// `POST api/sims`: places a call.
async fn start_sim(State(s): State<Studio>, body: Bytes) -> Answer {
    let b: StartBody = read_body(&body)?;
    let e = entry(&s, b.file.as_deref())?;
    let flow = shown(&e)?;
    let clock = match b.at.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => moment(&flow, t)?,
        None => default_clock(&flow),
    };
    let mut o = SimulateOptions::for_flow(&flow, clock);
    if let Some(from) = &b.from {
        o.from = party(from, false);
    }
    if let Some(to) = b.to.as_deref().filter(|t| !t.trim().is_empty()) {
        o.to = party(to, true);
    }
    o.params = b.params;
    crate::sim::check_start_params(&flow, &mut o).map_err(|e| bad(format!("params: {e}")))?;
    if let Some(g) = b.graph {
        g.validate().map_err(|m| bad(format!("graph: {m}")))?;
        o.graph = g;
    }
    let sim = Interactive::start(flow, o);
    let id = {
        let mut n = lock(&s.inner.next_sim);
        let id = format!("sim-{n}");
        *n += 1;
        id
    };
    let view = sim_view(&id, &e.id, &sim);
    let mut sims = lock(&s.inner.sims);
    if sims.len() >= MAX_SIMS {
        sims.shift_remove_index(0);
    }
    sims.insert(
        id,
        SimEntry {
            file: e.id.clone(),
            sim,
        },
    );
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

fn with_sim<T>(
    s: &Studio,
    id: &str,
    f: impl FnOnce(&mut SimEntry) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut sims = lock(&s.inner.sims);
    let entry = sims.get_mut(id).ok_or_else(|| {
        missing(
            "unknownSim",
            format!("no simulated call {id:?} (the studio keeps the last {MAX_SIMS})"),
        )
    })?;
    f(entry)
}

fn sim_answer(
    s: &Studio,
    id: &str,
    act: impl FnOnce(&mut Interactive) -> Result<(), String>,
) -> Answer {
    with_sim(s, id, |e| {
        act(&mut e.sim).map_err(|m| ApiError::new(StatusCode::CONFLICT, "cannotAct", m))?;
        Ok(Json(sim_view(id, &e.file, &e.sim)).into_response())
    })
}

/// `GET api/sims/{id}`.
async fn get_sim(State(s): State<Studio>, UrlPath(id): UrlPath<String>) -> Answer {
    sim_answer(&s, &id, |_| Ok(()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PressBody {
    key: String,
}

/// `POST api/sims/{id}/press` with `{"key": "1"}`.
async fn press(State(s): State<Studio>, UrlPath(id): UrlPath<String>, body: Bytes) -> Answer {
    let b: PressBody = read_body(&body)?;
    let mut keys = b.key.chars();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(bad("`key` is one key: 0-9, * or #"));
    };
    sim_answer(&s, &id, |sim| sim.press(key))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    by: Option<String>,
}

/// `POST api/sims/{id}/advance` with `{"by": "10s"}`, or `{}` for the next thing due.
async fn advance(State(s): State<Studio>, UrlPath(id): UrlPath<String>, body: Bytes) -> Answer {
    let b: AdvanceBody = read_body(&body)?;
    let by = match b.by.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => Some(crate::sim::SimDuration::parse(t).map_err(bad)?.chrono()),
        None => None,
    };
    sim_answer(&s, &id, |sim| {
        sim.advance(by);
        Ok(())
    })
}

/// `POST api/sims/{id}/hangup`.
async fn hang_up(State(s): State<Studio>, UrlPath(id): UrlPath<String>) -> Answer {
    sim_answer(&s, &id, Interactive::hang_up)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioBody {
    name: String,
}

/// A file name from a scenario's name: lower case, words joined by `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(60).collect();
    if out.is_empty() {
        "scenario".into()
    } else {
        out
    }
}

/// `POST api/sims/{id}/scenario` with `{"name": "…"}`: writes the call as a
/// scenario file next to the flow's others, runs it, says whether it passes.
async fn save_scenario(
    State(s): State<Studio>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Answer {
    if s.inner.config.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "readOnly",
            "this studio is read-only (served by `callflow serve`): save scenarios in `callflow studio`",
        ));
    }
    let b: ScenarioBody = read_body(&body)?;
    let name = b.name.trim();
    if name.is_empty() || name.contains(['\n', '\r']) {
        return Err(bad("the scenario needs a name, on one line"));
    }
    let (text, flow, lines_now) = with_sim(&s, &id, |e| {
        let (text, _) = e.sim.scenario(name);
        let now = crate::sim::expect::actual_lines(&e.sim.session().timeline).len();
        Ok((text, Arc::clone(e.sim.flow()), now))
    })?;
    let dir = lock(&s.inner.workspace).scenario_dir(&flow.name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannotWrite",
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    let base = slug(name);
    let mut path = dir.join(format!("{base}.yaml"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{base}-{n}.yaml"));
        n += 1;
    }
    std::fs::write(&path, &text).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannotWrite",
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    tracing::info!(path = %path.display(), "scenario saved");
    let report = match crate::sim::scenario::load(&path) {
        Ok(sc) => crate::sim::scenario::run(&sc, &flow),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "badScenario",
                e.to_string(),
            ));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "file": rel(&s, &path),
            "text": text,
            "passed": report.passed,
            "failures": report.failures,
            "ran_on": report.actual.len() > lines_now,
            "expected": report.expected,
        })),
    )
        .into_response())
}

/// `GET api/events`: server-sent events, `version` each time the folder
/// is reloaded (and once at once).
async fn events(State(s): State<Studio>) -> Response {
    let rx = s.inner.version.subscribe();
    let closing = s.inner.closing.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, closing, true),
        |(mut rx, mut closing, first)| async move {
            if !first {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    _ = closing.wait_for(|c| *c) => return None,
                }
            }
            let version = *rx.borrow_and_update();
            let event = SseEvent::default()
                .event("version")
                .data(json!({ "version": version }).to_string());
            Some((Ok::<_, Infallible>(event), (rx, closing, false)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET api/live`: the runtime's sessions, live then recently ended.
async fn live(State(s): State<Studio>) -> Answer {
    let rt = s.inner.config.live.as_ref().ok_or_else(|| {
        missing(
            "notLive",
            "this studio is not attached to a running server (`callflow serve` has it under /ui)",
        )
    })?;
    // Live sessions (evicted ones read from the store), then ended ones.
    let sessions = rt.sessions_page(0, 1000).await.sessions;
    let live = sessions.iter().filter(|x| x.state != "ended").count();
    Ok(Json(json!({ "live": live, "sessions": sessions })).into_response())
}

/// `GET api/live/{id}`: one session, its timeline and its path on its flow's diagram.
async fn live_session(State(s): State<Studio>, UrlPath(id): UrlPath<String>) -> Answer {
    let rt = s
        .inner
        .config
        .live
        .as_ref()
        .ok_or_else(|| missing("notLive", "this studio is not attached to a running server"))?;
    let detail = rt
        .session_anywhere(&id)
        .await
        .ok_or_else(|| missing("unknownSession", format!("no session {id:?}")))?;
    let set = rt.flow_set();
    let flow = set.get(&detail.summary.flow).cloned();
    let start = detail.timeline.first().map_or_else(Utc::now, |e| e.at);
    let (g, walk, tz) = match &flow {
        Some(f) => (
            Some(graph(f)),
            Some(view::walk(f, &detail.timeline)),
            f.timezone,
        ),
        None => (None, None, chrono_tz::Tz::UTC),
    };
    let same_version = flow
        .as_ref()
        .is_some_and(|f| f.version == detail.summary.version);
    Ok(Json(json!({
        "session": detail.summary,
        "reason": detail.reason,
        "timeline": view::entries(&detail.timeline, start, tz),
        "graph": g,
        "walk": walk,
        "same_version": same_version,
    }))
    .into_response())
}
