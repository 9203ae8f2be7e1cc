//! `ring_group`: the caller on hold while the bot rings its targets.
//!
//! The hold music is a `playPrompt` played again each time its operation
//! completes (Graph v1.0's `playPrompt` has no `loop`); an announcement,
//! once due, is played between two plays of it. Each target is rung by a
//! consultation call of its own (`POST /communications/calls`): one at a
//! time (`serial`, cycling through the list) or all at once
//! (`simultaneous`), each round ringing `ring_timeout`. The first call
//! answered wins: the music stops (`cancelMediaProcessing` on the caller's
//! call), the other attempts are hung up, and the caller is transferred to
//! the agent with `replacesCallId` (as `consultative_transfer` does; from
//! there on the step waits as one does). `max_wait` is the step's
//! `on_timeout`. The caller hanging up while held hangs up every attempt
//! (the main call's end hangs up every other call of the session).
//!
//! One timer serves the step: it is set to the earliest of the give-up
//! time, the end of the round and the next announcement, and what is due
//! is worked out when it fires.

use chrono::{DateTime, Utc};

use crate::flow::Action;
use crate::flow::actions::ring_group::{RingGroup, Strategy};

use super::run::{Progress, Run, Transition};
use super::scope;
use super::session::{LegRole, RingState, Waiting};

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
        };
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
            Strategy::Serial => {
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
        if !ok {
            // Played again, it might fail as fast, for as long as the caller holds.
            self.note("the hold music failed; the caller holds in silence while the targets ring");
            return None;
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
