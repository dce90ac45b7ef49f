//! What the plugin runtime persists, as metadata of the graph's store: one [`Table`] per
//! kind of row, which alone knows its key prefix and value type (JSON under the codec's
//! format byte, so fields can be added without migrations):
//!
//! | name                    | value            |
//! |-------------------------|------------------|
//! | `plugin/<name>`         | [`InstalledPlugin`] |
//! | `instance/<name>`       | [`Instance`]     |
//! | `cursor/<instance>`     | the cursor, a string (committed with each checkpoint's operations) |
//! | `run/<instance>/<id>`   | [`RunRecord`]    (ids are ULIDs: in time order) |
//! | `active/<instance>`     | the id of its run in progress (so a restart finds interrupted runs without reading the history) |
//! | `plan/<instance>`       | its schedule's [`Plan`]: next and last scheduled run |
//! | `log/<instance>/<id>/<n>` | the run's log lines, the `n`-th chunk (one per commit), a JSON list of [`LogLine`] |

use chrono::{DateTime, Utc};
use rapport_core::id::RunId;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::PluginHostError;
use super::bindings::PluginFailure;
use super::ledger::Ledger;
use super::manifest::Manifest;
use super::secrets::Secrets;
use rapport_ops::FieldError;
use rapport_schedule::Plan;
use rapport_store::codec;

/// An installed plugin: its manifest and the digest of its component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstalledPlugin {
    /// The manifest, as installed.
    pub manifest: Manifest,
    /// SHA-256 of the component (hex); its file in the plugin directory is named by it.
    pub component_sha256: String,
    /// When it was installed.
    pub installed_at: DateTime<Utc>,
}

/// A configured connection of a plugin; its name is the source of every record it writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Instance {
    /// The instance (and source) name.
    pub name: String,
    /// The plugin it runs.
    pub plugin: String,
    /// Its configuration, handed to `sync` as JSON.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it syncs by itself, if it does.
    #[serde(default)]
    pub schedule: Option<InstanceSchedule>,
    /// A disabled instance is not run by its schedule (it still runs when asked).
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// An instance's schedule: a standard 5-field cron expression in an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceSchedule {
    /// Such as `*/15 * * * *` or `30 2 * * 1-5`.
    pub cron: String,
    /// Such as `Europe/Paris`; `UTC` if not given.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `rapport plugin run`.
    Cli,
    /// `POST /v1/plugins/{instance}/runs`.
    Api,
    /// The instance's schedule.
    Schedule,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Executing now.
    Running,
    /// `sync` returned successfully; everything emitted is committed.
    Succeeded,
    /// The run failed; operations after its last checkpoint were discarded.
    Failed,
    /// The daemon stopped during the run; the next run resumes from its last checkpoint.
    Abandoned,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunFailure {
    /// The plugin reported an expected failure.
    Plugin {
        /// The plugin's error.
        error: PluginFailure,
    },
    /// The plugin's code ran longer than its CPU budget and was interrupted.
    CpuBudget {
        /// The budget, in milliseconds.
        budget_ms: u64,
    },
    /// The plugin tried to grow its memory past the limit.
    OutOfMemory {
        /// The limit, in bytes.
        limit_bytes: u64,
    },
    /// The whole run took longer than its wall-clock limit.
    Timeout {
        /// The limit, in seconds.
        limit_secs: u64,
    },
    /// A call to the host did not finish in time.
    HostCallTimeout {
        /// The host function.
        call: String,
        /// The limit, in seconds.
        limit_secs: u64,
    },
    /// The plugin emitted more operations than allowed between two checkpoints.
    CheckpointCap {
        /// The limit.
        limit: usize,
    },
    /// The plugin emitted more bytes of operations than allowed between two checkpoints.
    PendingBytes {
        /// The limit, in bytes.
        limit_bytes: usize,
    },
    /// A checkpoint's cursor was larger than allowed.
    CursorTooLarge {
        /// The cursor's size.
        bytes: usize,
        /// The limit, in bytes.
        limit_bytes: usize,
    },
    /// The plugin's code trapped (a panic, an invalid instruction).
    Trap {
        /// The trap, and the panic message the plugin printed, if any.
        message: String,
    },
    /// The host failed (storage); the run's work since its last checkpoint was discarded.
    Host {
        /// What failed.
        message: String,
    },
    /// The instance's grant in `rapport.toml` cannot be used (a secret's variable is not set
    /// where the daemon runs); the run did not start.
    Config {
        /// The key and what is wrong with it.
        message: String,
    },
}

impl RunFailure {
    /// The failure's kind, as in its JSON `kind` and the runs metric's `outcome` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Plugin { .. } => "plugin",
            Self::CpuBudget { .. } => "cpu_budget",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::Timeout { .. } => "timeout",
            Self::HostCallTimeout { .. } => "host_call_timeout",
            Self::CheckpointCap { .. } => "checkpoint_cap",
            Self::PendingBytes { .. } => "pending_bytes",
            Self::CursorTooLarge { .. } => "cursor_too_large",
            Self::Trap { .. } => "trap",
            Self::Host { .. } => "host",
            Self::Config { .. } => "config",
        }
    }
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plugin { error } => write!(f, "{error}"),
            Self::CpuBudget { budget_ms } => {
                write!(f, "interrupted: the plugin used its CPU budget of {budget_ms} ms (plugins.cpu_budget_ms in rapport.toml)")
            }
            Self::OutOfMemory { limit_bytes } => {
                write!(f, "out of memory: the plugin tried to grow past {limit_bytes} bytes (plugins.memory_limit_bytes in rapport.toml)")
            }
            Self::Timeout { limit_secs } => write!(
                f,
                "timed out: the run took longer than {limit_secs} s of wall-clock time (plugins.run_timeout_secs in rapport.toml)"
            ),
            Self::HostCallTimeout { call, limit_secs } => {
                write!(f, "timed out: host call `{call}` took longer than {limit_secs} s (plugins.host_call_timeout_secs in rapport.toml)")
            }
            Self::CheckpointCap { limit } => write!(
                f,
                "the plugin emitted more than {limit} operations without a checkpoint; checkpoint more often \
                 (after each page), or raise plugins.max_operations_per_checkpoint in rapport.toml"
            ),
            Self::PendingBytes { limit_bytes } => write!(
                f,
                "the plugin emitted more than {limit_bytes} bytes of operations without a checkpoint; checkpoint more often \
                 (after each page), or raise plugins.max_pending_bytes in rapport.toml"
            ),
            Self::CursorTooLarge { bytes, limit_bytes } => write!(
                f,
                "the plugin checkpointed a cursor of {bytes} bytes, over the limit of {limit_bytes} (plugins.max_cursor_bytes in \
                 rapport.toml); a cursor should say where to resume, not carry data"
            ),
            Self::Trap { message } => write!(f, "trapped: {message}"),
            Self::Host { message } => write!(f, "host error: {message}"),
            Self::Config { message } => write!(f, "the instance's configuration: {message}"),
        }
    }
}

/// An operation a run emitted that was not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkippedEmit {
    /// The record's external id, when it could be read.
    pub external_id: String,
    /// Every problem found, with paths relative to the operation.
    pub errors: Vec<FieldError>,
}

impl SkippedEmit {
    /// The example with the instance's secret values cut out of it.
    /// The example as a run reports it: secrets cut out of every string the plugin
    /// controls (the id, each path, each message), and each string cut short, so a run
    /// record stays small whatever the plugin emitted.
    pub(super) fn reported(self, secrets: &Secrets) -> Self {
        let shown = |text: &str, max_chars| rapport_ops::excerpt(&secrets.redact(text), max_chars).into_owned();
        let errors = self
            .errors
            .into_iter()
            .take(MAX_EXAMPLE_ERRORS)
            .map(|error| FieldError { path: shown(&error.path, 200), message: shown(&error.message, 500) })
            .collect();
        Self { external_id: shown(&self.external_id, 256), errors }
    }
}

/// The record of one run, updated at every checkpoint in the same commit as its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// `run_<ULID>`.
    #[schema(value_type = String)]
    pub id: RunId,
    /// The instance that ran.
    pub instance: String,
    /// Its plugin.
    pub plugin: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// What started it.
    pub trigger: Trigger,
    /// Where it stands.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The cursor it started from.
    pub cursor_before: Option<String>,
    /// The last committed cursor.
    pub cursor: Option<String>,
    /// Checkpoints committed.
    pub checkpoints: u64,
    /// Operations committed to the graph.
    pub operations_applied: u64,
    /// Operations dropped as invalid.
    pub operations_skipped: u64,
    /// Of the operations applied, the deletions.
    #[serde(default)]
    pub operations_deleted: u64,
    /// The first few dropped operations, with the path of each bad field.
    pub skipped_examples: Vec<SkippedEmit>,
    /// What it did on the network.
    #[serde(default)]
    pub network: NetworkCounters,
    /// Log lines kept (see `rapport plugin logs`).
    #[serde(default)]
    pub log_lines: u64,
    /// Log lines past the per-run limit, counted but not kept.
    #[serde(default)]
    pub log_lines_dropped: u64,
    /// Lines at warn or error level, kept or not: a run that succeeded with warnings (a
    /// full last page, say) is worth a look.
    #[serde(default)]
    pub log_warnings: u64,
    /// Why it failed.
    pub failure: Option<RunFailure>,
}

/// A run's network activity, as the host saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkCounters {
    /// HTTP requests sent (each attempt and each redirect hop counts).
    pub http_requests: u64,
    /// Responses 429 (Too Many Requests) or 503 (Service Unavailable).
    pub http_rate_limited: u64,
    /// Requests retried after such a response.
    pub http_retries: u64,
    /// Time spent waiting for the rate limit or a `Retry-After`, in milliseconds.
    pub wait_ms: u64,
    /// Calls refused because the destination is not granted.
    pub denied: u64,
    /// TCP connections opened.
    pub tcp_connections: u64,
    /// Bytes sent (HTTP bodies and TCP writes).
    pub bytes_sent: u64,
    /// Bytes received (HTTP bodies and TCP reads).
    pub bytes_received: u64,
}

/// How many dropped operations a run record keeps in full.
pub const SKIPPED_EXAMPLES: usize = 20;

/// Problems listed per skipped example; an operation may have more.
const MAX_EXAMPLE_ERRORS: usize = 10;

/// How many log lines a run keeps; later ones are counted only.
pub const MAX_RUN_LOG_LINES: u64 = 1000;

/// One line a plugin logged during a run, secrets cut out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// When the host received it.
    pub at: DateTime<Utc>,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The message.
    pub message: String,
    /// Its structured fields.
    pub fields: Vec<(String, String)>,
}

/// A table of the registry: a key prefix and the one type its values have, JSON under the
/// codec's format byte. Its rows are named under the prefix.
pub(super) struct Table<T> {
    prefix: &'static str,
    value: PhantomData<fn() -> T>,
}

/// One row of a [`Table`]: its key, and the type of its value.
pub(super) struct Row<T> {
    key: String,
    value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Table<T> {
    const fn new(prefix: &'static str) -> Self {
        Self { prefix, value: PhantomData }
    }

    /// The row `name`.
    pub(super) fn row(&self, name: &str) -> Row<T> {
        Row { key: format!("{}{name}", self.prefix), value: PhantomData }
    }

    /// The key every row named `name…` starts with.
    pub(super) fn key_prefix(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The values of the rows named `from…` to before `to…`, in key order (or newest first),
    /// at most `limit`.
    pub(super) fn range(
        &self,
        ledger: &dyn Ledger,
        from: &str,
        to: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<T>, PluginHostError> {
        let rows = ledger.meta_range(&self.key_prefix(from), &self.key_prefix(to), newest_first, limit)?;
        rows.iter().map(|(key, bytes)| decode(key, bytes)).collect()
    }

    /// Every row whose name starts with `name`, as (name, value), in key order.
    pub(super) fn scan(&self, ledger: &dyn Ledger, name: &str) -> Result<Vec<(String, T)>, PluginHostError> {
        let rows = ledger.meta_with_prefix(&self.key_prefix(name))?;
        rows.iter().map(|(key, bytes)| Ok((key.trim_start_matches(self.prefix).to_owned(), decode(key, bytes)?))).collect()
    }

    /// Every row's value, in key order.
    pub(super) fn list(&self, ledger: &dyn Ledger) -> Result<Vec<T>, PluginHostError> {
        Ok(self.scan(ledger, "")?.into_iter().map(|(_, value)| value).collect())
    }
}

impl<T: Serialize + DeserializeOwned> Row<T> {
    /// Its stored value.
    pub(super) fn get(&self, ledger: &dyn Ledger) -> Result<Option<T>, PluginHostError> {
        ledger.meta(&self.key)?.map(|bytes| decode(&self.key, &bytes)).transpose()
    }

    /// `value` as the row's metadata entry, for a graph batch.
    pub(super) fn encoded(self, value: &T) -> (String, Vec<u8>) {
        (self.key, codec::encode_json(value))
    }

    /// Writing `value`, for [`Ledger::write_meta`].
    pub(super) fn put(self, value: &T) -> (String, Option<Vec<u8>>) {
        (self.key, Some(codec::encode_json(value)))
    }

    /// Removing the row, for [`Ledger::write_meta`].
    pub(super) fn delete(self) -> (String, Option<Vec<u8>>) {
        (self.key, None)
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, PluginHostError> {
    codec::decode_json(bytes).map_err(|e| PluginHostError::Corrupt { name: key.to_owned(), message: e.to_string() })
}

/// Installed plugins, by name.
pub(super) const PLUGINS: Table<InstalledPlugin> = Table::new("plugin/");
/// Instances, by name.
pub(super) const INSTANCES: Table<Instance> = Table::new("instance/");
/// Each instance's cursor, committed with each checkpoint's operations.
pub(super) const CURSORS: Table<String> = Table::new("cursor/");
/// Run records, by `<instance>/<run id>` (ids are ULIDs: in time order).
pub(super) const RUNS: Table<RunRecord> = Table::new("run/");
/// The id of each instance's run in progress, so a restart finds interrupted runs without
/// reading the history.
pub(super) const ACTIVE: Table<RunId> = Table::new("active/");
/// Each instance's schedule plan.
pub(super) const PLANS: Table<Plan> = Table::new("plan/");
/// Log lines, by `<instance>/<run id>/<chunk>` (one chunk per commit).
pub(super) const LOGS: Table<Vec<LogLine>> = Table::new("log/");

pub(super) fn plugin_key(name: &str) -> Row<InstalledPlugin> {
    PLUGINS.row(name)
}

pub(super) fn instance_key(name: &str) -> Row<Instance> {
    INSTANCES.row(name)
}

pub(super) fn cursor_key(instance: &str) -> Row<String> {
    CURSORS.row(instance)
}

pub(super) fn active_key(instance: &str) -> Row<RunId> {
    ACTIVE.row(instance)
}

pub(super) fn plan_key(instance: &str) -> Row<Plan> {
    PLANS.row(instance)
}

pub(super) fn run_key(instance: &str, id: RunId) -> Row<RunRecord> {
    RUNS.row(&format!("{instance}/{id}"))
}

pub(super) fn log_key(instance: &str, id: RunId, chunk: u32) -> Row<Vec<LogLine>> {
    LOGS.row(&format!("{instance}/{id}/{chunk:08}"))
}

/// An instance's last `limit` runs, newest first.
pub(super) fn newest_runs(ledger: &dyn Ledger, instance: &str, limit: usize) -> Result<Vec<RunRecord>, PluginHostError> {
    RUNS.range(ledger, &format!("{instance}/"), &format!("{instance}/~"), true, limit)
}

/// A run's log lines, in order.
pub(super) fn run_log(ledger: &dyn Ledger, instance: &str, id: RunId) -> Result<Vec<LogLine>, PluginHostError> {
    Ok(LOGS.scan(ledger, &format!("{instance}/{id}/"))?.into_iter().flat_map(|(_, lines)| lines).collect())
}

/// The key prefixes of an instance's history: its runs and their logs.
pub(super) fn history_prefixes(instance: &str) -> [String; 2] {
    [RUNS.key_prefix(&format!("{instance}/")), LOGS.key_prefix(&format!("{instance}/"))]
}

/// Deletes the instance's finished runs that started before `cutoff`, with their logs;
/// returns how many.
pub(super) fn prune_runs(ledger: &dyn Ledger, instance: &str, cutoff: DateTime<Utc>) -> Result<usize, PluginHostError> {
    // Run ids are ULIDs of their start: every id below the cutoff's is older.
    let cutoff_ms = u64::try_from(cutoff.timestamp_millis()).unwrap_or_default();
    let below = RunId::first_at(cutoff_ms);
    let old = RUNS.range(ledger, &format!("{instance}/"), &format!("{instance}/{below}"), false, usize::MAX)?;
    let mut deletes = Vec::new();
    let mut pruned = 0;
    for record in old.iter().filter(|record| record.status != RunStatus::Running) {
        let logs = LOGS.scan(ledger, &format!("{instance}/{}/", record.id))?;
        deletes.extend(logs.into_iter().map(|(name, _)| LOGS.row(&name).delete()));
        deletes.push(run_key(instance, record.id).delete());
        pruned += 1;
    }
    if !deletes.is_empty() {
        ledger.write_meta(deletes)?;
        tracing::debug!(%instance, pruned, "old run records deleted");
    }
    Ok(pruned)
}

pub(super) fn cursor(ledger: &dyn Ledger, instance: &str) -> Result<Option<String>, PluginHostError> {
    cursor_key(instance).get(ledger)
}
