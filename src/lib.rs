//! callflow: a declarative call-flow engine for Microsoft Graph calling bots.
//!
//! # Layout
//! - [`flow`]: flow files: loading, checks, diagnostics, expressions, diagrams, schema.
//! - [`engine`]: the pure interpreter: `Session`, `Event`, `Command`, `step`.
//! - [`graph`]: Graph's wire types and the tolerant notification reader.
//! - [`sim`]: the simulated Graph and scenario tests.
//! - [`cli`]: the `callflow` commands.
//!
//! See `ARCHITECTURE.md` for the invariants each part keeps.
//!
//! # Example
//!
//! Load a flow and see what is wrong with it, before any caller does:
//!
//! ```
//! let text = "flow: hello\ntrigger: { api: {} }\nstart: greet\nsteps:\n  greet:\n    log: hi\n    next: by\n  bye:\n    hangup: {}\n";
//! let loaded = callflow::flow::load_str("hello.yaml", text);
//! assert!(loaded.flow.is_none());
//! let problem = &loaded.diagnostics[0];
//! assert_eq!(problem.code, "callflow::step::unknown");
//! assert_eq!(problem.location(), "hello.yaml:7:11");
//! assert_eq!(problem.help.as_deref(), Some("did you mean `bye`?"));
//! ```

pub mod alloc;
pub mod cli;
pub mod engine;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod load;
pub mod phone;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod sim;
pub mod studio;
