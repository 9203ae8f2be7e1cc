//! rhai expressions: one sandboxed engine, compiled once, evaluated purely.
//!
//! [`engine()`] is the one factory of rhai engines; it sets every limit
//! explicitly. [`compile`] turns a `when` condition or a `${…}` into an
//! [`Expr`] holding its AST, at load time. [`Expr::eval`] evaluates it
//! against an [`EvalInput`] that carries everything an expression may read,
//! the clock included: nothing here reads a wall clock, a file or a socket.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;
use indexmap::IndexMap;
use rhai::{AST, Dynamic, Engine, Map, Scope};

use super::calendar::Calendar;
use super::span::Span;

/// The names an expression may start from.
pub const ROOTS: &[&str] = &["call", "vars", "step", "digits", "event", "params"];

/// The name under which `call` is held in rhai's scope.
const CALL_VAR: &str = "__call";

/// A function an expression may call, as the language reference lists it.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    /// Its name.
    pub name: &'static str,
    /// How it is written, in the reference's first column.
    pub written: &'static str,
}

/// Every function (and method) an expression may call: callflow's helpers
/// and the part of rhai's standard library a designer needs. A call of any
/// other name is `callflow::expr::unknown_fn` at load, with "did you mean"
/// among these. docs/flow-language.md lists each with an example, and a
/// test evaluates every example there against this engine.
pub const FUNCTIONS: &[Function] = &[
    Function { name: "now", written: "now()" },
    Function { name: "today", written: "today()" },
    Function { name: "hour", written: "hour()" },
    Function { name: "minute", written: "minute()" },
    Function { name: "weekday", written: "weekday()" },
    Function { name: "open", written: "open(calendar)" },
    Function { name: "url_encode", written: "url_encode(text)" },
    Function { name: "in", written: "value in list" },
    Function { name: "contains", written: "list.contains(value)" },
    Function { name: "len", written: "text.len()" },
    Function { name: "is_empty", written: "text.is_empty()" },
    Function { name: "starts_with", written: "text.starts_with(prefix)" },
    Function { name: "ends_with", written: "text.ends_with(suffix)" },
    Function { name: "index_of", written: "text.index_of(part)" },
    Function { name: "sub_string", written: "text.sub_string(start, length)" },
    Function { name: "to_upper", written: "text.to_upper()" },
    Function { name: "to_lower", written: "text.to_lower()" },
    Function { name: "split", written: "text.split(separator)" },
    Function { name: "to_string", written: "value.to_string()" },
    Function { name: "parse_int", written: "parse_int(text)" },
    Function { name: "abs", written: "number.abs()" },
    Function { name: "min", written: "min(a, b)" },
    Function { name: "max", written: "max(a, b)" },
    Function { name: "type_of", written: "type_of(value)" },
];

/// The names of [`FUNCTIONS`].
pub fn function_names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name)
}

/// `text` with every byte but letters, digits and `-_.~` percent-encoded
/// (RFC 3986's unreserved characters), for a value put into a URL.
pub fn url_encode(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}

/// Limits of the sandbox, set explicitly in [`engine()`].
pub mod limits {
    /// Operations one evaluation may perform.
    pub const OPERATIONS: u64 = 20_000;
    /// Longest string, in bytes.
    pub const STRING_SIZE: usize = 8_192;
    /// Largest array.
    pub const ARRAY_SIZE: usize = 1_024;
    /// Largest map.
    pub const MAP_SIZE: usize = 1_024;
    /// Deepest function call nesting.
    pub const CALL_LEVELS: usize = 16;
    /// Deepest expression nesting (global, in functions).
    pub const EXPR_DEPTH: (usize, usize) = (32, 16);
    /// Modules one script may import.
    pub const MODULES: usize = 0;
    /// Variables one script may define.
    pub const VARIABLES: usize = 32;
    /// Functions one script may define.
    pub const FUNCTIONS: usize = 0;
}

/// Builds a sandboxed rhai engine with every limit set explicitly.
pub fn build_engine() -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(limits::OPERATIONS)
        .set_max_string_size(limits::STRING_SIZE)
        .set_max_array_size(limits::ARRAY_SIZE)
        .set_max_map_size(limits::MAP_SIZE)
        .set_max_call_levels(limits::CALL_LEVELS)
        .set_max_expr_depths(limits::EXPR_DEPTH.0, limits::EXPR_DEPTH.1)
        .set_max_modules(limits::MODULES)
        .set_max_variables(limits::VARIABLES)
        .set_max_functions(limits::FUNCTIONS)
        .set_allow_looping(false)
        .set_allow_anonymous_fn(false)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(false);
    e.disable_symbol("eval");
    // `call` is a reserved word in rhai; flows read the call as `call`.
    // The token mapper is marked volatile (not deprecated) by rhai; the
    // version is pinned in Cargo.lock and a test covers it.
    #[allow(deprecated)]
    e.on_parse_token(|token, _, _| match &token {
        rhai::Token::Identifier(s) | rhai::Token::Reserved(s) if s.as_str() == "call" => {
            rhai::Token::Identifier(Box::new(CALL_VAR.into()))
        }
        _ => token,
    });
    e.on_print(|_| {});
    e.on_debug(|_, _, _| {});
    e.register_fn("now", || with_clock(|c| c.now.to_rfc3339()));
    e.register_fn("today", || {
        with_clock(|c| c.now.format("%Y-%m-%d").to_string())
    });
    e.register_fn("hour", || with_clock(|c| i64::from(c.now.hour())));
    e.register_fn("minute", || with_clock(|c| i64::from(c.now.minute())));
    e.register_fn("weekday", || {
        with_clock(|c| weekday_name(c.now.weekday()).to_string())
    });
    e.register_fn("url_encode", |text: &str| url_encode(text));
    e.register_fn("open", |name: &str| {
        with_clock(|c| {
            c.calendars
                .get(name)
                .is_some_and(|cal| cal.is_open(c.now.naive_local()))
        })
    });
    e
}

/// The shared engine.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(build_engine)
}

/// `mon` … `sun`.
pub fn weekday_name(d: chrono::Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][d.num_days_from_monday() as usize]
}

struct Clock {
    now: DateTime<Tz>,
    calendars: Arc<IndexMap<String, Calendar>>,
}

thread_local! {
    static CLOCK: RefCell<Option<Clock>> = const { RefCell::new(None) };
}

fn with_clock<T: Default>(f: impl FnOnce(&Clock) -> T) -> T {
    CLOCK.with(|c| c.borrow().as_ref().map(f).unwrap_or_default())
}

/// A compiled expression and where it stands in the flow file.
#[derive(Clone, Debug)]
pub struct Expr {
    /// The expression's text.
    pub source: String,
    /// Where the text stands in the file.
    pub span: Span,
    /// The compiled AST.
    pub ast: Arc<AST>,
    /// Which of [`ROOTS`] it reads (bit `i` for `ROOTS[i]`), so that an
    /// evaluation copies only those into rhai's scope.
    roots: u8,
}

/// Everything an expression can read.
#[derive(Clone, Debug, Default)]
pub struct EvalInput {
    /// `call`: id, state, direction, from, to, result.
    pub call: Map,
    /// `vars`.
    pub vars: Map,
    /// `step`: the current step's name.
    pub step: String,
    /// `digits`: the keys pressed in the current menu.
    pub digits: String,
    /// `event`: the last notification's resourceData.
    pub event: Dynamic,
    /// `params`: an api flow's parameters.
    pub params: Map,
}

/// Why an evaluation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("`{expr}` failed: {message}")]
pub struct EvalError {
    /// The expression.
    pub expr: String,
    /// rhai's message.
    pub message: String,
}

impl Expr {
    /// An expression compiled by [`compile`], from `source` at `span`.
    pub fn new(source: impl Into<String>, span: Span, ast: Arc<AST>) -> Self {
        let mut roots = 0u8;
        ast.walk(&mut |path: &[rhai::ASTNode]| {
            if let Some(rhai::ASTNode::Expr(rhai::Expr::Variable(v, ..))) = path.last() {
                let name = v.1.as_str();
                let name = if name == CALL_VAR { "call" } else { name };
                if let Some(i) = ROOTS.iter().position(|r| *r == name) {
                    roots |= 1 << i;
                }
            }
            true
        });
        Expr {
            source: source.into(),
            span,
            ast,
            roots,
        }
    }

    fn reads(&self, root: &str) -> bool {
        ROOTS
            .iter()
            .position(|r| *r == root)
            .is_some_and(|i| self.roots & (1 << i) != 0)
    }

    /// Evaluates the expression at `now` (in the flow's time zone).
    pub fn eval(
        &self,
        input: &EvalInput,
        now: DateTime<Tz>,
        calendars: &Arc<IndexMap<String, Calendar>>,
    ) -> Result<Dynamic, EvalError> {
        let mut scope = Scope::new();
        if self.reads("call") {
            scope.push_constant(CALL_VAR, input.call.clone());
        }
        if self.reads("vars") {
            scope.push_constant("vars", input.vars.clone());
        }
        if self.reads("step") {
            scope.push_constant("step", input.step.clone());
        }
        if self.reads("digits") {
            scope.push_constant("digits", input.digits.clone());
        }
        if self.reads("event") {
            scope.push_constant("event", input.event.clone());
        }
        if self.reads("params") {
            scope.push_constant("params", input.params.clone());
        }
        CLOCK.with(|c| {
            *c.borrow_mut() = Some(Clock {
                now,
                calendars: Arc::clone(calendars),
            })
        });
        let out = engine().eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast);
        CLOCK.with(|c| *c.borrow_mut() = None);
        out.map_err(|e| EvalError {
            expr: self.source.clone(),
            message: e.to_string(),
        })
    }

    /// Evaluates a condition; anything but a bool is an error.
    pub fn eval_bool(
        &self,
        input: &EvalInput,
        now: DateTime<Tz>,
        calendars: &Arc<IndexMap<String, Calendar>>,
    ) -> Result<bool, EvalError> {
        let v = self.eval(input, now, calendars)?;
        v.as_bool().map_err(|t| EvalError {
            expr: self.source.clone(),
            message: format!("a condition must give true or false, this gave a {t}"),
        })
    }
}

/// A problem found while compiling an expression.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileProblem {
    /// Byte offset in the expression text.
    pub offset: usize,
    /// Length in bytes of the text concerned.
    pub len: usize,
    /// What is wrong.
    pub kind: CompileProblemKind,
}

/// The kinds of [`CompileProblem`].
#[derive(Clone, Debug, PartialEq)]
pub enum CompileProblemKind {
    /// rhai could not parse it.
    Syntax(String),
    /// It names a root variable that does not exist.
    UnknownVariable(String),
    /// It calls a function that neither rhai nor callflow has.
    UnknownFunction(String),
    /// It calls `open` with a calendar the flow does not define.
    UnknownCalendar(String),
    /// It reads a field that its parent does not hold.
    UnknownField {
        /// The path of the parent, as written (`call.from`).
        parent: String,
        /// The field read.
        field: String,
        /// The fields the parent holds.
        known: Vec<String>,
        /// Whether the flow is an `api` flow (which alone has params).
        api: bool,
    },
    /// A type known at load time does not fit.
    Type {
        /// What is wrong.
        message: String,
        /// The label at the span.
        label: String,
        /// The way to the fix.
        help: String,
    },
}

fn scope_for_compile() -> Scope<'static> {
    let mut scope = Scope::new();
    for r in ROOTS {
        let name = if *r == "call" { CALL_VAR } else { r };
        // Not `push_constant`: rhai would fold a constant `()` into the AST,
        // and `${step}` would always render empty.
        scope.push(name, Dynamic::UNIT);
    }
    scope
}

/// Compiles `source`, checking root variables, function names and the
/// calendars named in `open("…")` against `calendars`.
pub fn compile(source: &str, calendars: &[&str]) -> Result<Arc<AST>, Vec<CompileProblem>> {
    let scope = scope_for_compile();
    let ast = engine()
        .compile_expression_with_scope(&scope, source)
        .map_err(|e| {
            let (offset, len) = locate(source, e.position());
            let kind = match e.err_type() {
                rhai::ParseErrorType::VariableUndefined(name) => {
                    CompileProblemKind::UnknownVariable(name.to_string())
                }
                other => CompileProblemKind::Syntax(other.to_string()),
            };
            vec![CompileProblem { offset, len, kind }]
        })?;
    let mut problems = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let found = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(call, pos))) => Some((&**call, *pos)),
            Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(call, pos))) => Some((&**call, *pos)),
            _ => None,
        };
        if let Some((call, pos)) = found {
            let name = call.name.as_str();
            let (offset, _) = locate(source, pos);
            if name == "open" {
                if let Some(rhai::Expr::StringConstant(cal, _)) = call.args.first()
                    && !calendars.contains(&cal.as_str())
                {
                    problems.push(CompileProblem {
                        offset,
                        len: 4,
                        kind: CompileProblemKind::UnknownCalendar(cal.to_string()),
                    });
                }
            } else if !call.is_qualified()
                && !name.starts_with(|c: char| !c.is_alphabetic())
                && !is_known_function(name)
            {
                problems.push(CompileProblem {
                    offset,
                    len: name.len(),
                    kind: CompileProblemKind::UnknownFunction(name.to_string()),
                });
            }
        }
        // A method (`text.strats_with("+33")`): the same names.
        if let Some(rhai::ASTNode::Expr(rhai::Expr::MethodCall(call, pos))) = path.last() {
            let name = call.name.as_str();
            if !is_known_function(name) {
                let (at, _) = locate(source, *pos);
                let offset = source[at..].find(name).map_or(at, |i| at + i);
                problems.push(CompileProblem {
                    offset,
                    len: name.len(),
                    kind: CompileProblemKind::UnknownFunction(name.to_string()),
                });
            }
        }
        true
    });
    if problems.is_empty() {
        Ok(Arc::new(ast))
    } else {
        Err(problems)
    }
}

fn is_known_function(name: &str) -> bool {
    function_names().any(|n| n == name)
}

/// Byte offset and length in `source` of a rhai position (1-based line and column).
pub(crate) fn locate(source: &str, pos: rhai::Position) -> (usize, usize) {
    let (Some(line), Some(col)) = (pos.line(), pos.position()) else {
        return (0, source.len());
    };
    let mut offset = 0;
    for (i, l) in source.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let within = l
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(l.len(), |(b, _)| b);
            offset += within;
            let len = source[offset..].chars().next().map_or(0, char::len_utf8);
            return (offset, len);
        }
        offset += l.len();
    }
    (source.len(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_reports_unknown_roots_and_functions() {
        assert!(compile("call.from.phone != \"\"", &[]).is_ok());
        let e = compile("caller.phone == \"x\"", &[]).expect_err("unknown root");
        assert_eq!(
            e[0].kind,
            CompileProblemKind::UnknownVariable("caller".into())
        );
        assert_eq!(e[0].offset, 0);
        for (source, name) in [
            ("vars.name.strats_with(\"A\")", "strats_with"),
            ("[1].pad(3, 0)", "pad"),
            ("sin(1.0) > 0.0", "sin"),
        ] {
            let e = compile(source, &[]).expect_err(source);
            assert_eq!(e[0].kind, CompileProblemKind::UnknownFunction(name.into()));
            assert_eq!(&source[e[0].offset..e[0].offset + e[0].len], name);
        }
        assert_eq!(url_encode("Anne Dupont & co/é"), "Anne%20Dupont%20%26%20co%2F%C3%A9");
        assert_eq!(url_encode("a-b_c.d~e"), "a-b_c.d~e");
        let e = compile("hour() > 8 && opne(\"office\")", &["office"]).expect_err("unknown fn");
        assert_eq!(
            e[0].kind,
            CompileProblemKind::UnknownFunction("opne".into())
        );
        assert_eq!(e[0].offset, 14);
        let e = compile("open(\"ofice\")", &["office"]).expect_err("unknown calendar");
        assert_eq!(
            e[0].kind,
            CompileProblemKind::UnknownCalendar("ofice".into())
        );
        assert!(compile("call.state ==", &[]).is_err());
    }

    /// Compiled by rhai alone, without the check of function names: the
    /// limits must hold whatever a script calls.
    fn compile_unchecked(source: &str) -> Arc<AST> {
        Arc::new(
            engine()
                .compile_expression_with_scope(&scope_for_compile(), source)
                .expect("compiles"),
        )
    }

    fn eval_with(source: &str, vars: Map) -> Result<Dynamic, EvalError> {
        let ast = compile_unchecked(source);
        let expr = Expr::new(source, Span::default(), ast);
        let input = EvalInput {
            vars,
            ..EvalInput::default()
        };
        let now = chrono::Utc::now().with_timezone(&Tz::UTC);
        expr.eval(&input, now, &Arc::default())
    }

    fn syntax_error(source: &str) -> String {
        match compile(source, &[]).expect_err(source).remove(0).kind {
            CompileProblemKind::Syntax(msg) => msg,
            other => panic!("{source}: {other:?}"),
        }
    }

    #[test]
    fn sandbox_has_no_eval_loops_statements_or_functions() {
        assert!(syntax_error("eval(\"1 + 1\")").contains("eval"));
        for source in [
            "loop { }",
            "while true { }",
            "do { } while true",
            "for x in [1, 2] { }",
            "{ let x = 1; x }",
            "fn f() { 1 }",
            "import \"os\" as os",
            "|| 1",
            "call.id = \"x\"",
        ] {
            syntax_error(source);
        }
    }

    #[test]
    fn sandbox_bounds_nesting_at_compile_time() {
        let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(syntax_error(&deep).contains("complexity"));
        let calls = format!("{}1{}", "hour(".repeat(1_000), ")".repeat(1_000));
        assert!(syntax_error(&calls).contains("complexity"));
        let literal = format!("\"{}\"", "a".repeat(limits::STRING_SIZE + 1));
        assert!(
            syntax_error(&literal)
                .to_lowercase()
                .contains("length of string")
        );
        let array = format!("[{}].len()", vec!["0"; limits::ARRAY_SIZE + 1].join(","));
        assert!(
            syntax_error(&array)
                .to_lowercase()
                .contains("size of array")
        );
    }

    #[test]
    fn sandbox_limits_are_set_and_hold_at_run_time() {
        // Every limit is set explicitly on the one engine.
        let e = engine();
        assert_eq!(e.max_operations(), limits::OPERATIONS);
        assert_eq!(e.max_string_size(), limits::STRING_SIZE);
        assert_eq!(e.max_array_size(), limits::ARRAY_SIZE);
        assert_eq!(e.max_map_size(), limits::MAP_SIZE);
        assert_eq!(e.max_call_levels(), limits::CALL_LEVELS);
        assert_eq!(e.max_expr_depth(), limits::EXPR_DEPTH.0);
        assert_eq!(e.max_modules(), limits::MODULES);
        assert!(!e.allow_looping());
        // Strings grow only to STRING_SIZE.
        let mut vars = Map::new();
        vars.insert("s".into(), "x".repeat(limits::STRING_SIZE / 2 + 1).into());
        let err = eval_with("vars.s + vars.s", vars).expect_err("string too long");
        assert!(
            err.message.to_lowercase().contains("length of string"),
            "{}",
            err.message
        );
        // Arrays grow only to ARRAY_SIZE.
        let err = eval_with(
            &format!("[].pad({}, 0)", limits::ARRAY_SIZE + 1),
            Map::new(),
        )
        .expect_err("array too large");
        assert!(
            err.message.to_lowercase().contains("size of array"),
            "{}",
            err.message
        );
        // Within the limits, the same expressions work.
        assert_eq!(
            eval_with("[0, 0, 0].len()", Map::new())
                .expect("small")
                .as_int()
                .expect("int"),
            3
        );
    }

    #[test]
    fn eval_is_bounded() {
        let ast = compile_unchecked("\"x\".pad(100000, \"y\")");
        let expr = Expr::new("pad", Span::default(), ast);
        let now = chrono::Utc::now().with_timezone(&Tz::UTC);
        assert!(
            expr.eval(&EvalInput::default(), now, &Arc::default())
                .is_err()
        );
    }
}
