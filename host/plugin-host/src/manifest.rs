//! The plugin manifest, `plugin.toml` beside the `.wasm`: authoritative because the host
//! reads it without running the plugin.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::RateLimit;
use rapport_core::toml_doc::{TomlError, parse_toml};
use rapport_net::HostPattern;

/// The plugin API (WIT package `rapport:connector`) this host implements.
pub const SUPPORTED_API: ApiVersion = ApiVersion { major: 0, minor: 1, patch: 1 };

/// A plugin API version, `major.minor.patch`. A host supports plugins of its own line
/// (its major version; before 1.0, its minor version) up to its own version: later
/// versions only add interfaces and functions, which an older host does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl ApiVersion {
    /// Reads `major.minor` (patch 0) or `major.minor.patch`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            None => 0,
            Some(patch) if parts.next().is_none() => patch.parse().ok()?,
            Some(_) => return None,
        };
        Some(Self { major, minor, patch })
    }

    /// Whether a host at `self` can run a plugin built for `plugin`.
    pub fn supports(self, plugin: Self) -> bool {
        let same_line = if self.major == 0 { plugin.major == 0 && plugin.minor == self.minor } else { plugin.major == self.major };
        same_line && plugin <= self
    }

    /// The WIT folder of this version, under `sdk/wit/`.
    pub fn wit_folder(self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl TryFrom<String> for ApiVersion {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| format!("expected a version such as \"0.1.1\", found \"{text}\""))
    }
}

impl From<ApiVersion> for String {
    fn from(version: ApiVersion) -> Self {
        version.to_string()
    }
}

/// What `plugin.toml` declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: lowercase letters, digits and `-`; also its default instance's
    /// (source's) name.
    pub name: String,
    /// The plugin's version (semver).
    pub version: String,
    /// The plugin API version it was built for.
    #[schema(value_type = String, example = "0.1")]
    pub api: ApiVersion,
    /// One line saying what it connects to.
    #[serde(default)]
    pub description: String,
    /// The version of its cursor's format. An upgrade to a version with the same format
    /// keeps every instance's cursor; a different one clears them, so the next runs start
    /// over (upserts make the repeat harmless).
    #[serde(default = "first_cursor_format")]
    pub cursor_format: u32,
    /// The network access it asks for; an operator must also grant it per instance.
    #[serde(default)]
    pub network: NetworkRequest,
}

fn first_cursor_format() -> u32 {
    1
}

/// The `[network]` section: what a plugin needs to reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    /// Destinations, as `https://api.example.com`, `https://*.example.com`,
    /// `http://127.0.0.1:*` or `tcp://imap.example.com:993`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub allowed_hosts: Vec<HostPattern>,
    /// The remote's rate limit, applied to every instance unless its grant sets its own.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// A manifest is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read plugin manifest {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A value is wrong.
    #[error("{path}:{line}: key `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
        /// What is wrong and expected.
        message: String,
    },
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let invalid = |e: TomlError| ManifestError::Invalid { path: path.to_owned(), line: e.line, key: e.key, message: e.message };
        let manifest: Self = parse_toml(text).map_err(invalid)?;
        // Semantic checks report the key's line, as a type error would.
        let at = |key: &str, message: String| {
            let line = text.lines().position(|l| l.trim_start().starts_with(key)).map_or(1, |i| i + 1);
            invalid(TomlError { line, key: key.to_owned(), message })
        };
        if !is_valid_name(&manifest.name) {
            return Err(at("name", "expected lowercase letters, digits and `-`, starting with a letter".to_owned()));
        }
        if !is_semver(&manifest.version) {
            return Err(at("version", format!("expected a version such as \"1.2.0\", found \"{}\"", manifest.version)));
        }
        if let Some(Err(message)) = manifest.network.rate_limit.as_ref().map(RateLimit::check) {
            return Err(at("rate_limit", message));
        }
        Ok(manifest)
    }
}

/// Plugin and instance names: they become source names and path components.
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_supported_within_their_line() {
        let host = ApiVersion { major: 0, minor: 1, patch: 1 };
        let v = |s| ApiVersion::parse(s).unwrap();
        assert!(host.supports(v("0.1")));
        assert!(host.supports(v("0.1.1")));
        assert!(!host.supports(v("0.1.2")), "a later patch may import what this host lacks");
        assert!(!host.supports(v("0.2")));
        assert!(!host.supports(v("0.0")));
        assert!(!host.supports(v("1.0")));
        let one = ApiVersion { major: 1, minor: 3, patch: 0 };
        assert!(one.supports(v("1.0")) && one.supports(v("1.3")) && !one.supports(v("1.4")) && !one.supports(v("2.0")));
        assert_eq!(ApiVersion::parse("0.1.x"), None);
    }

    #[test]
    fn manifest_errors_name_line_and_key() {
        let path = Path::new("plugin.toml");
        let ok = Manifest::parse(path, "name = \"crm\"\nversion = \"1.0.0\"\napi = \"0.1\"\n").unwrap();
        assert_eq!(ok.api, ApiVersion { major: 0, minor: 1, patch: 0 });
        assert!(ok.network.allowed_hosts.is_empty());
        let text = "name = \"crm\"\nversion = \"1.0.0\"\napi = \"0.1.1\"\n[network]\nallowed_hosts = [\"https://api.example.com\"]\n";
        let networked = Manifest::parse(path, text).unwrap();
        assert_eq!(networked.network.allowed_hosts[0].to_string(), "https://api.example.com");
        let err = Manifest::parse(path, &text.replace("https://api", "ftp://api")).unwrap_err().to_string();
        assert!(err.starts_with("plugin.toml:5: key `network.allowed_hosts") && err.contains("http, https or tcp"), "{err}");
        let err = Manifest::parse(path, "name = \"crm\"\nversion = \"1.0\"\napi = \"0.1\"\n").unwrap_err().to_string();
        assert!(err.starts_with("plugin.toml:2: key `version`"), "{err}");
        let err = Manifest::parse(path, "name = \"crm\"\nversion = \"1.0.0\"\napi = \"one\"\n").unwrap_err().to_string();
        assert!(err.starts_with("plugin.toml:3:") && err.contains("\"0.1.1\""), "{err}");
        let err = Manifest::parse(path, "name = \"Crm\"\nversion = \"1.0.0\"\napi = \"0.1\"\n").unwrap_err().to_string();
        assert!(err.starts_with("plugin.toml:1: key `name`"), "{err}");
        let err = Manifest::parse(path, "name = \"crm\"\nversion = \"1.0.0\"\napi = \"0.1\"\ncolour = 1\n").unwrap_err().to_string();
        assert!(err.starts_with("plugin.toml:4: key `colour`"), "{err}");
    }

    /// Released contracts, by version, with the SHA-256 of their WIT: a release is frozen
    /// once listed here. A change is a new version folder (and a line here), never an edit.
    const RELEASED: &[(&str, &str)] = &[
        ("0.1.0", "2f2d67852ea314fabe5696b30f7e8631792c3255878a1599df6af64bb9a19e53"),
        ("0.1.1", "76e0cf86f8d415085869c1e4f1ee6fa3a07864e489f5336e57de5fa4eeee380d"),
    ];

    #[test]
    fn released_wit_folders_are_frozen_and_the_newest_is_the_hosts() {
        use sha2::{Digest, Sha256};
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/wit");
        let mut folders: Vec<String> =
            std::fs::read_dir(&root).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
        folders.sort_by_key(|name| ApiVersion::parse(name));
        let released: Vec<&str> = RELEASED.iter().map(|(version, _)| *version).collect();
        assert_eq!(folders, released, "every folder under sdk/wit is a released version listed here, and no release is missing");
        for (version, digest) in RELEASED {
            let text = std::fs::read(root.join(version).join("connector.wit")).unwrap();
            assert!(
                text.windows(version.len()).any(|w| w == version.as_bytes()),
                "sdk/wit/{version} declares package rapport:connector@{version}"
            );
            assert_eq!(
                &rapport_core::hex(&Sha256::digest(&text)),
                digest,
                "sdk/wit/{version} is released and frozen: put the change in a new version folder"
            );
        }
        assert_eq!(SUPPORTED_API.wit_folder(), *released.last().unwrap(), "the host speaks the newest release");
    }
}
