//! The command line beside a running daemon. `serve` holds the store, so while it runs the
//! read and lifecycle commands go through its HTTP API: it writes the address it listens on
//! into the store's directory, and the commands bring a token (`--token`, or
//! `RAPPORT_TOKEN`) unless it serves in dev mode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The file in the store's directory naming the address of the daemon that holds it.
fn address_file(store: &Path) -> PathBuf {
    store.join("rapport-daemon.json")
}

/// Records where the daemon holding `store` listens; removed again by [`AddressFile`]'s drop.
pub struct AddressFile(PathBuf);

impl AddressFile {
    pub fn write(store: &Path, address: SocketAddr) -> anyhow::Result<Self> {
        let path = address_file(store);
        let text = serde_json::json!({"address": address.to_string(), "pid": std::process::id()}).to_string();
        // Written whole or not at all, so a command never reads half an address.
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for AddressFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The daemon holding a store, spoken to over its API.
pub struct Daemon {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Daemon {
    /// The daemon holding `store`: at the address it wrote there, else at `bind` (the
    /// config's `api.bind`); a wildcard address is reached on loopback.
    pub fn find(store: &Path, bind: SocketAddr, token: Option<String>) -> anyhow::Result<Self> {
        let written = std::fs::read_to_string(address_file(store))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|file| file["address"].as_str()?.parse::<SocketAddr>().ok());
        let mut address = written.unwrap_or(bind);
        if address.ip().is_unspecified() {
            let loopback = if address.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
            address.set_ip(loopback);
        }
        // The daemon is local: a proxy from the environment must not see the token. An
        // install compiles the component in the daemon, which can take minutes for a large one.
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { base: format!("http://{address}"), token, http })
    }

    /// `GET path?query`, its JSON answer read as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        self.call(Method::GET, path, query, None)
    }

    /// A request with an optional JSON body, its JSON answer read as `T` (`()` for none).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().with_context(|| {
            format!(
                "the store is in use and no daemon answers at {} (the address `rapport serve` wrote into the store, or api.bind); \
                 if another command (an import) holds the store, wait for it to end",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().with_context(|| format!("cannot read the answer of {method} {path}"))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the daemon at {} holds the store and refused the request without a valid token: pass --token TOKEN or set \
                 RAPPORT_TOKEN (a token whose digest is in api.token_sha256; `rapport token new` makes one)",
                self.base
            );
        }
        if !status.is_success() {
            bail!("{}", error_message(&text).unwrap_or_else(|| format!("the daemon answered {status} to {method} {path}: {text}")));
        }
        // An empty answer (204) reads as JSON null, which `()` accepts.
        let text = if text.is_empty() { "null" } else { text.as_str() };
        serde_json::from_str(text).with_context(|| format!("the daemon's answer to {method} {path} is not what this CLI expects"))
    }
}

/// The message of the API's error body, with each bad field's path.
fn error_message(text: &str) -> Option<String> {
    let body: Value = serde_json::from_str(text).ok()?;
    let mut message = body["message"].as_str()?.to_owned();
    for detail in body["details"].as_array().into_iter().flatten() {
        message.push_str(&format!("\n  {}: {}", detail["path"].as_str().unwrap_or(""), detail["message"].as_str().unwrap_or("")));
    }
    Some(message)
}
