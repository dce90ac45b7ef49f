//! Plugins' network capabilities, with the real `net-probe` component against real servers
//! on 127.0.0.1 (`remote.rs`): grants from manifest and config, the private-address rule,
//! redirects, body caps, timeouts, `Retry-After`, the token bucket, TCP with TLS, secrets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rapport_core::Secret;
use rapport_graph::model::RecordKind;
use rapport_net::HostPattern;
use rapport_plugin_host::InstallOptions;
use rapport_plugin_host::config::InstanceGrant;
use rapport_plugin_host::config::PluginsConfig;
use rapport_plugin_host::config::RateLimit;
use rapport_plugin_host::config::SecretSource;
use rapport_plugin_host::registry::{RunFailure, RunRecord, RunStatus, Trigger};
use serde_json::{Value, json};

use crate::harness::{TOKEN, TestServer};
use crate::remote::Remote;

const SECRET: &str = "crm-secret-7f3a9c";

fn grant(hosts: &[&str]) -> InstanceGrant {
    InstanceGrant { allowed_hosts: hosts.iter().map(|h| HostPattern::parse(h).unwrap()).collect(), ..InstanceGrant::default() }
}

fn server(grants: Vec<(&str, InstanceGrant)>, configure: impl FnOnce(&mut PluginsConfig)) -> TestServer {
    TestServer::with_plugin_limits(|config| {
        config.instances = grants.into_iter().map(|(name, grant)| (name.to_owned(), grant)).collect();
        configure(config);
    })
}

/// Installs `net-probe` as `instance` with `steps`, runs it, and returns the run and each
/// step's recorded outcome by step id.
fn probe(server: &TestServer, instance: &str, steps: Value) -> (RunRecord, HashMap<String, Value>) {
    let options = InstallOptions { instance: Some(instance.to_owned()), config: Some(json!({ "steps": steps })) };
    server.runtime.block_on(server.plugins.install(&rapport_fixtures::package("net-probe"), options)).unwrap();
    let record = server.runtime.block_on(server.plugins.run(instance, Trigger::Cli, |_| {})).unwrap();
    let mut outcomes = HashMap::new();
    for step in steps.as_array().unwrap() {
        let id = step["id"].as_str().unwrap();
        if let Some(node) = server.graph.resolve(instance, RecordKind::Organization, id).unwrap() {
            outcomes.insert(id.to_owned(), serde_json::from_str(&server.graph.organization(node).unwrap().name).unwrap());
        }
    }
    (record, outcomes)
}

/// [`probe`], for steps that must not fail the run.
fn probe_ok(server: &TestServer, instance: &str, steps: Value) -> (RunRecord, HashMap<String, Value>) {
    let (record, outcomes) = probe(server, instance, steps);
    assert_eq!(record.status, RunStatus::Succeeded, "{record:#?}");
    (record, outcomes)
}

fn get(url: String) -> Value {
    json!({ "method": "GET", "url": url })
}

/// The outcome's error kind and message.
fn error(outcome: &Value) -> (&str, &str) {
    (outcome["error"].as_str().unwrap_or_else(|| panic!("expected an error, got {outcome}")), outcome["message"].as_str().unwrap())
}

#[test]
fn a_granted_call_succeeds_and_ungranted_ones_are_denied_saying_what_to_add_where() {
    let remote = Remote::start(SECRET);
    let server = server(vec![("probe", grant(&["http://127.0.0.1:*"]))], |_| {});
    let port = remote.http_port;
    let (record, outcomes) = probe_ok(
        &server,
        "probe",
        json!([
            {"id": "granted", "http": get(format!("{}/hello", remote.http))},
            {"id": "not-requested", "http": get("http://example.invalid/hello".to_owned())},
            {"id": "not-granted", "http": get(format!("http://localhost:{port}/hello"))},
        ]),
    );
    assert_eq!(outcomes["granted"]["status"], 200);
    assert_eq!(outcomes["granted"]["body"], "hello");

    let (kind, message) = error(&outcomes["not-requested"]);
    assert_eq!(kind, "denied");
    assert!(message.contains("add \"http://example.invalid\" to allowed_hosts") && message.contains("plugin.toml"), "{message}");
    assert!(message.contains("[plugins.instances.probe]") && message.contains("rapport.toml"), "{message}");

    let (kind, message) = error(&outcomes["not-granted"]);
    assert_eq!(kind, "denied");
    assert!(message.contains(&format!("add \"http://localhost:{port}\"")) && message.contains("[plugins.instances.probe]"), "{message}");
    assert!(!message.contains("plugin.toml"), "the manifest already requests it: {message}");

    // Only the granted call reached the server.
    assert_eq!(remote.arrivals("/").len(), 1);
    assert_eq!((record.network.http_requests, record.network.denied), (1, 2));
}

#[test]
fn a_name_resolving_to_loopback_needs_the_address_itself_granted() {
    let remote = Remote::start(SECRET);
    let by_name = grant(&["http://localhost:*"]);
    let by_address = grant(&["http://localhost:*", "http://127.0.0.1:*"]);
    let server = server(vec![("by-name", by_name), ("by-address", by_address)], |_| {});
    let url = format!("http://localhost:{}/hello", remote.http_port);

    let (_, outcomes) = probe_ok(&server, "by-name", json!([{"id": "call", "http": get(url.clone())}]));
    let (kind, message) = error(&outcomes["call"]);
    assert_eq!(kind, "denied");
    assert!(message.contains("a loopback address") && message.contains("explicit grant"), "{message}");
    assert!(remote.arrivals("/").is_empty());

    let (_, outcomes) = probe_ok(&server, "by-address", json!([{"id": "call", "http": get(url)}]));
    assert_eq!(outcomes["call"]["status"], 200, "{:?}", outcomes["call"]);
    assert_eq!(remote.arrivals("/hello").len(), 1);
}

#[test]
fn every_redirect_hop_is_checked_like_the_first_url() {
    let remote = Remote::start(SECRET);
    let server = server(vec![("probe", grant(&["http://127.0.0.1:*"]))], |_| {});
    let (base, port) = (&remote.http, remote.http_port);
    let (_, outcomes) = probe_ok(
        &server,
        "probe",
        json!([
            {"id": "to-ungranted", "http": get(format!("{base}/redirect?to=http://localhost:{port}/hello"))},
            {"id": "to-granted", "http": get(format!("{base}/redirect?to={base}/hello"))},
        ]),
    );
    let (kind, message) = error(&outcomes["to-ungranted"]);
    assert_eq!(kind, "denied");
    assert!(message.contains(&format!("http://localhost:{port}")), "{message}");
    assert_eq!(outcomes["to-granted"]["status"], 200);
    assert_eq!(outcomes["to-granted"]["url"], format!("{base}/hello"));
    // The refused hop never left the host: one /hello, reached through the granted redirect.
    assert_eq!(remote.arrivals("/redirect").len(), 2);
    assert_eq!(remote.arrivals("/hello").len(), 1);
}

#[test]
fn bodies_over_the_cap_are_refused_and_silent_servers_time_out_without_stopping_the_run() {
    let remote = Remote::start(SECRET);
    let server = server(vec![("probe", grant(&["http://127.0.0.1:*"]))], |config| {
        config.network.max_response_bytes = 1000;
        config.network.request_timeout = Duration::from_secs(1);
    });
    let base = &remote.http;
    let (_, outcomes) = probe_ok(
        &server,
        "probe",
        json!([
            {"id": "at-cap", "http": get(format!("{base}/big?bytes=1000"))},
            {"id": "over-cap", "http": get(format!("{base}/big?bytes=1001"))},
            {"id": "streamed-at-cap", "http": get(format!("{base}/chunked?bytes=1000"))},
            {"id": "streamed-over-cap", "http": get(format!("{base}/chunked?bytes=5000"))},
            {"id": "silent", "http": get(format!("{base}/never"))},
            {"id": "silent-short", "http": {"method": "GET", "url": format!("{base}/never"), "timeout_ms": 200}},
            {"id": "after", "http": get(format!("{base}/hello"))},
        ]),
    );
    assert_eq!(outcomes["at-cap"]["body_bytes"], 1000);
    assert_eq!(error(&outcomes["over-cap"]), ("too_large", "1000"));
    assert_eq!(outcomes["streamed-at-cap"]["body_bytes"], 1000);
    assert_eq!(error(&outcomes["streamed-over-cap"]), ("too_large", "1000"));
    let (kind, message) = error(&outcomes["silent"]);
    assert_eq!(kind, "timeout");
    assert!(message.contains("1000 ms") && message.contains("request_timeout_secs"), "{message}");
    let (kind, message) = error(&outcomes["silent-short"]);
    assert_eq!(kind, "timeout");
    assert!(message.contains("200 ms"), "{message}");
    assert_eq!(outcomes["after"]["status"], 200);
}

#[test]
fn a_429_is_retried_after_its_retry_after_and_a_long_one_goes_back_to_the_plugin() {
    let remote = Remote::start(SECRET);
    let server = server(vec![("probe", grant(&["http://127.0.0.1:*"]))], |config| config.network.max_retry_wait = Duration::from_secs(5));
    let base = &remote.http;
    let (record, outcomes) = probe_ok(
        &server,
        "probe",
        json!([
            {"id": "short", "http": get(format!("{base}/limited/short?retry_after=1"))},
            {"id": "long", "http": get(format!("{base}/limited/long?retry_after=3600"))},
        ]),
    );
    assert_eq!(outcomes["short"]["status"], 200);
    let arrivals = remote.arrivals("/limited/short");
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}, before the 1 s the server asked for");

    assert_eq!(outcomes["long"]["status"], 429);
    assert_eq!(remote.arrivals("/limited/long").len(), 1, "a wait beyond max_retry_wait is the plugin's to handle");

    let network = &record.network;
    assert_eq!((network.http_rate_limited, network.http_retries, network.http_requests), (2, 1, 3));
    assert!(network.wait_ms >= 1000, "{network:?}");
}

#[test]
fn the_token_bucket_paces_requests_at_the_granted_rate() {
    let remote = Remote::start(SECRET);
    let paced = InstanceGrant { rate_limit: Some(RateLimit { requests_per_second: 20.0, burst: 2 }), ..grant(&["http://127.0.0.1:*"]) };
    let server = server(vec![("probe", paced)], |_| {});
    let (record, outcomes) =
        probe_ok(&server, "probe", json!([{"id": "paced", "repeat": 8, "http": get(format!("{}/paced", remote.http))}]));
    assert_eq!(outcomes["paced"]["status"], 200);
    let arrivals = remote.arrivals("/paced");
    assert_eq!(arrivals.len(), 8);
    // Two go at once (the burst), then one per 50 ms: the eighth no earlier than 6 × 50 ms
    // after the first, less the time the first spent on its way.
    let span = arrivals[7] - arrivals[0];
    assert!(span >= Duration::from_millis(280), "8 requests went out within {span:?}");
    assert!(record.network.wait_ms >= 250, "{:?}", record.network);
}

#[test]
fn tcp_streams_reach_granted_ports_with_tls_verified_against_the_configured_ca() {
    let remote = Remote::start(SECRET);
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("test-ca.pem");
    std::fs::write(&ca, &remote.ca_pem).unwrap();
    let (tls, starttls, plain) = (remote.tls_echo.port(), remote.starttls_echo.port(), remote.plain_echo.port());
    let tcp_grant = grant(&[&format!("tcp://127.0.0.1:{tls}"), &format!("tcp://localhost:{tls}"), &format!("tcp://127.0.0.1:{starttls}")]);
    let server = server(vec![("probe", tcp_grant)], |config| config.network.extra_ca_files = vec![ca.clone()]);
    let tcp = |host: &str, port: u16, mode: &str, exchange: Value| json!({"host": host, "port": port, "tls": mode, "exchange": exchange});
    let (record, outcomes) = probe_ok(
        &server,
        "probe",
        json!([
            {"id": "tls", "tcp": tcp("127.0.0.1", tls, "tls", json!(["hello\n", "again\n"]))},
            {"id": "starttls", "tcp": tcp("127.0.0.1", starttls, "starttls", json!(["STARTTLS\n", "<starttls>", "secure\n"]))},
            {"id": "ungranted-port", "tcp": tcp("127.0.0.1", plain, "none", json!(["hello\n"]))},
            {"id": "by-name", "tcp": tcp("localhost", tls, "tls", json!(["named\n"]))},
            {"id": "hoard", "tcp_hold": {"host": "127.0.0.1", "port": tls, "count": 20}},
        ]),
    );
    assert_eq!(outcomes["tls"]["lines"], json!(["hello\n", "again\n"]));
    assert_eq!(outcomes["starttls"]["lines"], json!(["OK begin TLS\n", "secure\n"]));
    let (kind, message) = error(&outcomes["ungranted-port"]);
    assert_eq!(kind, "denied");
    assert!(message.contains(&format!("add \"tcp://127.0.0.1:{plain}\"")), "{message}");
    // The name resolves to an address a grant names, and the certificate names it too.
    assert_eq!(outcomes["by-name"]["lines"], json!(["named\n"]));
    // A run holds at most 16 connections; dropping them frees the places.
    assert_eq!(outcomes["hoard"]["opened"], 16);
    let (kind, message) = error(&outcomes["hoard"]["refusal"]);
    assert_eq!(kind, "invalid_request");
    assert!(message.contains("at most 16 connections"), "{message}");
    assert_eq!(outcomes["hoard"]["after"], true);
    assert_eq!(record.network.tcp_connections, 3 + 16 + 1);
    assert!(record.network.bytes_received >= "hello\nagain\nOK begin TLS\nsecure\n".len() as u64);
}

#[test]
fn tls_fails_when_the_servers_ca_is_not_trusted_and_failures_take_no_connection_place() {
    let remote = Remote::start(SECRET);
    let (tls, plain) = (remote.tls_echo.port(), remote.plain_echo.port());
    let mut paced = grant(&[&format!("tcp://127.0.0.1:{tls}"), &format!("tcp://127.0.0.1:{plain}")]);
    paced.rate_limit = Some(RateLimit { requests_per_second: 50.0, burst: 1 });
    let server = server(vec![("probe", paced)], |_| {});
    let spec = json!({"host": "127.0.0.1", "port": tls, "tls": "tls", "exchange": ["hello\n"]});
    // More failed handshakes than a run has connection places, then a good connection.
    let mut steps: Vec<Value> = (0..20).map(|i| json!({"id": format!("tls-{i}"), "tcp": spec})).collect();
    steps.push(json!({"id": "plain", "tcp": {"host": "127.0.0.1", "port": plain, "tls": "none", "exchange": ["still here\n"]}}));
    let (record, outcomes) = probe_ok(&server, "probe", Value::Array(steps));
    let (kind, message) = error(&outcomes["tls-0"]);
    assert_eq!(kind, "connect");
    assert!(message.contains("TLS handshake") && message.to_lowercase().contains("certificate"), "{message}");
    assert_eq!(error(&outcomes["tls-19"]).0, "connect", "still a handshake failure, not out of places");
    assert_eq!(outcomes["plain"]["lines"], json!(["still here\n"]));
    // Connects are paced by the instance's rate limit like requests: with a burst of one,
    // the host made the run wait.
    assert!(record.network.wait_ms > 0, "{:?}", record.network);
}

#[test]
fn secrets_reach_their_instance_and_the_remote_but_never_its_reports() {
    let remote = Remote::start(SECRET);
    let mut with_secret = grant(&["http://127.0.0.1:*"]);
    with_secret.secrets.insert("api_token".to_owned(), Secret::new(SECRET).into());
    let server = server(vec![("crm", with_secret), ("other", grant(&["http://127.0.0.1:*"]))], |_| {});
    let auth = json!({"method": "GET", "url": format!("{}/auth", remote.http), "bearer_secret": "api_token"});
    let (record, outcomes) = probe(
        &server,
        "crm",
        json!([
            {"id": "auth", "http": auth},
            {"id": "secret", "secret": "api_token"},
            {"id": "fail", "fail_with_secret": "api_token"},
        ]),
    );
    assert_eq!(outcomes["auth"]["status"], 200, "the remote accepted the secret the host handed over");
    let fingerprint = SECRET.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    assert_eq!(outcomes["secret"]["fingerprint"], format!("{fingerprint:016x}"));
    let Some(RunFailure::Plugin { error }) = &record.failure else { panic!("{record:#?}") };
    assert_eq!(error.to_string(), format!("authentication failed: the remote refused {}", rapport_plugin_host::REDACTED));

    // Another instance of the same plugin gets none of it.
    let (_, outcomes) = probe(&server, "other", json!([{"id": "auth", "http": auth}, {"id": "secret", "secret": "api_token"}]));
    assert_eq!(outcomes["auth"]["status"], 401);
    assert_ne!(outcomes["secret"]["fingerprint"], format!("{fingerprint:016x}"));

    for path in ["/v1/plugins", "/v1/plugins/crm/runs", &format!("/v1/plugins/crm/runs/{}", record.id)] {
        let body = server.client.get(format!("{}{path}", server.base)).bearer_auth(TOKEN).send().unwrap().text().unwrap();
        assert!(body.contains("crm") && !body.contains(SECRET), "{path}: {body}");
    }
    let listed: Value = server.client.get(format!("{}/v1/plugins", server.base)).bearer_auth(TOKEN).send().unwrap().json().unwrap();
    let crm = listed["instances"].as_array().unwrap().iter().find(|i| i["name"] == "crm").unwrap();
    assert_eq!(crm["grant"]["secrets"], json!(["api_token"]), "names are shown, values never");
}

#[test]
fn headers_a_plugin_sets_stay_with_their_origin_and_host_is_the_urls() {
    let remote = Remote::start(SECRET);
    let server = server(vec![("probe", grant(&["http://127.0.0.1:*", "http://localhost:*"]))], |_| {});
    let (base, port) = (&remote.http, remote.http_port);
    let with_headers = |url: String| json!({"method": "GET", "url": url, "headers": [["X-Api-Key", "k-123"], ["Accept", "text/plain"]]});
    let (_, outcomes) = probe_ok(
        &server,
        "probe",
        json!([
            {"id": "same-origin", "http": with_headers(format!("{base}/redirect?to={base}/headers"))},
            {"id": "cross-origin", "http": with_headers(format!("{base}/redirect?to=http://localhost:{port}/headers"))},
            {"id": "host", "http": {"method": "GET", "url": format!("{base}/hello"), "headers": [["Host", "elsewhere.example"]]}},
        ]),
    );
    let same = outcomes["same-origin"]["body"].as_str().unwrap();
    assert!(same.contains("x-api-key: k-123") && same.contains("accept: text/plain"), "{same}");
    let cross = outcomes["cross-origin"]["body"].as_str().unwrap();
    assert_eq!(outcomes["cross-origin"]["status"], 200);
    assert!(!cross.contains("x-api-key") && cross.contains("accept: text/plain"), "a custom credential followed the redirect: {cross}");
    let (kind, message) = error(&outcomes["host"]);
    assert_eq!(kind, "invalid_request");
    assert!(message.contains("Host header"), "{message}");
    assert!(remote.arrivals("/hello").is_empty(), "the request with a Host of the plugin's choosing never left");
}

#[test]
fn a_literal_address_grant_admits_its_own_scheme_and_port_only() {
    let remote = Remote::start(SECRET);
    let (plain, http_port) = (remote.plain_echo.port(), remote.http_port);
    // The operator grants one TCP port of 127.0.0.1, and any port of the name localhost.
    let server = server(vec![("probe", grant(&[&format!("tcp://127.0.0.1:{plain}"), "http://localhost:*"]))], |_| {});
    let (_, outcomes) = probe_ok(
        &server,
        "probe",
        json!([
            {"id": "granted-tcp", "tcp": {"host": "127.0.0.1", "port": plain, "tls": "none", "exchange": ["hi\n"]}},
            {"id": "http-by-name", "http": get(format!("http://localhost:{http_port}/hello"))},
        ]),
    );
    assert_eq!(outcomes["granted-tcp"]["lines"], json!(["hi\n"]), "the literal grant works for what it names");
    // localhost resolves to 127.0.0.1, which only the TCP grant names: not for HTTP here.
    let (kind, message) = error(&outcomes["http-by-name"]);
    assert_eq!(kind, "denied");
    assert!(message.contains(&format!("add \"http://127.0.0.1:{http_port}\"")), "{message}");
    assert!(remote.arrivals("/hello").is_empty());
}

#[test]
fn runs_waiting_for_a_pool_slot_get_one_in_the_order_they_were_started() {
    let remote = Remote::start(SECRET);
    let names = ["holder", "third", "first", "second"];
    let grants = names.iter().map(|name| (*name, grant(&["http://127.0.0.1:*"]))).collect();
    let server = server(grants, |c| c.max_concurrent_runs = 1);
    for name in names {
        let path = if name == "holder" { "/gate/holder".to_owned() } else { format!("/hello?{name}") };
        let steps = json!([{"id": "get", "http": {"url": format!("{}{path}", remote.http)}}]);
        let options = InstallOptions { instance: Some(name.to_owned()), config: Some(json!({ "steps": steps })) };
        server.runtime.block_on(server.plugins.install(&rapport_fixtures::package("net-probe"), options)).unwrap();
    }
    let _runtime = server.runtime.enter();
    server.plugins.start("holder", Trigger::Api).unwrap();
    // The holder has the pool's one slot until its gate opens; the others queue behind it.
    remote.wait_for("/gate/holder", 1);
    // Started from within a task, as the scheduler starts the instances due at once: a
    // task's last spawn runs first on its worker, so only a place taken at start keeps order.
    let plugins = Arc::clone(&server.plugins);
    let queued = async move { names[1..].iter().for_each(|name| drop(plugins.start(name, Trigger::Schedule).unwrap())) };
    server.runtime.block_on(tokio::spawn(queued)).unwrap();
    remote.open("holder");
    remote.wait_for("/hello", 3);
    let order: Vec<String> = remote.paths().into_iter().filter(|path| path.starts_with("/hello")).collect();
    assert_eq!(order, ["/hello?third", "/hello?first", "/hello?second"]);
}

#[test]
fn a_secret_whose_variable_is_not_set_fails_the_run_naming_key_and_variable() {
    let mut grant = grant(&["http://127.0.0.1:*"]);
    let key = "plugins.instances.unset.secrets.api_token".to_owned();
    grant.secrets.insert("api_token".to_owned(), SecretSource::Env { var: "IT_NEVER_SET_TOKEN".to_owned(), key });
    let server = server(vec![("unset", grant)], |_| {});
    let (record, _) = probe(&server, "unset", json!([{"id": "s", "secret": "api_token"}]));
    let RunFailure::Config { message } = &record.failure.clone().unwrap() else { panic!("{record:?}") };
    assert!(
        message.contains("plugins.instances.unset.secrets.api_token") && message.contains("IT_NEVER_SET_TOKEN is not set"),
        "{message}"
    );
}
