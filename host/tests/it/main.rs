//! Integration tests of the host library: the store conformance suite, the graph's
//! ingest and identity rules, the HTTP API over loopback, and the demo world.

// Test helpers unwrap: a panic with a location is the right failure in a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod demo;
mod graph;
mod harness;
mod plugins;
mod store;
