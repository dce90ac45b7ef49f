//! The Rapport plugin SDK: implement [`Connector`] and register it with
//! [`export_connector!`]; build with `cargo build --release --target wasm32-wasip2`.
//!
//! ```ignore
//! #[derive(Default)]
//! struct Crm;
//!
//! impl rapport_sdk::Connector for Crm {
//!     fn sync(&mut self, config: &str, cursor: Option<String>) -> Result<(), rapport_sdk::PluginError> {
//!         rapport_sdk::emit(&[r#"{"op":"upsert_organization","external_id":"1","name":"Acme"}"#.to_owned()]);
//!         rapport_sdk::checkpoint("page-1");
//!         Ok(())
//!     }
//! }
//!
//! rapport_sdk::export_connector!(Crm);
//! ```
//!
//! The contract itself is the WIT in `sdk/wit/`; this crate hides its generated types.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/v0.1",
        world: "connector",
        pub_export_macro: true,
        export_macro_name: "__export_world_connector",
        default_bindings_module: "rapport_sdk::bindings",
    });
}

pub mod http;
pub mod tcp;

use bindings::rapport::connector::host;
use bindings::rapport::connector::types as wit;
pub use bindings::rapport::connector::types::Level;

/// An expected failure of a sync; the host records its kind and message in the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The instance's configuration is missing or wrong; say which key.
    Config(String),
    /// The remote refused the credentials.
    Auth(String),
    /// The remote failed or answered something unusable.
    Remote(String),
    /// The remote asked to slow down; retry after this many seconds, if it said.
    RateLimited(Option<u32>),
    /// The remote's data cannot be turned into record operations.
    InvalidData(String),
}

impl From<PluginError> for wit::PluginError {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::Config(m) => Self::Config(m),
            PluginError::Auth(m) => Self::Auth(m),
            PluginError::Remote(m) => Self::Remote(m),
            PluginError::RateLimited(s) => Self::RateLimited(s),
            PluginError::InvalidData(m) => Self::InvalidData(m),
        }
    }
}

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

/// A connector plugin. One value is created per sync run.
pub trait Connector: Default {
    /// Pulls records after `cursor` (`None` on the first run): [`emit`] operations and
    /// [`checkpoint`] after each page. `config` is the instance's configuration, a JSON
    /// object.
    fn sync(&mut self, config: &str, cursor: Option<String>) -> Result<(), PluginError>;
}

/// Queues record operations (each one JSON document in Rapport's record-operation format);
/// they are stored at the next [`checkpoint`].
pub fn emit(operations: &[String]) {
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

#[doc(hidden)]
pub fn __sync<C: Connector>(config: String, cursor: Option<String>) -> Result<(), bindings::rapport::connector::types::PluginError> {
    C::default().sync(&config, cursor).map_err(Into::into)
}

/// Registers a [`Connector`] as the plugin's implementation. The plugin's name and version
/// are its crate's, which must match its `plugin.toml`.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        struct __RapportExport;

        impl $crate::bindings::Guest for __RapportExport {
            fn describe() -> $crate::bindings::Description {
                $crate::bindings::Description {
                    name: env!("CARGO_PKG_NAME").to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                }
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
