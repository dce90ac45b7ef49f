//! The `[plugins]` section of `rapport.toml`: where plugins live, the sandbox's limits for
//! every run, and what the operator grants each instance (`[plugins.instances.<name>]`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rapport_core::Secret;
use rapport_core::config::{ConfigError, EnvKeys, EnvKind, days, invalid, set_positive};
use rapport_net::HostPattern;
use rapport_net::config::{NetworkConfig, RawNetwork};
use rapport_ops::SourceTrust;
use serde::{Deserialize, Serialize};

use crate::manifest::is_valid_name;

/// A request rate: `requests_per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Requests allowed at once after a quiet period (at least 1).
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

impl RateLimit {
    /// Checks the values make sense; the error says what is expected.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) || self.burst == 0 {
            return Err("expected requests_per_second > 0 and burst >= 1".to_owned());
        }
        Ok(())
    }
}

/// A secret as the operator configured it: the value itself, or the environment variable
/// holding it, read only when the instance runs — so a command that never runs it (listing
/// the graph, say, in a terminal without the variable) does not need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the config file.
    Value(Secret),
    /// In this environment variable of the process that runs the instance.
    Env {
        /// The variable.
        var: String,
        /// The key that names it (`plugins.instances.<name>.secrets.<secret>`), for errors.
        key: String,
    },
}

impl From<Secret> for SecretSource {
    fn from(secret: Secret) -> Self {
        Self::Value(secret)
    }
}

impl SecretSource {
    /// The value, read from the process environment if that is where it is.
    pub fn resolve(&self) -> Result<Secret, ConfigError> {
        self.resolve_in(|var| std::env::var(var).ok())
    }

    /// The value, looking variables up with `lookup` (the process environment in [`Self::resolve`]).
    pub fn resolve_in(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Secret, ConfigError> {
        match self {
            Self::Value(secret) => Ok(secret.clone()),
            Self::Env { var, key } => {
                let value = lookup(var)
                    .ok_or_else(|| invalid(key, format!("environment variable {var} is not set (export it where `rapport serve` runs)")))?;
                check_secret_length(key, &value)?;
                Ok(Secret::new(value))
            }
        }
    }
}

fn check_secret_length(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.chars().count() < MIN_SECRET_CHARS {
        return Err(invalid(key, format!("a secret has at least {MIN_SECRET_CHARS} characters")));
    }
    Ok(())
}

/// Shortest secret accepted: shorter values would be redacted out of ordinary text.
pub const MIN_SECRET_CHARS: usize = 6;

/// What the operator grants one plugin instance (`[plugins.instances.<name>]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceGrant {
    /// Destinations the instance may reach (its plugin's manifest must request them too).
    pub allowed_hosts: Vec<HostPattern>,
    /// Overrides the manifest's rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Secrets by name, handed to this instance only.
    pub secrets: BTreeMap<String, SecretSource>,
    /// What the instance may assert about identity (nothing by default).
    pub trust: SourceTrust,
    /// Where the grant comes from, so a refusal says what to change.
    pub granted_by: GrantedBy,
}

/// Where a run's grant comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GrantedBy {
    /// `[plugins.instances.<name>]` in `rapport.toml`.
    #[default]
    Config,
    /// `rapport plugin test --allow`.
    TestAllow,
}

/// Plugin runtime settings: where plugins live and the sandbox's limits for every run.
#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// Installed plugins and their compiled code.
    pub dir: PathBuf,
    /// Runs executing at the same time (sizes the instance pool).
    pub max_concurrent_runs: u32,
    /// Linear memory one run may use.
    pub memory_limit_bytes: u64,
    /// Time a run's own code may execute, excluding time waiting on host calls.
    pub cpu_budget: Duration,
    /// Wall-clock limit of a whole run.
    pub run_timeout: Duration,
    /// Wall-clock limit of each host call.
    pub host_call_timeout: Duration,
    /// Operations a run may emit between two checkpoints.
    pub max_operations_per_checkpoint: usize,
    /// Largest operation a plugin may emit (its JSON); a larger one is skipped.
    pub max_operation_bytes: usize,
    /// Bytes of operations a run may emit between two checkpoints.
    pub max_pending_bytes: usize,
    /// Largest cursor a checkpoint may commit.
    pub max_cursor_bytes: usize,
    /// Largest log line (message and fields) kept; longer ones are cut.
    pub max_log_line_bytes: usize,
    /// How long run records and their logs are kept.
    pub run_history: Duration,
    /// How network calls are made.
    pub network: NetworkConfig,
    /// What each instance is granted, by instance name.
    pub instances: BTreeMap<String, InstanceGrant>,
}

impl PluginsConfig {
    /// The defaults, with plugins kept in `dir`.
    pub fn with_dir(dir: PathBuf) -> Self {
        Self {
            dir,
            max_concurrent_runs: 4,
            memory_limit_bytes: 128 << 20,
            cpu_budget: Duration::from_secs(60),
            run_timeout: Duration::from_secs(30 * 60),
            host_call_timeout: Duration::from_secs(60),
            max_operations_per_checkpoint: 10_000,
            max_operation_bytes: 1 << 20,
            max_pending_bytes: 64 << 20,
            max_cursor_bytes: 1 << 20,
            max_log_line_bytes: 8 << 10,
            run_history: Duration::from_secs(30 * 86_400),
            network: NetworkConfig::default(),
            instances: BTreeMap::new(),
        }
    }
}

impl PluginsConfig {
    /// The most memory the daemon holds for one run, in bytes: the run's linear memory and
    /// one host call's arguments lifted out of it (each at most `memory_limit_bytes`); the
    /// operations pending until the next checkpoint, parsed and then written
    /// (`max_pending_bytes` of JSON, counted four times); its log lines (1,000 kept, each
    /// at most `max_log_line_bytes`); its cursor, twice (the record and the commit); and a
    /// mebibyte for its record, skipped examples and bookkeeping. ARCHITECTURE.md states
    /// the same formula.
    pub fn host_memory_bound_bytes(&self) -> u64 {
        let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        2 * self.memory_limit_bytes
            + 4 * bytes(self.max_pending_bytes)
            + 1000 * bytes(self.max_log_line_bytes)
            + 2 * bytes(self.max_cursor_bytes)
            + (1 << 20)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[plugins]` as written.
pub struct RawPlugins {
    /// `plugins.dir`.
    pub dir: Option<PathBuf>,
    max_concurrent_runs: Option<u32>,
    memory_limit_bytes: Option<u64>,
    cpu_budget_ms: Option<u64>,
    run_timeout_secs: Option<u64>,
    host_call_timeout_secs: Option<u64>,
    max_operations_per_checkpoint: Option<usize>,
    max_operation_bytes: Option<usize>,
    max_pending_bytes: Option<usize>,
    max_cursor_bytes: Option<usize>,
    max_log_line_bytes: Option<usize>,
    run_history_days: Option<u64>,
    #[serde(default)]
    /// `[plugins.network]`.
    pub network: RawNetwork,
    #[serde(default)]
    instances: BTreeMap<String, RawInstance>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    #[serde(default)]
    allowed_hosts: Vec<HostPattern>,
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    trust: SourceTrust,
}

/// A secret as written: the value itself, or the environment variable holding it.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string, or { env = \"VARIABLE\" } to read it from the environment")]
enum RawSecret {
    Value(String),
    Env { env: String },
}

/// The keys of `[plugins]` (but for its network section) an environment variable may set.
pub const ENV_KEYS: EnvKeys = &[
    ("plugins.dir", EnvKind::Text),
    ("plugins.max_concurrent_runs", EnvKind::Number),
    ("plugins.memory_limit_bytes", EnvKind::Number),
    ("plugins.cpu_budget_ms", EnvKind::Number),
    ("plugins.run_timeout_secs", EnvKind::Number),
    ("plugins.host_call_timeout_secs", EnvKind::Number),
    ("plugins.max_operations_per_checkpoint", EnvKind::Number),
    ("plugins.max_operation_bytes", EnvKind::Number),
    ("plugins.max_pending_bytes", EnvKind::Number),
    ("plugins.max_cursor_bytes", EnvKind::Number),
    ("plugins.max_log_line_bytes", EnvKind::Number),
    ("plugins.run_history_days", EnvKind::Number),
];

impl RawPlugins {
    /// The validated section; plugins sit beside the store (at `store_path`) unless
    /// `plugins.dir` says otherwise.
    pub fn validate(self, store_path: &Path) -> Result<PluginsConfig, ConfigError> {
        // Plugins sit beside the store unless configured elsewhere.
        let dir = self.dir.unwrap_or_else(|| store_path.parent().unwrap_or(Path::new("")).join("plugins"));
        let mut config = PluginsConfig::with_dir(dir);
        set_positive(&mut config.max_concurrent_runs, "plugins.max_concurrent_runs", self.max_concurrent_runs, std::convert::identity)?;
        set_positive(&mut config.memory_limit_bytes, "plugins.memory_limit_bytes", self.memory_limit_bytes, std::convert::identity)?;
        set_positive(&mut config.cpu_budget, "plugins.cpu_budget_ms", self.cpu_budget_ms, Duration::from_millis)?;
        set_positive(&mut config.run_timeout, "plugins.run_timeout_secs", self.run_timeout_secs, Duration::from_secs)?;
        set_positive(&mut config.run_history, "plugins.run_history_days", self.run_history_days, days)?;
        set_positive(&mut config.host_call_timeout, "plugins.host_call_timeout_secs", self.host_call_timeout_secs, Duration::from_secs)?;
        set_positive(
            &mut config.max_operations_per_checkpoint,
            "plugins.max_operations_per_checkpoint",
            self.max_operations_per_checkpoint,
            std::convert::identity,
        )?;
        set_positive(&mut config.max_operation_bytes, "plugins.max_operation_bytes", self.max_operation_bytes, std::convert::identity)?;
        set_positive(&mut config.max_pending_bytes, "plugins.max_pending_bytes", self.max_pending_bytes, std::convert::identity)?;
        set_positive(&mut config.max_cursor_bytes, "plugins.max_cursor_bytes", self.max_cursor_bytes, std::convert::identity)?;
        set_positive(&mut config.max_log_line_bytes, "plugins.max_log_line_bytes", self.max_log_line_bytes, std::convert::identity)?;
        config.network = self.network.validate()?;
        for (name, instance) in self.instances {
            let key = format!("plugins.instances.{name}");
            if !is_valid_name(&name) {
                return Err(invalid(&key, "instance names are lowercase letters, digits and `-`, starting with a letter"));
            }
            if let Some(Err(message)) = instance.rate_limit.as_ref().map(RateLimit::check) {
                return Err(invalid(&format!("{key}.rate_limit"), message));
            }
            let mut secrets = BTreeMap::new();
            for (secret, raw) in instance.secrets {
                let key = format!("{key}.secrets.{secret}");
                let source = match raw {
                    RawSecret::Value(value) => {
                        check_secret_length(&key, &value)?;
                        SecretSource::Value(Secret::new(value))
                    }
                    RawSecret::Env { env: var } => SecretSource::Env { var, key },
                };
                secrets.insert(secret, source);
            }
            config.instances.insert(
                name,
                InstanceGrant {
                    allowed_hosts: instance.allowed_hosts,
                    rate_limit: instance.rate_limit,
                    secrets,
                    trust: instance.trust,
                    granted_by: GrantedBy::Config,
                },
            );
        }
        Ok(config)
    }
}
