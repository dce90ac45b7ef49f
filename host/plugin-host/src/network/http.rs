//! The `http` host interface: one request in, one whole response out. Every hop of a
//! redirect is authorized like the first URL, names are resolved through the grant's
//! address rule, bodies are capped, each attempt has a deadline, and 429/503 answers are
//! retried after their `Retry-After` (or a capped, jittered exponential backoff).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use tokio::time::Instant;

use super::{Access, Network, RestrictedAddress, admit};
use crate::bindings::{HttpRequest, HttpResponse, NetworkError};
use rapport_net::Origin;
use rapport_net::config::NetworkConfig;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// First backoff when a 429/503 names no `Retry-After`; doubled per retry.
const BASE_BACKOFF: Duration = Duration::from_millis(500);
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/// Plugin-set headers that follow a redirect to another origin; every other one, a
/// credential under any name (`X-Api-Key`, `X-Auth-Token`, …) among them, stays behind.
const CROSS_ORIGIN_HEADERS: &[HeaderName] =
    &[header::ACCEPT, header::ACCEPT_LANGUAGE, header::CONTENT_LANGUAGE, header::CONTENT_TYPE, header::USER_AGENT];

/// Resolves names for the run's HTTP client, dropping restricted addresses no grant
/// names; the check happens where the connection is made, so a name cannot change its
/// answer between a check and the connect.
struct GrantedResolver {
    access: Arc<Access>,
    /// The origin the run is connecting to: a literal-address grant admits its scheme and
    /// port only, and the resolver is told only the name.
    connecting: Arc<std::sync::Mutex<Option<Origin>>>,
}

impl reqwest::dns::Resolve for GrantedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let access = Arc::clone(&self.access);
        let origin = crate::lock(&self.connecting).clone();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed = admit(&access.granted, origin.as_ref(), resolved)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Every message in an error's chain, outermost first.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn restricted_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a RestrictedAddress> {
    let mut source = Some(error);
    while let Some(inner) = source {
        if let Some(restricted) = inner.downcast_ref::<RestrictedAddress>() {
            return Some(restricted);
        }
        source = inner.source();
    }
    None
}

/// What one attempt ended with.
enum Answer {
    /// A redirect to follow.
    Redirect { status: StatusCode, location: HeaderValue },
    /// A rate-limited answer to retry after `wait`.
    Retry { status: StatusCode, wait: Duration },
    /// The response to hand to the plugin.
    Final(HttpResponse),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Self::Redirect { status, .. } | Self::Retry { status, .. } => *status,
            Self::Final(response) => StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK),
        }
    }
}

/// Why an attempt failed.
enum Failure {
    Request(reqwest::Error),
    /// The body passed the limit after `received` bytes.
    TooLarge {
        received: u64,
        limit: u64,
    },
}

/// Sends one request and reads its answer: the body only when it is the plugin's to see.
async fn attempt(request: reqwest::RequestBuilder, config: &NetworkConfig, retries: u32) -> Result<Answer, Failure> {
    let mut response = request.send().await.map_err(Failure::Request)?;
    let status = response.status();
    if status.is_redirection()
        && let Some(location) = response.headers().get(header::LOCATION)
    {
        return Ok(Answer::Redirect { status, location: location.clone() });
    }
    if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        && let Some(wait) = retry_wait(config, response.headers(), retries)
    {
        return Ok(Answer::Retry { status, wait });
    }
    let limit = config.max_response_bytes;
    if response.content_length().is_some_and(|length| length > limit) {
        return Err(Failure::TooLarge { received: 0, limit });
    }
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let url = response.url().to_string();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Failure::Request)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Failure::TooLarge { received: (body.len() + chunk.len()) as u64, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer::Final(HttpResponse { status: status.as_u16(), headers, body, url }))
}

/// How long to wait before retrying a rate-limited answer, or `None` to hand it to the
/// plugin (retries used up, or the remote asks for a longer wait than the host allows).
fn retry_wait(config: &NetworkConfig, headers: &HeaderMap, retries: u32) -> Option<Duration> {
    if retries >= config.max_retries {
        return None;
    }
    let wait = match retry_after(headers) {
        // Never earlier than asked; a little later so that clients told the same instant do
        // not return together.
        Some(asked) => asked + asked.mul_f64(fastrand::f64() * 0.1),
        None => {
            let backoff = BASE_BACKOFF.saturating_mul(1 << retries.min(16)).min(config.max_retry_wait);
            backoff.mul_f64(0.5 + fastrand::f64() * 0.5)
        }
    };
    (wait <= config.max_retry_wait + config.max_retry_wait / 10).then_some(wait)
}

/// Seconds or an HTTP date, as `Retry-After` may say.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

impl Network {
    fn client(&mut self) -> Result<reqwest::Client, NetworkError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*self.shared.tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the daemon's environment would resolve names itself, past the
            // address rule; plugin traffic goes direct.
            .no_proxy()
            .connect_timeout(self.shared.config.connect_timeout)
            .dns_resolver(Arc::new(GrantedResolver { access: Arc::clone(&self.access), connecting: Arc::clone(&self.connecting) }))
            .user_agent(concat!("rapport/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NetworkError::Connect(format!("cannot set up the HTTP client: {}", chain(&e))))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Sends `request`, following redirects and retrying rate-limited answers.
    pub async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, NetworkError> {
        let result = self.exchange(request).await;
        result.map_err(|error| match error {
            NetworkError::Denied(m) => NetworkError::Denied(m),
            NetworkError::Connect(m) => NetworkError::Connect(self.scrub(&m)),
            NetworkError::Timeout(m) => NetworkError::Timeout(self.scrub(&m)),
            NetworkError::InvalidRequest(m) => NetworkError::InvalidRequest(self.scrub(&m)),
            NetworkError::Io(m) => NetworkError::Io(self.scrub(&m)),
            NetworkError::TooLarge(limit) => NetworkError::TooLarge(limit),
        })
    }

    async fn exchange(&mut self, request: HttpRequest) -> Result<HttpResponse, NetworkError> {
        let invalid = NetworkError::InvalidRequest;
        if !METHODS.contains(&request.method.as_str()) {
            return Err(invalid(format!("method `{}` is not one of {}", request.method, METHODS.join(", "))));
        }
        let mut method = Method::from_bytes(request.method.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let mut url = Url::parse(&request.url).map_err(|e| invalid(format!("`{}` is not an absolute URL: {e}", request.url)))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes()).ok().zip(HeaderValue::from_str(value).ok());
            let (name, value) = parsed.ok_or_else(|| invalid(format!("header `{name}` has an invalid name or value")))?;
            if name == header::HOST {
                // A Host of the plugin's choosing would reach another site behind a granted name.
                return Err(invalid("the Host header is the URL's host; set the URL instead".to_owned()));
            }
            headers.append(name, value);
        }
        let mut body = request.body;
        let limit = self.shared.config.request_timeout;
        let timeout = request.timeout_ms.map_or(limit, |ms| Duration::from_millis(ms.into()).min(limit));
        let client = self.client()?;
        let (mut redirects, mut retries) = (0, 0);
        loop {
            let origin = Origin::of_url(&url).ok_or_else(|| invalid(format!("`{url}` is not an http or https URL")))?;
            self.authorize(&origin)?;
            *crate::lock(&self.connecting) = Some(origin.clone());
            self.pace().await;
            self.counters.http_requests += 1;
            self.counters.bytes_sent += body.len() as u64;
            let mut builder = client.request(method.clone(), url.clone()).headers(headers.clone());
            // No body at all (rather than an empty one) lets the request go out in one write.
            if !body.is_empty() {
                builder = builder.body(body.clone());
            }
            // One deadline for the whole attempt, body included: one timer per request.
            let attempt = attempt(builder, &self.shared.config, retries);
            let answer = match tokio::time::timeout_at(Instant::now() + timeout, attempt).await {
                Err(_) => return Err(self.timed_out(&origin, timeout)),
                Ok(Err(failure)) => return Err(self.failed(&origin, failure)),
                Ok(Ok(answer)) => answer,
            };
            let status = answer.status();
            tracing::debug!(method = %method, destination = %self.shown(&origin), status = status.as_u16(), "http request");
            if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
                self.counters.http_rate_limited += 1;
            }
            match answer {
                Answer::Redirect { status, location } => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(NetworkError::Io(format!("{origin} redirected more than {MAX_REDIRECTS} times")));
                    }
                    let next = location.to_str().ok().and_then(|l| url.join(l).ok());
                    let next = next.ok_or_else(|| NetworkError::Io(format!("{origin} redirected to an unreadable location")))?;
                    // Credentials stay with the origin they were meant for, whatever they are called.
                    if Origin::of_url(&next).as_ref() != Some(&origin) {
                        headers = headers
                            .iter()
                            .filter(|(name, _)| CROSS_ORIGIN_HEADERS.contains(name))
                            .map(|(n, v)| (n.clone(), v.clone()))
                            .collect();
                    }
                    if status == StatusCode::SEE_OTHER || (method == Method::POST && matches!(status.as_u16(), 301 | 302)) {
                        method = Method::GET;
                        body.clear();
                        headers.remove(header::CONTENT_TYPE);
                    }
                    url = next;
                }
                Answer::Retry { status, wait } => {
                    retries += 1;
                    self.counters.http_retries += 1;
                    self.counters.wait_ms += u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(destination = %self.shown(&origin), status = status.as_u16(), wait_ms = wait.as_millis(), retry = retries, "rate limited; retrying");
                    tokio::time::sleep(wait).await;
                }
                Answer::Final(response) => {
                    self.counters.bytes_received += response.body.len() as u64;
                    return Ok(response);
                }
            }
        }
    }

    fn timed_out(&self, origin: &Origin, timeout: Duration) -> NetworkError {
        NetworkError::Timeout(format!(
            "{origin} did not answer within {} ms (plugins.network.request_timeout_secs in rapport.toml, or the request's timeout)",
            timeout.as_millis()
        ))
    }

    fn failed(&mut self, origin: &Origin, failure: Failure) -> NetworkError {
        let error = match failure {
            Failure::TooLarge { received, limit } => {
                self.counters.bytes_received += received;
                return NetworkError::TooLarge(limit);
            }
            Failure::Request(error) => error,
        };
        if let Some(restricted) = restricted_cause(&error) {
            let message = self.restricted_message(origin, restricted);
            return self.deny(origin, message);
        }
        // The URL may carry a secret in its query; the origin says enough.
        let connect = error.is_connect();
        let error = chain(&error.without_url());
        if connect {
            NetworkError::Connect(format!("cannot connect to {origin}: {error}"))
        } else {
            NetworkError::Io(format!("{origin}: {error}"))
        }
    }
}
