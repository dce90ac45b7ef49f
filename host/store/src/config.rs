//! The `[store]` section of `rapport.toml`.

use std::path::PathBuf;
use std::time::Duration;

use rapport_core::config::{ConfigError, EnvKeys, EnvKind, days, set_positive};
use serde::Deserialize;

/// Default page cache of the store. sled's cache limit counts encoded page sizes, while
/// cached pages live decoded and several times larger, so the limit is kept modest.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Where the store is when no `store.path` is given (relative to the config file's directory).
pub const DEFAULT_STORE_PATH: &str = "data/rapport";

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the database.
    pub path: PathBuf,
    /// Page cache size.
    pub cache_bytes: u64,
    /// How long the graph's change feed keeps an entry (the newest is always kept).
    pub change_retention: Duration,
}

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `store.path`.
    pub path: Option<PathBuf>,
    cache_bytes: Option<u64>,
    change_retention_days: Option<u64>,
}

/// The keys of `[store]` an environment variable may set.
pub const ENV_KEYS: EnvKeys =
    &[("store.path", EnvKind::Text), ("store.cache_bytes", EnvKind::Number), ("store.change_retention_days", EnvKind::Number)];

impl RawStore {
    /// The validated section.
    pub fn validate(self) -> Result<StoreConfig, ConfigError> {
        let mut change_retention = days(90);
        set_positive(&mut change_retention, "store.change_retention_days", self.change_retention_days, days)?;
        Ok(StoreConfig {
            path: self.path.unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH)),
            cache_bytes: self.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES),
            change_retention,
        })
    }
}
