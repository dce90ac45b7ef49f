//! The plugin runtime: installs WebAssembly connector components and runs their syncs in a
//! sandbox, committing what they emit exactly once.
//!
//! - [`manifest`]: `plugin.toml`, the API version rules.
//! - `bindings`: the host side of the WIT contract in `sdk/wit/`.
//! - `sandbox`: the engine (epochs, instance pool, compiled-code cache) and the import check.
//! - `run`: one run's state and the host functions (`emit`, `checkpoint`, `log`, `secret`).
//! - `network`: the `http` and `tcp` host interfaces, limited to what the manifest
//!   requests and the operator grants; `secrets`: an instance's secrets and their redaction.
//! - [`registry`]: installed plugins, instances, cursors and run records in the store.
//!
//! Exactly-once: operations emitted since the last checkpoint are committed together with
//! the new cursor and the run's record in one atomic store batch. A run that fails or is
//! killed loses only its uncommitted tail, which the next run (starting from the committed
//! cursor) emits again; upserts are keyed by `(instance, external id)`, so nothing doubles.

pub mod bindings;
pub mod manifest;
mod network;
pub mod registry;
mod run;
mod sandbox;
mod secrets;

pub use self::secrets::REDACTED;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use self::bindings::{ConnectorPre, PluginFailure};
use self::manifest::{ApiVersion, Manifest, ManifestError, SUPPORTED_API};
use self::network::{Access, Network, NetworkShared, TokenBucket};
use self::registry::{InstalledPlugin, Instance, InstanceSchedule, RunFailure, RunRecord, RunStatus, Trigger};
use self::run::{ActiveRun, RunLimits, RunState};
use self::sandbox::Sandbox;
use self::secrets::Secrets;
use crate::config::{PluginsConfig, RateLimit, hex};
use crate::graph::{Graph, GraphError};
use crate::metrics::METRICS;
use crate::net::tls::{self, TlsError};
use crate::schedule::{Clock, Plan, Schedule, ScheduleError, Scheduler, SystemClock};

/// A plugin cannot be installed or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
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
    /// The component does not fit the contract.
    #[error("the component does not implement the rapport:connector world: {0}")]
    Link(String),
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
    /// The plugin name is taken.
    #[error("plugin `{0}` is already installed (reinstall with --replace)")]
    AlreadyInstalled(String),
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
    /// The store failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// The manifest and component of a package: `path` is the package directory, or its
/// `.wasm` file with `plugin.toml` beside it.
fn package_files(path: &Path) -> Result<(PathBuf, PathBuf), PluginError> {
    let (dir, wasm) = if path.is_dir() {
        (path.to_owned(), path.join("plugin.wasm"))
    } else {
        (path.parent().unwrap_or(Path::new(".")).to_owned(), path.to_owned())
    };
    let manifest = dir.join("plugin.toml");
    for (file, what) in [(&wasm, "the component (plugin.wasm)"), (&manifest, "the manifest (plugin.toml)")] {
        if !file.is_file() {
            return Err(PluginError::Package(format!(
                "{} not found: a plugin package is a directory holding plugin.toml and plugin.wasm ({what} is missing)",
                file.display()
            )));
        }
    }
    Ok((manifest, wasm))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PluginError + '_ {
    move |source| PluginError::Io { path: path.to_owned(), source }
}

/// How to install a plugin.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// The instance to create (default: the plugin's name).
    pub instance: Option<String>,
    /// The instance's configuration, a JSON object (default: `{}`).
    pub config: Option<serde_json::Value>,
    /// Replace an installed plugin of the same name (its instances and cursors stay).
    pub replace: bool,
}

/// What the operator grants an instance, as shown to users: its destinations and the
/// names (never the values) of its secrets.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
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
    graph: Arc<Graph>,
    config: PluginsConfig,
    sandbox: Sandbox,
    /// Pre-linked components by component digest.
    prepared: Mutex<HashMap<String, ConnectorPre<RunState>>>,
    /// Instances with a run in progress.
    running: Arc<Mutex<HashSet<String>>>,
    /// One permit per instance-pool slot.
    slots: tokio::sync::Semaphore,
    /// Network settings and TLS roots for every run.
    network: NetworkShared,
    /// Request pacing per instance, kept across its runs.
    buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
    /// Enabled instances with a schedule.
    scheduler: Scheduler<String>,
    /// What schedules run against.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A run that holds its instance's claim; dropping it releases the claim.
struct Claim {
    running: Arc<Mutex<HashSet<String>>>,
    record: RunRecord,
    instance: Instance,
    plugin: InstalledPlugin,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.record.instance);
    }
}

/// Names a failed run from what the sandbox saw: a failure the host decided (CPU budget,
/// checkpoint cap, host-call timeout), a refused memory growth, or a plain trap, quoted
/// with the panic message the plugin printed.
fn classify(state: &RunState, trap: &wasmtime::Error) -> RunFailure {
    if let Some(failure) = &state.failure {
        return failure.clone();
    }
    if state.out_of_memory() {
        return RunFailure::OutOfMemory { limit_bytes: state.memory_limit() };
    }
    let what = trap.downcast_ref::<wasmtime::Trap>().map_or_else(|| trap.root_cause().to_string(), ToString::to_string);
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
    pub fn new(graph: Arc<Graph>, config: PluginsConfig) -> Result<Self, PluginError> {
        Self::with_clock(graph, config, Arc::new(SystemClock))
    }

    /// [`Self::new`], with schedules running against `clock`.
    pub fn with_clock(graph: Arc<Graph>, config: PluginsConfig, clock: Arc<dyn Clock>) -> Result<Self, PluginError> {
        let sandbox = Sandbox::new(&config)?;
        let network = NetworkShared { config: config.network.clone(), tls: tls::client_config(&config.network.extra_ca_files)? };
        let host = Self {
            graph,
            network,
            buckets: Mutex::new(HashMap::new()),
            scheduler: Scheduler::default(),
            clock,
            slots: tokio::sync::Semaphore::new(config.max_concurrent_runs as usize),
            config,
            sandbox,
            prepared: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashSet::new())),
        };
        // Only the runs still marked active are read, not the whole history.
        let mut abandoned = Vec::new();
        for (name, id) in host.graph.meta_with_prefix("active/")? {
            let instance = name.trim_start_matches("active/");
            let id = String::from_utf8_lossy(&id).into_owned();
            if let Some(mut record) = registry::get::<RunRecord>(&host.graph, &registry::run_key(instance, &id))? {
                record.status = RunStatus::Abandoned;
                abandoned.push((registry::run_key(instance, &id), Some(registry::encode(&record))));
            }
            abandoned.push((name, None));
        }
        if !abandoned.is_empty() {
            tracing::info!(runs = abandoned.len() / 2, "runs interrupted by a stop marked abandoned");
            host.graph.write_meta(abandoned)?;
        }
        for instance in host.instances()? {
            host.schedule(&instance)?;
        }
        Ok(host)
    }

    /// Puts an instance on the scheduler (from its persisted plan) or takes it off. A
    /// stored schedule this host cannot read is logged and left off, not fatal.
    fn schedule(&self, instance: &Instance) -> Result<(), PluginError> {
        match instance.schedule.as_ref().filter(|_| instance.enabled) {
            None => self.scheduler.remove(&instance.name),
            Some(spec) => match Schedule::parse(&spec.cron, &spec.timezone) {
                Ok(schedule) => {
                    let plan = registry::get::<Plan>(&self.graph, &registry::plan_key(&instance.name))?.unwrap_or_default();
                    self.scheduler.set(instance.name.clone(), schedule, plan);
                }
                Err(err) => tracing::warn!(instance = %instance.name, error = %err, "instance not scheduled"),
            },
        }
        Ok(())
    }

    /// Sets (or, with `None`, removes) an instance's schedule; it is planned from now.
    pub fn configure_schedule(&self, name: &str, schedule: Option<InstanceSchedule>) -> Result<Instance, PluginError> {
        if let Some(spec) = &schedule {
            Schedule::parse(&spec.cron, &spec.timezone)?;
        }
        let instance = Instance { schedule, ..self.instance(name)? };
        self.save_scheduled(&instance)
    }

    /// Enables or disables an instance's schedule.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<Instance, PluginError> {
        let instance = Instance { enabled, ..self.instance(name)? };
        self.save_scheduled(&instance)
    }

    /// Stores an instance whose schedule changed, with a fresh plan, and reschedules it.
    fn save_scheduled(&self, instance: &Instance) -> Result<Instance, PluginError> {
        self.graph.write_meta(vec![
            (registry::instance_key(&instance.name), Some(registry::encode(instance))),
            (registry::plan_key(&instance.name), None),
        ])?;
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
                let plans =
                    changes.iter().map(|(instance, _, plan)| (registry::plan_key(instance), Some(registry::encode(plan)))).collect();
                if let Err(err) = host.graph.write_meta(plans) {
                    tracing::error!(error = %err, "cannot store the schedules' plans");
                }
                for (instance, _, _) in changes.into_iter().filter(|(_, due, _)| *due) {
                    match host.start(&instance, Trigger::Schedule) {
                        Ok(record) => tracing::info!(%instance, run_id = %record.id, "scheduled run started"),
                        Err(PluginError::AlreadyRunning(_)) => {
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
        }
    }

    /// Installs the plugin package at `path` (a directory holding `plugin.toml` and
    /// `plugin.wasm`, or the `.wasm` file with `plugin.toml` beside it) and creates its
    /// instance.
    pub async fn install(&self, path: &Path, options: InstallOptions) -> Result<(InstalledPlugin, Instance), PluginError> {
        let (manifest_path, wasm_path) = package_files(path)?;
        let manifest = Manifest::load(&manifest_path)?;
        if !SUPPORTED_API.supports(manifest.api) {
            return Err(PluginError::UnsupportedApi { plugin: manifest.api, host: SUPPORTED_API, import: String::new() });
        }
        let instance_name = options.instance.unwrap_or_else(|| manifest.name.clone());
        if !manifest::is_valid_name(&instance_name) {
            return Err(PluginError::InvalidName(instance_name));
        }
        let config = options.config.unwrap_or_else(|| serde_json::json!({}));
        if !config.is_object() {
            return Err(PluginError::InvalidConfig);
        }
        let wasm = std::fs::read(&wasm_path).map_err(io(&wasm_path))?;
        let pre = self.sandbox.prepare(&wasm)?;
        self.check_description(&pre, &manifest).await?;

        let previous = registry::get::<InstalledPlugin>(&self.graph, &registry::plugin_key(&manifest.name))?;
        if previous.is_some() && !options.replace {
            return Err(PluginError::AlreadyInstalled(manifest.name));
        }
        let existing = registry::get::<Instance>(&self.graph, &registry::instance_key(&instance_name))?;
        if let Some(existing) = existing.as_ref().filter(|e| e.plugin != manifest.name) {
            return Err(PluginError::InstanceTaken { instance: instance_name, plugin: existing.plugin.clone() });
        }
        let digest = hex(&Sha256::digest(&wasm));
        let stored = self.component_path(&manifest.name, &digest);
        if let Some(dir) = stored.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&stored, &wasm).map_err(io(&stored))?;
        let plugin = InstalledPlugin { manifest, component_sha256: digest.clone(), installed_at: Utc::now() };
        let instance = existing.unwrap_or(Instance {
            name: instance_name,
            plugin: plugin.manifest.name.clone(),
            config,
            created_at: Utc::now(),
            schedule: None,
            enabled: true,
        });
        self.graph.write_meta(vec![
            (registry::plugin_key(&plugin.manifest.name), Some(registry::encode(&plugin))),
            (registry::instance_key(&instance.name), Some(registry::encode(&instance))),
        ])?;
        // The replaced component's file goes; runs already holding it in memory finish.
        if let Some(old) = previous.filter(|p| p.component_sha256 != digest) {
            let old_path = self.component_path(&plugin.manifest.name, &old.component_sha256);
            if let Err(err) = std::fs::remove_file(&old_path) {
                tracing::warn!(path = %old_path.display(), error = %err, "cannot remove the replaced plugin component");
            }
            lock(&self.prepared).remove(&old.component_sha256);
        }
        lock(&self.prepared).insert(digest, pre);
        tracing::info!(plugin = %plugin.manifest.name, version = %plugin.manifest.version, instance = %instance.name, "plugin installed");
        Ok((plugin, instance))
    }

    /// Checks that an installed plugin still loads in this host and agrees with its
    /// manifest: a fresh sandbox, instantiated, asked to `describe` itself.
    pub async fn verify(&self, name: &str) -> Result<(), PluginError> {
        let plugin: InstalledPlugin =
            registry::get(&self.graph, &registry::plugin_key(name))?.ok_or_else(|| PluginError::UnknownPlugin(name.to_owned()))?;
        let pre = self.prepared_for(&plugin)?;
        self.check_description(&pre, &plugin.manifest).await
    }

    /// Calls `describe` in a sandboxed store and compares it with the manifest.
    async fn check_description(&self, pre: &ConnectorPre<RunState>, manifest: &Manifest) -> Result<(), PluginError> {
        // `describe` gets no network access and no secrets.
        let network = Network::new(Arc::new(Access::default()), self.network.clone());
        let mut store = RunState::store(&self.sandbox.engine, self.limits(), None, network);
        let describe = async {
            let connector = pre.instantiate_async(&mut store).await?;
            store.data_mut().resume_clock();
            connector.call_describe(&mut store).await
        };
        let description = tokio::time::timeout(self.config.host_call_timeout, describe)
            .await
            .map_err(|_| PluginError::Describe(format!("no answer within {} s", self.config.host_call_timeout.as_secs())))?
            .map_err(|e| PluginError::Describe(format!("{e:#}")))?;
        if description.name != manifest.name || description.version != manifest.version {
            return Err(PluginError::ManifestMismatch {
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
    pub fn plugins(&self) -> Result<Vec<InstalledPlugin>, PluginError> {
        registry::list(&self.graph, "plugin/")
    }

    /// Plugin instances, by name.
    pub fn instances(&self) -> Result<Vec<Instance>, PluginError> {
        registry::list(&self.graph, "instance/")
    }

    /// The last committed cursor of an instance.
    pub fn cursor(&self, instance: &str) -> Result<Option<String>, PluginError> {
        Ok(registry::cursor(&self.graph, instance)?)
    }

    /// What the operator's configuration grants `instance`.
    pub fn grant(&self, instance: &str) -> GrantSummary {
        self.config.instances.get(instance).map_or_else(GrantSummary::default, |grant| GrantSummary {
            allowed_hosts: grant.allowed_hosts.iter().map(ToString::to_string).collect(),
            rate_limit: grant.rate_limit,
            secrets: grant.secrets.keys().cloned().collect(),
        })
    }

    /// An instance's runs, newest first.
    pub fn runs(&self, instance: &str) -> Result<Vec<RunRecord>, PluginError> {
        self.instance(instance)?;
        let mut runs: Vec<RunRecord> = registry::list(&self.graph, &format!("run/{instance}/"))?;
        runs.reverse();
        Ok(runs)
    }

    /// One run of an instance.
    pub fn run_record(&self, instance: &str, id: &str) -> Result<Option<RunRecord>, PluginError> {
        registry::get(&self.graph, &registry::run_key(instance, id))
    }

    fn instance(&self, name: &str) -> Result<Instance, PluginError> {
        registry::get(&self.graph, &registry::instance_key(name))?.ok_or_else(|| PluginError::UnknownInstance(name.to_owned()))
    }

    /// Runs a sync of `instance` to its end; `on_commit` sees the run's record after each
    /// checkpoint. A failed run is a record with status `failed`, not an error: errors
    /// mean the run could not start.
    pub async fn run(
        &self,
        instance: &str,
        trigger: Trigger,
        on_commit: impl Fn(&RunRecord) + Send + Sync + 'static,
    ) -> Result<RunRecord, PluginError> {
        let claim = self.claim(instance, trigger)?;
        Ok(self.execute(claim, Box::new(on_commit)).await)
    }

    /// Starts a run in the background and returns its first record.
    pub fn start(self: &Arc<Self>, instance: &str, trigger: Trigger) -> Result<RunRecord, PluginError> {
        let claim = self.claim(instance, trigger)?;
        let record = claim.record.clone();
        let host = Arc::clone(self);
        tokio::spawn(async move { host.execute(claim, Box::new(|_| {})).await });
        Ok(record)
    }

    /// Runs a claimed sync inside its `plugin_run` span and records how it ended.
    async fn execute(&self, claim: Claim, on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>) -> RunRecord {
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
            // The semaphore is never closed; a permit bounds the runs using pool slots.
            let _permit = self.slots.acquire().await.ok();
            let (mut record, failure) = self.sync(&claim, on_commit).await;
            record.status = if failure.is_some() { RunStatus::Failed } else { RunStatus::Succeeded };
            record.failure = failure;
            record.ended_at = Some(Utc::now());
            let outcome = record.failure.as_ref().map_or("succeeded", RunFailure::kind);
            METRICS.plugin_runs.get_or_create(&crate::metrics::OutcomeLabels { outcome }).inc();
            METRICS.plugin_run_duration.observe(started.elapsed().as_secs_f64());
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
                METRICS.plugin_network.get_or_create(&crate::metrics::NetworkLabels { event }).inc_by(count);
            }
            let finished = vec![
                (registry::run_key(&record.instance, &record.id), Some(registry::encode(&record))),
                (registry::active_key(&record.instance), None),
            ];
            let graph = Arc::clone(&self.graph);
            match tokio::task::spawn_blocking(move || graph.write_meta(finished)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "cannot store the run's final record"),
                Err(err) => tracing::error!(error = %err, "the task storing the run's final record failed"),
            }
            let duration_ms = started.elapsed().as_millis();
            match &record.failure {
                None => tracing::info!(checkpoints = record.checkpoints, applied = record.operations_applied, skipped = record.operations_skipped, duration_ms, "run succeeded"),
                Some(failure) => tracing::warn!(checkpoints = record.checkpoints, applied = record.operations_applied, skipped = record.operations_skipped, duration_ms, %failure, "run failed"),
            }
            drop(claim);
            record
        }
        .instrument(span)
        .await
    }

    /// The sync itself: the last committed record, and why it failed if it did.
    async fn sync(&self, claim: &Claim, on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>) -> (RunRecord, Option<RunFailure>) {
        let pre = match self.prepared_for(&claim.plugin) {
            Ok(pre) => pre,
            Err(err) => return (claim.record.clone(), Some(RunFailure::Host { message: err.to_string() })),
        };
        let active = ActiveRun::new(Arc::clone(&self.graph), claim.record.clone(), on_commit);
        let committed = Arc::clone(&active.committed);
        let network = Network::new(self.access(claim), self.network.clone());
        let mut store = RunState::store(&self.sandbox.engine, self.limits(), Some(active), network);
        let config = claim.instance.config.to_string();
        let cursor = claim.record.cursor.clone();
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
        let mut last = lock(&committed).record.clone();
        last.network = store.data().network.counters.clone();
        (last, failure)
    }

    /// What a run of the claimed instance may reach: what its manifest requests, narrowed
    /// to what the operator grants it, paced by the grant's (or else the manifest's) rate.
    fn access(&self, claim: &Claim) -> Arc<Access> {
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
        Arc::new(Access {
            plugin: claim.plugin.manifest.name.clone(),
            instance: name.clone(),
            requested: requested.allowed_hosts.clone(),
            granted: grant.allowed_hosts,
            bucket,
            secrets: Secrets::new(grant.secrets),
        })
    }

    /// The pre-linked component of an installed plugin, compiled (or loaded from the
    /// cache) on first use.
    fn prepared_for(&self, plugin: &InstalledPlugin) -> Result<ConnectorPre<RunState>, PluginError> {
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
    fn claim(&self, name: &str, trigger: Trigger) -> Result<Claim, PluginError> {
        let instance = self.instance(name)?;
        let plugin: InstalledPlugin = registry::get(&self.graph, &registry::plugin_key(&instance.plugin))?
            .ok_or_else(|| PluginError::UnknownInstance(name.to_owned()))?;
        if !lock(&self.running).insert(name.to_owned()) {
            return Err(PluginError::AlreadyRunning(name.to_owned()));
        }
        let cursor = registry::cursor(&self.graph, name);
        let record = RunRecord {
            id: format!("run_{}", ulid::Ulid::new()),
            instance: name.to_owned(),
            plugin: plugin.manifest.name.clone(),
            plugin_version: plugin.manifest.version.clone(),
            trigger,
            status: RunStatus::Running,
            started_at: Utc::now(),
            ended_at: None,
            cursor_before: None,
            cursor: None,
            checkpoints: 0,
            operations_applied: 0,
            operations_skipped: 0,
            skipped_examples: Vec::new(),
            network: Default::default(),
            failure: None,
        };
        let mut claim = Claim { running: Arc::clone(&self.running), record, instance, plugin };
        let cursor = cursor?;
        claim.record.cursor_before.clone_from(&cursor);
        claim.record.cursor = cursor;
        self.graph.write_meta(vec![
            (registry::run_key(name, &claim.record.id), Some(registry::encode(&claim.record))),
            (registry::active_key(name), Some(claim.record.id.clone().into_bytes())),
        ])?;
        Ok(claim)
    }
}
