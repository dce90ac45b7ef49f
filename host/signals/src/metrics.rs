//! The signal maintainer's Prometheus metrics; the binary registers them ([`register`]).

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The maintainer's metrics.
#[derive(Debug, Default)]
pub struct SignalsMetrics {
    /// Change-feed entries read.
    pub changes_read: Counter,
    /// Records whose contribution changed.
    pub records_updated: Counter,
    /// Feed entries written and not yet read by the maintainer, as of its last look.
    pub lag: Gauge,
    /// Rebuilds done.
    pub rebuilds: Counter,
}

/// The process-wide signal metrics.
pub static METRICS: LazyLock<SignalsMetrics> = LazyLock::new(SignalsMetrics::default);

/// Adds the signal maintainer's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register("rapport_signals_changes_read", "Change-feed entries the signal maintainer read", m.changes_read.clone());
    registry.register("rapport_signals_records_updated", "Records whose signal contribution changed", m.records_updated.clone());
    registry.register("rapport_signals_lag_changes", "Change-feed entries the signal maintainer has yet to read", m.lag.clone());
    registry.register("rapport_signals_rebuilds", "Full rebuilds of the signal aggregates", m.rebuilds.clone());
}
