//! Runs: claiming an instance and a pool slot, executing the sync in a fresh sandboxed
//! store, committing its record and log, and reading the history back.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tracing::Instrument;

use crate::bindings::{ConnectorPre, PluginFailure};
use crate::metrics::METRICS;
use crate::network::{Access, Network, TokenBucket};
use crate::registry::{InstalledPlugin, Instance, LogLine, RunFailure, RunRecord, RunStatus, Trigger};
pub use crate::run::CommitTrace;
use crate::run::{ActiveRun, RunLimits, RunState};
use rapport_core::config::ConfigError;
use rapport_core::id::RunId;

use crate::{PluginHost, PluginHostError, io, lock, metrics, registry};

/// How a sync ended: its last committed record, why it failed, the log lines not yet
/// written, and the commits when traced.
struct Ended {
    record: RunRecord,
    failure: Option<RunFailure>,
    log_tail: Option<(String, Vec<u8>)>,
    trace: Option<Vec<CommitTrace>>,
}

/// Adds a finished run to the per-instance metrics.
fn count(record: &RunRecord, elapsed: std::time::Duration) {
    use crate::metrics::{InstanceEventLabels, InstanceLabels};
    let labels = |event| InstanceEventLabels { instance: record.instance.clone(), event };
    let outcome = record.failure.as_ref().map_or("succeeded", RunFailure::kind);
    METRICS.plugin_runs.get_or_create(&labels(outcome)).inc();
    METRICS.plugin_run_duration.get_or_create(&InstanceLabels { instance: record.instance.clone() }).observe(elapsed.as_secs_f64());
    METRICS.plugin_operations.get_or_create(&labels("applied")).inc_by(record.operations_applied);
    METRICS.plugin_operations.get_or_create(&labels("skipped")).inc_by(record.operations_skipped);
    let network = &record.network;
    for (event, count) in [
        ("http_request", network.http_requests),
        ("http_rate_limited", network.http_rate_limited),
        ("http_retry", network.http_retries),
        ("denied", network.denied),
        ("tcp_connection", network.tcp_connections),
        ("bytes_sent", network.bytes_sent),
        ("bytes_received", network.bytes_received),
    ] {
        METRICS.plugin_network.get_or_create(&labels(event)).inc_by(count);
    }
}

/// A run that holds its instance's claim; dropping it releases the claim.
struct Claim {
    running: Arc<Mutex<HashSet<String>>>,
    record: RunRecord,
    instance: Instance,
    plugin: InstalledPlugin,
    /// The cursor the run starts from, as stored (the record shows it with secrets cut out).
    cursor: Option<String>,
    /// Its pool slot, or its place in the queue for one (taken when the run starts).
    slot: Option<Slot>,
}

type SlotWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// A run's slot of the pool, or its turn in the queue for one. The turn is taken when the
/// run is claimed, not when its task first runs, so runs get slots in the order they were
/// started (tokio's semaphore is first in, first out).
enum Slot {
    Held(OwnedSemaphorePermit),
    Queued(SlotWait),
}

impl Slot {
    fn queue(slots: &Arc<tokio::sync::Semaphore>) -> Self {
        let mut wait: SlotWait = Box::pin(Arc::clone(slots).acquire_owned());
        // One poll joins the queue; the task that runs the sync polls again with its waker.
        match wait.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(Ok(permit)) => Self::Held(permit),
            _ => Self::Queued(wait),
        }
    }

    /// Waits for the slot; `None` only if the pool were closed, which it never is.
    async fn take(self) -> Option<OwnedSemaphorePermit> {
        match self {
            Self::Held(permit) => Some(permit),
            Self::Queued(wait) => wait.await.ok(),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.record.instance);
    }
}

/// Names a failed run from what the sandbox saw: a failure the host decided (CPU budget,
/// checkpoint cap, host-call timeout), a refused memory growth, or a plain trap, quoted
/// with the panic message the plugin printed.
/// Whether an out-of-bounds trap is a guest's stack running out. A guest compiled from
/// Rust keeps its stack in linear memory, growing down from a fixed top: past the bottom,
/// the stack pointer wraps and the fault lies beyond 4 GiB; and the captured frames are all
/// one recursing function.
fn exhausted_shadow_stack(trap: &wasmtime::Error) -> bool {
    let wrapped = trap.chain().any(|cause| {
        let text = cause.to_string();
        let address = text.strip_prefix("memory fault at wasm address 0x").and_then(|rest| rest.split(' ').next());
        address.and_then(|hex| u64::from_str_radix(hex, 16).ok()).is_some_and(|address| address >= 1 << 32)
    });
    let recursing = trap.downcast_ref::<wasmtime::WasmBacktrace>().is_some_and(|backtrace| {
        let frames = backtrace.frames();
        frames.len() >= 16 && frames.windows(2).all(|pair| pair[0].func_index() == pair[1].func_index())
    });
    wrapped || recursing
}

fn classify(state: &RunState, trap: &wasmtime::Error) -> RunFailure {
    if let Some(failure) = &state.failure {
        return failure.clone();
    }
    if state.out_of_memory() {
        return RunFailure::OutOfMemory { limit_bytes: state.memory_limit() };
    }
    let code = trap.downcast_ref::<wasmtime::Trap>();
    let what = if code == Some(&wasmtime::Trap::StackOverflow)
        || (code == Some(&wasmtime::Trap::MemoryOutOfBounds) && exhausted_shadow_stack(trap))
    {
        "stack overflow: the plugin's calls nested too deep and exhausted its stack (unbounded recursion?)".to_owned()
    } else {
        code.map_or_else(|| trap.root_cause().to_string(), ToString::to_string)
    };
    let text = state.stderr_text();
    let printed: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with("note:")).collect();
    let message = if printed.is_empty() { what } else { format!("{what}; the plugin printed: {}", printed.join(" ")) };
    RunFailure::Trap { message }
}

impl PluginHost {
    pub(crate) fn limits(&self) -> RunLimits {
        RunLimits {
            memory_bytes: self.config.memory_limit_bytes,
            cpu_budget: self.config.cpu_budget,
            host_call_timeout: self.config.host_call_timeout,
            max_operations_per_checkpoint: self.config.max_operations_per_checkpoint,
            max_operation_bytes: self.config.max_operation_bytes,
            max_pending_bytes: self.config.max_pending_bytes,
            max_cursor_bytes: self.config.max_cursor_bytes,
            max_log_line_bytes: self.config.max_log_line_bytes,
        }
    }

    /// An instance's last `limit` runs, newest first.
    pub fn runs(&self, instance: &str, limit: usize) -> Result<Vec<RunRecord>, PluginHostError> {
        self.instance(instance)?;
        registry::newest_runs(&*self.ledger, instance, limit)
    }

    /// The log lines a run kept, in order.
    pub fn logs(&self, instance: &str, id: RunId) -> Result<Vec<LogLine>, PluginHostError> {
        registry::run_log(&*self.ledger, instance, id)
    }

    /// Deletes the instance's runs that started longer ago than the retention period
    /// (`plugins.run_history_days`), with their logs; returns how many.
    pub fn prune_history(&self, instance: &str) -> Result<usize, PluginHostError> {
        registry::prune_runs(&*self.ledger, instance, self.history_cutoff())
    }

    /// When the oldest run worth keeping started.
    fn history_cutoff(&self) -> DateTime<Utc> {
        let retention = chrono::Duration::from_std(self.config.run_history).unwrap_or(chrono::Duration::MAX);
        self.clock.now().checked_sub_signed(retention).unwrap_or_default()
    }

    /// One run of an instance.
    pub fn run_record(&self, instance: &str, id: RunId) -> Result<Option<RunRecord>, PluginHostError> {
        registry::run_key(instance, id).get(&*self.ledger)
    }

    /// Runs a sync of `instance` to its end; `on_commit` sees the run's record after each
    /// checkpoint. A failed run is a record with status `failed`, not an error: errors
    /// mean the run could not start.
    pub async fn run(
        &self,
        instance: &str,
        trigger: Trigger,
        on_commit: impl Fn(&RunRecord) + Send + Sync + 'static,
    ) -> Result<RunRecord, PluginHostError> {
        let claim = self.claim(instance, trigger)?;
        Ok(self.execute(claim, Box::new(on_commit), false).await.0)
    }

    /// [`Self::run`], also returning every commit's cursor and operations (for the test
    /// harness; a daemon does not keep them).
    pub async fn run_traced(&self, instance: &str, trigger: Trigger) -> Result<(RunRecord, Vec<CommitTrace>), PluginHostError> {
        let claim = self.claim(instance, trigger)?;
        let (record, trace) = self.execute(claim, Box::new(|_| {}), true).await;
        Ok((record, trace.unwrap_or_default()))
    }

    /// Starts a run in the background and returns its first record.
    pub fn start(self: &Arc<Self>, instance: &str, trigger: Trigger) -> Result<RunRecord, PluginHostError> {
        let claim = self.claim(instance, trigger)?;
        let record = claim.record.clone();
        let host = Arc::clone(self);
        tokio::spawn(async move { host.execute(claim, Box::new(|_| {}), false).await });
        Ok(record)
    }

    /// Runs a claimed sync inside its `plugin_run` span and records how it ended.
    async fn execute(
        &self,
        mut claim: Claim,
        on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>,
        trace: bool,
    ) -> (RunRecord, Option<Vec<CommitTrace>>) {
        let span = tracing::info_span!(
            "plugin_run",
            plugin = %claim.plugin.manifest.name,
            version = %claim.plugin.manifest.version,
            instance = %claim.record.instance,
            run_id = %claim.record.id,
            trigger = ?claim.record.trigger,
        );
        async move {
            let started = Instant::now();
            let _permit = match claim.slot.take() {
                Some(slot) => slot.take().await,
                None => None,
            };
            let instance = metrics::InstanceLabels { instance: claim.record.instance.clone() };
            METRICS.plugin_slot_wait.get_or_create(&instance).observe(started.elapsed().as_secs_f64());
            let ended = self.sync(&claim, on_commit, trace).await;
            let mut record = ended.record;
            record.status = if ended.failure.is_some() { RunStatus::Failed } else { RunStatus::Succeeded };
            record.failure = ended.failure;
            record.ended_at = Some(self.clock.now());
            count(&record, started.elapsed());
            let mut finished = vec![
                registry::run_key(&record.instance, record.id).put(&record),
                registry::active_key(&record.instance).delete(),
            ];
            finished.extend(ended.log_tail.map(|(name, lines)| (name, Some(lines))));
            let (ledger, instance, cutoff) = (Arc::clone(&self.ledger), record.instance.clone(), self.history_cutoff());
            let stored = tokio::task::spawn_blocking(move || {
                ledger.write_meta(finished)?;
                // The history's retention is applied as each run ends.
                registry::prune_runs(&*ledger, &instance, cutoff)
            });
            match stored.await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "cannot store the run's final record or prune the history"),
                Err(err) => tracing::error!(error = %err, "the task storing the run's final record failed"),
            }
            let duration_ms = started.elapsed().as_millis();
            match &record.failure {
                None => tracing::info!(checkpoints = record.checkpoints, applied = record.operations_applied, skipped = record.operations_skipped, log_lines_dropped = record.log_lines_dropped, duration_ms, "run succeeded"),
                Some(failure) => tracing::warn!(checkpoints = record.checkpoints, applied = record.operations_applied, skipped = record.operations_skipped, log_lines_dropped = record.log_lines_dropped, duration_ms, %failure, "run failed"),
            }
            drop(claim);
            (record, ended.trace)
        }
        .instrument(span)
        .await
    }

    /// The sync itself: the last committed record, and why it failed if it did.
    async fn sync(&self, claim: &Claim, on_commit: Box<dyn Fn(&RunRecord) + Send + Sync>, trace: bool) -> Ended {
        let pre = match self.prepared_for(&claim.plugin) {
            Ok(pre) => pre,
            Err(err) => {
                let failure = Some(RunFailure::Host { message: err.to_string() });
                return Ended { record: claim.record.clone(), failure, log_tail: None, trace: None };
            }
        };
        let access = match self.access(claim) {
            Ok(access) => access,
            Err(err) => {
                let failure = Some(RunFailure::Config { message: err.to_string() });
                return Ended { record: claim.record.clone(), failure, log_tail: None, trace: None };
            }
        };
        let trust = self.config.instances.get(&claim.record.instance).map(|grant| grant.trust).unwrap_or_default();
        let active = ActiveRun::new(Arc::clone(&self.ledger), claim.record.clone(), on_commit, trace, trust);
        let committed = Arc::clone(&active.committed);
        let network = Network::new(access, self.network.clone());
        let mut store = RunState::store(&self.sandbox.engine, Arc::clone(&self.sandbox.ticks), self.limits(), Some(active), network);
        let config = claim.instance.config.to_string();
        let cursor = claim.cursor.clone();
        let work = async {
            let connector = match pre.instantiate_async(&mut store).await {
                Ok(connector) => connector,
                Err(err) => return Some(RunFailure::Host { message: format!("cannot instantiate the plugin: {err:#}") }),
            };
            store.data_mut().resume_clock();
            let result = connector.call_sync(&mut store, &config, cursor.as_deref()).await;
            store.data_mut().pause_clock();
            match result {
                // The tail emitted after the last checkpoint is committed with the cursor unchanged.
                Ok(Ok(())) => store.data_mut().commit(None).await.err().map(|trap| classify(store.data(), &trap)),
                Ok(Err(error)) => Some(RunFailure::Plugin { error: PluginFailure::from(error).redacted(store.data().network.secrets()) }),
                Err(trap) => Some(classify(store.data(), &trap)),
            }
        };
        let failure = match tokio::time::timeout(self.config.run_timeout, work).await {
            Ok(failure) => failure,
            Err(_) => Some(RunFailure::Timeout { limit_secs: self.config.run_timeout.as_secs() }),
        };
        // A commit that outlived its host call may still land: wait for it, so the final
        // record counts it and is written after it.
        let late = lock(&committed).late.take();
        if let Some(handle) = late
            && let Ok(Ok(record)) = handle.await
        {
            lock(&committed).record = record;
        }
        let mut committed = lock(&committed);
        let mut record = committed.record.clone();
        record.network = store.data().network.counters.clone();
        // Lines logged after the last commit are kept even when its operations are not.
        let log_tail = committed.log.take_chunk(&mut record);
        Ended { record, failure, log_tail, trace: committed.trace.take() }
    }

    /// What a run of the claimed instance may reach: what its manifest requests, narrowed
    /// to what the operator grants it, paced by the grant's (or else the manifest's) rate.
    fn access(&self, claim: &Claim) -> Result<Arc<Access>, ConfigError> {
        let name = &claim.record.instance;
        let grant = self.config.instances.get(name).cloned().unwrap_or_default();
        let requested = &claim.plugin.manifest.network;
        let bucket = grant.rate_limit.or(requested.rate_limit).map(|limit| {
            let mut buckets = lock(&self.buckets);
            let bucket = buckets.entry(name.clone()).or_insert_with(|| Arc::new(TokenBucket::new(limit)));
            if bucket.limit() != limit {
                *bucket = Arc::new(TokenBucket::new(limit));
            }
            Arc::clone(bucket)
        });
        Ok(Arc::new(Access {
            plugin: claim.plugin.manifest.name.clone(),
            instance: name.clone(),
            requested: requested.allowed_hosts.clone(),
            granted: grant.allowed_hosts,
            bucket,
            secrets: self.secrets_of(name)?,
            granted_by: grant.granted_by,
        }))
    }

    /// The pre-linked component of an installed plugin, compiled (or loaded from the
    /// cache) on first use.
    pub(crate) fn prepared_for(&self, plugin: &InstalledPlugin) -> Result<ConnectorPre<RunState>, PluginHostError> {
        if let Some(pre) = lock(&self.prepared).get(&plugin.component_sha256) {
            return Ok(pre.clone());
        }
        let path = self.component_path(&plugin.manifest.name, &plugin.component_sha256);
        let wasm = std::fs::read(&path).map_err(io(&path))?;
        let pre = self.sandbox.prepare(&wasm)?;
        lock(&self.prepared).insert(plugin.component_sha256.clone(), pre.clone());
        Ok(pre)
    }

    /// Marks the instance as running and writes its `running` record.
    fn claim(&self, name: &str, trigger: Trigger) -> Result<Claim, PluginHostError> {
        let instance = self.instance(name)?;
        let plugin: InstalledPlugin =
            registry::plugin_key(&instance.plugin).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownInstance(name.to_owned()))?;
        if !lock(&self.running).insert(name.to_owned()) {
            return Err(PluginHostError::AlreadyRunning(name.to_owned()));
        }
        let cursor = registry::cursor(&*self.ledger, name);
        let now = self.clock.now();
        let id = lock(&self.ids).generate_from_datetime(now.into()).unwrap_or_else(|_| ulid::Ulid::from_datetime(now.into()));
        let record = RunRecord {
            id: RunId::from_ulid(id),
            instance: name.to_owned(),
            plugin: plugin.manifest.name.clone(),
            plugin_version: plugin.manifest.version.clone(),
            trigger,
            status: RunStatus::Running,
            started_at: now,
            ended_at: None,
            cursor_before: None,
            cursor: None,
            checkpoints: 0,
            operations_applied: 0,
            operations_skipped: 0,
            operations_deleted: 0,
            skipped_examples: Vec::new(),
            network: Default::default(),
            log_lines: 0,
            log_lines_dropped: 0,
            log_warnings: 0,
            failure: None,
        };
        let cursor = cursor?;
        let shown = cursor.as_deref().map(|c| self.shown_cursor(name, c));
        let slot = Some(Slot::queue(&self.slots));
        let mut claim = Claim { running: Arc::clone(&self.running), record, instance, plugin, cursor, slot };
        claim.record.cursor_before.clone_from(&shown);
        claim.record.cursor = shown;
        self.ledger.write_meta(vec![
            registry::run_key(name, claim.record.id).put(&claim.record),
            registry::active_key(name).put(&claim.record.id),
        ])?;
        Ok(claim)
    }
}
