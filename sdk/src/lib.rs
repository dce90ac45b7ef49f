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

use bindings::rapport::connector::host;
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

impl From<PluginError> for bindings::rapport::connector::types::PluginError {
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
