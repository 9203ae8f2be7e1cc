//! Every rule of the flow language, checked at once.
//!
//! [`check`] parses a file, reads it into the [`model`](super::model) types
//! collecting every deserialisation error (it drops the offending entry and
//! reads on), then checks names, transitions, outcomes, phone numbers,
//! durations, calendars and expressions. It returns the compiled
//! [`Flow`] only when there is no error, and every [`Diagnostic`] in any
//! case. It never touches I/O. The rules of one action live with the action
//! in [`crate::flow::actions`], which checks through the `Cx` tools here
//! (`template`, `target`, `duration_in`, `resolve`, `error`, …); what is
//! common to every step (one action, outcomes it can produce, links,
//! reachability) is here.

use std::collections::{BTreeSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use super::actions::{ActionKind, CallPhase, OutcomeField};
use super::calendar::{self, Calendar};
use super::compiled::*;
use super::de::{DeError, DeErrorKind, from_node, list};
use super::diagnostic::{Diagnostic, SourceFile};
use super::expr::{self, CompileProblemKind, Expr};
use super::model::{self, FlowFile, OneOrMany, StepDef, TargetDef, Text};
use super::roots::{Roots, Ty};
use super::shared::{CalendarFileModel, CalendarFiles, Found, NamedCalendars, UsedFiles};
use super::span::{Span, Spanned};
use super::suggest::did_you_mean;
use super::typing;
use super::yaml::{self, Budget, Node, NodeKind, YamlErrorKind};

mod expressions;
mod order;
mod read;
mod steps;
mod values;

use expressions::*;
use read::*;
pub use values::e164_problem;
use values::*;

/// Default most steps per run.
pub const DEFAULT_MAX_STEPS: u32 = 200;

/// The longest a run lasts when its flow says nothing (`max_duration`).
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(4 * 3600);

/// Most steps one flow may hold. A flow is written by people; far beyond
/// this, it is generated or hostile, and refused before any rule runs.
pub const MAX_STEPS_PER_FLOW: usize = 10_000;

/// Most diagnostics reported for one file; past it, one more says how many
/// were left out, and costly checks (expressions, suggestions) stop.
pub const MAX_DIAGNOSTICS: usize = 200;

/// The call states a flow may name.
pub const STATES: &[&str] = &[
    "incoming",
    "establishing",
    "established",
    "ringing",
    "hold",
    "transferring",
    "transferAccepted",
    "redirecting",
    "terminating",
    "terminated",
];

/// Checks one file: the flow when it has no error, and every diagnostic
/// (those of the calendar files it uses after its own).
pub fn check(file: &Arc<SourceFile>, budget: Budget) -> (Option<Flow>, Vec<Diagnostic>) {
    let mut shared = CalendarFiles::disk();
    let (flow, mut diags) = check_with(file, budget, &mut shared);
    diags.extend(shared.take_diagnostics());
    (flow, diags)
}

/// Checks one flow file, reading the calendar files it uses through
/// `shared` (whose diagnostics stay there, to be reported once).
pub fn check_with(
    file: &Arc<SourceFile>,
    budget: Budget,
    shared: &mut CalendarFiles,
) -> (Option<Flow>, Vec<Diagnostic>) {
    let mut cx = Cx::new(file);
    let Some(root) = cx.parse(budget) else {
        return (None, cx.diags);
    };
    let flow = match cx.read_model::<FlowFile>(root) {
        Some(flow_file) => {
            let clean_read = !cx.has_errors();
            let used: Vec<(Text, Found)> = flow_file
                .uses
                .iter()
                .map(|t| (t.clone(), shared.get(&file.path, &t.value)))
                .collect();
            let flow = cx.compile(&flow_file, clean_read, &used);
            if cx.has_errors() { None } else { flow }
        }
        None => None,
    };
    (flow, cx.finish())
}

/// Checks a calendar file: its calendars when it has no error, and every
/// diagnostic, at the file.
pub fn check_calendar_file(file: &Arc<SourceFile>) -> (Option<NamedCalendars>, Vec<Diagnostic>) {
    let mut cx = Cx::new(file);
    let Some(root) = cx.parse(Budget::default()) else {
        return (None, cx.diags);
    };
    let calendars = cx
        .read_model::<CalendarFileModel>(root)
        .map(|m| cx.calendars_of(&m.calendars));
    let calendars = if cx.has_errors() { None } else { calendars };
    (calendars, cx.finish())
}

impl Cx {
    fn new(file: &Arc<SourceFile>) -> Self {
        Cx {
            file: Arc::clone(file),
            diags: Vec::new(),
            removed: Vec::new(),
            suggested: Vec::new(),
            stopped: false,
            roots: None,
            calendars_unknown: false,
            phone_vars: Vec::new(),
        }
    }

    /// The file's YAML, or its syntax error reported.
    fn parse(&mut self, budget: Budget) -> Option<Node> {
        let cx = self;
        let file = &Arc::clone(&cx.file);
        let doc = match yaml::parse(&file.text, budget) {
            Ok(doc) => doc,
            Err(e) => {
                let (code, help) = match e.kind {
                    YamlErrorKind::Syntax => (
                        "callflow::yaml::syntax",
                        "check the indentation and the quotes around this point",
                    ),
                    YamlErrorKind::TooLarge => {
                        ("callflow::input::too_large", "split it into several flows")
                    }
                    YamlErrorKind::TooDeep => (
                        "callflow::input::too_deep",
                        "a flow file never needs this much nesting",
                    ),
                    YamlErrorKind::TooManyNodes => (
                        "callflow::input::alias_bomb",
                        "write the values out, or use fewer aliases",
                    ),
                    YamlErrorKind::MultipleDocuments => (
                        "callflow::yaml::documents",
                        "put each flow in a file of its own",
                    ),
                    YamlErrorKind::Empty => {
                        ("callflow::yaml::empty", "a flow starts with `flow: NAME`")
                    }
                    YamlErrorKind::TooManyEntries => {
                        ("callflow::input::too_large", "split it into several flows")
                    }
                    YamlErrorKind::Unclosed => (
                        "callflow::yaml::unclosed",
                        "close it where the list or mapping ends: `[a, b]`, `{key: value}`",
                    ),
                };
                let label = if e.kind == YamlErrorKind::Unclosed {
                    "opened here"
                } else {
                    "here"
                };
                cx.diags.push(
                    Diagnostic::error(code, file, e.span, e.message)
                        .label(label)
                        .help(help),
                );
                return None;
            }
        };
        for d in &doc.duplicates {
            cx.diags.push(
                Diagnostic::error(
                    "callflow::yaml::duplicate_key",
                    file,
                    d.span,
                    format!("`{}` is given twice", d.key),
                )
                .label("second time")
                .related(d.first, "first time")
                .help("a later key would silently replace the first; rename or remove one"),
            );
        }
        Some(doc.root)
    }
}

pub(in crate::flow) struct Cx {
    file: Arc<SourceFile>,
    diags: Vec<Diagnostic>,
    /// Entries dropped while reading (the parent's span, the key), each
    /// already reported: checks on their parent stay quiet.
    removed: Vec<(Span, String)>,
    /// Step names offered as "did you mean": not reported as unreachable.
    suggested: Vec<String>,
    /// Whether costly checks were skipped after [`MAX_DIAGNOSTICS`] problems.
    stopped: bool,
    /// What each expression root holds in this flow, once known.
    roots: Option<Roots>,
    /// A calendar file the flow uses could not be read or has errors: the
    /// calendars it defines are not known, so `open("x")` is not checked.
    calendars_unknown: bool,
    /// Variables whose values are phone numbers: dialled
    /// (`phone: "${vars.NAME}"`) or compared with a caller's number.
    phone_vars: Vec<String>,
}

impl Cx {
    /// The diagnostics in reading order (a designer fixes them top to
    /// bottom), at most [`MAX_DIAGNOSTICS`] and a note of what is left out.
    fn finish(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| d.span.map_or(0, |s| s.start));
        let note = if self.diags.len() > MAX_DIAGNOSTICS {
            let more = self.diags.len() - MAX_DIAGNOSTICS;
            let next = self.diags[MAX_DIAGNOSTICS].span.unwrap_or_default();
            self.diags.truncate(MAX_DIAGNOSTICS);
            Some((
                next,
                format!("{more} more problems are not shown"),
                "the next one",
            ))
        } else if self.stopped {
            let last = self.diags.last().and_then(|d| d.span).unwrap_or_default();
            let n = self.diags.len();
            Some((
                last,
                format!("checking stopped after {n} problems"),
                "the last one shown",
            ))
        } else {
            None
        };
        if let Some((span, message, label)) = note {
            self.diags.push(
                Diagnostic::error(
                    "callflow::input::too_many_problems",
                    &self.file,
                    span,
                    message,
                )
                .label(label)
                .help("fix the problems above, then check again"),
            );
        }
        self.diags
    }

    fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// Whether enough errors are reported that costly checks may stop.
    fn saturated(&mut self) -> bool {
        let full = self.diags.len() >= MAX_DIAGNOSTICS && self.has_errors();
        self.stopped |= full;
        full
    }

    pub(in crate::flow) fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> Pushed<'_> {
        let span = unquote(&self.file.text, span);
        self.diags
            .push(Diagnostic::error(code, &self.file, span, message));
        Pushed(self.diags.last_mut().expect("just pushed"))
    }

    pub(in crate::flow) fn warning(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> Pushed<'_> {
        let span = unquote(&self.file.text, span);
        self.diags
            .push(Diagnostic::warning(code, &self.file, span, message));
        Pushed(self.diags.last_mut().expect("just pushed"))
    }

    /// The key `key` written just before the value at `value`, else `value`:
    /// where a diagnostic about a whole mapping points.
    pub(in crate::flow) fn key_span(&self, value: Span, key: &str) -> Span {
        key_before(&self.file.text, value, key)
    }

    // ---------------------------------------------------------------- reading

    fn compile(&mut self, f: &FlowFile, clean_read: bool, used: &[(Text, Found)]) -> Option<Flow> {
        if let Some((name, _)) = f.steps.get_index(MAX_STEPS_PER_FLOW) {
            self.error(
                "callflow::step::too_many",
                name.span,
                format!(
                    "the flow has {} steps; a flow may hold at most {MAX_STEPS_PER_FLOW}",
                    f.steps.len()
                ),
            )
            .label(format!("step {}", MAX_STEPS_PER_FLOW + 1))
            .help("split it into several flows, or generate fewer steps");
            return None;
        }
        let name = f.flow.value.clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.error(
                "callflow::flow::name",
                f.flow.span,
                format!("`{name}` is not a valid flow name"),
            )
            .label("flow name")
            .help("use letters, digits, `-` and `_`, e.g. `main-line`");
        }
        let timezone = match &f.timezone {
            None => chrono_tz::Tz::UTC,
            Some(tz) => match chrono_tz::Tz::from_str(&tz.value) {
                Ok(t) => t,
                Err(_) => {
                    let hint =
                        did_you_mean(&tz.value, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                            .unwrap_or_else(|| {
                                "use an IANA name such as `Europe/Paris` or `America/New_York`"
                                    .into()
                            });
                    self.error(
                        "callflow::timezone",
                        tz.span,
                        format!("`{}` is not a time zone", tz.value),
                    )
                    .label("unknown time zone")
                    .help(hint);
                    chrono_tz::Tz::UTC
                }
            },
        };

        let (calendars, calendar_files) = self.all_calendars(f, used);
        let cal_names: Vec<String> = calendars.keys().cloned().collect();
        let cal_refs: Vec<&str> = cal_names.iter().map(String::as_str).collect();

        let step_names: Vec<&str> = f.steps.keys().map(|k| k.value.as_str()).collect();
        let ids: IndexMap<&str, StepId> = step_names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, StepId(i as u32)))
            .collect();
        let resolver = Resolver {
            ids: &ids,
            names: &step_names,
        };

        self.roots = Some(roots_of(f));
        let trigger = self.trigger(&f.trigger, &cal_refs);

        let mut vars = IndexMap::new();
        for (k, v) in &f.vars {
            vars.insert(k.value.clone(), v.value.clone());
        }

        let start = match &f.start {
            Some(s) => self.resolve(&resolver, s, "`start`"),
            None => {
                let first = step_names.first().copied();
                let at = f.flow.span;
                let help = match first {
                    Some(n) => format!("add `start: {n}` to name the first step"),
                    None => "add `start:` and `steps:`".into(),
                };
                self.error("callflow::start::missing", at, "the flow has no `start`")
                    .label("this flow")
                    .help(help);
                None
            }
        };

        if f.steps.is_empty() {
            self.error("callflow::step::none", f.flow.span, "the flow has no steps")
                .label("this flow")
                .help("add `steps:` with at least one step");
        }

        let mut steps = Vec::with_capacity(f.steps.len());
        for (name, def) in &f.steps {
            if let Some(step) = self.step(name, def, &resolver, &cal_refs) {
                steps.push(step);
            }
        }

        let mut on_state = IndexMap::new();
        let mut on_error = Vec::new();
        for (key, items) in &f.on {
            let ops = self.handler(items, &resolver, &cal_refs);
            if key.value == "error" {
                on_error = ops;
            } else if STATES.contains(&key.value.as_str()) {
                on_state.insert(key.value.clone(), ops);
            } else {
                let hint = did_you_mean(&key.value, STATES.iter().copied().chain(["error"]))
                    .unwrap_or_else(|| {
                        format!("handlers are `error` or a call state: {}", list(STATES))
                    });
                self.error(
                    "callflow::handler::unknown",
                    key.span,
                    format!("`{}` is not a call state", key.value),
                )
                .label("unknown handler")
                .help(hint);
            }
        }

        // After the steps and handlers: they say which variables hold numbers.
        self.var_phones(f);
        let max_steps = f.max_steps.as_ref().map_or(DEFAULT_MAX_STEPS, |m| {
            if m.value == 0 {
                self.error(
                    "callflow::field::type",
                    m.span,
                    "`max_steps` must be at least 1",
                )
                .label("no step could run")
                .help(format!("leave it out for the default, {DEFAULT_MAX_STEPS}"));
            }
            m.value
        });

        let max_duration = match &f.max_duration {
            None => Some(DEFAULT_MAX_DURATION),
            Some(t) => self.duration(t, None),
        };

        if clean_read && let Some(start) = start {
            self.reachability(f, &ids, start);
            if !self.has_errors() && steps.len() == f.steps.len() {
                let initial = match &f.trigger.value {
                    model::Trigger::IncomingCall(_) => CallPhase::Unanswered,
                    model::Trigger::Api(_) => CallPhase::NoCall,
                    model::Trigger::StateChange(_) => CallPhase::Unknown,
                };
                self.order(&steps, start, initial);
                self.unrouted_failures(f);
            }
        }

        let start = start?;
        if steps.len() != f.steps.len() {
            return None;
        }
        Some(Flow {
            name,
            description: f.description.clone(),
            source: Arc::clone(&self.file),
            timezone,
            trigger: trigger?,
            version: super::shared::version(&self.file, &calendar_files),
            calendar_files,
            calendars: Arc::new(calendars),
            vars,
            start,
            steps,
            max_steps,
            max_duration: max_duration?,
            on_state,
            on_error,
        })
    }
}

/// What `vars` and `params` hold in `f`: the variables as declared (with
/// their shapes), the names some `set` assigns anywhere (of any type), and
/// the declared parameters.
fn roots_of(f: &FlowFile) -> Roots {
    let mut vars: IndexMap<String, Ty> = f
        .vars
        .iter()
        .map(|(k, v)| (k.value.clone(), Ty::of_json(&v.value)))
        .collect();
    let handler_sets =
        f.on.values()
            .flat_map(|items| items.value.iter())
            .filter_map(|i| i.value.set.as_ref())
            .flat_map(|s| s.value.keys());
    let step_sets = f.steps.values().flat_map(|d| d.value.assigned_types());
    let mut assigned: IndexMap<String, Ty> = IndexMap::new();
    for name in handler_sets.map(|n| n.value.clone()) {
        assigned.insert(name, Ty::Any);
    }
    for (name, ty) in step_sets {
        // A variable given a value in several places, or also declared,
        // is of any type: its type is the last value given.
        let ty = if assigned.contains_key(&name) || vars.contains_key(&name) {
            Ty::Any
        } else {
            ty
        };
        assigned.insert(name, ty);
    }
    vars.extend(assigned);
    let (api, params) = match &f.trigger.value {
        model::Trigger::Api(a) => (
            true,
            a.params
                .iter()
                .map(|(k, p)| {
                    let ty = match p.value.kind.value {
                        model::ParamType::String | model::ParamType::Phone => Ty::Text,
                        model::ParamType::Integer => Ty::Int,
                        model::ParamType::Bool => Ty::Bool,
                    };
                    (k.value.clone(), ty)
                })
                .collect(),
        ),
        _ => (false, IndexMap::new()),
    };
    Roots { vars, params, api }
}

/// A diagnostic just recorded, to add a label, a help or a related place to.
pub(in crate::flow) struct Pushed<'a>(&'a mut Diagnostic);

impl Pushed<'_> {
    pub(in crate::flow) fn label(self, label: impl Into<String>) -> Self {
        self.0.label = label.into();
        self
    }
    pub(in crate::flow) fn help(self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }
    pub(in crate::flow) fn related(self, span: Span, label: impl Into<String>) -> Self {
        self.0.related.push(super::diagnostic::Related {
            span,
            label: label.into(),
        });
        self
    }
}

/// Step names and their ids, to resolve the names outcomes give.
pub(in crate::flow) struct Resolver<'a> {
    ids: &'a IndexMap<&'a str, StepId>,
    names: &'a [&'a str],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Option<Flow>, Vec<Diagnostic>) {
        check(
            &Arc::new(SourceFile::new("t.yaml", text)),
            Budget::default(),
        )
    }

    #[test]
    fn the_reception_flow_loads_clean() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flows/reception.yaml"))
                .expect("bundled flow");
        let (flow, diags) = load(&text);
        for d in &diags {
            eprintln!("{}", d.render(100));
        }
        assert!(diags.is_empty());
        let flow = flow.expect("flow");
        assert_eq!(flow.steps.len(), 9);
        assert_eq!(flow.step(flow.start).name, "greet");
    }

    /// Every style of scalar: the file offset of each `X` in the value is
    /// an `X` in the file.
    #[test]
    fn value_offsets_in_every_scalar_style() {
        let cases = [
            "k: a ${X} b\n",
            "k: 'it''s ${X}'\n",
            "k: \"say \\\"hi\\\" \\n caf\\u00e9 ${X}\"\n",
            "k: |\n  line one\n  ${X} two\n",
            "k: >-\n  folded\n  text ${X}\n",
            "k: plain\n  across lines ${X}\n",
            "k: \"double\n  across ${X}\"\n",
            "k: 'single\n\n  with a blank ${X}'\n",
        ];
        for text in cases {
            let doc = yaml::parse(text, Budget::default()).expect(text);
            let node = doc.root.get("k").expect("k");
            let value = node.as_str().expect("scalar");
            let map = ValueMap::new(text, node.span, value);
            let i = value.find('X').expect("X in value");
            let at = map.at(i);
            assert_eq!(&text[at..at + 1], "X", "{text:?} -> {value:?}");
            let end = map.at(i + 1);
            assert_eq!(&text[at..end], "X", "{text:?}");
        }
    }

    #[test]
    fn collects_errors_in_several_steps() {
        let text = "flow: x\ntrigger: { api: {} }\nstart: a\nsteps:\n  a:\n    log: hi\n    nxt: b\n  b:\n    menu: { prompt: https://x/y.wav, choices: {\"1\": a}, retries: two }\n  c:\n    hangup: {}\n    next: a\n";
        let (flow, diags) = load(text);
        assert!(flow.is_none());
        let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                "callflow::field::unknown",
                "callflow::field::type",
                "callflow::outcome::impossible"
            ],
            "{diags:#?}"
        );
    }

    #[test]
    fn a_broken_link_does_not_also_report_the_steps_behind_it_unreachable() {
        let text = "flow: x\ntrigger: { api: {} }\nstart: a\nsteps:\n  a:\n    log: hi\n    next: bb\n  b:\n    log: there\n    next: c\n  c:\n    hangup: {}\n";
        let (_, diags) = load(text);
        let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["callflow::step::unknown"], "{diags:#?}");
    }
}
