//! Which resolved addresses may be reached: private, loopback and link-local ones only when
//! a grant names them literally (`http://127.0.0.1:*`); a name that merely resolves to one
//! is not enough, so a DNS answer cannot turn a public destination into an internal one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::{Host, HostPattern, Origin, restricted_range};

/// A resolved address in a restricted range that no grant names.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{ip} is a {range} address and no grant names it")]
pub struct RestrictedAddress {
    /// The address.
    pub ip: IpAddr,
    /// Its range (`loopback`, `private`, …).
    pub range: &'static str,
}

/// Why a destination's addresses cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Every address is restricted and not granted; the first refused one.
    #[error(transparent)]
    Restricted(RestrictedAddress),
    /// The name did not resolve.
    #[error("cannot resolve {name}: {source}")]
    Lookup {
        /// The name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// The resolver took longer than the limit.
    #[error("resolving {name} took longer than the connect timeout")]
    Timeout {
        /// The name.
        name: String,
    },
}

/// `ip`'s restricted range, if it has one and no grant names it for `origin` (unknown: no
/// grant does).
pub fn ungranted_address(granted: &[HostPattern], origin: Option<&Origin>, ip: IpAddr) -> Option<RestrictedAddress> {
    let range = restricted_range(ip)?;
    (!origin.is_some_and(|origin| granted.iter().any(|p| p.admits_address(origin, ip)))).then_some(RestrictedAddress { ip, range })
}

/// The addresses of a resolved name that may be reached; none is an error naming the
/// first refused one.
pub fn admit(
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

/// The addresses of `origin` that may be reached, in resolver order, within `limit`. An
/// IP origin is returned as it is: check it with [`ungranted_address`] first.
pub async fn resolve(granted: &[HostPattern], origin: &Origin, limit: Duration) -> Result<Vec<SocketAddr>, ResolveError> {
    let name = match &origin.host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, origin.port)]),
        Host::Name(name) => name,
    };
    let lookup = tokio::net::lookup_host((name.as_str(), origin.port));
    let resolved = match tokio::time::timeout(limit, lookup).await {
        Err(_) => return Err(ResolveError::Timeout { name: name.clone() }),
        Ok(Err(source)) => return Err(ResolveError::Lookup { name: name.clone(), source }),
        Ok(Ok(resolved)) => resolved,
    };
    admit(granted, Some(origin), resolved).map_err(ResolveError::Restricted)
}
