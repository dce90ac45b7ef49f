//! Ingest benchmark: the HTTP path against the in-process path (×1 world); the demo world
//! ×10 through the in-process ingest path against raw sled batch inserts of the very same
//! keys and values as the baseline, in the sources' natural order and in the order
//! "interactions first, organizations last" (every interaction then re-filed when its
//! people's employers arrive); context-query latency; judging the whole review list; peak memory of a streamed import at
//! ×1 and ×10. Prints its figures; asserts nothing.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p rapport --bench ingest`).
//! `RAPPORT_BENCH_SCALE` changes the ×10.

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::peak_rss_mb;

use rapport::api::{self, AppState};
use rapport::config::{ApiConfig, token_digest};
use rapport::demo::{self, SourceBatch, WorldSpec};
use rapport::import::{ImportOptions, import_jsonl};
use rapport::ledger::GraphLedger;
use rapport_graph::model::{NodeId, RecordKind, Timestamp};
use rapport_graph::{ContextQuery, DEFAULT_MIN_SCORE, Graph, IdentityRules};
use rapport_ops::IngestBatch;
use rapport_plugin_host::PluginHost;
use rapport_plugin_host::config::PluginsConfig;
use rapport_signals::{Signals, SignalsConfig};
use rapport_store::config::DEFAULT_CACHE_BYTES;
use rapport_store::{EntryIter, KeyRange, SledStore, Store, StoreError, WriteBatch};

const BATCH: usize = 1000;

/// The store's page cache: the configured default, or `RAPPORT_STORE_CACHE_BYTES` as in
/// the daemon's configuration.
fn cache_bytes() -> u64 {
    std::env::var("RAPPORT_STORE_CACHE_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CACHE_BYTES)
}

/// Forwards to sled and keeps a copy of every committed batch, to replay as the baseline.
#[derive(Debug)]
struct RecordingStore {
    inner: SledStore,
    log: Mutex<Vec<WriteBatch>>,
}

impl Store for RecordingStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn range(&self, range: KeyRange, reverse: bool) -> EntryIter<'_> {
        self.inner.range(range, reverse)
    }
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.log.lock().unwrap().push(batch.clone());
        self.inner.apply(batch)
    }
    fn compare_and_swap(&self, key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, StoreError> {
        self.inner.compare_and_swap(key, expected, new)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

fn world(scale: usize) -> Vec<SourceBatch> {
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc();
    demo::generate(WorldSpec { seed: 42, scale, now }).0
}

fn rules() -> IdentityRules {
    IdentityRules::with_defaults([demo::INTERNAL_DOMAIN.to_owned()])
}

struct IngestFigures {
    operations: usize,
    keys: usize,
    refiled: usize,
    elapsed: Duration,
}

fn ingest_all(graph: &Graph, batches: Vec<SourceBatch>) -> IngestFigures {
    let mut figures = IngestFigures { operations: 0, keys: 0, refiled: 0, elapsed: Duration::ZERO };
    let started = Instant::now();
    for batch in batches {
        for chunk in batch.operations.chunks(BATCH) {
            let report = graph.ingest(IngestBatch::trusted(batch.source, chunk.to_vec())).unwrap();
            assert!(report.skipped.is_empty());
            figures.operations += chunk.len();
            figures.keys += report.keys_written;
            figures.refiled += report.refiled;
        }
    }
    figures.elapsed = started.elapsed();
    figures
}

/// Writes the world at `scale` as one JSON Lines file per source; returns the files.
fn write_world(dir: &Path, scale: usize) -> Vec<PathBuf> {
    demo::export(&world(scale), &dir.join(format!("x{scale}"))).unwrap()
}

/// In a child process: import the files (streamed, as `rapport import` does) and print
/// the peak RSS.
fn rss_child(files: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::new(Arc::new(SledStore::open(dir.path(), cache_bytes()).unwrap()), rules());
    for file in files {
        let source = Path::new(file).file_stem().unwrap().to_string_lossy().into_owned();
        let options = ImportOptions { source, input_name: file.clone(), batch_size: BATCH, resume: false };
        let input = std::io::BufReader::new(std::fs::File::open(file).unwrap());
        let summary = import_jsonl(&graph, input, &options, |_| {}).unwrap();
        assert!(summary.skipped.is_empty());
    }
    println!("{:.1}", peak_rss_mb());
}

fn measure_rss(files: &[PathBuf]) -> f64 {
    let output = std::process::Command::new(std::env::current_exe().unwrap()).arg("--rss-child").args(files).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(f64::NAN)
}

/// Ingests `batches` into a fresh graph over a recording store under `dir`; returns the
/// figures, the graph, and the store whose log holds every committed batch.
fn ingest_recorded(dir: &Path, batches: Vec<SourceBatch>) -> (IngestFigures, Graph, Arc<RecordingStore>) {
    let store = Arc::new(RecordingStore { inner: SledStore::open(dir, cache_bytes()).unwrap(), log: Mutex::new(Vec::new()) });
    let graph = Graph::new(Arc::clone(&store) as Arc<dyn Store>, rules());
    let figures = ingest_all(&graph, batches);
    (figures, graph, store)
}

/// Applies the recorded batches straight to a fresh sled store under `dir`: the same keys
/// and values, the same batches. Returns how many keys and how long it took.
fn raw_insert(dir: &Path, log: Vec<WriteBatch>) -> (usize, Duration) {
    let raw = SledStore::open(dir, cache_bytes()).unwrap();
    let keys: usize = log.iter().map(WriteBatch::len).sum();
    let started = Instant::now();
    for batch in log {
        raw.apply(batch).unwrap();
    }
    (keys, started.elapsed())
}

fn report_ingest(label: &str, figures: &IngestFigures, keys: usize, raw_elapsed: Duration) {
    println!(
        "ingest ({label}): {} operations in {:.2}s = {:.0} records/s; {:.2} keys written per record; {} interactions re-filed",
        figures.operations,
        figures.elapsed.as_secs_f64(),
        figures.operations as f64 / figures.elapsed.as_secs_f64(),
        figures.keys as f64 / figures.operations as f64,
        figures.refiled
    );
    println!(
        "  baseline (raw sled batch insert of the same {keys} keys): {:.2}s = {:.0} keys/s; ratio ingest / raw = {:.2} (target <= 2.0)",
        raw_elapsed.as_secs_f64(),
        keys as f64 / raw_elapsed.as_secs_f64(),
        figures.elapsed.as_secs_f64() / raw_elapsed.as_secs_f64()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn http_ingest(batches: Vec<SourceBatch>) -> (usize, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let graph = Arc::new(Graph::new(Arc::new(SledStore::open(dir.path(), cache_bytes()).unwrap()), rules()));
    let config = ApiConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        token_digests: vec![token_digest("bench")],
        max_body_bytes: 64 << 20,
        ..ApiConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/v1/ingest", listener.local_addr().unwrap());
    let plugins = {
        let _inside = runtime.enter();
        Arc::new(PluginHost::new(GraphLedger::over(Arc::clone(&graph)), PluginsConfig::with_dir(dir.path().join("plugins"))).unwrap())
    };
    let signals = Arc::new(Signals::open(Arc::clone(&graph), SignalsConfig::default()).unwrap());
    runtime.spawn(api::serve(listener, AppState::new(graph, plugins, signals, config), std::future::pending()));
    let client = reqwest::blocking::Client::new();
    let bodies: Vec<serde_json::Value> = batches
        .iter()
        .flat_map(|b| b.operations.chunks(BATCH).map(|chunk| serde_json::json!({"source": b.source, "operations": chunk})))
        .collect();
    let operations: usize = batches.iter().map(|b| b.operations.len()).sum();
    let started = Instant::now();
    for body in &bodies {
        let response = client.post(&url).bearer_auth("bench").json(body).send().unwrap();
        assert_eq!(response.status(), 200);
    }
    (operations, started.elapsed())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        rss_child(&args[i + 1..]);
        return;
    }
    let scale: usize = std::env::var("RAPPORT_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    println!("rapport ingest benchmark: demo world x{scale}, batches of {BATCH} operations, sled cache {} MiB", cache_bytes() >> 20);

    // 1. The HTTP path against the in-process path, both with the x1 world on fresh stores.
    let dir = tempfile::tempdir().unwrap();
    let direct = {
        let graph = Graph::new(Arc::new(SledStore::open(&dir.path().join("x1"), cache_bytes()).unwrap()), rules());
        ingest_all(&graph, world(1))
    };
    let (operations, elapsed) = http_ingest(world(1));
    let direct_rate = direct.operations as f64 / direct.elapsed.as_secs_f64();
    let http_rate = operations as f64 / elapsed.as_secs_f64();
    println!(
        "x1 world: in-process {direct_rate:.0} records/s; HTTP (JSON batches of {BATCH}) {http_rate:.0} records/s = {:.2}x of in-process",
        http_rate / direct_rate
    );

    // 2. In-process ingest at scale, recording every committed batch.
    let (figures, graph, store) = ingest_recorded(&dir.path().join("graph"), world(scale));
    let stats = graph.stats().unwrap();

    // 3. Context queries for 1,000 organizations picked at random, on the freshly ingested
    //    graph (before the baseline run fills the page cache with another database).
    let orgs: Vec<NodeId> = graph.list(RecordKind::Organization, None, 1_000_000).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let at = Timestamp::from(chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc());
    let mut latencies = Vec::with_capacity(1000);
    for _ in 0..1000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let id = orgs[(state % orgs.len() as u64) as usize];
        let started = Instant::now();
        let context = graph.organization_context(id, ContextQuery { at, recent: 20 }).unwrap();
        latencies.push(started.elapsed());
        std::hint::black_box(context);
    }
    latencies.sort();
    println!(
        "context query over {} organizations: p50 {:.2} ms, p99 {:.2} ms (target p99 < 5 ms)",
        orgs.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    // The review list, judged whole: every candidate pair the names gave, scored.
    let started = Instant::now();
    let judged = graph.duplicates(0.0, usize::MAX).unwrap();
    let shown = judged.iter().filter(|s| s.score >= DEFAULT_MIN_SCORE).count();
    println!(
        "review list: {} candidate pairs judged in {:.2}s ({:.1} µs each), {shown} at or above the {DEFAULT_MIN_SCORE} threshold",
        judged.len(),
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e6 / judged.len().max(1) as f64
    );
    let log = std::mem::take(&mut *store.log.lock().unwrap());
    drop(graph);
    drop(store);

    // 4. Baseline: the same keys and values, the same batches, straight into sled.
    let (keys, raw_elapsed) = raw_insert(&dir.path().join("raw"), log);
    report_ingest(
        &format!("in-process, x{scale}, sources in their order, {} interactions", stats.interactions),
        &figures,
        keys,
        raw_elapsed,
    );

    // 5. The hard order: mail and the support desk first, the CRM (organizations, people's
    //    employers) last, so every interaction is filed again when its people's employers
    //    arrive. Its own baseline: the keys this order writes, straight into sled.
    let mut reversed = world(scale);
    reversed.reverse();
    let order: Vec<&str> = reversed.iter().map(|b| b.source).collect();
    let (late, graph, store) = ingest_recorded(&dir.path().join("late"), reversed);
    drop(graph);
    let log = std::mem::take(&mut *store.log.lock().unwrap());
    drop(store);
    let (late_keys, late_raw) = raw_insert(&dir.path().join("late-raw"), log);
    report_ingest(&format!("in-process, x{scale}, sources in the order {}", order.join(", ")), &late, late_keys, late_raw);
    let extra = late.elapsed.saturating_sub(figures.elapsed);
    println!(
        "  re-attribution: {:.1} µs more per re-filed interaction than the natural order ({:.2}s more in all)",
        extra.as_secs_f64() * 1e6 / late.refiled.max(1) as f64,
        extra.as_secs_f64()
    );

    // 6. Peak memory of a streamed import, each scale in a fresh process.
    let files_1 = write_world(dir.path(), 1);
    let files_n = write_world(dir.path(), scale);
    let (rss_1, rss_n) = (measure_rss(&files_1), measure_rss(&files_n));
    println!(
        "peak RSS of a streamed import: x1 {rss_1:.0} MB, x{scale} {rss_n:.0} MB; growth {:.0} MB (budget: sled cache {} MB + 100 MB)",
        rss_n - rss_1,
        cache_bytes() >> 20
    );
}
