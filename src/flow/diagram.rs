//! Flow diagrams (Mermaid and Graphviz dot): a node per step, an edge per outcome.
//!
//! A node's shape says what kind of action its step does (a decision, a
//! hand-off to someone else, an end); each edge is labelled with the outcome
//! that takes it (`next`, `on_failure`, a menu key, a switch condition).
//! `on:` handlers that `goto` a step are drawn as dashed edges. The output
//! is text for a viewer; this module reads a checked [`Flow`] and never
//! changes it. Labels are escaped so that no step name or expression can
//! break the diagram's syntax.

use std::fmt::Write as _;

use super::actions::Action;
use super::compiled::{Flow, HandlerOp, StepId};

/// The diagram languages `callflow graph` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DiagramFormat {
    /// Mermaid flowchart (GitHub, GitLab and most Markdown viewers render it).
    #[default]
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// The flow as a diagram in `format`, ending with a newline.
pub fn diagram(flow: &Flow, format: DiagramFormat) -> String {
    match format {
        DiagramFormat::Mermaid => mermaid(flow),
        DiagramFormat::Dot => dot(flow),
    }
}

/// How a step is drawn: the family of its action (each action says which,
/// in [`ActionType::SHAPE`](super::actions::ActionType::SHAPE)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Does something on the call and goes on (answer, play, set, log, wait).
    Plain,
    /// Chooses where to go (switch, menu).
    Decision,
    /// Hands the call to someone or places a call (transfer, redirect, call, join).
    Handoff,
    /// Ends the call (hangup, reject).
    End,
}

fn shape(action: &Action) -> Shape {
    action.action_kind().shape()
}

/// How an edge is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// The way on when all goes well.
    Solid,
    /// A failure, timeout or invalid key.
    Fallback,
    /// A handler's `goto`.
    Handler,
}

/// One edge: from, to, label, kind.
struct Edge {
    from: Node,
    to: StepId,
    label: String,
    line: Line,
}

/// A node that an edge leaves from.
#[derive(Clone, Copy)]
enum Node {
    Step(StepId),
    Handler(usize),
}

/// Longest label text kept before it is cut with `…`.
const MAX_LABEL: usize = 48;

fn shorten(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_LABEL {
        one_line
    } else {
        let cut: String = one_line.chars().take(MAX_LABEL - 1).collect();
        format!("{cut}…")
    }
}

/// Every outcome edge of the flow, in step order, then the handlers' gotos.
fn edges(flow: &Flow) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, step) in flow.steps.iter().enumerate() {
        let from = Node::Step(StepId(i as u32));
        let mut push = |to: StepId, label: String, line: Line| {
            out.push(Edge {
                from,
                to,
                label,
                line,
            })
        };
        for branch in step.action.branches() {
            push(branch.to, shorten(&branch.label), Line::Solid);
        }
        let outcomes = [
            (step.next, "next", Line::Solid),
            (step.on_failure, "on_failure", Line::Fallback),
            (step.on_timeout, "on_timeout", Line::Fallback),
            (step.on_invalid, "on_invalid", Line::Fallback),
        ];
        for (to, label, line) in outcomes {
            if let Some(to) = to {
                push(to, label.to_owned(), line);
            }
        }
    }
    for (h, (_, ops)) in handlers(flow).iter().enumerate() {
        for op in *ops {
            if let HandlerOp::Goto(to) = op {
                out.push(Edge {
                    from: Node::Handler(h),
                    to: *to,
                    label: "goto".to_owned(),
                    line: Line::Handler,
                });
            }
        }
    }
    out
}

/// The `on:` handlers, by the name written in the file (`error`, a state).
fn handlers(flow: &Flow) -> Vec<(String, &[HandlerOp])> {
    let mut out: Vec<(String, &[HandlerOp])> = flow
        .on_state
        .iter()
        .map(|(state, ops)| (state.clone(), ops.as_slice()))
        .collect();
    if !flow.on_error.is_empty() {
        out.push(("error".to_owned(), flow.on_error.as_slice()));
    }
    out
}

/// What a handler does, in a few words: `log, hangup`.
fn handler_summary(ops: &[HandlerOp]) -> String {
    let words: Vec<&str> = ops
        .iter()
        .map(|op| match op {
            HandlerOp::Log(_) => "log",
            HandlerOp::Set(_) => "set",
            HandlerOp::Goto(_) => "goto",
            HandlerOp::Hangup => "hangup",
        })
        .collect();
    words.join(", ")
}

// ---------------------------------------------------------------- Mermaid

/// Escapes text for a double-quoted Mermaid label: characters that Mermaid
/// reads as syntax become entity codes (`#quot;`, `#35;`, …).
pub fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            // `%%{` anywhere would start a Mermaid directive.
            '%' => out.push_str("#37;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text on one line, for a `%%` comment or the title; `%%` (which could
/// start a Mermaid directive) is split.
fn one_line(text: &str) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    while line.contains("%%") {
        line = line.replace("%%", "% %");
    }
    line
}

fn mermaid_id(node: Node) -> String {
    match node {
        Node::Step(id) => format!("s{}", id.0),
        Node::Handler(h) => format!("h{h}"),
    }
}

/// The flow as a Mermaid flowchart.
pub fn mermaid(flow: &Flow) -> String {
    let mut out = String::new();
    // A JSON string is a valid YAML double-quoted scalar: the title cannot
    // break the front matter.
    let title = serde_json::to_string(&one_line(&flow.name)).unwrap_or_default();
    let _ = writeln!(out, "---\ntitle: {title}\n---");
    out.push_str("flowchart TD\n");
    if let Some(d) = &flow.description {
        let _ = writeln!(out, "    %% {}", one_line(d));
    }
    out.push_str("    start((\"start\"))\n");
    for (i, step) in flow.steps.iter().enumerate() {
        let id = mermaid_id(Node::Step(StepId(i as u32)));
        let label = mermaid_escape(&format!("{}: {}", step.name, step.action.kind()));
        let (open, close) = match shape(&step.action) {
            Shape::Plain => ("(", ")"),
            Shape::Decision => ("{", "}"),
            Shape::Handoff => ("[[", "]]"),
            Shape::End => ("([", "])"),
        };
        let _ = writeln!(out, "    {id}{open}\"{label}\"{close}");
    }
    for (h, (name, ops)) in handlers(flow).iter().enumerate() {
        let label = mermaid_escape(&format!("on {name}: {}", handler_summary(ops)));
        let _ = writeln!(out, "    {}>\"{label}\"]", mermaid_id(Node::Handler(h)));
    }
    let _ = writeln!(out, "    start --> {}", mermaid_id(Node::Step(flow.start)));
    let mut fallbacks = Vec::new();
    for (i, e) in edges(flow).into_iter().enumerate() {
        if e.line == Line::Fallback {
            // Link 0 is the start marker's.
            fallbacks.push((i + 1).to_string());
        }
        let arrow = match e.line {
            Line::Solid | Line::Fallback => "-->",
            Line::Handler => "-.->",
        };
        let _ = writeln!(
            out,
            "    {} {arrow}|\"{}\"| {}",
            mermaid_id(e.from),
            mermaid_escape(&e.label),
            mermaid_id(Node::Step(e.to))
        );
    }
    if !fallbacks.is_empty() {
        let _ = writeln!(
            out,
            "    linkStyle {} stroke:firebrick,color:firebrick",
            fallbacks.join(",")
        );
    }
    let ends: Vec<String> = flow
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| shape(&s.action) == Shape::End)
        .map(|(i, _)| mermaid_id(Node::Step(StepId(i as u32))))
        .collect();
    if !ends.is_empty() {
        out.push_str("    classDef ending stroke-width:3px\n");
        let _ = writeln!(out, "    class {} ending", ends.join(","));
    }
    out
}

// ---------------------------------------------------------------- dot

/// Escapes text for a double-quoted dot string.
pub fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dot_id(node: Node) -> String {
    match node {
        Node::Step(id) => format!("s{}", id.0),
        Node::Handler(h) => format!("h{h}"),
    }
}

/// The flow as a Graphviz dot digraph.
pub fn dot(flow: &Flow) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&flow.name));
    out.push_str("    node [fontname=\"Helvetica\"];\n");
    out.push_str("    edge [fontname=\"Helvetica\", fontsize=10];\n");
    let _ = writeln!(
        out,
        "    start [shape=circle, style=filled, fillcolor=black, label=\"\", width=0.25, tooltip=\"{}\"];",
        dot_escape(flow.description.as_deref().unwrap_or(&flow.name))
    );
    for (i, step) in flow.steps.iter().enumerate() {
        let attrs = match shape(&step.action) {
            Shape::Plain => "shape=box, style=rounded",
            Shape::Decision => "shape=diamond",
            Shape::Handoff => "shape=box, peripheries=2",
            Shape::End => "shape=doublecircle",
        };
        let label = format!("{}\\n{}", dot_escape(&step.name), step.action.kind());
        let _ = writeln!(
            out,
            "    {} [{attrs}, label=\"{label}\"];",
            dot_id(Node::Step(StepId(i as u32)))
        );
    }
    for (h, (name, ops)) in handlers(flow).iter().enumerate() {
        let label = format!(
            "on {}\\n{}",
            dot_escape(name),
            dot_escape(&handler_summary(ops))
        );
        let _ = writeln!(
            out,
            "    {} [shape=note, style=dashed, label=\"{label}\"];",
            dot_id(Node::Handler(h))
        );
    }
    let _ = writeln!(out, "    start -> {};", dot_id(Node::Step(flow.start)));
    for e in edges(flow) {
        let style = match e.line {
            Line::Solid => "",
            Line::Fallback => ", color=firebrick, fontcolor=firebrick",
            Line::Handler => ", style=dashed",
        };
        let _ = writeln!(
            out,
            "    {} -> {} [label=\"{}\"{style}];",
            dot_id(e.from),
            dot_id(Node::Step(e.to)),
            dot_escape(&e.label)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mermaid_labels_cannot_break_out() {
        assert_eq!(
            mermaid_escape(r#"a "b" #1 <x> | `y` %%{init}%%"#),
            "a #quot;b#quot; #35;1 #lt;x#gt; #124; #96;y#96; #37;#37;{init}#37;#37;"
        );
    }

    #[test]
    fn dot_labels_cannot_break_out() {
        assert_eq!(dot_escape(r#"a "b" \ c"#), r#"a \"b\" \\ c"#);
    }

    #[test]
    fn long_labels_are_cut() {
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), MAX_LABEL);
        assert_eq!(shorten("a\n  b"), "a b");
        assert_eq!(one_line("x %%{init: {}}%%"), "x % %{init: {}}% %");
    }
}
