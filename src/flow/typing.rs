//! Every path of a compiled expression checked against what its root holds
//! ([`roots`](super::roots)), and the types it can know: a field that does
//! not exist, a condition that is not a bool, a number compared with a text.

use rhai::Expr as E;

use super::expr::{CompileProblem, CompileProblemKind, locate};
use super::roots::{Roots, Ty};

/// The problems of `ast` (compiled from `source`) against `roots`;
/// `condition` when it must give a bool.
pub fn check(ast: &rhai::AST, source: &str, roots: &Roots, condition: bool) -> Vec<CompileProblem> {
    let mut w = Walker {
        source,
        roots,
        problems: Vec::new(),
    };
    for stmt in ast.statements() {
        let ty = match stmt {
            rhai::Stmt::Expr(e) => w.infer(e),
            rhai::Stmt::FnCall(f, pos) => w.fn_call(f, *pos),
            _ => Ty::Any,
        };
        {
            if condition && !matches!(ty, Ty::Any | Ty::Bool) {
                w.problems.push(CompileProblem {
                    offset: 0,
                    len: source.len(),
                    kind: CompileProblemKind::Type {
                        message: format!(
                            "a condition must give true or false; this gives {}",
                            ty.describe()
                        ),
                        label: format!("{} here", ty.describe()),
                        help: match ty {
                            Ty::Text => {
                                "compare it: `call.from.phone != \"\"`, `vars.answer == \"yes\"`"
                            }
                            Ty::Int | Ty::Float => "compare it: `vars.tries < 3`",
                            _ => "compare it, or test it: `vars.vips.contains(call.from.phone)`",
                        }
                        .into(),
                    },
                });
            }
        }
    }
    w.problems
}

struct Walker<'a> {
    source: &'a str,
    roots: &'a Roots,
    problems: Vec<CompileProblem>,
}

/// The name a designer writes for a variable of the scope.
fn root_name(name: &str) -> &str {
    if name == "__call" { "call" } else { name }
}

const COMPARISONS: &[&str] = &["==", "!=", "<", ">", "<=", ">="];

impl Walker<'_> {
    fn at(&self, pos: rhai::Position) -> usize {
        locate(self.source, pos).0
    }

    fn infer(&mut self, e: &E) -> Ty {
        match e {
            E::BoolConstant(..) => Ty::Bool,
            E::IntegerConstant(..) => Ty::Int,
            E::FloatConstant(..) => Ty::Float,
            E::StringConstant(..) => Ty::Text,
            E::InterpolatedString(parts, _) => {
                for p in parts.iter() {
                    self.infer(p);
                }
                Ty::Text
            }
            E::Array(items, _) => {
                for i in items.iter() {
                    self.infer(i);
                }
                Ty::List
            }
            E::Map(m, _) => {
                for (_, v) in m.0.iter() {
                    self.infer(v);
                }
                Ty::Any
            }
            E::Variable(v, ..) => self.roots.root(root_name(v.1.as_str())).unwrap_or(Ty::Any),
            E::Dot(b, ..) => {
                let lhs = self.infer(&b.lhs);
                let path = path_text(&b.lhs);
                self.chain(lhs, path, &b.rhs)
            }
            E::Index(b, ..) => {
                let lhs = self.infer(&b.lhs);
                let path = path_text(&b.lhs);
                self.index(lhs, path, &b.rhs)
            }
            E::And(items, _) | E::Or(items, _) => {
                let op = if matches!(e, E::And(..)) { "&&" } else { "||" };
                for i in items.iter() {
                    let t = self.infer(i);
                    if !matches!(t, Ty::Any | Ty::Bool) {
                        let offset = self.at(i.position());
                        self.problems.push(CompileProblem {
                            offset,
                            len: 1,
                            kind: CompileProblemKind::Type {
                                message: format!(
                                    "`{op}` joins true-or-false values; this side is {}",
                                    t.describe()
                                ),
                                label: t.describe().into(),
                                help: "compare it first, e.g. `call.from.phone != \"\"`".into(),
                            },
                        });
                    }
                }
                Ty::Bool
            }
            E::Coalesce(items, _) => {
                for i in items.iter() {
                    self.infer(i);
                }
                Ty::Any
            }
            E::FnCall(f, pos) => self.fn_call(f, *pos),
            E::MethodCall(f, _) => {
                for a in f.args.iter() {
                    self.infer(a);
                }
                method_ty(f.name.as_str())
            }
            _ => Ty::Any,
        }
    }

    fn fn_call(&mut self, f: &rhai::FnCallExpr, pos: rhai::Position) -> Ty {
        let args: Vec<Ty> = f.args.iter().map(|a| self.infer(a)).collect();
        let name = f.name.as_str();
        if COMPARISONS.contains(&name) && args.len() == 2 {
            let (a, b) = (&args[0], &args[1]);
            if !a.comparable(b) {
                let numbers = |t: &Ty| matches!(t, Ty::Int | Ty::Float);
                let help = if (numbers(a) && *b == Ty::Text) || (*a == Ty::Text && numbers(b)) {
                    "a text never equals a number: write both sides alike, `vars.tries == 3`, `digits == \"1\"`"
                } else {
                    "compare values of the same kind"
                };
                let offset = self.at(pos);
                self.problems.push(CompileProblem {
                    offset,
                    len: name.len(),
                    kind: CompileProblemKind::Type {
                        message: format!(
                            "`{name}` compares {} with {}",
                            a.describe(),
                            b.describe()
                        ),
                        label: format!("{} {name} {}", a.describe(), b.describe()),
                        help: help.into(),
                    },
                });
            }
            return Ty::Bool;
        }
        match name {
            "!" | "contains" | "open" => Ty::Bool,
            "hour" | "minute" => Ty::Int,
            "now" | "today" | "weekday" | "url_encode" | "type_of" => Ty::Text,
            "parse_int" => Ty::Int,
            "+" if args.contains(&Ty::Text) => Ty::Text,
            "+" | "-" | "*" | "/" | "%" if args.iter().all(|t| *t == Ty::Int) => Ty::Int,
            _ => Ty::Any,
        }
    }

    /// The type of `rhs` read from a value of type `ty` (written `path`).
    fn chain(&mut self, ty: Ty, path: Option<String>, rhs: &E) -> Ty {
        match rhs {
            E::Property(p, pos) => self.field(ty, path, p.2.as_str(), *pos),
            E::MethodCall(f, _) => {
                for a in f.args.iter() {
                    self.infer(a);
                }
                method_ty(f.name.as_str())
            }
            E::Dot(b, ..) => {
                let sub = join(&path, &b.lhs);
                let t = self.chain(ty, path, &b.lhs);
                self.chain(t, sub, &b.rhs)
            }
            E::Index(b, ..) => {
                let sub = join(&path, &b.lhs);
                let t = self.chain(ty, path, &b.lhs);
                self.index(t, sub, &b.rhs)
            }
            other => {
                self.infer(other);
                Ty::Any
            }
        }
    }

    fn index(&mut self, ty: Ty, path: Option<String>, idx: &E) -> Ty {
        match idx {
            E::StringConstant(s, pos) if matches!(ty, Ty::Record(_)) => {
                self.field(ty, path, s.as_str(), *pos)
            }
            E::Dot(b, ..) => {
                let t = self.index(ty, path, &b.lhs);
                self.chain(t, None, &b.rhs)
            }
            other => {
                self.infer(other);
                Ty::Any
            }
        }
    }

    fn field(&mut self, ty: Ty, path: Option<String>, name: &str, pos: rhai::Position) -> Ty {
        let parent = path.unwrap_or_else(|| "this value".into());
        match ty {
            Ty::Any => Ty::Any,
            Ty::Record(fields) => match fields.get(name) {
                Some(t) => t.clone(),
                None => {
                    let offset = self.at(pos);
                    self.problems.push(CompileProblem {
                        offset,
                        len: name.len(),
                        kind: CompileProblemKind::UnknownField {
                            parent,
                            field: name.to_owned(),
                            known: fields.keys().cloned().collect(),
                            api: self.roots.api,
                        },
                    });
                    Ty::Any
                }
            },
            other => {
                let offset = self.at(pos);
                self.problems.push(CompileProblem {
                    offset,
                    len: name.len(),
                    kind: CompileProblemKind::Type {
                        message: format!(
                            "`{parent}` is {}: it has no field `{name}`",
                            other.describe()
                        ),
                        label: "no such field".into(),
                        help: format!("read `{parent}` itself"),
                    },
                });
                Ty::Any
            }
        }
    }
}

/// What a method gives, where it is known.
fn method_ty(name: &str) -> Ty {
    match name {
        "contains" | "starts_with" | "ends_with" | "is_empty" => Ty::Bool,
        "len" | "index_of" => Ty::Int,
        "to_upper" | "to_lower" | "sub_string" | "to_string" | "url_encode" => Ty::Text,
        "split" => Ty::List,
        _ => Ty::Any,
    }
}

/// `call.from` for a plain path, as the designer wrote it.
fn path_text(e: &E) -> Option<String> {
    match e {
        E::Variable(v, ..) => Some(root_name(v.1.as_str()).to_owned()),
        E::Property(p, _) => Some(p.2.to_string()),
        E::Dot(b, ..) => {
            let l = path_text(&b.lhs)?;
            let r = path_text(&b.rhs)?;
            Some(format!("{l}.{r}"))
        }
        _ => None,
    }
}

fn join(path: &Option<String>, next: &E) -> Option<String> {
    let p = path.as_ref()?;
    let n = path_text(next)?;
    Some(format!("{p}.{n}"))
}

#[cfg(test)]
mod tests {
    use crate::flow::load_str;

    fn codes(text: &str) -> Vec<(&'static str, String)> {
        load_str("t.yaml", text)
            .diagnostics
            .iter()
            .map(|d| (d.code, d.message.clone()))
            .collect()
    }

    const HEAD: &str = "flow: t\ntrigger: {incoming_call: {}}\nvars: {sales: {user: \"u1\"}, n: 1}\nstart: a\nsteps:\n  b:\n    set: {made: '1'}\n    next: a\n  a:\n    log: ";

    #[test]
    fn paths_follow_declared_shapes_and_set_names() {
        for ok in [
            "\"${vars.sales.user} ${vars.made} ${event.toneInfo.tone} ${call.result.code}\"",
            "\"${vars.n + 1} ${call.from.phone.len()} ${vars[\\\"n\\\"]}\"",
            "\"${if vars.n > 0 { vars.sales.user } else { step }}\"",
        ] {
            let text = format!("{HEAD}{ok}\n    next: b\n");
            let c = codes(&text);
            assert!(c.is_empty(), "{ok}: {c:?}");
        }
        for (bad, code) in [
            ("\"${vars.sales.usr}\"", "callflow::expr::unknown_field"),
            ("\"${event.tone_info}\"", "callflow::expr::unknown_field"),
            ("\"${params.x}\"", "callflow::expr::unknown_field"),
            ("\"${call.id.x}\"", "callflow::expr::type"),
            ("\"${vars.n < \\\"2\\\"}\"", "callflow::expr::type"),
            ("\"${vars[\\\"m\\\"]}\"", "callflow::expr::unknown_field"),
        ] {
            let text = format!("{HEAD}{bad}\n    next: b\n");
            let c = codes(&text);
            assert_eq!(c.first().map(|c| c.0), Some(code), "{bad}: {c:?}");
        }
    }
}
