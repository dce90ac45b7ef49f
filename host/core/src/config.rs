//! The vocabulary of configuration sections. Each crate owns its section of `rapport.toml`
//! — a `Raw…` form as written (every field optional), defaults, validation into a typed
//! form, and the list of its keys an environment variable may set — and the binary only
//! composes them. Errors found here carry the dotted key; the binary adds the file and
//! line, or the variable, where the value came from.

use std::path::PathBuf;

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

/// The error about `key`, before the binary locates it.
pub fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), message: message.into() }
}

/// How an environment variable's text becomes the TOML value its key expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// Taken as it is.
    Text,
    /// A whole number.
    Number,
    /// `true`/`false` (or `1`/`0`).
    Flag,
    /// Comma-separated texts.
    List,
}

/// The keys of a section an environment variable may set, dotted from the document's
/// root, each with the kind of value it takes.
pub type EnvKeys = &'static [(&'static str, EnvKind)];

/// The environment variable overriding `key`: `RAPPORT_` and the key in upper case, dots
/// as underscores (`api.bind` → `RAPPORT_API_BIND`).
pub fn env_var(key: &str) -> String {
    format!("RAPPORT_{}", key.to_uppercase().replace('.', "_"))
}

/// Sets `target` from `value` converted by `into`, when the key is given; zero is refused.
pub fn set_positive<T: Default + PartialEq, U>(
    target: &mut U,
    key: &str,
    value: Option<T>,
    into: impl FnOnce(T) -> U,
) -> Result<(), ConfigError> {
    if let Some(n) = positive(key, value)? {
        *target = into(n);
    }
    Ok(())
}

/// `value`, refused when it is zero.
pub fn positive<T: Default + PartialEq>(key: &str, value: Option<T>) -> Result<Option<T>, ConfigError> {
    match value {
        Some(v) if v == T::default() => Err(invalid(key, "expected a positive whole number")),
        other => Ok(other),
    }
}

/// A number of days as a duration.
pub fn days(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n.saturating_mul(86_400))
}
