//! Rapport: a relationship-context hub.
//!
//! The daemon keeps a unified client-context graph ([`graph`]) in an embedded store
//! ([`store`]), fed by record operations ([`ops`]) from the HTTP API ([`api`]), bulk
//! [`import`] and sandboxed WebAssembly [`plugin`]s, whose network access goes through
//! the rules in [`net`]. The `rapport` binary (`main.rs`, `cli.rs`)
//! wires them to the command line.

pub mod api;
pub mod codec;
pub mod config;
pub mod demo;
pub mod graph;
pub mod import;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod plugin;
pub mod schedule;
pub mod store;
pub mod telemetry;
