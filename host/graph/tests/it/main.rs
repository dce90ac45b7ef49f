//! The graph's integration tests: ingest, identity, the change feed, queries and record
//! limits over a real sled store.

// Test helpers unwrap: a panic with a location is the right failure in a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod graph;
mod order;

use std::sync::Arc;

use rapport_graph::{Graph, IdentityRules};
use rapport_ops::{IngestBatch, IngestReport, Operation, parse_operation};
use rapport_store::SledStore;

/// A graph in a temporary directory, removed on drop.
struct TempGraph {
    graph: Arc<Graph>,
    _dir: tempfile::TempDir,
}

fn rules() -> IdentityRules {
    IdentityRules::with_defaults(["northwind.example".to_owned()])
}

fn temp_graph() -> TempGraph {
    temp_graph_with(rules())
}

fn temp_graph_with(rules: IdentityRules) -> TempGraph {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 32 << 20).unwrap();
    TempGraph { graph: Arc::new(Graph::new(Arc::new(store), rules)), _dir: dir }
}

/// Parses an operation written as JSON.
fn op(json: &str) -> Operation {
    parse_operation(json, "").unwrap_or_else(|e| panic!("bad test operation {json}: {e}"))
}

/// Ingests `ops` from `source`, skipping invalid ones.
fn ingest(graph: &Graph, source: &str, ops: &[&str]) -> IngestReport {
    graph.ingest(IngestBatch::trusted(source, ops.iter().map(|j| op(j)).collect())).unwrap()
}
