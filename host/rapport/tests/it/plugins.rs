//! The plugin runtime with real wasm components (built from `tests/fixtures/guests`):
//! install checks, exactly-once checkpoints, and hostile plugins. Every hostile case runs
//! beside a well-behaved plugin and an API request, which must both succeed.

use std::sync::{Arc, Mutex};

use rapport::ledger::GraphLedger;
use rapport_graph::model::RecordKind;
use rapport_plugin_host::registry::{RunFailure, RunRecord, RunStatus, Trigger};
use rapport_plugin_host::{InstallOptions, PluginHost, PluginHostError};
use serde_json::{Value, json};

use crate::harness::{TOKEN, TestServer};

fn install(server: &TestServer, fixture: &str, instance: &str, config: Value) {
    let options = InstallOptions { instance: Some(instance.to_owned()), config: Some(config) };
    server.runtime.block_on(server.plugins.install(&rapport_fixtures::package(fixture), options)).unwrap();
}

/// Installs `path` with the default options beside a good plugin run and an API request.
fn try_install(server: &TestServer, path: &std::path::Path) -> Result<(), PluginHostError> {
    beside_good_neighbours(server, server.plugins.install(path, InstallOptions::default())).map(|_| ())
}

fn run(server: &TestServer, instance: &str) -> RunRecord {
    server.runtime.block_on(server.plugins.run(instance, Trigger::Cli, |_| {})).unwrap()
}

fn organizations(server: &TestServer, source: &str, ids: impl IntoIterator<Item = String>) -> usize {
    ids.into_iter().filter(|id| server.graph.resolve(source, RecordKind::Organization, id).unwrap().is_some()).count()
}

const GOOD_PAGES: u64 = 20;
const GOOD_PAGE_SIZE: u64 = 25;

/// Runs the hostile instance beside a well-behaved pager and an API request; asserts the
/// pager and the request succeeded and returns the hostile run.
fn run_beside_good_neighbours(server: &TestServer, hostile: &str) -> RunRecord {
    beside_good_neighbours(server, server.plugins.run(hostile, Trigger::Api, |_| {})).unwrap()
}

/// Drives `hostile` while a well-behaved pager syncs and an API request is served, all at
/// once; asserts the pager and the request succeeded and returns what `hostile` gave.
fn beside_good_neighbours<T>(server: &TestServer, hostile: impl Future<Output = T>) -> T {
    install(server, "pager", "neighbour", json!({"pages": GOOD_PAGES, "page_size": GOOD_PAGE_SIZE, "prefix": "n-"}));
    let (client, url) = (server.client.clone(), format!("{}/v1/stats", server.base));
    let (bad, good, api) = server.runtime.block_on(async {
        tokio::join!(hostile, server.plugins.run("neighbour", Trigger::Api, |_| {}), async {
            tokio::task::spawn_blocking(move || client.get(url).bearer_auth(TOKEN).send().unwrap().status()).await.unwrap()
        },)
    });
    let good = good.unwrap();
    assert_eq!(good.status, RunStatus::Succeeded, "{good:?}");
    assert_eq!(good.operations_applied, GOOD_PAGES * GOOD_PAGE_SIZE);
    assert_eq!(organizations(server, "neighbour", (0..GOOD_PAGES * GOOD_PAGE_SIZE).map(|n| format!("n-{n}"))), 500);
    assert_eq!(api, 200);
    bad
}

fn failure(record: &RunRecord) -> &RunFailure {
    assert_eq!(record.status, RunStatus::Failed, "{record:?}");
    record.failure.as_ref().unwrap()
}

#[test]
fn a_run_commits_each_page_with_its_cursor_and_the_next_run_resumes_after_it() {
    let server = TestServer::start();
    install(&server, "pager", "crm-eu", json!({"pages": 4, "page_size": 10}));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::clone(&seen);
    let record =
        server.runtime.block_on(server.plugins.run("crm-eu", Trigger::Cli, move |r| progress.lock().unwrap().push(r.checkpoints))).unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!((record.checkpoints, record.operations_applied, record.operations_skipped), (4, 40, 0));
    assert_eq!(record.cursor.as_deref(), Some("3"));
    // The final commit of a successful run adds no checkpoint.
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4, 4]);
    assert_eq!(server.plugins.cursor("crm-eu").unwrap().as_deref(), Some("3"));
    assert_eq!(organizations(&server, "crm-eu", (0..40).map(|n| format!("org-{n}"))), 40);

    // More pages upstream: the next run starts after the committed cursor.
    let again = run(&server, "crm-eu");
    assert_eq!(again.cursor_before.as_deref(), Some("3"));
    assert_eq!((again.checkpoints, again.operations_applied), (0, 0));
    assert_eq!(server.graph.stats().unwrap().organizations, 40);

    let runs = server.get_json("/v1/plugins/crm-eu/runs");
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["id"], again.id.to_string(), "newest first");
    assert_eq!(runs[1]["operations_applied"], 40);
    let listed = server.get_json("/v1/plugins");
    assert_eq!(listed["instances"][0]["name"], "crm-eu");
    assert_eq!(listed["instances"][0]["cursor"], "3");
}

#[test]
fn registry_rows_are_json_under_the_format_byte_and_a_value_without_it_is_corrupt() {
    let server = TestServer::start();
    install(&server, "pager", "crm", json!({"pages": 1, "page_size": 1}));
    server.plugins.set_cursor("crm", Some("page-2")).unwrap();
    assert_eq!(server.graph.meta("cursor/crm").unwrap().unwrap(), b"J\"page-2\"");
    assert_eq!(server.plugins.cursor("crm").unwrap().as_deref(), Some("page-2"));
    server.graph.write_meta(vec![("cursor/crm".to_owned(), Some(b"\"page-1\"".to_vec()))]).unwrap();
    let err = server.plugins.cursor("crm").unwrap_err();
    assert!(matches!(&err, PluginHostError::Corrupt { name, .. } if name == "cursor/crm"), "{err}");
}

#[test]
fn runs_start_through_the_api_one_at_a_time_per_instance() {
    let server = TestServer::with_plugin_limits(|c| c.run_timeout = std::time::Duration::from_secs(3));
    install(&server, "hostile", "slow", json!({"behaviour": "sleep"}));
    let started = server.post("/v1/plugins/slow/runs", &json!({}));
    assert_eq!(started.status(), 202);
    let run: Value = started.json().unwrap();
    assert_eq!(run["status"], "running");
    let second = server.post("/v1/plugins/slow/runs", &json!({}));
    assert_eq!(second.status(), 409);
    assert_eq!(server.post("/v1/plugins/nobody/runs", &json!({})).status(), 404);
    let path = format!("/v1/plugins/slow/runs/{}", run["id"].as_str().unwrap());
    assert_eq!(server.get_json(&path)["trigger"], "api");
    assert_eq!(server.get("/v1/plugins/slow/runs/run_nope").status(), 404);
}

#[test]
fn malformed_operations_are_skipped_with_their_field_paths_and_the_rest_committed() {
    let server = TestServer::start();
    install(&server, "hostile", "messy", json!({"behaviour": "malformed"}));
    let record = run_beside_good_neighbours(&server, "messy");
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!((record.operations_applied, record.operations_skipped), (2, 3));
    assert_eq!(organizations(&server, "messy", ["good-1", "good-2", "bad-1"].map(String::from)), 2);
    let errors: Vec<(&str, &str, &str)> = record
        .skipped_examples
        .iter()
        .flat_map(|s| s.errors.iter().map(move |e| (s.external_id.as_str(), e.path.as_str(), e.message.as_str())))
        .collect();
    let has = |id: &str, path: &str, text: &str| errors.iter().any(|e| e.0 == id && e.1 == path && e.2.contains(text));
    assert!(has("", "", "malformed JSON"), "unparsable JSON is reported at the operation: {errors:?}");
    assert!(has("bad-1", "", "`name`"), "a missing field is named: {errors:?}");
    assert!(has("bad-2", "emails[0]", ""), "{errors:?}");
}

#[test]
fn an_endless_loop_is_interrupted_for_its_cpu_budget() {
    let server = TestServer::with_plugin_limits(|c| c.cpu_budget = std::time::Duration::from_millis(300));
    install(&server, "hostile", "spinner", json!({"behaviour": "spin"}));
    let record = run_beside_good_neighbours(&server, "spinner");
    assert_eq!(failure(&record), &RunFailure::CpuBudget { budget_ms: 300 });
}

#[test]
fn growing_past_the_memory_limit_is_reported_as_out_of_memory() {
    let server = TestServer::with_plugin_limits(|c| c.memory_limit_bytes = 32 << 20);
    install(&server, "hostile", "hoarder", json!({"behaviour": "memory"}));
    let record = run_beside_good_neighbours(&server, "hoarder");
    assert_eq!(failure(&record), &RunFailure::OutOfMemory { limit_bytes: 32 << 20 });
}

#[test]
fn a_host_call_that_never_returns_hits_the_wall_clock_timeout() {
    let server = TestServer::with_plugin_limits(|c| c.run_timeout = std::time::Duration::from_secs(2));
    install(&server, "hostile", "sleeper", json!({"behaviour": "sleep"}));
    let record = run_beside_good_neighbours(&server, "sleeper");
    assert_eq!(failure(&record), &RunFailure::Timeout { limit_secs: 2 });
}

#[test]
fn emitting_past_the_checkpoint_cap_fails_the_run_and_commits_nothing() {
    let server = TestServer::with_plugin_limits(|c| c.max_operations_per_checkpoint = 1000);
    install(&server, "hostile", "flood", json!({"behaviour": "flood"}));
    let record = run_beside_good_neighbours(&server, "flood");
    let failure = failure(&record);
    assert_eq!(failure, &RunFailure::CheckpointCap { limit: 1000 });
    assert!(failure.to_string().contains("checkpoint more often"), "{failure}");
    assert_eq!(organizations(&server, "flood", (0..1000).map(|n| format!("flood-{n}"))), 0);
}

#[test]
fn a_panic_traps_the_run_and_quotes_the_panic_message() {
    let server = TestServer::start();
    install(&server, "hostile", "panicky", json!({"behaviour": "panic"}));
    let record = run_beside_good_neighbours(&server, "panicky");
    let message = trap_message(&record);
    assert!(message.contains("the plugin gave up"), "{message}");
}

/// The message of a run that failed with a trap.
fn trap_message(record: &RunRecord) -> &str {
    match failure(record) {
        RunFailure::Trap { message } => message,
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn a_plugin_built_for_a_future_api_is_refused_at_install_naming_both_versions() {
    let server = TestServer::start();
    let err = try_install(&server, &rapport_fixtures::package("future-api")).unwrap_err().to_string();
    assert!(err.contains("plugin API 0.2") && err.contains("supports API 0.1"), "{err}");

    // A manifest that claims 0.1 does not fool the host: the imports tell.
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(rapport_fixtures::package("future-api").join("plugin.wasm"), dir.path().join("plugin.wasm")).unwrap();
    std::fs::write(dir.path().join("plugin.toml"), "name = \"future-api\"\nversion = \"0.1.0\"\napi = \"0.1\"\n").unwrap();
    let err = try_install(&server, dir.path()).unwrap_err().to_string();
    assert!(err.contains("plugin API 0.2") && err.contains("imports rapport:connector/") && err.contains("@0.2.0"), "{err}");
    assert!(server.plugins.plugins().unwrap().iter().all(|p| p.manifest.name != "future-api"));
}

#[test]
fn a_plugin_built_for_the_released_0_1_0_contract_still_runs() {
    let server = TestServer::start();
    install(&server, "api-0-1-0", "legacy", json!({}));
    let record = run(&server, "legacy");
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!(organizations(&server, "legacy", ["legacy-1".to_owned()]), 1);
}

#[test]
fn a_plugin_importing_the_filesystem_is_refused_at_install_with_the_offending_imports() {
    let server = TestServer::start();
    let err = try_install(&server, &rapport_fixtures::package("fs-reader")).unwrap_err();
    let PluginHostError::ForbiddenImports(imports) = &err else { panic!("expected forbidden imports, got {err}") };
    assert!(imports.iter().any(|i| i.starts_with("wasi:filesystem/")), "{imports:?}");
    assert!(imports.iter().all(|i| !i.starts_with("wasi:io/") && !i.starts_with("rapport:")), "{imports:?}");
    assert!(err.to_string().contains("no filesystem"), "{err}");
    assert!(server.plugins.instances().unwrap().iter().all(|i| i.plugin != "fs-reader"));
}

#[test]
fn a_manifest_that_disagrees_with_describe_is_refused() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(rapport_fixtures::package("pager").join("plugin.wasm"), dir.path().join("plugin.wasm")).unwrap();
    std::fs::write(dir.path().join("plugin.toml"), "name = \"pager\"\nversion = \"9.9.9\"\napi = \"0.1\"\n").unwrap();
    let err = server.runtime.block_on(server.plugins.install(dir.path(), InstallOptions::default())).unwrap_err().to_string();
    assert!(err.contains("pager 0.1.0") && err.contains("pager 9.9.9"), "{err}");
}

#[test]
fn compiled_code_is_cached_on_disk_and_a_damaged_cache_file_is_recompiled() {
    use std::os::unix::fs::MetadataExt;
    let server = TestServer::start();
    install(&server, "pager", "pager", json!({"pages": 2}));
    let compiled = server.plugins_config.dir.join("compiled");
    let files: Vec<_> = std::fs::read_dir(&compiled).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one compiled artifact per component and engine: {files:?}");
    let artifact = &files[0];
    let inode = || std::fs::metadata(artifact).unwrap().ino();
    // A restarted host, which has nothing compiled in memory, runs the plugin.
    let restart_and_run = |expected_applied: u64| {
        let restarted = {
            let _inside = server.runtime.enter();
            PluginHost::new(GraphLedger::over(Arc::clone(&server.graph)), server.plugins_config.clone()).unwrap()
        };
        let record = server.runtime.block_on(restarted.run("pager", Trigger::Cli, |_| {})).unwrap();
        assert_eq!((record.status, record.operations_applied), (RunStatus::Succeeded, expected_applied), "{record:?}");
    };

    // An intact artifact is loaded, not rewritten (every write is a new file, renamed in).
    let before = inode();
    restart_and_run(20);
    assert_eq!(inode(), before, "the cached artifact was used as it was");

    // A damaged one is refused, compiled again and replaced.
    let mut bytes = std::fs::read(artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(artifact, &bytes).unwrap();
    let damaged = inode();
    restart_and_run(0);
    assert_ne!(inode(), damaged, "the damaged artifact was replaced");
    assert_ne!(std::fs::read(artifact).unwrap(), bytes);
}

#[test]
fn an_operation_over_the_byte_limit_is_skipped_naming_the_limit() {
    let server = TestServer::with_plugin_limits(|c| c.max_operation_bytes = 64 << 10);
    install(&server, "hostile", "one-big", json!({"behaviour": "big-emit", "bytes": 100_000, "count": 1}));
    let record = run_beside_good_neighbours(&server, "one-big");
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!((record.operations_skipped, record.operations_applied), (1, 1));
    let reason = &record.skipped_examples[0].errors[0].message;
    assert!(reason.contains("over the limit of 65536 (plugins.max_operation_bytes)"), "{reason}");
    assert_eq!(organizations(&server, "one-big", ["after-the-flood".to_owned()]), 1, "the rest of the run is committed");
}

#[test]
fn a_flood_of_bytes_without_a_checkpoint_fails_the_run_naming_the_budget() {
    let server = TestServer::with_plugin_limits(|c| c.max_pending_bytes = 1 << 20);
    // Each operation is under the per-operation limit; together they pass the budget.
    install(&server, "hostile", "many-big", json!({"behaviour": "big-emit", "bytes": 60_000, "count": 100}));
    let record = run_beside_good_neighbours(&server, "many-big");
    let failure = failure(&record);
    assert_eq!(failure, &RunFailure::PendingBytes { limit_bytes: 1 << 20 });
    assert!(failure.to_string().contains("plugins.max_pending_bytes"), "{failure}");
    assert_eq!(organizations(&server, "many-big", (0..100).map(|n| format!("big-{n}"))), 0, "nothing uncommitted lands");
}

#[test]
fn a_cursor_over_the_byte_limit_fails_the_run_and_the_previous_cursor_stays() {
    let server = TestServer::with_plugin_limits(|c| c.max_cursor_bytes = 4096);
    install(&server, "hostile", "fat-cursor", json!({"behaviour": "big-cursor", "bytes": 5000}));
    let record = run_beside_good_neighbours(&server, "fat-cursor");
    assert_eq!(failure(&record), &RunFailure::CursorTooLarge { bytes: 5000, limit_bytes: 4096 });
    assert_eq!(server.plugins.cursor("fat-cursor").unwrap(), None, "no cursor was committed");
}

#[test]
fn log_lines_and_skipped_examples_stay_small_whatever_the_plugin_sends() {
    let server = TestServer::with_plugin_limits(|c| c.max_log_line_bytes = 1000);
    install(&server, "hostile", "chatty", json!({"behaviour": "big-log", "bytes": 1_000_000, "count": 3}));
    let record = run_beside_good_neighbours(&server, "chatty");
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    let lines = server.plugins.logs("chatty", record.id).unwrap();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let size = line.message.len() + line.fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        assert!(size <= 1000 + 64, "a line of {size} bytes");
        assert!(line.fields[0].1.ends_with("[cut: plugins.max_log_line_bytes]"), "{:?}", &line.fields[0].1[..50]);
    }

    // Invalid operations with huge ids and values: each example quotes them in part.
    install(&server, "hostile", "garbage", json!({"behaviour": "big-invalid", "bytes": 200_000, "count": 30}));
    let record = run(&server, "garbage");
    assert_eq!(record.operations_skipped, 30);
    assert_eq!(record.skipped_examples.len(), 20);
    let size = serde_json::to_vec(&record).unwrap().len();
    assert!(size < 64 << 10, "a run record of {size} bytes");
}

#[test]
fn unbounded_recursion_is_reported_as_a_stack_overflow() {
    let server = TestServer::start();
    install(&server, "hostile", "recursive", json!({"behaviour": "recurse"}));
    let record = run_beside_good_neighbours(&server, "recursive");
    let message = trap_message(&record);
    assert!(message.starts_with("stack overflow"), "{message}");
}

#[test]
fn time_asleep_in_wasi_is_not_cpu_time() {
    // Spinning is counted (the spinner test); waiting is not: 1.2 s of naps under a 0.5 s budget.
    let server = TestServer::with_plugin_limits(|c| c.cpu_budget = std::time::Duration::from_millis(500));
    install(&server, "hostile", "napper", json!({"behaviour": "naps", "naps": 3, "ms": 400}));
    let record = run_beside_good_neighbours(&server, "napper");
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!(organizations(&server, "napper", (0..3).map(|n| format!("nap-{n}"))), 3);
}

#[test]
fn memory_is_limited_over_all_of_a_runs_memories_together() {
    // `memories` grows two memories by 20 MiB each: within 64 MiB, past 32 MiB together,
    // though each alone fits.
    let roomy = TestServer::with_plugin_limits(|c| c.memory_limit_bytes = 64 << 20);
    install(&roomy, "memories", "two", json!({}));
    assert_eq!(run_beside_good_neighbours(&roomy, "two").status, RunStatus::Succeeded);

    let server = TestServer::with_plugin_limits(|c| c.memory_limit_bytes = 32 << 20);
    install(&server, "memories", "two", json!({}));
    let record = run_beside_good_neighbours(&server, "two");
    assert_eq!(failure(&record), &RunFailure::OutOfMemory { limit_bytes: 32 << 20 });
}

#[test]
fn a_component_with_more_memories_than_a_pool_slot_holds_is_refused_at_install() {
    let server = TestServer::start();
    let err = try_install(&server, &rapport_fixtures::package("three-memories")).unwrap_err().to_string();
    assert!(err.contains("does not fit in a sandbox slot") && err.contains("memories"), "{err}");
    assert!(server.plugins.plugins().unwrap().iter().all(|p| p.manifest.name != "memories"));
    // The pool still has its places: the two-memory component installs and runs.
    install(&server, "memories", "two", json!({}));
    assert_eq!(run(&server, "two").status, RunStatus::Succeeded);
}

#[test]
fn an_endless_log_flood_spends_the_cpu_budget_and_keeps_only_the_first_lines() {
    let server = TestServer::with_plugin_limits(|c| c.cpu_budget = std::time::Duration::from_millis(500));
    install(&server, "hostile", "babbler", json!({"behaviour": "big-log", "bytes": 10, "count": u32::MAX, "warn": true}));
    let record = run_beside_good_neighbours(&server, "babbler");
    assert_eq!(failure(&record), &RunFailure::CpuBudget { budget_ms: 500 });
    assert_eq!(record.log_lines, 1000, "{record:?}");
    assert!(record.log_lines_dropped > 0, "{record:?}");
    // Warnings are counted whether their lines are kept or not.
    assert_eq!(record.log_warnings, record.log_lines + record.log_lines_dropped, "{record:?}");
}

#[test]
fn a_component_without_a_connector_is_refused_naming_the_macro() {
    let server = TestServer::start();
    let err = try_install(&server, &rapport_fixtures::package("no-connector")).unwrap_err().to_string();
    assert!(err.contains("exports no connector") && err.contains("rapport_sdk::export_connector!"), "{err}");
}
