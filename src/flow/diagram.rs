//! Flow diagrams: one graph model, drawn as Mermaid, Graphviz dot, or by the studio.
//!
//! [`graph`] turns a checked [`Flow`] into a [`Graph`]: a node per step
//! (and per `on:` handler), an edge per outcome. A node's [`Shape`] says
//! what kind of action its step does (a decision, a hand-off to someone
//! else, an end); each edge is labelled with the outcome that takes it
//! (`next`, `on_failure`, a menu key, a switch condition) and carries the
//! words a timeline uses for it (`via`), so that the path a run took
//! ([`Graph::path`]) and scenario coverage are read off the same edges.
//! `on:` handlers that `goto` a step are dashed edges. [`mermaid`] and
//! [`dot`] render the model as text for a viewer (labels escaped so that no
//! step name or expression can break the syntax); the studio serialises it
//! as JSON and draws it in the page. This module reads a checked [`Flow`]
//! and never changes it.

use std::fmt::Write as _;

use serde::Serialize;

use super::actions::Action;
use super::compiled::{Flow, HandlerOp, StepId};
use super::span::line_col;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Does something on the call and goes on (answer, play, set, log, wait).
    Plain,
    /// Chooses where to go (switch, menu).
    Decision,
    /// Hands the call to someone or places a call (transfer, redirect, call, join).
    Handoff,
    /// Asks the caller for input and keeps it (collect, record).
    Input,
    /// Asks the designer's own service (fetch).
    Data,
    /// Holds the caller while ringing a group (ring_group).
    Group,
    /// Ends the call (hangup, reject).
    End,
    /// The start marker.
    Start,
    /// An `on:` handler.
    Handler,
}

fn shape(action: &Action) -> Shape {
    action.action_kind().shape()
}

/// How an edge is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// The way on when all goes well.
    Solid,
    /// A failure, timeout or invalid key.
    Fallback,
    /// A handler's `goto`.
    Handler,
}

/// One edge: from, to, label, kind, and the timeline's words for it.
struct Edge {
    from: Node,
    to: StepId,
    label: String,
    line: Line,
    via: String,
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
fn edges_of(flow: &Flow) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, step) in flow.steps.iter().enumerate() {
        let from = Node::Step(StepId(i as u32));
        let mut push = |to: StepId, label: String, line: Line, via: String| {
            out.push(Edge {
                from,
                to,
                label,
                line,
                via,
            })
        };
        for branch in step.action.branches() {
            push(branch.to, shorten(&branch.label), Line::Solid, branch.via);
        }
        let outcomes = [
            (step.next, "next", Line::Solid),
            (step.on_failure, "on_failure", Line::Fallback),
            (step.on_timeout, "on_timeout", Line::Fallback),
            (step.on_invalid, "on_invalid", Line::Fallback),
        ];
        for (to, label, line) in outcomes {
            if let Some(to) = to {
                push(to, label.to_owned(), line, label.to_owned());
            }
        }
    }
    for (h, (name, ops)) in handlers(flow).iter().enumerate() {
        for op in *ops {
            if let HandlerOp::Goto(to) = op {
                out.push(Edge {
                    from: Node::Handler(h),
                    to: *to,
                    label: "goto".to_owned(),
                    line: Line::Handler,
                    via: format!("on.{name}"),
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

// ---------------------------------------------------------------- the model

/// A flow as a graph: what `callflow graph` and the studio draw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Graph {
    /// The flow's name.
    pub flow: String,
    /// What it is for.
    pub description: Option<String>,
    /// The start marker (`start`), every step in file order (`s0`, `s1`, …),
    /// then every `on:` handler (`h0`, …).
    pub nodes: Vec<GraphNode>,
    /// The start edge first, then every step's outcomes in step order, then
    /// the handlers' `goto`s.
    pub edges: Vec<GraphEdge>,
}

/// One node of a [`Graph`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphNode {
    /// `start`, `s{index}` for a step, `h{index}` for a handler.
    pub id: String,
    /// How it is drawn.
    pub shape: Shape,
    /// The step's name, `on STATE` for a handler, `start`.
    pub title: String,
    /// The step's action, what a handler does (`log, hangup`), or nothing.
    pub subtitle: String,
    /// The step's `description`, as written (diagrams draw it cut short,
    /// the studio shows it whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The step it draws, if any.
    pub step: Option<String>,
    /// The lines of the flow file that define it (1-based, inclusive).
    pub lines: Option<[usize; 2]>,
}

/// One edge of a [`Graph`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphEdge {
    /// The node it leaves.
    pub from: String,
    /// The node it enters.
    pub to: String,
    /// What the diagram writes on it (`next`, `1`, a condition cut short).
    pub label: String,
    /// How it is drawn.
    pub line: Line,
    /// How a timeline says a step was reached through it (`next`, `key 1`,
    /// `when open("office")`, `otherwise`, `on.error`, `start`).
    pub via: String,
}

/// The nodes and edges a run went through.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Walk {
    /// Node ids, in the order they were entered (repeats kept).
    pub nodes: Vec<String>,
    /// Indices into [`Graph::edges`], in the order they were taken.
    pub edges: Vec<usize>,
}

fn node_id(node: Node) -> String {
    match node {
        Node::Step(id) => format!("s{}", id.0),
        Node::Handler(h) => format!("h{h}"),
    }
}

/// The lines a step's definition spans: from its name to the last line
/// indented deeper than it.
fn step_lines(text: &str, offset: usize) -> [usize; 2] {
    let (first, col) = line_col(text, offset);
    let mut last = first;
    for (i, line) in text.lines().enumerate().skip(first) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.chars().count() - trimmed.chars().count() < col {
            break;
        }
        last = i + 1;
    }
    [first, last]
}

/// The graph of `flow`.
pub fn graph(flow: &Flow) -> Graph {
    let text = &*flow.source.text;
    let mut nodes = vec![GraphNode {
        id: "start".into(),
        shape: Shape::Start,
        title: "start".into(),
        subtitle: String::new(),
        description: None,
        step: None,
        lines: None,
    }];
    for (i, step) in flow.steps.iter().enumerate() {
        nodes.push(GraphNode {
            id: node_id(Node::Step(StepId(i as u32))),
            shape: shape(&step.action),
            title: step.name.clone(),
            subtitle: step.action.kind().to_owned(),
            description: step.description.clone(),
            step: Some(step.name.clone()),
            lines: (!text.is_empty()).then(|| step_lines(text, step.span.start)),
        });
    }
    for (h, (name, ops)) in handlers(flow).iter().enumerate() {
        nodes.push(GraphNode {
            id: node_id(Node::Handler(h)),
            shape: Shape::Handler,
            title: format!("on {name}"),
            subtitle: handler_summary(ops),
            description: None,
            step: None,
            lines: None,
        });
    }
    let mut edges = vec![GraphEdge {
        from: "start".into(),
        to: node_id(Node::Step(flow.start)),
        label: String::new(),
        line: Line::Solid,
        via: "start".into(),
    }];
    edges.extend(edges_of(flow).into_iter().map(|e| GraphEdge {
        from: node_id(e.from),
        to: node_id(Node::Step(e.to)),
        label: e.label,
        line: e.line,
        via: e.via,
    }));
    Graph {
        flow: flow.name.clone(),
        description: flow.description.clone(),
        nodes,
        edges,
    }
}

impl Graph {
    /// The node that draws the step named `step`.
    pub fn step_node(&self, step: &str) -> Option<&GraphNode> {
        self.nodes.iter().find(|n| n.step.as_deref() == Some(step))
    }

    /// What a run went through, from its steps as a timeline records them
    /// (each step entered and how it was reached, in order): the start
    /// marker and every step entered, and each edge that matches how the
    /// next step was reached (`via`) from the step before it (or from the
    /// start marker, or from a handler for `on.…`).
    pub fn path<'a>(&self, steps: impl IntoIterator<Item = (&'a str, &'a str)>) -> Walk {
        let mut walk = Walk::default();
        let mut prev: Option<String> = None;
        for (step, via) in steps {
            let Some(node) = self.step_node(step) else {
                continue;
            };
            let found = self.edges.iter().position(|e| {
                e.to == node.id
                    && e.via == via
                    && match via {
                        "start" => e.from == "start",
                        v if v.starts_with("on.") => e.from.starts_with('h'),
                        _ => prev.as_deref() == Some(e.from.as_str()),
                    }
            });
            if via == "start" && walk.nodes.is_empty() {
                walk.nodes.push("start".into());
            }
            if let Some(i) = found {
                if let Some(from) = self.edges[i].from.strip_prefix('h') {
                    walk.nodes.push(format!("h{from}"));
                }
                walk.edges.push(i);
            }
            walk.nodes.push(node.id.clone());
            prev = Some(node.id.clone());
        }
        walk
    }

    fn node(&self, id: &str) -> Option<&GraphNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every link between two steps as `(from step, via, to step)`.
    pub fn step_links(&self) -> Vec<(String, String, String)> {
        self.edges
            .iter()
            .filter_map(|e| {
                let from = self.node(&e.from)?.step.clone()?;
                let to = self.node(&e.to)?.step.clone()?;
                Some((from, e.via.clone(), to))
            })
            .collect()
    }
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

/// The flow as a Mermaid flowchart.
pub fn mermaid(flow: &Flow) -> String {
    render_mermaid(&graph(flow))
}

/// A graph as a Mermaid flowchart.
pub fn render_mermaid(g: &Graph) -> String {
    let mut out = String::new();
    // A JSON string is a valid YAML double-quoted scalar: the title cannot
    // break the front matter.
    let title = serde_json::to_string(&one_line(&g.flow)).unwrap_or_default();
    let _ = writeln!(out, "---\ntitle: {title}\n---");
    out.push_str("flowchart TD\n");
    if let Some(d) = &g.description {
        let _ = writeln!(out, "    %% {}", one_line(d));
    }
    for n in &g.nodes {
        let mut label = match n.shape {
            Shape::Start => mermaid_escape(&n.title),
            _ => mermaid_escape(&format!("{}: {}", n.title, n.subtitle)),
        };
        if let Some(d) = &n.description {
            // A line of its own under the action: `<br/>` is Mermaid's break.
            let _ = write!(label, "<br/>{}", mermaid_escape(&shorten(d)));
        }
        let (open, close) = match n.shape {
            Shape::Plain => ("(", ")"),
            Shape::Decision => ("{", "}"),
            Shape::Handoff => ("[[", "]]"),
            Shape::Input => ("[/", "/]"),
            Shape::Data => ("[(", ")]"),
            Shape::Group => ("{{", "}}"),
            Shape::End => ("([", "])"),
            Shape::Start => ("((", "))"),
            Shape::Handler => (">", "]"),
        };
        let _ = writeln!(out, "    {}{open}\"{label}\"{close}", n.id);
    }
    let mut fallbacks = Vec::new();
    for (i, e) in g.edges.iter().enumerate() {
        if e.line == Line::Fallback {
            fallbacks.push(i.to_string());
        }
        if e.from == "start" {
            let _ = writeln!(out, "    start --> {}", e.to);
            continue;
        }
        let arrow = match e.line {
            Line::Solid | Line::Fallback => "-->",
            Line::Handler => "-.->",
        };
        let _ = writeln!(
            out,
            "    {} {arrow}|\"{}\"| {}",
            e.from,
            mermaid_escape(&e.label),
            e.to
        );
    }
    if !fallbacks.is_empty() {
        let _ = writeln!(
            out,
            "    linkStyle {} stroke:firebrick,color:firebrick",
            fallbacks.join(",")
        );
    }
    let ends: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| n.shape == Shape::End)
        .map(|n| n.id.as_str())
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

/// The flow as a Graphviz dot digraph.
pub fn dot(flow: &Flow) -> String {
    render_dot(&graph(flow))
}

/// A graph as a Graphviz dot digraph.
pub fn render_dot(g: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&g.flow));
    out.push_str("    node [fontname=\"Helvetica\"];\n");
    out.push_str("    edge [fontname=\"Helvetica\", fontsize=10];\n");
    for n in &g.nodes {
        let attrs = match n.shape {
            Shape::Start => {
                let _ = writeln!(
                    out,
                    "    start [shape=circle, style=filled, fillcolor=black, label=\"\", width=0.25, tooltip=\"{}\"];",
                    dot_escape(g.description.as_deref().unwrap_or(&g.flow))
                );
                continue;
            }
            Shape::Plain => "shape=box, style=rounded",
            Shape::Decision => "shape=diamond",
            Shape::Handoff => "shape=box, peripheries=2",
            Shape::Input => "shape=parallelogram",
            Shape::Data => "shape=cylinder",
            Shape::Group => "shape=hexagon",
            Shape::End => "shape=doublecircle",
            Shape::Handler => "shape=note, style=dashed",
        };
        match &n.description {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "    {} [{attrs}, label=\"{}\\n{}\\n{}\", tooltip=\"{}\"];",
                    n.id,
                    dot_escape(&n.title),
                    dot_escape(&n.subtitle),
                    dot_escape(&shorten(d)),
                    dot_escape(d)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "    {} [{attrs}, label=\"{}\\n{}\"];",
                    n.id,
                    dot_escape(&n.title),
                    dot_escape(&n.subtitle)
                );
            }
        }
    }
    for e in &g.edges {
        if e.from == "start" {
            let _ = writeln!(out, "    start -> {};", e.to);
            continue;
        }
        let style = match e.line {
            Line::Solid => "",
            Line::Fallback => ", color=firebrick, fontcolor=firebrick",
            Line::Handler => ", style=dashed",
        };
        let _ = writeln!(
            out,
            "    {} -> {} [label=\"{}\"{style}];",
            e.from,
            e.to,
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
    fn the_graph_knows_lines_and_paths() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/reception.yaml");
        let flow = crate::flow::load_file(&path)
            .flow
            .expect("reception.yaml loads");
        let g = graph(&flow);
        let greet = g.step_node("greet").expect("a node for greet");
        assert_eq!((greet.id.as_str(), greet.shape), ("s0", Shape::Plain));
        let text = &*flow.source.text;
        let [first, last] = greet.lines.expect("lines");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[first - 1].trim(), "greet:");
        assert_eq!(lines[last - 1].trim(), "next: hours");
        let walk = g.path([
            ("greet", "start"),
            ("hours", "next"),
            ("menu", "when open(\"office\")"),
            ("sales", "key 1"),
        ]);
        assert_eq!(walk.nodes, ["start", "s0", "s1", "s2", "s3"]);
        let vias: Vec<&str> = walk
            .edges
            .iter()
            .map(|i| g.edges[*i].via.as_str())
            .collect();
        assert_eq!(vias, ["start", "next", "when open(\"office\")", "key 1"]);
        assert!(
            g.step_links()
                .contains(&("menu".into(), "on_timeout".into(), "operator".into()))
        );
    }

    #[test]
    fn a_steps_description_is_drawn_escaped() {
        let text = "flow: d\ntrigger: {incoming_call: {}}\nstart: a\nsteps:\n  a:\n    description: 'Say \"hi\" <b>#1</b>'\n    answer: {}\n    next: b\n  b:\n    hangup: {}\n";
        let flow = crate::flow::load_str("d.yaml", text).flow.expect("loads");
        let g = graph(&flow);
        let a = g.step_node("a").expect("a");
        assert_eq!(a.description.as_deref(), Some("Say \"hi\" <b>#1</b>"));
        assert_eq!(g.step_node("b").expect("b").description, None);
        let m = mermaid(&flow);
        assert!(
            m.contains("s0(\"a: answer<br/>Say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt;\")"),
            "{m}"
        );
        let d = dot(&flow);
        assert!(
            d.contains(
                r#"label="a\nanswer\nSay \"hi\" <b>#1</b>", tooltip="Say \"hi\" <b>#1</b>""#
            ),
            "{d}"
        );
        let json = serde_json::to_value(&g).expect("json");
        assert_eq!(json["nodes"][1]["description"], "Say \"hi\" <b>#1</b>");
    }

    #[test]
    fn long_labels_are_cut() {
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), MAX_LABEL);
        assert_eq!(shorten("a\n  b"), "a b");
        assert_eq!(one_line("x %%{init: {}}%%"), "x % %{init: {}}% %");
    }
}
