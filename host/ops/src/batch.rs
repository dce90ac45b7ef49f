//! A batch of operations from one source and its outcome: what a writer hands the graph
//! (the API, `import`, a plugin run) and what it gets back.

use chrono::{DateTime, Utc};

use crate::{FieldError, Operation};

/// What to do when some operations of a batch are invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidPolicy {
    /// Commit nothing (the API's ingest).
    RejectBatch,
    /// Drop each invalid operation, commit the rest (`import`, plugin runs).
    SkipInvalid,
}

/// A batch of operations from one source, plus metadata committed with it.
#[derive(Debug)]
pub struct IngestBatch {
    /// The connection that sent the operations.
    pub source: String,
    /// The operations, applied in order.
    pub operations: Vec<Operation>,
    /// What to do with invalid operations.
    pub policy: InvalidPolicy,
    /// What the source may assert about identity.
    pub trust: SourceTrust,
    /// Metadata written in the same atomic commit (import progress, a plugin cursor).
    pub meta: Vec<(String, Vec<u8>)>,
    /// The time of ingest, used where a record gives none.
    pub now: DateTime<Utc>,
}

impl IngestBatch {
    /// The operator's own batch (fully trusted, no metadata, now), skipping invalid
    /// operations: what imports, the demo and benchmarks send.
    pub fn trusted(source: impl Into<String>, operations: Vec<Operation>) -> Self {
        Self {
            source: source.into(),
            operations,
            policy: InvalidPolicy::SkipInvalid,
            trust: SourceTrust::FULL,
            meta: Vec::new(),
            now: Utc::now(),
        }
    }
}

/// What a source may assert about identity beyond its own records. Imports and the API are
/// the operator's own and fully trusted; a plugin instance gets what `rapport.toml` grants it
/// (`trust` under `[plugins.instances.<name>]`), nothing by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTrust {
    /// May mark a person as one of our employees (`internal`) whose addresses are not in
    /// our own domains.
    #[serde(default)]
    pub internal: bool,
    /// May join two existing clusters (a record claiming keys of two other clusters);
    /// otherwise the pair goes to the review list.
    #[serde(default)]
    pub join_clusters: bool,
}

impl SourceTrust {
    /// Everything: the operator's own imports and API writes.
    pub const FULL: Self = Self { internal: true, join_clusters: true };
}

/// An operation that was not applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SkippedOperation {
    /// Position in the batch.
    pub index: usize,
    /// The record's external id.
    pub external_id: String,
    /// Every problem found, with paths relative to the operation.
    pub errors: Vec<FieldError>,
}

/// The outcome of one batch.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IngestReport {
    /// Whether the batch was written.
    pub committed: bool,
    /// Operations applied.
    pub applied: usize,
    /// Operations not applied.
    pub skipped: Vec<SkippedOperation>,
    /// Identity merges made.
    pub merges: usize,
    /// Store keys written or removed by the commit.
    pub keys_written: usize,
    /// Assertions the source is not trusted for, set aside: `internal` flags ignored, and
    /// cluster joins sent to the review list.
    pub untrusted: usize,
    /// Entries the batch added to the change feed.
    pub changes: usize,
    /// Interactions filed again under other organizations or employees because the batch
    /// changed who their participants are.
    pub refiled: usize,
}
