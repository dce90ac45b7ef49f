//! `plugin`: installing, configuring, running and inspecting connector plugins, on the
//! store with a plugin host of the command's own, or through the daemon holding the store;
//! and `plugin test`, which needs neither.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use reqwest::Method;

use super::daemon::Daemon;
use super::{Backend, PluginCommand, TestArgs, package, runtime};
use rapport::config::Config;
use rapport::ledger::GraphLedger;
use rapport_core::Secret;
use rapport_core::id::RunId;
use rapport_net::HostPattern;
use rapport_plugin_host::harness::{TestBench, TestOptions};
use rapport_plugin_host::registry::{InstalledPlugin, Instance, InstanceSchedule, LogLine, RunRecord, RunStatus, Trigger};
use rapport_plugin_host::{InstallOptions, InstanceStatus, Overview, PluginHost, PluginStatus, Uninstalled, Upgraded};

fn spinner(instance: &str) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar.set_message(format!("syncing {instance}"));
    bar
}

fn show_progress(bar: &ProgressBar, instance: &str, record: &RunRecord) {
    bar.set_message(format!(
        "{instance}: {} checkpoints, {} operations applied, {} skipped",
        record.checkpoints, record.operations_applied, record.operations_skipped
    ));
}

/// Runs a sync of `instance` with a spinner showing its progress, then prints the run
/// after `prefix`; a failed run is an error.
pub(super) fn run_shown(runtime: &tokio::runtime::Runtime, host: &PluginHost, instance: &str, prefix: &str) -> anyhow::Result<()> {
    let bar = spinner(instance);
    let (shown, name) = (bar.clone(), instance.to_owned());
    let record = runtime.block_on(host.run(instance, Trigger::Cli, move |r: &RunRecord| show_progress(&shown, &name, r)))?;
    bar.finish_and_clear();
    print!("{prefix}");
    print_run(&record);
    match &record.failure {
        Some(failure) => bail!("the run of {instance} failed: {failure}"),
        None => Ok(()),
    }
}

pub(super) fn plugin_command(config: &Config, token: Option<&str>, command: PluginCommand) -> anyhow::Result<()> {
    // Testing and packaging need no store; testing runs over a throwaway one.
    let command = match command {
        PluginCommand::Test(mut args) => {
            args.path = packaged(args.path)?;
            return plugin_test(config, args);
        }
        PluginCommand::Package { crate_dir, out } => {
            let written = package::package(&crate_dir, out.as_deref())?;
            println!("packaged {} into {}", crate_dir.display(), written.display());
            println!(
                "try it: rapport plugin test {0} --instance-config '{{…}}'; install it: rapport plugin install {0}",
                written.display()
            );
            return Ok(());
        }
        PluginCommand::Install { path, instance, instance_config } => {
            PluginCommand::Install { path: packaged(path)?, instance, instance_config }
        }
        other => other,
    };
    match Backend::open(config, token)? {
        Backend::Store(graph) => {
            let runtime = runtime()?;
            let _guard = runtime.enter();
            let plugins = PluginHost::new(GraphLedger::over(graph), config.plugins.clone()).context("cannot start the plugin runtime")?;
            on_store(&runtime, &plugins, command)
        }
        Backend::Daemon(daemon) => through_daemon(&daemon, command),
    }
}

/// `path` itself, or when it is a connector crate, the package built from it.
fn packaged(path: PathBuf) -> anyhow::Result<PathBuf> {
    if package::is_crate(&path) { package::package(&path, None) } else { Ok(path) }
}

/// The plugin commands on the store, with a plugin host of their own.
fn on_store(runtime: &tokio::runtime::Runtime, plugins: &PluginHost, command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Install { path, instance, instance_config } => {
            let instance_config = instance_config.map(|text| parse_json_argument("--instance-config", &text)).transpose()?;
            let options = InstallOptions { instance, config: instance_config };
            let (plugin, instance) = runtime
                .block_on(plugins.install(&path, options))
                .with_context(|| format!("cannot install the plugin at {}", path.display()))?;
            print_installed(&plugin, &instance);
        }
        PluginCommand::Upgrade { path } => {
            let upgraded = runtime
                .block_on(plugins.upgrade(&path))
                .with_context(|| format!("cannot upgrade with the package at {}", path.display()))?;
            print_upgraded(&upgraded);
        }
        PluginCommand::Add { plugin, instance, instance_config } => {
            let config = instance_config
                .map(|text| parse_json_argument("--instance-config", &text))
                .transpose()?
                .unwrap_or_else(|| serde_json::json!({}));
            print_added(&plugins.add_instance(&plugin, &instance, config)?);
        }
        PluginCommand::List => print_overview(&runtime.block_on(plugins.overview())?),
        PluginCommand::Schedule { instance, cron, timezone, none: _ } => {
            print_schedule(&plugins.configure_schedule(&instance, cron.map(|cron| InstanceSchedule { cron, timezone }))?);
        }
        PluginCommand::Enable { instance } => print_enabled(&plugins.set_enabled(&instance, true)?),
        PluginCommand::Disable { instance } => print_enabled(&plugins.set_enabled(&instance, false)?),
        PluginCommand::Run { instance } => run_shown(runtime, plugins, &instance, "")?,
        PluginCommand::Config { instance, set, unset, replace } => {
            let (config, changed) = edited_config(plugins.instance(&instance)?.config, set, unset, replace)?;
            let config = if changed { plugins.configure(&instance, config)?.config } else { config };
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
        PluginCommand::Reset { instance } => {
            plugins.set_cursor(&instance, None)?;
            print_reset(&instance);
        }
        PluginCommand::Uninstall { name, plugin } => {
            print_uninstalled(&if plugin { plugins.uninstall_plugin(&name)? } else { plugins.uninstall_instance(&name)? });
        }
        PluginCommand::Runs { instance, limit } => plugins.runs(&instance, limit)?.iter().for_each(print_run),
        PluginCommand::Logs { instance, run } => {
            let run = match run {
                Some(run) => run,
                None => latest_run(&instance, plugins.runs(&instance, 1)?)?,
            };
            plugins.logs(&instance, run)?.iter().for_each(print_log_line);
        }
        PluginCommand::Test(_) | PluginCommand::Package { .. } => unreachable!("handled before the store is opened"),
    }
    Ok(())
}

/// The plugin commands through the daemon holding the store: the same output as on the store.
fn through_daemon(daemon: &Daemon, command: PluginCommand) -> anyhow::Result<()> {
    let instance_path = |instance: &str, rest: &str| format!("/v1/plugins/{instance}{rest}");
    match command {
        PluginCommand::Install { path, instance, instance_config } => {
            let mut upload = upload(&path)?;
            upload["instance"] = serde_json::json!(instance);
            upload["config"] = serde_json::json!(instance_config.map(|t| parse_json_argument("--instance-config", &t)).transpose()?);
            let installed: Installed = daemon
                .call(Method::POST, "/v1/packages", &[], Some(&upload))
                .with_context(|| format!("cannot install the plugin at {}", path.display()))?;
            print_installed(&installed.plugin, &installed.instance);
        }
        PluginCommand::Upgrade { path } => {
            let upgraded: Upgraded = daemon
                .call(Method::PUT, "/v1/packages", &[], Some(&upload(&path)?))
                .with_context(|| format!("cannot upgrade with the package at {}", path.display()))?;
            print_upgraded(&upgraded);
        }
        PluginCommand::Add { plugin, instance, instance_config } => {
            let config = instance_config.map(|text| parse_json_argument("--instance-config", &text)).transpose()?;
            let body = serde_json::json!({"plugin": plugin, "instance": instance, "config": config});
            print_added(&daemon.call(Method::POST, "/v1/instances", &[], Some(&body))?);
        }
        PluginCommand::List => print_overview(&daemon.get("/v1/plugins", &[])?),
        PluginCommand::Schedule { instance, cron, timezone, none: _ } => {
            let path = instance_path(&instance, "/schedule");
            let changed: Instance = match cron {
                Some(cron) => daemon.call(Method::PUT, &path, &[], Some(&serde_json::json!({"cron": cron, "timezone": timezone})))?,
                None => daemon.call(Method::DELETE, &path, &[], None)?,
            };
            print_schedule(&changed);
        }
        PluginCommand::Enable { instance } => print_enabled(&set_enabled(daemon, &instance, true)?),
        PluginCommand::Disable { instance } => print_enabled(&set_enabled(daemon, &instance, false)?),
        PluginCommand::Run { instance } => {
            let started: RunRecord = daemon.call(Method::POST, &instance_path(&instance, "/runs"), &[], Some(&serde_json::json!({})))?;
            let bar = spinner(&instance);
            let path = instance_path(&instance, &format!("/runs/{}", started.id));
            let record = loop {
                let record: RunRecord = daemon.get(&path, &[])?;
                if record.status != RunStatus::Running {
                    break record;
                }
                show_progress(&bar, &instance, &record);
                // Polling the daemon, not waiting on a test: a run reports its progress at
                // each checkpoint.
                std::thread::sleep(std::time::Duration::from_millis(250));
            };
            bar.finish_and_clear();
            print_run(&record);
            if let Some(failure) = &record.failure {
                bail!("the run of {instance} failed: {failure}");
            }
        }
        PluginCommand::Config { instance, set, unset, replace } => {
            let overview: Overview = daemon.get("/v1/plugins", &[])?;
            let current = overview
                .instances
                .into_iter()
                .find(|i| i.instance.name == instance)
                .with_context(|| format!("no instance `{instance}` (rapport plugin list shows them)"))?;
            let (config, changed) = edited_config(current.instance.config, set, unset, replace)?;
            let config = if changed {
                daemon.call::<Instance>(Method::PUT, &instance_path(&instance, "/config"), &[], Some(&config))?.config
            } else {
                config
            };
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
        PluginCommand::Reset { instance } => {
            daemon.call::<()>(Method::DELETE, &instance_path(&instance, "/cursor"), &[], None)?;
            print_reset(&instance);
        }
        PluginCommand::Uninstall { name, plugin } => {
            let instances = if plugin {
                let overview: Overview = daemon.get("/v1/plugins", &[])?;
                if overview.plugins.iter().all(|p| p.plugin.manifest.name != name) {
                    bail!("no plugin `{name}` is installed");
                }
                overview.instances.into_iter().filter(|i| i.instance.plugin == name).map(|i| i.instance.name).collect()
            } else {
                vec![name]
            };
            // The last instance of a plugin takes the plugin with it.
            let mut removed = Uninstalled::default();
            for instance in instances {
                let one: Uninstalled = daemon.call(Method::DELETE, &instance_path(&instance, ""), &[], None)?;
                removed.instances.extend(one.instances);
                removed.plugin = one.plugin.or(removed.plugin);
            }
            print_uninstalled(&removed);
        }
        PluginCommand::Runs { instance, limit } => {
            daemon.get::<Vec<RunRecord>>(&instance_path(&instance, "/runs"), &[("limit", limit.to_string())])?.iter().for_each(print_run);
        }
        PluginCommand::Logs { instance, run } => {
            let run = match run {
                Some(run) => run,
                None => latest_run(&instance, daemon.get(&instance_path(&instance, "/runs"), &[("limit", "1".to_owned())])?)?,
            };
            daemon.get::<Vec<LogLine>>(&instance_path(&instance, &format!("/runs/{run}/logs")), &[])?.iter().for_each(print_log_line);
        }
        PluginCommand::Test(_) | PluginCommand::Package { .. } => unreachable!("handled before the store is opened"),
    }
    Ok(())
}

/// What `POST /v1/packages` answers.
#[derive(serde::Deserialize)]
struct Installed {
    plugin: InstalledPlugin,
    instance: Instance,
}

/// The package at `path` as the API takes it: the manifest's text and the component in base64.
fn upload(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    use base64::Engine as _;
    let (manifest, component) = rapport_plugin_host::package_files(path)?;
    let read = |file: &std::path::Path| std::fs::read(file).with_context(|| format!("cannot read {}", file.display()));
    let manifest = String::from_utf8(read(&manifest)?).with_context(|| format!("{} is not UTF-8 text", manifest.display()))?;
    let component = base64::engine::general_purpose::STANDARD.encode(read(&component)?);
    Ok(serde_json::json!({"manifest": manifest, "component_base64": component}))
}

fn print_installed(plugin: &InstalledPlugin, instance: &Instance) {
    let manifest = &plugin.manifest;
    println!(
        "installed {} {} (plugin API {}); instance `{}` is ready: rapport plugin run {}",
        manifest.name, manifest.version, manifest.api, instance.name, instance.name
    );
}

fn print_upgraded(upgraded: &Upgraded) {
    let plugin = &upgraded.plugin.manifest;
    println!("upgraded {} {} -> {}", plugin.name, upgraded.previous_version, plugin.version);
    if upgraded.cursors_reset.is_empty() {
        println!("cursor format {} unchanged: instances resume where they were", plugin.cursor_format);
    } else {
        println!("cursor format changed to {}: {} will sync from the beginning", plugin.cursor_format, upgraded.cursors_reset.join(", "));
    }
}

fn print_added(instance: &Instance) {
    println!("instance `{}` of plugin {} is ready: rapport plugin run {}", instance.name, instance.plugin, instance.name);
}

fn set_enabled(daemon: &Daemon, instance: &str, enabled: bool) -> anyhow::Result<Instance> {
    daemon.call(Method::PUT, &format!("/v1/plugins/{instance}/enabled"), &[], Some(&serde_json::json!({ "enabled": enabled })))
}

/// The id of the newest of `runs`.
fn latest_run(instance: &str, runs: Vec<RunRecord>) -> anyhow::Result<RunId> {
    runs.into_iter().next().map(|r| r.id).with_context(|| format!("instance `{instance}` has not run yet"))
}

/// An instance's configuration with `--set`, `--unset` and `--replace` applied, and
/// whether any was given.
fn edited_config(
    mut config: serde_json::Value,
    set: Vec<String>,
    unset: Vec<String>,
    replace: Option<String>,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let changed = !set.is_empty() || !unset.is_empty() || replace.is_some();
    if let Some(text) = replace {
        config = parse_json_argument("--replace", &text)?;
    }
    let map = config.as_object_mut().context("the instance configuration must be a JSON object")?;
    for assignment in &set {
        let (key, value) = assignment.split_once('=').with_context(|| format!("--set {assignment}: expected KEY=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        map.insert(key.to_owned(), value);
    }
    for key in &unset {
        map.remove(key);
    }
    Ok((config, changed))
}

fn print_overview(overview: &Overview) {
    if overview.plugins.is_empty() {
        println!("no plugins installed (rapport plugin install PATH)");
    }
    for PluginStatus { plugin, problem } in &overview.plugins {
        let health = problem.as_ref().map_or_else(|| "ok".to_owned(), |problem| format!("BROKEN: {problem}"));
        let manifest = &plugin.manifest;
        println!("{} {}  API {}  {health}  {}", manifest.name, manifest.version, manifest.api, manifest.description);
    }
    for InstanceStatus { instance, cursor, grant, plan } in &overview.instances {
        let cursor = cursor.as_deref().unwrap_or("(never synced)");
        let schedule = match (&instance.schedule, instance.enabled) {
            (None, _) => "no schedule".to_owned(),
            (Some(s), true) => {
                let next = plan.and_then(|p| p.next).map_or_else(String::new, |n| format!(", next {n}"));
                format!("schedule \"{}\" {}{next}", s.cron, s.timezone)
            }
            (Some(s), false) => format!("schedule \"{}\" {} (disabled)", s.cron, s.timezone),
        };
        println!("  instance {}  plugin {}  cursor {cursor}  {schedule}", instance.name, instance.plugin);
        let hosts = if grant.allowed_hosts.is_empty() { "none".to_owned() } else { grant.allowed_hosts.join(", ") };
        let secrets = if grant.secrets.is_empty() { "none".to_owned() } else { grant.secrets.join(", ") };
        println!("    network granted: {hosts}; secrets: {secrets}");
    }
}

fn print_schedule(instance: &Instance) {
    match &instance.schedule {
        Some(s) => println!("instance `{}` runs on \"{}\" ({}) while the daemon runs", instance.name, s.cron, s.timezone),
        None => println!("instance `{}` has no schedule", instance.name),
    }
}

fn print_enabled(instance: &Instance) {
    if instance.enabled {
        println!("instance `{}` enabled", instance.name);
    } else {
        println!("instance `{}` disabled: its schedule will not run it", instance.name);
    }
}

fn print_reset(instance: &str) {
    println!("instance `{instance}` will sync from the beginning at its next run");
}

fn print_uninstalled(removed: &Uninstalled) {
    for instance in &removed.instances {
        println!("removed instance `{instance}` (its synced records stay, under source `{instance}`)");
    }
    if let Some(plugin) = &removed.plugin {
        println!("removed plugin {plugin}");
    }
}

fn plugin_test(config: &Config, args: TestArgs) -> anyhow::Result<()> {
    let instance_config = args
        .instance_config
        .map(|text| parse_json_argument("--instance-config", &text))
        .transpose()?
        .unwrap_or_else(|| serde_json::json!({}));
    let mut options = TestOptions::new(instance_config);
    options.cursor = args.cursor;
    options.plugins = config.plugins.clone();
    if !args.allow.is_empty() {
        let patterns = args
            .allow
            .iter()
            .map(|p| HostPattern::parse(p).map_err(|e| anyhow::anyhow!("--allow {p}: {e}")))
            .collect::<anyhow::Result<_>>()?;
        options.allowed_hosts = Some(patterns);
    }
    for entry in &args.secret {
        let (name, value) = entry.split_once('=').with_context(|| format!("--secret {entry}: expected NAME=VALUE or NAME=env:VARIABLE"))?;
        let value = match value.strip_prefix("env:") {
            Some(variable) => {
                std::env::var(variable).with_context(|| format!("--secret {name}: environment variable {variable} is not set"))?
            }
            None => value.to_owned(),
        };
        options.secrets.insert(name.to_owned(), Secret::new(value));
    }
    let runtime = runtime()?;
    let _guard = runtime.enter();
    let ledger = GraphLedger::throwaway(config.identity.clone(), config.records).context("cannot create the test run's temporary store")?;
    let bench = runtime
        .block_on(TestBench::new(&args.path, ledger, options))
        .with_context(|| format!("cannot load the plugin at {}", args.path.display()))?;
    let mut failed = None;
    for _ in 0..args.runs {
        let report = runtime.block_on(bench.run())?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            for line in &report.logs {
                print_log_line(line);
            }
            let mut checkpoints = 0;
            for commit in &report.commits {
                match commit.cursor.as_deref() {
                    Some(cursor) => {
                        checkpoints += 1;
                        println!("checkpoint {checkpoints}: {} operations, cursor {cursor}", commit.operations.len());
                    }
                    // What a successful sync emitted after its last checkpoint, committed with it.
                    None if commit.operations.is_empty() => {}
                    None => println!("after the last checkpoint: {} operations (committed, cursor unchanged)", commit.operations.len()),
                }
            }
            print_run(&report.run);
            println!("final cursor: {}", report.cursor.as_deref().unwrap_or("(none)"));
        }
        if let Some(failure) = &report.run.failure {
            failed = Some(failure.to_string());
            break;
        }
    }
    match failed {
        Some(failure) => bail!("the run failed: {failure}"),
        None => Ok(()),
    }
}

/// A byte count as people read it.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn print_log_line(line: &LogLine) {
    let fields: Vec<String> = line.fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    println!("{} {:>5} {}{}", line.at.format("%H:%M:%S%.3f"), line.level.to_uppercase(), line.message, fields.concat());
}

/// The JSON of option `flag`: its text, or the file named after `@`.
fn parse_json_argument(flag: &str, text: &str) -> anyhow::Result<serde_json::Value> {
    let (text, origin) = match text.strip_prefix('@') {
        Some(path) => (std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?, path.to_owned()),
        None => (text.to_owned(), flag.to_owned()),
    };
    serde_json::from_str(&text).with_context(|| format!("{origin} is not valid JSON"))
}

fn print_run(record: &RunRecord) {
    let seconds = record.ended_at.map(|end| (end - record.started_at).num_milliseconds() as f64 / 1000.0);
    println!(
        "{}  {:?}  {}  {} checkpoints, {} applied, {} skipped, {} deleted{}{}",
        record.id,
        record.status,
        record.started_at.format("%Y-%m-%d %H:%M:%S"),
        record.checkpoints,
        record.operations_applied,
        record.operations_skipped,
        record.operations_deleted,
        seconds.map(|s| format!(", {s:.1}s")).unwrap_or_default(),
        record.failure.as_ref().map(|f| format!("\n    {f}")).unwrap_or_default(),
    );
    let net = &record.network;
    if net.http_requests + net.tcp_connections + net.denied > 0 {
        println!(
            "    network: {} requests, {} rate-limited (429/503), {} retries, {:.1}s waited, {} denied, {} TCP connections, {} sent, {} received",
            net.http_requests,
            net.http_rate_limited,
            net.http_retries,
            net.wait_ms as f64 / 1000.0,
            net.denied,
            net.tcp_connections,
            bytes(net.bytes_sent),
            bytes(net.bytes_received),
        );
    }
    if record.log_warnings > 0 {
        let warnings = if record.log_warnings == 1 { "1 warning".to_owned() } else { format!("{} warnings", record.log_warnings) };
        println!("    {warnings} in the log: rapport plugin logs {} {}", record.instance, record.id);
    }
    for skipped in &record.skipped_examples {
        let errors: Vec<String> = skipped.errors.iter().map(ToString::to_string).collect();
        println!("    skipped {}: {}", if skipped.external_id.is_empty() { "(no id)" } else { &skipped.external_id }, errors.join("; "));
    }
}
