//! End-to-end scenarios: the real `rapport` binary, started as users start it, with
//! stores in temporary directories and HTTP over loopback.

// Test helpers unwrap: a panic with a location is the right failure in a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod boundaries;
mod budgets;
mod crash_import;
mod crash_plugin;
mod demo;
mod example_connector;
mod fuzz;
mod harness;
mod plugin_cli;
mod plugin_guide;
mod secrets;
mod serve;
mod signals;
