//! The remote systems plugins talk to, as real servers on 127.0.0.1 with their own runtime:
//! an HTTP API that records when each request arrived (and holds `/gate/<name>` requests
//! until the test opens that gate), and line-echo servers over plain TCP, TLS and STARTTLS
//! with a certificate from a CA made for the test.

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustls_pki_types::PrivateKeyDer;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The servers, stopped with their runtime on drop.
pub struct Remote {
    /// The HTTP API, `http://127.0.0.1:<port>`.
    pub http: String,
    pub http_port: u16,
    pub plain_echo: SocketAddr,
    pub tls_echo: SocketAddr,
    pub starttls_echo: SocketAddr,
    /// The test CA's certificate, PEM.
    pub ca_pem: String,
    hits: Arc<Hits>,
    gates: tokio::sync::watch::Sender<HashSet<String>>,
    _runtime: tokio::runtime::Runtime,
}

/// Each HTTP request's path and arrival time, in arrival order; waiters are woken on each.
#[derive(Default)]
struct Hits {
    list: Mutex<Vec<(String, Instant)>>,
    arrived: Condvar,
}

#[derive(Clone)]
struct Api {
    hits: Arc<Hits>,
    /// The gates opened so far.
    gates: tokio::sync::watch::Receiver<HashSet<String>>,
    /// Rate-limited keys already answered 429 once.
    limited: Arc<Mutex<HashMap<String, u32>>>,
    bearer: String,
}

impl Remote {
    /// Starts every server; `/auth` accepts `Authorization: Bearer <bearer>` only.
    pub fn start(bearer: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let hits = Arc::new(Hits::default());
        let (gates, opened) = tokio::sync::watch::channel(HashSet::new());
        let api = Api { hits: Arc::clone(&hits), gates: opened, limited: Arc::default(), bearer: bearer.to_owned() };
        let (ca_pem, acceptor) = test_ca();
        let (http, plain_echo, tls_echo, starttls_echo) = runtime.block_on(async {
            let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let starttls = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addresses =
                (http.local_addr().unwrap(), plain.local_addr().unwrap(), tls.local_addr().unwrap(), starttls.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(http, router(api)).await.unwrap() });
            tokio::spawn(serve_echo(plain, None, false));
            tokio::spawn(serve_echo(tls, Some(acceptor.clone()), false));
            tokio::spawn(serve_echo(starttls, Some(acceptor), true));
            addresses
        });
        Self {
            http: format!("http://{http}"),
            http_port: http.port(),
            plain_echo,
            tls_echo,
            starttls_echo,
            ca_pem,
            hits,
            gates,
            _runtime: runtime,
        }
    }

    /// Arrival times of the requests whose path starts with `prefix`.
    pub fn arrivals(&self, prefix: &str) -> Vec<Instant> {
        self.hits.list.lock().unwrap().iter().filter(|(path, _)| path.starts_with(prefix)).map(|(_, at)| *at).collect()
    }

    /// The paths of every request so far, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.hits.list.lock().unwrap().iter().map(|(path, _)| path.clone()).collect()
    }

    /// Blocks until `count` requests whose path starts with `prefix` have arrived.
    pub fn wait_for(&self, prefix: &str, count: usize) {
        let arrived = |list: &Vec<(String, Instant)>| list.iter().filter(|(path, _)| path.starts_with(prefix)).count() >= count;
        let list = self.hits.list.lock().unwrap();
        let (_list, waited) = self.hits.arrived.wait_timeout_while(list, Duration::from_secs(60), |list| !arrived(list)).unwrap();
        assert!(!waited.timed_out(), "{count} requests to {prefix} did not arrive within a minute");
    }

    /// Lets the requests held at `/gate/<name>`, and every later one, through.
    pub fn open(&self, name: &str) {
        self.gates.send_modify(|open| {
            open.insert(name.to_owned());
        });
    }
}

fn router(api: Api) -> axum::Router {
    axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/headers", get(|headers: HeaderMap| async move { echo_headers(&headers) }))
        .route("/redirect", get(|Query(q): Query<HashMap<String, String>>| async move { redirect(&q["to"]) }))
        .route("/big", get(|Query(q): Query<HashMap<String, usize>>| async move { "x".repeat(q["bytes"]) }))
        .route("/chunked", get(chunked))
        .route("/never", get(std::future::pending::<&'static str>))
        .route("/paced", get(|| async { "ok" }))
        .route("/limited/{key}", get(limited))
        .route("/auth", get(auth))
        .route("/gate/{name}", get(gate))
        .layer(axum::middleware::from_fn_with_state(api.clone(), record))
        .with_state(api)
}

async fn record(State(api): State<Api>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    api.hits.list.lock().unwrap().push((request.uri().to_string(), Instant::now()));
    api.hits.arrived.notify_all();
    next.run(request).await
}

/// Answers once the test opened the gate `name`.
async fn gate(State(mut api): State<Api>, Path(name): Path<String>) -> &'static str {
    let _ = api.gates.wait_for(|open| open.contains(&name)).await;
    "open"
}

/// `bytes` bytes in chunks of 100, with no Content-Length: the reader finds out the size
/// only by reading.
async fn chunked(Query(q): Query<HashMap<String, usize>>) -> Response {
    let chunks = (0..q["bytes"].div_ceil(100)).map(move |i| Ok::<_, std::convert::Infallible>("x".repeat(100.min(q["bytes"] - i * 100))));
    axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_response()
}

/// The request's headers, one `name: value` per line, names in lower case.
fn echo_headers(headers: &HeaderMap) -> String {
    headers.iter().map(|(name, value)| format!("{name}: {}\n", value.to_str().unwrap_or("?"))).collect()
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

/// Answers 429 with `Retry-After: <retry_after>` the first time a key is asked, then 200.
async fn limited(State(api): State<Api>, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let first = {
        let mut limited = api.limited.lock().unwrap();
        let count = limited.entry(key).or_insert(0);
        *count += 1;
        *count == 1
    };
    if first {
        let retry_after = q.get("retry_after").cloned().unwrap_or_else(|| "1".to_owned());
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry_after)], "slow down").into_response();
    }
    "ok".into_response()
}

async fn auth(State(api): State<Api>, headers: HeaderMap) -> Response {
    let expected = format!("Bearer {}", api.bearer);
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str()) {
        "welcome".into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "who are you").into_response()
    }
}

/// A CA and a server certificate it signed for `localhost` and 127.0.0.1.
fn test_ca() -> (String, tokio_rustls::TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Rapport test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::from(key))
        .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Echoes each line back. With `starttls`, a `STARTTLS` line is answered `OK` and the
/// connection switches to TLS; otherwise TLS (if any) starts with the connection.
async fn serve_echo(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, starttls: bool) {
    loop {
        let Ok((socket, _)) = listener.accept().await else { return };
        let tls = tls.clone();
        tokio::spawn(async move {
            match (tls, starttls) {
                (None, _) => echo(socket).await,
                (Some(acceptor), false) => {
                    if let Ok(stream) = acceptor.accept(socket).await {
                        echo(stream).await;
                    }
                }
                (Some(acceptor), true) => {
                    let mut plain = BufReader::new(socket);
                    let mut line = String::new();
                    if plain.read_line(&mut line).await.is_ok() && line.trim() == "STARTTLS" {
                        let mut socket = plain.into_inner();
                        if socket.write_all(b"OK begin TLS\n").await.is_ok()
                            && let Ok(stream) = acceptor.accept(socket).await
                        {
                            echo(stream).await;
                        }
                    }
                }
            }
        });
    }
}

async fn echo(stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    while matches!(stream.read_line(&mut line).await, Ok(n) if n > 0) {
        if stream.get_mut().write_all(line.as_bytes()).await.is_err() {
            return;
        }
        let _ = stream.get_mut().flush().await;
        line.clear();
    }
}
