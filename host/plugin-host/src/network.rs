//! A run's network capabilities: who may be reached (the plugin's manifest requests a
//! destination, the operator grants it to the instance, and private addresses need to be
//! named), and the counters that go into the run record. `http` and `tcp` are the two
//! host interfaces built on it; `bucket` paces requests.

mod bucket;
pub(crate) mod http;
pub(crate) mod tcp;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

pub(crate) use self::bucket::TokenBucket;
use super::bindings::NetworkError;
use super::registry::NetworkCounters;
use super::secrets::Secrets;
use crate::config::GrantedBy;
use rapport_net::config::NetworkConfig;
use rapport_net::{Host, HostPattern, Origin, restricted_range};

/// What a run may reach, fixed when the run starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// The plugin's name, for messages.
    pub plugin: String,
    /// The instance's name, for messages.
    pub instance: String,
    /// What the plugin's manifest requests.
    pub requested: Vec<HostPattern>,
    /// What the operator granted the instance.
    pub granted: Vec<HostPattern>,
    /// The instance's request pacing, shared by its runs.
    pub bucket: Option<Arc<TokenBucket>>,
    /// The instance's secrets.
    pub secrets: Secrets,
    /// Where the grant comes from, so a refusal says what to change.
    pub granted_by: GrantedBy,
}

impl Access {
    /// What to change so `origin` is granted.
    fn how_to_grant(&self, origin: &Origin) -> String {
        match self.granted_by {
            GrantedBy::Config => {
                format!("add \"{origin}\" to allowed_hosts under [plugins.instances.{}] in rapport.toml", self.instance)
            }
            GrantedBy::TestAllow => format!("grant it to the test: rapport plugin test … --allow \"{origin}\""),
        }
    }
}

/// Shared by every run: settings and the TLS configuration.
#[derive(Debug, Clone)]
pub(crate) struct NetworkShared {
    pub config: NetworkConfig,
    pub tls: Arc<rustls::ClientConfig>,
}

/// The network side of one run's state.
#[derive(Debug)]
pub(crate) struct Network {
    access: Arc<Access>,
    shared: NetworkShared,
    /// The HTTP client, built on the first request (most runs of most plugins make none
    /// until they sync, and `describe` makes none).
    client: Option<reqwest::Client>,
    /// Destinations already logged as denied in this run.
    denied_logged: HashSet<String>,
    pub counters: NetworkCounters,
    /// TCP connections the plugin holds open now.
    pub open_connections: usize,
    /// The HTTP origin being connected to, for the resolver (which is told only the name);
    /// a run's requests are made one at a time.
    connecting: Arc<Mutex<Option<Origin>>>,
}

impl Network {
    pub fn new(access: Arc<Access>, shared: NetworkShared) -> Self {
        Self {
            access,
            shared,
            client: None,
            denied_logged: HashSet::new(),
            counters: NetworkCounters::default(),
            open_connections: 0,
            connecting: Arc::default(),
        }
    }

    pub fn secrets(&self) -> &Secrets {
        &self.access.secrets
    }

    /// Checks the manifest and the grant for `origin`; a refusal says what to add where,
    /// and is logged once per run and destination.
    fn authorize(&mut self, origin: &Origin) -> Result<(), NetworkError> {
        let access = &self.access;
        let refusal = if !access.requested.iter().any(|p| p.matches(origin)) {
            Some(format!(
                "{origin} is not allowed: plugin `{}` does not request it; add \"{origin}\" to allowed_hosts in the [network] \
                 section of its plugin.toml, and {}",
                access.plugin,
                access.how_to_grant(origin)
            ))
        } else if !access.granted.iter().any(|p| p.matches(origin)) {
            Some(format!("{origin} is not allowed: it is not granted to instance `{}`; {}", access.instance, access.how_to_grant(origin)))
        } else if let Host::Ip(ip) = origin.host {
            self.address_refusal(origin, ip)
        } else {
            None
        };
        match refusal {
            None => Ok(()),
            Some(message) => Err(self.deny(origin, message)),
        }
    }

    /// Why `ip` may not be reached for `origin`, if it may not.
    fn address_refusal(&self, origin: &Origin, ip: IpAddr) -> Option<String> {
        let refused = ungranted_address(&self.access.granted, Some(origin), ip)?;
        Some(self.restricted_message(origin, &refused))
    }

    fn restricted_message(&self, origin: &Origin, refused: &RestrictedAddress) -> String {
        let named = Origin { host: Host::Ip(refused.ip), ..origin.clone() };
        format!(
            "{origin} is not allowed: it resolves to {}, a {} address, which needs an explicit grant; {}",
            refused.ip,
            refused.range,
            self.access.how_to_grant(&named)
        )
    }

    /// Counts a refusal, logs it once per destination, and makes it the plugin's error,
    /// secrets cut out of both (the plugin chooses the destination).
    fn deny(&mut self, origin: &Origin, message: String) -> NetworkError {
        self.counters.denied += 1;
        let message = self.scrub(&message);
        if self.denied_logged.insert(origin.to_string()) {
            tracing::warn!(destination = %self.shown(origin), "{message}");
        }
        NetworkError::Denied(message)
    }

    /// Waits for the instance's rate limit, if it has one, before a request or a connect.
    pub(super) async fn pace(&mut self) {
        if let Some(bucket) = &self.access.bucket {
            let waited = bucket.acquire().await;
            self.counters.wait_ms += u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        }
    }

    /// A destination as logs show it: the plugin chose it, so secrets are cut out.
    pub(super) fn shown(&self, origin: &Origin) -> String {
        self.scrub(&origin.to_string())
    }

    /// The addresses of `origin` this run may connect to, in resolver order (an IP
    /// origin was checked by [`Self::authorize`]). A name whose every address is
    /// restricted and not granted is a denial naming what to grant.
    async fn resolve(&mut self, origin: &Origin) -> Result<Vec<SocketAddr>, NetworkError> {
        let name = match &origin.host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, origin.port)]),
            Host::Name(name) => name.clone(),
        };
        let lookup = tokio::net::lookup_host((name.as_str(), origin.port));
        let resolved = tokio::time::timeout(self.shared.config.connect_timeout, lookup)
            .await
            .map_err(|_| NetworkError::Timeout(format!("resolving {name} took longer than the connect timeout")))?
            .map_err(|e| NetworkError::Connect(format!("cannot resolve {name}: {e}")))?;
        admit(&self.access.granted, Some(origin), resolved).map_err(|refused| {
            let message = self.restricted_message(origin, &refused);
            self.deny(origin, message)
        })
    }

    /// Makes an error message safe to hand out: no secret values in it.
    fn scrub(&self, message: &str) -> String {
        self.access.secrets.redact(message).into_owned()
    }
}

/// A resolved address in a restricted range that no grant names.
#[derive(Debug, thiserror::Error)]
#[error("{ip} is a {range} address and no grant names it")]
pub(crate) struct RestrictedAddress {
    ip: IpAddr,
    range: &'static str,
}

/// Private, loopback and link-local addresses are reachable only when a grant names them
/// literally (`http://127.0.0.1:*`): a name that merely resolves to one is not enough.
/// `ip`'s restricted range, if it has one and no grant names it for `origin` (unknown: no
/// grant does).
fn ungranted_address(granted: &[HostPattern], origin: Option<&Origin>, ip: IpAddr) -> Option<RestrictedAddress> {
    let range = restricted_range(ip)?;
    (!origin.is_some_and(|origin| granted.iter().any(|p| p.admits_address(origin, ip)))).then_some(RestrictedAddress { ip, range })
}

/// The addresses of a resolved name that may be reached; none is an error naming the
/// first refused one.
fn admit(
    granted: &[HostPattern],
    origin: Option<&Origin>,
    resolved: impl IntoIterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, RestrictedAddress> {
    let mut allowed = Vec::new();
    let mut refused = None;
    for address in resolved {
        match ungranted_address(granted, origin, address.ip()) {
            None => allowed.push(address),
            Some(restricted) => refused = refused.or(Some(restricted)),
        }
    }
    match refused {
        Some(refused) if allowed.is_empty() => Err(refused),
        _ => Ok(allowed),
    }
}
