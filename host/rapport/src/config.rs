//! Configuration: built-in defaults, then `rapport.toml`, then `RAPPORT_*` environment
//! variables, validated once into a typed [`Config`].
//!
//! This is the only module that reads the environment. Every error names where the bad
//! value came from (file, line and key, or the variable) and what is expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rapport_core::Secret;
pub use rapport_core::config::ConfigError;
use rapport_core::config::{EnvKeys, EnvKind, env_var, invalid, positive, set_positive};
use rapport_core::toml_doc::{line_of, locate_key};
use rapport_graph::IdentityRules;
use rapport_graph::config::{RawIdentity, RawRecords};
use rapport_ops::RecordLimits;
use rapport_plugin_host::config::{PluginsConfig, RawPlugins};
use rapport_signals::{RawSignals, SignalsConfig};
use rapport_store::config::{DEFAULT_STORE_PATH, RawStore, StoreConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The file as written; every field optional so defaults and the environment can fill in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    import: RawImport,
    #[serde(default)]
    records: RawRecords,
    #[serde(default)]
    signals: RawSignals,
    #[serde(default)]
    plugins: RawPlugins,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    bind: Option<String>,
    dev_mode: Option<bool>,
    token_sha256: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    batch_size: Option<usize>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the graph lives.
    pub store: StoreConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Identity resolution.
    pub identity: IdentityRules,
    /// Operations per committed batch in `import`.
    pub import_batch_size: usize,
    /// What every record operation must respect, whatever its source.
    pub records: RecordLimits,
    /// How touches are read as relationship signals.
    pub signals: SignalsConfig,
    /// The plugin runtime.
    pub plugins: PluginsConfig,
    /// `RAPPORT_*` variables that set nothing (the command line warns, or fails with `--strict`).
    pub unknown_variables: Vec<UnknownVariable>,
    /// The API token commands bring to a running daemon (`RAPPORT_TOKEN`).
    pub client_token: Option<Secret>,
}

/// The variable holding the token commands bring to a running daemon.
pub const CLIENT_TOKEN_VAR: &str = "RAPPORT_TOKEN";

/// HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// No authentication; only allowed on a loopback address.
    pub dev_mode: bool,
    /// SHA-256 digests of the accepted bearer tokens.
    pub token_digests: Vec<[u8; 32]>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Connections served at once; further clients wait in the listen queue.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and, on a kept-alive connection,
    /// to start its next request) before the connection is closed.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_read_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            dev_mode: false,
            token_digests: Vec::new(),
            max_body_bytes: 16 << 20,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// The keys of `[api]` and `[import]` an environment variable may set.
const ENV_KEYS: EnvKeys = &[
    ("api.bind", EnvKind::Text),
    ("api.dev_mode", EnvKind::Flag),
    ("api.token_sha256", EnvKind::List),
    ("api.max_body_bytes", EnvKind::Number),
    ("api.max_connections", EnvKind::Number),
    ("api.header_read_timeout_secs", EnvKind::Number),
    ("api.body_read_timeout_secs", EnvKind::Number),
    ("import.batch_size", EnvKind::Number),
];

/// Every key an environment variable may set, section by section (each crate lists its own).
const ENV_OVERRIDES: &[EnvKeys] = &[
    rapport_store::config::ENV_KEYS,
    ENV_KEYS,
    rapport_graph::config::ENV_KEYS,
    rapport_signals::ENV_KEYS,
    rapport_plugin_host::config::ENV_KEYS,
    rapport_net::config::ENV_KEYS,
];

/// The overridable keys, flattened.
fn env_overrides() -> impl Iterator<Item = &'static (&'static str, EnvKind)> {
    ENV_OVERRIDES.iter().flat_map(|keys| keys.iter())
}

/// `RAPPORT_*` variables that are not config overrides: read by the command line
/// (`rapport demo --package`) or by the project's own tooling (tests, CI).
const OTHER_VARIABLES: &[&str] = &["RAPPORT_DEMO_PACKAGE", "RAPPORT_BIN", "RAPPORT_PYTHON", "RAPPORT_CI_TARGET_DIR"];

/// A `RAPPORT_*` variable that overrides nothing, most likely misspelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    /// The variable as set.
    pub var: String,
    /// The known variable closest to it, if one is close.
    pub closest: Option<String>,
}

impl std::fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "environment variable {} is not a Rapport setting and is ignored", self.var)?;
        match &self.closest {
            Some(closest) => write!(f, "; did you mean {closest}?"),
            None => f.write_str(" (config/rapport.example.toml names each key's variable)"),
        }
    }
}

impl Config {
    /// Loads `path` (if given) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(path, &std::env::vars().collect::<Vec<_>>())
    }

    /// Loads `path` (if given) with an explicit environment (for tests): the `RAPPORT_*`
    /// overrides in it apply, and secrets configured as `{ env = "…" }` are read from it.
    pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?,
            None => String::new(),
        };
        let mut origins = Origins { file: path.map(|p| (p, text.as_str())), overridden: Vec::new() };
        let mut table = toml::de::DeTable::parse(&text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            origins.error("", e.message(), Some(offset))
        })?;
        let mut unknown_variables = Vec::new();
        let mut client_token = None;
        for (var, value) in env.iter().filter(|(var, _)| var.starts_with("RAPPORT_")) {
            match env_overrides().find(|(key, _)| env_var(key) == *var) {
                Some(&(key, kind)) => {
                    let value = env_value(kind, value).map_err(|message| ConfigError::Env {
                        var: var.clone(),
                        key: key.to_owned(),
                        message: message.to_owned(),
                    })?;
                    set_key(table.get_mut(), key, value);
                    origins.overridden.push((key, var.clone()));
                }
                None if var == CLIENT_TOKEN_VAR => client_token = Some(Secret::new(value.clone())),
                None if OTHER_VARIABLES.contains(&var.as_str()) => {}
                None => unknown_variables.push(UnknownVariable { var: var.clone(), closest: closest_variable(var) }),
            }
        }
        let mut raw: RawConfig = serde_path_to_error::deserialize(toml::de::Deserializer::from(table)).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            origins.error(&key, inner.message(), inner.span().map(|s| s.start))
        })?;
        // Relative paths written in the file (and the defaults) mean the same whatever the
        // working directory: they are the file's directory's. One set by a variable is the
        // shell's, so it stays relative to the working directory.
        let base = path.and_then(Path::parent).unwrap_or(Path::new(""));
        let anchor = |key: &str, path: &mut PathBuf| {
            if !origins.overridden.iter().any(|(k, _)| *k == key) {
                *path = base.join(&*path);
            }
        };
        raw.store.path.get_or_insert_with(|| PathBuf::from(DEFAULT_STORE_PATH));
        raw.store.path.iter_mut().for_each(|p| anchor("store.path", p));
        raw.plugins.dir.iter_mut().for_each(|p| anchor("plugins.dir", p));
        raw.plugins.network.extra_ca_files.iter_mut().flatten().for_each(|p| anchor("plugins.network.extra_ca_files", p));
        let mut config = validate(raw).map_err(|e| match e {
            ConfigError::Invalid { key, message } => origins.error(&key, &message, None),
            other => other,
        })?;
        config.unknown_variables = unknown_variables;
        config.client_token = client_token;
        Ok(config)
    }
}

/// Where each value came from, so an error found after parsing still names its file and
/// line, or the variable that set it.
struct Origins<'a> {
    file: Option<(&'a Path, &'a str)>,
    /// Keys set from the environment, with their variable.
    overridden: Vec<(&'static str, String)>,
}

impl Origins<'_> {
    /// The error about `key`, located where its value was written: the variable that set
    /// it, else its line in the file (at `offset` when the parser knows it), else the key.
    fn error(&self, key: &str, message: &str, offset: Option<usize>) -> ConfigError {
        let set_by = self.overridden.iter().rev().find(|(k, _)| key == *k || key.strip_prefix(k).is_some_and(|rest| rest.starts_with('[')));
        if let Some((k, var)) = set_by {
            return ConfigError::Env { var: var.clone(), key: (*k).to_owned(), message: message.to_owned() };
        }
        let Some((path, text)) = self.file else { return invalid(key, message) };
        // Values set from the environment carry no position (0..0); the file's do.
        match offset.filter(|&o| o > 0 || key.is_empty()).or_else(|| locate_key(text, key)) {
            Some(offset) => {
                ConfigError::File { path: path.to_owned(), line: line_of(text, offset), key: key.to_owned(), message: message.to_owned() }
            }
            None => invalid(key, message),
        }
    }
}

/// A variable's text as the TOML value its key expects.
fn env_value(kind: EnvKind, text: &str) -> Result<toml::Spanned<toml::de::DeValue<'_>>, &'static str> {
    use toml::de::DeValue;
    let value = match kind {
        EnvKind::Text => DeValue::String(text.into()),
        EnvKind::Number => match DeValue::parse(text.trim()).map(toml::Spanned::into_inner) {
            Ok(number @ DeValue::Integer(_)) => number,
            _ => return Err("expected a whole number"),
        },
        EnvKind::Flag => DeValue::Boolean(match text.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err("expected true or false"),
        }),
        EnvKind::List => DeValue::Array(
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Spanned::new(0..0, DeValue::String(s.into()))).collect(),
        ),
    };
    Ok(toml::Spanned::new(0..0, value))
}

/// Sets `dotted.key` in `table`, creating the tables on the way.
fn set_key<'i>(table: &mut toml::de::DeTable<'i>, dotted: &'static str, value: toml::Spanned<toml::de::DeValue<'i>>) {
    use toml::de::DeValue;
    let (parents, leaf) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = table;
    for part in parents.split('.').filter(|p| !p.is_empty()) {
        let slot = current
            .entry(toml::Spanned::new(0..0, part.into()))
            .or_insert_with(|| toml::Spanned::new(0..0, DeValue::Table(Default::default())));
        // Where the file has a value instead of a table, deserializing reports it there.
        let DeValue::Table(inner) = slot.get_mut() else { return };
        current = inner;
    }
    current.insert(toml::Spanned::new(0..0, leaf.into()), value);
}

/// The known variable closest to `var` by edit distance, if it is plausibly a typo of it.
fn closest_variable(var: &str) -> Option<String> {
    env_overrides()
        .map(|(key, _)| env_var(key))
        .chain(OTHER_VARIABLES.iter().map(|v| (*v).to_owned()))
        .map(|known| (edit_distance(var, &known), known))
        .filter(|(distance, known)| *distance <= known.len() / 4)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let api = api_config(raw.api)?;
    let store = raw.store.validate()?;
    Ok(Config {
        plugins: raw.plugins.validate(&store.path)?,
        store,
        api,
        identity: raw.identity.validate()?,
        import_batch_size: positive("import.batch_size", raw.import.batch_size)?.unwrap_or(1000),
        records: raw.records.validate()?,
        signals: raw.signals.validate()?,
        unknown_variables: Vec::new(),
        client_token: None,
    })
}

fn api_config(raw: RawApi) -> Result<ApiConfig, ConfigError> {
    let mut config = ApiConfig::default();
    if let Some(text) = raw.bind {
        config.bind = text.parse().map_err(|_| invalid("api.bind", format!("`{text}` is not an address such as \"127.0.0.1:8080\"")))?;
    }
    config.dev_mode = raw.dev_mode.unwrap_or(false);
    if config.dev_mode && !config.bind.ip().is_loopback() {
        return Err(invalid(
            "api.dev_mode",
            format!("dev mode disables authentication, so it only binds to loopback; `api.bind` is {}", config.bind),
        ));
    }
    config.token_digests = raw
        .token_sha256
        .unwrap_or_default()
        .iter()
        .map(|hex| {
            parse_digest(hex).ok_or_else(|| invalid("api.token_sha256", "expected 64 hex digits per entry (see `rapport token new`)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    set_positive(&mut config.max_body_bytes, "api.max_body_bytes", raw.max_body_bytes, std::convert::identity)?;
    set_positive(&mut config.max_connections, "api.max_connections", raw.max_connections, std::convert::identity)?;
    set_positive(&mut config.header_read_timeout, "api.header_read_timeout_secs", raw.header_read_timeout_secs, Duration::from_secs)?;
    set_positive(&mut config.body_read_timeout, "api.body_read_timeout_secs", raw.body_read_timeout_secs, Duration::from_secs)?;
    Ok(config)
}

/// The SHA-256 digest of a bearer token, as configured in `api.token_sha256`.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_core::hex;
    use rapport_plugin_host::config::RateLimit;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("rapport-config-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rapport.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<_> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let result = Config::load_from(Some(&path), &env);
        std::fs::remove_dir_all(dir).unwrap();
        result
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = load("[store]\npath = \"x\"\n\n[api]\nmax_body_bytes = \"big\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("rapport.toml:5: key `api.max_body_bytes`"), "{err}");
        let err = load("[api]\nbnd = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("unknown field `bnd`"), "{err}");
    }

    #[test]
    fn env_overrides_win_and_name_the_variable() {
        let config = load("[api]\nbind = \"127.0.0.1:1\"\n", &[("RAPPORT_API_BIND", "127.0.0.1:2")]).unwrap();
        assert_eq!(config.api.bind.port(), 2);
        let err = load("", &[("RAPPORT_IMPORT_BATCH_SIZE", "many")]).unwrap_err().to_string();
        assert!(err.contains("RAPPORT_IMPORT_BATCH_SIZE") && err.contains("import.batch_size"), "{err}");
    }

    #[test]
    fn validation_errors_name_the_file_and_line_or_the_variable() {
        let err = load("[store]\npath = \"x\"\n\n[api]\nbind = \"nowhere\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("rapport.toml:5: key `api.bind`") && err.contains("`nowhere` is not an address"), "{err}");
        let err = load("[api]\nbind = \"127.0.0.1:1\"\n", &[("RAPPORT_API_BIND", "nowhere")]).unwrap_err().to_string();
        assert!(err.starts_with("environment variable RAPPORT_API_BIND (overrides `api.bind`)") && err.contains("nowhere"), "{err}");
        let err = load("[api]\n", &[("RAPPORT_API_MAX_BODY_BYTES", "-1")]).unwrap_err().to_string();
        assert!(err.contains("RAPPORT_API_MAX_BODY_BYTES"), "{err}");
        let text = "[plugins.instances.crm]\nallowed_hosts = []\nsecrets = { token = \"short\" }\n";
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains("rapport.toml:3: key `plugins.instances.crm.secrets.token`"), "{err}");
        let err = load("[import]\nbatch_size = 0\n", &[]).unwrap_err().to_string();
        assert!(err.contains("rapport.toml:2: key `import.batch_size`: expected a positive whole number"), "{err}");
        let err = load("[api\n", &[]).unwrap_err().to_string();
        assert!(err.contains("rapport.toml:1:"), "a syntax error names its line: {err}");
    }

    #[test]
    fn misspelled_variables_are_reported_with_the_closest_known_one() {
        let config = load("", &[("RAPPORT_API_BNID", "x"), ("RAPPORT_DEMO_PACKAGE", "d"), ("RAPPORT_WHATEVER", "1")]).unwrap();
        let unknown: Vec<_> = config.unknown_variables.iter().map(|u| (u.var.as_str(), u.closest.as_deref())).collect();
        assert_eq!(unknown, [("RAPPORT_API_BNID", Some("RAPPORT_API_BIND")), ("RAPPORT_WHATEVER", None)]);
        assert!(config.unknown_variables[0].to_string().contains("did you mean RAPPORT_API_BIND?"));
        for (key, _) in env_overrides() {
            assert!(locate_key(include_str!("../../../config/rapport.example.toml"), key).is_some(), "{key} is not in the example config");
        }
    }

    #[test]
    fn relative_paths_in_the_file_are_the_files_directorys_and_a_variables_the_shells() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rapport.toml");
        std::fs::write(&path, "[plugins.network]\nextra_ca_files = [\"ca.pem\", \"/etc/ca.pem\"]\n").unwrap();
        let config = Config::load_from(Some(&path), &[]).unwrap();
        assert_eq!(config.store.path, dir.path().join("data/rapport"), "the default too");
        assert_eq!(config.plugins.dir, dir.path().join("data/plugins"));
        assert_eq!(config.plugins.network.extra_ca_files, [dir.path().join("ca.pem"), PathBuf::from("/etc/ca.pem")]);
        std::fs::write(&path, "[store]\npath = \"store\"\n").unwrap();
        let config = Config::load_from(Some(&path), &[]).unwrap();
        assert_eq!((config.store.path, config.plugins.dir), (dir.path().join("store"), dir.path().join("plugins")));
        let env = [("RAPPORT_STORE_PATH".to_owned(), "elsewhere/store".to_owned())];
        let config = Config::load_from(Some(&path), &env).unwrap();
        assert_eq!((config.store.path, config.plugins.dir), (PathBuf::from("elsewhere/store"), PathBuf::from("elsewhere/plugins")));
        let config = Config::load_from(None, &[]).unwrap();
        assert_eq!(config.store.path, Path::new("data/rapport"), "without a file, the working directory's");
    }

    #[test]
    fn plugin_limits_are_positive_and_the_directory_sits_beside_the_store() {
        let config = load("[store]\npath = \"/srv/rapport/store\"\n[plugins]\ncpu_budget_ms = 250\n", &[]).unwrap();
        assert_eq!(config.plugins.dir, Path::new("/srv/rapport/plugins"));
        assert_eq!(config.plugins.cpu_budget, Duration::from_millis(250));
        let err = load("[plugins]\nmax_concurrent_runs = 0\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.max_concurrent_runs") && err.contains("positive"), "{err}");
        let err = load("", &[("RAPPORT_PLUGINS_MEMORY_LIMIT_BYTES", "lots")]).unwrap_err().to_string();
        assert!(err.contains("RAPPORT_PLUGINS_MEMORY_LIMIT_BYTES") && err.contains("plugins.memory_limit_bytes"), "{err}");
        let config = load("", &[("RAPPORT_PLUGINS_RUN_TIMEOUT_SECS", "5")]).unwrap();
        assert_eq!(config.plugins.run_timeout, Duration::from_secs(5));
    }

    #[test]
    fn instance_grants_read_secrets_from_the_file_or_the_environment() {
        let text = "[plugins.instances.crm]\nallowed_hosts = [\"https://api.example.com\"]\n\
                    secrets = { token = { env = \"CRM_TOKEN\" }, password = \"hunter22\" }\n";
        // The variable is read when the instance runs, not when the config loads.
        let config = load(text, &[]).unwrap();
        let crm = &config.plugins.instances["crm"];
        let env = |value: &'static str| move |var: &str| (var == "CRM_TOKEN").then(|| value.to_owned());
        assert_eq!(crm.secrets["token"].resolve_in(env("from-the-env")).unwrap().expose(), "from-the-env");
        assert_eq!(crm.secrets["password"].resolve_in(|_| None).unwrap().expose(), "hunter22");
        assert!(!format!("{config:?}").contains("hunter22"), "secrets stay out of Debug output");
        let err = crm.secrets["token"].resolve_in(|_| None).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.crm.secrets.token") && err.contains("CRM_TOKEN is not set"), "{err}");
        let err = crm.secrets["token"].resolve_in(env("abc")).unwrap_err().to_string();
        assert!(err.contains("at least 6 characters"), "{err}");
        let err = load("[plugins.instances.crm]\nallowed_hosts = [\"api.example.com\"]\n", &[]).unwrap_err().to_string();
        assert!(err.contains(":2: key `plugins.instances.crm.allowed_hosts") && err.contains("scheme://host"), "{err}");
        let err = load("[plugins.instances.crm]\nsecrets = { token = 42 }\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.crm.secrets.token") && err.contains("{ env = "), "{err}");
        let err = load("[plugins.instances.crm]\nsecrets = { token = \"abc\" }\n", &[]).unwrap_err().to_string();
        assert!(err.contains("at least 6 characters"), "{err}");
        let err = load("[plugins.instances.crm]\nrate_limit = { requests_per_second = 0 }\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.crm.rate_limit"), "{err}");
        let err = load("[plugins.instances.Crm]\n", &[]).unwrap_err().to_string();
        assert!(err.contains("plugins.instances.Crm"), "{err}");
        let config =
            load("", &[("RAPPORT_PLUGINS_NETWORK_MAX_RETRIES", "0"), ("RAPPORT_PLUGINS_NETWORK_EXTRA_CA_FILES", "/a.pem, /b.pem")])
                .unwrap();
        assert_eq!(config.plugins.network.max_retries, 0);
        assert_eq!(config.plugins.network.extra_ca_files, vec![PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]);
    }

    #[test]
    fn dev_mode_only_on_loopback() {
        let err = load("[api]\nbind = \"0.0.0.0:8080\"\ndev_mode = true\n", &[]).unwrap_err().to_string();
        assert!(err.contains("api.dev_mode"), "{err}");
        assert!(load("[api]\ndev_mode = true\n", &[]).unwrap().api.dev_mode);
    }

    /// The fields the types accept at `table` (a dotted path; `inline` names an inline
    /// table inside it), as serde lists them when refusing an unknown one.
    fn accepted_fields(table: &str, inline: Option<&str>) -> Vec<String> {
        let probe = match inline {
            Some(field) => format!("[{table}]\n{field} = {{ zz_probe = 1 }}\n"),
            None if table.is_empty() => "zz_probe = 1\n".to_owned(),
            None => format!("[{table}]\nzz_probe = 1\n"),
        };
        let err = load(&probe, &[]).unwrap_err().to_string();
        let listed = err.split_once("expected").unwrap_or_else(|| panic!("no field list for {table}: {err}")).1;
        listed.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    }

    #[test]
    fn every_key_the_types_accept_is_documented_in_the_example() {
        let example = include_str!("../../../config/rapport.example.toml");
        // The text of `[table]` in the example, up to the next table header.
        let section = |table: &str| {
            let start = example.find(&format!("[{table}]\n")).unwrap_or_else(|| panic!("the example has no [{table}]"));
            let body = &example[start + table.len() + 3..];
            body.find("\n[").map_or(body, |end| &body[..end])
        };
        // Commented-out keys count: the example shows them with their default.
        let documented =
            |text: &str, field: &str| text.lines().any(|line| line.trim_start_matches(['#', ' ']).starts_with(&format!("{field} =")));
        let documented_inline = |text: &str, field: &str| text.contains(&format!("{field} ="));
        let roots = accepted_fields("", None);
        assert_eq!(roots, ["store", "api", "identity", "import", "records", "signals", "plugins"], "the document's sections");
        let tables = roots.iter().map(String::as_str).chain(["plugins.network", "plugins.instances.crm-eu"]);
        let mut checked = 0;
        for table in tables {
            for field in accepted_fields(table, None) {
                if matches!((table, field.as_str()), ("plugins", "network" | "instances")) {
                    continue; // tables of their own, checked as such
                }
                assert!(documented(section(table), &field), "`{table}.{field}` is accepted but not in config/rapport.example.toml");
                checked += 1;
            }
        }
        for inline in ["rate_limit", "trust"] {
            for field in accepted_fields("plugins.instances.crm-eu", Some(inline)) {
                assert!(documented_inline(section("plugins.instances.crm-eu"), &field), "`{inline}.{field}` is not in the example");
                checked += 1;
            }
        }
        assert!(checked > 40, "every section was probed ({checked} keys)");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/rapport.example.toml");
        let config = Config::load_from(Some(&path), &[]).unwrap();
        assert_eq!(config.api.token_digests.len(), 1);
        assert!(config.identity.internal_domains.contains("northwind.example"));
        assert!(config.identity.free_mail_domains.contains("gmail.com"));
        assert_eq!(config.plugins.max_operations_per_checkpoint, PluginsConfig::with_dir(PathBuf::new()).max_operations_per_checkpoint);
        let crm = &config.plugins.instances["crm-eu"];
        assert_eq!(crm.allowed_hosts[0].to_string(), "https://api.hubapi.com");
        assert_eq!(crm.rate_limit, Some(RateLimit { requests_per_second: 10.0, burst: 20 }));
    }

    #[test]
    fn tokens_are_stored_as_digests() {
        let digest = hex(&token_digest("secret"));
        let config = load(&format!("[api]\ntoken_sha256 = [\"{digest}\"]\n"), &[]).unwrap();
        assert_eq!(config.api.token_digests, vec![token_digest("secret")]);
        assert!(load("[api]\ntoken_sha256 = [\"abc\"]\n", &[]).is_err());
    }
}
