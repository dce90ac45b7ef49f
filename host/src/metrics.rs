//! Prometheus metrics: one process-wide registry, named `rapport_<thing>_<unit>[_total]`,
//! with bounded label values only (routes as matched, outcomes from fixed sets, plugin
//! instances: configured by the operator, a handful per daemon).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route (`/v1/organizations/{id}`), never the raw path.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a request-duration sample.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route.
    pub route: String,
}

/// Labels of counted operations and batches.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied` / `skipped` / `rejected` (in a rejected batch) for operations,
    /// `committed` / `rejected` for batches.
    pub outcome: &'static str,
}

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

/// Every metric the daemon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests served.
    pub http_requests: Family<RequestLabels, Counter>,
    /// HTTP request durations.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// Record operations by outcome.
    pub ingest_operations: Family<OutcomeLabels, Counter>,
    /// Ingest batches by outcome.
    pub ingest_batches: Family<OutcomeLabels, Counter>,
    /// Ingest batch durations (apply and commit).
    pub ingest_duration: Histogram,
    /// Identity merges made.
    pub identity_merges: Counter,
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

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let ingest_operations = Family::<OutcomeLabels, Counter>::default();
        let ingest_batches = Family::<OutcomeLabels, Counter>::default();
        let ingest_duration = latency_histogram();
        let identity_merges = Counter::default();
        let plugin_runs = Family::<InstanceEventLabels, Counter>::default();
        let plugin_run_duration = Family::<InstanceLabels, Histogram>::new_with_constructor(run_histogram as fn() -> Histogram);
        let plugin_operations = Family::<InstanceEventLabels, Counter>::default();
        registry.register("rapport_http_requests", "HTTP requests served", http_requests.clone());
        registry.register("rapport_http_request_duration_seconds", "HTTP request duration", http_duration.clone());
        registry.register("rapport_ingest_operations", "Record operations by outcome", ingest_operations.clone());
        registry.register("rapport_ingest_batches", "Ingest batches by outcome", ingest_batches.clone());
        registry.register("rapport_ingest_batch_duration_seconds", "Time to apply and commit a batch", ingest_duration.clone());
        registry.register("rapport_identity_merges", "Identity merges made by resolution", identity_merges.clone());
        registry.register("rapport_plugin_runs", "Plugin runs finished, by instance and outcome (event)", plugin_runs.clone());
        registry.register("rapport_plugin_run_duration_seconds", "Wall-clock duration of plugin runs", plugin_run_duration.clone());
        registry.register("rapport_plugin_operations", "Operations plugin runs committed or skipped (event)", plugin_operations.clone());
        let plugin_network = Family::<InstanceEventLabels, Counter>::default();
        registry.register("rapport_plugin_network", "Plugins' network requests, refusals and bytes, by event", plugin_network.clone());
        let plugin_slot_wait = Family::<InstanceLabels, Histogram>::new_with_constructor(run_histogram as fn() -> Histogram);
        registry.register("rapport_plugin_slot_wait_seconds", "Time plugin runs waited for a slot of the pool", plugin_slot_wait.clone());
        Self {
            registry,
            http_requests,
            http_duration,
            ingest_operations,
            ingest_batches,
            ingest_duration,
            identity_merges,
            plugin_runs,
            plugin_run_duration,
            plugin_operations,
            plugin_network,
            plugin_slot_wait,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
