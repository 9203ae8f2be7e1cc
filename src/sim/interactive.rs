//! A call clicked through step by step: the studio's simulation.
//!
//! [`Interactive`] places one simulated call exactly as [`runner::run`]
//! does (the same [`SimGraph`](super::SimGraph), the same loop feeding
//! `engine::step`), but lets time run only until the caller could act:
//! it stops before an engine timer (a menu's timeout, a transfer nobody
//! answers, a `wait`), before anything a person does (a key, a hang-up),
//! and before a prompt ends on a call whose keys Graph delivers (so that a
//! key can be pressed while it plays). Then the caller presses a key,
//! hangs up, or lets time pass. What was done is kept as a
//! [`GraphBehaviour`] (timed key presses, the hang-up time), so that
//! [`Interactive::scenario`] writes a scenario file whose run is this one.
//! It interprets nothing itself and reads no clock.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::engine::{Command, Outcome, Session, Waiting};
use crate::flow::Flow;

use super::behaviour::{GraphBehaviour, SimDuration, TimedPress};
use super::expect::{Actual, actual_lines};
use super::graph::{Happening, Scheduled};
use super::runner::{self, Driver, SimulateOptions};

/// One simulated call, moved on by the caller's actions.
pub struct Interactive {
    flow: Arc<Flow>,
    options: SimulateOptions,
    driver: Driver,
    items: usize,
    presses: Vec<TimedPress>,
    hung_up: Option<SimDuration>,
}

/// What comes next if time passes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Due {
    /// When.
    pub at: DateTime<Utc>,
    /// Milliseconds from the start of the call.
    pub offset_ms: i64,
    /// What, in a few words.
    pub what: String,
}

impl Interactive {
    /// Places the call and runs it until the caller could act.
    pub fn start(flow: Arc<Flow>, options: SimulateOptions) -> Self {
        let driver = runner::begin(&flow, &options);
        let mut sim = Interactive {
            flow,
            options,
            driver,
            items: 0,
            presses: Vec::new(),
            hung_up: None,
        };
        sim.settle();
        sim
    }

    /// The flow it runs.
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// The options it started with.
    pub fn options(&self) -> &SimulateOptions {
        &self.options
    }

    /// The simulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.driver.graph.now()
    }

    /// When the call started.
    pub fn started(&self) -> DateTime<Utc> {
        self.options.clock
    }

    /// The session: step, timeline, outcome.
    pub fn session(&self) -> &Session {
        &self.driver.run.session
    }

    /// Every Graph request made so far, with its exact body.
    pub fn commands(&self) -> &[Command] {
        &self.driver.run.commands
    }

    /// What went wrong outside the flow so far.
    pub fn problems(&self) -> &[String] {
        &self.driver.run.problems
    }

    /// Whether the run has ended.
    pub fn is_ended(&self) -> bool {
        self.driver.run.session.is_ended()
    }

    /// The caller's call (the first one placed).
    fn caller(&self) -> Option<String> {
        self.driver.graph.first_call()
    }

    /// Whether a key pressed now reaches the flow: the caller's call is
    /// established and the bot subscribed to its tones (whatever step waits
    /// for keys: a menu, or any action that asks Graph for tones).
    pub fn hears_keys(&self) -> bool {
        self.caller()
            .is_some_and(|c| self.driver.graph.hears_keys(&c))
    }

    /// Whether the caller's call is still up.
    pub fn caller_on_line(&self) -> bool {
        self.caller().is_some_and(|c| self.driver.graph.is_live(&c))
    }

    /// What the step waits for.
    pub fn waiting(&self) -> &Waiting {
        &self.driver.run.session.waiting
    }

    /// What happens next if time passes, if anything is queued.
    pub fn next_due(&self) -> Option<Due> {
        let (at, item) = self.driver.graph.peek()?;
        let what = match item {
            Scheduled::Timer(t) if self.session().upkeep.rule_of(t).is_some() => {
                match self.session().upkeep.rule_of(t) {
                    Some(crate::engine::Rule::Answer) => {
                        "the bot rejects the unanswered call (Graph's 15 s)".to_owned()
                    }
                    Some(crate::engine::Rule::KeepAlive) => "the bot sends keepAlive".to_owned(),
                    _ => "the session is checked for idleness".to_owned(),
                }
            }
            Scheduled::Timer(_) => match self.waiting() {
                Waiting::Menu { .. } => "the menu times out".to_owned(),
                Waiting::Collect { .. } => "the input ends".to_owned(),
                Waiting::Timer => "the wait ends".to_owned(),
                _ => "the step times out".to_owned(),
            },
            Scheduled::Graph(h) => match h {
                Happening::PromptDone { .. } => "the prompt ends".into(),
                Happening::RecordDone { .. } => "the recording ends".into(),
                Happening::InviteDone { .. } => "the invitation is answered".into(),
                Happening::Press { key, .. } => format!("the caller presses {key}"),
                Happening::CallerHangsUp { .. } => "the caller hangs up".into(),
                Happening::AnswerDeadline { .. } => "Graph drops the unanswered call (15 s)".into(),
                Happening::State { state, .. } => format!("the call becomes {state}"),
                Happening::MediaInactive { .. } => "the media goes inactive".into(),
                Happening::Roster { .. } => "the meeting's roster arrives".into(),
                Happening::LegacyTransfer { stage, .. } => format!("the transfer is {stage}"),
                Happening::Recorded(_) => "a recorded notification".into(),
            },
        };
        Some(Due {
            at,
            offset_ms: (at - self.started()).num_milliseconds(),
            what,
        })
    }

    /// The caller presses `key` now.
    ///
    /// # Errors
    ///
    /// When `key` is not a DTMF key, or Graph would not deliver it (the call
    /// is not established, or no step subscribed to its tones).
    pub fn press(&mut self, key: char) -> Result<(), String> {
        if !key.is_ascii_digit() && !"*#".contains(key) {
            return Err(format!("`{key}` is not a key: use 0-9, * or #"));
        }
        let call = self.caller().ok_or("no call has been placed")?;
        if !self.driver.graph.hears_keys(&call) {
            return Err(
                "Graph would not deliver a key now: the call is not established or no step listens for keys"
                    .into(),
            );
        }
        self.presses.push(TimedPress {
            at: self.offset(),
            key: key.to_string(),
        });
        self.driver.graph.person_now(Happening::Press { call, key });
        self.run_due(self.now());
        self.settle();
        Ok(())
    }

    /// The caller hangs up now.
    ///
    /// # Errors
    ///
    /// When the caller's call has already ended.
    pub fn hang_up(&mut self) -> Result<(), String> {
        let call = self.caller().ok_or("no call has been placed")?;
        if !self.driver.graph.is_live(&call) {
            return Err("the caller's call has already ended".into());
        }
        self.hung_up = Some(self.offset());
        self.driver
            .graph
            .person_now(Happening::CallerHangsUp { call });
        self.run_due(self.now());
        self.settle();
        Ok(())
    }

    /// Lets time pass: by `by`, or (`None`) up to the next thing due; then
    /// runs on until the caller could act again.
    pub fn advance(&mut self, by: Option<Duration>) {
        match by {
            Some(by) => {
                let until = self.now() + by.max(Duration::zero());
                self.run_due(until);
                self.driver.graph.advance_to(until);
            }
            None => {
                let flow = Arc::clone(&self.flow);
                let start = self.started();
                self.driver.next(&flow, start, &mut self.items);
            }
        }
        self.settle();
    }

    /// Makes every queued item due at or before `until` happen, in order.
    fn run_due(&mut self, until: DateTime<Utc>) {
        let flow = Arc::clone(&self.flow);
        let start = self.started();
        while self.driver.graph.peek().is_some_and(|(at, _)| at <= until) {
            if !self.driver.next(&flow, start, &mut self.items) {
                break;
            }
        }
    }

    /// Runs what Graph does by itself, until the caller could act.
    fn settle(&mut self) {
        let flow = Arc::clone(&self.flow);
        let start = self.started();
        loop {
            self.driver.graph.drop_moot();
            let Some((_, item)) = self.driver.graph.peek() else {
                break;
            };
            let stop = match &item {
                Scheduled::Timer(_) => true,
                Scheduled::Graph(
                    Happening::Press { .. }
                    | Happening::CallerHangsUp { .. }
                    | Happening::AnswerDeadline { .. },
                ) => true,
                Scheduled::Graph(Happening::PromptDone { call, .. }) => {
                    self.driver.graph.hears_keys(call)
                }
                Scheduled::Graph(_) => false,
            };
            if stop || !self.driver.next(&flow, start, &mut self.items) {
                break;
            }
        }
    }

    fn offset(&self) -> SimDuration {
        let ms = (self.now() - self.started()).num_milliseconds().max(0);
        SimDuration(std::time::Duration::from_millis(ms as u64))
    }

    /// How Graph and the caller behaved: the options' behaviour, with the
    /// keys pressed (at their times) and the hang-up.
    pub fn behaviour(&self) -> GraphBehaviour {
        let mut b = self.options.graph.clone();
        b.presses.extend(self.presses.iter().cloned());
        b.presses.sort_by_key(|p| p.at);
        if let Some(at) = self.hung_up {
            b.hangup = Some(b.hangup.map_or(at, |h| h.min(at)));
        }
        b
    }

    /// The options that replay this call from the start, unattended.
    pub fn replay_options(&self) -> SimulateOptions {
        let mut o = self.options.clone();
        o.graph = self.behaviour();
        o
    }

    /// The call as a scenario file named `name`: its clock, caller, number,
    /// parameters and behaviour, and every request and the end that a run
    /// of it (unattended, to its end) makes, strict. Also returns whether
    /// that run did more than this call so far (it had not ended).
    pub fn scenario(&self, name: &str) -> (String, Vec<Actual>) {
        let run = runner::run(&self.flow, &self.replay_options());
        let lines = actual_lines(&run.session.timeline);
        (write_scenario(self, name, &lines), lines)
    }

    /// The outcome, once the run has ended.
    pub fn outcome(&self) -> Option<Outcome> {
        self.driver.run.session.outcome()
    }
}

/// A scenario file for `sim`, expecting `lines`.
fn write_scenario(sim: &Interactive, name: &str, lines: &[Actual]) -> String {
    use std::fmt::Write as _;

    use serde_json::{Map, Value};

    use crate::engine::command::write_flow;

    let flow_text = |v: &Value| {
        let mut s = String::new();
        let _ = write_flow(&mut s, v);
        s
    };
    let mut out = String::new();
    let _ = writeln!(out, "scenario: {}", flow_text(&Value::String(name.into())));
    let _ = writeln!(
        out,
        "flow: {}",
        flow_text(&Value::String(sim.flow.name.clone()))
    );
    let clock = sim
        .options
        .clock
        .with_timezone(&sim.flow.timezone)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    let _ = writeln!(out, "clock: \"{clock}\"");
    let party = |p: &crate::engine::Party| {
        let mut m = Map::new();
        for (k, v) in [
            ("phone", &p.phone),
            ("user", &p.user),
            ("application", &p.application),
            ("tenant", &p.tenant),
            ("display_name", &p.display_name),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        Value::Object(m)
    };
    if !matches!(sim.flow.trigger, crate::flow::Trigger::Api { .. }) {
        let call =
            serde_json::json!({ "from": party(&sim.options.from), "to": party(&sim.options.to) });
        let _ = writeln!(out, "call: {}", flow_text(&call));
    }
    if !sim.options.params.is_empty() {
        let _ = writeln!(
            out,
            "params: {}",
            flow_text(&Value::Object(sim.options.params.clone()))
        );
    }
    let behaviour = sim.behaviour();
    if behaviour != GraphBehaviour::default() {
        out.push_str("graph:\n");
        let defaults = serde_json::to_value(GraphBehaviour::default()).unwrap_or_default();
        if let Ok(Value::Object(fields)) = serde_json::to_value(&behaviour) {
            for (k, v) in fields {
                if defaults.get(&k) != Some(&v) {
                    let _ = writeln!(out, "  {k}: {}", flow_text(&v));
                }
            }
        }
    }
    out.push_str(&expect_text(lines));
    out.push_str("strict: true\n");
    out
}

/// `expect:` and its lines, as a scenario file writes them.
pub(crate) fn expect_text(lines: &[Actual]) -> String {
    use std::fmt::Write as _;

    use serde_json::{Map, Value};

    use crate::engine::command::write_flow;

    let flow_text = |v: &Value| {
        let mut s = String::new();
        let _ = write_flow(&mut s, v);
        s
    };
    let mut out = String::from("expect:\n");
    for line in lines {
        let v = match line {
            Actual::End(o, None) => serde_json::json!({ "end": o.as_str() }),
            Actual::End(_, Some(name)) => serde_json::json!({ "end": name }),
            Actual::Request(r) => {
                let mut fields = r.fields.clone();
                if r.call != "main" {
                    fields.insert("call".into(), Value::String(r.call.clone()));
                }
                if fields.is_empty() {
                    Value::String(r.request.as_str().into())
                } else {
                    let mut m = Map::new();
                    m.insert(r.request.as_str().into(), Value::Object(fields));
                    Value::Object(m)
                }
            }
        };
        let _ = writeln!(out, "  - {}", flow_text(&v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Entry;

    fn reception() -> Arc<Flow> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/reception.yaml");
        Arc::new(
            crate::flow::load_file(&path)
                .flow
                .expect("reception.yaml loads"),
        )
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a date")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_menu_waits_for_the_caller_and_key_1_reaches_sales() {
        let flow = reception();
        let o = SimulateOptions::for_flow(&flow, at("2026-11-20T10:00:00+01:00"));
        let mut sim = Interactive::start(Arc::clone(&flow), o);
        assert_eq!(sim.session().step_name(&flow), Some("menu"));
        assert!(sim.hears_keys());
        assert!(!sim.is_ended());
        assert_eq!(
            sim.next_due().map(|d| d.what),
            Some("the prompt ends".into())
        );
        sim.press('1').expect("the menu hears keys");
        assert_eq!(sim.outcome(), Some(Outcome::Transferred));
        let (text, lines) = sim.scenario("key 1 reaches sales");
        assert!(text.contains("presses: [{at: "), "{text}");
        let scenario = crate::sim::scenario::parse(std::path::Path::new("x.yaml"), &text)
            .expect("the scenario reads");
        let report = crate::sim::scenario::run(&scenario, &flow);
        assert!(report.passed, "{:?}\n{text}", report.failures);
        assert_eq!(
            lines.last().map(ToString::to_string),
            Some("end transferred".into())
        );
    }

    #[test]
    fn time_passes_to_the_menu_timeout_and_a_hang_up_ends_the_call() {
        let flow = reception();
        let o = SimulateOptions::for_flow(&flow, at("2026-11-20T10:00:00+01:00"));
        let mut sim = Interactive::start(Arc::clone(&flow), o);
        sim.advance(None); // the prompt ends
        assert_eq!(
            sim.next_due().map(|d| d.what),
            Some("the menu times out".into())
        );
        sim.advance(Some(Duration::seconds(3)));
        assert!(!sim.is_ended());
        sim.hang_up().expect("the caller is on the line");
        assert_eq!(sim.outcome(), Some(Outcome::CallerHungUp));
        assert!(sim.hang_up().is_err());
        let (text, _) = sim.scenario("hangs up in the menu");
        assert!(text.contains("hangup: "), "{text}");
        let scenario = crate::sim::scenario::parse(std::path::Path::new("x.yaml"), &text)
            .expect("the scenario reads");
        assert!(crate::sim::scenario::run(&scenario, &flow).passed, "{text}");
    }

    #[test]
    fn the_interactive_run_is_the_unattended_one() {
        let flow = reception();
        let o = SimulateOptions::for_flow(&flow, at("2026-11-20T10:00:00+01:00"));
        let mut sim = Interactive::start(Arc::clone(&flow), o);
        sim.advance(None);
        sim.press('9').expect("a wrong key is still a key");
        sim.press('2').expect("the replayed menu hears keys");
        while !sim.is_ended() && sim.next_due().is_some() {
            sim.advance(None);
        }
        let replay = runner::run(&flow, &sim.replay_options());
        let entries = |t: &crate::engine::Timeline| -> Vec<String> {
            t.entries
                .iter()
                .filter(|e| !matches!(e.what, Entry::Note(_)))
                .map(|e| format!("{} {}", e.at, e.what))
                .collect()
        };
        assert_eq!(
            entries(&sim.session().timeline),
            entries(&replay.session.timeline)
        );
    }
}
