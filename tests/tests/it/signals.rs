//! kill -9 of the daemon while its signal maintainer follows a long change feed: after a
//! restart it goes on from the position it committed, and its values equal a rebuild's.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Daemon, TOKEN, rapport};

fn cli_json(store: &Path, args: &[&str]) -> Value {
    let output = rapport(store).args(args).output().unwrap();
    assert!(output.status.success(), "rapport {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn status(daemon: &Daemon) -> (u64, u64) {
    let (code, body) = daemon.get("/v1/signals/status");
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    (status["position"].as_u64().unwrap(), status["newest"].as_u64().unwrap())
}

/// Polls the maintainer's status until `done` holds (a condition, not a fixed wait).
fn wait_for(daemon: &Daemon, what: &str, done: impl Fn((u64, u64)) -> bool) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let now = status(daemon);
        if done(now) {
            return now;
        }
        assert!(Instant::now() < deadline, "the maintainer never reached {what}: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signals_of(daemon: &Daemon, orgs: &[String]) -> Vec<Value> {
    let client = reqwest::blocking::Client::new();
    orgs.iter()
        .map(|id| {
            let url = daemon.url(&format!("/v1/organizations/{id}/signals?at=2026-06-01T00:00:00Z"));
            let response = client.get(url).bearer_auth(TOKEN).send().unwrap();
            assert_eq!(response.status(), 200);
            response.json().unwrap()
        })
        .collect()
}

#[test]
fn a_maintainer_killed_mid_feed_goes_on_after_a_restart_and_equals_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // A first start registers the maintainer on the empty graph; the world then arrives
    // while no daemon runs, so the feed holds all of it, unread.
    Daemon::start(&store).stop();
    let world = dir.path().join("world");
    let exported = rapport(&store).args(["demo", "--now", "2026-06-01T00:00:00Z", "--export"]).arg(&world).output().unwrap();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    for source in ["crm", "mail", "support"] {
        let file = world.join(format!("{source}.jsonl"));
        let imported = rapport(&store)
            .env("RAPPORT_IDENTITY_INTERNAL_DOMAINS", "northwind.example")
            .args(["import", "--source", source, "--progress", "none"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    }
    let (position, newest) = {
        let status = cli_json(&store, &["signals", "status"]);
        (status["position"].as_u64().unwrap(), status["newest"].as_u64().unwrap())
    };
    assert!(newest > position + 10_000, "a long feed to follow: {position} of {newest}");

    // Killed once it has committed part of the feed and before it is through.
    let daemon = Daemon::start(&store);
    let seen = wait_for(&daemon, "the middle of the feed", |(at, _)| at > position);
    daemon.kill();
    let committed = cli_json(&store, &["signals", "status"])["position"].as_u64().unwrap();
    assert!(seen.0 <= committed && committed < newest, "the kill landed mid-feed: it had read {committed} of {newest}");

    let daemon = Daemon::start(&store);
    wait_for(&daemon, "the newest change", |(at, newest)| at == newest);
    let orgs: Vec<String> = {
        let (code, body) = daemon.get("/v1/organizations?limit=25");
        assert_eq!(code, 200);
        let page: Value = serde_json::from_str(&body).unwrap();
        page["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect()
    };
    let followed = signals_of(&daemon, &orgs);
    assert!(followed.iter().any(|s| s["touches_90d"].as_i64() > Some(0)), "the world has touches");
    let rebuilt = reqwest::blocking::Client::new().post(daemon.url("/v1/signals/rebuild")).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(rebuilt.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, body) = daemon.get("/v1/signals/status");
        if serde_json::from_str::<Value>(&body).unwrap()["rebuilding"] == Value::Bool(false) {
            break;
        }
        assert!(Instant::now() < deadline, "the rebuild never ended: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(signals_of(&daemon, &orgs), followed, "after the restart, the kept values equal a rebuild's");
    daemon.stop();
}
