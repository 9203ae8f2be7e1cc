//! What expressions see, and turning flow values into Graph's.
//!
//! [`eval_input`] builds the `call`, `vars`, `step`, `digits`, `event` and
//! `params` that `when` conditions and `${…}` templates read, from the
//! session. [`render`] fills a template; [`invitation`] turns a flow
//! [`Target`] into Graph's `invitationParticipantInfo`. Time comes in as an
//! argument; nothing here reads a clock or changes the session.

use chrono::{DateTime, Utc};
use rhai::{Dynamic, Map as RhaiMap};
use serde_json::{Map, Value};

use crate::flow::expr::{EvalError, EvalInput, Expr};
use crate::flow::roots;
use crate::flow::{Flow, Target, Template, TemplatePart};
use crate::graph::wire::{
    Code, Identity, IdentitySet, InvitationParticipantInfo, ParticipantInfo, ResultInfo,
};

use super::event::Party;
use super::session::{Bot, MASK, Session};

/// What `digits` reads: the keys of the current menu or collect (a secret
/// collect's masked when `mask`).
fn digits_text(session: &Session, mask: bool) -> String {
    if session.secrets.digits.is_empty() {
        session.digits.clone()
    } else if mask {
        MASK.to_owned()
    } else {
        session.secrets.digits.clone()
    }
}

/// Builds what expressions read from the session.
pub fn eval_input(flow: &Flow, session: &Session) -> EvalInput {
    eval_input_masked(flow, session, false)
}

/// Builds what expressions read from the session; with `mask`, secrets
/// (see [`Secrets`](super::session::Secrets)) read as [`MASK`].
pub fn eval_input_masked(flow: &Flow, session: &Session, mask: bool) -> EvalInput {
    let mut call = RhaiMap::new();
    if let Some(main) = session.main() {
        let text = |v: Option<&str>| Dynamic::from(v.unwrap_or("").to_owned());
        call.insert("id".into(), text(main.call_id.as_deref()));
        call.insert(
            "state".into(),
            text(main.state.as_ref().map(|s| s.as_str())),
        );
        call.insert(
            "direction".into(),
            text(main.direction.as_ref().map(|d| d.as_str())),
        );
        call.insert("from".into(), party_map(&main.from).into());
        call.insert("to".into(), party_map(&main.to).into());
        call.insert("result".into(), result_map(main.result.as_ref()).into());
        call.insert(
            "termination_reason".into(),
            text(main.termination_reason.as_deref()),
        );
        call.insert("participants".into(), Dynamic::from(i64::from(main.roster)));
    } else {
        call.insert("from".into(), party_map(&Party::default()).into());
        call.insert("to".into(), party_map(&Party::default()).into());
        call.insert("result".into(), result_map(None).into());
    }
    let mut vars = json_map(&session.vars);
    for (k, v) in &session.secrets.vars {
        let v = if mask {
            Dynamic::from(MASK.to_owned())
        } else {
            json_dynamic(v)
        };
        vars.insert(k.as_str().into(), v);
    }
    EvalInput {
        call,
        vars,
        step: session.step_name(flow).unwrap_or("").to_owned(),
        digits: digits_text(session, mask),
        event: json_dynamic(&session.last_event.value()),
        params: json_map(&session.params),
    }
}

/// The field `name` (one of [`roots::PARTY_FIELDS`]) of a party.
fn party_field<'a>(p: &'a Party, name: &str) -> Option<&'a Option<String>> {
    Some(match name {
        "phone" => &p.phone,
        "user" => &p.user,
        "application" => &p.application,
        "display_name" => &p.display_name,
        "tenant" => &p.tenant,
        _ => return None,
    })
}

fn party_map(p: &Party) -> RhaiMap {
    let mut m = RhaiMap::new();
    for k in roots::PARTY_FIELDS {
        let v = party_field(p, k).cloned().flatten();
        m.insert((*k).into(), Dynamic::from(v.unwrap_or_default()));
    }
    m
}

fn code_dynamic(c: Option<&Code>) -> Dynamic {
    match c {
        Some(Code::Number(n)) => Dynamic::from(*n),
        Some(Code::Text(t)) => Dynamic::from(t.clone()),
        None => Dynamic::UNIT,
    }
}

fn result_map(r: Option<&ResultInfo>) -> RhaiMap {
    let mut m = RhaiMap::new();
    m.insert("code".into(), code_dynamic(r.and_then(|r| r.code.as_ref())));
    m.insert(
        "subcode".into(),
        code_dynamic(r.and_then(|r| r.subcode.as_ref())),
    );
    m.insert(
        "message".into(),
        Dynamic::from(r.and_then(|r| r.message.clone()).unwrap_or_default()),
    );
    m
}

/// JSON as a rhai value, directly (faster than going through serde).
fn json_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Dynamic::from_int(i),
            (None, Some(f)) => Dynamic::from_float(f),
            (None, None) => Dynamic::from(n.to_string()),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from_array(a.iter().map(json_dynamic).collect()),
        Value::Object(m) => Dynamic::from_map(json_map(m)),
    }
}

fn json_map(m: &Map<String, Value>) -> RhaiMap {
    m.iter()
        .map(|(k, v)| (k.as_str().into(), json_dynamic(v)))
        .collect()
}

/// What expressions read, built only when an expression needs it (a
/// literal template needs nothing).
pub struct Inputs<'a> {
    flow: &'a Flow,
    session: &'a Session,
    mask: bool,
    cell: std::cell::OnceCell<EvalInput>,
}

impl<'a> Inputs<'a> {
    /// Inputs for `session`, not built yet.
    pub fn new(flow: &'a Flow, session: &'a Session) -> Self {
        Inputs {
            flow,
            session,
            mask: false,
            cell: std::cell::OnceCell::new(),
        }
    }

    /// Inputs for text written where people read it (the timeline, logs):
    /// secrets read as [`MASK`].
    pub fn masked(flow: &'a Flow, session: &'a Session) -> Self {
        Inputs {
            mask: true,
            ..Inputs::new(flow, session)
        }
    }

    /// The inputs, built on first use.
    pub fn get(&self) -> &EvalInput {
        self.cell
            .get_or_init(|| eval_input_masked(self.flow, self.session, self.mask))
    }
}

/// A rhai value as JSON (for `set`).
pub fn to_json(v: &Dynamic) -> Value {
    rhai::serde::from_dynamic::<Value>(v).unwrap_or(Value::Null)
}

/// Evaluates `expr` at `now` in the flow's time zone.
pub fn eval(
    flow: &Flow,
    expr: &Expr,
    input: &EvalInput,
    now: DateTime<Utc>,
) -> Result<Dynamic, EvalError> {
    expr.eval(input, now.with_timezone(&flow.timezone), &flow.calendars)
}

/// Evaluates a condition at `now` in the flow's time zone.
pub fn eval_bool(
    flow: &Flow,
    expr: &Expr,
    input: &EvalInput,
    now: DateTime<Utc>,
) -> Result<bool, EvalError> {
    expr.eval_bool(input, now.with_timezone(&flow.timezone), &flow.calendars)
}

/// The text of a plain dotted path (`vars.sales.user`, `call.from.phone`,
/// `step`) read straight from the session, as rhai would show it (a missing
/// member is `()`, shown as nothing). `None` when the path is not that
/// simple (then rhai evaluates it): templates are mostly such paths, and
/// they need no scope and no engine.
pub fn path_text(session: &Session, flow: &Flow, source: &str) -> Option<String> {
    path_text_masked(session, flow, source, false)
}

/// [`path_text`], with secrets read as [`MASK`] when `mask`.
pub fn path_text_masked(
    session: &Session,
    flow: &Flow,
    source: &str,
    mask: bool,
) -> Option<String> {
    let source = source.trim();
    let plain = |p: &str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut parts = source.split('.');
    let root = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if !plain(root) || !rest.iter().all(|p| plain(p)) {
        return None;
    }
    let text = |v: Option<&str>| Some(v.unwrap_or("").to_owned());
    match (root, rest.as_slice()) {
        ("vars", [first, ..]) if session.secrets.vars.contains_key(*first) => {
            if mask {
                Some(MASK.to_owned())
            } else {
                json_path_text(&session.secrets.vars, &rest)
            }
        }
        ("vars", path) => json_path_text(&session.vars, path),
        ("params", path) => json_path_text(&session.params, path),
        ("event", [first, path @ ..]) => match session.last_event.value() {
            Value::Object(m) => json_path_text(&m, &[&[*first], path].concat()),
            _ => None,
        },
        ("step", []) => text(session.step_name(flow)),
        ("digits", []) => Some(digits_text(session, mask)),
        ("call", [field, sub @ ..]) => {
            let main = session.main();
            let party = |p: Option<&Party>, name: &str| -> Option<String> {
                let p = p.cloned().unwrap_or_default();
                Some(party_field(&p, name)?.clone().unwrap_or_default())
            };
            match (*field, sub) {
                ("id", []) => text(main.and_then(|m| m.call_id.as_deref())),
                ("state", []) => text(main.and_then(|m| m.state.as_ref()).map(|s| s.as_str())),
                ("direction", []) => {
                    text(main.and_then(|m| m.direction.as_ref()).map(|d| d.as_str()))
                }
                ("termination_reason", []) => {
                    text(main.and_then(|m| m.termination_reason.as_deref()))
                }
                ("participants", []) if main.is_some() => {
                    Some(main.map_or(0, |m| m.roster).to_string())
                }
                ("from", [name]) => party(main.map(|m| &m.from), name),
                ("to", [name]) => party(main.map(|m| &m.to), name),
                ("result", [name]) => {
                    let r = main.and_then(|m| m.result.as_ref());
                    match *name {
                        "code" => Some(
                            r.and_then(|r| r.code.as_ref())
                                .map_or_else(String::new, ToString::to_string),
                        ),
                        "subcode" => Some(
                            r.and_then(|r| r.subcode.as_ref())
                                .map_or_else(String::new, ToString::to_string),
                        ),
                        "message" => text(r.and_then(|r| r.message.as_deref())),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A path through JSON maps as text; `None` when it meets something that
/// is not a map before its end, or ends on a map or a list.
fn json_path_text(map: &Map<String, Value>, path: &[&str]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    match (map.get(*first), rest) {
        (None, _) => Some(String::new()),
        (Some(Value::Object(m)), rest) if !rest.is_empty() => json_path_text(m, rest),
        (Some(_), rest) if !rest.is_empty() => None,
        (Some(Value::String(s)), _) => Some(s.clone()),
        (Some(Value::Number(n)), _) => n.is_i64().then(|| n.to_string()),
        (Some(Value::Bool(b)), _) => Some(b.to_string()),
        (Some(Value::Null), _) => Some(String::new()),
        (Some(Value::Object(_) | Value::Array(_)), _) => None,
    }
}

/// Fills a template: literal parts as written, `${…}` parts as their value
/// (strings without quotes).
pub fn render(
    flow: &Flow,
    template: &Template,
    input: &Inputs<'_>,
    now: DateTime<Utc>,
) -> Result<String, EvalError> {
    if let Some(text) = template.as_literal() {
        return Ok(text.to_owned());
    }
    let mut out = String::new();
    for part in &template.parts {
        match part {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Expr(e) => {
                if let Some(text) = path_text_masked(input.session, flow, &e.source, input.mask) {
                    out.push_str(&text);
                    continue;
                }
                let v = eval(flow, e, input.get(), now)?;
                if v.is_string() {
                    out.push_str(&v.into_string().unwrap_or_default());
                } else if !v.is_unit() {
                    out.push_str(&v.to_string());
                }
            }
        }
    }
    Ok(out)
}

fn render_opt(
    flow: &Flow,
    t: Option<&Template>,
    input: &Inputs<'_>,
    now: DateTime<Utc>,
) -> Result<Option<String>, EvalError> {
    t.map(|t| render(flow, t, input, now)).transpose()
}

/// A flow target as Graph's identity set.
pub fn identity(
    flow: &Flow,
    target: &Target,
    input: &Inputs<'_>,
    now: DateTime<Utc>,
) -> Result<IdentitySet, String> {
    match target {
        Target::User {
            id,
            tenant,
            display_name,
        } => {
            let id = render(flow, id, input, now).map_err(|e| e.to_string())?;
            if id.trim().is_empty() {
                return Err("the target's user id is empty".into());
            }
            let mut who = Identity::new(id);
            who.tenant_id = render_opt(flow, tenant.as_ref(), input, now)
                .map_err(|e| e.to_string())?
                .filter(|t| !t.is_empty());
            who.display_name = render_opt(flow, display_name.as_ref(), input, now)
                .map_err(|e| e.to_string())?
                .filter(|t| !t.is_empty());
            Ok(IdentitySet::user(who))
        }
        Target::Phone {
            number,
            display_name,
        } => {
            let number = render(flow, number, input, now).map_err(|e| e.to_string())?;
            if number.trim().is_empty() {
                return Err("the target's phone number is empty".into());
            }
            let mut who = Identity::new(number.trim());
            who.display_name = render_opt(flow, display_name.as_ref(), input, now)
                .map_err(|e| e.to_string())?
                .filter(|t| !t.is_empty());
            Ok(IdentitySet {
                phone: Some(who),
                ..IdentitySet::default()
            })
        }
    }
}

/// A flow target as Graph's `invitationParticipantInfo` (no endpoint type:
/// the shape of `create call` targets and redirects).
pub fn invitation(
    flow: &Flow,
    target: &Target,
    input: &Inputs<'_>,
    now: DateTime<Utc>,
) -> Result<InvitationParticipantInfo, String> {
    identity(flow, target, input, now).map(InvitationParticipantInfo::new)
}

/// The bot as the `source` of the calls it places: its application
/// instance if it has one, else its application.
pub fn bot_source(bot: &Bot) -> Option<ParticipantInfo> {
    let named = |id: &String| {
        let mut who = Identity::new(id.clone());
        who.display_name = bot.display_name.clone();
        who
    };
    if let Some(id) = &bot.application_instance_id {
        Some(ParticipantInfo::new(IdentitySet::application_instance(
            named(id),
        )))
    } else {
        bot.application_id
            .as_ref()
            .map(|id| ParticipantInfo::new(IdentitySet::application(named(id))))
    }
}

/// The bot as the `source` of a call that a `call` step's `from:` sends out
/// as `instance` (an id or a number of one of the bot's instances).
///
/// # Errors
///
/// A message when `from` names no instance of the bot.
pub fn instance_source(bot: &Bot, from: &str) -> Result<ParticipantInfo, String> {
    let Some(instance) = bot.instances.iter().find(|i| i.is(from)) else {
        let known: Vec<&str> = bot
            .instances
            .iter()
            .map(|i| i.number.as_deref().unwrap_or(&i.id))
            .collect();
        return Err(format!(
            "`from: {from}` names no application instance of the bot (configured: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    };
    let mut who = Identity::new(instance.id.clone());
    who.display_name = instance.name.clone().or_else(|| bot.display_name.clone());
    Ok(ParticipantInfo::new(IdentitySet::application_instance(who)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The main leg of an established call from a mobile, with a result.
    fn established_main() -> super::super::session::Leg {
        let mut main =
            super::super::session::Leg::new("main", super::super::session::LegRole::Main);
        main.call_id = Some("c1".into());
        main.state = Some(crate::graph::wire::CallState::Established);
        main.from = Party::phone("+33612345678");
        main.result = Some(ResultInfo {
            code: Some(Code::Number(500)),
            subcode: Some(Code::Text("x".into())),
            message: Some("m".into()),
        });
        main
    }

    #[test]
    fn plain_paths_read_like_rhai() {
        let loaded = crate::flow::load_str(
            "t.yaml",
            "flow: t\ntrigger: {incoming_call: {}}\nvars: {a: {b: \"x\", n: 3, t: true, z: null}}\nstart: s\nsteps:\n  s:\n    log: hi\n",
        );
        let flow = loaded.flow.expect("loads");
        let mut s = Session::new(&flow, "s", Bot::default());
        s.step = Some(crate::flow::StepId(0));
        s.digits = "12".into();
        s.legs.push(established_main());
        s.params.insert("p".into(), Value::from("q"));
        s.last_event = super::super::session::EventJson::new(
            &serde_json::json!({"state": "established", "toneInfo": {"tone": "tone1"}}),
        );
        let input = Inputs::new(&flow, &s);
        let now = chrono::Utc::now();
        for path in [
            "vars.a.b",
            "vars.a.n",
            "vars.a.t",
            "vars.a.z",
            "vars.missing",
            "vars.a.missing",
            "params.p",
            "params.nope",
            "step",
            "digits",
            "call.id",
            "call.state",
            "call.direction",
            "call.from.phone",
            "call.from.user",
            "call.to.phone",
            "call.result.code",
            "call.result.subcode",
            "call.result.message",
            "call.termination_reason",
            "call.participants",
            "event.state",
            "event.toneInfo.tone",
            "event.nothing",
        ] {
            let fast =
                path_text(&s, &flow, path).unwrap_or_else(|| panic!("{path} is a plain path"));
            let ast = crate::flow::expr::compile(path, &[]).expect("compiles");
            let expr = crate::flow::expr::Expr::new(path, Default::default(), ast);
            let v = eval(&flow, &expr, input.get(), now).expect("evaluates");
            let slow = if v.is_string() {
                v.into_string().unwrap_or_default()
            } else if v.is_unit() {
                String::new()
            } else {
                v.to_string()
            };
            assert_eq!(fast, slow, "{path}");
        }
        for complex in [
            "vars.a",
            "vars.a.b.len",
            "call.from",
            "call.id + 1",
            "hour()",
        ] {
            assert_eq!(path_text(&s, &flow, complex), None, "{complex}");
        }
    }

    /// `call` as the engine builds it holds exactly what `flow::roots`
    /// says, so the load-time checks and the run time cannot drift.
    #[test]
    fn call_is_what_the_roots_describe() {
        let loaded = crate::flow::load_str(
            "t.yaml",
            "flow: t\ntrigger: {incoming_call: {}}\nstart: s\nsteps:\n  s:\n    log: hi\n",
        );
        let flow = loaded.flow.expect("loads");
        let mut s = Session::new(&flow, "s", Bot::default());
        let keys = |m: &RhaiMap| {
            let mut k: Vec<String> = m.keys().map(|k| k.to_string()).collect();
            k.sort();
            k
        };
        let roots::Ty::Record(shape) = roots::call() else {
            panic!("call is a record");
        };
        let mut want: Vec<String> = shape.keys().cloned().collect();
        want.sort();
        // Before a call exists: only parties and result, each as described.
        let before = eval_input(&flow, &s).call;
        assert!(roots::call().admits(&Dynamic::from_map(before.clone())));
        s.legs.push(established_main());
        let call = eval_input(&flow, &s).call;
        assert_eq!(keys(&call), want);
        assert!(roots::call().admits(&Dynamic::from_map(call.clone())));
        for (name, ty) in &shape {
            if let roots::Ty::Record(fields) = ty {
                let m = call[name.as_str()]
                    .read_lock::<RhaiMap>()
                    .expect("map")
                    .clone();
                let mut w: Vec<String> = fields.keys().cloned().collect();
                w.sort();
                assert_eq!(keys(&m), w, "call.{name}");
            }
        }
    }

    #[test]
    fn step_is_readable() {
        let loaded = crate::flow::load_str(
            "t.yaml",
            "flow: t\ntrigger: {incoming_call: {}}\nstart: a\nsteps:\n  a:\n    log: \"in ${step} ${digits}!\"\n",
        );
        let flow = loaded.flow.expect("loads");
        let crate::flow::Action::Log(crate::flow::actions::log::Log { text }) =
            &flow.steps[0].action
        else {
            panic!("a log step");
        };
        let mut s = Session::new(&flow, "s", Bot::default());
        s.step = Some(crate::flow::StepId(0));
        s.digits = "12".into();
        let input = Inputs::new(&flow, &s);
        assert_eq!(input.get().step, "a");
        let out = render(&flow, text, &input, chrono::Utc::now()).expect("renders");
        assert_eq!(out, "in a 12!");
    }
}
