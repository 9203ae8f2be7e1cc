//! callflow's integration tests, as one test binary (one link of axum,
//! reqwest and rhai instead of one per file).
//!
//! Each module was a test file of its own; `support` holds what several
//! share. Tests that need something outside the repository (Microsoft's
//! reference pages in `../shared/seeds`) skip with one printed notice when
//! it is missing, and fail instead when `CALLFLOW_REQUIRE` names it (CI
//! sets it): see [`support::require`].

mod support;

mod browser;
mod cluster;
mod collect;
mod diagnostics;
mod e2e;
mod every_action;
mod evict;
mod failover;
mod fetch;
mod fuzz_corpus;
mod graph_client;
mod graph_seeds;
mod hostile;
mod load;
mod notifications;
mod params;
mod postgres;
mod recordings;
mod runtime;
mod scenarios;
mod server;
mod shipped;
mod sim_graph;
mod store;
mod studio;
