//! Outbound HTTP through the host: only to destinations the plugin's manifest requests and
//! the operator grants. The host follows redirects, paces requests and retries 429/503.
//!
//! ```ignore
//! let response = rapport_sdk::http::Request::get("https://api.example.com/v3/contacts")
//!     .header("authorization", &format!("Bearer {}", rapport_sdk::secret("api_token").unwrap_or_default()))
//!     .send()?;
//! ```

use std::time::Duration;

use crate::NetworkError;
use crate::bindings::rapport::connector::http as wit;

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
}
