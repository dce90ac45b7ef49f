//! `[signals]` of `rapport.toml`: how touches are read as signals.

use rapport_core::config::{ConfigError, EnvKeys, EnvKind, invalid, set_positive};
use serde::Deserialize;

/// `[signals]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignals {
    two_way_window_days: Option<u32>,
    strength_half_life_days: Option<u32>,
}

/// The keys of `[signals]` an environment variable may set.
pub const ENV_KEYS: EnvKeys = &[("signals.two_way_window_days", EnvKind::Number), ("signals.strength_half_life_days", EnvKind::Number)];

/// How touches are read as signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalsConfig {
    /// A one-sided touch answered from the other side within this many days before it
    /// makes a two-way touch.
    pub two_way_window_days: i32,
    /// The recency part of a relationship's strength halves every this many days.
    pub strength_half_life_days: u32,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self { two_way_window_days: 14, strength_half_life_days: 30 }
    }
}

impl RawSignals {
    /// The validated section; each number positive, the window at most a year.
    pub fn validate(self) -> Result<SignalsConfig, ConfigError> {
        let mut config = SignalsConfig::default();
        if self.two_way_window_days.is_some_and(|d| d > 365) {
            return Err(invalid("signals.two_way_window_days", "expected at most 365 days"));
        }
        set_positive(&mut config.two_way_window_days, "signals.two_way_window_days", self.two_way_window_days, |d| d as i32)?;
        set_positive(&mut config.strength_half_life_days, "signals.strength_half_life_days", self.strength_half_life_days, |d| d)?;
        Ok(config)
    }
}
