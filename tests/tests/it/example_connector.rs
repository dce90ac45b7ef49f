//! The example connector (`plugins/example`) against the example CRM API, through the test
//! harness: the real component in the real sandbox. Contacts share timestamps across page
//! boundaries, the API throttles and fails a page; every contact must arrive exactly once.

use std::collections::BTreeMap;

use chrono::Duration;
use rapport::ledger::GraphLedger;
use rapport_core::Secret;
use rapport_example_api::{Contact, ExampleApi, contacts};
use rapport_graph::IdentityRules;
use rapport_net::HostPattern;
use rapport_ops::{Operation, RecordLimits};
use rapport_plugin_host::harness::{TestBench, TestOptions, TestReport};
use rapport_plugin_host::registry::RunStatus;
use serde_json::{Value, json};

use crate::harness::rapport;

const TOKEN: &str = "example-token-4711";

fn bench(runtime: &tokio::runtime::Runtime, api: &ExampleApi, config: Value) -> TestBench {
    let mut options = TestOptions::new(config);
    options.allowed_hosts = Some(vec![HostPattern::parse(&api.url()).unwrap()]);
    options.secrets = BTreeMap::from([("api_token".to_owned(), Secret::new(TOKEN))]);
    let ledger = GraphLedger::throwaway(IdentityRules::with_defaults([]), RecordLimits::default()).unwrap();
    runtime.block_on(TestBench::new(&rapport_fixtures::package("example"), ledger, options)).unwrap()
}

/// The people a run emitted, by external id, in order.
fn people(report: &TestReport) -> Vec<String> {
    report
        .operations()
        .filter_map(|op| match op {
            Operation::UpsertPerson(person) => Some(person.external_id.clone()),
            _ => None,
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn every_contact_arrives_once_across_shared_timestamps_429s_and_a_failed_page() {
    let api = ExampleApi::start(TOKEN).unwrap();
    // 50 contacts, 4 per timestamp; pages of 6 split the groups (4-7 straddles 5|6, 8-11 ends page 2).
    api.upsert(contacts(50, 4));
    api.throttle_every(4);
    api.fail_page_once(3);
    let runtime = runtime();
    let bench = bench(&runtime, &api, json!({"base_url": api.url(), "page_size": 6, "lookback_secs": 0}));

    let first = runtime.block_on(bench.run()).unwrap();
    assert_eq!(first.run.status, RunStatus::Failed, "{:?}", first.run);
    assert!(first.run.failure.as_ref().unwrap().to_string().contains("answered 500"), "{:?}", first.run.failure);
    assert_eq!(first.run.checkpoints, 2, "two pages committed before the failed one");
    let before: Vec<String> = people(&first);
    assert_eq!(before.len(), 12);

    let second = runtime.block_on(bench.run()).unwrap();
    assert_eq!(second.run.status, RunStatus::Succeeded, "{:?}", second.run);
    let after = people(&second);
    // It asked again from the last timestamp (the group 8-11), skipped what it had, and went on.
    assert_eq!(after.first().map(String::as_str), Some("ct-000012"), "{after:?}");
    let mut all: Vec<String> = before.into_iter().chain(after).collect();
    let emitted = all.len();
    all.sort();
    all.dedup();
    assert_eq!((emitted, all.len()), (50, 50), "none lost, none repeated");
    assert_eq!(all.first().map(String::as_str), Some("ct-000000"));
    assert_eq!(second.run.operations_skipped, 0);

    // The host waited out every 429 (Retry-After: 1) and retried: all were answered in the end.
    let served = api.served();
    let rate_limited = first.run.network.http_rate_limited + second.run.network.http_rate_limited;
    assert!(served.throttled > 0 && rate_limited == served.throttled, "{served:?} vs {rate_limited}");
    assert!(first.run.network.wait_ms + second.run.network.wait_ms >= 1000 * served.throttled);
    assert_eq!(served.refused, 0, "every request matched the API's parameters");
    assert!(!second.logs.is_empty() && second.logs.iter().any(|l| l.message == "contacts synced"));
}

#[test]
fn an_incremental_run_emits_only_changes_including_late_ones_inside_the_lookback() {
    let api = ExampleApi::start(TOKEN).unwrap();
    api.upsert(contacts(30, 3));
    let runtime = runtime();
    let bench = bench(&runtime, &api, json!({"base_url": api.url(), "page_size": 7, "lookback_secs": 300}));
    let full = runtime.block_on(bench.run()).unwrap();
    assert_eq!(people(&full).len(), 30);
    let newest = api.contact("ct-000029").unwrap().updated_at;

    let touched =
        |id: &str, at: chrono::DateTime<chrono::Utc>| Contact { updated_at: at, title: "Changed".to_owned(), ..api.contact(id).unwrap() };
    let mut fresh = contacts(32, 3).split_off(30);
    for contact in &mut fresh {
        contact.updated_at = newest + Duration::minutes(5);
    }
    api.upsert(fresh);
    api.upsert([touched("ct-000003", newest + Duration::minutes(5)), touched("ct-000010", newest + Duration::minutes(6))]);
    // Committed late by the remote: stamped a minute before what the last run saw.
    api.upsert([touched("ct-000020", newest - Duration::minutes(1))]);

    let incremental = runtime.block_on(bench.run()).unwrap();
    let mut changed = people(&incremental);
    changed.sort();
    assert_eq!(changed, ["ct-000003", "ct-000010", "ct-000020", "ct-000030", "ct-000031"]);
    let quiet = runtime.block_on(bench.run()).unwrap();
    assert_eq!(people(&quiet), Vec::<String>::new(), "nothing changed, nothing emitted");
    assert_eq!(quiet.run.status, RunStatus::Succeeded);
}

#[test]
fn rapport_plugin_test_runs_a_package_without_a_daemon() {
    let api = ExampleApi::start(TOKEN).unwrap();
    api.upsert(contacts(10, 2));
    let dir = tempfile::tempdir().unwrap();
    let package = rapport_fixtures::package("example");
    let config = json!({"base_url": api.url(), "page_size": 4}).to_string();
    let base = ["plugin", "test", package.to_str().unwrap(), "--instance-config", &config, "--allow", &api.url()];

    let output =
        rapport(&dir.path().join("unused")).args(base).args(["--secret", &format!("api_token={TOKEN}"), "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["run"]["status"], "succeeded");
    assert_eq!(report["commits"].as_array().unwrap().len(), 4, "three pages, then the tail");
    let operations: usize = report["commits"].as_array().unwrap().iter().map(|c| c["operations"].as_array().unwrap().len()).sum();
    assert_eq!(operations, 20, "an organization and a person per contact");
    assert!(report["cursor"].as_str().unwrap().contains("\"high\""), "{report}");
    assert!(!dir.path().join("unused").exists(), "no store is created");

    // The deployment's record limits hold in the test too: names over 5 characters are skipped.
    let output = rapport(&dir.path().join("unused"))
        .env("RAPPORT_RECORDS_MAX_NAME_CHARS", "5")
        .args(base)
        .args(["--secret", &format!("api_token={TOKEN}"), "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["run"]["operations_skipped"], 20, "{report}");
    assert!(report["run"]["skipped_examples"][0]["errors"][0]["message"].as_str().unwrap().contains("5"), "{report}");

    // A destination the test does not grant: the refusal says to pass --allow, not to edit
    // rapport.toml, which the test does not read.
    let ungranted = ["plugin", "test", package.to_str().unwrap(), "--instance-config", &config, "--allow", "http://localhost:1"];
    let output = rapport(&dir.path().join("unused")).args(ungranted).args(["--secret", &format!("api_token={TOKEN}")]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains(&format!("--allow \"{}\"", api.url())) && !text.contains("rapport.toml"), "{text}");

    // Without the secret, the run fails saying what is missing; the exit status says so.
    let output = rapport(&dir.path().join("unused")).args(base).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success() && text.contains("secret `api_token` is not set"), "{text}");
}
