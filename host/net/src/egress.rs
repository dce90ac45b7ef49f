//! The one guarded HTTP client for requests the daemon makes on someone else's behalf (a
//! plugin's sync now, a webhook delivery next). Every hop of a redirect is authorized like
//! the first URL, names are resolved through the address rule where the connection is
//! made (so a name cannot change its answer between a check and the connect), bodies are
//! capped, each attempt has one deadline, and 429/503 answers are retried after their
//! `Retry-After` (or a capped, jittered exponential backoff).
//!
//! Who may be reached is the caller's business: a [`Gate`] authorizes each origin, paces
//! the attempts and counts what happened.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use tokio::time::Instant;

use crate::address::{RestrictedAddress, admit};
use crate::config::NetworkConfig;
use crate::{HostPattern, Origin};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// First backoff when a 429/503 names no `Retry-After`; doubled per retry.
const BASE_BACKOFF: Duration = Duration::from_millis(500);
/// Caller-set headers that follow a redirect to another origin; every other one, a
/// credential under any name (`X-Api-Key`, `X-Auth-Token`, …) among them, stays behind.
const CROSS_ORIGIN_HEADERS: &[HeaderName] =
    &[header::ACCEPT, header::ACCEPT_LANGUAGE, header::CONTENT_LANGUAGE, header::CONTENT_TYPE, header::USER_AGENT];

/// One request.
#[derive(Debug, Clone)]
pub struct EgressRequest {
    /// The method.
    pub method: Method,
    /// The absolute `http` or `https` URL.
    pub url: Url,
    /// Headers; `Host` is refused (it is the URL's).
    pub headers: HeaderMap,
    /// The body; empty sends none.
    pub body: Vec<u8>,
    /// The deadline of each attempt, body included; capped by the configured limit.
    pub timeout: Option<Duration>,
}

/// The final answer, its body whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressResponse {
    /// The status code.
    pub status: u16,
    /// Headers in the order received, values read as (lossy) UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub url: String,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The [`Gate`] refused an origin.
    #[error("{0}")]
    Denied(String),
    /// The origin resolves only to restricted addresses no grant names.
    #[error("{origin} is not allowed: {address}")]
    Restricted {
        /// The origin asked for.
        origin: Origin,
        /// The first refused address.
        address: RestrictedAddress,
    },
    /// The request cannot be sent as given.
    #[error("{0}")]
    Invalid(String),
    /// No connection could be made.
    #[error("{0}")]
    Connect(String),
    /// An attempt passed its deadline.
    #[error("{origin} did not answer within {} ms", after.as_millis())]
    Timeout {
        /// The destination.
        origin: Origin,
        /// The deadline it passed.
        after: Duration,
    },
    /// The exchange failed midway, or the remote redirected too often.
    #[error("{0}")]
    Io(String),
    /// The response body is larger than the limit (bytes).
    #[error("the response body is larger than {0} bytes")]
    TooLarge(u64),
}

/// What happened during a request, for the caller's counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic<'a> {
    /// An attempt went out with a body of `bytes`.
    Sent {
        /// The destination.
        origin: &'a Origin,
        /// Body bytes.
        bytes: u64,
    },
    /// An attempt was answered (before any body was read).
    Answered {
        /// The destination.
        origin: &'a Origin,
        /// The status.
        status: u16,
    },
    /// A 429/503 answer is retried after `wait`.
    Retrying {
        /// The destination.
        origin: &'a Origin,
        /// The status.
        status: u16,
        /// The wait.
        wait: Duration,
        /// Which retry this is (1 for the first).
        retry: u32,
    },
    /// Body bytes read, of the final answer or of one cut at the limit.
    Received {
        /// Body bytes.
        bytes: u64,
    },
}

/// The caller's side of a request: who may be reached and at what pace.
pub trait Gate: Send {
    /// Called for the first URL and every redirect hop; an error ends the request.
    fn authorize(&mut self, origin: &Origin) -> Result<(), EgressError>;

    /// Called before every attempt: waits for the caller's rate limit, if it has one.
    fn pace(&mut self) -> impl Future<Output = ()> + Send;

    /// Told what happened.
    fn record(&mut self, traffic: Traffic<'_>);
}

/// Resolves names for the client, dropping restricted addresses no grant names.
struct GrantedResolver {
    granted: Arc<[HostPattern]>,
    /// The origin being connected to: a literal-address grant admits its scheme and port
    /// only, and the resolver is told only the name.
    connecting: Arc<Mutex<Option<Origin>>>,
}

impl reqwest::dns::Resolve for GrantedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let granted = Arc::clone(&self.granted);
        let origin = self.connecting.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed = admit(&granted, origin.as_ref(), resolved)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The guarded client. One request at a time (`send` takes `&mut self`: the resolver is
/// told which origin is being connected to); make one per concurrent sender. Connections
/// are pooled across its requests.
#[derive(Debug)]
pub struct Egress {
    client: reqwest::Client,
    config: NetworkConfig,
    connecting: Arc<Mutex<Option<Origin>>>,
}

impl Egress {
    /// A client trusting `tls`, reaching restricted addresses only where `granted` names
    /// them literally, with the limits of `config`.
    pub fn new(config: NetworkConfig, tls: Arc<rustls::ClientConfig>, granted: Arc<[HostPattern]>) -> Result<Self, EgressError> {
        let connecting = Arc::default();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the daemon's environment would resolve names itself, past the
            // address rule; this traffic goes direct.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .dns_resolver(Arc::new(GrantedResolver { granted, connecting: Arc::clone(&connecting) }))
            .user_agent(concat!("rapport/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EgressError::Connect(format!("cannot set up the HTTP client: {}", chain(&e))))?;
        Ok(Self { client, config, connecting })
    }

    /// Sends `request`, following redirects (each hop authorized by `gate`, credentials
    /// kept from other origins) and retrying rate-limited answers.
    pub async fn send(&mut self, request: EgressRequest, gate: &mut impl Gate) -> Result<EgressResponse, EgressError> {
        let EgressRequest { mut method, mut url, mut headers, mut body, timeout } = request;
        if headers.contains_key(header::HOST) {
            // A Host of the caller's choosing would reach another site behind a granted name.
            return Err(EgressError::Invalid("the Host header is the URL's host; set the URL instead".to_owned()));
        }
        let limit = self.config.request_timeout;
        let timeout = timeout.map_or(limit, |asked| asked.min(limit));
        let (mut redirects, mut retries) = (0, 0);
        loop {
            let origin = Origin::of_url(&url).ok_or_else(|| EgressError::Invalid(format!("`{url}` is not an http or https URL")))?;
            gate.authorize(&origin)?;
            *self.connecting.lock().unwrap_or_else(PoisonError::into_inner) = Some(origin.clone());
            gate.pace().await;
            gate.record(Traffic::Sent { origin: &origin, bytes: body.len() as u64 });
            let mut builder = self.client.request(method.clone(), url.clone()).headers(headers.clone());
            // No body at all (rather than an empty one) lets the request go out in one write.
            if !body.is_empty() {
                builder = builder.body(body.clone());
            }
            // One deadline for the whole attempt, body included: one timer per request.
            let attempt = attempt(builder, &self.config, retries);
            let answer = match tokio::time::timeout_at(Instant::now() + timeout, attempt).await {
                Err(_) => return Err(EgressError::Timeout { origin, after: timeout }),
                Ok(Err(failure)) => return Err(failed(&origin, failure, gate)),
                Ok(Ok(answer)) => answer,
            };
            gate.record(Traffic::Answered { origin: &origin, status: answer.status().as_u16() });
            match answer {
                Answer::Redirect { status, location } => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(EgressError::Io(format!("{origin} redirected more than {MAX_REDIRECTS} times")));
                    }
                    let next = location.to_str().ok().and_then(|l| url.join(l).ok());
                    let next = next.ok_or_else(|| EgressError::Io(format!("{origin} redirected to an unreadable location")))?;
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
                    gate.record(Traffic::Retrying { origin: &origin, status: status.as_u16(), wait, retry: retries });
                    tokio::time::sleep(wait).await;
                }
                Answer::Final(response) => {
                    gate.record(Traffic::Received { bytes: response.body.len() as u64 });
                    return Ok(response);
                }
            }
        }
    }
}

/// What one attempt ended with.
enum Answer {
    /// A redirect to follow.
    Redirect { status: StatusCode, location: HeaderValue },
    /// A rate-limited answer to retry after `wait`.
    Retry { status: StatusCode, wait: Duration },
    /// The response to hand over.
    Final(EgressResponse),
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

/// Sends one request and reads its answer: the body only when it is the caller's to see.
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
    Ok(Answer::Final(EgressResponse { status: status.as_u16(), headers, body, url }))
}

/// How long to wait before retrying a rate-limited answer, or `None` to hand it over
/// (retries used up, or the remote asks for a longer wait than allowed).
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

/// The wait a `Retry-After` header asks for: seconds or an HTTP date (a date in the past
/// is no wait).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

fn failed(origin: &Origin, failure: Failure, gate: &mut impl Gate) -> EgressError {
    let error = match failure {
        Failure::TooLarge { received, limit } => {
            gate.record(Traffic::Received { bytes: received });
            return EgressError::TooLarge(limit);
        }
        Failure::Request(error) => error,
    };
    if let Some(restricted) = restricted_cause(&error) {
        return EgressError::Restricted { origin: origin.clone(), address: restricted.clone() };
    }
    // The URL may carry a secret in its query; the origin says enough.
    let connect = error.is_connect();
    let error = chain(&error.without_url());
    if connect {
        EgressError::Connect(format!("cannot connect to {origin}: {error}"))
    } else {
        EgressError::Io(format!("{origin}: {error}"))
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
