//! The graph as the plugin host's [`Ledger`]: the one place the runtime meets the graph, so
//! neither crate depends on the other.

use std::sync::Arc;

use rapport_graph::{Graph, IdentityRules};
use rapport_ops::{IngestBatch, IngestReport, RecordLimits};
use rapport_plugin_host::ledger::{Finish, Ledger, LedgerError, MetaRows};
use rapport_store::{SledStore, StoreError};

/// The graph the plugin host commits to (and, for a test bench, the temporary directory of
/// its store).
#[derive(Debug)]
pub struct GraphLedger {
    graph: Arc<Graph>,
    _dir: Option<tempfile::TempDir>,
}

impl GraphLedger {
    /// `graph`, for the plugin host.
    pub fn over(graph: Arc<Graph>) -> Arc<dyn Ledger> {
        Arc::new(Self { graph, _dir: None })
    }

    /// A fresh graph over a temporary store, removed when the ledger is dropped: what
    /// `rapport plugin test` runs a package against, with the deployment's `[records]`
    /// limits and `[identity]` rules.
    pub fn throwaway(identity: IdentityRules, records: RecordLimits) -> Result<Arc<dyn Ledger>, StoreError> {
        let dir = tempfile::tempdir().map_err(|source| StoreError::Open { path: std::env::temp_dir(), source })?;
        let store = SledStore::open(&dir.path().join("store"), 16 << 20)?;
        let graph = Arc::new(Graph::new(Arc::new(store), identity).with_limits(records));
        Ok(Arc::new(Self { graph, _dir: Some(dir) }))
    }
}

impl Ledger for GraphLedger {
    fn ingest_then(&self, batch: IngestBatch, finish: Finish<'_>) -> Result<IngestReport, LedgerError> {
        self.graph.ingest_then(batch, finish).map_err(LedgerError::new)
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.graph.meta(name).map_err(LedgerError::new)
    }

    fn meta_with_prefix(&self, prefix: &str) -> Result<MetaRows, LedgerError> {
        self.graph.meta_with_prefix(prefix).map_err(LedgerError::new)
    }

    fn meta_range(&self, start: &str, end: &str, reverse: bool, limit: usize) -> Result<MetaRows, LedgerError> {
        self.graph.meta_range(start, end, reverse, limit).map_err(LedgerError::new)
    }

    fn write_meta(&self, rows: Vec<(String, Option<Vec<u8>>)>) -> Result<(), LedgerError> {
        self.graph.write_meta(rows).map_err(LedgerError::new)
    }
}
