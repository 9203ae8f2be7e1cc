//! `/metrics`: the runtime's [`Metrics`] and the server's own counters as
//! Prometheus text (exposition format 0.0.4).
//!
//! Only formats: every number comes from [`Metrics`] or
//! [`ServerStats`](super::ServerStats); nothing is counted here.

use std::fmt::Write;

use crate::engine::{Outcome, RequestKind};
use crate::runtime::metrics::{Histogram, Metrics, NOTIFICATION_KINDS};

use super::ServerState;

/// The whole exposition.
pub(crate) fn render(state: &ServerState) -> String {
    let m: &Metrics = state.runtime().metrics();
    let mut out = String::with_capacity(4096);
    let get = Metrics::get;

    family(
        &mut out,
        "callflow_notifications_total",
        "counter",
        "Notifications received, by kind.",
    );
    for (kind, counter) in NOTIFICATION_KINDS.iter().zip(&m.notifications) {
        let _ = writeln!(
            out,
            "callflow_notifications_total{{kind=\"{kind}\"}} {}",
            get(counter)
        );
    }
    for (name, help, value) in [
        (
            "callflow_unknown_call_events_total",
            "Events about a call no session owned when they came (held for a create in flight, or dropped: see callflow_notifications_dropped_total).",
            get(&m.unknown_call_events),
        ),
        (
            "callflow_overloaded_total",
            "Events refused because a queue was full or the runtime overloaded.",
            get(&m.overloaded),
        ),
        (
            "callflow_store_errors_total",
            "Writes the session store refused (notifications answered 503).",
            get(&m.store_errors),
        ),
        (
            "callflow_sessions_recovered_total",
            "Sessions loaded from the store at start.",
            get(&m.sessions_recovered),
        ),
        (
            "callflow_sessions_taken_over_total",
            "Sessions taken over from another instance on the same PostgreSQL store.",
            get(&m.sessions_taken_over),
        ),
        (
            "callflow_sessions_fenced_total",
            "Sessions stopped here because another instance holds their lease.",
            get(&m.sessions_fenced),
        ),
        (
            "callflow_events_forwarded_total",
            "Events journaled for a session another instance holds (it applies them).",
            get(&m.events_forwarded),
        ),
        (
            "callflow_events_adopted_total",
            "Journal entries an instance that died acknowledged and never applied, applied here.",
            get(&m.events_adopted),
        ),
        (
            "callflow_sessions_evictions_total",
            "Idle sessions dropped from memory, their state stored (--evict-after).",
            get(&m.evictions),
        ),
        (
            "callflow_sessions_woken_total",
            "Evicted sessions loaded back from the store by a notification or a timer.",
            get(&m.sessions_woken),
        ),
        (
            "callflow_unmatched_incoming_total",
            "Incoming calls no flow takes.",
            get(&m.unmatched_incoming),
        ),
        (
            "callflow_sessions_started_total",
            "Sessions started.",
            get(&m.sessions_started),
        ),
        (
            "callflow_sessions_reaped_total",
            "Sessions reaped after being idle too long.",
            get(&m.sessions_reaped),
        ),
        (
            "callflow_internal_errors_total",
            "Sessions ended by a panic in the engine or the Graph client; their calls were hung up.",
            get(&m.internal_errors),
        ),
        (
            "callflow_timers_fired_total",
            "Timers fired.",
            get(&m.timers_fired),
        ),
        (
            "callflow_answer_deadline_missed_total",
            "Incoming calls not handled within 15 s.",
            get(&m.answer_deadline_missed),
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "callflow_sessions_live",
        "gauge",
        "Sessions alive now.",
    );
    let _ = writeln!(out, "callflow_sessions_live {}", get(&m.sessions_live));
    family(
        &mut out,
        "callflow_sessions_evicted",
        "gauge",
        "Live sessions evicted now: stored, waiting, not in memory (counted in callflow_sessions_live).",
    );
    let _ = writeln!(
        out,
        "callflow_sessions_evicted {}",
        get(&m.sessions_evicted)
    );

    family(
        &mut out,
        "callflow_sessions_ended_total",
        "counter",
        "Sessions ended, by outcome and by the flow's own name for it (`end`: a step's `end:`, empty when none).",
    );
    let named = m.ended_by_name();
    for outcome in Outcome::ALL {
        let of_it: Vec<&(Outcome, String, u64)> =
            named.iter().filter(|(o, ..)| *o == outcome).collect();
        let with_name: u64 = of_it.iter().map(|(.., n)| n).sum();
        let _ = writeln!(
            out,
            "callflow_sessions_ended_total{{outcome=\"{}\",end=\"\"}} {}",
            outcome.as_str(),
            m.ended(outcome).saturating_sub(with_name)
        );
        for (_, name, n) in of_it {
            let _ = writeln!(
                out,
                "callflow_sessions_ended_total{{outcome=\"{}\",end=\"{name}\"}} {n}",
                outcome.as_str(),
            );
        }
    }

    family(
        &mut out,
        "callflow_graph_requests_total",
        "counter",
        "Graph requests (actions), by kind and outcome.",
    );
    for kind in RequestKind::ALL {
        for (ok, label) in [(true, "ok"), (false, "failed")] {
            let _ = writeln!(
                out,
                "callflow_graph_requests_total{{kind=\"{}\",outcome=\"{label}\"}} {}",
                kind.as_str(),
                m.requests(kind, ok)
            );
        }
    }

    family(
        &mut out,
        "callflow_actions_total",
        "counter",
        "Flow steps' actions that finished, by action and outcome (ok, failure, timeout, invalid, interrupted).",
    );
    for (action, outcome, n) in m.actions() {
        let _ = writeln!(
            out,
            "callflow_actions_total{{action=\"{action}\",outcome=\"{}\"}} {n}",
            outcome.as_str()
        );
    }

    histogram(
        &mut out,
        "callflow_graph_request_duration_seconds",
        "Time each Graph request took.",
        &m.graph_latency,
    );
    histogram(
        &mut out,
        "callflow_dispatch_latency_seconds",
        "From a notification queued to the first Graph request it caused.",
        &m.dispatch_latency,
    );

    family(
        &mut out,
        "callflow_reloads_total",
        "counter",
        "Flow reloads, by outcome.",
    );
    let _ = writeln!(
        out,
        "callflow_reloads_total{{outcome=\"ok\"}} {}",
        get(&m.reloads_ok)
    );
    let _ = writeln!(
        out,
        "callflow_reloads_total{{outcome=\"failed\"}} {}",
        get(&m.reloads_failed)
    );

    family(
        &mut out,
        "callflow_callback_requests_total",
        "counter",
        "Callback requests answered, by HTTP status.",
    );
    for (status, count) in state.stats().callbacks() {
        let _ = writeln!(
            out,
            "callflow_callback_requests_total{{status=\"{status}\"}} {count}"
        );
    }
    family(
        &mut out,
        "callflow_notifications_refused_total",
        "counter",
        "Notifications in a callback body that did not read (logged; the others in the body were applied), by reason.",
    );
    for (reason, count) in state.stats().refused_entries() {
        let _ = writeln!(
            out,
            "callflow_notifications_refused_total{{reason=\"{reason}\"}} {count}"
        );
    }
    family(
        &mut out,
        "callflow_notifications_dropped_total",
        "counter",
        "Events of accepted notifications applied to no session (each logged with its call and why), by reason.",
    );
    for why in crate::runtime::metrics::Dropped::ALL {
        let _ = writeln!(
            out,
            "callflow_notifications_dropped_total{{reason=\"{}\"}} {}",
            why.as_str(),
            m.dropped(why)
        );
    }
    family(
        &mut out,
        "callflow_orphans_held",
        "gauge",
        "Events held now for calls nobody owns yet (a create in flight).",
    );
    let _ = writeln!(out, "callflow_orphans_held {}", get(&m.orphans_held));
    family(
        &mut out,
        "callflow_legacy_notifications_total",
        "counter",
        "Legacy (Skype calling) first notifications answered 204 No Content, so that Graph sends them again in its own format.",
    );
    let _ = writeln!(
        out,
        "callflow_legacy_notifications_total {}",
        state.stats().legacy()
    );
    family(
        &mut out,
        "callflow_admin_refused_total",
        "counter",
        "Admin requests refused for a missing or wrong token.",
    );
    let _ = writeln!(
        out,
        "callflow_admin_refused_total {}",
        state.stats().admin_refused()
    );
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    family(out, name, "histogram", help);
    let cumulative = h.cumulative();
    for (bound, count) in h.bounds().iter().zip(&cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}",
        cumulative.last().copied().unwrap_or(0)
    );
    let _ = writeln!(out, "{name}_sum {}", h.sum_seconds());
    let _ = writeln!(out, "{name}_count {}", h.count());
}
