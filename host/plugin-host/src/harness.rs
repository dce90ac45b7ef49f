//! The plugin test harness: the real component of a package, in the real sandbox, over a
//! throwaway ledger the caller makes (the daemon's graph over a temporary store), with the
//! network and secrets the test grants. `rapport plugin test` prints its reports; authors'
//! and our own tests read them.
//!
//! ```ignore
//! let bench = TestBench::new(Path::new("target/…/example"), ledger, TestOptions::new(json!({"base_url": url}))).await?;
//! let first = bench.run().await?;   // from no cursor
//! let again = bench.run().await?;   // from first.cursor, like the next scheduled run
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::ledger::Ledger;
use super::registry::{LogLine, RunRecord, Trigger};
use super::run::CommitTrace;
use super::{InstallOptions, PluginHost, PluginHostError};
use crate::config::{GrantedBy, InstanceGrant, PluginsConfig};
use rapport_core::Secret;
use rapport_net::HostPattern;
use rapport_ops::Operation;

/// The instance name test runs use: the source of everything they write.
pub const TEST_INSTANCE: &str = "test";

/// What a test run gets.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The instance's configuration (a JSON object).
    pub config: serde_json::Value,
    /// The cursor the first run starts from.
    pub cursor: Option<String>,
    /// Destinations granted; `None` grants what the manifest requests.
    pub allowed_hosts: Option<Vec<HostPattern>>,
    /// The instance's secrets.
    pub secrets: BTreeMap<String, Secret>,
    /// Everything else: limits, network settings.
    pub plugins: PluginsConfig,
}

impl TestOptions {
    /// Default limits, the manifest's destinations granted, no secrets, no cursor.
    pub fn new(config: serde_json::Value) -> Self {
        Self {
            config,
            cursor: None,
            allowed_hosts: None,
            secrets: BTreeMap::new(),
            plugins: PluginsConfig::with_dir(std::path::PathBuf::new()),
        }
    }
}

/// One test run: its record, every commit with the operations it carried, the cursor it
/// left and the lines it logged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestReport {
    /// The run's record (status, counts, network, failure).
    pub run: RunRecord,
    /// Each commit: the checkpoint's cursor and the operations emitted before it.
    pub commits: Vec<CommitTrace>,
    /// The cursor committed last (the next run starts from it).
    pub cursor: Option<String>,
    /// What the plugin logged.
    pub logs: Vec<LogLine>,
}

impl TestReport {
    /// Every operation the run committed (or tried to: invalid ones are counted in
    /// `run.operations_skipped`), in order.
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.commits.iter().flat_map(|commit| &commit.operations)
    }
}

/// A package installed in a throwaway ledger, ready to run as instance [`TEST_INSTANCE`].
#[derive(Debug)]
pub struct TestBench {
    host: PluginHost,
    _dir: tempfile::TempDir,
}

impl TestBench {
    /// Installs the package at `path` in `ledger` (a fresh one: the bench owns it), with
    /// its plugin files in a temporary directory.
    pub async fn new(path: &Path, ledger: Arc<dyn Ledger>, options: TestOptions) -> Result<Self, PluginHostError> {
        let dir = tempfile::tempdir().map_err(|source| PluginHostError::Io { path: std::env::temp_dir(), source })?;
        let manifest = super::manifest::Manifest::load(&super::package_files(path)?.0)?;
        let mut plugins = options.plugins;
        plugins.dir = dir.path().join("plugins");
        let grant = InstanceGrant {
            granted_by: GrantedBy::TestAllow,
            allowed_hosts: options.allowed_hosts.unwrap_or_else(|| manifest.network.allowed_hosts.clone()),
            rate_limit: None,
            secrets: options.secrets.into_iter().map(|(name, secret)| (name, secret.into())).collect(),
            ..InstanceGrant::default()
        };
        plugins.instances.insert(TEST_INSTANCE.to_owned(), grant);
        let host = PluginHost::new(ledger, plugins)?;
        let install = InstallOptions { instance: Some(TEST_INSTANCE.to_owned()), config: Some(options.config) };
        host.install(path, install).await?;
        if let Some(cursor) = options.cursor {
            host.set_cursor(TEST_INSTANCE, Some(&cursor))?;
        }
        Ok(Self { host, _dir: dir })
    }

    /// Runs a sync from the instance's current cursor, as the next scheduled run would.
    pub async fn run(&self) -> Result<TestReport, PluginHostError> {
        let (run, commits) = self.host.run_traced(TEST_INSTANCE, Trigger::Cli).await?;
        let logs = self.host.logs(TEST_INSTANCE, run.id)?;
        let cursor = self.host.cursor(TEST_INSTANCE)?;
        Ok(TestReport { run, commits, cursor, logs })
    }
}
