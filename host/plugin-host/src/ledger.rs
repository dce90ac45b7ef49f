//! Where the plugin host writes: the seam between the runtime and the graph. The host
//! commits a run's operations with its checkpoint, and keeps its registry (instances,
//! cursors, run records), through [`Ledger`]; the daemon hands it the graph, and nothing
//! here depends on the graph crate, so a change there does not rebuild the runtime.

use rapport_ops::{IngestBatch, IngestReport};

/// Metadata rows: a name and its encoded value.
pub type MetaRows = Vec<(String, Vec<u8>)>;

/// Derives, from a batch's outcome, the metadata committed with it (a run's record with
/// its counts).
pub type Finish<'a> = Box<dyn FnOnce(&IngestReport) -> MetaRows + Send + 'a>;

/// The durable state the plugin host writes to. Every write is one atomic, durable commit.
pub trait Ledger: Send + Sync {
    /// Applies `batch` (invalid operations as its policy says) and writes, in the same
    /// commit, its metadata and the rows `finish` derives from the outcome.
    fn ingest_then(&self, batch: IngestBatch, finish: Finish<'_>) -> Result<IngestReport, LedgerError>;

    /// One metadata value.
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError>;

    /// Every metadata value whose name starts with `prefix`, in name order.
    fn meta_with_prefix(&self, prefix: &str) -> Result<MetaRows, LedgerError>;

    /// Metadata values whose names fall in `[start, end)`, in name order (or reverse), at
    /// most `limit` of them.
    fn meta_range(&self, start: &str, end: &str, reverse: bool, limit: usize) -> Result<MetaRows, LedgerError>;

    /// Writes metadata values (`None` removes one).
    fn write_meta(&self, rows: Vec<(String, Option<Vec<u8>>)>) -> Result<(), LedgerError>;
}

/// The ledger failed (the store's error, carried whole).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct LedgerError(Box<dyn std::error::Error + Send + Sync>);

impl LedgerError {
    /// Wraps the backing store's error.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(err))
    }
}
