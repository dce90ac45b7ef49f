//! Outbound network rules for everything the daemon lets others reach: destination
//! patterns and the origins they match, the addresses that need an explicit grant
//! ([`address`]), the TLS roots ([`tls`]), the one guarded HTTP client ([`egress`]) and the
//! [`config`] of outbound calls.

pub mod address;
pub mod config;
pub mod egress;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The protocol of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
    /// A TCP stream (TLS or not is the stream's business).
    Tcp,
}

impl Scheme {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            "tcp" => Some(Self::Tcp),
            _ => None,
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Self::Http => Some(80),
            Self::Https => Some(443),
            Self::Tcp => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Tcp => "tcp",
        }
    }
}

/// A host: a DNS name (lowercase) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A name, resolved when connecting.
    Name(String),
    /// An address.
    Ip(IpAddr),
}

impl Host {
    /// Reads a host as written in a URL or a pattern (IPv6 in brackets or bare).
    pub fn parse(text: &str) -> Option<Self> {
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') && !l.starts_with('-')
        };
        (name.len() <= 253 && name.split('.').all(label_ok)).then_some(Self::Name(name))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
        }
    }
}

/// Where a request goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The protocol.
    pub scheme: Scheme,
    /// The host.
    pub host: Host,
    /// The port.
    pub port: u16,
}

impl Origin {
    /// The origin of an `http` or `https` URL.
    pub fn of_url(url: &reqwest::Url) -> Option<Self> {
        let scheme = Scheme::parse(url.scheme()).filter(|s| *s != Scheme::Tcp)?;
        let host = match url.host()? {
            url::Host::Domain(name) => Host::parse(name)?,
            url::Host::Ipv4(ip) => Host::Ip(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Host::Ip(IpAddr::V6(ip)),
        };
        Some(Self { scheme, host, port: url.port_or_known_default()? })
    }
}

impl std::fmt::Display for Origin {
    /// `scheme://host[:port]`, the port left out when it is the scheme's default: the form
    /// to paste into a manifest or a grant.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.scheme.default_port() != Some(self.port) {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// Which hosts a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// `*`: any host.
    Any,
    /// `*.example.com`: any name under `example.com` (not `example.com` itself).
    Subdomains(String),
    /// One name or address.
    Exactly(Host),
}

/// A destination pattern, `scheme://host[:port]`, as written in a plugin's manifest and
/// an operator's grant: `https://api.example.com` (port 443), `https://*.example.com`,
/// `http://127.0.0.1:*` (any port), `tcp://imap.example.com:993` (TCP needs a port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    scheme: Scheme,
    host: HostMatch,
    /// `None` for any port.
    port: Option<u16>,
}

impl HostPattern {
    /// Reads a pattern; the error says what is expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected `scheme://host[:port]` with scheme http, https or tcp, such as \"https://api.example.com\", \
                        \"https://*.example.com\", \"http://127.0.0.1:*\" or \"tcp://imap.example.com:993\"";
        let (scheme, rest) = text.split_once("://").ok_or_else(|| format!("{expected}; found \"{text}\""))?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| format!("{expected}; found \"{text}\""))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!("a pattern names a destination only (no path, query or user): \"{text}\""));
        }
        // The port follows the last colon, unless that colon is inside an IPv6 address.
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') && (!host.contains(':') || host.ends_with(']')) => (host, Some(port)),
            _ => (rest, None),
        };
        let port = match port {
            None => Some(scheme.default_port().ok_or_else(|| format!("tcp patterns need a port, such as \"{text}:993\""))?),
            Some("*") => None,
            Some(port) => Some(port.parse().map_err(|_| format!("`{port}` is not a port number in \"{text}\""))?),
        };
        let host = match host {
            "*" => HostMatch::Any,
            _ => match host.strip_prefix("*.") {
                Some(domain) => match Host::parse(domain) {
                    Some(Host::Name(domain)) => HostMatch::Subdomains(domain),
                    _ => return Err(format!("`*.` must be followed by a domain name in \"{text}\"")),
                },
                None => {
                    HostMatch::Exactly(Host::parse(host).ok_or_else(|| format!("`{host}` is not a host name or address in \"{text}\""))?)
                }
            },
        };
        Ok(Self { scheme, host, port })
    }

    /// Whether `origin` is one of this pattern's destinations.
    pub fn matches(&self, origin: &Origin) -> bool {
        let host = match (&self.host, &origin.host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Subdomains(domain), Host::Name(name)) => {
                name.strip_suffix(domain.as_str()).is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
            }
            (HostMatch::Subdomains(_), Host::Ip(_)) => false,
            (HostMatch::Exactly(host), other) => host == other,
        };
        self.scheme == origin.scheme && host && self.port.is_none_or(|port| port == origin.port)
    }

    /// The address this pattern names literally, if it names one.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        match &self.host {
            HostMatch::Exactly(Host::Ip(ip)) => Some(*ip),
            _ => None,
        }
    }

    /// Whether this pattern names `ip` itself for `origin`'s scheme and port: the grant a
    /// restricted address needs when a name resolves to it (`tcp://127.0.0.1:5000` admits
    /// that port over TCP, not HTTP on another).
    pub fn admits_address(&self, origin: &Origin, ip: IpAddr) -> bool {
        self.literal_ip() == Some(ip) && self.scheme == origin.scheme && self.port.is_none_or(|port| port == origin.port)
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            HostMatch::Any => f.write_str("*")?,
            HostMatch::Subdomains(domain) => write!(f, "*.{domain}")?,
            HostMatch::Exactly(host) => write!(f, "{host}")?,
        }
        match self.port {
            None => f.write_str(":*"),
            Some(port) if self.scheme.default_port() == Some(port) => Ok(()),
            Some(port) => write!(f, ":{port}"),
        }
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<HostPattern> for String {
    fn from(pattern: HostPattern) -> Self {
        pattern.to_string()
    }
}

/// Why an address is not on the public internet, or `None` if it is. Such addresses
/// (this machine, the local network, cloud metadata endpoints) are reachable only when
/// an operator names them explicitly.
pub fn restricted_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => restricted_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => restricted_v4(v4),
            None => restricted_v6(ip),
        },
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 || ip.is_broadcast() || ip.is_multicast() || a >= 240 || (a == 198 && (b & 0xfe) == 18) {
        Some("reserved")
    } else {
        None
    }
}

fn restricted_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_unspecified() || ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Origin {
        Origin::of_url(&reqwest::Url::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn patterns_match_scheme_host_and_port() {
        let p = |text: &str| HostPattern::parse(text).unwrap();
        assert!(p("https://api.example.com").matches(&origin("https://API.example.com/v3/objects")));
        assert!(!p("https://api.example.com").matches(&origin("http://api.example.com")));
        assert!(!p("https://api.example.com").matches(&origin("https://api.example.com:8443")));
        assert!(p("https://*.example.com").matches(&origin("https://eu.api.example.com")));
        assert!(!p("https://*.example.com").matches(&origin("https://example.com")));
        assert!(!p("https://*.example.com").matches(&origin("https://badexample.com")));
        assert!(p("http://127.0.0.1:*").matches(&origin("http://127.0.0.1:4000/x")));
        assert!(p("http://[::1]:8080").matches(&origin("http://[::1]:8080")));
        assert_eq!(p("http://127.0.0.1:*").literal_ip(), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let tcp = Origin { scheme: Scheme::Tcp, host: Host::Name("imap.example.com".into()), port: 993 };
        assert!(p("tcp://imap.example.com:993").matches(&tcp));
        for text in
            ["https://api.example.com", "https://*.example.com", "http://127.0.0.1:*", "tcp://imap.example.com:993", "http://[::1]:8080"]
        {
            assert_eq!(p(text).to_string(), text);
        }
        assert_eq!(origin("https://api.example.com:443/x").to_string(), "https://api.example.com");
        assert_eq!(origin("http://127.0.0.1:4000/x").to_string(), "http://127.0.0.1:4000");
    }

    #[test]
    fn bad_patterns_say_what_is_expected() {
        for (text, expected) in [
            ("api.example.com", "scheme://host"),
            ("ftp://api.example.com", "http, https or tcp"),
            ("tcp://imap.example.com", "need a port"),
            ("https://api.example.com/v3", "no path"),
            ("https://api.example.com:port", "not a port"),
            ("https://*.", "domain name"),
        ] {
            let err = HostPattern::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn private_ranges_are_restricted() {
        let range = |text: &str| restricted_range(text.parse().unwrap());
        assert_eq!(range("127.0.0.1"), Some("loopback"));
        assert_eq!(range("10.1.2.3"), Some("private"));
        assert_eq!(range("172.16.0.1"), Some("private"));
        assert_eq!(range("192.168.1.1"), Some("private"));
        assert_eq!(range("100.64.0.1"), Some("private"));
        assert_eq!(range("169.254.169.254"), Some("link-local"));
        assert_eq!(range("0.0.0.0"), Some("reserved"));
        assert_eq!(range("::1"), Some("loopback"));
        assert_eq!(range("fd00::1"), Some("private"));
        assert_eq!(range("fe80::1"), Some("link-local"));
        assert_eq!(range("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(range("93.184.216.34"), None);
        assert_eq!(range("2606:4700::1111"), None);
    }
}
