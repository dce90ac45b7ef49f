//! Plugin runtime benchmark: per-run instantiate overhead (fresh sandbox, instantiate,
//! `describe`, drop), the host-call round trip, a log flood's cost per line, and N small records (default 1M) emitted
//! through a real plugin against the same records through in-process ingest, each path in
//! a fresh process so its peak RSS is its own. Prints its figures; asserts nothing.
//!
//! Run with `cargo xtask bench --bench plugins`; `RAPPORT_BENCH_RECORDS` changes the 1M.

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{compare, report_child, run_child, setup};

use rapport_graph::{Graph, IdentityRules};
use rapport_ops::{IngestBatch, parse_operation};
use rapport_store::SledStore;
use rapport_store::config::DEFAULT_CACHE_BYTES;
use serde_json::json;

const PAGE: u64 = 1000;

fn records() -> u64 {
    std::env::var("RAPPORT_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// The operations the pager emits, as in-process batches of one page each.
fn in_process(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store"), DEFAULT_CACHE_BYTES).unwrap();
    let graph = Graph::new(Arc::new(store), IdentityRules::with_defaults([]));
    let started = Instant::now();
    for page in 0..n.div_ceil(PAGE) {
        let operations = (page * PAGE..((page + 1) * PAGE).min(n))
            .map(|i| {
                let json = json!({"op": "upsert_organization", "external_id": format!("org-{i}"), "name": format!("Org {i}")});
                parse_operation(&json.to_string(), "").unwrap()
            })
            .collect();
        let meta = vec![("cursor/bench".to_owned(), page.to_string().into_bytes())];
        graph.ingest(IngestBatch { meta, ..IngestBatch::trusted("bench", operations) }).unwrap();
    }
    report_child(started.elapsed().as_secs_f64());
}

fn through_plugin(n: u64) {
    let setup = setup(|_| {});
    setup.install("pager", "bench", json!({"pages": n.div_ceil(PAGE), "page_size": PAGE}));
    report_child(setup.timed_run("bench").1);
}

fn main() {
    if run_child(through_plugin, in_process) {
        return;
    }
    let n = records();
    println!("rapport plugin benchmark: {n} records in pages of {PAGE}");

    // 1. Per-run overhead: a fresh sandbox, instantiate, a trivial export call, drop.
    let setup = setup(|_| {});
    setup.install("pager", "idle", json!({"pages": 0}));
    let rounds = 2000;
    setup.runtime.block_on(setup.host.verify("pager")).unwrap();
    let started = Instant::now();
    for _ in 0..rounds {
        setup.runtime.block_on(setup.host.verify("pager")).unwrap();
    }
    let per_run = started.elapsed() / rounds;
    println!("per-run instantiate overhead (fresh store + instantiate + describe + drop): {:.1} µs (target < 1 ms)", micros(per_run));

    // 2. Host-call round trip: runs differing only in a million empty `emit` calls.
    let calls = 1_000_000_u64;
    setup.install("pager", "caller", json!({"pages": 0, "calls": calls}));
    let (idle, busy) = (setup.timed_run("idle").1, setup.timed_run("caller").1);
    println!("host-call round trip (empty emit): {:.2} µs (target < 2 µs)", (busy - idle) * 1e6 / calls as f64);

    // 3. A log flood: past the 1,000 lines a run keeps, a line costs about a host call.
    setup.install("hostile", "babbler", json!({"behaviour": "big-log", "bytes": 100, "count": calls}));
    let flood = setup.timed_run("babbler").1;
    println!(
        "log flood: {calls} lines of 100 bytes in {flood:.2} s, {:.2} µs a line ({:.1}× the empty emit; 1,000 kept)",
        flood * 1e6 / calls as f64,
        (flood - idle) / (busy - idle)
    );
    drop(setup);

    // 4. N records through the plugin against in-process ingest, each in its own process.
    compare(n, "records", "in-process ingest", "through the plugin (target: ratio >= 0.5)");
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
