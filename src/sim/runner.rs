//! Runs one call of a flow against the simulated Graph, through `engine::step`.
//!
//! The runner owns the simulated clock's loop: it pops the next happening
//! or timer from [`SimGraph`], turns Graph's bodies into events with the
//! production reader ([`parse_batch`] then [`Event::from_notification`]),
//! feeds them to [`engine::step`], carries out the commands through
//! [`CallControl`](crate::engine::CallControl) (the same [`execute`]
//! production uses) and feeds their
//! results back. It interprets nothing itself: there is one interpreter.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::engine::{
    self, ActionDone, Bot, BotIdentity, Command, Event, Instance, Party, Session, execute,
};
use crate::flow::{Flow, Trigger};
use crate::graph::parse_batch;
use crate::graph::wire::CallState;

use super::behaviour::GraphBehaviour;
use super::graph::{BOT_APP_ID, Scheduled, SimGraph};

/// Most happenings and timers one simulated call may go through.
pub const MAX_ITEMS: usize = 100_000;

/// The longest simulated call.
pub const MAX_DURATION: Duration = Duration::hours(24);

/// The callback URI the simulated bot gives Graph.
pub const SIM_CALLBACK: &str = "https://bot.contoso.com/api/calls";

/// One simulated call: who calls whom, when, and how Graph behaves.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// The simulated time the call starts at.
    pub clock: DateTime<Utc>,
    /// The caller.
    pub from: Party,
    /// Who is called.
    pub to: Party,
    /// Parameters, for `api` flows.
    pub params: Map<String, Value>,
    /// How Graph and the people on the call behave.
    pub graph: GraphBehaviour,
    /// Who the bot is; the session speaks as the instance the call reached
    /// ([`BotIdentity::for_incoming`]) or, for an `api` flow, its default one.
    pub bot: BotIdentity,
}

impl SimulateOptions {
    /// A call at `clock` from a French mobile to the first number the flow's
    /// trigger names (or `+14255550100`), with Graph behaving well.
    pub fn for_flow(flow: &Flow, clock: DateTime<Utc>) -> Self {
        let to = match &flow.trigger {
            Trigger::IncomingCall { to, .. } => {
                to.iter().find(|p| !p.is_glob()).map(|p| p.text.clone())
            }
            _ => None,
        }
        .unwrap_or_else(|| "+14255550100".into());
        let to = if to.starts_with('+') {
            Party::phone(to)
        } else {
            Party {
                application: Some(to),
                ..Party::default()
            }
        };
        SimulateOptions {
            clock,
            from: Party::phone("+33612345678"),
            to,
            params: Map::new(),
            graph: GraphBehaviour::default(),
            bot: default_identity(),
        }
    }
}

/// The simulated bot's application instance (the seeds' example id).
pub const SIM_INSTANCE_ID: &str = "3d913abb-aec0-4964-8fa6-3c6850c4f278";

/// The simulated bot's tenant (the seeds' example id).
pub const SIM_TENANT_ID: &str = "aa67bd4c-8475-432d-bd41-39f255720e0a";

/// Who the simulated bot is: the seeds' application, tenant and one
/// application instance (with no number of its own, so that it answers
/// every number a flow names).
pub fn default_identity() -> BotIdentity {
    BotIdentity {
        application_id: Some(BOT_APP_ID.into()),
        display_name: Some("Calling Bot".into()),
        tenant_id: Some(SIM_TENANT_ID.into()),
        instances: vec![Instance {
            id: SIM_INSTANCE_ID.into(),
            number: None,
            name: None,
        }],
    }
}

/// The simulated bot as a session carries it: its default instance.
pub fn default_bot() -> Bot {
    default_identity().bot(SIM_CALLBACK, None)
}

/// What a simulated call did.
#[derive(Clone, Debug)]
pub struct SimRun {
    /// The session at the end, timeline and outcome included.
    pub session: Session,
    /// Every event fed to `engine::step`, with its time, in order: feeding
    /// them again to a fresh session reproduces the run.
    pub events: Vec<(DateTime<Utc>, Event)>,
    /// Every Graph request the engine made, in order, with its exact body.
    pub commands: Vec<Command>,
    /// Every step's action that finished, in order, and how.
    pub actions: Vec<ActionDone>,
    /// Every notification body delivered, with its time: a recording that
    /// [`replay`] can play back.
    pub delivered: Vec<(DateTime<Utc>, Value)>,
    /// What went wrong outside the flow: requests for terminated calls,
    /// bodies the reader refused, a run that never ended.
    pub problems: Vec<String>,
}

/// Polls a future that is expected to be ready at once (the simulated
/// Graph never waits).
fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The loop both a whole run and an interactive call go through: the
/// simulated Graph, and what the run did so far.
pub(super) struct Driver {
    pub(super) graph: SimGraph,
    pub(super) run: SimRun,
}

impl Driver {
    pub(super) fn deliver(&mut self, flow: &Flow, at: DateTime<Utc>, body: Value) {
        self.run.delivered.push((at, body.clone()));
        let bytes = body.to_string();
        match parse_batch(bytes.as_bytes()) {
            Ok(list) => {
                for n in &list {
                    for event in Event::from_notification(n) {
                        self.feed(flow, at, event);
                    }
                }
            }
            Err(e) => self
                .run
                .problems
                .push(format!("a notification could not be read: {e}")),
        }
    }

    /// Feeds one event, then the results of the requests it caused, in order.
    pub(super) fn feed(&mut self, flow: &Flow, now: DateTime<Utc>, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            self.run.events.push((now, event.clone()));
            let stepped = engine::step_reported(flow, &mut self.run.session, event, now);
            self.run.actions.extend(stepped.actions);
            for cmd in stepped.commands {
                match &cmd {
                    Command::SetTimer { timer, at } => self.graph.set_timer(*at, *timer),
                    Command::CancelTimer { timer } => self.graph.cancel_timer(*timer),
                    _ => {
                        self.run.commands.push(cmd.clone());
                        match now_or_never(execute(&self.graph, &cmd)) {
                            Some(Some(result)) => queue.push_back(result),
                            Some(None) => {}
                            None => self
                                .run
                                .problems
                                .push("the simulated Graph did not answer at once".into()),
                        }
                    }
                }
            }
        }
    }

    fn drain(&mut self, flow: &Flow, start: DateTime<Utc>) {
        let mut items = 0;
        while !self.only_upkeep_left() && self.next(flow, start, &mut items) {}
    }

    /// Whether nothing is queued but the session's `keepAlive` and reaper
    /// timers: what would follow is known (a `keepAlive` every 15 minutes
    /// until the session is reaped), so a whole run stops there.
    pub(super) fn only_upkeep_left(&self) -> bool {
        let upkeep = &self.run.session.upkeep;
        !self.graph.any_queued(|item| match item {
            Scheduled::Timer(t) => !matches!(
                upkeep.rule_of(*t),
                Some(engine::Rule::KeepAlive | engine::Rule::Idle)
            ),
            Scheduled::Graph(_) => true,
        })
    }

    /// Takes the next queued item and makes it happen; `false` when nothing
    /// is left or the run went on too long (counted in `items`, a problem
    /// recorded).
    pub(super) fn next(&mut self, flow: &Flow, start: DateTime<Utc>, items: &mut usize) -> bool {
        let Some((at, item)) = self.graph.pop() else {
            return false;
        };
        *items += 1;
        if *items > MAX_ITEMS || at - start > MAX_DURATION {
            self.run.problems.push(format!(
                "the simulation was stopped after {items} happenings and {}s of simulated time",
                (at - start).num_seconds()
            ));
            return false;
        }
        match item {
            Scheduled::Timer(timer) => self.feed(flow, at, Event::TimerFired { timer }),
            Scheduled::Graph(h) => {
                for body in self.graph.happen(h) {
                    self.deliver(flow, at, body);
                }
            }
        }
        true
    }

    /// Problems found at the end of a run: promises broken, a run that never ended.
    pub(super) fn end_problems(&self, flow: &Flow) -> Vec<String> {
        let mut out: Vec<String> = self
            .graph
            .violations()
            .into_iter()
            .map(|v| format!("engine broke a promise: {v}"))
            .collect();
        if !self.run.session.is_ended() {
            let step = self
                .run
                .session
                .step_name(flow)
                .unwrap_or("(not started)")
                .to_owned();
            out.push(format!(
                "the run never ended: it was still in step `{step}`, waiting for {:?}",
                self.run.session.waiting
            ));
        }
        out
    }

    fn finish(mut self, flow: &Flow) -> SimRun {
        let problems = self.end_problems(flow);
        self.run.problems.extend(problems);
        self.run
    }
}

/// A simulated call placed as `options` say, its first event delivered:
/// an `api` start, an existing call for a `state_change` flow, or an
/// incoming call.
pub(super) fn begin(flow: &Flow, options: &SimulateOptions) -> Driver {
    let graph = SimGraph::new(options.graph.clone(), SIM_CALLBACK, options.clock);
    let api = matches!(flow.trigger, Trigger::Api { .. });
    let bot = if api {
        options.bot.bot(SIM_CALLBACK, None)
    } else {
        options.bot.for_incoming(SIM_CALLBACK, &options.to)
    };
    let session_id = if api { "run-1" } else { "call-1" };
    let mut driver = Driver {
        graph,
        run: SimRun {
            session: Session::new(flow, session_id, bot),
            events: Vec::new(),
            commands: Vec::new(),
            actions: Vec::new(),
            delivered: Vec::new(),
            problems: Vec::new(),
        },
    };
    if let Err(e) = options.graph.validate() {
        driver.run.problems.push(e);
    }
    if api {
        driver.feed(
            flow,
            options.clock,
            Event::ApiStart {
                params: options.params.clone(),
            },
        );
    } else if let Trigger::StateChange { states, .. } = &flow.trigger {
        let state = states
            .first()
            .map_or(CallState::Established, |s| CallState::from_wire(s));
        let (_, body) = driver.graph.existing_call(&state, "outgoing");
        driver.deliver(flow, options.clock, body);
    } else {
        let (_, body) = driver.graph.incoming_call(&options.from, &options.to);
        driver.deliver(flow, options.clock, body);
    }
    driver
}

/// Runs one simulated call of `flow`.
pub fn run(flow: &Flow, options: &SimulateOptions) -> SimRun {
    let mut driver = begin(flow, options);
    driver.drain(flow, options.clock);
    driver.finish(flow)
}

/// Replays recorded notification bodies (with their times) against `flow`;
/// requests are accepted and answered at once, prompts complete at once,
/// and nothing else happens on Graph's side.
pub fn replay(flow: &Flow, recording: &[(DateTime<Utc>, Value)], bot: &Bot) -> SimRun {
    let start = recording
        .first()
        .map_or(DateTime::<Utc>::MIN_UTC, |(t, _)| *t);
    let graph = SimGraph::passive(bot.callback_uri.clone(), start);
    for (at, body) in recording {
        graph.schedule_recorded(*at, body.clone());
    }
    let mut driver = Driver {
        graph,
        run: SimRun {
            session: Session::new(flow, "replay", bot.clone()),
            events: Vec::new(),
            commands: Vec::new(),
            actions: Vec::new(),
            delivered: Vec::new(),
            problems: Vec::new(),
        },
    };
    driver.drain(flow, start);
    driver.finish(flow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Outcome;

    fn reception() -> Flow {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/reception.yaml");
        let loaded = crate::flow::load_file(&path);
        loaded.flow.expect("reception.yaml loads")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a date")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_office_hours_call_picks_sales() {
        let flow = reception();
        let mut o = SimulateOptions::for_flow(&flow, at("2026-11-20T10:00:00+01:00"));
        o.graph.dtmf = vec!["1".into()];
        let r = run(&flow, &o);
        println!("{}", r.session.timeline.render(flow.timezone));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.session.outcome(), Some(Outcome::Transferred));
    }
}
