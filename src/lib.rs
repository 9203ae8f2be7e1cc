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

pub mod cli;
pub mod engine;
pub mod flow;
pub mod graph;
pub mod sim;
