//! Network capability benchmark, against servers on 127.0.0.1 started by this process:
//! N small GETs (default 10k) through a plugin's `http` host call against the same GETs
//! made directly with reqwest, and TCP echo throughput through a plugin's stream against a
//! direct socket. Both sides run as tasks on the runtime's workers, as the daemon runs
//! syncs; they alternate for a few rounds and the best round of each counts, since the
//! machine is shared. Prints its figures; asserts nothing.
//!
//! Run with `cargo xtask bench --bench network`; `RAPPORT_BENCH_GETS` changes the 10k.

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use rapport_net::HostPattern;
use rapport_plugin_host::config::InstanceGrant;
use serde_json::json;
use support::{peak_rss_mb, setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 5;
const TCP_BYTES: u64 = 64 << 20;
const TCP_CHUNK: usize = 64 << 10;

fn gets() -> u64 {
    std::env::var("RAPPORT_BENCH_GETS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// An HTTP server answering `/small` with two bytes, and a TCP echo server.
fn start_servers(runtime: &tokio::runtime::Runtime) -> (String, u16) {
    runtime.block_on(async {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addresses = (format!("http://{}/small", http.local_addr().unwrap()), echo.local_addr().unwrap().port());
        let app = axum::Router::new().route("/small", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(http, app).await.unwrap() });
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buffer = vec![0; TCP_CHUNK];
                    while let Ok(n @ 1..) = socket.read(&mut buffer).await {
                        if socket.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addresses
    })
}

async fn direct_gets(url: String, n: u64) -> f64 {
    let client = reqwest::Client::new();
    let started = Instant::now();
    for _ in 0..n {
        let body = client.get(&url).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(&body[..], b"ok");
    }
    started.elapsed().as_secs_f64()
}

/// The same ping-pong as the plugin's `tcp_blast`: a chunk out, the chunk back.
async fn direct_blast(port: u16) -> f64 {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let chunk = vec![b'x'; TCP_CHUNK];
    let mut back = vec![0; TCP_CHUNK];
    let started = Instant::now();
    for _ in 0..TCP_BYTES / TCP_CHUNK as u64 {
        socket.write_all(&chunk).await.unwrap();
        socket.read_exact(&mut back).await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    let n = gets();
    let servers = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (url, echo_port) = start_servers(&servers);
    let grant = InstanceGrant {
        allowed_hosts: ["http://127.0.0.1:*", "tcp://127.0.0.1:*"].iter().map(|p| HostPattern::parse(p).unwrap()).collect(),
        ..InstanceGrant::default()
    };
    let setup = setup(|config| {
        config.instances.insert("gets".to_owned(), grant.clone());
        config.instances.insert("blast".to_owned(), grant);
    });
    setup.install("net-probe", "gets", json!({"steps": [{"id": "gets", "gets": {"url": url, "count": n}}]}));
    let blast = json!({"host": "127.0.0.1", "port": echo_port, "bytes": TCP_BYTES, "chunk": TCP_CHUNK});
    setup.install("net-probe", "blast", json!({"steps": [{"id": "blast", "tcp_blast": blast}]}));

    let (mut direct, mut hosted) = (f64::MAX, f64::MAX);
    let (mut socket, mut stream) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        direct = direct.min(setup.on_workers(direct_gets(url.clone(), n)));
        let (record, seconds) = setup.timed_run("gets");
        assert_eq!(record.network.http_requests, n);
        hosted = hosted.min(seconds);
        socket = socket.min(setup.on_workers(direct_blast(echo_port)));
        let (record, seconds) = setup.timed_run("blast");
        assert_eq!(record.network.bytes_received, TCP_BYTES);
        stream = stream.min(seconds);
    }
    let per_get = |seconds: f64| seconds * 1e6 / n as f64;
    let mb_s = |seconds: f64| TCP_BYTES as f64 / (1 << 20) as f64 / seconds;
    println!("network: {n} small GETs to 127.0.0.1, best of {ROUNDS} rounds");
    println!("  direct reqwest        {:>8.1} µs per GET", per_get(direct));
    println!("  through a plugin      {:>8.1} µs per GET (the whole run: instantiate, calls, commit)", per_get(hosted));
    println!("  ratio, plugin/direct  {:>8.2} (target <= 1.2)", hosted / direct);
    println!("network: TCP echo of {} MiB in {} KiB chunks, best of {ROUNDS} rounds", TCP_BYTES >> 20, TCP_CHUNK >> 10);
    println!("  direct socket         {:>8.0} MB/s", mb_s(socket));
    println!("  through a plugin      {:>8.0} MB/s", mb_s(stream));
    println!("  ratio, plugin/direct  {:>8.2}", mb_s(stream) / mb_s(socket));
    println!("  peak RSS              {:>8.0} MB", peak_rss_mb());
}
