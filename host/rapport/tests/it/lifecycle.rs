//! The lifecycle of plugins and instances: several instances of one plugin, configuration,
//! upgrades with compatible and incompatible cursors, uninstalling, run logs, the run
//! history's retention and the per-instance metrics.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport::metrics::METRICS;
use rapport_graph::model::RecordKind;
use rapport_plugin_host::registry::{RunRecord, RunStatus, Trigger};
use rapport_plugin_host::{InstallOptions, PluginHostError};
use rapport_schedule::{Clock, ManualClock};
use serde_json::{Value, json};

use crate::harness::{TOKEN, TestServer};

fn install(server: &TestServer, fixture: &str, instance: &str, config: Value) -> Result<(), PluginHostError> {
    let options = InstallOptions { instance: Some(instance.to_owned()), config: Some(config) };
    server.runtime.block_on(server.plugins.install(&rapport_fixtures::package(fixture), options)).map(drop)
}

fn run(server: &TestServer, instance: &str) -> RunRecord {
    let record = server.runtime.block_on(server.plugins.run(instance, Trigger::Cli, |_| {})).unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    record
}

fn has_organization(server: &TestServer, source: &str, id: &str) -> bool {
    server.graph.resolve(source, RecordKind::Organization, id).unwrap().is_some()
}

#[test]
fn two_instances_of_one_plugin_keep_their_own_cursor_configuration_and_provenance() {
    let server = TestServer::start();
    install(&server, "pager", "crm-eu", json!({"pages": 2, "page_size": 3, "prefix": "eu-"})).unwrap();
    // The same package again only adds an instance.
    install(&server, "pager", "crm-us", json!({"pages": 3, "page_size": 3, "prefix": "us-"})).unwrap();
    assert_eq!(server.plugins.plugins().unwrap().len(), 1);
    assert_eq!((run(&server, "crm-eu").operations_applied, run(&server, "crm-us").operations_applied), (6, 9));
    assert_eq!(server.plugins.cursor("crm-eu").unwrap().as_deref(), Some("1"));
    assert_eq!(server.plugins.cursor("crm-us").unwrap().as_deref(), Some("2"));
    assert!(has_organization(&server, "crm-eu", "eu-5") && !has_organization(&server, "crm-eu", "us-0"));
    assert!(has_organization(&server, "crm-us", "us-8") && !has_organization(&server, "crm-us", "eu-0"));
    // Installing again as an existing instance changes nothing, and refuses to drop a new
    // configuration silently.
    install(&server, "pager", "crm-eu", json!({"pages": 2, "page_size": 3, "prefix": "eu-"})).unwrap();
    let err = install(&server, "pager", "crm-eu", json!({"pages": 9})).unwrap_err();
    assert!(
        matches!(&err, PluginHostError::InstanceConfigured(name) if name == "crm-eu") && err.to_string().contains("plugin config crm-eu"),
        "{err}"
    );
    assert_eq!(server.plugins.instance("crm-eu").unwrap().config["pages"], 2);

    // A third through `add_instance`, and a name already taken is refused.
    server.plugins.add_instance("pager", "crm-apac", json!({"pages": 1, "page_size": 2, "prefix": "ap-"})).unwrap();
    assert_eq!(run(&server, "crm-apac").operations_applied, 2);
    let err = server.plugins.add_instance("pager", "crm-eu", json!({})).unwrap_err();
    assert!(matches!(err, PluginHostError::InstanceTaken { .. }), "{err}");
    assert!(matches!(server.plugins.add_instance("nope", "x", json!({})), Err(PluginHostError::UnknownPlugin(_))));
}

#[test]
fn a_changed_configuration_is_what_the_next_run_gets() {
    let server = TestServer::start();
    install(&server, "pager", "crm", json!({"pages": 1, "page_size": 4})).unwrap();
    assert_eq!(run(&server, "crm").operations_applied, 4);
    server.plugins.configure("crm", json!({"pages": 3, "page_size": 4})).unwrap();
    // Resumes after page 0 with the new page count: pages 1 and 2.
    assert_eq!(run(&server, "crm").operations_applied, 8);
    assert!(matches!(server.plugins.configure("crm", json!([1])), Err(PluginHostError::InvalidConfig)));

    // Over HTTP: a JSON object replaces it; anything else is a 400.
    let response =
        server.client.put(format!("{}/v1/plugins/crm/config", server.base)).bearer_auth(TOKEN).json(&json!({"pages": 5})).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.plugins.instances().unwrap()[0].config, json!({"pages": 5}));
    let response =
        server.client.put(format!("{}/v1/plugins/crm/config", server.base)).bearer_auth(TOKEN).json(&json!("pages")).send().unwrap();
    assert_eq!(response.status(), 400);
    let response = server.client.put(format!("{}/v1/plugins/nope/config", server.base)).bearer_auth(TOKEN).json(&json!({})).send().unwrap();
    assert_eq!(response.status(), 404);
}

/// `pager-next` packaged under its own manifest, with `cursor_format` set as given.
fn pager_next(cursor_format: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = rapport_fixtures::package("pager-next");
    std::fs::copy(source.join("plugin.wasm"), dir.path().join("plugin.wasm")).unwrap();
    let manifest = std::fs::read_to_string(source.join("plugin.toml")).unwrap();
    let manifest = manifest.replace("cursor_format = 2", &format!("cursor_format = {cursor_format}"));
    std::fs::write(dir.path().join("plugin.toml"), manifest).unwrap();
    dir
}

#[test]
fn an_upgrade_keeps_cursors_only_when_the_cursor_format_is_unchanged() {
    for (format, resumes) in [(1, true), (2, false)] {
        let server = TestServer::start();
        install(&server, "pager", "crm", json!({"pages": 3, "page_size": 5})).unwrap();
        server.plugins.set_cursor("crm", Some("0")).unwrap();
        let package = pager_next(format);
        // A different build is not an install: it is an upgrade.
        let err = install(&server, "pager-next", "crm", json!({})).unwrap_err();
        assert!(matches!(err, PluginHostError::AlreadyInstalled { .. }) && err.to_string().contains("rapport plugin upgrade"), "{err}");

        let upgraded = server.runtime.block_on(server.plugins.upgrade(package.path())).unwrap();
        assert_eq!((upgraded.previous_version.as_str(), upgraded.plugin.manifest.version.as_str()), ("0.1.0", "0.2.0"));
        let after = run(&server, "crm");
        assert_eq!(after.plugin_version, "0.2.0");
        if resumes {
            assert!(upgraded.cursors_reset.is_empty());
            assert_eq!((after.cursor_before.as_deref(), after.operations_applied), (Some("0"), 10), "pages 1 and 2 only");
        } else {
            assert_eq!(upgraded.cursors_reset, ["crm"]);
            assert_eq!((after.cursor_before.as_deref(), after.operations_applied), (None, 15), "all three pages again");
        }
        assert_eq!(after.cursor.as_deref(), Some("v2:2"));
        assert_eq!(server.plugins.instances().unwrap()[0].config, json!({"pages": 3, "page_size": 5}), "configuration kept");
    }
}

#[test]
fn uninstalling_removes_the_instance_and_its_history_but_not_its_records() {
    let server = TestServer::start();
    install(&server, "pager", "crm", json!({"pages": 1, "page_size": 2})).unwrap();
    install(&server, "pager", "crm-2", json!({"pages": 1, "page_size": 2, "prefix": "b-"})).unwrap();
    let crm_run = run(&server, "crm");
    run(&server, "crm-2");
    assert!(!server.plugins.logs("crm", crm_run.id).unwrap().is_empty());

    let removed = server.plugins.uninstall_instance("crm").unwrap();
    assert_eq!((removed.instances.as_slice(), removed.plugin), (["crm".to_owned()].as_slice(), None), "crm-2 still runs the plugin");
    assert!(matches!(server.plugins.runs("crm", 10), Err(PluginHostError::UnknownInstance(_))));
    assert!(server.plugins.logs("crm", crm_run.id).unwrap().is_empty(), "its logs went with it");
    assert_eq!(server.plugins.cursor("crm").unwrap(), None);
    assert!(has_organization(&server, "crm", "org-1"), "synced records stay");
    assert_eq!(run(&server, "crm-2").status, RunStatus::Succeeded, "the other instance is untouched");

    // Over HTTP, the last instance takes the plugin and its component with it.
    let response = server.client.delete(format!("{}/v1/plugins/crm-2", server.base)).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().unwrap(), json!({"instances": ["crm-2"], "plugin": "pager"}));
    assert!(server.plugins.plugins().unwrap().is_empty());
    let components = std::fs::read_dir(server.plugins_config.dir.join("pager")).unwrap().count();
    assert_eq!(components, 0, "the component file is deleted");
    let response = server.client.delete(format!("{}/v1/plugins/crm-2", server.base)).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(response.status(), 404);
}

#[test]
fn an_instance_is_not_uninstalled_upgraded_or_reset_while_it_runs() {
    let server = TestServer::start();
    install(&server, "hostile", "slow", json!({"behaviour": "sleep"})).unwrap();
    server.runtime.block_on(async { server.plugins.start("slow", Trigger::Api) }).unwrap();
    let conflict = server.client.delete(format!("{}/v1/plugins/slow", server.base)).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(conflict.status(), 409);
    assert!(matches!(server.plugins.set_cursor("slow", None), Err(PluginHostError::AlreadyRunning(_))));
    assert!(matches!(server.plugins.uninstall_plugin("hostile"), Err(PluginHostError::AlreadyRunning(_))));
    assert_eq!(server.plugins.instances().unwrap().len(), 1, "nothing was removed");
    // The allowed counterpart: an idle instance goes at once.
    install(&server, "hostile", "idle", json!({})).unwrap();
    assert!(server.plugins.uninstall_instance("idle").is_ok());
}

#[test]
fn a_run_keeps_its_log_lines_and_they_are_served() {
    let server = TestServer::start();
    install(&server, "pager", "crm", json!({"pages": 2, "page_size": 1})).unwrap();
    let record = run(&server, "crm");
    assert_eq!(record.log_lines, 1);
    let lines = server.plugins.logs("crm", record.id).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].level.as_str(), lines[0].message.as_str()), ("info", "syncing"));
    assert_eq!(lines[0].fields, [("from_page".to_owned(), "0".to_owned()), ("pages".to_owned(), "2".to_owned())]);
    let served = server.get_json(&format!("/v1/plugins/crm/runs/{}/logs", record.id));
    assert_eq!(served[0]["message"], "syncing");
    assert_eq!(server.get("/v1/plugins/crm/runs/run_nope/logs").status(), 404);
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

#[test]
fn runs_older_than_the_retention_period_are_deleted_with_their_logs() {
    let clock = Arc::new(ManualClock::new(utc("2026-03-01T12:00:00Z")));
    let server = TestServer::with_clock(None, Arc::clone(&clock) as Arc<dyn Clock>);
    install(&server, "pager", "crm", json!({"pages": 1, "page_size": 1})).unwrap();
    let old = run(&server, "crm");
    assert_eq!(old.started_at, utc("2026-03-01T12:00:00Z"), "runs are stamped by the host's clock");
    clock.set(utc("2026-03-20T12:00:00Z"));
    let recent = run(&server, "crm");
    assert_eq!(server.plugins.runs("crm", 10).unwrap().len(), 2, "both within 30 days");

    // 31 days after the first run: it goes, with its logs, when the next run ends.
    clock.set(utc("2026-04-01T12:00:01Z"));
    let newest = run(&server, "crm");
    let ids: Vec<_> = server.plugins.runs("crm", 10).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, [newest.id, recent.id]);
    assert!(server.plugins.logs("crm", old.id).unwrap().is_empty());
    assert!(!server.plugins.logs("crm", recent.id).unwrap().is_empty());
}

#[test]
fn runs_and_operations_are_counted_per_instance() {
    let server = TestServer::start();
    install(&server, "pager", "metrics-a", json!({"pages": 1, "page_size": 3})).unwrap();
    install(&server, "hostile", "metrics-b", json!({"behaviour": "panic"})).unwrap();
    run(&server, "metrics-a");
    let failed = server.runtime.block_on(server.plugins.run("metrics-b", Trigger::Cli, |_| {})).unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let metrics = METRICS.encode();
    for line in [
        r#"rapport_plugin_runs_total{instance="metrics-a",event="succeeded"} 1"#,
        r#"rapport_plugin_runs_total{instance="metrics-b",event="trap"} 1"#,
        r#"rapport_plugin_operations_total{instance="metrics-a",event="applied"} 3"#,
        r#"rapport_plugin_run_duration_seconds_count{instance="metrics-a"} 1"#,
        r#"rapport_plugin_slot_wait_seconds_count{instance="metrics-a"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line}:\n{metrics}");
    }
}
