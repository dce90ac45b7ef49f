//! The guarded egress client against real HTTP servers on 127.0.0.1, with a gate of its
//! own: what webhook delivery will get, without the plugin runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rapport_net::config::NetworkConfig;
use rapport_net::egress::{Egress, EgressError, EgressRequest, Gate, Traffic};
use rapport_net::{HostPattern, Origin};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the server saw it: its request line and lower-cased header lines.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<String>,
}

/// An HTTP/1.1 server answering each request with what `answer` returns (raw response
/// bytes), recording what it was sent.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(answer: impl Fn(usize, &Seen) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (record, answer) = (Arc::clone(&seen), Arc::new(answer));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let (record, answer) = (Arc::clone(&record), Arc::clone(&answer));
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    // One request per connection: the answer closes it.
                    while !head.ends_with(b"\r\n\r\n") {
                        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
                    let seen = Seen { line: lines.next().unwrap().to_owned(), headers: lines.map(str::to_lowercase).collect() };
                    let index = {
                        let mut record = record.lock().unwrap();
                        record.push(seen.clone());
                        record.len() - 1
                    };
                    let _ = socket.write_all(&answer(index, &seen)).await;
                });
            }
        });
        Self { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A gate admitting the origins in `allowed`, recording every origin asked for and every
/// event.
#[derive(Default)]
struct Recorder {
    allowed: Vec<HostPattern>,
    asked: Vec<String>,
    retries: Vec<Duration>,
    sent: u64,
    received: u64,
}

impl Gate for Recorder {
    fn authorize(&mut self, origin: &Origin) -> Result<(), EgressError> {
        self.asked.push(origin.to_string());
        match self.allowed.iter().any(|p| p.matches(origin)) {
            true => Ok(()),
            false => Err(EgressError::Denied(format!("{origin} is not an endpoint"))),
        }
    }

    async fn pace(&mut self) {}

    fn record(&mut self, traffic: Traffic<'_>) {
        match traffic {
            Traffic::Sent { .. } => self.sent += 1,
            Traffic::Retrying { wait, .. } => self.retries.push(wait),
            Traffic::Received { bytes } => self.received += bytes,
            Traffic::Answered { .. } => {}
        }
    }
}

fn patterns(texts: &[String]) -> Vec<HostPattern> {
    texts.iter().map(|t| HostPattern::parse(t).unwrap()).collect()
}

fn egress(config: NetworkConfig, granted: &[String]) -> Egress {
    let tls = rapport_net::tls::client_config(&[]).unwrap();
    Egress::new(config, tls, patterns(granted).into()).unwrap()
}

fn get(url: &str) -> EgressRequest {
    EgressRequest { method: Method::GET, url: Url::parse(url).unwrap(), headers: HeaderMap::new(), body: Vec::new(), timeout: None }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_until_the_address_itself_is_granted() {
    let server = Server::start(|_, _| response("200 OK", &[], b"hello")).await;
    let url = format!("http://localhost:{}/hook", server.port);
    let mut gate = Recorder { allowed: patterns(&[format!("http://localhost:{}", server.port)]), ..Recorder::default() };

    let refused = egress(NetworkConfig::default(), &[]).send(get(&url), &mut gate).await.unwrap_err();
    let EgressError::Restricted { origin, address } = &refused else { panic!("{refused:?}") };
    assert_eq!((origin.to_string(), address.range), (format!("http://localhost:{}", server.port), "loopback"));
    assert!(server.seen().is_empty(), "nothing reached the server");

    let granted = [format!("http://127.0.0.1:{}", server.port)];
    let answer = egress(NetworkConfig::default(), &granted).send(get(&url), &mut gate).await.unwrap();
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(server.seen().len(), 1);
    assert_eq!(gate.received, 5);
}

#[tokio::test]
async fn every_redirect_hop_passes_the_gate_and_credentials_stay_with_their_origin() {
    let target = Server::start(|_, _| response("200 OK", &[], b"moved here")).await;
    let location = format!("location: http://127.0.0.1:{}/new", target.port);
    let first = Server::start(move |_, _| response("307 Temporary Redirect", &[&location], b"")).await;
    let granted = [format!("http://127.0.0.1:{}", first.port), format!("http://127.0.0.1:{}", target.port)];
    let mut request = get(&format!("http://127.0.0.1:{}/old", first.port));
    request.headers.insert("x-api-key", HeaderValue::from_static("k-123"));
    request.headers.insert("accept", HeaderValue::from_static("application/json"));

    // The gate admits only the first origin: the hop is refused before it is sent.
    let mut strict = Recorder { allowed: patterns(&granted[..1]), ..Recorder::default() };
    let refused = egress(NetworkConfig::default(), &granted).send(request.clone(), &mut strict).await.unwrap_err();
    assert!(matches!(&refused, EgressError::Denied(m) if m.contains(&target.port.to_string())), "{refused:?}");
    assert!(target.seen().is_empty());
    assert_eq!(strict.asked, granted.to_vec());

    let mut open = Recorder { allowed: patterns(&granted), ..Recorder::default() };
    let answer = egress(NetworkConfig::default(), &granted).send(request, &mut open).await.unwrap();
    assert_eq!((answer.status, answer.url), (200, format!("http://127.0.0.1:{}/new", target.port)));
    assert!(first.seen()[0].headers.contains(&"x-api-key: k-123".to_owned()), "the first origin gets its credential");
    let followed = &target.seen()[0];
    assert_eq!(followed.line, "GET /new HTTP/1.1");
    assert!(followed.headers.contains(&"accept: application/json".to_owned()), "{followed:?}");
    assert!(!followed.headers.iter().any(|h| h.starts_with("x-api-key")), "the credential stayed behind: {followed:?}");
    assert_eq!(open.sent, 2);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_a_body_over_the_cap_is_refused() {
    let server = Server::start(|index, _| match index {
        0 => response("429 Too Many Requests", &["retry-after: 0"], b""),
        _ => response("200 OK", &[], &[b'x'; 2048]),
    })
    .await;
    let granted = [format!("http://127.0.0.1:{}", server.port)];
    let url = format!("http://127.0.0.1:{}/", server.port);
    let mut gate = Recorder { allowed: patterns(&granted), ..Recorder::default() };

    let small = NetworkConfig { max_response_bytes: 1024, ..NetworkConfig::default() };
    let refused = egress(small, &granted).send(get(&url), &mut gate).await.unwrap_err();
    assert!(matches!(refused, EgressError::TooLarge(1024)), "{refused:?}");
    assert_eq!((gate.sent, gate.retries.len()), (2, 1), "the 429 was retried once");
    assert_eq!(gate.retries, [Duration::ZERO], "Retry-After: 0 asks for no wait");

    let answer = egress(NetworkConfig::default(), &granted).send(get(&url), &mut gate).await.unwrap();
    assert_eq!((answer.status, answer.body.len()), (200, 2048));
}

#[tokio::test]
async fn a_host_header_is_refused_before_anything_is_sent() {
    let server = Server::start(|_, _| response("200 OK", &[], b"")).await;
    let granted = [format!("http://127.0.0.1:{}", server.port)];
    let mut request = get(&format!("http://127.0.0.1:{}/", server.port));
    request.headers.insert("host", HeaderValue::from_static("internal.example"));
    let mut gate = Recorder { allowed: patterns(&granted), ..Recorder::default() };
    let refused = egress(NetworkConfig::default(), &granted).send(request, &mut gate).await.unwrap_err();
    assert!(matches!(&refused, EgressError::Invalid(m) if m.contains("Host header")), "{refused:?}");
    assert!(server.seen().is_empty() && gate.asked.is_empty());
    let answer = egress(NetworkConfig::default(), &granted).send(get(&format!("http://127.0.0.1:{}/", server.port)), &mut gate).await;
    assert_eq!(answer.unwrap().status, 200, "the same request without it goes through");
}
