//! Configuration: built-in defaults, then `rapport.toml`, then `RAPPORT_*` environment
//! variables, validated once into a typed [`Config`].
//!
//! This is the only module that reads the environment. Every error names where the bad
//! value came from (file, line and key, or the variable) and what is expected.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::graph::IdentityRules;
use crate::net::HostPattern;
use crate::ops;
use crate::plugin::manifest::is_valid_name;

/// A configuration value is missing, malformed or inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A value in the file is wrong.
    #[error("{path}:{line}: key `{key}`: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Dotted key.
        key: String,
        /// What is wrong and expected.
        message: String,
    },
    /// An environment variable is wrong.
    #[error("environment variable {var} (overrides `{key}`): {message}")]
    Env {
        /// The variable.
        var: String,
        /// The key it overrides.
        key: String,
        /// What is wrong and expected.
        message: String,
    },
    /// A value is wrong wherever it came from.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong and expected.
        message: String,
    },
}

/// The file as written; every field optional so defaults and the environment can fill in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    import: RawImport,
    #[serde(default)]
    plugins: RawPlugins,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    cache_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    bind: Option<String>,
    dev_mode: Option<bool>,
    token_sha256: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    internal_domains: Option<Vec<String>>,
    free_mail_domains: Option<Vec<String>>,
    extra_free_mail_domains: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    batch_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    dir: Option<PathBuf>,
    max_concurrent_runs: Option<u32>,
    memory_limit_bytes: Option<u64>,
    cpu_budget_ms: Option<u64>,
    run_timeout_secs: Option<u64>,
    host_call_timeout_secs: Option<u64>,
    max_operations_per_checkpoint: Option<usize>,
    run_history_days: Option<u64>,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    instances: BTreeMap<String, RawInstance>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    connect_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_response_bytes: Option<u64>,
    max_retries: Option<u32>,
    max_retry_wait_secs: Option<u64>,
    extra_ca_files: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    #[serde(default)]
    allowed_hosts: Vec<HostPattern>,
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
}

/// A secret as written: the value itself, or the environment variable holding it.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string, or { env = \"VARIABLE\" } to read it from the environment")]
enum RawSecret {
    Value(String),
    Env { env: String },
}

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

/// A secret value: kept out of `Debug` output so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that hands it over.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
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
    pub secrets: BTreeMap<String, Secret>,
}

/// How the host makes plugins' network calls.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Limit for establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit for one HTTP attempt, response body included, and for each TCP read or write.
    pub request_timeout: Duration,
    /// Largest HTTP response body handed to a plugin.
    pub max_response_bytes: u64,
    /// Retries of a 429 or 503 response.
    pub max_retries: u32,
    /// Longest wait before a retry; a longer `Retry-After` returns the response instead.
    pub max_retry_wait: Duration,
    /// PEM files of CA certificates trusted besides the system's.
    pub extra_ca_files: Vec<PathBuf>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 16 << 20,
            max_retries: 3,
            max_retry_wait: Duration::from_secs(60),
            extra_ca_files: Vec::new(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the graph lives.
    pub store: StoreConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Identity resolution.
    pub identity: IdentityRules,
    /// Operations per committed batch in `import`.
    pub import_batch_size: usize,
    /// The plugin runtime.
    pub plugins: PluginsConfig,
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
            run_history: Duration::from_secs(30 * 86_400),
            network: NetworkConfig::default(),
            instances: BTreeMap::new(),
        }
    }
}

/// Default page cache of the store. sled's cache limit counts encoded page sizes, while
/// cached pages live decoded and several times larger, so the limit is kept modest.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the database.
    pub path: PathBuf,
    /// Page cache size.
    pub cache_bytes: u64,
}

/// HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// No authentication; only allowed on a loopback address.
    pub dev_mode: bool,
    /// SHA-256 digests of the accepted bearer tokens.
    pub token_digests: Vec<[u8; 32]>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

/// The environment variables read, the key each overrides, and how to apply it.
const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("RAPPORT_STORE_PATH", "store.path"),
    ("RAPPORT_STORE_CACHE_BYTES", "store.cache_bytes"),
    ("RAPPORT_API_BIND", "api.bind"),
    ("RAPPORT_API_DEV_MODE", "api.dev_mode"),
    ("RAPPORT_API_TOKEN_SHA256", "api.token_sha256"),
    ("RAPPORT_API_MAX_BODY_BYTES", "api.max_body_bytes"),
    ("RAPPORT_IDENTITY_INTERNAL_DOMAINS", "identity.internal_domains"),
    ("RAPPORT_IMPORT_BATCH_SIZE", "import.batch_size"),
    ("RAPPORT_PLUGINS_DIR", "plugins.dir"),
    ("RAPPORT_PLUGINS_MAX_CONCURRENT_RUNS", "plugins.max_concurrent_runs"),
    ("RAPPORT_PLUGINS_MEMORY_LIMIT_BYTES", "plugins.memory_limit_bytes"),
    ("RAPPORT_PLUGINS_CPU_BUDGET_MS", "plugins.cpu_budget_ms"),
    ("RAPPORT_PLUGINS_RUN_TIMEOUT_SECS", "plugins.run_timeout_secs"),
    ("RAPPORT_PLUGINS_HOST_CALL_TIMEOUT_SECS", "plugins.host_call_timeout_secs"),
    ("RAPPORT_PLUGINS_MAX_OPERATIONS_PER_CHECKPOINT", "plugins.max_operations_per_checkpoint"),
    ("RAPPORT_PLUGINS_RUN_HISTORY_DAYS", "plugins.run_history_days"),
    ("RAPPORT_PLUGINS_NETWORK_CONNECT_TIMEOUT_SECS", "plugins.network.connect_timeout_secs"),
    ("RAPPORT_PLUGINS_NETWORK_REQUEST_TIMEOUT_SECS", "plugins.network.request_timeout_secs"),
    ("RAPPORT_PLUGINS_NETWORK_MAX_RESPONSE_BYTES", "plugins.network.max_response_bytes"),
    ("RAPPORT_PLUGINS_NETWORK_MAX_RETRIES", "plugins.network.max_retries"),
    ("RAPPORT_PLUGINS_NETWORK_MAX_RETRY_WAIT_SECS", "plugins.network.max_retry_wait_secs"),
    ("RAPPORT_PLUGINS_NETWORK_EXTRA_CA_FILES", "plugins.network.extra_ca_files"),
];

impl Config {
    /// Loads `path` (if given) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(path, &std::env::vars().collect::<Vec<_>>())
    }

    /// Loads `path` (if given) with an explicit environment (for tests): the `RAPPORT_*`
    /// overrides in it apply, and secrets configured as `{ env = "…" }` are read from it.
    pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut raw = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                parse_file(path, &text)?
            }
            None => RawConfig::default(),
        };
        for (var, value) in env.iter().filter(|(var, _)| ENV_OVERRIDES.iter().any(|(known, _)| known == var)) {
            apply_env(&mut raw, var, value)?;
        }
        validate(raw, env)
    }
}

fn parse_file(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    parse_toml(text).map_err(|e| ConfigError::File { path: path.to_owned(), line: e.line, key: e.key, message: e.message })
}

/// A TOML document did not fit its type.
#[derive(Debug)]
pub(crate) struct TomlError {
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// Dotted key (empty for a syntax error).
    pub key: String,
    /// What is wrong and expected.
    pub message: String,
}

/// Deserializes a TOML document, locating every error by line and dotted key.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let line = |offset: Option<usize>| offset.map_or(1, |o| text[..o.min(text.len())].matches('\n').count() + 1);
    let de = toml::de::Deserializer::parse(text).map_err(|e| TomlError {
        line: line(e.span().map(|s| s.start)),
        key: String::new(),
        message: e.message().to_owned(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let offset = inner.span().map(|s| s.start).or_else(|| find_key(text, &key));
        TomlError { line: line(offset), key, message: inner.message().to_owned() }
    })
}

/// Where `dotted.key` is written, for errors the parser reports without a position.
fn find_key(text: &str, dotted: &str) -> Option<usize> {
    let leaf = dotted.rsplit('.').next()?;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(leaf) {
            return Some(offset + 1);
        }
        offset += line.len();
    }
    None
}

fn apply_env(raw: &mut RawConfig, var: &str, value: &str) -> Result<(), ConfigError> {
    let key = ENV_OVERRIDES.iter().find(|(v, _)| *v == var).map_or("", |(_, k)| *k);
    let err = |message: &str| ConfigError::Env { var: var.to_owned(), key: key.to_owned(), message: message.to_owned() };
    fn parsed<T: std::str::FromStr>(value: &str) -> Option<T> {
        value.parse().ok()
    }
    let not_number = || err("expected a positive whole number");
    let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    match var {
        "RAPPORT_STORE_PATH" => raw.store.path = Some(PathBuf::from(value)),
        "RAPPORT_STORE_CACHE_BYTES" => {
            raw.store.cache_bytes = Some(value.parse().map_err(|_| err("expected a number of bytes"))?);
        }
        "RAPPORT_API_BIND" => raw.api.bind = Some(value.to_owned()),
        "RAPPORT_API_DEV_MODE" => {
            raw.api.dev_mode = Some(match value {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(err("expected true or false")),
            });
        }
        "RAPPORT_API_TOKEN_SHA256" => raw.api.token_sha256 = Some(list()),
        "RAPPORT_API_MAX_BODY_BYTES" => {
            raw.api.max_body_bytes = Some(value.parse().map_err(|_| err("expected a number of bytes"))?);
        }
        "RAPPORT_IDENTITY_INTERNAL_DOMAINS" => raw.identity.internal_domains = Some(list()),
        "RAPPORT_IMPORT_BATCH_SIZE" => raw.import.batch_size = Some(parsed(value).ok_or_else(not_number)?),
        "RAPPORT_PLUGINS_DIR" => raw.plugins.dir = Some(PathBuf::from(value)),
        "RAPPORT_PLUGINS_MAX_CONCURRENT_RUNS" => raw.plugins.max_concurrent_runs = Some(parsed(value).ok_or_else(not_number)?),
        "RAPPORT_PLUGINS_MEMORY_LIMIT_BYTES" => raw.plugins.memory_limit_bytes = Some(parsed(value).ok_or_else(not_number)?),
        "RAPPORT_PLUGINS_CPU_BUDGET_MS" => raw.plugins.cpu_budget_ms = Some(parsed(value).ok_or_else(not_number)?),
        "RAPPORT_PLUGINS_RUN_TIMEOUT_SECS" => raw.plugins.run_timeout_secs = Some(parsed(value).ok_or_else(not_number)?),
        "RAPPORT_PLUGINS_RUN_HISTORY_DAYS" => raw.plugins.run_history_days = Some(parsed(value).ok_or_else(not_number)?),
        "RAPPORT_PLUGINS_HOST_CALL_TIMEOUT_SECS" => raw.plugins.host_call_timeout_secs = Some(parsed(value).ok_or_else(not_number)?),
        "RAPPORT_PLUGINS_MAX_OPERATIONS_PER_CHECKPOINT" => {
            raw.plugins.max_operations_per_checkpoint = Some(parsed(value).ok_or_else(not_number)?)
        }
        "RAPPORT_PLUGINS_NETWORK_CONNECT_TIMEOUT_SECS" => {
            raw.plugins.network.connect_timeout_secs = Some(parsed(value).ok_or_else(not_number)?)
        }
        "RAPPORT_PLUGINS_NETWORK_REQUEST_TIMEOUT_SECS" => {
            raw.plugins.network.request_timeout_secs = Some(parsed(value).ok_or_else(not_number)?)
        }
        "RAPPORT_PLUGINS_NETWORK_MAX_RESPONSE_BYTES" => {
            raw.plugins.network.max_response_bytes = Some(parsed(value).ok_or_else(not_number)?)
        }
        "RAPPORT_PLUGINS_NETWORK_MAX_RETRIES" => {
            raw.plugins.network.max_retries = Some(parsed(value).ok_or_else(|| err("expected a whole number"))?);
        }
        "RAPPORT_PLUGINS_NETWORK_MAX_RETRY_WAIT_SECS" => {
            raw.plugins.network.max_retry_wait_secs = Some(parsed(value).ok_or_else(not_number)?)
        }
        "RAPPORT_PLUGINS_NETWORK_EXTRA_CA_FILES" => {
            raw.plugins.network.extra_ca_files = Some(list().into_iter().map(PathBuf::from).collect())
        }
        _ => return Err(err("unknown variable")),
    }
    Ok(())
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), message: message.into() }
}

fn domains(key: &str, list: Vec<String>) -> Result<HashSet<String>, ConfigError> {
    list.iter()
        .map(|d| ops::normalize_domain(d).ok_or_else(|| invalid(key, format!("`{d}` is not a domain name such as \"acme.com\""))))
        .collect()
}

fn validate(raw: RawConfig, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let bind_text = raw.api.bind.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let bind: SocketAddr =
        bind_text.parse().map_err(|_| invalid("api.bind", format!("`{bind_text}` is not an address such as \"127.0.0.1:8080\"")))?;
    let dev_mode = raw.api.dev_mode.unwrap_or(false);
    if dev_mode && !bind.ip().is_loopback() {
        return Err(invalid(
            "api.dev_mode",
            format!("dev mode disables authentication, so it only binds to loopback; `api.bind` is {bind}"),
        ));
    }
    let token_digests = raw
        .api
        .token_sha256
        .unwrap_or_default()
        .iter()
        .map(|hex| {
            parse_digest(hex).ok_or_else(|| invalid("api.token_sha256", "expected 64 hex digits per entry (see `rapport token new`)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_body_bytes = raw.api.max_body_bytes.unwrap_or(16 << 20);
    if max_body_bytes == 0 {
        return Err(invalid("api.max_body_bytes", "expected a positive number of bytes"));
    }
    let mut identity =
        IdentityRules::with_defaults(domains("identity.internal_domains", raw.identity.internal_domains.unwrap_or_default())?);
    if let Some(list) = raw.identity.free_mail_domains {
        identity.free_mail_domains = domains("identity.free_mail_domains", list)?;
    }
    identity
        .free_mail_domains
        .extend(domains("identity.extra_free_mail_domains", raw.identity.extra_free_mail_domains.unwrap_or_default())?);
    let import_batch_size = raw.import.batch_size.unwrap_or(1000);
    if import_batch_size == 0 {
        return Err(invalid("import.batch_size", "expected a positive whole number"));
    }
    let plugins = plugins_config(raw.plugins, raw.store.path.as_deref(), env)?;
    Ok(Config {
        plugins,
        store: StoreConfig {
            path: raw.store.path.unwrap_or_else(|| PathBuf::from("data/rapport")),
            cache_bytes: raw.store.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES),
        },
        api: ApiConfig { bind, dev_mode, token_digests, max_body_bytes },
        identity,
        import_batch_size,
    })
}

fn positive<T: Default + PartialEq>(key: &str, value: Option<T>) -> Result<Option<T>, ConfigError> {
    match value {
        Some(v) if v == T::default() => Err(invalid(key, "expected a positive whole number")),
        other => Ok(other),
    }
}

fn plugins_config(raw: RawPlugins, store_path: Option<&Path>, env: &[(String, String)]) -> Result<PluginsConfig, ConfigError> {
    // Plugins sit beside the store unless configured elsewhere.
    let dir = raw.dir.unwrap_or_else(|| store_path.and_then(Path::parent).unwrap_or(Path::new("data")).join("plugins"));
    let mut config = PluginsConfig::with_dir(dir);
    if let Some(n) = positive("plugins.max_concurrent_runs", raw.max_concurrent_runs)? {
        config.max_concurrent_runs = n;
    }
    if let Some(n) = positive("plugins.memory_limit_bytes", raw.memory_limit_bytes)? {
        config.memory_limit_bytes = n;
    }
    if let Some(n) = positive("plugins.cpu_budget_ms", raw.cpu_budget_ms)? {
        config.cpu_budget = Duration::from_millis(n);
    }
    if let Some(n) = positive("plugins.run_timeout_secs", raw.run_timeout_secs)? {
        config.run_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive("plugins.run_history_days", raw.run_history_days)? {
        config.run_history = Duration::from_secs(n.saturating_mul(86_400));
    }
    if let Some(n) = positive("plugins.host_call_timeout_secs", raw.host_call_timeout_secs)? {
        config.host_call_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive("plugins.max_operations_per_checkpoint", raw.max_operations_per_checkpoint)? {
        config.max_operations_per_checkpoint = n;
    }
    config.network = network_config(raw.network)?;
    for (name, instance) in raw.instances {
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
            let value = match raw {
                RawSecret::Value(value) => value,
                RawSecret::Env { env: var } => env
                    .iter()
                    .find(|(name, _)| *name == var)
                    .map(|(_, value)| value.clone())
                    .ok_or_else(|| invalid(&key, format!("environment variable {var} is not set")))?,
            };
            if value.chars().count() < MIN_SECRET_CHARS {
                return Err(invalid(&key, format!("a secret has at least {MIN_SECRET_CHARS} characters")));
            }
            secrets.insert(secret, Secret(value));
        }
        config.instances.insert(name, InstanceGrant { allowed_hosts: instance.allowed_hosts, rate_limit: instance.rate_limit, secrets });
    }
    Ok(config)
}

fn network_config(raw: RawNetwork) -> Result<NetworkConfig, ConfigError> {
    let mut config = NetworkConfig::default();
    if let Some(n) = positive("plugins.network.connect_timeout_secs", raw.connect_timeout_secs)? {
        config.connect_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive("plugins.network.request_timeout_secs", raw.request_timeout_secs)? {
        config.request_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive("plugins.network.max_response_bytes", raw.max_response_bytes)? {
        config.max_response_bytes = n;
    }
    if let Some(n) = raw.max_retries {
        config.max_retries = n;
    }
    if let Some(n) = raw.max_retry_wait_secs {
        config.max_retry_wait = Duration::from_secs(n);
    }
    if let Some(files) = raw.extra_ca_files {
        config.extra_ca_files = files;
    }
    Ok(config)
}

/// The SHA-256 digest of a bearer token, as configured in `api.token_sha256`.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("rapport-config-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rapport.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<_> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let result = Config::load_from(Some(&path), &env);
        std::fs::remove_dir_all(dir).unwrap();
        result
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = load("[store]\npath = \"x\"\n\n[api]\nmax_body_bytes = \"big\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("rapport.toml:5: key `api.max_body_bytes`"), "{err}");
        let err = load("[api]\nbnd = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("unknown field `bnd`"), "{err}");
    }

    #[test]
    fn env_overrides_win_and_name_the_variable() {
        let config = load("[api]\nbind = \"127.0.0.1:1\"\n", &[("RAPPORT_API_BIND", "127.0.0.1:2")]).unwrap();
        assert_eq!(config.api.bind.port(), 2);
        let err = load("", &[("RAPPORT_IMPORT_BATCH_SIZE", "many")]).unwrap_err().to_string();
        assert!(err.contains("RAPPORT_IMPORT_BATCH_SIZE") && err.contains("import.batch_size"), "{err}");
    }

    #[test]
    fn plugin_limits_are_positive_and_the_directory_sits_beside_the_store() {
        let config = load("[store]\npath = \"/srv/rapport/store\"\n[plugins]\ncpu_budget_ms = 250\n", &[]).unwrap();
        assert_eq!(config.plugins.dir, Path::new("/srv/rapport/plugins"));
        assert_eq!(config.plugins.cpu_budget, Duration::from_millis(250));
        let err = load("[plugins]\nmax_concurrent_runs = 0\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.max_concurrent_runs") && err.contains("positive"), "{err}");
        let err = load("", &[("RAPPORT_PLUGINS_MEMORY_LIMIT_BYTES", "lots")]).unwrap_err().to_string();
        assert!(err.contains("RAPPORT_PLUGINS_MEMORY_LIMIT_BYTES") && err.contains("plugins.memory_limit_bytes"), "{err}");
        let config = load("", &[("RAPPORT_PLUGINS_RUN_TIMEOUT_SECS", "5")]).unwrap();
        assert_eq!(config.plugins.run_timeout, Duration::from_secs(5));
    }

    #[test]
    fn instance_grants_read_secrets_from_the_file_or_the_environment() {
        let text = "[plugins.instances.crm]\nallowed_hosts = [\"https://api.example.com\"]\n\
                    secrets = { token = { env = \"CRM_TOKEN\" }, password = \"hunter22\" }\n";
        let config = load(text, &[("CRM_TOKEN", "from-the-env")]).unwrap();
        let crm = &config.plugins.instances["crm"];
        assert_eq!(crm.secrets["token"].expose(), "from-the-env");
        assert_eq!(crm.secrets["password"].expose(), "hunter22");
        assert!(!format!("{config:?}").contains("hunter22"), "secrets stay out of Debug output");
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.crm.secrets.token") && err.contains("CRM_TOKEN is not set"), "{err}");
        let err = load("[plugins.instances.crm]\nallowed_hosts = [\"api.example.com\"]\n", &[]).unwrap_err().to_string();
        assert!(err.contains(":2: key `plugins.instances.crm.allowed_hosts") && err.contains("scheme://host"), "{err}");
        let err = load("[plugins.instances.crm]\nsecrets = { token = 42 }\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.crm.secrets.token") && err.contains("{ env = "), "{err}");
        let err = load("[plugins.instances.crm]\nsecrets = { token = \"abc\" }\n", &[]).unwrap_err().to_string();
        assert!(err.contains("at least 6 characters"), "{err}");
        let err = load("[plugins.instances.crm]\nrate_limit = { requests_per_second = 0 }\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.crm.rate_limit"), "{err}");
        let err = load("[plugins.instances.Crm]\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.Crm"), "{err}");
        let config =
            load("", &[("RAPPORT_PLUGINS_NETWORK_MAX_RETRIES", "0"), ("RAPPORT_PLUGINS_NETWORK_EXTRA_CA_FILES", "/a.pem, /b.pem")])
                .unwrap();
        assert_eq!(config.plugins.network.max_retries, 0);
        assert_eq!(config.plugins.network.extra_ca_files, vec![PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]);
    }

    #[test]
    fn dev_mode_only_on_loopback() {
        let err = load("[api]\nbind = \"0.0.0.0:8080\"\ndev_mode = true\n", &[]).unwrap_err().to_string();
        assert!(err.contains("api.dev_mode"), "{err}");
        assert!(load("[api]\ndev_mode = true\n", &[]).unwrap().api.dev_mode);
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rapport.example.toml");
        let config = Config::load_from(Some(&path), &[]).unwrap();
        assert_eq!(config.api.token_digests.len(), 1);
        assert!(config.identity.internal_domains.contains("northwind.example"));
        assert!(config.identity.free_mail_domains.contains("gmail.com"));
        assert_eq!(config.plugins.max_operations_per_checkpoint, PluginsConfig::with_dir(PathBuf::new()).max_operations_per_checkpoint);
        let crm = &config.plugins.instances["crm-eu"];
        assert_eq!(crm.allowed_hosts[0].to_string(), "https://api.hubapi.com");
        assert_eq!(crm.rate_limit, Some(RateLimit { requests_per_second: 10.0, burst: 20 }));
    }

    #[test]
    fn tokens_are_stored_as_digests() {
        let digest = hex(&token_digest("secret"));
        let config = load(&format!("[api]\ntoken_sha256 = [\"{digest}\"]\n"), &[]).unwrap();
        assert_eq!(config.api.token_digests, vec![token_digest("secret")]);
        assert!(load("[api]\ntoken_sha256 = [\"abc\"]\n", &[]).is_err());
    }
}
