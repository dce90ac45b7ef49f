//! The plugin runtime's Prometheus metrics, by instance (configured by the operator, a
//! handful per daemon, so a bounded label). The binary registers them into the daemon's
//! one registry ([`register`]).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a plugin instance's counted events.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceEventLabels {
    /// The plugin instance.
    pub instance: String,
    /// For runs: `succeeded` or the failure's kind. For operations: `applied` or
    /// `skipped`. For the network: `http_request`, `http_rate_limited` (429 and 503
    /// answers), `http_retry`, `denied`, `tcp_connection`, `bytes_sent`, `bytes_received`.
    pub event: &'static str,
}

/// Labels of a plugin instance's samples.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    /// The plugin instance.
    pub instance: String,
}

/// The plugin runtime's metrics.
#[derive(Debug)]
pub struct PluginMetrics {
    /// Plugin runs finished, by instance and outcome.
    pub plugin_runs: Family<InstanceEventLabels, Counter>,
    /// Wall-clock duration of plugin runs, by instance.
    pub plugin_run_duration: Family<InstanceLabels, Histogram>,
    /// Operations plugin runs committed or skipped, by instance.
    pub plugin_operations: Family<InstanceEventLabels, Counter>,
    /// Plugins' network activity by instance, added up when each run ends.
    pub plugin_network: Family<InstanceEventLabels, Counter>,
    /// How long runs waited for a pool slot, by instance (a pool too small shows here).
    pub plugin_slot_wait: Family<InstanceLabels, Histogram>,
}

fn run_histogram() -> Histogram {
    // 10 ms to about 45 minutes.
    Histogram::new(exponential_buckets(0.01, 2.0, 19))
}

/// The process-wide plugin metrics.
pub static METRICS: LazyLock<PluginMetrics> = LazyLock::new(|| PluginMetrics {
    plugin_runs: Family::default(),
    plugin_run_duration: Family::new_with_constructor(run_histogram as fn() -> Histogram),
    plugin_operations: Family::default(),
    plugin_network: Family::default(),
    plugin_slot_wait: Family::new_with_constructor(run_histogram as fn() -> Histogram),
});

/// Adds the plugin runtime's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register("rapport_plugin_runs", "Plugin runs finished, by instance and outcome (event)", m.plugin_runs.clone());
    registry.register("rapport_plugin_run_duration_seconds", "Wall-clock duration of plugin runs", m.plugin_run_duration.clone());
    registry.register("rapport_plugin_operations", "Operations plugin runs committed or skipped (event)", m.plugin_operations.clone());
    registry.register("rapport_plugin_network", "Plugins' network requests, refusals and bytes, by event", m.plugin_network.clone());
    registry.register("rapport_plugin_slot_wait_seconds", "Time plugin runs waited for a slot of the pool", m.plugin_slot_wait.clone());
}
