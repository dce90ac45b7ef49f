//! The graph's Prometheus metrics: ingest outcomes and durations, identity merges. The
//! binary registers them into the daemon's one registry ([`register`]).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of counted operations and batches.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied` / `skipped` / `rejected` (in a rejected batch) for operations,
    /// `committed` / `rejected` for batches.
    pub outcome: &'static str,
}

/// The graph's metrics.
#[derive(Debug)]
pub struct GraphMetrics {
    /// Record operations by outcome.
    pub ingest_operations: Family<OutcomeLabels, Counter>,
    /// Ingest batches by outcome.
    pub ingest_batches: Family<OutcomeLabels, Counter>,
    /// Ingest batch durations (apply and commit).
    pub ingest_duration: Histogram,
    /// Identity merges made.
    pub identity_merges: Counter,
}

/// The process-wide graph metrics.
pub static METRICS: LazyLock<GraphMetrics> = LazyLock::new(|| GraphMetrics {
    ingest_operations: Family::default(),
    ingest_batches: Family::default(),
    // 0.5 ms to about 8 s.
    ingest_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
    identity_merges: Counter::default(),
});

/// Adds the graph's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register("rapport_ingest_operations", "Record operations by outcome", m.ingest_operations.clone());
    registry.register("rapport_ingest_batches", "Ingest batches by outcome", m.ingest_batches.clone());
    registry.register("rapport_ingest_batch_duration_seconds", "Time to apply and commit a batch", m.ingest_duration.clone());
    registry.register("rapport_identity_merges", "Identity merges made by resolution", m.identity_merges.clone());
}
