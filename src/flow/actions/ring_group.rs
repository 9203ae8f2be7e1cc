//! `ring_group`: a hunt group with hold music. The caller, already
//! answered, hears a looping hold prompt (and an announcement now and then)
//! while the bot rings a list of Teams users or numbers, one at a time
//! (`serial`, or `round_robin`: serial from the next target across calls)
//! or all at once (`simultaneous`), each attempt a consultation call; the first who answers gets the caller (`cancelMediaProcessing` on
//! the caller's call, then a transfer with `replacesCallId`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::{Target, Template};
use crate::flow::model::{TargetDef, Text};
use crate::flow::span::Spanned;

/// The most targets one ring group rings. Each target is its own
/// consultation call (`POST /communications/calls` with one target: a
/// transfer may replace only a one-to-one call), so this is callflow's bound
/// on the calls one caller may hold open at once, not a Graph field's.
pub const MAX_TARGETS: usize = 10;

/// The range of `ring_timeout`, in seconds.
pub const RING_TIMEOUT_RANGE: (u64, u64) = (5, 120);

/// The range of `max_wait`, in seconds.
pub const MAX_WAIT_RANGE: (u64, u64) = (10, 3600);

/// The range of an announcement's `every`, in seconds.
pub const EVERY_RANGE: (u64, u64) = (10, 600);

/// `ring_group: {targets, strategy, ring_timeout, max_wait, hold_prompt, announcement}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RingGroupAction {
    /// Who to ring, in order: Teams users (`{user: …}`) or numbers (`{phone: …}`), at most 10.
    pub targets: Spanned<Vec<Spanned<TargetDef>>>,
    /// `serial` (default): one target at a time, each for `ring_timeout`,
    /// cycling through the list; `round_robin`: the same, each call starting
    /// one target further than the call before (a counter the server keeps);
    /// `simultaneous`: every target at once, for `ring_timeout`, again and again.
    #[serde(default)]
    pub strategy: Option<Text>,
    /// How long each attempt rings, 5s to 120s. Default 20s.
    #[serde(default)]
    pub ring_timeout: Option<Text>,
    /// How long the caller waits at most before `on_timeout`, 10s to 1h. Default 3m.
    #[serde(default)]
    pub max_wait: Option<Text>,
    /// The URL of the hold music, played again each time it ends.
    pub hold_prompt: Text,
    /// A prompt played between two plays of the hold music, once `every` has passed.
    #[serde(default)]
    pub announcement: Option<Spanned<AnnouncementDef>>,
}

/// `announcement: {prompt, every}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementDef {
    /// The URL of the announcement ("all our agents are busy, please hold").
    pub prompt: Text,
    /// How often, 10s to 10m. Default 45s.
    #[serde(default)]
    pub every: Option<Text>,
}

/// How the targets are rung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One at a time, in order, cycling.
    Serial,
    /// One at a time, cycling, each call starting one target further than
    /// the call before (the turn the runtime hands out).
    RoundRobin,
    /// All at once.
    Simultaneous,
}

impl Strategy {
    /// Its name in flow files.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Serial => "serial",
            Strategy::RoundRobin => "round_robin",
            Strategy::Simultaneous => "simultaneous",
        }
    }
}

/// An announcement, compiled.
#[derive(Clone, Debug)]
pub struct Announcement {
    /// Its prompt.
    pub prompt: Template,
    /// How often.
    pub every: Duration,
}

/// `ring_group`, compiled.
#[derive(Clone, Debug)]
pub struct RingGroup {
    /// The targets, in order.
    pub targets: Vec<Target>,
    /// How they are rung.
    pub strategy: Strategy,
    /// How long each attempt rings.
    pub ring_timeout: Duration,
    /// How long the caller waits at most.
    pub max_wait: Duration,
    /// The hold music.
    pub hold_prompt: Template,
    /// The periodic announcement.
    pub announcement: Option<Announcement>,
}

impl ActionType for RingGroup {
    type Model = RingGroupAction;
    const DOC: &'static str = "Hold the caller with music while ringing a list of users or numbers; the first who answers gets the caller.";
    const OUTCOMES: &'static [OutcomeField] = &[
        OutcomeField::Next,
        OutcomeField::OnFailure,
        OutcomeField::OnTimeout,
    ];
    const SHAPE: Shape = Shape::Group;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> =
        Some("if the hold music cannot play, a call cannot be placed or the transfer fails, the caller is hung up on");

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
        super::handed_over(phase, outcome)
    }
}

impl CheckAction for RingGroup {
    fn branch_names(_: &RingGroupAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<RingGroupAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let g = &a.value;
        let mut ok = true;
        let defs = &g.targets.value;
        if defs.is_empty() {
            cx.error(
                "callflow::ring_group::targets",
                g.targets.span,
                "this ring group has no targets",
            )
            .label("empty")
            .help("list who to ring: `targets: [{user: …}, {phone: \"+1…\"}]`");
            ok = false;
        } else if defs.len() > MAX_TARGETS {
            let at = cx.key_span(g.targets.span, "targets");
            cx.error(
                "callflow::ring_group::targets",
                at,
                format!(
                    "this ring group has {} targets; it rings at most {MAX_TARGETS}, each a consultation call of its own",
                    defs.len()
                ),
            )
            .label("too many targets")
            .help(format!(
                "keep {MAX_TARGETS} targets, or send the caller to a Teams call queue with `transfer`"
            ));
            ok = false;
        }
        let targets: Vec<Target> = defs.iter().filter_map(|t| cx.target(t, cals)).collect();
        ok &= targets.len() == defs.len();
        const NAMES: [&str; 3] = ["serial", "round_robin", "simultaneous"];
        let strategy = match &g.strategy {
            None => Some(Strategy::Serial),
            Some(t) => match t.value.as_str() {
                "serial" => Some(Strategy::Serial),
                "round_robin" => {
                    if defs.len() == 1 {
                        cx.warning(
                            "callflow::ring_group::round_robin",
                            t.span,
                            "a round_robin group of one target rings it first on every call",
                        )
                        .label("one target")
                        .help("add the other targets, or write `strategy: serial`");
                    }
                    Some(Strategy::RoundRobin)
                }
                "simultaneous" => Some(Strategy::Simultaneous),
                other => {
                    let hint = match crate::flow::suggest::closest(other, NAMES) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "use `serial`, `round_robin` or `simultaneous`".to_owned(),
                    };
                    cx.error(
                        "callflow::ring_group::strategy",
                        t.span,
                        format!("`{other}` is not a ring group strategy"),
                    )
                    .label("strategy")
                    .help(hint);
                    None
                }
            },
        };
        let ring_timeout = cx.duration_in(g.ring_timeout.as_ref(), 20, Some(RING_TIMEOUT_RANGE));
        let max_wait = cx.duration_in(g.max_wait.as_ref(), 180, Some(MAX_WAIT_RANGE));
        let hold_prompt = cx.prompt(&g.hold_prompt, cals);
        let announcement = match &g.announcement {
            None => Some(None),
            Some(an) => {
                let prompt = cx.prompt(&an.value.prompt, cals);
                let every = cx.duration_in(an.value.every.as_ref(), 45, Some(EVERY_RANGE));
                match (prompt, every) {
                    (Some(prompt), Some(every)) => Some(Some(Announcement { prompt, every })),
                    _ => None,
                }
            }
        };
        if !ok {
            return None;
        }
        Some(RingGroup {
            targets,
            strategy: strategy?,
            ring_timeout: ring_timeout?,
            max_wait: max_wait?,
            hold_prompt: hold_prompt?,
            announcement: announcement?,
        })
    }
}
