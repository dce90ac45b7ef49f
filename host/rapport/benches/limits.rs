//! Bad-input benchmark: the cost of what the hardening added, against baselines in the
//! same run. Prints its figures; asserts nothing.
//!
//! - Long lists: people with 1,000 addresses each (the default `records.max_list_items`)
//!   ingested and read back, against as many people with one address each — the same
//!   number of identity claims. Linear list handling keeps the ratio near 1.
//! - `import` of a file where every tenth line is not UTF-8, against the same file clean.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p rapport --bench limits`).

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport::import::{ImportOptions, import_jsonl};
use rapport_graph::model::RecordKind;
use rapport_graph::{Graph, IdentityRules};
use rapport_ops::{IngestBatch, parse_operation};
use rapport_store::SledStore;
use rapport_store::config::DEFAULT_CACHE_BYTES;

const CLAIMS: usize = 200_000;

fn graph(dir: &std::path::Path) -> Graph {
    Graph::new(Arc::new(SledStore::open(dir, DEFAULT_CACHE_BYTES).unwrap()), IdentityRules::with_defaults([]))
}

/// Ingests `people` people of `emails_each` addresses, 1,000 addresses per commit, then
/// reads each back; the two durations.
fn people_with_lists(people: usize, emails_each: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let graph = graph(dir.path());
    let operations: Vec<_> = (0..people)
        .map(|p| {
            let emails: Vec<String> = (0..emails_each).map(|e| format!("\"p{p}.{e}@acme.com\"")).collect();
            parse_operation(&format!(r#"{{"op":"upsert_person","external_id":"p{p}","name":"P {p}","emails":[{}]}}"#, emails.join(",")), "")
                .unwrap()
        })
        .collect();
    // The same number of claims per commit either way: 1,000.
    let batch = (1000 / emails_each).max(1);
    let started = Instant::now();
    for chunk in operations.chunks(batch) {
        let report = graph.ingest(IngestBatch::trusted("crm", chunk.to_vec())).unwrap();
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    }
    let ingest = started.elapsed();
    let started = Instant::now();
    for p in 0..people {
        let id = graph.resolve("crm", RecordKind::Person, &format!("p{p}")).unwrap().unwrap();
        assert_eq!(graph.person(id).unwrap().emails.len(), emails_each);
    }
    (ingest, started.elapsed())
}

fn import_file(lines: &[Vec<u8>]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let graph = graph(dir.path());
    let input: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    let options = ImportOptions { source: "legacy".to_owned(), input_name: "bench".to_owned(), batch_size: 1000, resume: false };
    let started = Instant::now();
    import_jsonl(&graph, input.as_slice(), &options, |_| {}).unwrap();
    started.elapsed()
}

fn main() {
    let (long_ingest, long_read) = people_with_lists(CLAIMS / 1000, 1000);
    let (short_ingest, short_read) = people_with_lists(CLAIMS, 1);
    println!(
        "long lists: {} people x 1000 addresses: ingest {:.2}s, read {:.0} ms; {} people x 1 address: ingest {:.2}s, read {:.0} ms; ingest ratio {:.2} per address",
        CLAIMS / 1000,
        long_ingest.as_secs_f64(),
        long_read.as_secs_f64() * 1e3,
        CLAIMS,
        short_ingest.as_secs_f64(),
        short_read.as_secs_f64() * 1e3,
        long_ingest.as_secs_f64() / short_ingest.as_secs_f64(),
    );

    let clean: Vec<Vec<u8>> =
        (0..100_000).map(|i| format!(r#"{{"op":"upsert_organization","external_id":"c{i}","name":"Org {i}"}}"#).into_bytes()).collect();
    let mut broken = clean.clone();
    for line in broken.iter_mut().step_by(10) {
        line.insert(0, 0xff);
    }
    let (clean_time, broken_time) = (import_file(&clean), import_file(&broken));
    println!(
        "import: 100k lines clean {:.2}s, every tenth not UTF-8 {:.2}s (ratio {:.2}; the bad lines are skipped, the rest committed)",
        clean_time.as_secs_f64(),
        broken_time.as_secs_f64(),
        broken_time.as_secs_f64() / clean_time.as_secs_f64()
    );
}
