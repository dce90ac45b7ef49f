//! The Rapport plugin SDK: implement [`Connector`] and register it with
//! [`export_connector!`]; build with `cargo build --release --target wasm32-wasip2`.
//!
//! ```ignore
//! use rapport_sdk::record::{Organization, Role};
//! use rapport_sdk::{Config, Connector, PluginError};
//!
//! #[derive(Default)]
//! struct Crm;
//!
//! impl Connector for Crm {
//!     fn sync(&mut self, config: &Config, cursor: Option<String>) -> Result<(), PluginError> {
//!         let region: String = config.require("region")?;
//!         rapport_sdk::emit([Organization::new("1", "Acme").role(Role::Client)]);
//!         rapport_sdk::checkpoint("page-1");
//!         rapport_sdk::info!(region = region; "synced one page");
//!         Ok(())
//!     }
//! }
//!
//! rapport_sdk::export_connector!(Crm);
//! ```
//!
//! - [`record`]: typed builders for every record operation.
//! - [`http`]: requests over the host's granted HTTP capability, JSON in and out.
//! - [`paging`]: cursor, offset and `Link`-header paging.
//! - [`cursor`]: a modification-time cursor with a lookback window and dedup by id.
//! - [`tcp`]: connections and a line-protocol [`tcp::Stream`] over the host's TCP capability.
//! - [`time`]: timestamps as APIs give them.
//!
//! The contract itself is the WIT in `sdk/wit/`; this crate hides its generated types.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/0.1.1",
        world: "connector",
        pub_export_macro: true,
        export_macro_name: "__export_world_connector",
        default_bindings_module: "rapport_sdk::bindings",
        // Plugins and their tests compare errors and records of the contract.
        additional_derives: [PartialEq, Eq],
    });
}

pub mod cursor;
pub mod http;
pub mod paging;
pub mod record;
pub mod tcp;
pub mod time;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use bindings::rapport::connector::host;
use bindings::rapport::connector::types as wit;
pub use bindings::rapport::connector::types::Level;

/// An expected failure of a sync; the host records its kind and message in the run. This is
/// the contract's own type (`types.plugin-error` in the WIT), not a copy of it.
pub use bindings::rapport::connector::types::PluginError;

/// Why a network call failed; the messages never hold secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    /// The destination is not granted; the message says what to add where.
    Denied(String),
    /// Resolving, connecting or the TLS handshake failed.
    Connect(String),
    /// No answer in time.
    Timeout(String),
    /// The response was larger than the host accepts (its limit, in bytes).
    TooLarge(u64),
    /// The request is malformed.
    InvalidRequest(String),
    /// The connection failed or closed while in use.
    Io(String),
}

impl From<wit::NetworkError> for NetworkError {
    fn from(error: wit::NetworkError) -> Self {
        match error {
            wit::NetworkError::Denied(m) => Self::Denied(m),
            wit::NetworkError::Connect(m) => Self::Connect(m),
            wit::NetworkError::Timeout(m) => Self::Timeout(m),
            wit::NetworkError::TooLarge(limit) => Self::TooLarge(limit),
            wit::NetworkError::InvalidRequest(m) => Self::InvalidRequest(m),
            wit::NetworkError::Io(m) => Self::Io(m),
        }
    }
}

impl std::fmt::Display for NetworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "denied: {m}"),
            Self::Connect(m) => write!(f, "connect: {m}"),
            Self::Timeout(m) => write!(f, "timeout: {m}"),
            Self::TooLarge(limit) => write!(f, "response larger than {limit} bytes"),
            Self::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            Self::Io(m) => write!(f, "i/o: {m}"),
        }
    }
}

impl std::error::Error for NetworkError {}

/// A failed network call ends a sync as a remote error, unless the plugin handles it.
impl From<NetworkError> for PluginError {
    fn from(error: NetworkError) -> Self {
        Self::Remote(error.to_string())
    }
}

/// The value of this instance's secret `name` as the operator configured it. Never log it:
/// the host cuts secret values out of logs and errors, but not out of emitted records.
pub fn secret(name: &str) -> Option<String> {
    host::secret(name)
}

/// An instance's configuration: the JSON object the operator set with
/// `rapport plugin config`. Errors name the key and what it should hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config(Map<String, Value>);

impl Config {
    /// Reads the configuration text the host hands to `sync`.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(PluginError::Config("the instance configuration is not a JSON object".to_owned())),
        }
    }

    /// The value of `key` read as `T`, or `None` when it is not set.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, PluginError> {
        self.0
            .get(key)
            .map(|value| T::deserialize(value).map_err(|err| PluginError::Config(format!("key `{key}`: {err} (found {value})"))))
            .transpose()
    }

    /// The value of `key`, or `default` when it is not set.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, PluginError> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// The value of `key`, which must be set.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T, PluginError> {
        self.get(key)?
            .ok_or_else(|| PluginError::Config(format!("key `{key}` is not set: rapport plugin config <instance> --set {key}=<value>")))
    }

    /// The whole configuration read into a struct (serde's messages name the field).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        T::deserialize(Value::Object(self.0.clone())).map_err(|err| PluginError::Config(err.to_string()))
    }

    /// The raw JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// A connector plugin. One value is created per sync run.
pub trait Connector: Default {
    /// Checks the configuration before anything else happens (no request is sent when it
    /// fails). Accepts everything unless overridden.
    fn check(&mut self, config: &Config) -> Result<(), PluginError> {
        let _ = config;
        Ok(())
    }

    /// Pulls records after `cursor` (`None` on the first run): [`emit`] operations and
    /// [`checkpoint`] after each page. Everything emitted after the last checkpoint is
    /// committed when `sync` returns `Ok`, and discarded when it fails.
    fn sync(&mut self, config: &Config, cursor: Option<String>) -> Result<(), PluginError>;
}

/// Queues record operations; they are stored at the next [`checkpoint`].
pub fn emit<O: Into<record::Operation>>(operations: impl IntoIterator<Item = O>) {
    let documents: Vec<String> = operations.into_iter().map(|operation| operation.into().to_json()).collect();
    host::emit(&documents);
}

/// Queues operations already written as JSON documents in Rapport's record-operation
/// format (the HTTP ingest's); invalid ones are skipped and counted by the host.
pub fn emit_json(operations: &[String]) {
    host::emit(operations);
}

/// Commits the operations queued since the last checkpoint together with `cursor`.
pub fn checkpoint(cursor: &str) {
    host::checkpoint(cursor);
}

/// Logs a line with structured fields inside the host's span for this run.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    host::log(level, message, &fields);
}

/// Logs at `level`: `log!(Level::Info, page = 3, items = n; "fetched {}", url)`; the
/// fields before `;` are optional.
#[macro_export]
macro_rules! log {
    ($level:expr, $($key:ident = $value:expr),+ ; $($format:tt)+) => {
        $crate::log($level, &format!($($format)+), &[$((stringify!($key), &$value.to_string())),+])
    };
    ($level:expr, $($format:tt)+) => {
        $crate::log($level, &format!($($format)+), &[])
    };
}

/// Logs at info level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! info {
    ($($arguments:tt)+) => { $crate::log!($crate::Level::Info, $($arguments)+) };
}

/// Logs at warn level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! warn {
    ($($arguments:tt)+) => { $crate::log!($crate::Level::Warn, $($arguments)+) };
}

/// Logs at error level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! error {
    ($($arguments:tt)+) => { $crate::log!($crate::Level::Error, $($arguments)+) };
}

/// Logs at debug level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! debug {
    ($($arguments:tt)+) => { $crate::log!($crate::Level::Debug, $($arguments)+) };
}

/// Logs at trace level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! trace {
    ($($arguments:tt)+) => { $crate::log!($crate::Level::Trace, $($arguments)+) };
}

#[doc(hidden)]
pub fn __sync<C: Connector>(config: String, cursor: Option<String>) -> Result<(), PluginError> {
    let config = Config::parse(&config)?;
    let mut connector = C::default();
    connector.check(&config)?;
    connector.sync(&config, cursor)
}

/// Registers a [`Connector`] as the plugin's implementation. The plugin's name and version
/// are its crate's, which must match its `plugin.toml`; `name = "…"` sets another name
/// (a crate `rapport-plugin-crm` publishing plugin `crm`).
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        $crate::export_connector!($connector, name = env!("CARGO_PKG_NAME"));
    };
    ($connector:ty, name = $name:expr) => {
        struct __RapportExport;

        impl $crate::bindings::Guest for __RapportExport {
            fn describe() -> $crate::bindings::Description {
                $crate::bindings::Description { name: ($name).to_owned(), version: env!("CARGO_PKG_VERSION").to_owned() }
            }

            fn sync(
                config: String,
                cursor: Option<String>,
            ) -> Result<(), $crate::bindings::PluginError> {
                $crate::__sync::<$connector>(config, cursor)
            }
        }

        $crate::bindings::__export_world_connector!(__RapportExport with_types_in $crate::bindings);
    };
}
