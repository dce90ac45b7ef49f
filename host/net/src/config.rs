//! How the daemon makes outbound calls: the `[plugins.network]` section of `rapport.toml`
//! (plugins' calls now; webhook deliveries will mount the same settings of their own).

use std::path::PathBuf;
use std::time::Duration;

use rapport_core::config::{ConfigError, EnvKeys, EnvKind, set_positive};
use serde::Deserialize;

/// How the host makes network calls.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Limit for establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit for one HTTP attempt, response body included, and for each TCP read or write.
    pub request_timeout: Duration,
    /// Largest HTTP response body handed over.
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

/// `[plugins.network]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    connect_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_response_bytes: Option<u64>,
    max_retries: Option<u32>,
    max_retry_wait_secs: Option<u64>,
    /// `plugins.network.extra_ca_files`.
    pub extra_ca_files: Option<Vec<PathBuf>>,
}

/// The keys of `[plugins.network]` an environment variable may set.
pub const ENV_KEYS: EnvKeys = &[
    ("plugins.network.connect_timeout_secs", EnvKind::Number),
    ("plugins.network.request_timeout_secs", EnvKind::Number),
    ("plugins.network.max_response_bytes", EnvKind::Number),
    ("plugins.network.max_retries", EnvKind::Number),
    ("plugins.network.max_retry_wait_secs", EnvKind::Number),
    ("plugins.network.extra_ca_files", EnvKind::List),
];

impl RawNetwork {
    /// The validated settings; timeouts and the body cap positive.
    pub fn validate(self) -> Result<NetworkConfig, ConfigError> {
        let mut config = NetworkConfig::default();
        set_positive(&mut config.connect_timeout, "plugins.network.connect_timeout_secs", self.connect_timeout_secs, Duration::from_secs)?;
        set_positive(&mut config.request_timeout, "plugins.network.request_timeout_secs", self.request_timeout_secs, Duration::from_secs)?;
        set_positive(
            &mut config.max_response_bytes,
            "plugins.network.max_response_bytes",
            self.max_response_bytes,
            std::convert::identity,
        )?;
        if let Some(n) = self.max_retries {
            config.max_retries = n;
        }
        if let Some(n) = self.max_retry_wait_secs {
            config.max_retry_wait = Duration::from_secs(n);
        }
        if let Some(files) = self.extra_ca_files {
            config.extra_ca_files = files;
        }
        Ok(config)
    }
}
