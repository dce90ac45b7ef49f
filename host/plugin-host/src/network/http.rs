//! The `http` host interface: one request in, one whole response out, through the guarded
//! client of `rapport_net::egress`. Here the plugin's request is read, each hop is checked
//! against the manifest and the grant, the instance's rate limit paces the attempts, the
//! run's counters are kept, and errors reach the plugin with its secrets cut out.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::Network;
use crate::bindings::{HttpRequest, HttpResponse, NetworkError};
use rapport_net::Origin;
use rapport_net::egress::{Egress, EgressError, EgressRequest, Gate, Traffic};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

impl Gate for Network {
    fn authorize(&mut self, origin: &Origin) -> Result<(), EgressError> {
        self.check(origin).map_err(EgressError::Denied)
    }

    async fn pace(&mut self) {
        self.wait_for_rate_limit().await;
    }

    fn record(&mut self, traffic: Traffic<'_>) {
        match traffic {
            Traffic::Sent { bytes, .. } => {
                self.counters.http_requests += 1;
                self.counters.bytes_sent += bytes;
            }
            Traffic::Answered { origin, status } => {
                tracing::debug!(destination = %self.shown(origin), status, "http request");
                if matches!(StatusCode::from_u16(status), Ok(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)) {
                    self.counters.http_rate_limited += 1;
                }
            }
            Traffic::Retrying { origin, status, wait, retry } => {
                self.counters.http_retries += 1;
                self.counters.wait_ms += u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                tracing::info!(destination = %self.shown(origin), status, wait_ms = wait.as_millis(), retry, "rate limited; retrying");
            }
            Traffic::Received { bytes } => self.counters.bytes_received += bytes,
        }
    }
}

/// The plugin's request as the client takes it.
fn read_request(request: HttpRequest) -> Result<EgressRequest, NetworkError> {
    let invalid = NetworkError::InvalidRequest;
    if !METHODS.contains(&request.method.as_str()) {
        return Err(invalid(format!("method `{}` is not one of {}", request.method, METHODS.join(", "))));
    }
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let url = Url::parse(&request.url).map_err(|e| invalid(format!("`{}` is not an absolute URL: {e}", request.url)))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let parsed = HeaderName::from_bytes(name.as_bytes()).ok().zip(HeaderValue::from_str(value).ok());
        let (name, value) = parsed.ok_or_else(|| invalid(format!("header `{name}` has an invalid name or value")))?;
        headers.append(name, value);
    }
    let timeout = request.timeout_ms.map(|ms| Duration::from_millis(ms.into()));
    Ok(EgressRequest { method, url, headers, body: request.body, timeout })
}

impl Network {
    /// The run's client, built on the first request (most runs of most plugins make none
    /// until they sync, and `describe` makes none).
    fn egress(&mut self) -> Result<Egress, NetworkError> {
        if let Some(egress) = self.egress.take() {
            return Ok(egress);
        }
        let granted = self.access.granted.iter().cloned().collect();
        Egress::new(self.shared.config.clone(), std::sync::Arc::clone(&self.shared.tls), granted)
            .map_err(|e| NetworkError::Connect(e.to_string()))
    }

    /// Sends `request`, following redirects and retrying rate-limited answers.
    pub async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, NetworkError> {
        let request = read_request(request).map_err(|e| self.scrubbed(e))?;
        let mut egress = self.egress()?;
        let answer = egress.send(request, self).await;
        self.egress = Some(egress);
        match answer {
            Ok(response) => Ok(HttpResponse { status: response.status, headers: response.headers, body: response.body, url: response.url }),
            Err(error) => Err(self.plugin_error(error)),
        }
    }

    /// The client's error as the plugin sees it: what to change in a refusal, the setting
    /// behind a timeout, and no secrets.
    fn plugin_error(&mut self, error: EgressError) -> NetworkError {
        let error = match error {
            EgressError::Denied(message) => return NetworkError::Denied(message),
            EgressError::Restricted { origin, address } => {
                let message = self.restricted_message(&origin, &address);
                return self.deny(&origin, message);
            }
            EgressError::TooLarge(limit) => return NetworkError::TooLarge(limit),
            EgressError::Timeout { .. } => {
                NetworkError::Timeout(format!("{error} (plugins.network.request_timeout_secs in rapport.toml, or the request's timeout)"))
            }
            EgressError::Invalid(message) => NetworkError::InvalidRequest(message),
            EgressError::Connect(message) => NetworkError::Connect(message),
            EgressError::Io(message) => NetworkError::Io(message),
        };
        self.scrubbed(error)
    }

    fn scrubbed(&self, error: NetworkError) -> NetworkError {
        match error {
            NetworkError::Connect(m) => NetworkError::Connect(self.scrub(&m)),
            NetworkError::Timeout(m) => NetworkError::Timeout(self.scrub(&m)),
            NetworkError::InvalidRequest(m) => NetworkError::InvalidRequest(self.scrub(&m)),
            NetworkError::Io(m) => NetworkError::Io(self.scrub(&m)),
            kept @ (NetworkError::Denied(_) | NetworkError::TooLarge(_)) => kept,
        }
    }
}
