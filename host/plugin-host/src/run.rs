//! One run's sandbox state and the host functions a plugin calls: `emit` queues parsed
//! operations, `checkpoint` commits them with the cursor and the run's record in one atomic
//! batch, `log` re-emits a line inside the run's span (secrets cut out), `secret` hands
//! over the instance's own secrets, and the `http` and `tcp` interfaces go through the
//! run's [`Network`]. Also the CPU clock the epoch callback reads and the memory limiter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::Resource;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use super::bindings::{self, HttpRequest, HttpResponse, Level, NetworkError, TlsMode};
use super::ledger::{Ledger, LedgerError};
use super::lock;
use super::network::Network;
use super::network::tcp::PluginStream;
use super::registry::{self, LogLine, MAX_RUN_LOG_LINES, RunFailure, RunRecord, SKIPPED_EXAMPLES, SkippedEmit};
use rapport_ops::{self as ops, IngestBatch, InvalidPolicy, Operation, SourceTrust};

/// Bytes of the plugin's stderr kept, to quote a panic message in the run record.
const STDERR_CAPACITY: usize = 16 << 10;
/// Longest log message re-emitted, in bytes; longer ones are cut.
const MAX_LOG_MESSAGE_BYTES: usize = 4096;
/// Fields kept per log line, and the longest field name.
const MAX_LOG_FIELDS: usize = 32;
const MAX_LOG_KEY_BYTES: usize = 64;
/// What ends a cut log text.
const CUT_MARK: &str = "…[cut: plugins.max_log_line_bytes]";

/// The limits every run gets.
#[derive(Debug, Clone)]
pub(super) struct RunLimits {
    pub memory_bytes: u64,
    pub cpu_budget: Duration,
    pub host_call_timeout: Duration,
    pub max_operations_per_checkpoint: usize,
    pub max_operation_bytes: usize,
    pub max_pending_bytes: usize,
    pub max_cursor_bytes: usize,
    pub max_log_line_bytes: usize,
}

/// The state of one store: WASI's empty context, the limits' bookkeeping and, during a
/// sync, the run being written.
pub(crate) struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    memory: MemoryLimit,
    limits: RunLimits,
    /// Guest execution time so far; since when (and since which epoch tick) the guest has
    /// been running; the ticker's count.
    guest_time: Duration,
    running_since: Option<(Instant, u64)>,
    ticks: Arc<AtomicU64>,
    /// Why the host stopped the run, when it did.
    pub failure: Option<RunFailure>,
    run: Option<ActiveRun>,
    pub network: Network,
}

/// A commit still running after its host call timed out: it may yet land.
pub(super) type LateCommit = tokio::task::JoinHandle<Result<RunRecord, LedgerError>>;

/// What a run has committed, shared with the runner so it survives the run's store (which
/// a timeout drops).
#[derive(Debug)]
pub(super) struct Committed {
    /// The run record as last committed.
    pub record: RunRecord,
    /// A commit whose host call timed out; the runner waits for it before writing the
    /// final record, so a late commit cannot overwrite it.
    pub late: Option<LateCommit>,
    /// The run's log, kept across its commits.
    pub log: RunLog,
    /// Every commit's cursor and operations, when a test harness asked for them.
    pub trace: Option<Vec<CommitTrace>>,
}

/// Log lines not yet written, and how many were written or dropped.
#[derive(Debug, Default)]
pub(super) struct RunLog {
    pub pending: Vec<LogLine>,
    pub chunks: u32,
    pub kept: u64,
    pub dropped: u64,
    pub warnings: u64,
}

impl RunLog {
    /// The metadata entry of the pending lines (the next chunk), if there are any; the
    /// record learns the counts.
    pub fn take_chunk(&mut self, record: &mut RunRecord) -> Option<(String, Vec<u8>)> {
        record.log_lines = self.kept;
        record.log_lines_dropped = self.dropped;
        record.log_warnings = self.warnings;
        if self.pending.is_empty() {
            return None;
        }
        let entry = registry::log_key(&record.instance, record.id, self.chunks).encoded(&self.pending);
        self.pending.clear();
        self.chunks += 1;
        Some(entry)
    }
}

/// One commit of a run, as a test harness reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CommitTrace {
    /// The checkpoint's cursor; `None` for the tail committed when `sync` returned.
    pub cursor: Option<String>,
    /// The operations the plugin emitted since the previous commit, as parsed.
    pub operations: Vec<Operation>,
}

/// A sync in progress: where its operations go and what it has done so far.
pub(super) struct ActiveRun {
    ledger: Arc<dyn Ledger>,
    /// Operations emitted since the last checkpoint, parsed.
    pending: Vec<Operation>,
    /// How many were emitted since the last checkpoint, parsed or not, and their bytes.
    emitted: usize,
    emitted_bytes: usize,
    /// The record as it will be committed next; `committed` is the last one written.
    record: RunRecord,
    pub committed: Arc<Mutex<Committed>>,
    on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>,
    /// What the instance may assert about identity.
    trust: SourceTrust,
}

impl ActiveRun {
    pub fn new(
        ledger: Arc<dyn Ledger>,
        record: RunRecord,
        on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>,
        trace: bool,
        trust: SourceTrust,
    ) -> Self {
        let committed =
            Arc::new(Mutex::new(Committed { record: record.clone(), late: None, log: RunLog::default(), trace: trace.then(Vec::new) }));
        Self { ledger, pending: Vec::new(), emitted: 0, emitted_bytes: 0, record, committed, on_commit, trust }
    }
}

impl std::fmt::Debug for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunState").field("limits", &self.limits).field("failure", &self.failure).finish_non_exhaustive()
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Refuses memory growth past the limit and remembers that it did, so the run can say
/// "out of memory" rather than the trap the guest's allocator turns it into. The limit is
/// the run's, summed over every memory of its component (a component may declare several),
/// and so is the cap on table elements.
#[derive(Debug)]
struct MemoryLimit {
    limit: usize,
    hit: bool,
    /// Bytes of all the run's memories, and elements of all its tables.
    memory_bytes: usize,
    table_elements: usize,
}

/// Table elements one run may hold, over all its tables.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimit {
    fn new(limit: usize) -> Self {
        Self { limit, hit: false, memory_bytes: 0, table_elements: 0 }
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Creating a memory counts as growing it from zero, so the sum covers every one.
        let total = self.memory_bytes.saturating_add(desired.saturating_sub(current));
        if total > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_add(desired.saturating_sub(current));
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }
}

impl RunState {
    /// A fresh store: WASI with nothing granted (no preopens, environment, stdio or
    /// network; stderr captured for panic messages), the memory limiter, and the epoch
    /// deadline that yields while within the CPU budget and interrupts past it.
    pub fn store(
        engine: &wasmtime::Engine,
        ticks: Arc<AtomicU64>,
        limits: RunLimits,
        run: Option<ActiveRun>,
        network: Network,
    ) -> Store<Self> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        let memory = MemoryLimit::new(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX));
        let state = Self {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory,
            limits,
            guest_time: Duration::ZERO,
            running_since: None,
            ticks,
            failure: None,
            run,
            network,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            state.count_guest_time();
            if state.guest_time > state.limits.cpu_budget {
                let budget_ms = u64::try_from(state.limits.cpu_budget.as_millis()).unwrap_or(u64::MAX);
                state.failure = Some(RunFailure::CpuBudget { budget_ms });
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// The guest starts (or resumes after a host call) executing.
    pub fn resume_clock(&mut self) {
        self.running_since = Some((Instant::now(), self.ticks.load(Ordering::Relaxed)));
    }

    /// The guest stops executing (a host call, the end of the call): its time is counted.
    pub fn pause_clock(&mut self) {
        self.count_guest_time();
        self.running_since = None;
    }

    /// Adds the time since the clock last looked. A guest that runs meets the epoch
    /// deadline at every tick, so more than one tick since the last look means it waited —
    /// blocked in a WASI call such as a sleep, or set aside by the scheduler — and at most
    /// one tick of that interval was its own.
    fn count_guest_time(&mut self) {
        if let Some((since, tick)) = self.running_since {
            let now = self.ticks.load(Ordering::Relaxed);
            let elapsed = since.elapsed();
            self.guest_time += if now.saturating_sub(tick) <= 1 { elapsed } else { elapsed.min(super::sandbox::EPOCH_TICK) };
            self.running_since = Some((Instant::now(), now));
        }
    }

    /// Whether the memory limiter refused a growth.
    pub fn out_of_memory(&self) -> bool {
        self.memory.hit
    }

    /// The memory limit, in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.limits.memory_bytes
    }

    /// What the plugin printed on stderr (a panic message), secrets cut out.
    pub fn stderr_text(&self) -> String {
        self.network.secrets().redact(&String::from_utf8_lossy(&self.stderr.contents())).into_owned()
    }

    fn stop(&mut self, failure: RunFailure) -> wasmtime::Error {
        let error = wasmtime::Error::msg(failure.to_string());
        self.failure = Some(failure);
        error
    }

    fn run_or_trap(&mut self, call: &str) -> wasmtime::Result<&mut ActiveRun> {
        self.run.as_mut().ok_or_else(|| wasmtime::Error::msg(format!("host call `{call}` is only available during `sync`")))
    }

    /// Commits the pending operations with `cursor` (kept unchanged for `None`) and the
    /// updated run record in one atomic batch.
    pub async fn commit(&mut self, cursor: Option<String>) -> wasmtime::Result<()> {
        let timeout = self.limits.host_call_timeout;
        if let Some(bytes) = cursor.as_ref().map(String::len).filter(|&bytes| bytes > self.limits.max_cursor_bytes) {
            return Err(self.stop(RunFailure::CursorTooLarge { bytes, limit_bytes: self.limits.max_cursor_bytes }));
        }
        let network = self.network.counters.clone();
        let secrets = self.network.secrets().clone();
        let run = self.run_or_trap("checkpoint")?;
        let operations = std::mem::take(&mut run.pending);
        run.emitted = 0;
        run.emitted_bytes = 0;
        let mut record = run.record.clone();
        record.network = network;
        if let Some(cursor) = &cursor {
            record.checkpoints += 1;
            // The record is shown (API, CLI); the plugin resumes from the stored cursor.
            record.cursor = Some(secrets.redact(cursor).into_owned());
        }
        let mut meta: Vec<(String, Vec<u8>)> = cursor.iter().map(|c| registry::cursor_key(&record.instance).encoded(c)).collect();
        {
            let mut committed = lock(&run.committed);
            meta.extend(committed.log.take_chunk(&mut record));
            if let Some(trace) = committed.trace.as_mut() {
                trace.push(CommitTrace { cursor: cursor.clone(), operations: operations.clone() });
            }
        }
        let deletions: Vec<usize> =
            operations.iter().enumerate().filter(|(_, op)| matches!(op, Operation::Delete(_))).map(|(index, _)| index).collect();
        let batch = IngestBatch {
            source: record.instance.clone(),
            operations,
            policy: InvalidPolicy::SkipInvalid,
            trust: run.trust,
            meta,
            now: chrono::Utc::now(),
        };
        let ledger = Arc::clone(&run.ledger);
        let span = tracing::Span::current();
        let mut commit = tokio::task::spawn_blocking(move || {
            let _run = span.enter();
            let report = ledger.ingest_then(
                batch,
                Box::new(|report| {
                    record.operations_applied += report.applied as u64;
                    record.operations_skipped += report.skipped.len() as u64;
                    let skipped_deletions = report.skipped.iter().filter(|s| deletions.binary_search(&s.index).is_ok()).count();
                    record.operations_deleted += (deletions.len() - skipped_deletions) as u64;
                    for skipped in &report.skipped {
                        let example =
                            SkippedEmit { external_id: skipped.external_id.clone(), errors: skipped.errors.clone() }.reported(&secrets);
                        log_skipped(&example);
                        keep_example(&mut record, example);
                    }
                    vec![registry::run_key(&record.instance, record.id).encoded(&record)]
                }),
            );
            let report = report?;
            if report.untrusted > 0 {
                tracing::warn!(
                    set_aside = report.untrusted,
                    "assertions this instance is not trusted for were set aside: `internal` flags ignored, cluster joins sent to the review list (trust under [plugins.instances.<name>] in rapport.toml)"
                );
            }
            Ok(record)
        });
        let record = match tokio::time::timeout(timeout, &mut commit).await {
            Err(_) => {
                lock(&run.committed).late = Some(commit);
                let limit_secs = timeout.as_secs();
                return Err(self.stop(RunFailure::HostCallTimeout { call: "checkpoint".to_owned(), limit_secs }));
            }
            Ok(Err(join)) => return Err(self.stop(RunFailure::Host { message: format!("the commit task failed: {join}") })),
            Ok(Ok(Err(ledger))) => return Err(self.stop(RunFailure::Host { message: ledger.to_string() })),
            Ok(Ok(Ok(record))) => record,
        };
        let run = self.run_or_trap("checkpoint")?;
        run.record = record.clone();
        lock(&run.committed).record = record.clone();
        (run.on_commit)(&record);
        Ok(())
    }
}

/// At most `max` bytes of `text`, taken from `budget`; a cut text ends at a character
/// boundary with [`CUT_MARK`] (which may exceed a budget smaller than itself).
fn cut_to(text: &str, max: usize, budget: &mut usize) -> String {
    let max = max.min(*budget);
    let kept = if text.len() <= max {
        text.to_owned()
    } else {
        let mut end = max.saturating_sub(CUT_MARK.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{CUT_MARK}", &text[..end])
    };
    *budget = budget.saturating_sub(kept.len());
    kept
}

/// Logs a dropped operation as the run reports it (secrets cut out, quotes cut short).
fn log_skipped(example: &SkippedEmit) {
    let reason = example.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    tracing::warn!(external_id = %example.external_id, %reason, "operation skipped");
}

/// Keeps the first few dropped operations in full; the rest are only counted.
fn keep_example(record: &mut RunRecord, example: SkippedEmit) {
    if record.skipped_examples.len() < SKIPPED_EXAMPLES {
        record.skipped_examples.push(example);
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl RunState {
    /// Re-emits a guest log line inside the run's span and returns it as stored: secrets
    /// cut out before the line is shortened, so no part of one survives a cut.
    fn log_line(&self, level: Level, message: &str, fields: &[(String, String)]) -> LogLine {
        let secrets = self.network.secrets();
        let mut budget = self.limits.max_log_line_bytes;
        let message = cut_to(&secrets.redact(message), budget.min(MAX_LOG_MESSAGE_BYTES), &mut budget);
        let fields: Vec<(String, String)> = fields
            .iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| {
                let key = cut_to(&secrets.redact(k), MAX_LOG_KEY_BYTES, &mut budget);
                (key, cut_to(&secrets.redact(v), budget, &mut budget))
            })
            .collect();
        // The plugin's fields have names of its choosing, which tracing's fields cannot
        // take: they follow the message as `key=value`, as `rapport plugin logs` shows them.
        let shown: String =
            std::iter::once(message.clone()).chain(fields.iter().map(|(k, v)| format!("{k}={v}"))).collect::<Vec<_>>().join(" ");
        match level {
            Level::Trace => tracing::trace!(target: "plugin", "{shown}"),
            Level::Debug => tracing::debug!(target: "plugin", "{shown}"),
            Level::Info => tracing::info!(target: "plugin", "{shown}"),
            Level::Warn => tracing::warn!(target: "plugin", "{shown}"),
            Level::Error => tracing::error!(target: "plugin", "{shown}"),
        }
        LogLine { at: chrono::Utc::now(), level: level_name(level).to_owned(), message, fields }
    }
}

impl bindings::TypesHost for RunState {}

impl bindings::Host for RunState {
    async fn emit(&mut self, operations: Vec<String>) -> wasmtime::Result<()> {
        self.pause_clock();
        let RunLimits { max_operations_per_checkpoint: limit, max_operation_bytes, max_pending_bytes, .. } = self.limits;
        let secrets = self.network.secrets().clone();
        let run = self.run_or_trap("emit")?;
        run.emitted += operations.len();
        if run.emitted > limit {
            return Err(self.stop(RunFailure::CheckpointCap { limit }));
        }
        run.emitted_bytes = operations.iter().map(String::len).fold(run.emitted_bytes, usize::saturating_add);
        if run.emitted_bytes > max_pending_bytes {
            return Err(self.stop(RunFailure::PendingBytes { limit_bytes: max_pending_bytes }));
        }
        let mut dropped = 0;
        for json in &operations {
            let parsed = if json.len() > max_operation_bytes {
                // Not parsed: its id, if any, is not worth reading a huge document for.
                let message = format!(
                    "the operation has {} bytes, over the limit of {max_operation_bytes} (plugins.max_operation_bytes)",
                    json.len()
                );
                Err(ops::FieldError { path: String::new(), message })
            } else {
                ops::parse_operation(json, "")
            };
            match parsed {
                Ok(operation) => run.pending.push(operation),
                Err(error) => {
                    let external_id = (json.len() <= max_operation_bytes)
                        .then(|| serde_json::from_str::<serde_json::Value>(json).ok())
                        .flatten()
                        .and_then(|v| v.get("external_id").and_then(|id| id.as_str().map(str::to_owned)))
                        .unwrap_or_default();
                    let example = SkippedEmit { external_id, errors: vec![error] }.reported(&secrets);
                    log_skipped(&example);
                    run.record.operations_skipped += 1;
                    keep_example(&mut run.record, example);
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            tracing::debug!(emitted = operations.len(), dropped, "emitted operations parsed");
        }
        self.resume_clock();
        Ok(())
    }

    async fn checkpoint(&mut self, cursor: String) -> wasmtime::Result<()> {
        self.pause_clock();
        self.commit(Some(cursor)).await?;
        self.resume_clock();
        Ok(())
    }

    /// A log line is work done for the plugin, never a wait, so its time stays on the
    /// guest's CPU clock: a flood of lines spends the run's CPU budget.
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        // Past the lines a run keeps, a line is only counted: neither the store nor the
        // daemon's own log (stderr) takes a flood, and counting costs the host next to nothing.
        let over = self.run.as_ref().is_some_and(|run| {
            let log = &mut lock(&run.committed).log;
            if matches!(level, Level::Warn | Level::Error) {
                log.warnings += 1;
            }
            let over = log.kept >= MAX_RUN_LOG_LINES;
            if over {
                log.dropped += 1;
            }
            over
        });
        if !over {
            let line = self.log_line(level, &message, &fields);
            if let Some(run) = self.run.as_ref() {
                let log = &mut lock(&run.committed).log;
                log.kept += 1;
                log.pending.push(line);
            }
        }
        Ok(())
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.network.secrets().get(&name).map(str::to_owned))
    }
}

impl bindings::HttpHost for RunState {
    async fn send(&mut self, request: HttpRequest) -> wasmtime::Result<Result<HttpResponse, NetworkError>> {
        self.pause_clock();
        let response = self.network.send(request).await;
        self.resume_clock();
        Ok(response)
    }
}

impl bindings::TcpHost for RunState {
    async fn connect(&mut self, host: String, port: u16, tls: TlsMode) -> wasmtime::Result<Result<Resource<PluginStream>, NetworkError>> {
        self.pause_clock();
        let connected = self.network.connect(&host, port, tls).await;
        self.resume_clock();
        Ok(match connected {
            Ok(stream) => Ok(self.table.push(stream)?),
            Err(error) => Err(error),
        })
    }
}

impl bindings::HostConnection for RunState {
    async fn read(&mut self, stream: Resource<PluginStream>, max: u32) -> wasmtime::Result<Result<Vec<u8>, NetworkError>> {
        self.pause_clock();
        let read = self.table.get_mut(&stream)?.read(max, &mut self.network.counters).await;
        self.resume_clock();
        Ok(read)
    }

    async fn write(&mut self, stream: Resource<PluginStream>, data: Vec<u8>) -> wasmtime::Result<Result<(), NetworkError>> {
        self.pause_clock();
        let written = self.table.get_mut(&stream)?.write(&data, &mut self.network.counters).await;
        self.resume_clock();
        Ok(written)
    }

    async fn start_tls(&mut self, stream: Resource<PluginStream>) -> wasmtime::Result<Result<(), NetworkError>> {
        self.pause_clock();
        let timeout = self.network.connect_timeout();
        let upgraded = self.table.get_mut(&stream)?.start_tls(timeout).await;
        self.resume_clock();
        Ok(upgraded)
    }

    async fn drop(&mut self, stream: Resource<PluginStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        self.network.open_connections -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::MemoryLimit;

    #[test]
    fn the_memory_limit_is_the_sum_over_every_memory_of_a_run() {
        let mut limit = MemoryLimit::new(100);
        // Three memories created at 30 bytes each fit; a fourth does not, nor growing one.
        for _ in 0..3 {
            assert!(limit.memory_growing(0, 30, None).unwrap());
        }
        assert!(!limit.memory_growing(0, 30, None).unwrap(), "each alone is under the limit, together they are not");
        assert!(limit.hit);
        assert!(!limit.memory_growing(30, 41, None).unwrap());
        assert!(limit.memory_growing(30, 40, None).unwrap(), "up to the limit exactly");
        assert_eq!(limit.memory_bytes, 100);
    }
}
