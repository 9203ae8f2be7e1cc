//! Flow files: the language IVR designers write.
//!
//! Loading goes text → [`yaml`] tree (budgeted) → [`model`] types (through
//! the span-keeping [`de`]serializer) → [`check`] (every semantic rule,
//! every diagnostic collected) → a compiled [`Flow`]. Each action of the
//! language is one module of [`actions`]: its YAML form, its outcomes, its
//! checks and its compiled form together. [`load`] reads files
//! and folders and checks a set of flows together. This module knows
//! nothing of Graph's JSON, HTTP or tokio; it returns every diagnostic, not
//! the first.

pub mod actions;
pub mod calendar;
pub mod check;
pub mod compiled;
pub mod de;
pub mod diagnostic;
pub mod diagram;
pub mod expr;
pub mod load;
pub mod model;
pub mod params;
pub mod roots;
pub mod schema;
pub mod span;
pub mod suggest;
pub mod typing;
pub mod yaml;

pub use actions::fetch::FetchPolicy;
pub use actions::join_meeting::Meeting;
pub use actions::transfer::Transferee;
pub use actions::{Action, ActionKind};
pub use compiled::{
    BUILTIN_ENDS, Flow, HandlerOp, Param, Pattern, Step, StepId, Target, Template, TemplatePart,
    Trigger,
};
pub use diagnostic::{Diagnostic, Severity, SourceFile};
pub use load::{FlowSet, LoadReport, Loaded, check_fetch, load_file, load_paths, load_str};
pub use params::{ParamProblem, ParamProblemKind, ParamsError, check_params};
