//! Check a flow held in a string, list its steps and draw it as Mermaid.
//!
//! `cargo run --example embedded_flow`

use callflow::flow::diagram::{DiagramFormat, diagram};
use callflow::flow::load_str;

const FLOW: &str = r#"
flow: after-hours
trigger:
  incoming_call:
    to: "+14255550199"
start: greet
steps:
  greet:
    answer: {}
    next: closed
  closed:
    play: { prompt: https://cdn.contoso.com/closed.wav }
    next: bye
  bye:
    hangup: {}
"#;

fn main() {
    let loaded = load_str("after-hours.yaml", FLOW);
    for d in &loaded.diagnostics {
        eprint!("{}", d.render(100));
    }
    let Some(flow) = loaded.flow else {
        std::process::exit(1);
    };
    for step in &flow.steps {
        println!("{:<8} {}", step.name, step.action.kind());
    }
    print!("{}", diagram(&flow, DiagramFormat::Mermaid));
}
