//! The plugin runtime: installs WebAssembly connector components and runs their syncs in a
//! sandbox, committing what they emit exactly once.
//!
//! - [`PluginHost`], the runtime's front, has its methods in three files: `catalog`
//!   (installing, instances, configuration, cursors, uninstalling), `scheduling` (schedules
//!   and the loop that runs them) and `execute` (claiming, running and recording a run).
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
mod catalog;
pub mod config;
mod execute;
pub mod harness;
pub mod ledger;
pub mod manifest;
pub mod metrics;
mod network;
pub mod registry;
mod run;
mod sandbox;
mod scheduling;
mod secrets;

pub use self::secrets::REDACTED;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use self::bindings::ConnectorPre;
use self::manifest::{ApiVersion, ManifestError};
use self::network::{NetworkShared, TokenBucket};
use self::registry::{InstalledPlugin, Instance, RunStatus};
pub use self::run::CommitTrace;
use self::run::RunState;
use self::sandbox::Sandbox;
use crate::config::{PluginsConfig, RateLimit};
use crate::ledger::{Ledger, LedgerError};
use rapport_net::tls::{self, TlsError};
use rapport_schedule::{Clock, Plan, ScheduleError, Scheduler, SystemClock};

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

/// What an uninstall removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Uninstalled {
    /// The instances removed.
    pub instances: Vec<String>,
    /// The plugin, when its last instance went.
    pub plugin: Option<String>,
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
}
