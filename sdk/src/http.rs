//! Outbound HTTP through the host: only to destinations the plugin's manifest requests and
//! the operator grants. The host follows redirects, paces requests to the instance's rate
//! limit and retries 429/503 answers after their `Retry-After`; an answer it gives up on
//! (a wait longer than the operator allows) comes back, and [`Response::check`] turns it
//! into [`PluginError::RateLimited`], which ends the run with its committed pages kept.
//!
//! ```ignore
//! use rapport_sdk::http::Client;
//!
//! let client = Client::new("https://api.example.com/v3").bearer(&rapport_sdk::secret("api_token").unwrap_or_default());
//! let contacts: Contacts = client.get("/contacts").query("limit", "100").send()?.check()?.json()?;
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::rapport::connector::http as wit;
use crate::{NetworkError, PluginError};

/// Requests sharing a base URL and headers (an API's root and its credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    base: String,
    headers: Vec<(String, String)>,
}

impl Client {
    /// A client for the API under `base` (`https://api.example.com/v3`).
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), headers: Vec::new() }
    }

    /// Adds a header to every request.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A request to `path` under the base URL (an absolute URL is taken as it is, as
    /// paging links often are).
    pub fn request(&self, method: &str, path: &str) -> Request {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        };
        let mut request = Request::new(method, &url);
        request.headers.clone_from(&self.headers);
        request
    }

    /// A `GET` of `path`.
    pub fn get(&self, path: &str) -> Request {
        self.request("GET", path)
    }

    /// A `POST` of `path`.
    pub fn post(&self, path: &str) -> Request {
        self.request("POST", path)
    }
}

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> &str {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    url[authority_start..].find('/').map_or(url, |end| &url[..authority_start + end])
}

/// Percent-encodes a query component (everything but RFC 3986's unreserved characters).
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An HTTP request; build it with [`Request::get`] or [`Request::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with any method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`).
    pub fn new(method: &str, url: &str) -> Self {
        Self { method: method.to_owned(), url: url.to_owned(), headers: Vec::new(), body: Vec::new(), timeout: None }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends `name=value` to the URL's query, percent-encoded.
    #[must_use]
    pub fn query(mut self, name: &str, value: &str) -> Self {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        self.url = format!("{}{separator}{}={}", self.url, encode_component(name), encode_component(value));
        self
    }

    /// Sends `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sets a JSON body and its content type.
    #[must_use]
    pub fn json(self, body: &impl Serialize) -> Self {
        // Serializing plain data into memory cannot fail; a map with non-string keys would.
        let body = serde_json::to_vec(body).unwrap_or_default();
        self.header("content-type", "application/json").body(body)
    }

    /// The URL as it will be sent.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Points the request at `url`: absolute, or a path (`/v3/contacts?page=2`) on the
    /// current URL's origin, as paging links sometimes are.
    pub(crate) fn set_url(&mut self, url: &str) {
        self.url = if url.starts_with('/') { format!("{}{url}", origin(&self.url)) } else { url.to_owned() };
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A shorter time limit than the host's for this request.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response, whatever its status.
    pub fn send(self) -> Result<Response, NetworkError> {
        let timeout_ms = self.timeout.map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
        let request = wit::Request { method: self.method, url: self.url, headers: self.headers, body: self.body, timeout_ms };
        let response = wit::send(&request).map_err(NetworkError::from)?;
        Ok(Response { status: response.status, headers: response.headers, body: response.body, url: response.url })
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in order, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub url: String,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body read as JSON into `T`; a body that does not fit is invalid data, quoted
    /// with the path of the bad field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.body);
        T::deserialize(&mut deserializer)
            .map_err(|err| PluginError::InvalidData(format!("{} answered JSON that does not fit: {err}", self.url)))
    }

    /// Seconds the server asked to wait (`Retry-After` in seconds; a date is not read).
    pub fn retry_after(&self) -> Option<u32> {
        self.header("retry-after").and_then(|value| value.trim().parse().ok())
    }

    /// The response if its status is a success (2xx); otherwise the matching error: 401 and
    /// 403 are [`PluginError::Auth`], 429 and 503 [`PluginError::RateLimited`] (with the
    /// server's `Retry-After`), anything else [`PluginError::Remote`] quoting the body's start.
    pub fn check(self) -> Result<Self, PluginError> {
        match self.status {
            200..=299 => Ok(self),
            401 | 403 => Err(PluginError::Auth(format!("{} answered {}: check the instance's credentials", self.url, self.status))),
            429 | 503 => Err(PluginError::RateLimited(self.retry_after())),
            status => {
                let text = self.text();
                let quoted: String = text.chars().take(200).collect();
                Err(PluginError::Remote(format!("{} answered {status}: {quoted}", self.url)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_the_base_and_query_parts_are_encoded() {
        let client = Client::new("https://api.example.com/v3/").bearer("t0ken");
        let request = client.get("/contacts").query("updated since", "2026-01-01T00:00:00+01:00");
        assert_eq!(request.url(), "https://api.example.com/v3/contacts?updated%20since=2026-01-01T00%3A00%3A00%2B01%3A00");
        assert_eq!(client.get("https://other.example.com/x").url(), "https://other.example.com/x");
        assert_eq!(origin("https://api.example.com:8443/v3/contacts?x=1"), "https://api.example.com:8443");
        assert_eq!(origin("https://api.example.com"), "https://api.example.com");
    }

    #[test]
    fn statuses_become_the_errors_a_run_reports() {
        let response = |status: u16, headers: &[(&str, &str)]| Response {
            status,
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            body: b"{\"error\":\"nope\"}".to_vec(),
            url: "https://api.example.com/x".to_owned(),
        };
        assert!(response(204, &[]).check().is_ok());
        assert!(matches!(response(401, &[]).check(), Err(PluginError::Auth(_))));
        assert_eq!(response(429, &[("Retry-After", "30")]).check(), Err(PluginError::RateLimited(Some(30))));
        assert!(matches!(response(500, &[]).check(), Err(PluginError::Remote(m)) if m.contains("answered 500: {\"error\":\"nope\"}")));
    }
}
