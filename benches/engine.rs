//! Interpreter speed: events per second through `engine::step` on the
//! reception flow (target ≥ 500,000 on one core), and one compiled `when`
//! (target < 1 µs).
//!
//! Run with `cargo bench --bench engine`; the figures go in the README.

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use callflow::engine::{self, Event, Session, StateChange};
use callflow::flow::actions::switch::Switch;
use callflow::flow::{Action, Flow, load_file};
use callflow::graph::wire::CallState;
use callflow::sim::{self, SimulateOptions};

fn reception() -> Flow {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows/reception.yaml");
    load_file(&path).flow.expect("flows/reception.yaml loads")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a date")
        .with_timezone(&Utc)
}

/// The events of whole simulated calls: a menu choice to sales, and the
/// same through duplicated, reordered notifications.
fn recorded_calls(flow: &Flow) -> Vec<Vec<(DateTime<Utc>, Event)>> {
    let mut calls = Vec::new();
    for (dtmf, faulty) in [("1", false), ("2", false), ("1", true)] {
        let mut o = SimulateOptions::for_flow(flow, at("2026-11-20T10:00:00+01:00"));
        o.graph.dtmf = vec![dtmf.into()];
        o.graph.duplicate = faulty;
        o.graph.reorder = faulty;
        let run = sim::run(flow, &o);
        assert!(run.problems.is_empty(), "{:?}", run.problems);
        calls.push(run.events);
    }
    calls
}

fn step_throughput(c: &mut Criterion) {
    let flow = reception();
    let bot = sim::default_bot();
    let mut group = c.benchmark_group("step");
    for (name, events) in ["sales", "support", "sales_faulty"]
        .iter()
        .zip(recorded_calls(&flow))
    {
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(format!("reception_call_{name}"), |b| {
            b.iter(|| {
                let mut session = Session::new(&flow, "call-1", bot.clone());
                for (now, event) in &events {
                    black_box(engine::step(&flow, &mut session, event.clone(), *now));
                }
                session
            })
        });
    }
    // The cheapest and most common event: a duplicated notification.
    let events = &recorded_calls(&flow)[0];
    let mut session = Session::new(&flow, "call-1", bot.clone());
    for (now, event) in events.iter().take(4) {
        engine::step(&flow, &mut session, event.clone(), *now);
    }
    let duplicate = Event::CallState(StateChange::new("call-1", CallState::Established));
    let now = events[0].0;
    group.throughput(Throughput::Elements(1));
    group.bench_function("duplicate_notification", |b| {
        b.iter_batched_ref(
            || session.clone(),
            |s| black_box(engine::step(&flow, s, duplicate.clone(), now)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn when_evaluation(c: &mut Criterion) {
    let flow = reception();
    let Some(step) = flow.steps.iter().find(|s| s.name == "hours") else {
        panic!("reception has an `hours` step");
    };
    let Action::Switch(Switch { cases }) = &step.action else {
        panic!("`hours` is a switch");
    };
    let Some((Some(when), _)) = cases.first() else {
        panic!("`hours` starts with a `when`");
    };
    let session = Session::new(&flow, "call-1", sim::default_bot());
    let input = engine::scope::eval_input(&flow, &session);
    let now = at("2026-11-20T10:00:00+01:00").with_timezone(&flow.timezone);
    c.bench_function("when/open_office", |b| {
        b.iter(|| black_box(when.eval_bool(black_box(&input), now, &flow.calendars)))
    });
}

/// One scenario run (simulated Graph, engine, comparison), without file reads:
/// `callflow test` must run 1,000 scenarios in under 2 s.
fn scenario_run(c: &mut Criterion) {
    let flow = reception();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows/scenarios/reception");
    let scenario =
        sim::scenario::load(&dir.join("support-consultative.yaml")).expect("the scenario loads");
    c.bench_function("scenario/support_consultative", |b| {
        b.iter(|| {
            let report = sim::scenario::run(&scenario, &flow);
            assert!(report.passed);
            report
        })
    });
}

criterion_group!(benches, step_throughput, when_evaluation, scenario_run);
criterion_main!(benches);
