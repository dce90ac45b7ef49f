//! Rapport: a relationship-context hub.
//!
//! This crate composes the daemon from the crates along the flow: record operations
//! (`rapport_ops`) reach the graph (`rapport_graph`, over `rapport_store`) from the HTTP
//! [`api`], bulk [`import`] and the sandboxed plugins of `rapport_plugin_host`, whose
//! network access follows `rapport_net` and whose schedules `rapport_schedule` keeps.
//! Here live the [`config`] composition, the [`ledger`] that hands the graph to the
//! plugin host, the [`metrics`] registry, the [`demo`] world and
//! the `rapport` binary's command line (`main.rs`, `cli.rs`).

pub mod api;
pub mod config;
pub mod demo;
pub mod import;
pub mod ledger;
pub mod metrics;
pub mod telemetry;
