//! The plugin runtime: installs WebAssembly connector components and runs their syncs in a
//! sandbox, committing what they emit exactly once.
//!
//! - [`manifest`]: `plugin.toml`, the API version rules.
//! - `bindings`: the host side of the WIT contract in `sdk/wit/`.
//! - `sandbox`: the engine (epochs, instance pool, compiled-code cache) and the import check.
//! - `run`: one run's state and the host functions (`emit`, `checkpoint`, `log`, `secret`).
//! - `network`: the `http` and `tcp` host interfaces, limited to what the manifest
//!   requests and the operator grants; `secrets`: an instance's secrets and their redaction.
//! - [`ledger`]: the trait the host commits through; the daemon hands it the graph.
//! - [`registry`]: installed plugins, instances, cursors, run records and logs in the ledger.
//! - [`harness`]: a package run once over a throwaway ledger, reporting what it emitted.
//! - [`config`]: the `[plugins]` section (limits, instance grants, secrets); [`metrics`]:
//!   the per-instance metrics the binary registers.
//!
//! Exactly-once: operations emitted since the last checkpoint are committed together with
//! the new cursor and the run's record in one atomic store batch. A run that fails or is
//! killed loses only its uncommitted tail, which the next run (starting from the committed
//! cursor) emits again; upserts are keyed by `(instance, external id)`, so nothing doubles.

pub mod bindings;
pub mod config;
pub mod harness;
pub mod ledger;
pub mod manifest;
pub mod metrics;
mod network;
pub mod registry;
mod run;
mod sandbox;
mod secrets;

pub use self::secrets::REDACTED;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tracing::Instrument;

use self::bindings::{ConnectorPre, PluginFailure};
use self::manifest::{ApiVersion, Manifest, ManifestError, SUPPORTED_API};
use self::network::{Access, Network, NetworkShared, TokenBucket};
use self::registry::{InstalledPlugin, Instance, InstanceSchedule, LogLine, RunFailure, RunRecord, RunStatus, Trigger};
pub use self::run::CommitTrace;
use self::run::{ActiveRun, RunLimits, RunState};
use self::sandbox::Sandbox;
use self::secrets::Secrets;
use crate::config::{PluginsConfig, RateLimit};
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::METRICS;
use rapport_core::config::ConfigError;
use rapport_core::hex;
use rapport_core::id::RunId;
use rapport_net::tls::{self, TlsError};
use rapport_schedule::{Clock, Plan, Schedule, ScheduleError, Scheduler, SystemClock};

/// A plugin cannot be installed or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginHostError {
    /// The manifest is missing or wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The package is incomplete.
    #[error("{0}")]
    Package(String),
    /// The plugin was built for a plugin API this host does not support.
    #[error(
        "the plugin is built for plugin API {plugin}, and this host supports API {host}: \
         rebuild it against sdk/wit/{} (rapport-sdk), or run a Rapport release that supports API {plugin}{}",
        host.wit_folder(),
        if import.is_empty() { String::new() } else { format!(" (it imports {import})") }
    )]
    UnsupportedApi {
        /// What the plugin was built for.
        plugin: ApiVersion,
        /// What this host implements.
        host: ApiVersion,
        /// The import that revealed it, if the manifest did not.
        import: String,
    },
    /// The component imports interfaces the sandbox does not grant.
    #[error(
        "the plugin imports interfaces plugins may not use: {}. Plugins get no filesystem and no \
         sockets; network access comes only through the host's granted capabilities",
        .0.join(", ")
    )]
    ForbiddenImports(Vec<String>),
    /// The file is not a WebAssembly component.
    #[error("not a WebAssembly component built for wasm32-wasip2: {0}")]
    NotAComponent(String),
    /// The component asks more of the sandbox than one run's slot holds.
    #[error("the component does not fit in a sandbox slot (at most 2 memories, 4 tables and 8 core instances): {0}")]
    DoesNotFit(String),
    /// The component does not fit the contract.
    #[error("the component does not implement the rapport:connector world: {0}")]
    Link(String),
    /// Installing again named an existing instance with another configuration.
    #[error(
        "instance `{0}` is installed already with another configuration; change it with \
         `rapport plugin config {0} --replace JSON`, or install another instance with --instance NAME"
    )]
    InstanceConfigured(String),
    /// The component exports no connector: `export_connector!` is missing.
    #[error(
        "the component exports no connector (`describe` and `sync`){}: register yours with \
         `rapport_sdk::export_connector!(YourConnector);` in the crate's lib.rs",
        if .0.is_empty() { String::new() } else { format!("; it exports {}", .0.join(", ")) }
    )]
    NoConnector(Vec<String>),
    /// `describe` disagrees with the manifest.
    #[error("the plugin describes itself as {described}, but its manifest says {manifest}: rebuild it or fix plugin.toml")]
    ManifestMismatch {
        /// `name version` from the manifest.
        manifest: String,
        /// `name version` from `describe`.
        described: String,
    },
    /// `describe` failed.
    #[error("calling the plugin's `describe` failed: {0}")]
    Describe(String),
    /// Another build of the plugin is installed.
    #[error(
        "plugin `{name}` {installed} is installed and this package is another build ({offered}): \
         replace it with `rapport plugin upgrade`"
    )]
    AlreadyInstalled {
        /// The plugin.
        name: String,
        /// The installed version.
        installed: String,
        /// The package's version.
        offered: String,
    },
    /// The instance name is taken by another plugin.
    #[error("instance `{instance}` already runs plugin `{plugin}`: choose another name with --instance")]
    InstanceTaken {
        /// The instance.
        instance: String,
        /// The plugin it runs.
        plugin: String,
    },
    /// The instance name is not usable as a source name.
    #[error("instance name `{0}` is invalid: use lowercase letters, digits and `-`, starting with a letter")]
    InvalidName(String),
    /// The instance configuration is not a JSON object.
    #[error("the instance configuration must be a JSON object")]
    InvalidConfig,
    /// No such plugin.
    #[error("no plugin named `{0}` is installed (see `rapport plugin list`)")]
    UnknownPlugin(String),
    /// No such instance.
    #[error("no plugin instance named `{0}` (see `rapport plugin list`)")]
    UnknownInstance(String),
    /// A run of the instance is in progress.
    #[error("instance `{0}` is already running; wait for its run to finish")]
    AlreadyRunning(String),
    /// The engine could not be set up.
    #[error("plugin engine: {0}")]
    Engine(String),
    /// The TLS trust roots could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A schedule cannot be read.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A stored record does not decode.
    #[error("stored plugin record `{name}` is unreadable: {message}")]
    Corrupt {
        /// Its name.
        name: String,
        /// Why.
        message: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The ledger (the store) failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The manifest and component files of the package at `path`: a directory holding both,
/// or the `.wasm` file with `plugin.toml` beside it.
pub fn package_files(path: &Path) -> Result<(PathBuf, PathBuf), PluginHostError> {
    let (dir, wasm) = if path.is_dir() {
        (path.to_owned(), path.join("plugin.wasm"))
    } else {
        (path.parent().unwrap_or(Path::new(".")).to_owned(), path.to_owned())
    };
    let manifest = dir.join("plugin.toml");
    for (file, what) in [(&wasm, "the component (plugin.wasm)"), (&manifest, "the manifest (plugin.toml)")] {
        if !file.is_file() {
            return Err(PluginHostError::Package(format!(
                "{} not found: a plugin package is a directory holding plugin.toml and plugin.wasm ({what} is missing)",
                file.display()
            )));
        }
    }
    Ok((manifest, wasm))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PluginHostError + '_ {
    move |source| PluginHostError::Io { path: path.to_owned(), source }
}

/// How to install a plugin.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// The instance to create (default: the plugin's name).
    pub instance: Option<String>,
    /// The instance's configuration, a JSON object (default: `{}`).
    pub config: Option<serde_json::Value>,
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Upgraded {
    /// The plugin as now installed.
    pub plugin: InstalledPlugin,
    /// The version it replaced.
    pub previous_version: String,
    /// Instances whose cursor was cleared because the cursor format changed.
    pub cursors_reset: Vec<String>,
}

/// What is installed and how each instance stands: what `GET /v1/plugins` answers and
/// `rapport plugin list` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Overview {
    /// Installed plugins, each checked to load in this host.
    pub plugins: Vec<PluginStatus>,
    /// Their instances.
    pub instances: Vec<InstanceStatus>,
}

/// An installed plugin and whether this host can still run it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PluginStatus {
    #[serde(flatten)]
    pub plugin: InstalledPlugin,
    /// Why it cannot run here (it no longer loads, or disagrees with its manifest); absent
    /// when it is healthy.
    pub problem: Option<String>,
}

/// An instance with its last committed cursor and what the operator grants it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub instance: Instance,
    /// The last committed cursor, secrets cut out (absent before the first checkpoint).
    pub cursor: Option<String>,
    /// Network destinations, rate limit and secret names from `rapport.toml`.
    pub grant: GrantSummary,
    /// The next and last scheduled run (absent without an enabled schedule).
    pub plan: Option<Plan>,
}

/// What the operator grants an instance, as shown to users: its destinations and the
/// names (never the values) of its secrets.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GrantSummary {
    /// Destinations the instance may reach (if its plugin's manifest requests them too).
    pub allowed_hosts: Vec<String>,
    /// Its request pacing, when the grant sets one.
    pub rate_limit: Option<RateLimit>,
    /// The names of its secrets.
    pub secrets: Vec<String>,
}

/// Installs plugins and runs them.
pub struct PluginHost {
    ledger: Arc<dyn Ledger>,
    config: PluginsConfig,
    sandbox: Sandbox,
    /// Pre-linked components by component digest.
    prepared: Mutex<HashMap<String, ConnectorPre<RunState>>>,
    /// Instances with a run in progress.
    running: Arc<Mutex<HashSet<String>>>,
    /// One permit per instance-pool slot.
    slots: Arc<tokio::sync::Semaphore>,
    /// Network settings and TLS roots for every run.
    network: NetworkShared,
    /// Request pacing per instance, kept across its runs.
    buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
    /// Enabled instances with a schedule.
    scheduler: Scheduler<String>,
    /// What schedules, run records and the history's retention go by.
    clock: Arc<dyn Clock>,
    /// Run ids: ULIDs of the clock's time, increasing within a millisecond.
    ids: Mutex<ulid::Generator>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("config", &self.config).finish_non_exhaustive()
    }
}

/// How a sync ended: its last committed record, why it failed, the log lines not yet
/// written, and the commits when traced.
struct Ended {
    record: RunRecord,
    failure: Option<RunFailure>,
    log_tail: Option<(String, Vec<u8>)>,
    trace: Option<Vec<CommitTrace>>,
}

/// Adds a finished run to the per-instance metrics.
fn count(record: &RunRecord, elapsed: std::time::Duration) {
    use crate::metrics::{InstanceEventLabels, InstanceLabels};
    let labels = |event| InstanceEventLabels { instance: record.instance.clone(), event };
    let outcome = record.failure.as_ref().map_or("succeeded", RunFailure::kind);
    METRICS.plugin_runs.get_or_create(&labels(outcome)).inc();
    METRICS.plugin_run_duration.get_or_create(&InstanceLabels { instance: record.instance.clone() }).observe(elapsed.as_secs_f64());
    METRICS.plugin_operations.get_or_create(&labels("applied")).inc_by(record.operations_applied);
    METRICS.plugin_operations.get_or_create(&labels("skipped")).inc_by(record.operations_skipped);
    let network = &record.network;
    for (event, count) in [
        ("http_request", network.http_requests),
        ("http_rate_limited", network.http_rate_limited),
        ("http_retry", network.http_retries),
        ("denied", network.denied),
        ("tcp_connection", network.tcp_connections),
        ("bytes_sent", network.bytes_sent),
        ("bytes_received", network.bytes_received),
    ] {
        METRICS.plugin_network.get_or_create(&labels(event)).inc_by(count);
    }
}

/// What an uninstall removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Uninstalled {
    /// The instances removed.
    pub instances: Vec<String>,
    /// The plugin, when its last instance went.
    pub plugin: Option<String>,
}

/// Instances held still while they change (no run may start); released on drop.
struct Held {
    running: Arc<Mutex<HashSet<String>>>,
    names: Vec<String>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut running = lock(&self.running);
        for name in &self.names {
            running.remove(name);
        }
    }
}

/// A run that holds its instance's claim; dropping it releases the claim.
struct Claim {
    running: Arc<Mutex<HashSet<String>>>,
    record: RunRecord,
    instance: Instance,
    plugin: InstalledPlugin,
    /// The cursor the run starts from, as stored (the record shows it with secrets cut out).
    cursor: Option<String>,
    /// Its pool slot, or its place in the queue for one (taken when the run starts).
    slot: Option<Slot>,
}

type SlotWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// A run's slot of the pool, or its turn in the queue for one. The turn is taken when the
/// run is claimed, not when its task first runs, so runs get slots in the order they were
/// started (tokio's semaphore is first in, first out).
enum Slot {
    Held(OwnedSemaphorePermit),
    Queued(SlotWait),
}

impl Slot {
    fn queue(slots: &Arc<tokio::sync::Semaphore>) -> Self {
        let mut wait: SlotWait = Box::pin(Arc::clone(slots).acquire_owned());
        // One poll joins the queue; the task that runs the sync polls again with its waker.
        match wait.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(Ok(permit)) => Self::Held(permit),
            _ => Self::Queued(wait),
        }
    }

    /// Waits for the slot; `None` only if the pool were closed, which it never is.
    async fn take(self) -> Option<OwnedSemaphorePermit> {
        match self {
            Self::Held(permit) => Some(permit),
            Self::Queued(wait) => wait.await.ok(),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.record.instance);
    }
}

/// Names a failed run from what the sandbox saw: a failure the host decided (CPU budget,
/// checkpoint cap, host-call timeout), a refused memory growth, or a plain trap, quoted
/// with the panic message the plugin printed.
/// Whether an out-of-bounds trap is a guest's stack running out. A guest compiled from
/// Rust keeps its stack in linear memory, growing down from a fixed top: past the bottom,
/// the stack pointer wraps and the fault lies beyond 4 GiB; and the captured frames are all
/// one recursing function.
fn exhausted_shadow_stack(trap: &wasmtime::Error) -> bool {
    let wrapped = trap.chain().any(|cause| {
        let text = cause.to_string();
        let address = text.strip_prefix("memory fault at wasm address 0x").and_then(|rest| rest.split(' ').next());
        address.and_then(|hex| u64::from_str_radix(hex, 16).ok()).is_some_and(|address| address >= 1 << 32)
    });
    let recursing = trap.downcast_ref::<wasmtime::WasmBacktrace>().is_some_and(|backtrace| {
        let frames = backtrace.frames();
        frames.len() >= 16 && frames.windows(2).all(|pair| pair[0].func_index() == pair[1].func_index())
    });
    wrapped || recursing
}

fn classify(state: &RunState, trap: &wasmtime::Error) -> RunFailure {
    if let Some(failure) = &state.failure {
        return failure.clone();
    }
    if state.out_of_memory() {
        return RunFailure::OutOfMemory { limit_bytes: state.memory_limit() };
    }
    let code = trap.downcast_ref::<wasmtime::Trap>();
    let what = if code == Some(&wasmtime::Trap::StackOverflow)
        || (code == Some(&wasmtime::Trap::MemoryOutOfBounds) && exhausted_shadow_stack(trap))
    {
        "stack overflow: the plugin's calls nested too deep and exhausted its stack (unbounded recursion?)".to_owned()
    } else {
        code.map_or_else(|| trap.root_cause().to_string(), ToString::to_string)
    };
    let text = state.stderr_text();
    let printed: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with("note:")).collect();
    let message = if printed.is_empty() { what } else { format!("{what}; the plugin printed: {}", printed.join(" ")) };
    RunFailure::Trap { message }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; what it guards (claims, compiled
    // components, committed run records) is replaced whole, so it stays consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PluginHost {
    /// Sets up the engine over `graph`. Runs left `running` by a stopped daemon are marked
    /// abandoned: their committed work stays, and the next run resumes after it.
    pub fn new(ledger: Arc<dyn Ledger>, config: PluginsConfig) -> Result<Self, PluginHostError> {
        Self::with_clock(ledger, config, Arc::new(SystemClock))
    }

    /// [`Self::new`], with schedules running against `clock`.
    pub fn with_clock(ledger: Arc<dyn Ledger>, config: PluginsConfig, clock: Arc<dyn Clock>) -> Result<Self, PluginHostError> {
        let sandbox = Sandbox::new(&config)?;
        let network = NetworkShared { config: config.network.clone(), tls: tls::client_config(&config.network.extra_ca_files)? };
        let host = Self {
            ledger,
            network,
            buckets: Mutex::new(HashMap::new()),
            scheduler: Scheduler::default(),
            clock,
            ids: Mutex::new(ulid::Generator::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_runs as usize)),
            config,
            sandbox,
            prepared: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashSet::new())),
        };
        // Only the runs still marked active are read, not the whole history.
        let mut abandoned = Vec::new();
        for (instance, id) in registry::ACTIVE.scan(&*host.ledger, "")? {
            if let Some(mut record) = registry::run_key(&instance, id).get(&*host.ledger)? {
                record.status = RunStatus::Abandoned;
                abandoned.push(registry::run_key(&instance, id).put(&record));
            }
            abandoned.push(registry::active_key(&instance).delete());
        }
        if !abandoned.is_empty() {
            tracing::info!(runs = abandoned.len() / 2, "runs interrupted by a stop marked abandoned");
            host.ledger.write_meta(abandoned)?;
        }
        for instance in host.instances()? {
            host.schedule(&instance)?;
            host.prune_history(&instance.name)?;
        }
        Ok(host)
    }

    /// Puts an instance on the scheduler (from its persisted plan) or takes it off. A
    /// stored schedule this host cannot read is logged and left off, not fatal.
    fn schedule(&self, instance: &Instance) -> Result<(), PluginHostError> {
        match instance.schedule.as_ref().filter(|_| instance.enabled) {
            None => self.scheduler.remove(&instance.name),
            Some(spec) => match Schedule::parse(&spec.cron, &spec.timezone) {
                Ok(schedule) => {
                    let plan = registry::plan_key(&instance.name).get(&*self.ledger)?.unwrap_or_default();
                    self.scheduler.set(instance.name.clone(), schedule, plan);
                }
                Err(err) => tracing::warn!(instance = %instance.name, error = %err, "instance not scheduled"),
            },
        }
        Ok(())
    }

    /// Sets (or, with `None`, removes) an instance's schedule; it is planned from now.
    pub fn configure_schedule(&self, name: &str, schedule: Option<InstanceSchedule>) -> Result<Instance, PluginHostError> {
        if let Some(spec) = &schedule {
            Schedule::parse(&spec.cron, &spec.timezone)?;
        }
        let instance = Instance { schedule, ..self.instance(name)? };
        self.save_scheduled(&instance)
    }

    /// Enables or disables an instance's schedule.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<Instance, PluginHostError> {
        let instance = Instance { enabled, ..self.instance(name)? };
        self.save_scheduled(&instance)
    }

    /// Stores an instance whose schedule changed, with a fresh plan, and reschedules it.
    fn save_scheduled(&self, instance: &Instance) -> Result<Instance, PluginHostError> {
        self.ledger.write_meta(vec![registry::instance_key(&instance.name).put(instance), registry::plan_key(&instance.name).delete()])?;
        self.schedule(instance)?;
        Ok(instance.clone())
    }

    /// The schedule's plan of an instance: its next and last scheduled run.
    pub fn plan(&self, instance: &str) -> Option<Plan> {
        self.scheduler.plan(&instance.to_owned())
    }

    /// Runs the schedules until the process ends: each due instance starts a run (one
    /// that is still running from before skips its turn), and every new plan is stored,
    /// so a restart neither forgets a run nor repeats the ones missed while down.
    pub async fn run_schedules(self: Arc<Self>) {
        let host = Arc::clone(&self);
        self.scheduler
            .run(self.clock.as_ref(), move |changes| {
                let plans = changes.iter().map(|(instance, _, plan)| registry::plan_key(instance).put(plan)).collect();
                if let Err(err) = host.ledger.write_meta(plans) {
                    tracing::error!(error = %err, "cannot store the schedules' plans");
                }
                for (instance, _, _) in changes.into_iter().filter(|(_, due, _)| *due) {
                    match host.start(&instance, Trigger::Schedule) {
                        Ok(record) => tracing::info!(%instance, run_id = %record.id, "scheduled run started"),
                        Err(PluginHostError::AlreadyRunning(_)) => {
                            tracing::info!(%instance, "scheduled run skipped: the previous run is still going");
                        }
                        Err(err) => tracing::warn!(%instance, error = %err, "scheduled run not started"),
                    }
                }
            })
            .await;
    }

    fn limits(&self) -> RunLimits {
        RunLimits {
            memory_bytes: self.config.memory_limit_bytes,
            cpu_budget: self.config.cpu_budget,
            host_call_timeout: self.config.host_call_timeout,
            max_operations_per_checkpoint: self.config.max_operations_per_checkpoint,
            max_operation_bytes: self.config.max_operation_bytes,
            max_pending_bytes: self.config.max_pending_bytes,
            max_cursor_bytes: self.config.max_cursor_bytes,
            max_log_line_bytes: self.config.max_log_line_bytes,
        }
    }

    /// Installs the plugin package at `path` (a directory holding `plugin.toml` and
    /// `plugin.wasm`, or the `.wasm` file with `plugin.toml` beside it) and creates its
    /// instance. Installing the very same package again only adds the instance, if new;
    /// a different build of an installed plugin goes through [`Self::upgrade`].
    pub async fn install(&self, path: &Path, options: InstallOptions) -> Result<(InstalledPlugin, Instance), PluginHostError> {
        let (manifest, wasm, pre) = self.load_package(path).await?;
        let instance_name = options.instance.unwrap_or_else(|| manifest.name.clone());
        let asked_config = options.config.clone();
        let fresh = self.new_instance(instance_name, &manifest.name, options.config.unwrap_or_else(|| serde_json::json!({})))?;
        let digest = hex(&Sha256::digest(&wasm));
        let previous = registry::plugin_key(&manifest.name).get(&*self.ledger)?;
        if let Some(previous) = previous.as_ref().filter(|p| p.component_sha256 != digest) {
            return Err(PluginHostError::AlreadyInstalled {
                name: manifest.name,
                installed: previous.manifest.version.clone(),
                offered: manifest.version,
            });
        }
        let existing = registry::instance_key(&fresh.name).get(&*self.ledger)?;
        if let Some(existing) = existing.as_ref().filter(|e| e.plugin != manifest.name) {
            return Err(PluginHostError::InstanceTaken { instance: fresh.name, plugin: existing.plugin.clone() });
        }
        // Installing again is idempotent, but never drops a configuration silently.
        if let Some(existing) = existing.as_ref().filter(|e| asked_config.as_ref().is_some_and(|asked| *asked != e.config)) {
            return Err(PluginHostError::InstanceConfigured(existing.name.clone()));
        }
        let plugin = match previous {
            Some(plugin) => plugin,
            None => {
                self.store_component(&manifest.name, &digest, &wasm)?;
                InstalledPlugin { manifest, component_sha256: digest.clone(), installed_at: self.clock.now() }
            }
        };
        let instance = existing.unwrap_or(fresh);
        self.ledger.write_meta(vec![
            registry::plugin_key(&plugin.manifest.name).put(&plugin),
            registry::instance_key(&instance.name).put(&instance),
        ])?;
        lock(&self.prepared).insert(digest, pre);
        tracing::info!(plugin = %plugin.manifest.name, version = %plugin.manifest.version, instance = %instance.name, "plugin installed");
        Ok((plugin, instance))
    }

    /// Replaces an installed plugin with the build at `path`. Its instances keep their
    /// configuration and schedules; they keep their cursors only if the new manifest's
    /// `cursor_format` equals the old one, and start over otherwise. Refused while one of
    /// them runs.
    pub async fn upgrade(&self, path: &Path) -> Result<Upgraded, PluginHostError> {
        let (manifest, wasm, pre) = self.load_package(path).await?;
        let previous: InstalledPlugin =
            registry::plugin_key(&manifest.name).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownPlugin(manifest.name.clone()))?;
        let instances: Vec<Instance> = self.instances()?.into_iter().filter(|i| i.plugin == manifest.name).collect();
        let _held = self.hold(&instances)?;
        let digest = hex(&Sha256::digest(&wasm));
        self.store_component(&manifest.name, &digest, &wasm)?;
        let cursors_kept = previous.manifest.cursor_format == manifest.cursor_format;
        let plugin = InstalledPlugin { manifest, component_sha256: digest.clone(), installed_at: self.clock.now() };
        let mut writes = vec![registry::plugin_key(&plugin.manifest.name).put(&plugin)];
        let cursors_reset: Vec<String> = if cursors_kept { Vec::new() } else { instances.iter().map(|i| i.name.clone()).collect() };
        writes.extend(cursors_reset.iter().map(|name| registry::cursor_key(name).delete()));
        self.ledger.write_meta(writes)?;
        if previous.component_sha256 != digest {
            self.forget_component(&previous);
        }
        lock(&self.prepared).insert(digest, pre);
        tracing::info!(
            plugin = %plugin.manifest.name, from = %previous.manifest.version, to = %plugin.manifest.version,
            cursors_reset = cursors_reset.len(), "plugin upgraded"
        );
        Ok(Upgraded { previous_version: previous.manifest.version, plugin, cursors_reset })
    }

    /// Reads and checks a package: its manifest, the API it needs, its component compiled
    /// and describing itself as the manifest says.
    async fn load_package(&self, path: &Path) -> Result<(Manifest, Vec<u8>, ConnectorPre<RunState>), PluginHostError> {
        let (manifest_path, wasm_path) = package_files(path)?;
        let manifest = Manifest::load(&manifest_path)?;
        if !SUPPORTED_API.supports(manifest.api) {
            return Err(PluginHostError::UnsupportedApi { plugin: manifest.api, host: SUPPORTED_API, import: String::new() });
        }
        let wasm = std::fs::read(&wasm_path).map_err(io(&wasm_path))?;
        let pre = self.sandbox.prepare(&wasm)?;
        self.check_description(&pre, &manifest).await?;
        Ok((manifest, wasm, pre))
    }

    /// Writes a component into the plugin directory under its digest.
    fn store_component(&self, plugin: &str, digest: &str, wasm: &[u8]) -> Result<(), PluginHostError> {
        let stored = self.component_path(plugin, digest);
        if let Some(dir) = stored.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&stored, wasm).map_err(io(&stored))
    }

    /// Every plugin (each loaded and asked to describe itself, so one this host can no
    /// longer run shows now rather than at its next scheduled run) and every instance.
    pub async fn overview(&self) -> Result<Overview, PluginHostError> {
        let mut plugins = Vec::new();
        for plugin in self.plugins()? {
            let problem = self.verify(&plugin.manifest.name).await.err().map(|err| err.to_string());
            plugins.push(PluginStatus { plugin, problem });
        }
        let instances = self
            .instances()?
            .into_iter()
            .map(|instance| {
                let (grant, plan) = (self.grant(&instance.name), self.plan(&instance.name));
                Ok(InstanceStatus { cursor: self.cursor(&instance.name)?, grant, plan, instance })
            })
            .collect::<Result<_, PluginHostError>>()?;
        Ok(Overview { plugins, instances })
    }

    /// Checks that an installed plugin still loads in this host and agrees with its
    /// manifest: a fresh sandbox, instantiated, asked to `describe` itself.
    pub async fn verify(&self, name: &str) -> Result<(), PluginHostError> {
        let plugin: InstalledPlugin =
            registry::plugin_key(name).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownPlugin(name.to_owned()))?;
        let pre = self.prepared_for(&plugin)?;
        self.check_description(&pre, &plugin.manifest).await
    }

    /// Calls `describe` in a sandboxed store and compares it with the manifest.
    async fn check_description(&self, pre: &ConnectorPre<RunState>, manifest: &Manifest) -> Result<(), PluginHostError> {
        // `describe` gets no network access and no secrets.
        let network = Network::new(Arc::new(Access::default()), self.network.clone());
        let mut store = RunState::store(&self.sandbox.engine, Arc::clone(&self.sandbox.ticks), self.limits(), None, network);
        let describe = async {
            let connector = pre.instantiate_async(&mut store).await?;
            store.data_mut().resume_clock();
            connector.call_describe(&mut store).await
        };
        let description = tokio::time::timeout(self.config.host_call_timeout, describe)
            .await
            .map_err(|_| PluginHostError::Describe(format!("no answer within {} s", self.config.host_call_timeout.as_secs())))?
            .map_err(|e| PluginHostError::Describe(format!("{e:#}")))?;
        if description.name != manifest.name || description.version != manifest.version {
            return Err(PluginHostError::ManifestMismatch {
                manifest: format!("{} {}", manifest.name, manifest.version),
                described: format!("{} {}", description.name, description.version),
            });
        }
        Ok(())
    }

    fn component_path(&self, plugin: &str, digest: &str) -> PathBuf {
        self.config.dir.join(plugin).join(format!("{digest}.wasm"))
    }

    /// Installed plugins, by name.
    pub fn plugins(&self) -> Result<Vec<InstalledPlugin>, PluginHostError> {
        registry::PLUGINS.list(&*self.ledger)
    }

    /// Plugin instances, by name.
    pub fn instances(&self) -> Result<Vec<Instance>, PluginHostError> {
        registry::INSTANCES.list(&*self.ledger)
    }

    /// The last committed cursor of an instance, as shown to people: the instance's
    /// secrets cut out (the plugin itself resumes from the stored value).
    pub fn cursor(&self, instance: &str) -> Result<Option<String>, PluginHostError> {
        Ok(registry::cursor(&*self.ledger, instance)?.map(|c| self.shown_cursor(instance, &c)))
    }

    /// `cursor` as shown to people: the instance's secrets cut out, or all of it hidden
    /// while they cannot be read (a variable not set in this process).
    fn shown_cursor(&self, instance: &str, cursor: &str) -> String {
        match self.secrets_of(instance) {
            Ok(secrets) => secrets.redact(cursor).into_owned(),
            Err(err) => format!("(hidden until the instance's secrets can be read: {err})"),
        }
    }

    /// The secrets the operator grants `instance`, those held in variables read now.
    fn secrets_of(&self, instance: &str) -> Result<Secrets, ConfigError> {
        let sources = self.config.instances.get(instance).map(|grant| &grant.secrets);
        let secrets =
            sources.into_iter().flatten().map(|(name, source)| Ok((name.clone(), source.resolve()?))).collect::<Result<_, _>>()?;
        Ok(Secrets::new(secrets))
    }

    /// Sets (or, with `None`, clears) an instance's cursor: its next run starts there, or
    /// from the beginning. Refused while it runs.
    pub fn set_cursor(&self, name: &str, cursor: Option<&str>) -> Result<(), PluginHostError> {
        let instance = self.instance(name)?;
        let _held = self.hold(std::slice::from_ref(&instance))?;
        let row = registry::cursor_key(name);
        self.ledger.write_meta(vec![match cursor {
            Some(cursor) => row.put(&cursor.to_owned()),
            None => row.delete(),
        }])?;
        tracing::info!(instance = %name, reset = cursor.is_none(), "instance cursor set");
        Ok(())
    }

    /// What the operator's configuration grants `instance`.
    pub fn grant(&self, instance: &str) -> GrantSummary {
        self.config.instances.get(instance).map_or_else(GrantSummary::default, |grant| GrantSummary {
            allowed_hosts: grant.allowed_hosts.iter().map(ToString::to_string).collect(),
            rate_limit: grant.rate_limit,
            secrets: grant.secrets.keys().cloned().collect(),
        })
    }

    /// An instance's last `limit` runs, newest first.
    pub fn runs(&self, instance: &str, limit: usize) -> Result<Vec<RunRecord>, PluginHostError> {
        self.instance(instance)?;
        registry::newest_runs(&*self.ledger, instance, limit)
    }

    /// The log lines a run kept, in order.
    pub fn logs(&self, instance: &str, id: RunId) -> Result<Vec<LogLine>, PluginHostError> {
        registry::run_log(&*self.ledger, instance, id)
    }

    /// Deletes the instance's runs that started longer ago than the retention period
    /// (`plugins.run_history_days`), with their logs; returns how many.
    pub fn prune_history(&self, instance: &str) -> Result<usize, PluginHostError> {
        registry::prune_runs(&*self.ledger, instance, self.history_cutoff())
    }

    /// When the oldest run worth keeping started.
    fn history_cutoff(&self) -> DateTime<Utc> {
        let retention = chrono::Duration::from_std(self.config.run_history).unwrap_or(chrono::Duration::MAX);
        self.clock.now().checked_sub_signed(retention).unwrap_or_default()
    }

    /// Replaces an instance's configuration (a JSON object); the next run uses it.
    pub fn configure(&self, name: &str, config: serde_json::Value) -> Result<Instance, PluginHostError> {
        if !config.is_object() {
            return Err(PluginHostError::InvalidConfig);
        }
        let instance = Instance { config, ..self.instance(name)? };
        self.ledger.write_meta(vec![registry::instance_key(name).put(&instance)])?;
        tracing::info!(instance = %name, "instance configuration changed");
        Ok(instance)
    }

    /// Creates another instance of an installed plugin (a second account of the same CRM).
    pub fn add_instance(&self, plugin: &str, name: &str, config: serde_json::Value) -> Result<Instance, PluginHostError> {
        let plugin: InstalledPlugin =
            registry::plugin_key(plugin).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownPlugin(plugin.to_owned()))?;
        let instance = self.new_instance(name.to_owned(), &plugin.manifest.name, config)?;
        if let Some(existing) = registry::instance_key(name).get(&*self.ledger)? {
            return Err(PluginHostError::InstanceTaken { instance: name.to_owned(), plugin: existing.plugin });
        }
        self.ledger.write_meta(vec![registry::instance_key(name).put(&instance)])?;
        tracing::info!(instance = %name, plugin = %instance.plugin, "instance created");
        Ok(instance)
    }

    /// A new instance of `plugin`, unscheduled and enabled, once its name and configuration
    /// are checked.
    fn new_instance(&self, name: String, plugin: &str, config: serde_json::Value) -> Result<Instance, PluginHostError> {
        if !manifest::is_valid_name(&name) {
            return Err(PluginHostError::InvalidName(name));
        }
        if !config.is_object() {
            return Err(PluginHostError::InvalidConfig);
        }
        Ok(Instance { name, plugin: plugin.to_owned(), config, created_at: self.clock.now(), schedule: None, enabled: true })
    }

    /// Removes an instance: its configuration, cursor, schedule, run history and logs.
    /// The records it synced stay in the graph under its source name. The last instance
    /// of a plugin takes the plugin (manifest and component) with it. Refused while it runs.
    pub fn uninstall_instance(&self, name: &str) -> Result<Uninstalled, PluginHostError> {
        let instance = self.instance(name)?;
        let _held = self.hold(std::slice::from_ref(&instance))?;
        let mut deletes = vec![
            registry::instance_key(name).delete(),
            registry::cursor_key(name).delete(),
            registry::plan_key(name).delete(),
            registry::active_key(name).delete(),
        ];
        for prefix in registry::history_prefixes(name) {
            deletes.extend(self.ledger.meta_with_prefix(&prefix)?.into_iter().map(|(key, _)| (key, None)));
        }
        let others = self.instances()?.into_iter().filter(|i| i.plugin == instance.plugin && i.name != name).count();
        let plugin = if others == 0 { registry::plugin_key(&instance.plugin).get(&*self.ledger)? } else { None };
        if plugin.is_some() {
            deletes.push(registry::plugin_key(&instance.plugin).delete());
        }
        self.ledger.write_meta(deletes)?;
        self.scheduler.remove(&instance.name);
        lock(&self.buckets).remove(name);
        if let Some(plugin) = &plugin {
            self.forget_component(plugin);
        }
        tracing::info!(instance = %name, plugin_removed = plugin.is_some(), "instance uninstalled");
        Ok(Uninstalled { instances: vec![instance.name], plugin: plugin.map(|p| p.manifest.name) })
    }

    /// Removes a plugin and every instance of it (see [`Self::uninstall_instance`]).
    pub fn uninstall_plugin(&self, name: &str) -> Result<Uninstalled, PluginHostError> {
        registry::plugin_key(name).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownPlugin(name.to_owned()))?;
        let instances: Vec<Instance> = self.instances()?.into_iter().filter(|i| i.plugin == name).collect();
        // Refuse before removing anything if one of them is running.
        drop(self.hold(&instances)?);
        let mut removed = Uninstalled::default();
        for instance in &instances {
            let done = self.uninstall_instance(&instance.name)?;
            removed.instances.extend(done.instances);
            removed.plugin = removed.plugin.or(done.plugin);
        }
        if instances.is_empty() {
            if let Some(plugin) = registry::plugin_key(name).get(&*self.ledger)? {
                self.ledger.write_meta(vec![registry::plugin_key(name).delete()])?;
                self.forget_component(&plugin);
            }
            removed.plugin = Some(name.to_owned());
        }
        Ok(removed)
    }

    /// Deletes a removed or replaced component's file; runs holding it in memory finish.
    fn forget_component(&self, plugin: &InstalledPlugin) {
        let path = self.component_path(&plugin.manifest.name, &plugin.component_sha256);
        if let Err(err) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove the plugin component");
        }
        lock(&self.prepared).remove(&plugin.component_sha256);
    }

    /// Claims `instances` so no run starts while they change; fails if one is running.
    fn hold(&self, instances: &[Instance]) -> Result<Held, PluginHostError> {
        let mut running = lock(&self.running);
        if let Some(busy) = instances.iter().find(|i| running.contains(&i.name)) {
            return Err(PluginHostError::AlreadyRunning(busy.name.clone()));
        }
        let names: Vec<String> = instances.iter().map(|i| i.name.clone()).collect();
        running.extend(names.iter().cloned());
        Ok(Held { running: Arc::clone(&self.running), names })
    }

    /// One run of an instance.
    pub fn run_record(&self, instance: &str, id: RunId) -> Result<Option<RunRecord>, PluginHostError> {
        registry::run_key(instance, id).get(&*self.ledger)
    }

    /// One instance.
    pub fn instance(&self, name: &str) -> Result<Instance, PluginHostError> {
        registry::instance_key(name).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownInstance(name.to_owned()))
    }

    /// Runs a sync of `instance` to its end; `on_commit` sees the run's record after each
    /// checkpoint. A failed run is a record with status `failed`, not an error: errors
    /// mean the run could not start.
    pub async fn run(
        &self,
        instance: &str,
        trigger: Trigger,
        on_commit: impl Fn(&RunRecord) + Send + Sync + 'static,
    ) -> Result<RunRecord, PluginHostError> {
        let claim = self.claim(instance, trigger)?;
        Ok(self.execute(claim, Box::new(on_commit), false).await.0)
    }

    /// [`Self::run`], also returning every commit's cursor and operations (for the test
    /// harness; a daemon does not keep them).
    pub async fn run_traced(&self, instance: &str, trigger: Trigger) -> Result<(RunRecord, Vec<CommitTrace>), PluginHostError> {
        let claim = self.claim(instance, trigger)?;
        let (record, trace) = self.execute(claim, Box::new(|_| {}), true).await;
        Ok((record, trace.unwrap_or_default()))
    }

    /// Starts a run in the background and returns its first record.
    pub fn start(self: &Arc<Self>, instance: &str, trigger: Trigger) -> Result<RunRecord, PluginHostError> {
        let claim = self.claim(instance, trigger)?;
        let record = claim.record.clone();
        let host = Arc::clone(self);
        tokio::spawn(async move { host.execute(claim, Box::new(|_| {}), false).await });
        Ok(record)
    }

    /// Runs a claimed sync inside its `plugin_run` span and records how it ended.
    async fn execute(
        &self,
        mut claim: Claim,
        on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>,
        trace: bool,
    ) -> (RunRecord, Option<Vec<CommitTrace>>) {
        let span = tracing::info_span!(
            "plugin_run",
            plugin = %claim.plugin.manifest.name,
            version = %claim.plugin.manifest.version,
            instance = %claim.record.instance,
            run_id = %claim.record.id,
            trigger = ?claim.record.trigger,
        );
        async move {
            let started = Instant::now();
            let _permit = match claim.slot.take() {
                Some(slot) => slot.take().await,
                None => None,
            };
            let instance = metrics::InstanceLabels { instance: claim.record.instance.clone() };
            METRICS.plugin_slot_wait.get_or_create(&instance).observe(started.elapsed().as_secs_f64());
            let ended = self.sync(&claim, on_commit, trace).await;
            let mut record = ended.record;
            record.status = if ended.failure.is_some() { RunStatus::Failed } else { RunStatus::Succeeded };
            record.failure = ended.failure;
            record.ended_at = Some(self.clock.now());
            count(&record, started.elapsed());
            let mut finished = vec![
                registry::run_key(&record.instance, record.id).put(&record),
                registry::active_key(&record.instance).delete(),
            ];
            finished.extend(ended.log_tail.map(|(name, lines)| (name, Some(lines))));
            let (ledger, instance, cutoff) = (Arc::clone(&self.ledger), record.instance.clone(), self.history_cutoff());
            let stored = tokio::task::spawn_blocking(move || {
                ledger.write_meta(finished)?;
                // The history's retention is applied as each run ends.
                registry::prune_runs(&*ledger, &instance, cutoff)
            });
            match stored.await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "cannot store the run's final record or prune the history"),
                Err(err) => tracing::error!(error = %err, "the task storing the run's final record failed"),
            }
            let duration_ms = started.elapsed().as_millis();
            match &record.failure {
                None => tracing::info!(checkpoints = record.checkpoints, applied = record.operations_applied, skipped = record.operations_skipped, log_lines_dropped = record.log_lines_dropped, duration_ms, "run succeeded"),
                Some(failure) => tracing::warn!(checkpoints = record.checkpoints, applied = record.operations_applied, skipped = record.operations_skipped, log_lines_dropped = record.log_lines_dropped, duration_ms, %failure, "run failed"),
            }
            drop(claim);
            (record, ended.trace)
        }
        .instrument(span)
        .await
    }

    /// The sync itself: the last committed record, and why it failed if it did.
    async fn sync(&self, claim: &Claim, on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>, trace: bool) -> Ended {
        let pre = match self.prepared_for(&claim.plugin) {
            Ok(pre) => pre,
            Err(err) => {
                let failure = Some(RunFailure::Host { message: err.to_string() });
                return Ended { record: claim.record.clone(), failure, log_tail: None, trace: None };
            }
        };
        let access = match self.access(claim) {
            Ok(access) => access,
            Err(err) => {
                let failure = Some(RunFailure::Config { message: err.to_string() });
                return Ended { record: claim.record.clone(), failure, log_tail: None, trace: None };
            }
        };
        let trust = self.config.instances.get(&claim.record.instance).map(|grant| grant.trust).unwrap_or_default();
        let active = ActiveRun::new(Arc::clone(&self.ledger), claim.record.clone(), on_commit, trace, trust);
        let committed = Arc::clone(&active.committed);
        let network = Network::new(access, self.network.clone());
        let mut store = RunState::store(&self.sandbox.engine, Arc::clone(&self.sandbox.ticks), self.limits(), Some(active), network);
        let config = claim.instance.config.to_string();
        let cursor = claim.cursor.clone();
        let work = async {
            let connector = match pre.instantiate_async(&mut store).await {
                Ok(connector) => connector,
                Err(err) => return Some(RunFailure::Host { message: format!("cannot instantiate the plugin: {err:#}") }),
            };
            store.data_mut().resume_clock();
            let result = connector.call_sync(&mut store, &config, cursor.as_deref()).await;
            store.data_mut().pause_clock();
            match result {
                // The tail emitted after the last checkpoint is committed with the cursor unchanged.
                Ok(Ok(())) => store.data_mut().commit(None).await.err().map(|trap| classify(store.data(), &trap)),
                Ok(Err(error)) => Some(RunFailure::Plugin { error: PluginFailure::from(error).redacted(store.data().network.secrets()) }),
                Err(trap) => Some(classify(store.data(), &trap)),
            }
        };
        let failure = match tokio::time::timeout(self.config.run_timeout, work).await {
            Ok(failure) => failure,
            Err(_) => Some(RunFailure::Timeout { limit_secs: self.config.run_timeout.as_secs() }),
        };
        // A commit that outlived its host call may still land: wait for it, so the final
        // record counts it and is written after it.
        let late = lock(&committed).late.take();
        if let Some(handle) = late
            && let Ok(Ok(record)) = handle.await
        {
            lock(&committed).record = record;
        }
        let mut committed = lock(&committed);
        let mut record = committed.record.clone();
        record.network = store.data().network.counters.clone();
        // Lines logged after the last commit are kept even when its operations are not.
        let log_tail = committed.log.take_chunk(&mut record);
        Ended { record, failure, log_tail, trace: committed.trace.take() }
    }

    /// What a run of the claimed instance may reach: what its manifest requests, narrowed
    /// to what the operator grants it, paced by the grant's (or else the manifest's) rate.
    fn access(&self, claim: &Claim) -> Result<Arc<Access>, ConfigError> {
        let name = &claim.record.instance;
        let grant = self.config.instances.get(name).cloned().unwrap_or_default();
        let requested = &claim.plugin.manifest.network;
        let bucket = grant.rate_limit.or(requested.rate_limit).map(|limit| {
            let mut buckets = lock(&self.buckets);
            let bucket = buckets.entry(name.clone()).or_insert_with(|| Arc::new(TokenBucket::new(limit)));
            if bucket.limit() != limit {
                *bucket = Arc::new(TokenBucket::new(limit));
            }
            Arc::clone(bucket)
        });
        Ok(Arc::new(Access {
            plugin: claim.plugin.manifest.name.clone(),
            instance: name.clone(),
            requested: requested.allowed_hosts.clone(),
            granted: grant.allowed_hosts,
            bucket,
            secrets: self.secrets_of(name)?,
            granted_by: grant.granted_by,
        }))
    }

    /// The pre-linked component of an installed plugin, compiled (or loaded from the
    /// cache) on first use.
    fn prepared_for(&self, plugin: &InstalledPlugin) -> Result<ConnectorPre<RunState>, PluginHostError> {
        if let Some(pre) = lock(&self.prepared).get(&plugin.component_sha256) {
            return Ok(pre.clone());
        }
        let path = self.component_path(&plugin.manifest.name, &plugin.component_sha256);
        let wasm = std::fs::read(&path).map_err(io(&path))?;
        let pre = self.sandbox.prepare(&wasm)?;
        lock(&self.prepared).insert(plugin.component_sha256.clone(), pre.clone());
        Ok(pre)
    }

    /// Marks the instance as running and writes its `running` record.
    fn claim(&self, name: &str, trigger: Trigger) -> Result<Claim, PluginHostError> {
        let instance = self.instance(name)?;
        let plugin: InstalledPlugin =
            registry::plugin_key(&instance.plugin).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownInstance(name.to_owned()))?;
        if !lock(&self.running).insert(name.to_owned()) {
            return Err(PluginHostError::AlreadyRunning(name.to_owned()));
        }
        let cursor = registry::cursor(&*self.ledger, name);
        let now = self.clock.now();
        let id = lock(&self.ids).generate_from_datetime(now.into()).unwrap_or_else(|_| ulid::Ulid::from_datetime(now.into()));
        let record = RunRecord {
            id: RunId::from_ulid(id),
            instance: name.to_owned(),
            plugin: plugin.manifest.name.clone(),
            plugin_version: plugin.manifest.version.clone(),
            trigger,
            status: RunStatus::Running,
            started_at: now,
            ended_at: None,
            cursor_before: None,
            cursor: None,
            checkpoints: 0,
            operations_applied: 0,
            operations_skipped: 0,
            operations_deleted: 0,
            skipped_examples: Vec::new(),
            network: Default::default(),
            log_lines: 0,
            log_lines_dropped: 0,
            log_warnings: 0,
            failure: None,
        };
        let cursor = cursor?;
        let shown = cursor.as_deref().map(|c| self.shown_cursor(name, c));
        let slot = Some(Slot::queue(&self.slots));
        let mut claim = Claim { running: Arc::clone(&self.running), record, instance, plugin, cursor, slot };
        claim.record.cursor_before.clone_from(&shown);
        claim.record.cursor = shown;
        self.ledger.write_meta(vec![
            registry::run_key(name, claim.record.id).put(&claim.record),
            registry::active_key(name).put(&claim.record.id),
        ])?;
        Ok(claim)
    }
}
