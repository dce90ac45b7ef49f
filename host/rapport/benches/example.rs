//! Example connector benchmark: N contacts (default 100k) synced end to end from the
//! example CRM API on 127.0.0.1 by `plugins/example` in the sandbox, against the same pages
//! fetched with reqwest and ingested in-process (the connector without wasm, the host's
//! network layer or the cursor bookkeeping). Each path runs in a fresh process, with the
//! API in it, so peak RSS is per path. Prints its figures; asserts nothing.
//!
//! Run with `cargo xtask bench --bench example`; `RAPPORT_BENCH_CONTACTS` changes the 100k.

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rapport_core::Secret;
use rapport_example_api::{ExampleApi, contacts};
use rapport_graph::{Graph, IdentityRules};
use rapport_net::HostPattern;
use rapport_ops::{IngestBatch, operation_from_value};
use rapport_plugin_host::config::InstanceGrant;
use rapport_store::SledStore;
use rapport_store::config::DEFAULT_CACHE_BYTES;
use serde_json::{Value, json};
use support::{compare, report_child, run_child, setup};

const TOKEN: &str = "bench-token-123";
const PAGE: usize = 200;

fn count() -> u64 {
    std::env::var("RAPPORT_BENCH_CONTACTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn api(n: u64) -> ExampleApi {
    let api = ExampleApi::start(TOKEN).unwrap();
    api.upsert(contacts(usize::try_from(n).unwrap(), 4));
    api
}

fn through_plugin(n: u64) {
    let api = api(n);
    let grant = InstanceGrant {
        allowed_hosts: vec![HostPattern::parse(&api.url()).unwrap()],
        rate_limit: None,
        secrets: BTreeMap::from([("api_token".to_owned(), Secret::new(TOKEN).into())]),
        ..InstanceGrant::default()
    };
    let setup = setup(|config| {
        config.instances.insert("bench".to_owned(), grant);
    });
    setup.install("example", "bench", json!({"base_url": api.url(), "page_size": PAGE}));
    let (record, seconds) = setup.timed_run("bench");
    assert_eq!(record.operations_applied, 2 * n, "{record:?}");
    report_child(seconds);
}

/// The organization and person of one contact, as the example connector writes them.
fn operations(contact: &Value) -> [Value; 2] {
    let company = &contact["company"];
    [
        json!({"op": "upsert_organization", "external_id": company["id"], "name": company["name"], "domains": [company["domain"]], "roles": ["client"]}),
        json!({"op": "upsert_person", "external_id": contact["id"], "name": contact["name"], "emails": [contact["email"]],
               "title": contact["title"], "works_at": [{"organization": company["id"]}], "seen_at": contact["updated_at"]}),
    ]
}

fn in_process(n: u64) {
    let api = api(n);
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store"), DEFAULT_CACHE_BYTES).unwrap();
    let graph = Graph::new(Arc::new(store), IdentityRules::with_defaults([]));
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut applied = 0;
    loop {
        let mut request = client.get(format!("{}/v1/contacts", api.url())).bearer_auth(TOKEN).query(&[("limit", PAGE.to_string())]);
        if let Some(token) = &after {
            request = request.query(&[("after", token)]);
        }
        let page: Value = request.send().unwrap().error_for_status().unwrap().json().unwrap();
        let operations =
            page["results"].as_array().unwrap().iter().flat_map(operations).map(|op| operation_from_value(op, "").unwrap()).collect();
        after = page["paging"]["next"].as_str().map(str::to_owned);
        let meta = vec![("cursor/bench".to_owned(), after.clone().unwrap_or_default().into_bytes())];
        let batch = IngestBatch { meta, ..IngestBatch::trusted("bench", operations) };
        applied += graph.ingest(batch).unwrap().applied;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(applied as u64, 2 * n);
    report_child(started.elapsed().as_secs_f64());
}

fn main() {
    if run_child(through_plugin, in_process) {
        return;
    }
    let n = count();
    println!("rapport example sync benchmark: {n} contacts (2 operations each) in pages of {PAGE} from the example API on 127.0.0.1");
    compare(n, "contacts", "reqwest + in-process ingest", "example plugin, end to end");
}
