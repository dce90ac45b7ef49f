//! A run's network capabilities: who may be reached (the plugin's manifest requests a
//! destination, the operator grants it to the instance, and private addresses need to be
//! named), and the counters that go into the run record. `http` and `tcp` are the two
//! host interfaces built on it; `bucket` paces requests.

mod bucket;
pub(crate) mod http;
pub(crate) mod tcp;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub(crate) use self::bucket::TokenBucket;
use super::bindings::NetworkError;
use super::registry::NetworkCounters;
use super::secrets::Secrets;
use crate::config::GrantedBy;
use rapport_net::address::{self, ResolveError, RestrictedAddress, ungranted_address};
use rapport_net::config::NetworkConfig;
use rapport_net::egress::Egress;
use rapport_net::{Host, HostPattern, Origin};

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
    /// The HTTP client, once the run has made a request.
    egress: Option<Egress>,
    /// Destinations already logged as denied in this run.
    denied_logged: HashSet<String>,
    pub counters: NetworkCounters,
    /// TCP connections the plugin holds open now.
    pub open_connections: usize,
}

impl Network {
    pub fn new(access: Arc<Access>, shared: NetworkShared) -> Self {
        Self { access, shared, egress: None, denied_logged: HashSet::new(), counters: NetworkCounters::default(), open_connections: 0 }
    }

    pub fn secrets(&self) -> &Secrets {
        &self.access.secrets
    }

    /// Checks the manifest and the grant for `origin`; a refusal (its message) says what to
    /// add where, and is logged once per run and destination.
    fn check(&mut self, origin: &Origin) -> Result<(), String> {
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
            Some(message) => Err(self.refuse(origin, message)),
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

    /// Counts a refusal, logs it once per destination, and returns its message, secrets cut
    /// out of both (the plugin chooses the destination).
    fn refuse(&mut self, origin: &Origin, message: String) -> String {
        self.counters.denied += 1;
        let message = self.scrub(&message);
        if self.denied_logged.insert(origin.to_string()) {
            tracing::warn!(destination = %self.shown(origin), "{message}");
        }
        message
    }

    /// [`Self::refuse`], as the plugin's error.
    fn deny(&mut self, origin: &Origin, message: String) -> NetworkError {
        NetworkError::Denied(self.refuse(origin, message))
    }

    /// Waits for the instance's rate limit, if it has one, before a request or a connect.
    pub(super) async fn wait_for_rate_limit(&mut self) {
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
    /// origin was checked by [`Self::check`]). A name whose every address is restricted
    /// and not granted is a denial naming what to grant.
    async fn resolve(&mut self, origin: &Origin) -> Result<Vec<SocketAddr>, NetworkError> {
        match address::resolve(&self.access.granted, origin, self.shared.config.connect_timeout).await {
            Ok(addresses) => Ok(addresses),
            Err(ResolveError::Restricted(refused)) => {
                let message = self.restricted_message(origin, &refused);
                Err(self.deny(origin, message))
            }
            Err(error @ ResolveError::Timeout { .. }) => Err(NetworkError::Timeout(error.to_string())),
            Err(error @ ResolveError::Lookup { .. }) => Err(NetworkError::Connect(error.to_string())),
        }
    }

    /// Makes an error message safe to hand out: no secret values in it.
    fn scrub(&self, message: &str) -> String {
        self.access.secrets.redact(message).into_owned()
    }
}
