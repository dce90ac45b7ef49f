//! What every Rapport crate shares and nothing else: a [`Secret`] that stays out of logs,
//! prefixed time-ordered ids ([`id`]), the configuration error every crate's section reports
//! ([`config`]), and TOML documents read with every error located by line and dotted key
//! ([`toml_doc`]).

pub mod config;
pub mod id;
pub mod toml_doc;

// For `prefixed_id!` in other crates.
#[doc(hidden)]
pub use serde;
#[doc(hidden)]
pub use ulid;

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

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
