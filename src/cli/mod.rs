//! The `callflow` command line: one file per command, thin.
