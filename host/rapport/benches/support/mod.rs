//! Shared by the benchmarks: a plugin host over a temporary store, and peak RSS.

// Each benchmark compiles this module and uses part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Instant;

use rapport::ledger::GraphLedger;
use rapport_graph::{Graph, IdentityRules};
use rapport_plugin_host::config::PluginsConfig;
use rapport_plugin_host::registry::{RunRecord, RunStatus, Trigger};
use rapport_plugin_host::{InstallOptions, PluginHost};
use rapport_store::SledStore;
use rapport_store::config::DEFAULT_CACHE_BYTES;

/// A plugin host over a store in a temporary directory, and the runtime to drive it.
pub struct Setup {
    pub host: Arc<PluginHost>,
    pub runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// A plugin host with the default limits, changed by `configure`.
pub fn setup(configure: impl FnOnce(&mut PluginsConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store"), DEFAULT_CACHE_BYTES).unwrap();
    let graph = Arc::new(Graph::new(Arc::new(store), IdentityRules::with_defaults([])));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut config = PluginsConfig::with_dir(dir.path().join("plugins"));
    configure(&mut config);
    let host = {
        let _inside = runtime.enter();
        Arc::new(PluginHost::new(GraphLedger::over(graph), config).unwrap())
    };
    Setup { host, runtime, _dir: dir }
}

impl Setup {
    /// Runs `work` as a task on the runtime's workers, where runs go too.
    pub fn on_workers<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        self.runtime.block_on(self.runtime.spawn(work)).unwrap()
    }

    /// Installs test plugin `fixture` (again, for every further instance) as `instance`.
    pub fn install(&self, fixture: &str, instance: &str, config: serde_json::Value) {
        let options = InstallOptions { instance: Some(instance.to_owned()), config: Some(config) };
        self.runtime.block_on(self.host.install(&rapport_fixtures::package(fixture), options)).unwrap();
    }

    /// One successful run of `instance`, and its seconds. The run is a task on the
    /// runtime's workers, as the daemon runs syncs.
    pub fn timed_run(&self, instance: &str) -> (RunRecord, f64) {
        let (host, instance) = (Arc::clone(&self.host), instance.to_owned());
        let started = Instant::now();
        let run = self.runtime.spawn(async move { host.run(&instance, Trigger::Cli, |_| {}).await });
        let record = self.runtime.block_on(run).unwrap().unwrap();
        assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
        (record, started.elapsed().as_secs_f64())
    }
}

/// Runs this benchmark again in a child process for one path, so its peak RSS is its own;
/// returns the (seconds, peak RSS MB) it printed. The child runs its path in
/// [`run_child`].
fn child(path: &str, n: u64) -> (f64, f64) {
    let output = std::process::Command::new(std::env::current_exe().unwrap()).args(["--child", path, &n.to_string()]).output().unwrap();
    assert!(output.status.success(), "the {path} child failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let mut figures = text.split_whitespace().map(|f| f.parse::<f64>().unwrap_or(f64::NAN));
    (figures.next().unwrap_or(f64::NAN), figures.next().unwrap_or(f64::NAN))
}

/// In a child process started by [`child`], runs its path (`plugin` or `direct`) and
/// returns `true`; in the parent, `false`.
pub fn run_child(plugin: fn(u64), direct: fn(u64)) -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--child") else { return false };
    let n = args[i + 2].parse().unwrap();
    if args[i + 1] == "plugin" {
        plugin(n)
    } else {
        direct(n)
    }
    true
}

/// Runs the direct and the plugin path over `n` items, each in a child process, and prints
/// their throughput, peak RSS and the ratio.
pub fn compare(n: u64, unit: &str, direct_label: &str, plugin_label: &str) {
    let (direct_s, direct_rss) = child("direct", n);
    let (plugin_s, plugin_rss) = child("plugin", n);
    println!("{direct_label}: {:.0} {unit}/s ({direct_s:.1}s), peak RSS {direct_rss:.0} MB", n as f64 / direct_s);
    println!("{plugin_label}: {:.0} {unit}/s ({plugin_s:.1}s), peak RSS {plugin_rss:.0} MB", n as f64 / plugin_s);
    println!("ratio: plugin / in-process throughput = {:.2}", direct_s / plugin_s);
}

/// What a child prints: its seconds and peak RSS.
pub fn report_child(seconds: f64) {
    println!("{seconds:.3} {:.1}", peak_rss_mb());
}

/// This process's peak resident set size, in MB (`VmHWM`).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}
