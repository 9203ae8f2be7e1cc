//! `ring_group`: the caller on hold while the bot rings its targets.
//!
//! The hold music is a `playPrompt` played again each time its operation
//! completes (Graph v1.0's `playPrompt` has no `loop`); an announcement,
//! once due, is played between two plays of it. Each target is rung by a
//! consultation call of its own (`POST /communications/calls`): one at a
//! time (`serial`, cycling through the list), the same starting from the
//! group's next turn (`round_robin`), or all at once (`simultaneous`),
//! each round ringing `ring_timeout`. The first call
//! answered wins: the music stops (`cancelMediaProcessing` on the caller's
//! call), the other attempts are hung up, and the caller is transferred to
//! the agent with `replacesCallId` (as `consultative_transfer` does; from
//! there on the step waits as one does). `max_wait` is the step's
//! `on_timeout`. The caller hanging up while held hangs up every attempt
//! (the main call's end hangs up every other call of the session).
//!
//! A `round_robin` group's turn is an outside input, as a `fetch`'s answer
//! is: the engine asks the runtime for it ([`Command::TakeTurn`], naming
//! the group as [`group`] does) and hears the answer as [`Event::Turn`](super::Event::Turn);
//! the runtime takes it from a counter every call shares (the session
//! store's). The music plays meanwhile; nothing rings until the turn comes,
//! or [`TURN_WAIT`] passes without it (then the first target starts). A
//! turn asked before a restart is asked again after it (a turn may then be
//! skipped: the counter may have moved for the lost answer).
//!
//! One timer serves the step: it is set to the earliest of the give-up
//! time, the end of the round (or of the wait for the turn) and the next
//! announcement, and what is due is worked out when it fires.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::flow::Action;
use crate::flow::actions::ring_group::{RingGroup, Strategy};
use crate::flow::compiled::Target;

use super::command::{Command, CommandId, RequestKind};
use super::run::{Progress, Run, Transition};
use super::scope;
use super::session::{LegRole, PendingRequest, RingState, Waiting};
use super::timeline::Entry;

/// How long a `round_robin` group waits for its turn before it rings from
/// the first target.
pub const TURN_WAIT: Duration = Duration::from_secs(5);

/// How many times in a row a failed play of the hold music is played again
/// before the caller holds in silence (a prompt that cannot play fails at
/// once, again and again).
pub const HOLD_RETRIES: u32 = 3;

/// The name of the turn counter of the ring group of step `step` in flow
/// `flow`: `FLOW/STEP`. Edits of the flow keep it (and its count).
pub fn group(flow: &str, step: &str) -> String {
    format!("{flow}/{step}")
}

/// A target in a few words, for the timeline: its display name as written,
/// else its number or user id.
fn target_words(t: &Target) -> String {
    match t {
        Target::User {
            display_name: Some(n),
            ..
        }
        | Target::Phone {
            display_name: Some(n),
            ..
        } => n.source.clone(),
        Target::User { id, .. } => id.source.clone(),
        Target::Phone { number, .. } => number.source.clone(),
    }
}

impl<'a> Run<'a> {
    /// Starts a `ring_group`: the hold music, then the first round.
    pub(crate) fn ring_group(&mut self, g: &RingGroup) -> Progress {
        let main = match self.answered_main("hold the caller for a ring group") {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        let hold = match self.play_on(main, &g.hold_prompt) {
            Ok(c) => c,
            Err(e) => return Progress::Then(Transition::Failure(e)),
        };
        let mut state = RingState {
            ringing: Vec::new(),
            next: 0,
            give_up_at: self.now + chrono_of(g.max_wait),
            round_ends_at: self.now,
            announce_at: g
                .announcement
                .as_ref()
                .map(|a| self.now + chrono_of(a.every)),
            announce_due: false,
            hold,
            asking: None,
            hold_failures: 0,
        };
        if g.strategy == Strategy::RoundRobin {
            state.asking = Some(self.take_turn());
            state.round_ends_at = self.now + chrono_of(TURN_WAIT);
            self.ring_wait(state);
            return Progress::Wait;
        }
        if let Err(e) = self.ring_round(g, &mut state) {
            self.s.waiting = Waiting::RingGroup(Box::new(state));
            self.ring_stop();
            return Progress::Then(Transition::Failure(e));
        }
        self.ring_wait(state);
        Progress::Wait
    }

    /// The current step's ring group, if it is one.
    fn ring_step(&self) -> Option<&'a RingGroup> {
        match &self.current()?.action {
            Action::RingGroup(g) => Some(g),
            _ => None,
        }
    }

    /// Rings the next round: one target (serial) or all (simultaneous).
    fn ring_round(&mut self, g: &RingGroup, state: &mut RingState) -> Result<(), String> {
        let which: Vec<usize> = match g.strategy {
            Strategy::Serial | Strategy::RoundRobin => {
                let n = state.next % g.targets.len();
                state.next = (n + 1) % g.targets.len();
                vec![n]
            }
            Strategy::Simultaneous => (0..g.targets.len()).collect(),
        };
        for t in which {
            let input = scope::Inputs::new(self.flow, self.s);
            let target = scope::invitation(self.flow, &g.targets[t], &input, self.now)?;
            let body = self.new_call_body(vec![target]);
            let leg = self.create_call(LegRole::Consultation, body, false);
            state.ringing.push((leg, t));
        }
        state.round_ends_at = self.now + chrono_of(g.ring_timeout);
        Ok(())
    }

    /// Waits in `state`, the timer at the earliest thing due.
    fn ring_wait(&mut self, state: RingState) {
        let mut due = state.give_up_at.min(state.round_ends_at);
        if let Some(a) = state.announce_at {
            due = due.min(a);
        }
        self.s.waiting = Waiting::RingGroup(Box::new(state));
        self.set_timer(until(self.now, due));
    }

    /// Hangs up every attempt still ringing and stops the hold music.
    pub(crate) fn ring_stop(&mut self) {
        let Waiting::RingGroup(state) = self.s.waiting.clone() else {
            return;
        };
        for (leg, _) in &state.ringing {
            self.hang_up(*leg);
        }
        self.cancel_media();
    }

    /// The step's timer fired: give up, start the next round, or mark the
    /// announcement due.
    pub(crate) fn ring_timer(&mut self) -> Option<Transition> {
        let g = self.ring_step()?;
        let Waiting::RingGroup(mut state) = self.s.waiting.clone() else {
            return None;
        };
        if self.now >= state.give_up_at {
            self.ring_stop();
            return Some(Transition::Timeout);
        }
        if let (Some(at), Some(a)) = (state.announce_at, &g.announcement)
            && self.now >= at
        {
            state.announce_due = true;
            state.announce_at = Some(at + chrono_of(a.every));
        }
        if self.now >= state.round_ends_at {
            if state.asking.take().is_some() {
                self.note(format!(
                    "no turn came within {}s: ringing from the first target",
                    TURN_WAIT.as_secs()
                ));
                state.next = 0;
            }
            for (leg, _) in std::mem::take(&mut state.ringing) {
                self.hang_up(leg);
            }
            if let Err(e) = self.ring_round(g, &mut state) {
                self.s.waiting = Waiting::RingGroup(state);
                self.ring_stop();
                return Some(Transition::Failure(e));
            }
        }
        self.ring_wait(*state);
        None
    }

    /// A prompt played to the caller ended: the announcement if due, else
    /// the hold music again.
    pub(crate) fn ring_prompt_done(
        &mut self,
        context: Option<&str>,
        ok: bool,
    ) -> Option<Transition> {
        let g = self.ring_step()?;
        let Waiting::RingGroup(mut state) = self.s.waiting.clone() else {
            return None;
        };
        if context != Some(state.hold.as_str()) {
            return None;
        }
        if ok {
            state.hold_failures = 0;
        } else {
            // Played again, a prompt that cannot play fails as fast: a few
            // times in a row, then the caller holds in silence.
            state.hold_failures += 1;
            if state.hold_failures > HOLD_RETRIES {
                self.note(format!(
                    "the hold music failed {} times in a row; the caller holds in silence while the targets ring",
                    state.hold_failures
                ));
                self.s.waiting = Waiting::RingGroup(state);
                return None;
            }
            self.note("the hold music failed; it plays again");
        }
        let main = self.s.main_index()?;
        let prompt = match (&g.announcement, state.announce_due) {
            (Some(a), true) => {
                state.announce_due = false;
                &a.prompt
            }
            _ => &g.hold_prompt,
        };
        match self.play_on(main, prompt) {
            Ok(c) => state.hold = c,
            Err(e) => {
                self.ring_stop();
                return Some(Transition::Failure(e));
            }
        }
        self.s.waiting = Waiting::RingGroup(state);
        None
    }

    /// Whether leg `i` is an attempt of the ring group the step waits in.
    pub(crate) fn ring_attempt(&self, i: usize) -> bool {
        matches!(&self.s.waiting, Waiting::RingGroup(s) if s.ringing.iter().any(|(l, _)| *l == i))
    }

    /// Attempt `leg` was answered: the music stops, the other attempts are
    /// hung up, the caller is transferred to the agent.
    pub(crate) fn ring_answered(&mut self, leg: usize) -> Option<Transition> {
        let g = self.ring_step()?;
        let Waiting::RingGroup(state) = self.s.waiting.clone() else {
            return None;
        };
        let &(_, target) = state.ringing.iter().find(|(l, _)| *l == leg)?;
        self.cancel_timer();
        for (other, _) in &state.ringing {
            if *other != leg {
                self.hang_up(*other);
            }
        }
        self.cancel_media();
        self.transfer_replacing(leg, &g.targets[target])
    }

    /// Attempt `leg` ended unanswered (busy, declined): it stops ringing;
    /// the next round starts when this one's ring timeout runs out.
    pub(crate) fn ring_attempt_ended(&mut self, leg: usize) {
        if let Waiting::RingGroup(state) = &mut self.s.waiting {
            state.ringing.retain(|(l, _)| *l != leg);
        }
        let tag = self
            .s
            .legs
            .get(leg)
            .map_or("?", |l| l.tag.as_str())
            .to_owned();
        self.note(format!("{tag} was not answered"));
    }

    /// Asks the runtime for the current step's next turn; the command.
    fn take_turn(&mut self) -> CommandId {
        let step = self.step_label().unwrap_or_default();
        let id = self.s.next_command_id();
        let cmd = Command::TakeTurn {
            id,
            group: group(&self.s.flow, &step),
        };
        if let Some(line) = cmd.line("store") {
            self.entry(Entry::Request(line));
        }
        self.s.pending.push(PendingRequest {
            command: id,
            kind: RequestKind::TakeTurn,
            leg: 0,
            client_context: None,
            operation_id: None,
            accepted: false,
        });
        self.out.push(cmd);
        id
    }

    /// The runtime gave turn `turn` for `command`: the first round starts
    /// at target `turn mod n`.
    pub(crate) fn ring_turn(&mut self, command: CommandId, turn: u64) -> Option<Transition> {
        let g = self.ring_step()?;
        let Waiting::RingGroup(mut state) = self.s.waiting.clone() else {
            return None;
        };
        if state.asking != Some(command) {
            self.note(format!("turn {turn} came after the ringing began: unused"));
            return None;
        }
        state.asking = None;
        let n = g.targets.len();
        let first = usize::try_from(turn % n as u64).unwrap_or(0);
        state.next = first;
        self.note(format!(
            "turn {turn}: ringing from target {} of {n}, {}",
            first + 1,
            target_words(&g.targets[first])
        ));
        self.ring_begin(g, state)
    }

    /// No turn for `command`: asked again when the request may not have
    /// been made (a restart), else the ringing starts at the first target.
    pub(crate) fn ring_turn_failed(
        &mut self,
        command: CommandId,
        code: &str,
        why: &str,
    ) -> Option<Transition> {
        let g = self.ring_step()?;
        let Waiting::RingGroup(mut state) = self.s.waiting.clone() else {
            return None;
        };
        if state.asking != Some(command) {
            return None;
        }
        if code == "MaybeSent" {
            self.note("the turn asked before the restart is asked again (a turn may be skipped)");
            state.asking = Some(self.take_turn());
            state.round_ends_at = self.now + chrono_of(TURN_WAIT);
            self.ring_wait(*state);
            return None;
        }
        state.asking = None;
        state.next = 0;
        self.note(format!("no turn ({why}): ringing from the first target"));
        self.ring_begin(g, state)
    }

    /// The first round of a group that waited for its turn.
    fn ring_begin(&mut self, g: &RingGroup, mut state: Box<RingState>) -> Option<Transition> {
        if let Err(e) = self.ring_round(g, &mut state) {
            self.s.waiting = Waiting::RingGroup(state);
            self.ring_stop();
            return Some(Transition::Failure(e));
        }
        self.ring_wait(*state);
        None
    }

    /// After a restart: the caller heard nothing while the server was
    /// down, so the hold music starts again (the play in progress, if any,
    /// is no longer awaited).
    pub(crate) fn ring_resumed(&mut self) -> Option<Transition> {
        let g = self.ring_step()?;
        let Waiting::RingGroup(mut state) = self.s.waiting.clone() else {
            return None;
        };
        let main = self.s.main_index()?;
        self.note("the hold music plays again");
        state.hold_failures = 0;
        match self.play_on(main, &g.hold_prompt) {
            Ok(c) => state.hold = c,
            Err(e) => {
                self.ring_stop();
                return Some(Transition::Failure(e));
            }
        }
        self.s.waiting = Waiting::RingGroup(state);
        None
    }

    /// Graph refused a request of the ring group (a call, the music):
    /// everything stops and the step fails.
    pub(crate) fn ring_failed(&mut self, why: String) -> Option<Transition> {
        self.ring_stop();
        Some(Transition::Failure(why))
    }
}

fn chrono_of(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
}

fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> std::time::Duration {
    (at - now).to_std().unwrap_or_default()
}
