//! Starting each action of the flow language.
//!
//! [`Run::start_action`] turns the current step's action into Graph
//! requests (with their exact wire bodies), sets what the step waits for and
//! its timer, or finishes at once (`switch`, `set`, `log`). How a waiting
//! step reacts to events is in [`reactions`](super::reactions). Nothing here
//! sends anything: requests go out as commands.

use std::time::Duration;

use crate::flow::actions::collect::Collect;
use crate::flow::actions::menu::Menu;
use crate::flow::actions::record::Record;
use crate::flow::actions::reject;
use crate::flow::actions::switch::{self, Switch};
use crate::flow::actions::transfer::Transfer;
use crate::flow::{Action, Meeting, Step, Target, Template};
use crate::graph::wire::{
    AnswerRequest, Call, CallState, ChatInfo, EndpointType, Identity, IdentitySet,
    InviteParticipantsRequest, MediaConfig, MediaInfo, MediaPrompt, MeetingInfo, ParticipantInfo,
    PlayPromptRequest, RecordResponseRequest, RedirectRequest, RejectReason, RejectRequest,
    SubscribeToToneRequest, TransferRequest,
};

use super::run::{Body, Progress, Run, Transition};
use super::scope;
use super::session::{LegRole, Outcome, TransferProgress, Waiting};
use super::timeline::Entry;

/// How long a prompt may take to play before the step fails.
pub const PROMPT_GUARD: Duration = Duration::from_secs(300);

/// How long downloading and delivering a recording may take, retries included.
pub const SAVE_RECORDING_GUARD: Duration = Duration::from_secs(120);

/// How long a consultative transfer may take once the target answered.
pub const CONSULT_TRANSFER_GUARD: Duration = Duration::from_secs(60);

impl Run<'_> {
    /// Starts the action of `step`, which is the current step.
    pub(crate) fn start_action(&mut self, step: &Step) -> Progress {
        match &step.action {
            Action::Answer(a) => self.answer(&a.prefetch),
            Action::Reject(r) => self.reject(r.reason),
            Action::Redirect(r) => self.redirect(&r.targets, r.timeout),
            Action::Transfer(t) => self.transfer(t),
            Action::ConsultativeTransfer(c) => self.consult(&c.to, c.timeout),
            Action::JoinMeeting(j) => self.join(&j.meeting, j.tenant.as_ref(), j.timeout),
            Action::Call(c) => {
                self.call(&c.targets, c.subject.as_ref(), c.from.as_ref(), c.timeout)
            }
            Action::Play(p) => self.play(&p.prompt),
            Action::Menu(m) => {
                self.s.digits.clear();
                self.menu_prompt(step, &m.prompt, None, 0)
            }
            Action::Collect(c) => {
                self.s.digits.clear();
                self.s.secrets.digits.clear();
                self.s.key_ids.clear();
                self.collect_prompt(step, c, false, 0)
            }
            Action::Record(r) => self.record(step, r),
            Action::Invite(v) => self.invite(v),
            Action::Fetch(f) => self.fetch(f),
            Action::RingGroup(g) => self.ring_group(g),
            Action::Switch(s) => self.switch(step, s),
            Action::Set(s) => match self.assign(&s.assignments) {
                Ok(()) => Progress::Then(Transition::Next),
                Err(e) => Progress::Then(Transition::Failure(e)),
            },
            Action::Log(l) => {
                let input = scope::Inputs::masked(self.flow, self.s);
                match scope::render(self.flow, &l.text, &input, self.now) {
                    Ok(text) => {
                        self.entry(Entry::Log(text));
                        Progress::Then(Transition::Next)
                    }
                    Err(e) => Progress::Then(Transition::Failure(e.to_string())),
                }
            }
            Action::Hangup(_) => {
                let rejected = self.hang_up_all();
                let outcome = if rejected {
                    Outcome::Rejected
                } else {
                    Outcome::HungUp
                };
                self.end(outcome, None);
                Progress::Ended
            }
            Action::Wait(w) => match &w.state {
                Some(name) => {
                    let state = CallState::from_wire(name);
                    if self.s.main().and_then(|m| m.state.as_ref()) == Some(&state) {
                        return Progress::Then(Transition::Next);
                    }
                    self.s.waiting = Waiting::State { state };
                    self.set_timer(w.timeout);
                    Progress::Wait
                }
                None => {
                    self.s.waiting = Waiting::Timer;
                    self.set_timer(w.timeout);
                    Progress::Wait
                }
            },
        }
    }

    /// Goes to the first case of `switch` that holds.
    fn switch(&mut self, step: &Step, switch: &Switch) -> Progress {
        let input = scope::Inputs::new(self.flow, self.s);
        for (when, goto) in &switch.cases {
            let Some(expr) = when else {
                return Progress::Then(Transition::Goto(*goto, switch::via(None)));
            };
            match scope::eval_bool(self.flow, expr, input.get(), self.now) {
                Ok(true) => {
                    return Progress::Then(Transition::Goto(*goto, switch::via(Some(expr))));
                }
                Ok(false) => {}
                Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
            }
        }
        Progress::Then(Transition::Failure(format!(
            "no case of switch `{}` holds",
            step.name
        )))
    }

    /// The main call, if a request may be sent on it, else why not.
    fn live_main(&self, what: &str) -> Result<usize, Transition> {
        match self.s.main_index() {
            Some(i) if self.s.legs[i].is_live() => Ok(i),
            Some(i) => Err(Transition::Failure(format!(
                "cannot {what}: the call is {}",
                self.s.legs[i]
                    .state
                    .as_ref()
                    .map_or("not established", |s| s.as_str())
            ))),
            None => Err(Transition::Failure(format!(
                "cannot {what}: there is no call"
            ))),
        }
    }

    /// The main call, live and answered (established, on hold or mid-transfer).
    pub(super) fn answered_main(&self, what: &str) -> Result<usize, Transition> {
        let i = self.live_main(what)?;
        let rank = self.s.legs[i].state.as_ref().and_then(CallState::rank);
        if rank.is_some_and(|r| r >= 3) {
            Ok(i)
        } else {
            Err(Transition::Failure(format!(
                "cannot {what}: the call is {}, not established",
                self.s.legs[i]
                    .state
                    .as_ref()
                    .map_or("unknown", |s| s.as_str())
            )))
        }
    }

    fn answer(&mut self, prefetch: &[Template]) -> Progress {
        let i = match self.live_main("answer") {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        match self.s.legs[i].state {
            Some(CallState::Incoming) => {}
            Some(CallState::Establishing | CallState::Ringing) => {
                self.s.waiting = Waiting::Established { leg: i };
                return Progress::Wait;
            }
            Some(CallState::Established | CallState::Hold) => {
                return Progress::Then(Transition::Next);
            }
            ref other => {
                return Progress::Then(Transition::Failure(format!(
                    "cannot answer: the call is {}",
                    other.as_ref().map_or("unknown", |s| s.as_str())
                )));
            }
        }
        let input = scope::Inputs::new(self.flow, self.s);
        let mut media = Vec::new();
        for p in prefetch {
            match scope::render(self.flow, p, &input, self.now) {
                Ok(uri) => media.push(MediaInfo::new(uri)),
                Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
            }
        }
        let config = if media.is_empty() {
            MediaConfig::service_hosted()
        } else {
            MediaConfig::service_hosted_with_prefetch(media)
        };
        let body = AnswerRequest::new(self.s.bot.callback_uri.clone(), config);
        self.send(i, Body::Answer(body), None);
        self.s.waiting = Waiting::Established { leg: i };
        Progress::Wait
    }

    fn reject(&mut self, reason: reject::RejectReason) -> Progress {
        let i = match self.live_main("reject") {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        if self.s.legs[i].state != Some(CallState::Incoming) {
            return Progress::Then(Transition::Failure(
                "cannot reject: the call was already answered".into(),
            ));
        }
        let reason = match reason {
            reject::RejectReason::None => RejectReason::None,
            reject::RejectReason::Busy => RejectReason::Busy,
            reject::RejectReason::Forbidden => RejectReason::Forbidden,
        };
        self.send(i, Body::Reject(RejectRequest::new(reason)), None);
        self.end(Outcome::Rejected, None);
        Progress::Ended
    }

    fn redirect(&mut self, targets: &[Target], timeout: Duration) -> Progress {
        let i = match self.live_main("redirect") {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        if self.s.legs[i].state != Some(CallState::Incoming) {
            return Progress::Then(Transition::Failure(
                "cannot redirect: the call was already answered".into(),
            ));
        }
        let input = scope::Inputs::new(self.flow, self.s);
        let mut list = Vec::new();
        for t in targets {
            match scope::invitation(self.flow, t, &input, self.now) {
                Ok(t) => list.push(t),
                Err(e) => return Progress::Then(Transition::Failure(e)),
            }
        }
        let seconds = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
        let body = RedirectRequest::new(list).with_timeout(seconds);
        if let Err(e) = body.validate() {
            return Progress::Then(Transition::Failure(e.to_string()));
        }
        match self.send(i, Body::Redirect(body), None) {
            Some(command) => {
                self.s.waiting = Waiting::Redirect { command };
                Progress::Wait
            }
            None => Progress::Then(Transition::Failure("the redirect could not be sent".into())),
        }
    }

    fn transfer(&mut self, t: &Transfer) -> Progress {
        let Transfer {
            to,
            transferee,
            client_context,
            timeout,
        } = t;
        let i = match self.answered_main("transfer") {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        let input = scope::Inputs::new(self.flow, self.s);
        let target = match scope::invitation(self.flow, to, &input, self.now) {
            Ok(t) => t.with_endpoint_type(EndpointType::Default),
            Err(e) => return Progress::Then(Transition::Failure(e)),
        };
        let mut body = TransferRequest::new(target);
        if let Err(e) = body.validate() {
            return Progress::Then(Transition::Failure(e.to_string()));
        }
        if let Some(t) = transferee {
            let id = match scope::render(self.flow, &t.participant_id, &input, self.now) {
                Ok(id) => id,
                Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
            };
            let identity = match &t.identity {
                Some(who) => match scope::identity(self.flow, who, &input, self.now) {
                    Ok(who) => who,
                    Err(e) => return Progress::Then(Transition::Failure(e)),
                },
                None => IdentitySet::default(),
            };
            body = body.with_transferee(ParticipantInfo::new(identity).with_participant_id(id));
        }
        if let Some(c) = client_context {
            match scope::render(self.flow, c, &input, self.now) {
                Ok(c) => body = body.with_client_context(c),
                Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
            }
        }
        let context = body.client_context.clone();
        if self.send(i, Body::Transfer(Box::new(body)), None).is_none() {
            return Progress::Then(Transition::Failure("the transfer could not be sent".into()));
        }
        self.s.legs[i].transfer = Some(TransferProgress {
            consultative: false,
            client_context: context,
            ..TransferProgress::default()
        });
        self.s.waiting = Waiting::Transfer { leg: i };
        self.set_timer(*timeout);
        Progress::Wait
    }

    pub(super) fn new_call_body(
        &self,
        targets: Vec<crate::graph::wire::InvitationParticipantInfo>,
    ) -> Call {
        let mut body = Call::outgoing(
            self.s.bot.callback_uri.clone(),
            targets,
            MediaConfig::service_hosted(),
        );
        body.source = scope::bot_source(&self.s.bot);
        body.tenant_id = self.s.bot.tenant_id.clone();
        body
    }

    fn consult(&mut self, to: &Target, timeout: Duration) -> Progress {
        if let Err(t) = self.answered_main("consult a transfer target") {
            return Progress::Then(t);
        }
        let input = scope::Inputs::new(self.flow, self.s);
        let target = match scope::invitation(self.flow, to, &input, self.now) {
            Ok(t) => t,
            Err(e) => return Progress::Then(Transition::Failure(e)),
        };
        let body = self.new_call_body(vec![target]);
        let consult = self.create_call(LegRole::Consultation, body, false);
        self.s.waiting = Waiting::ConsultAnswer { consult };
        self.set_timer(timeout);
        Progress::Wait
    }

    /// The consultation call was answered: announce, or transfer at once.
    pub(crate) fn consult_answered(&mut self, consult: usize) -> Option<Transition> {
        let step = self.current()?;
        let Action::ConsultativeTransfer(c) = &step.action else {
            return None;
        };
        if let Some(prompt) = &c.announce {
            let input = scope::Inputs::new(self.flow, self.s);
            let uri = match scope::render(self.flow, prompt, &input, self.now) {
                Ok(u) => u,
                Err(e) => {
                    self.hang_up(consult);
                    return Some(Transition::Failure(e.to_string()));
                }
            };
            let context = self.client_context();
            let body = PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new(uri))])
                .with_client_context(context.clone());
            if self
                .send(consult, Body::PlayPrompt(body), Some(context.clone()))
                .is_some()
            {
                self.s.waiting = Waiting::ConsultAnnounce { consult, context };
                self.set_timer(PROMPT_GUARD);
                return None;
            }
        }
        self.consult_transfer(consult)
    }

    /// Transfers the main call to the consultation call's target, replacing it.
    pub(crate) fn consult_transfer(&mut self, consult: usize) -> Option<Transition> {
        let step = self.current()?;
        let Action::ConsultativeTransfer(c) = &step.action else {
            return None;
        };
        self.transfer_replacing(consult, &c.to)
    }

    /// Transfers the main call to `to`, the target of the answered
    /// consultation call `consult`, with `replacesCallId` (a consultative
    /// transfer, a ring group's agent who answered).
    pub(crate) fn transfer_replacing(&mut self, consult: usize, to: &Target) -> Option<Transition> {
        let main = match self.answered_main("transfer") {
            Ok(i) => i,
            Err(t) => {
                self.hang_up(consult);
                return Some(t);
            }
        };
        let Some(replaces) = self.s.legs.get(consult).and_then(|l| l.call_id.clone()) else {
            return Some(Transition::Failure(
                "the consultation call has no id".into(),
            ));
        };
        let input = scope::Inputs::new(self.flow, self.s);
        let target = match scope::invitation(self.flow, to, &input, self.now) {
            Ok(t) => t.with_endpoint_type(EndpointType::Default),
            Err(e) => {
                self.hang_up(consult);
                return Some(Transition::Failure(e));
            }
        };
        let body = TransferRequest::consultative(target, replaces);
        if self
            .send(main, Body::Transfer(Box::new(body)), None)
            .is_none()
        {
            self.hang_up(consult);
            return Some(Transition::Failure("the transfer could not be sent".into()));
        }
        self.s.legs[main].transfer = Some(TransferProgress {
            consultative: true,
            ..TransferProgress::default()
        });
        self.s.waiting = Waiting::ConsultTransfer { consult };
        self.set_timer(CONSULT_TRANSFER_GUARD);
        None
    }

    fn join(
        &mut self,
        meeting: &Meeting,
        tenant: Option<&Template>,
        timeout: Duration,
    ) -> Progress {
        let input = scope::Inputs::new(self.flow, self.s);
        let text = |t: &Template| scope::render(self.flow, t, &input, self.now);
        let tenant = match tenant.map(text).transpose() {
            Ok(t) => t.or_else(|| self.s.bot.tenant_id.clone()),
            Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
        };
        let built = match meeting {
            Meeting::JoinId {
                join_meeting_id,
                passcode,
            } => text(join_meeting_id).and_then(|id| {
                let pass = passcode.as_ref().map(text).transpose()?;
                let pass = pass.filter(|p| !p.is_empty());
                Ok((MeetingInfo::join_meeting_id(id, pass.as_deref()), None))
            }),
            Meeting::Thread {
                thread_id,
                message_id,
                organizer,
            } => text(thread_id).and_then(|thread| {
                let message = text(message_id)?;
                let mut who = Identity::new(text(organizer)?);
                who.tenant_id = tenant.clone();
                Ok((
                    MeetingInfo::organizer(IdentitySet::user(who), true),
                    Some(ChatInfo::new(thread, message)),
                ))
            }),
        };
        let (info, chat) = match built {
            Ok(b) => b,
            Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
        };
        let mut body = Call::join_meeting(
            self.s.bot.callback_uri.clone(),
            info,
            MediaConfig::service_hosted(),
        );
        body.chat_info = chat;
        body.tenant_id = tenant;
        let role = self.role_for_new_call();
        let leg = self.create_call(role, body, true);
        self.s.waiting = Waiting::Established { leg };
        self.set_timer(timeout);
        Progress::Wait
    }

    fn call(
        &mut self,
        targets: &[Target],
        subject: Option<&Template>,
        from: Option<&Template>,
        timeout: Duration,
    ) -> Progress {
        let input = scope::Inputs::new(self.flow, self.s);
        let mut list = Vec::new();
        for t in targets {
            match scope::invitation(self.flow, t, &input, self.now) {
                Ok(t) => list.push(t),
                Err(e) => return Progress::Then(Transition::Failure(e)),
            }
        }
        let mut body = self.new_call_body(list);
        if let Some(s) = subject {
            match scope::render(self.flow, s, &input, self.now) {
                Ok(s) => body.subject = Some(s),
                Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
            }
        }
        if let Some(f) = from {
            let source = scope::render(self.flow, f, &input, self.now)
                .map_err(|e| e.to_string())
                .and_then(|from| scope::instance_source(&self.s.bot, &from));
            match source {
                Ok(source) => body.source = Some(source),
                Err(e) => return Progress::Then(Transition::Failure(e)),
            }
        }
        let role = self.role_for_new_call();
        let leg = self.create_call(role, body, false);
        self.s.waiting = Waiting::Established { leg };
        self.set_timer(timeout);
        Progress::Wait
    }

    /// A call the flow places is its main call when it has none, or when
    /// the main call is gone (a redial after a missed call); otherwise it
    /// is another, outgoing call.
    fn role_for_new_call(&mut self) -> LegRole {
        match self.s.main_index() {
            None => LegRole::Main,
            Some(i) => {
                let m = &mut self.s.legs[i];
                if m.is_terminated() || m.hangup_sent || m.abandoned {
                    m.role = LegRole::Outgoing;
                    LegRole::Main
                } else {
                    LegRole::Outgoing
                }
            }
        }
    }

    fn play(&mut self, prompt: &Template) -> Progress {
        let i = match self.answered_main("play a prompt") {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        match self.play_on(i, prompt) {
            Ok(context) => {
                self.s.waiting = Waiting::Prompt { context };
                self.set_timer(PROMPT_GUARD);
                Progress::Wait
            }
            Err(e) => Progress::Then(Transition::Failure(e)),
        }
    }

    /// Sends a `playPrompt` of `prompt` on leg `i`; its client context.
    pub(super) fn play_on(&mut self, i: usize, prompt: &Template) -> Result<String, String> {
        let input = scope::Inputs::new(self.flow, self.s);
        let uri = scope::render(self.flow, prompt, &input, self.now).map_err(|e| e.to_string())?;
        let context = self.client_context();
        let body = PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new(uri))])
            .with_client_context(context.clone());
        self.send(i, Body::PlayPrompt(body), Some(context.clone()))
            .map(|_| context)
            .ok_or_else(|| "the prompt could not be sent".to_owned())
    }

    /// Invites a participant into the main call.
    fn invite(&mut self, v: &crate::flow::actions::invite::Invite) -> Progress {
        let i = match self.answered_main("invite a participant") {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        let input = scope::Inputs::new(self.flow, self.s);
        let target = match scope::invitation(self.flow, &v.to, &input, self.now) {
            Ok(t) => t,
            Err(e) => return Progress::Then(Transition::Failure(e)),
        };
        let context = self.client_context();
        let mut body = InviteParticipantsRequest::new(vec![target]);
        body.client_context = Some(context.clone());
        if let Err(e) = body.validate() {
            return Progress::Then(Transition::Failure(e.to_string()));
        }
        if self
            .send(i, Body::Invite(body), Some(context.clone()))
            .is_none()
        {
            return Progress::Then(Transition::Failure(
                "the invitation could not be sent".into(),
            ));
        }
        self.s.waiting = Waiting::Invite { context };
        self.set_timer(v.timeout);
        Progress::Wait
    }

    /// Starts a `recordResponse` on the main call.
    fn record(&mut self, step: &Step, r: &Record) -> Progress {
        let i = match self.answered_main(&format!("record in `{}`", step.name)) {
            Ok(i) => i,
            Err(t) => return Progress::Then(t),
        };
        let mut prompts = Vec::new();
        if let Some(p) = &r.prompt {
            let input = scope::Inputs::new(self.flow, self.s);
            match scope::render(self.flow, p, &input, self.now) {
                Ok(uri) => prompts.push(MediaPrompt::new(MediaInfo::new(uri))),
                Err(e) => return Progress::Then(Transition::Failure(e.to_string())),
            }
        }
        let secs = |d: Duration| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX);
        let context = self.client_context();
        let body = RecordResponseRequest {
            prompts,
            barge_in_allowed: Some(true),
            initial_silence_timeout_in_seconds: Some(secs(r.initial_silence)),
            max_silence_timeout_in_seconds: Some(secs(r.max_silence)),
            max_record_duration_in_seconds: Some(secs(r.max_duration)),
            play_beep: Some(r.beep),
            stop_tones: r.stop_tones.iter().map(char::to_string).collect(),
            client_context: Some(context.clone()),
        };
        if let Err(e) = body.validate() {
            return Progress::Then(Transition::Failure(e.to_string()));
        }
        if self
            .send(i, Body::RecordResponse(body), Some(context.clone()))
            .is_none()
        {
            return Progress::Then(Transition::Failure(
                "the recording could not be started".into(),
            ));
        }
        self.s.waiting = Waiting::Record { context };
        self.set_timer(PROMPT_GUARD + r.initial_silence + r.max_duration);
        Progress::Wait
    }

    /// The current `record`'s operation ended: download the recording, or
    /// take `on_timeout` (nothing said) or `on_failure`.
    pub(crate) fn record_ended(
        &mut self,
        leg: usize,
        ok: bool,
        reason: Option<&str>,
        recording: Option<crate::engine::event::Recording>,
        why: &str,
    ) -> Option<Transition> {
        let step = self.current()?;
        if !matches!(step.action, Action::Record(_)) {
            return None;
        }
        let silent = reason.is_some_and(|r| r.eq_ignore_ascii_case("initialSilenceTimeout"));
        let recording = match (ok, recording) {
            (true, Some(r)) => r,
            _ if silent => {
                self.cancel_timer();
                self.note("nothing was said: no recording");
                return Some(Transition::Timeout);
            }
            (true, None) => {
                return Some(Transition::Failure(format!(
                    "the recording completed without a recordingLocation{why}"
                )));
            }
            (false, _) => return Some(Transition::Failure(format!("the recording failed{why}"))),
        };
        let n = self.s.next_id;
        let name = format!("{}-{}-{n}.wav", self.s.id, step.name);
        match self.send(leg, Body::SaveRecording { recording, name }, None) {
            Some(command) => {
                self.s.waiting = Waiting::SaveRecording { command };
                self.set_timer(SAVE_RECORDING_GUARD);
                None
            }
            None => Some(Transition::Failure(
                "the recording could not be downloaded: the call is gone".into(),
            )),
        }
    }

    /// The recording was delivered: its variable is set, the step goes on.
    pub(crate) fn recording_saved(
        &mut self,
        location: String,
        bytes: u64,
        duration_seconds: f64,
    ) -> Option<Transition> {
        let step = self.current()?;
        let Action::Record(r) = &step.action else {
            return None;
        };
        self.cancel_timer();
        let value = serde_json::json!({
            "location": location,
            "duration": duration_seconds,
            "bytes": bytes,
        });
        self.s.vars.insert(r.into.clone(), value);
        self.note(format!(
            "recording of {duration_seconds}s ({bytes} bytes) delivered to {location}, in `vars.{}`",
            r.into
        ));
        Some(Transition::Next)
    }

    /// Plays a menu's prompt (after `before`, the invalid-key prompt), subscribing
    /// to tones first if needed. `attempt` counts the prompts played after the first.
    pub(crate) fn menu_prompt(
        &mut self,
        step: &Step,
        prompt: &Template,
        before: Option<&Template>,
        attempt: u32,
    ) -> Progress {
        match self.prompt_for_keys(&format!("play menu `{}`", step.name), prompt, before) {
            Ok(context) => {
                self.s.waiting = Waiting::Menu {
                    attempt,
                    context,
                    prompt_done: false,
                };
                self.s.key_floor = self.main_last_tone();
                self.set_timer(PROMPT_GUARD);
                Progress::Wait
            }
            Err(t) => Progress::Then(t),
        }
    }

    /// Subscribes the main call to tones if it is not yet, and plays
    /// `before` then `prompt` on it; the prompt's client context.
    fn prompt_for_keys(
        &mut self,
        what: &str,
        prompt: &Template,
        before: Option<&Template>,
    ) -> Result<String, Transition> {
        let i = self.answered_main(what)?;
        if !self.s.legs[i].tones_subscribed {
            let context = self.client_context();
            let body = SubscribeToToneRequest {
                client_context: Some(context.clone()),
            };
            if self
                .send(i, Body::SubscribeToTone(body), Some(context))
                .is_some()
            {
                self.s.legs[i].tones_subscribed = true;
            }
        }
        let input = scope::Inputs::new(self.flow, self.s);
        let mut prompts = Vec::new();
        for t in before.into_iter().chain([prompt]) {
            match scope::render(self.flow, t, &input, self.now) {
                Ok(uri) => prompts.push(MediaPrompt::new(MediaInfo::new(uri))),
                Err(e) => return Err(Transition::Failure(e.to_string())),
            }
        }
        let context = self.client_context();
        let body = PlayPromptRequest::new(prompts).with_client_context(context.clone());
        if self
            .send(i, Body::PlayPrompt(body), Some(context.clone()))
            .is_none()
        {
            return Err(Transition::Failure(format!(
                "cannot {what}: the prompt could not be sent"
            )));
        }
        Ok(context)
    }

    /// Plays a collect's prompt (after its invalid prompt when `invalid`);
    /// `attempt` counts the prompts played after the first.
    pub(crate) fn collect_prompt(
        &mut self,
        step: &Step,
        c: &Collect,
        invalid: bool,
        attempt: u32,
    ) -> Progress {
        let before = if invalid {
            c.invalid_prompt.as_ref()
        } else {
            None
        };
        let what = format!("collect digits in `{}`", step.name);
        match self.prompt_for_keys(&what, &c.prompt, before) {
            Ok(context) => {
                self.s.waiting = Waiting::Collect {
                    attempt,
                    context,
                    prompt_done: false,
                    cut: false,
                    finished: false,
                };
                self.s.key_floor = self.main_last_tone();
                self.set_timer(PROMPT_GUARD);
                Progress::Wait
            }
            Err(t) => Progress::Then(t),
        }
    }

    /// The digits keyed so far in the current collect (secret or not).
    pub(crate) fn collected(&mut self, secret: bool) -> &mut String {
        if secret {
            &mut self.s.secrets.digits
        } else {
            &mut self.s.digits
        }
    }

    /// A key pressed in the current collect: kept, or the end of the input.
    /// A key of the current collect: `seq` is its tone id, `late` whether
    /// keys pressed after it arrived first (it then takes its place).
    pub(crate) fn collect_key(
        &mut self,
        attempt: u32,
        key: char,
        seq: Option<i64>,
        late: bool,
    ) -> Option<Transition> {
        let step = self.current()?;
        let Action::Collect(c) = &step.action else {
            return None;
        };
        let finished = matches!(self.s.waiting, Waiting::Collect { finished: true, .. });
        if finished && !late {
            self.note(format!(
                "key {key} after the finish key of `{}`: ignored",
                step.name
            ));
            return None;
        }
        // The first key stops the prompt: the caller knows what to key.
        if let Waiting::Collect {
            prompt_done: false,
            cut: false,
            ..
        } = self.s.waiting
            && self.collected(c.secret).is_empty()
        {
            self.cut_prompt();
        }
        let full = if c.finish_on == Some(key) {
            if let Waiting::Collect { finished, .. } = &mut self.s.waiting {
                *finished = true;
            }
            false
        } else {
            // Digits are ASCII: a char's place is its byte's.
            let at = seq.map_or(self.s.key_ids.len(), |n| {
                self.s.key_ids.iter().filter(|&&k| k < n).count()
            });
            let at = at.min(self.collected(c.secret).len());
            self.collected(c.secret).insert(at, key);
            if let Some(n) = seq {
                self.s.key_ids.insert(at.min(self.s.key_ids.len()), n);
            }
            self.collected(c.secret).len() >= c.max_digits as usize
        };
        let finished = matches!(self.s.waiting, Waiting::Collect { finished: true, .. });
        if !(full || finished) {
            self.set_timer(c.digit_timeout);
            return None;
        }
        // A key pressed before this one has not arrived: wait for it (at
        // most the pause between digits, as for any key).
        if let Some(missing) = self.missing_key() {
            self.note(format!(
                "waiting for key press #{missing}, overtaken by later ones"
            ));
            self.set_timer(c.digit_timeout);
            return None;
        }
        let max = c.max_digits as usize;
        let digits = self.collected(c.secret);
        if digits.len() > max {
            digits.truncate(max);
            self.s.key_ids.truncate(max);
        }
        self.cancel_timer();
        if full
            && !finished
            && let Some(i) = self.s.main_index()
        {
            self.s.legs[i].after_full = c.finish_on;
        }
        self.collect_end(attempt)
    }

    /// The main call's highest tone id seen.
    fn main_last_tone(&self) -> Option<i64> {
        self.s.main_index().and_then(|i| self.s.legs[i].last_tone)
    }

    /// A key of the current menu or collect that was overtaken and has
    /// not arrived: the lowest such tone id.
    pub(crate) fn missing_key(&self) -> Option<i64> {
        let i = self.s.main_index()?;
        let floor = self.s.key_floor;
        self.s.legs[i]
            .missed_tones
            .iter()
            .copied()
            .filter(|&m| floor.is_none_or(|f| m > f))
            .min()
    }

    /// Stops the current collect's prompt (`cancelMediaProcessing` on the
    /// main call), marking it cut.
    fn cut_prompt(&mut self) {
        if self.cancel_media()
            && let Waiting::Collect { cut, .. } = &mut self.s.waiting
        {
            *cut = true;
        }
    }

    /// Stops the prompts playing on the main call (`cancelMediaProcessing`);
    /// whether the request went out.
    pub(super) fn cancel_media(&mut self) -> bool {
        let Some(i) = self.s.main_index() else {
            return false;
        };
        let context = self.client_context();
        let body = crate::graph::wire::CancelMediaProcessingRequest {
            client_context: Some(context.clone()),
        };
        self.send(i, Body::CancelMediaProcessing(body), Some(context))
            .is_some()
    }

    /// The input of the current collect is over (a finish key, the most
    /// digits, or a pause): stores it if valid, else asks again or gives up.
    pub(crate) fn collect_end(&mut self, attempt: u32) -> Option<Transition> {
        let step = self.current()?;
        let Action::Collect(c) = &step.action else {
            return None;
        };
        let digits = self.collected(c.secret).clone();
        let n = digits.chars().count();
        if n == 0 {
            return self.collect_retry(attempt, false);
        }
        let shown = if c.secret {
            format!("{n} secret digits")
        } else {
            format!("`{digits}`")
        };
        let mut why = None;
        if n < c.min_digits as usize {
            why = Some(format!("{shown} is fewer than {} digits", c.min_digits));
        } else if let Some(valid) = &c.valid {
            let input = scope::Inputs::new(self.flow, self.s);
            match scope::eval_bool(self.flow, valid, input.get(), self.now) {
                Ok(true) => {}
                Ok(false) => why = Some(format!("{shown} does not meet `valid`")),
                Err(e) => return Some(Transition::Failure(e.to_string())),
            }
        }
        if let Some(why) = why {
            self.note(format!("{why} in `{}`", step.name));
            return self.collect_retry(attempt, true);
        }
        let value = serde_json::Value::String(digits);
        if c.secret {
            self.s.vars.remove(&c.into);
            self.s.secrets.vars.insert(c.into.clone(), value);
            self.s.secrets.digits.clear();
        } else {
            self.s.secrets.vars.remove(&c.into);
            self.s.vars.insert(c.into.clone(), value);
        }
        self.note(format!("collected {shown} into `vars.{}`", c.into));
        Some(Transition::Next)
    }

    /// Asks the current collect again after a timeout or an invalid input,
    /// or gives the transition when its retries are used up.
    pub(crate) fn collect_retry(&mut self, attempt: u32, invalid: bool) -> Option<Transition> {
        let step = self.current()?;
        let Action::Collect(c) = &step.action else {
            return None;
        };
        self.collected(c.secret).clear();
        self.s.key_ids.clear();
        let attempt = attempt + 1;
        if attempt > c.retries {
            return Some(if invalid {
                Transition::Invalid
            } else {
                Transition::Timeout
            });
        }
        match self.collect_prompt(step, c, invalid, attempt) {
            Progress::Then(t) => Some(t),
            Progress::Wait | Progress::Ended => None,
        }
    }

    /// Plays the current menu again after a timeout or a wrong key, or gives
    /// the transition when its retries are used up.
    pub(crate) fn menu_retry(&mut self, attempt: u32, invalid: bool) -> Option<Transition> {
        let step = self.current()?;
        let Action::Menu(Menu {
            prompt,
            retries,
            invalid_prompt,
            ..
        }) = &step.action
        else {
            return None;
        };
        let attempt = attempt + 1;
        if attempt > *retries {
            return Some(if invalid {
                Transition::Invalid
            } else {
                Transition::Timeout
            });
        }
        let before = if invalid {
            invalid_prompt.as_ref()
        } else {
            None
        };
        match self.menu_prompt(step, prompt, before, attempt) {
            Progress::Then(t) => Some(t),
            Progress::Wait | Progress::Ended => None,
        }
    }
}
