//! Integration tests of the host library: the store conformance suite, the graph's
//! ingest and identity rules, the HTTP API over loopback, and the demo world.

mod api;
mod demo;
mod graph;
mod harness;
mod store;
