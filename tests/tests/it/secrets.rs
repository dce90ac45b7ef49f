//! A configured secret goes to the remote its plugin instance calls, and nowhere else: not
//! into the daemon's log (at debug level, with the plugin trying to log it, to fail with it,
//! to reach a host named by it, to emit it as an id and a field's name, and to checkpoint
//! it in a cursor), its run records, or any API response.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::harness::{Daemon, rapport};

const SECRET: &str = "e2e-crm-secret-5b7d1e";
const INSTANCE: &str = "probe";

/// A minimal HTTP/1.1 server on 127.0.0.1: answers 200 to `Authorization: Bearer <SECRET>`,
/// 401 otherwise; counts the authorized requests.
fn start_receiver() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/contacts", listener.local_addr().unwrap());
    let authorized = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&authorized);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut ok = false;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                ok |= line.to_ascii_lowercase().starts_with("authorization:") && line.trim_end().ends_with(&format!("Bearer {SECRET}"));
                line.clear();
            }
            if ok {
                count.fetch_add(1, Ordering::SeqCst);
            }
            let (status, body) = if ok { ("200 OK", "welcome") } else { ("401 Unauthorized", "who are you") };
            let _ = write!(&stream, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (url, authorized)
}

/// A listener standing in for a proxy: counts the connections made to it.
fn start_proxy() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, connections)
}

#[test]
fn secrets_never_reach_logs_run_records_or_api_responses() {
    let (url, authorized) = start_receiver();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = dir.path().join("rapport.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.instances.{INSTANCE}]\nallowed_hosts = [\"http://127.0.0.1:*\"]\n\
             secrets = {{ api_token = {{ env = \"PROBE_API_TOKEN\" }} }}\n"
        ),
    )
    .unwrap();
    let steps = json!({"steps": [
        {"id": "auth", "http": {"method": "GET", "url": url, "bearer_secret": "api_token"}},
        {"id": "leak-to-log", "secret": "api_token"},
        {"id": "plant", "plant_secret": "api_token"},
        {"id": "leak-to-error", "fail_with_secret": "api_token"},
    ]});
    let install = rapport(&store)
        .env("PROBE_API_TOKEN", SECRET)
        .arg("--config")
        .arg(&config)
        .args(["plugin", "install"])
        .arg(rapport_fixtures::package("net-probe"))
        .args(["--instance", INSTANCE, "--instance-config", &steps.to_string()])
        .output()
        .unwrap();
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));

    let log_path = dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = rapport(&store);
    command.env("PROBE_API_TOKEN", SECRET).env("RUST_LOG", "debug").arg("--config").arg(&config).arg("serve").stderr(log);
    // A proxy in the daemon's environment would resolve names past the address rule:
    // plugin traffic must not go through it.
    let proxied = start_proxy();
    for var in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
        command.env(var, format!("http://{}", proxied.0));
    }
    command.env_remove("no_proxy").env_remove("NO_PROXY");
    let daemon = Daemon::spawn(&mut command, "rapport listening on ");
    let id = daemon.start_run(INSTANCE);
    let run = daemon.wait_for_run(INSTANCE, &id, |r| r["status"] != "running");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failure"]["error"]["kind"], "auth", "{run}");
    assert_eq!(authorized.load(Ordering::SeqCst), 1, "the remote should have seen the secret once");
    assert_eq!(proxied.1.load(Ordering::SeqCst), 0, "a plugin request went through the environment's proxy");
    // The planted copies arrived, so their absence below is the host's doing.
    assert_eq!(run["operations_skipped"], 2, "{run}");
    assert_eq!(run["network"]["denied"], 1, "{run}");
    assert_eq!(run["cursor"], "cursor-[redacted]", "{run}");

    let mut responses = vec![run.to_string()];
    let paths = [
        "/v1/plugins",
        &format!("/v1/plugins/{INSTANCE}/runs"),
        &format!("/v1/plugins/{INSTANCE}/runs/{id}"),
        &format!("/v1/plugins/{INSTANCE}/runs/{id}/logs"),
        "/v1/organizations/search?q=fingerprint",
        "/v1/stats",
        "/metrics",
    ];
    for path in paths {
        let (status, body) = daemon.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        responses.push(body);
    }
    let stored_log = &responses[4];
    assert!(stored_log.contains("using secret") && stored_log.contains("[redacted]"), "the run's stored log: {stored_log}");
    let metrics = responses.last().unwrap();
    assert!(metrics.contains(r#"rapport_plugin_network_total{instance="probe",event="http_request"} 1"#), "{metrics}");
    daemon.stop();

    for response in &responses {
        assert!(!response.contains(SECRET), "an API response holds the secret: {response}");
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("plugin_run") && log.contains("[redacted]"),
        "the plugin's attempt to log the secret should be in the log, cut:\n{log}"
    );
    let leaks: Vec<&str> = log.lines().filter(|line| line.contains(SECRET)).collect();
    assert!(leaks.is_empty(), "the daemon's log holds the secret:\n{}", leaks.join("\n"));
}
