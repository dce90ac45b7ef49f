//! The `rapport` command line: argument parsing and the commands' wiring.
//!
//! Commands are thin: they load the config, open the graph (or, while `serve` holds it,
//! talk to the daemon: `daemon`), and call into the library. Errors leave as `anyhow` with
//! context saying what failed and what to do.

mod daemon;
mod graph;
mod package;
mod plugins;
mod signals;

use std::io::{BufReader, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use rapport::api::{self, AppState};
use rapport::config::{Config, token_digest};
use rapport::demo::{self, WorldSpec};
use rapport::import::{ImportOptions, import_jsonl};
use rapport::ledger::GraphLedger;
use rapport_core::hex;
use rapport_core::id::RunId;
use rapport_graph::Graph;
use rapport_graph::model::{NodeId, RecordKind, Timestamp};
use rapport_ops::{IngestBatch, SOURCE_RULE, is_valid_source};
use rapport_plugin_host::config::PluginsConfig;
use rapport_plugin_host::{InstallOptions, PluginHost};
use rapport_signals::{Signals, SignalsConfig};
use rapport_store::{SledStore, StoreError};

use self::daemon::{AddressFile, Daemon};
use rapport::telemetry::{self, LogFormat};

/// Rapport keeps the context of your client relationships: who they are, who talks to
/// them, what was said and what people noticed — merged from your CRM, mail and calendars.
#[derive(Debug, Parser)]
#[command(
    name = "rapport",
    version,
    max_term_width = 100,
    after_help = "Examples:
  rapport demo                                     generate a demo company, serve it on loopback
  rapport token new                                create an API token and its config line
  rapport --config rapport.toml serve              run the daemon
  rapport import crm.jsonl --source crm-eu         load record operations from a file
  rapport graph search acme                        find an organization
  rapport plugin install ./crm-plugin/             install a connector plugin
  rapport plugin run crm                           sync it now"
)]
pub struct Cli {
    /// Config file (TOML); see config/rapport.example.toml. RAPPORT_* variables override it.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log line format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    /// Log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// Fail on RAPPORT_* environment variables that set nothing (misspelled), instead of
    /// warning about them.
    #[arg(long, global = true)]
    strict: bool,
    /// API token for commands that go through a running daemon (which holds the store);
    /// prefer RAPPORT_TOKEN, which other users cannot see in the process list.
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: the HTTP API over the graph.
    Serve,
    /// Import record operations from a JSON Lines file (one operation per line).
    Import(ImportArgs),
    /// Look at the graph: show, search, timelines, counts.
    Graph {
        #[command(subcommand)]
        command: GraphCommand,
    },
    /// Record an observation about an organization or a person.
    Observe(ObserveArgs),
    /// The change feed: every record change, merge and unmerge, numbered in commit order.
    Changes {
        /// Only changes after this sequence number (0: from the first).
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Relationship signals: an organization's at any time, kept current from the change feed; a rebuild from the graph.
    Signals {
        #[command(subcommand)]
        command: SignalsCommand,
    },
    /// Identity merges: list, undo, merge by hand, pin apart; review likely duplicates and accept or reject them.
    Merges {
        #[command(subcommand)]
        command: MergesCommand,
    },
    /// Connector plugins: install, list, run, and their run history.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Generate the demo world, load it and serve it on loopback without authentication.
    Demo(DemoArgs),
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The JSON Lines file (`-` for standard input).
    file: PathBuf,
    /// The source (connection) these records come from, e.g. `crm-eu` or `legacy-export`.
    #[arg(long, short)]
    source: String,
    /// Operations per atomic commit (default: import.batch_size from the config).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Skip the lines a previous, interrupted import of the same file committed.
    #[arg(long)]
    resume: bool,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Progress {
    /// A bar on a terminal, nothing otherwise.
    Auto,
    /// A progress bar.
    Bar,
    /// One `committed batches=… lines=…` line per batch on stderr, for scripts.
    Lines,
    /// Nothing.
    None,
}

#[derive(Debug, Subcommand)]
enum SignalsCommand {
    /// An organization's signals as JSON: last (two-way) touch, touches in 30/90 days and the 90 before, breadth, each employee's strength with its components, deals and won revenue.
    Show {
        /// An organization's id (org_01J…).
        id: String,
        /// Read them as at this time (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Write every signal aggregate again from the graph alone (the values equal the kept ones).
    Rebuild,
    /// Where the signal maintainer stands: the last change it read, and the newest, as JSON.
    Status,
}

#[derive(Debug, Subcommand)]
enum GraphCommand {
    /// Show an organization (with its context) or a person, as JSON.
    Show {
        /// An id such as org_01J… or per_01J….
        id: String,
    },
    /// Search organizations (or people) by name, email or domain.
    Search {
        /// Words of a name, an email address or a domain.
        query: String,
        /// Search people instead of organizations.
        #[arg(long)]
        people: bool,
    },
    /// Interactions of an organization or person, newest first.
    Timeline {
        /// An id such as org_01J… or per_01J….
        id: String,
        /// Only after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Count live nodes of each kind, as JSON.
    Stats,
}

#[derive(Debug, Subcommand)]
enum MergesCommand {
    /// List merges, newest first, with their reasons.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Undo a merge; the two records are then pinned apart so it is not redone.
    Undo {
        /// The merge id (mrg_…).
        id: String,
    },
    /// Merge two organizations or two people by hand.
    Merge {
        /// One record (org_… or per_…).
        a: String,
        /// The other record, of the same kind.
        b: String,
        /// Why, for the merge log.
        #[arg(long, default_value = "merged by hand")]
        reason: String,
    },
    /// Pin two records apart: they will never be merged.
    Pin {
        /// One record.
        a: String,
        /// The other record.
        b: String,
    },
    /// The review list: records that may be one, best first, with the case, the score and
    /// the reasons; accept or reject each.
    Review {
        /// Leave out pairs scoring under this, 0 to 1 (0 lists every candidate).
        #[arg(long, default_value_t = rapport_graph::DEFAULT_MIN_SCORE)]
        min_score: f64,
    },
    /// Accept a suggestion: merge the two; for a job change, also end the old employment
    /// where the new one starts.
    Accept {
        /// One record (org_… or per_…).
        a: String,
        /// The other.
        b: String,
    },
    /// Reject a suggestion: pin the two apart, never to be suggested again.
    Reject {
        /// One record.
        a: String,
        /// The other.
        b: String,
    },
}

#[derive(Debug, Args)]
struct ObserveArgs {
    /// The organization or person (org_… or per_…).
    about: String,
    /// What you noticed.
    text: String,
    /// A tag (repeatable): decision-style, risk, communication-preference, pain, ...
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Your email address, as the author.
    #[arg(long)]
    author: Option<String>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory of the demo store.
    #[arg(long, default_value = "data/demo")]
    data: PathBuf,
    /// Seed of the generated world.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Size multiplier of the world.
    #[arg(long, default_value_t = 1)]
    scale: usize,
    /// "Now" of the world (RFC 3339); defaults to today, midnight UTC.
    #[arg(long)]
    now: Option<String>,
    /// Load the world and exit without serving.
    #[arg(long)]
    load_only: bool,
    /// The demo plugin's package (plugins/demo built for wasm32-wasip2, with its
    /// plugin.toml), through which the world is loaded; `cargo xtask demo` builds it.
    /// Default: `demo-plugin/` beside the binary or in its build's target directory; without
    /// one, the world is loaded natively instead.
    #[arg(long, value_name = "DIR", env = "RAPPORT_DEMO_PACKAGE")]
    package: Option<PathBuf>,
    /// Write the world as JSON Lines files (one per source, for `rapport import`) into
    /// this directory and exit, without loading it.
    #[arg(long, value_name = "DIR", conflicts_with = "load_only")]
    export: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Install a plugin package: a directory with plugin.toml and plugin.wasm (or the .wasm
    /// file, with plugin.toml beside it). Creates an instance that runs it. Installing the
    /// same package again changes nothing for an existing instance (a different
    /// --instance-config is refused: use `plugin config`); with another --instance it adds
    /// one.
    Install {
        /// The package directory or its .wasm file, or a connector crate's directory (packaged
        /// first, as `plugin package` does).
        path: PathBuf,
        /// Name of the instance to create; it is the source of every record the instance
        /// writes (default: the plugin's name).
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
        /// The instance's configuration: a JSON object, or @FILE to read one.
        #[arg(long, value_name = "JSON|@FILE")]
        instance_config: Option<String>,
    },
    /// Replace an installed plugin with a new build. Its instances keep their configuration
    /// and schedules, and their cursors if the manifest's cursor_format is unchanged.
    Upgrade {
        /// The new package directory or its .wasm file.
        path: PathBuf,
    },
    /// Add another instance of an installed plugin (a second account of the same system).
    Add {
        /// The installed plugin.
        plugin: String,
        /// The new instance's name; it is the source of every record it writes.
        instance: String,
        /// Its configuration: a JSON object, or @FILE to read one.
        #[arg(long, value_name = "JSON|@FILE")]
        instance_config: Option<String>,
    },
    /// Show or change an instance's configuration (secrets belong in rapport.toml).
    Config {
        /// The instance.
        instance: String,
        /// Set a key; VALUE is read as JSON when it parses (numbers, true, [..]), else as text.
        #[arg(long, value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Remove a key.
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
        /// Replace the whole configuration: a JSON object, or @FILE to read one.
        #[arg(long, value_name = "JSON|@FILE", conflicts_with_all = ["set", "unset"])]
        replace: Option<String>,
    },
    /// Forget an instance's cursor: its next run syncs everything again.
    Reset {
        /// The instance.
        instance: String,
    },
    /// Remove an instance with its cursor, schedule, run history and logs (the records it
    /// synced stay). The last instance of a plugin takes the plugin with it.
    Uninstall {
        /// The instance (with --plugin: the plugin).
        name: String,
        /// Remove the plugin named NAME and every instance of it.
        #[arg(long)]
        plugin: bool,
    },
    /// Run a plugin package once against a throwaway store, without a daemon, and print
    /// what it emitted, its checkpoints, final cursor and logs.
    Test(TestArgs),
    /// Build a connector crate (release, for wasm32-wasip2) into an installable package:
    /// plugin.wasm and a plugin.toml with the name, version and description from Cargo.toml,
    /// the plugin API version of the SDK it was built with, and the rest (network, cursor
    /// format) from the crate's own plugin.toml.
    Package {
        /// The crate's directory.
        #[arg(default_value = ".")]
        crate_dir: PathBuf,
        /// Where to write the package (default: CRATE_DIR/package).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// List installed plugins and their instances with their cursors.
    List,
    /// Run a sync of an instance now, showing its progress.
    Run {
        /// The instance.
        instance: String,
    },
    /// Set an instance's schedule: it then syncs by itself while the daemon runs.
    Schedule {
        /// The instance.
        instance: String,
        /// A standard 5-field cron expression: minute hour day-of-month month day-of-week,
        /// such as "*/15 * * * *" or "30 2 * * 1-5".
        #[arg(value_name = "CRON", required_unless_present = "none")]
        cron: Option<String>,
        /// The time zone the expression is read in (an IANA name).
        #[arg(long, value_name = "ZONE", default_value = "UTC")]
        timezone: String,
        /// Remove the schedule.
        #[arg(long, conflicts_with = "cron")]
        none: bool,
    },
    /// Let an instance's schedule run it again.
    Enable {
        /// The instance.
        instance: String,
    },
    /// Stop an instance's schedule from running it (it still runs when asked).
    Disable {
        /// The instance.
        instance: String,
    },
    /// Show an instance's runs, newest first.
    Runs {
        /// The instance.
        instance: String,
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show the lines a run logged (default: the instance's latest run).
    Logs {
        /// The instance.
        instance: String,
        /// The run (run_…); the newest when left out.
        run: Option<RunId>,
    },
}

/// `rapport plugin test`.
#[derive(Debug, clap::Args)]
struct TestArgs {
    /// The package directory or its .wasm file, or a connector crate's directory (packaged
    /// first, as `plugin package` does).
    path: PathBuf,
    /// The instance configuration: a JSON object, or @FILE to read one.
    #[arg(long, value_name = "JSON|@FILE")]
    instance_config: Option<String>,
    /// Start from this cursor (default: none, a first sync).
    #[arg(long)]
    cursor: Option<String>,
    /// Grant a destination (scheme://host[:port]); repeatable. Default: what the manifest
    /// requests.
    #[arg(long = "allow", value_name = "PATTERN")]
    allow: Vec<String>,
    /// A secret for the run, NAME=VALUE or NAME=env:VARIABLE; repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    secret: Vec<String>,
    /// Run this many syncs in a row, each from the cursor the previous one left.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Print each run's full report as one JSON line instead of a summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a random API token and print the line to put in the config.
    New,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format, &cli.log_level);
    let config = || {
        let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
        if cli.strict && !config.unknown_variables.is_empty() {
            let list = config.unknown_variables.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ");
            bail!("invalid configuration (--strict):\n  {list}");
        }
        for unknown in &config.unknown_variables {
            tracing::warn!("{unknown}");
        }
        Ok::<_, anyhow::Error>(config)
    };
    let token = cli.token.as_deref();
    match cli.command {
        Command::Serve => serve(config()?),
        Command::Import(args) => import(&config()?, args),
        Command::Graph { command } => graph::graph_command(&Backend::open(&config()?, token)?, command),
        Command::Observe(args) => graph::observe(&Backend::open(&config()?, token)?, args),
        Command::Merges { command } => graph::merges_command(&Backend::open(&config()?, token)?, command),
        Command::Signals { command } => {
            let config = config()?;
            signals::signals_command(&Backend::open(&config, token)?, &config.signals, command)
        }
        Command::Changes { after, limit } => graph::changes(&Backend::open(&config()?, token)?, after, limit),
        Command::Plugin { command } => plugins::plugin_command(&config()?, token, command),
        Command::Demo(args) => run_demo(config()?, args),
        Command::Token { command: TokenCommand::New } => {
            let token = format!("rpt_{}{}", ulid::Ulid::new(), ulid::Ulid::new()).to_lowercase();
            println!("token: {token}");
            println!("Give the token to clients (the CLI reads RAPPORT_TOKEN); keep only its digest, in rapport.toml:");
            println!();
            println!("[api]");
            println!("token_sha256 = [\"{}\"]", hex(&token_digest(&token)));
            println!();
            println!("If rapport.toml has an [api] table already, add the token_sha256 line (or the digest) to it.");
            Ok(())
        }
    }
}

/// Where a command's reads and changes go: the store itself, or the daemon holding it.
enum Backend {
    Store(Arc<Graph>),
    Daemon(Daemon),
}

impl Backend {
    /// The store, or the daemon when one holds it: found at the address it wrote into the
    /// store's directory, with `--token`, else RAPPORT_TOKEN.
    fn open(config: &Config, token: Option<&str>) -> anyhow::Result<Self> {
        match SledStore::open(&config.store.path, config.store.cache_bytes) {
            Ok(store) => Ok(Self::Store(Arc::new(Graph::new(Arc::new(store), config.identity.clone()).with_limits(config.records)))),
            Err(StoreError::Locked { .. }) => {
                let token = token.map(str::to_owned).or_else(|| config.client_token.as_ref().map(|t| t.expose().to_owned()));
                Ok(Self::Daemon(Daemon::find(&config.store.path, config.api.bind, token)?))
            }
            Err(err) => Err(err).context("cannot open the graph (store.path)"),
        }
    }
}

/// Opens the graph in `dir`, which the `setting` names (`store.path`, `--data`).
fn open_graph(config: &Config, dir: &Path, setting: &str) -> anyhow::Result<Arc<Graph>> {
    let store = SledStore::open(dir, config.store.cache_bytes).map_err(|err| {
        let hint = match err {
            StoreError::Locked { .. } => "; while `rapport serve` runs, send records with POST /v1/ingest, or stop it first",
            _ => "",
        };
        anyhow::Error::new(err).context(format!("cannot open the graph ({setting}){hint}"))
    })?;
    Ok(Arc::new(Graph::new(Arc::new(store), config.identity.clone()).with_limits(config.records)))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// Serves the graph stored in `store` until a signal; commands started meanwhile find the
/// daemon at the address it writes into `store`.
fn serve_graph(
    graph: Arc<Graph>,
    store: &rapport_store::config::StoreConfig,
    plugins: PluginsConfig,
    api: rapport::config::ApiConfig,
    signals: SignalsConfig,
    banner: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    if !api.dev_mode && api.token_digests.is_empty() {
        bail!(
            "no API token is configured: run `rapport token new` and put the digest in api.token_sha256, or set api.dev_mode = true for a loopback-only development server"
        );
    }
    let runtime = runtime()?;
    // The plugin host spawns runs on the runtime, so it is created inside it.
    let _guard = runtime.enter();
    let plugins = Arc::new(PluginHost::new(GraphLedger::over(Arc::clone(&graph)), plugins).context("cannot start the plugin runtime")?);
    // Scheduled runs happen while the daemon serves; a run missed while it was down
    // happens once, now.
    runtime.spawn(Arc::clone(&plugins).run_schedules());
    runtime.spawn(prune_changes_hourly(Arc::clone(&graph), store.change_retention));
    // The first start (or one after an interrupted rebuild) builds the signals from the graph.
    let signals = Arc::new(Signals::open(Arc::clone(&graph), signals).context("cannot open the relationship signals")?);
    runtime.spawn(follow_changes(Arc::clone(&signals)));
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        let listener =
            tokio::net::TcpListener::bind(api.bind).await.with_context(|| format!("cannot listen on {} (api.bind)", api.bind))?;
        let addr = listener.local_addr().context("listener has no address")?;
        let _address_file = AddressFile::write(&store.path, addr)?;
        banner(addr);
        tracing::info!(%addr, dev_mode = api.dev_mode, "api listening");
        api::serve(listener, AppState::new(graph, plugins, signals, api), shutdown).await.context("the API server failed")
    })
}

/// Keeps the signals current: every second, reads what the change feed gained.
async fn follow_changes(signals: Arc<Signals>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        let signals = Arc::clone(&signals);
        match tokio::task::spawn_blocking(move || signals.catch_up()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "the signals could not follow the change feed; trying again in a second"),
            Err(err) => tracing::warn!(error = %err, "the signal maintainer's task failed; trying again in a second"),
        }
    }
}

/// Prunes the change feed of entries older than `retention`, at start and every hour.
async fn prune_changes_hourly(graph: Arc<Graph>, retention: std::time::Duration) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let age = chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
        let cutoff = Timestamp::from(chrono::Utc::now().checked_sub_signed(age).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC));
        let graph = Arc::clone(&graph);
        match tokio::task::spawn_blocking(move || graph.prune_changes(cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(pruned)) => tracing::info!(pruned, "change feed pruned"),
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot prune the change feed"),
            Err(err) => tracing::warn!(error = %err, "the change feed's pruning failed"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed now, not when first awaited,
/// so a signal sent as soon as the banner is out is not lost.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => drop(signal.recv().await),
                    // Without a handler this signal never ends the daemon; the other may.
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut term) => {},
                () = next(&mut interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    // The line is how scripts learn the address: flush it even when stdout is a pipe.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn serve(config: Config) -> anyhow::Result<()> {
    let graph = open_graph(&config, &config.store.path, "store.path")?;
    serve_graph(graph, &config.store, config.plugins, config.api, config.signals, |addr| {
        print_line(&format!("rapport listening on http://{addr}"));
    })
}

fn progress_bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

fn import(config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let graph = open_graph(config, &config.store.path, "store.path")?;
    if !is_valid_source(&args.source) {
        bail!("--source `{}`: {SOURCE_RULE}", args.source);
    }
    let batch_size = args.batch_size.unwrap_or(config.import_batch_size);
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let options =
        ImportOptions { source: args.source.clone(), input_name: args.file.display().to_string(), batch_size, resume: args.resume };
    let started = Instant::now();
    let show_bar = match args.progress {
        Progress::Auto => std::io::stderr().is_terminal(),
        Progress::Bar => true,
        Progress::Lines | Progress::None => false,
    };
    let summary = if args.file.as_os_str() == "-" {
        let bar = if show_bar { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
        let summary = import_jsonl(&graph, std::io::stdin().lock(), &options, |p| report_progress(args.progress, &bar, p))?;
        bar.finish_and_clear();
        summary
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = if show_bar { progress_bar(size, "bytes") } else { ProgressBar::hidden() };
        let summary = import_jsonl(&graph, BufReader::new(file), &options, |p| report_progress(args.progress, &bar, p))?;
        bar.finish_and_clear();
        summary
    };
    let elapsed = started.elapsed();
    println!(
        "imported {} into source `{}`: {} applied, {} skipped, {} merges, {} batches in {:.1}s",
        args.file.display(),
        args.source,
        summary.applied,
        summary.skipped.len(),
        summary.merges,
        summary.batches,
        elapsed.as_secs_f64()
    );
    if summary.resumed_after > 0 {
        println!("resumed after line {} (committed by an earlier run)", summary.resumed_after);
    }
    for skipped in summary.skipped.iter().take(20) {
        println!("  skipped line {} ({}): {}", skipped.line, skipped.external_id.as_deref().unwrap_or("-"), skipped.reason);
    }
    if summary.skipped.len() > 20 {
        println!("  … and {} more skipped lines (see the warnings in the log)", summary.skipped.len() - 20);
    }
    Ok(())
}

fn report_progress(mode: Progress, bar: &ProgressBar, p: rapport::import::ImportProgress) {
    match mode {
        Progress::Lines => eprintln!("committed batches={} lines={}", p.batches, p.lines),
        _ => {
            if bar.length().is_some() {
                bar.set_position(p.bytes);
            } else {
                bar.set_message(format!("{} lines", p.lines));
                bar.tick();
            }
        }
    }
}

fn parse_id(text: &str) -> anyhow::Result<NodeId> {
    Ok(text.parse::<NodeId>()?)
}

fn parse_time(text: Option<&str>) -> anyhow::Result<Option<Timestamp>> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| Timestamp::from(t.to_utc()))
            .with_context(|| format!("`{t}` is not an RFC 3339 time such as 2026-05-01T09:00:00Z"))
    })
    .transpose()
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The file that marks a directory as the demo's own, safe to delete.
const DEMO_MARKER: &str = "RAPPORT-DEMO";

fn run_demo(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let now = match parse_time(args.now.as_deref())? {
        Some(now) => now.to_datetime(),
        None => chrono::Utc::now().date_naive().and_time(chrono::NaiveTime::MIN).and_utc(),
    };
    if let Some(dir) = &args.export {
        let (batches, _) = demo::generate(WorldSpec { seed: args.seed, scale: args.scale, now });
        for file in demo::export(&batches, dir).with_context(|| format!("cannot write the demo world into {}", dir.display()))? {
            println!("wrote {}", file.display());
        }
        println!(
            "import them with: rapport import FILE --source NAME (the file's name); identity rules assume internal_domains = [\"{}\"]",
            demo::INTERNAL_DOMAIN
        );
        return Ok(());
    }
    // The demo starts from a fresh world each time, but only ever deletes a directory it made.
    let marker = args.data.join(DEMO_MARKER);
    if args.data.exists() {
        if !marker.exists() {
            bail!("{} exists and is not a demo store (no {DEMO_MARKER} file in it); pass another --data directory", args.data.display());
        }
        std::fs::remove_dir_all(&args.data).with_context(|| format!("cannot clear the demo store at {}", args.data.display()))?;
    }
    std::fs::create_dir_all(&args.data).with_context(|| format!("cannot create {}", args.data.display()))?;
    std::fs::write(&marker, "This directory holds the store of `rapport demo`; the next demo run deletes it.\n")
        .with_context(|| format!("cannot write {}", marker.display()))?;
    config.identity.internal_domains.insert(demo::INTERNAL_DOMAIN.to_owned());
    if config.identity.source_priority.is_empty() {
        // As a deployment would rank them: the CRM's names over the support desk's and mail's.
        config.identity.source_priority = ["crm", "support", "mail"].map(str::to_owned).to_vec();
    }
    let graph = open_graph(&config, &args.data, "--data")?;
    let plugins = PluginsConfig::with_dir(args.data.join("plugins"));
    let started = Instant::now();
    let how = match args.package.clone().or_else(find_demo_package) {
        Some(package) => {
            load_demo_through_plugin(&graph, &plugins, &package, &args, now)?;
            "through the demo plugin (instances crm, mail, support)"
        }
        None => {
            println!(
                "note: the demo plugin's package is not beside this binary (`cargo xtask demo` builds it, or pass --package); loading the world natively instead"
            );
            load_demo_natively(&graph, WorldSpec { seed: args.seed, scale: args.scale, now })?;
            "natively (sources crm, mail, support)"
        }
    };
    let stats = graph.stats()?;
    println!(
        "loaded the demo world in {:.1}s {how}: {} organizations, {} people, {} deals, {} interactions, {} observations",
        started.elapsed().as_secs_f64(),
        stats.organizations,
        stats.people,
        stats.deals,
        stats.interactions,
        stats.observations
    );
    if args.load_only {
        return Ok(());
    }
    let mut api = config.api.clone();
    api.bind = args.bind;
    api.dev_mode = true;
    if !api.bind.ip().is_loopback() {
        bail!("the demo serves without authentication, so it only binds to loopback; {} is not", api.bind);
    }
    let silent = graph.search(RecordKind::Organization, demo::planted::SILENT_KEY_CLIENT, 1)?;
    let store = rapport_store::config::StoreConfig { path: args.data.clone(), ..config.store.clone() };
    serve_graph(graph, &store, plugins, api, config.signals.clone(), move |addr| {
        print_line(&format!("rapport demo ready: open http://{addr}/v1/organizations"));
        if let Some(id) = silent.first() {
            print_line(&format!("  a key client gone quiet: http://{addr}/v1/organizations/{id}/context"));
            print_line(&format!("  its signals: http://{addr}/v1/organizations/{id}/signals"));
        }
        print_line("  press Ctrl-C to stop");
    })
}

/// The demo plugin's package where `cargo xtask demo` lays it out, or a release ships it:
/// `demo-plugin/` beside the binary or one directory up (the build's target directory).
fn find_demo_package() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("demo-plugin"))
        .find(|package| package.join("plugin.toml").is_file() && package.join("plugin.wasm").is_file())
}

/// Loads the world's sources straight into the graph, the generator run natively: the
/// demo without its plugin.
fn load_demo_natively(graph: &Graph, spec: WorldSpec) -> anyhow::Result<()> {
    let (batches, _) = demo::generate(spec);
    for batch in batches {
        let source = batch.source;
        let report = graph.ingest(IngestBatch::trusted(source, batch.operations))?;
        println!("{source:>8}: {} operations applied, {} skipped", report.applied, report.skipped.len());
    }
    Ok(())
}

/// Installs the demo plugin once per source of the world and runs each instance, showing
/// its progress and its run.
fn load_demo_through_plugin(
    graph: &Arc<Graph>,
    plugins: &PluginsConfig,
    package: &Path,
    args: &DemoArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let _guard = runtime.enter();
    let host = PluginHost::new(GraphLedger::over(Arc::clone(graph)), plugins.clone()).context("cannot start the plugin runtime")?;
    for source in ["crm", "mail", "support"] {
        let config = serde_json::json!({"source": source, "seed": args.seed, "scale": args.scale, "now": now.to_rfc3339()});
        let options = InstallOptions { instance: Some(source.to_owned()), config: Some(config) };
        runtime
            .block_on(host.install(package, options))
            .with_context(|| format!("cannot install the demo plugin from {} (build it with `cargo xtask demo`)", package.display()))?;
        plugins::run_shown(&runtime, &host, source, &format!("{source:>8}: "))?;
    }
    Ok(())
}
