//! Host bindings of the 0.1 line, generated from its newest release, `sdk/wit/0.1.1`:
//! wasmtime links a plugin built for an earlier 0.1.x (`sdk/wit/0.1.0`) to the same
//! definitions by semver, so one module serves the line, and a new minor version (before
//! 1.0: incompatible) gets a module of its own beside this one. Most generated
//! types stop here ([`PluginFailure`] is what the rest of the host sees); the network
//! interfaces' records are re-exported under plain names for `plugin::network`.

wasmtime::component::bindgen!({
    path: "../../sdk/wit/0.1.1",
    world: "connector",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "rapport:connector/tcp.connection": super::network::tcp::PluginStream,
    },
});

pub use self::rapport::connector::host::Host;
pub use self::rapport::connector::http::{Host as HttpHost, Request as HttpRequest, Response as HttpResponse};
pub use self::rapport::connector::tcp::{Host as TcpHost, HostConnection, TlsMode};
pub use self::rapport::connector::types::{Host as TypesHost, Level, NetworkError};

use serde::{Deserialize, Serialize};

/// An expected failure a plugin reported from `sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum PluginFailure {
    /// The instance's configuration is missing or wrong.
    Config(String),
    /// The remote refused the credentials.
    Auth(String),
    /// The remote failed or answered something unusable.
    Remote(String),
    /// The remote asked to slow down (seconds to wait, if it said).
    RateLimited(Option<u32>),
    /// The remote's data cannot be turned into record operations.
    InvalidData(String),
}

impl From<rapport::connector::types::PluginError> for PluginFailure {
    fn from(error: rapport::connector::types::PluginError) -> Self {
        use self::rapport::connector::types::PluginError as E;
        match error {
            E::Config(m) => Self::Config(m),
            E::Auth(m) => Self::Auth(m),
            E::Remote(m) => Self::Remote(m),
            E::RateLimited(s) => Self::RateLimited(s),
            E::InvalidData(m) => Self::InvalidData(m),
        }
    }
}

impl PluginFailure {
    /// The failure with the instance's secret values cut out of its message.
    pub(super) fn redacted(self, secrets: &super::secrets::Secrets) -> Self {
        let redact = |message: String| secrets.redact(&message).into_owned();
        match self {
            Self::Config(m) => Self::Config(redact(m)),
            Self::Auth(m) => Self::Auth(redact(m)),
            Self::Remote(m) => Self::Remote(redact(m)),
            Self::InvalidData(m) => Self::InvalidData(redact(m)),
            Self::RateLimited(s) => Self::RateLimited(s),
        }
    }
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(m) => write!(f, "configuration error: {m}"),
            Self::Auth(m) => write!(f, "authentication failed: {m}"),
            Self::Remote(m) => write!(f, "remote error: {m}"),
            Self::RateLimited(Some(s)) => write!(f, "rate limited by the remote; retry after {s} s"),
            Self::RateLimited(None) => write!(f, "rate limited by the remote"),
            Self::InvalidData(m) => write!(f, "invalid data from the remote: {m}"),
        }
    }
}
