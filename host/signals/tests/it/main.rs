//! The signal stage's integration tests over a real graph on sled: signals on hand-computed
//! cases, and the maintainer equal to a rebuild after random histories.

// Test helpers unwrap: a panic with a location is the right failure in a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod equal;
mod table;

use std::sync::Arc;

use rapport_graph::model::{NodeId, RecordKind, Timestamp};
use rapport_graph::{Graph, IdentityRules};
use rapport_ops::{IngestBatch, parse_operation};
use rapport_signals::{Signals, SignalsConfig};
use rapport_store::SledStore;

/// A graph and its signals in a temporary directory, removed on drop.
struct World {
    graph: Arc<Graph>,
    signals: Signals,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 32 << 20).unwrap();
        let graph = Arc::new(Graph::new(Arc::new(store), IdentityRules::with_defaults(["northwind.example".to_owned()])));
        let signals = Signals::open(Arc::clone(&graph), SignalsConfig::default()).unwrap();
        Self { graph, signals, _dir: dir }
    }

    /// Ingests operations written as JSON from `source`; every one must apply.
    fn ingest(&self, source: &str, ops: &[String]) {
        assert_eq!(self.offer(source, ops), 0);
    }

    /// Ingests operations written as JSON from `source`; returns how many were skipped
    /// (a delete of a record the source never sent).
    fn offer(&self, source: &str, ops: &[String]) -> usize {
        let ops = ops.iter().map(|j| parse_operation(j, "").unwrap_or_else(|e| panic!("bad test operation {j}: {e}"))).collect();
        self.graph.ingest(IngestBatch::trusted(source, ops)).unwrap().skipped.len()
    }

    fn id(&self, source: &str, kind: RecordKind, external_id: &str) -> NodeId {
        self.graph.resolve(source, kind, external_id).unwrap().unwrap_or_else(|| panic!("{source}/{external_id} is not in the graph"))
    }
}

fn time(text: &str) -> Timestamp {
    Timestamp::from(chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc())
}
