//! One call a session owns ([`Leg`]): its id, its state as far as Graph
//! said, its parties, a transfer in progress.
//!
//! Plain data; the interpreter moves its state forward.

use serde::{Deserialize, Serialize};

use crate::graph::wire::{CallDirection, CallState, ResultInfo};

use super::event::Party;

/// What a call is to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegRole {
    /// The call the flow handles: the incoming call, or the first call an
    /// `api` flow places or the meeting it joins.
    Main,
    /// The call to a consultative transfer's target.
    Consultation,
    /// Another call the flow placed (`call`, `join_meeting` besides a main call).
    Outgoing,
}

/// Where a transfer on a call stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferProgress {
    /// Whether it replaces a consultation call.
    pub consultative: bool,
    /// Whether Graph reported `transferring`.
    pub transferring: bool,
    /// Whether Graph reported `transferAccepted`.
    pub accepted: bool,
    /// The `clientContext` sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
}

/// One call the session owns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    /// The session's name for it: `main`, `consultation`, `outgoing`, with a
    /// number when there are several.
    pub tag: String,
    /// What it is to the session.
    pub role: LegRole,
    /// Graph's id, once known (a call the bot places has none until `201`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The last state accepted (states only move forward).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CallState>,
    /// The last `resultInfo` received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultInfo>,
    /// The termination reason, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_reason: Option<String>,
    /// Incoming or outgoing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<CallDirection>,
    /// The caller.
    #[serde(default)]
    pub from: Party,
    /// Who was called.
    #[serde(default)]
    pub to: Party,
    /// Whether `subscribeToTone` was sent.
    #[serde(default)]
    pub tones_subscribed: bool,
    /// The highest tone sequence id seen (to drop repeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tone: Option<i64>,
    /// Tone sequence ids below `last_tone` not received yet (Graph's
    /// notifications may overtake each other): such a key is late, not a
    /// repeat. At most [`MISSED_TONES`], the oldest forgotten first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed_tones: Vec<i64>,
    /// The finish key of a `collect` that ended on its most digits: the
    /// very next key, if it is this one, only ends what was already whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_full: Option<char>,
    /// A transfer in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferProgress>,
    /// Whether the bot sent `DELETE` for it.
    #[serde(default)]
    pub hangup_sent: bool,
    /// Whether the session gave up on it before Graph named it: hang up once named.
    #[serde(default)]
    pub abandoned: bool,
    /// Whether it is a meeting the bot joined.
    #[serde(default)]
    pub meeting: bool,
    /// Participants in the last roster received.
    #[serde(default)]
    pub roster: u32,
    /// Whether Graph accepted the bot's answer (or redirect) of this call:
    /// hanging it up is then a `DELETE`, even before Graph says `established`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub answered: bool,
}

/// How many missing tone sequence ids a leg remembers.
pub const MISSED_TONES: usize = 16;

/// Where a key press falls among those of its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToneOrder {
    /// After every key seen; `next` when it is the one just after the last.
    Fresh {
        /// Whether no id was skipped.
        next: bool,
    },
    /// Below the highest id seen, and not seen before: it was overtaken.
    Late,
    /// Seen before (Graph sent it again).
    Repeat,
}

impl Leg {
    /// Where the key with sequence id `seq` falls, without recording it.
    pub fn tone_order(&self, seq: i64) -> ToneOrder {
        match self.last_tone {
            None => ToneOrder::Fresh { next: true },
            Some(last) if seq > last => ToneOrder::Fresh {
                next: seq == last + 1,
            },
            Some(_) if self.missed_tones.contains(&seq) => ToneOrder::Late,
            Some(_) => ToneOrder::Repeat,
        }
    }

    /// Records the key with sequence id `seq`; where it fell.
    pub fn see_tone(&mut self, seq: i64) -> ToneOrder {
        let order = self.tone_order(seq);
        match order {
            ToneOrder::Fresh { .. } => {
                if let Some(last) = self.last_tone {
                    // A burst of skipped ids is remembered only near `seq`.
                    let from = (last + 1).max(seq - MISSED_TONES as i64);
                    self.missed_tones.extend(from..seq);
                    let over = self.missed_tones.len().saturating_sub(MISSED_TONES);
                    self.missed_tones.drain(..over);
                }
                self.last_tone = Some(seq);
            }
            ToneOrder::Late => self.missed_tones.retain(|&m| m != seq),
            ToneOrder::Repeat => {}
        }
        order
    }

    /// A leg with only a tag and a role.
    pub fn new(tag: impl Into<String>, role: LegRole) -> Self {
        Leg {
            tag: tag.into(),
            role,
            call_id: None,
            state: None,
            result: None,
            termination_reason: None,
            direction: None,
            from: Party::default(),
            to: Party::default(),
            tones_subscribed: false,
            last_tone: None,
            missed_tones: Vec::new(),
            after_full: None,
            transfer: None,
            hangup_sent: false,
            abandoned: false,
            meeting: false,
            roster: 0,
            answered: false,
        }
    }

    /// Whether Graph reported it terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == Some(CallState::Terminated)
    }

    /// Whether a request may still be sent for it: it has an id, is not
    /// terminated and the bot has not hung it up.
    pub fn is_live(&self) -> bool {
        self.call_id.is_some() && !self.is_terminated() && !self.hangup_sent
    }
}
