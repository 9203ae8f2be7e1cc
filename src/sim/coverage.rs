//! What scenarios leave untested: steps never entered, links never taken.
//!
//! [`coverage`] reads the timelines of scenario reports (each `step` entry
//! says how the step was reached: `next`, `on_failure`, `key 1`, `when …`)
//! and lists, for one flow, the steps and the links between steps that no
//! run went through, and the outcomes the runs ended with. Pure.

use std::collections::BTreeSet;

use crate::engine::{Entry, Outcome};
use crate::flow::Flow;

use super::scenario::ScenarioReport;

/// What the scenarios of one flow reached and missed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Coverage {
    /// The flow.
    pub flow: String,
    /// Steps no scenario entered.
    pub missing_steps: Vec<String>,
    /// Links no scenario took, as `from --via--> to`.
    pub missing_links: Vec<String>,
    /// The outcomes the runs ended with.
    pub outcomes: Vec<Outcome>,
}

impl Coverage {
    /// Whether every step and link was reached.
    pub fn is_complete(&self) -> bool {
        self.missing_steps.is_empty() && self.missing_links.is_empty()
    }
}

/// Every link a flow declares: (from, via, to), with `via` worded as the
/// timeline words it: the links between steps of its diagram.
pub fn links(flow: &Flow) -> Vec<(String, String, String)> {
    crate::flow::diagram::graph(flow).step_links()
}

/// The steps and links of `flow` that none of `reports` went through.
pub fn coverage<'r>(
    flow: &Flow,
    reports: impl IntoIterator<Item = &'r ScenarioReport>,
) -> Coverage {
    let mut entered = BTreeSet::new();
    let mut taken = BTreeSet::new();
    let mut outcomes = Vec::new();
    for r in reports {
        if r.flow != flow.name {
            continue;
        }
        let mut prev: Option<&str> = None;
        for e in &r.timeline.entries {
            match &e.what {
                Entry::Enter { step, via } => {
                    entered.insert(step.clone());
                    if let Some(p) = prev {
                        taken.insert((p.to_owned(), via.clone(), step.clone()));
                    }
                    prev = Some(step);
                }
                Entry::End { outcome, .. } if !outcomes.contains(outcome) => {
                    outcomes.push(*outcome)
                }
                _ => {}
            }
        }
    }
    let missing_steps = flow
        .steps
        .iter()
        .filter(|s| !entered.contains(&s.name))
        .map(|s| s.name.clone())
        .collect();
    let missing_links = links(flow)
        .into_iter()
        .filter(|l| !taken.contains(l))
        .map(|(from, via, to)| format!("{from} --{via}--> {to}"))
        .collect();
    Coverage {
        flow: flow.name.clone(),
        missing_steps,
        missing_links,
        outcomes,
    }
}
