//! Signals benchmark, on the demo world ×10 (`RAPPORT_BENCH_SCALE` changes it) ingested
//! in-process:
//! - following the whole change feed from the first change (the maintainer's path, every
//!   interaction and deal), against a bare scan that decodes every interaction and deal node
//!   (the floor any rebuild pays), in the same run;
//! - a rebuild from the graph alone, against the same scan;
//! - every organization's signals read from the aggregates;
//! - catching up after 1,000 new interactions.
//!
//! Prints its figures; asserts nothing. Run with `cargo bench -p rapport --bench signals`.

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Instant;

use rapport::demo::{self, WorldSpec};
use rapport_graph::model::{RecordKind, Timestamp};
use rapport_graph::{Graph, IdentityRules};
use rapport_ops::{IngestBatch, Operation};
use rapport_signals::{Signals, SignalsConfig};
use rapport_store::SledStore;
use rapport_store::config::DEFAULT_CACHE_BYTES;
use support::peak_rss_mb;

fn main() {
    let scale: usize = std::env::var("RAPPORT_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc();
    let batches = demo::generate(WorldSpec { seed: 42, scale, now }).0;
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
    let graph = Arc::new(Graph::new(Arc::new(store), IdentityRules::with_defaults([demo::INTERNAL_DOMAIN.to_owned()])));
    // The maintainer is registered first, so the whole world is in the feed it follows.
    let signals = Signals::open(Arc::clone(&graph), SignalsConfig::default()).unwrap();
    let mut late: Vec<Operation> = Vec::new();
    for batch in &batches {
        for chunk in batch.operations.chunks(1000) {
            graph.ingest(IngestBatch::trusted(batch.source, chunk.to_vec())).unwrap();
        }
        if batch.source == "mail" {
            late = batch.operations.iter().rev().take(1000).cloned().collect();
        }
    }
    let stats = graph.stats().unwrap();
    println!(
        "signals benchmark: demo world x{scale}: {} organizations, {} interactions, {} deals",
        stats.organizations, stats.interactions, stats.deals
    );

    // The floor: decode every interaction and deal node once.
    let started = Instant::now();
    let mut scanned = 0;
    for kind in [RecordKind::Interaction, RecordKind::Deal] {
        for node in graph.records(kind) {
            std::hint::black_box(node.unwrap());
            scanned += 1;
        }
    }
    let scan = started.elapsed().as_secs_f64();
    println!("  baseline: scanning and decoding the {scanned} interaction and deal nodes: {scan:.2}s");

    let started = Instant::now();
    let followed = signals.catch_up().unwrap();
    let follow = started.elapsed().as_secs_f64();
    println!(
        "  following the feed from its start: {} changes, {} records in {follow:.2}s = {:.0} records/s; {:.2}x the scan",
        followed.changes,
        followed.records,
        followed.records as f64 / follow,
        follow / scan
    );

    let started = Instant::now();
    signals.rebuild().unwrap();
    let rebuild = started.elapsed().as_secs_f64();
    let rows = signals.rows().unwrap().len();
    println!("  rebuild from the graph: {rebuild:.2}s ({rows} rows); {:.2}x the scan", rebuild / scan);

    let orgs = graph.list(RecordKind::Organization, None, usize::MAX).unwrap();
    let at = Timestamp::from(now);
    let started = Instant::now();
    for id in &orgs {
        std::hint::black_box(signals.organization(*id, at).unwrap());
    }
    let all = started.elapsed().as_secs_f64();
    println!("  every organization's signals: {} in {all:.2}s = {:.2} ms each", orgs.len(), all * 1e3 / orgs.len() as f64);

    // 1,000 interactions more: the mail's last ones again under new ids.
    let fresh: Vec<Operation> = late
        .into_iter()
        .filter_map(|op| match op {
            Operation::UpsertInteraction(mut r) => {
                r.external_id = format!("late-{}", r.external_id);
                Some(Operation::UpsertInteraction(r))
            }
            _ => None,
        })
        .collect();
    graph.ingest(IngestBatch::trusted("mail", fresh.clone())).unwrap();
    let started = Instant::now();
    let caught = signals.catch_up().unwrap();
    println!(
        "  catch-up after {} new interactions: {} records in {:.1} ms (target < 100 ms)",
        fresh.len(),
        caught.records,
        started.elapsed().as_secs_f64() * 1e3
    );
    println!("  peak RSS of the process: {:.0} MB", peak_rss_mb());
}
