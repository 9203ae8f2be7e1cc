//! The actions of the flow language, one module each, tied together by one list.
//!
//! Each module (`answer`, `menu`, `transfer`, …) holds everything about its
//! action: its YAML form (a `Deserialize` + `JsonSchema` type whose doc
//! comments become the schema's descriptions), its compiled form (the
//! variant's payload in [`Action`]), the outcomes it can produce, its
//! load-time checks, and what diagrams, coverage and the engine read from it
//! ([`ActionType`], `CheckAction`). The `actions!` list below is the
//! only place that names them all: from it come the step's fields
//! ([`StepDef`], so `deny_unknown_fields` and the schema list every action),
//! [`Action`] and [`ActionKind`]. Every `match` over actions elsewhere (the
//! engine's) is exhaustive, so a new action does not compile until each one
//! handles it. Adding one is described in `ARCHITECTURE.md`.
//!
//! Nothing here runs a call or knows Graph's JSON: the engine gives each
//! compiled action its behaviour.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check::{Cx, Resolver};
use super::compiled::StepId;
use super::model::Text;
use super::span::{Span, Spanned};

pub use super::diagram::Shape;

/// The outcome fields a step may have, one per way an action can end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutcomeField {
    /// `next`: the action did what it does.
    Next,
    /// `on_failure`: it failed.
    OnFailure,
    /// `on_timeout`: its time ran out.
    OnTimeout,
    /// `on_invalid`: the caller pressed keys it does not accept.
    OnInvalid,
}

impl OutcomeField {
    /// Every outcome, in the order of a step's fields.
    pub const ALL: [OutcomeField; 4] = [
        OutcomeField::Next,
        OutcomeField::OnFailure,
        OutcomeField::OnTimeout,
        OutcomeField::OnInvalid,
    ];

    /// Its field name in flow files, which is also how the timeline says a
    /// step was reached through it.
    pub const fn name(self) -> &'static str {
        match self {
            OutcomeField::Next => "next",
            OutcomeField::OnFailure => "on_failure",
            OutcomeField::OnTimeout => "on_timeout",
            OutcomeField::OnInvalid => "on_invalid",
        }
    }
}

/// A way on that an action chooses itself (a menu key, a switch case),
/// besides its outcome fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branch {
    /// The step it leads to.
    pub to: StepId,
    /// How the timeline says the step was reached (`key 1`, `when …`, `otherwise`).
    pub via: String,
    /// How a diagram labels the edge (`1`, the condition, `else`).
    pub label: String,
}

/// What a run knows of its main call when a step starts, for checking at
/// load that every path from `start` runs each action on a call it can act
/// on (`callflow::step::order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallPhase {
    /// No call yet: an `api` flow before its first `call` or `join_meeting`.
    NoCall,
    /// The incoming call, not answered yet.
    Unanswered,
    /// A call that is up: answered, or placed and picked up.
    Answered,
    /// Not known at load (a `state_change` flow, after a transfer, after a
    /// `wait` for a state): nothing is checked from here on.
    Unknown,
    /// The call an `api` flow placed has ended (nobody answered): only
    /// steps that need no call run, until a `call` places the next one.
    Ended,
}

/// Every phase an action may start in: for actions that do not mind.
pub const ANY_PHASE: &[CallPhase] = &[
    CallPhase::NoCall,
    CallPhase::Unanswered,
    CallPhase::Answered,
    CallPhase::Ended,
];

/// The phase after an action that hands the call over (`transfer`,
/// `consultative_transfer`, `ring_group`): once handed over through
/// `next`, the call is the target's and what follows is not checked.
pub(super) fn handed_over(phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
    match outcome {
        Some(OutcomeField::Next) => CallPhase::Unknown,
        _ => phase,
    }
}

/// What every action declares about itself. No item has a default: a new
/// action states each one.
pub trait ActionType: Sized {
    /// Its YAML form: the value under the action's key in a step.
    type Model;
    /// What the action does, in one line: the description of its field in
    /// the JSON Schema, which editors show while the designer types.
    const DOC: &'static str;
    /// The outcome fields a step with this action may have; any other is
    /// `callflow::outcome::impossible`. Empty: the action ends the run or
    /// chooses the next step itself.
    const OUTCOMES: &'static [OutcomeField];
    /// How diagrams draw its step.
    const SHAPE: Shape;
    /// Whether it acts on a call; one that does not (`switch`, `set`,
    /// `log`) still runs after the call has ended.
    const NEEDS_CALL: bool;
    /// Whether `name: {}` is a complete action (the hint when a designer
    /// writes `hangup: now`).
    const BARE: bool;
    /// The phases of the main call it can start in (an action started in
    /// another fails at run time); [`CallPhase::Unknown`] is never checked.
    const RUNS_IN: &'static [CallPhase];
    /// What the caller lives through when it fails and neither the step's
    /// `on_failure` nor `on.error` routes the failure (the run ends and the
    /// bot hangs up), for the `callflow::failure::unrouted` warning; `None`
    /// where that end is the only sensible one (a prompt that cannot play,
    /// an answer that fails: the call is already gone or broken).
    const UNROUTED_FAILURE: Option<&'static str>;
    /// The steps it chooses between itself, in the order written.
    fn branches(&self) -> Vec<Branch>;
    /// The phase of the main call once it ended through `outcome` (`None`:
    /// through one of its [`branches`](Self::branches)), having started in
    /// `phase`.
    fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase;
}

/// How an action is read from a flow file: checked, every problem reported,
/// and compiled.
pub(in crate::flow) trait CheckAction: ActionType {
    /// The steps its YAML form names besides the outcome fields (menu
    /// choices, switch cases), for reachability.
    fn branch_names(model: &Self::Model) -> Vec<&Text>;
    /// The variables its YAML form gives a value (`set`'s names, a
    /// `collect`'s or `record`'s `into`), which
    /// expressions anywhere in the flow may then read as `vars.NAME`.
    fn assigned_names(_model: &Self::Model) -> Vec<String> {
        Vec::new()
    }
    /// The variables it gives a value with what is known of their type at
    /// load (a `fetch` with a `shape`); by default every
    /// [`assigned_names`](Self::assigned_names) one, of any type.
    fn assigned_types(model: &Self::Model) -> Vec<(String, crate::flow::roots::Ty)> {
        Self::assigned_names(model)
            .into_iter()
            .map(|n| (n, crate::flow::roots::Ty::Any))
            .collect()
    }
    /// Checks the action as written, reporting each problem through `cx`;
    /// its compiled form when it has none.
    fn check(
        cx: &mut Cx,
        model: &Spanned<Self::Model>,
        r: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self>;
}

/// Declares the actions: `key: Variant` makes the module `key` (in
/// `key.rs`), the step field `key` (the YAML key), the variant
/// `Action::Variant(key::Variant)` and `ActionKind::Variant`. The order is
/// the step's field order (the schema's, and the "two actions" message's).
macro_rules! actions {
    ($($key:ident: $Variant:ident,)+) => {
        $(pub mod $key;)+

        /// What a step does: one variant per action, holding its compiled
        /// form from the action's module.
        #[derive(Clone, Debug)]
        pub enum Action {
            $(
                #[doc = concat!("`", stringify!($key), "`: see [`", stringify!($key), "`].")]
                $Variant($key::$Variant),
            )+
        }

        /// Which action, without its settings.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ActionKind {
            $(
                #[doc = concat!("`", stringify!($key), "`.")]
                $Variant,
            )+
        }

        impl ActionKind {
            /// Every action, in the order of a step's fields.
            pub const ALL: &'static [ActionKind] = &[$(ActionKind::$Variant,)+];

            /// Its name in flow files (the step's key), in the timeline and in metrics.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ActionKind::$Variant => stringify!($key),)+
                }
            }

            /// The outcome fields a step with this action may have.
            pub const fn outcomes(self) -> &'static [OutcomeField] {
                match self {
                    $(ActionKind::$Variant => <$key::$Variant as ActionType>::OUTCOMES,)+
                }
            }

            /// How diagrams draw it.
            pub const fn shape(self) -> Shape {
                match self {
                    $(ActionKind::$Variant => <$key::$Variant as ActionType>::SHAPE,)+
                }
            }

            /// Whether it acts on a call.
            pub const fn needs_call(self) -> bool {
                match self {
                    $(ActionKind::$Variant => <$key::$Variant as ActionType>::NEEDS_CALL,)+
                }
            }

            /// The phases of the main call it can start in.
            pub const fn runs_in(self) -> &'static [CallPhase] {
                match self {
                    $(ActionKind::$Variant => <$key::$Variant as ActionType>::RUNS_IN,)+
                }
            }

            /// What the caller lives through when it fails unrouted.
            pub const fn unrouted_failure(self) -> Option<&'static str> {
                match self {
                    $(ActionKind::$Variant => <$key::$Variant as ActionType>::UNROUTED_FAILURE,)+
                }
            }

            /// Whether `name: {}` is complete.
            pub const fn bare(self) -> bool {
                match self {
                    $(ActionKind::$Variant => <$key::$Variant as ActionType>::BARE,)+
                }
            }

            /// What it does, in one line (the schema's description).
            pub const fn doc(self) -> &'static str {
                match self {
                    $(ActionKind::$Variant => <$key::$Variant as ActionType>::DOC,)+
                }
            }
        }

        impl Action {
            /// Which action this is.
            pub const fn action_kind(&self) -> ActionKind {
                match self {
                    $(Action::$Variant(_) => ActionKind::$Variant,)+
                }
            }

            /// The steps it chooses between itself (menu keys, switch cases).
            pub fn branches(&self) -> Vec<Branch> {
                match self {
                    $(Action::$Variant(a) => a.branches(),)+
                }
            }

            /// The phase of the main call after it ended through `outcome`
            /// (`None`: a branch), having started in `phase`.
            pub fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
                match self {
                    $(Action::$Variant(a) => a.phase_after(phase, outcome),)+
                }
            }
        }

        /// One step: exactly one action, then the outcomes that lead on.
        #[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct StepDef {
            /// What the step is for (shown in diagrams).
            #[serde(default)]
            pub description: Option<String>,
            /// The run's outcome in the business's words (`confirmed`,
            /// `vip_served`): once this step runs, the run ends with it,
            /// unless a later step names another. Letters, digits and `_`.
            #[serde(default)]
            pub end: Option<Text>,
            $(
                #[doc = concat!("The `", stringify!($key), "` action: see [`", stringify!($key), "`].")]
                #[schemars(description = <$key::$Variant as ActionType>::DOC)]
                #[serde(default)]
                pub $key: Option<Spanned<<$key::$Variant as ActionType>::Model>>,
            )+
            /// The step to go to when the action succeeds. Without it, the run ends there.
            #[serde(default)]
            pub next: Option<Text>,
            /// The step to go to when the action fails.
            #[serde(default)]
            pub on_failure: Option<Text>,
            /// The step to go to when the action times out.
            #[serde(default)]
            pub on_timeout: Option<Text>,
            /// The step to go to when the caller presses a key the menu does not offer.
            #[serde(default)]
            pub on_invalid: Option<Text>,
        }

        impl StepDef {
            /// The actions written in this step, in field order, each with
            /// the span of its value. A valid step has exactly one.
            pub fn actions(&self) -> Vec<(ActionKind, Span)> {
                let mut out = Vec::new();
                $(
                    if let Some(a) = &self.$key {
                        out.push((ActionKind::$Variant, a.span));
                    }
                )+
                out
            }

            /// The steps its actions name besides the outcome fields (menu
            /// choices, switch cases), as written.
            pub fn branch_names(&self) -> Vec<&Text> {
                let mut out = Vec::new();
                $(
                    if let Some(a) = &self.$key {
                        out.extend(<$key::$Variant as CheckAction>::branch_names(&a.value));
                    }
                )+
                out
            }

            /// The variables its actions give a value, as written.
            pub fn assigned_names(&self) -> Vec<String> {
                let mut out = Vec::new();
                $(
                    if let Some(a) = &self.$key {
                        out.extend(<$key::$Variant as CheckAction>::assigned_names(&a.value));
                    }
                )+
                out
            }

            /// The variables its actions give a value, with their known types.
            pub(in crate::flow) fn assigned_types(&self) -> Vec<(String, crate::flow::roots::Ty)> {
                let mut out = Vec::new();
                $(
                    if let Some(a) = &self.$key {
                        out.extend(<$key::$Variant as CheckAction>::assigned_types(&a.value));
                    }
                )+
                out
            }

            /// Checks and compiles the action of kind `kind` (one of
            /// [`actions`](Self::actions)).
            pub(in crate::flow) fn check_action(
                &self,
                kind: ActionKind,
                cx: &mut Cx,
                r: &Resolver<'_>,
                cals: &[&str],
            ) -> Option<Action> {
                match kind {
                    $(
                        ActionKind::$Variant => {
                            let a = self.$key.as_ref()?;
                            <$key::$Variant as CheckAction>::check(cx, a, r, cals).map(Action::$Variant)
                        }
                    )+
                }
            }
        }
    };
}

actions! {
    answer: Answer,
    reject: Reject,
    redirect: Redirect,
    transfer: Transfer,
    consultative_transfer: ConsultativeTransfer,
    join_meeting: JoinMeeting,
    call: Call,
    play: Play,
    menu: Menu,
    switch: Switch,
    set: Set,
    log: Log,
    hangup: Hangup,
    wait: Wait,
    collect: Collect,
    record: Record,
    invite: Invite,
    fetch: Fetch,
    ring_group: RingGroup,
}

impl Action {
    /// The action's name in flow files.
    pub const fn kind(&self) -> &'static str {
        self.action_kind().name()
    }

    /// Whether a run of an `api` flow goes on when its call ends during
    /// this step: the step needs no call (a `wait` for a time, `switch`,
    /// `set`, `log`); [`CallPhase::Ended`] lets only these (and `call`,
    /// `join_meeting`, `hangup`) follow a call that ended.
    pub fn outlives_call(&self) -> bool {
        match self {
            Action::Set(_) | Action::Switch(_) | Action::Log(_) => true,
            Action::Wait(w) => w.state.is_none(),
            _ => false,
        }
    }
}

impl ActionKind {
    /// The action named `name` in flow files, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ActionKind::ALL {
            assert_eq!(ActionKind::from_name(kind.name()), Some(*kind));
        }
        assert_eq!(ActionKind::from_name("no_such_action"), None);
    }
}
