//! Integration tests of the host library: the store conformance suite, the graph's
//! ingest and identity rules, the HTTP API over loopback, the demo world, and the plugin
//! runtime with real components and real servers.

// Test helpers unwrap: a panic with a location is the right failure in a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod demo;
mod harness;
mod lifecycle;
mod network;
mod plugins;
mod remote;
mod scheduling;
