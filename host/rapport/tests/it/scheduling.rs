//! Plugin instances on schedules, against a manual clock: runs at their time, a disabled
//! instance beside an enabled one, and a run missed while the daemon was down done once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rapport::ledger::GraphLedger;
use rapport_plugin_host::registry::{InstanceSchedule, RunRecord, RunStatus, Trigger};
use rapport_plugin_host::{InstallOptions, PluginHost};
use rapport_schedule::{Clock, ManualClock};
use serde_json::json;

use crate::harness::{TOKEN, TestServer};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn daily_at_nine(server: &TestServer, instance: &str) {
    let options = InstallOptions { instance: Some(instance.to_owned()), config: Some(json!({"pages": 1, "page_size": 5})) };
    server.runtime.block_on(server.plugins.install(&rapport_fixtures::package("pager"), options)).unwrap();
    let schedule = InstanceSchedule { cron: "0 9 * * *".to_owned(), timezone: "UTC".to_owned() };
    server.plugins.configure_schedule(instance, Some(schedule)).unwrap();
}

/// Polls until `done` holds (a poll interval, not a synchronisation: `done` is the
/// condition waited on).
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn scheduled_runs(host: &PluginHost, instance: &str) -> Vec<RunRecord> {
    host.runs(instance, 1000).unwrap().into_iter().filter(|r| r.trigger == Trigger::Schedule && r.status != RunStatus::Running).collect()
}

fn planned_for(host: &PluginHost, instance: &str, when: &str) -> bool {
    host.plan(instance).and_then(|p| p.next) == Some(utc(when))
}

#[test]
fn instances_run_at_their_time_and_a_disabled_one_does_not() {
    let clock = Arc::new(ManualClock::new(utc("2026-06-01T08:59:30Z")));
    let server = TestServer::with_clock(None, Arc::clone(&clock) as Arc<dyn Clock>);
    daily_at_nine(&server, "crm");
    daily_at_nine(&server, "control");
    let scheduler = server.runtime.spawn(Arc::clone(&server.plugins).run_schedules());
    wait_until("both planned", || ["crm", "control"].iter().all(|i| planned_for(&server.plugins, i, "2026-06-01T09:00:00Z")));
    assert!(server.plugins.runs("crm", 1000).unwrap().is_empty(), "planned, not run");

    clock.set(utc("2026-06-01T09:00:00Z"));
    wait_until("both ran", || ["crm", "control"].iter().all(|i| scheduled_runs(&server.plugins, i).len() == 1));
    let run = &scheduled_runs(&server.plugins, "crm")[0];
    assert_eq!((run.status, run.operations_applied), (RunStatus::Succeeded, 5), "{run:?}");
    assert!(planned_for(&server.plugins, "crm", "2026-06-02T09:00:00Z"));

    // Disabled, it sits out the next day's run that its enabled twin makes.
    server.plugins.set_enabled("crm", false).unwrap();
    clock.set(utc("2026-06-02T09:00:00Z"));
    wait_until("the control's second run", || scheduled_runs(&server.plugins, "control").len() == 2);
    assert_eq!(scheduled_runs(&server.plugins, "crm").len(), 1);
    assert_eq!(server.plugins.plan("crm"), None);
    scheduler.abort();
}

#[test]
fn a_run_missed_while_the_daemon_was_down_happens_once_at_start() {
    let clock = Arc::new(ManualClock::new(utc("2026-06-01T08:00:00Z")));
    let server = TestServer::with_clock(None, Arc::clone(&clock) as Arc<dyn Clock>);
    daily_at_nine(&server, "crm");
    let scheduler = server.runtime.spawn(Arc::clone(&server.plugins).run_schedules());
    wait_until("planned", || planned_for(&server.plugins, "crm", "2026-06-01T09:00:00Z"));
    scheduler.abort();

    // Down for three days and a bit; then a new host over the same store starts.
    clock.set(utc("2026-06-04T12:00:00Z"));
    let restarted = {
        let _inside = server.runtime.enter();
        Arc::new(PluginHost::with_clock(GraphLedger::over(Arc::clone(&server.graph)), server.plugins_config.clone(), clock).unwrap())
    };
    let scheduler = server.runtime.spawn(Arc::clone(&restarted).run_schedules());
    wait_until("the catch-up run", || scheduled_runs(&restarted, "crm").len() == 1);
    assert!(planned_for(&restarted, "crm", "2026-06-05T09:00:00Z"), "{:?}", restarted.plan("crm"));
    let plan = restarted.plan("crm").unwrap();
    assert_eq!(plan.last, Some(utc("2026-06-04T12:00:00Z")));
    assert_eq!(scheduled_runs(&restarted, "crm").len(), 1, "three missed days make one run");
    scheduler.abort();
}

#[test]
fn a_schedule_that_cannot_be_read_is_refused_saying_why() {
    let server = TestServer::start();
    daily_at_nine(&server, "crm");
    let bad = InstanceSchedule { cron: "0 25 * * *".to_owned(), timezone: "UTC".to_owned() };
    let err = server.plugins.configure_schedule("crm", Some(bad)).unwrap_err().to_string();
    assert!(err.contains("0 25 * * *") && err.contains("5 fields"), "{err}");
    let bad = InstanceSchedule { cron: "0 9 * * *".to_owned(), timezone: "Paris".to_owned() };
    let err = server.plugins.configure_schedule("crm", Some(bad)).unwrap_err().to_string();
    assert!(err.contains("IANA"), "{err}");
    // The schedule in place stays.
    assert!(server.plugins.plan("crm").is_some());
}

#[test]
fn a_live_daemons_schedules_are_set_and_switched_over_http() {
    let clock = Arc::new(ManualClock::new(utc("2026-06-01T08:00:00Z")));
    let server = TestServer::with_clock(None, Arc::clone(&clock) as Arc<dyn Clock>);
    daily_at_nine(&server, "crm");
    let url = |path: &str| format!("{}/v1/plugins/crm/{path}", server.base);
    let put = |path: &str, body: serde_json::Value| server.client.put(url(path)).bearer_auth(TOKEN).json(&body).send().unwrap();
    let listed = || -> serde_json::Value {
        let all: serde_json::Value =
            server.client.get(format!("{}/v1/plugins", server.base)).bearer_auth(TOKEN).send().unwrap().json().unwrap();
        all["instances"].as_array().unwrap().iter().find(|i| i["name"] == "crm").unwrap().clone()
    };

    let response = put("schedule", json!({"cron": "*/30 * * * *", "timezone": "Asia/Tokyo"}));
    assert_eq!(response.status(), 200);
    let instance: serde_json::Value = response.json().unwrap();
    assert_eq!(instance["schedule"], json!({"cron": "*/30 * * * *", "timezone": "Asia/Tokyo"}));
    assert!(listed()["plan"].is_object(), "an enabled schedule has a plan");

    let response = put("schedule", json!({"cron": "*/30 * * *"}));
    assert_eq!(response.status(), 422);
    let error: serde_json::Value = response.json().unwrap();
    assert_eq!(error["details"][0]["path"], "cron", "{error}");
    let error: serde_json::Value = put("schedule", json!({"cron": "0 9 * * *", "timezone": "Tokyo"})).json().unwrap();
    assert_eq!(error["details"][0]["path"], "timezone", "{error}");
    assert_eq!(listed()["schedule"]["cron"], "*/30 * * * *", "a refused schedule changes nothing");

    let response = put("enabled", json!({"enabled": false}));
    assert_eq!(response.status(), 200);
    assert_eq!((listed()["enabled"].clone(), listed()["plan"].clone()), (json!(false), serde_json::Value::Null));
    assert_eq!(put("enabled", json!({"enabled": "no"})).status(), 400);

    let response = server.client.delete(url("schedule")).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(listed()["schedule"], serde_json::Value::Null);
    let missing = server
        .client
        .put(format!("{}/v1/plugins/nope/enabled", server.base))
        .bearer_auth(TOKEN)
        .json(&json!({"enabled": true}))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn a_run_still_going_when_its_next_time_comes_skips_that_turn() {
    let clock = Arc::new(ManualClock::new(utc("2026-06-01T08:59:30Z")));
    let server = TestServer::with_clock(None, Arc::clone(&clock) as Arc<dyn Clock>);
    let options = InstallOptions { instance: Some("slow".to_owned()), config: Some(json!({"behaviour": "sleep"})) };
    server.runtime.block_on(server.plugins.install(&rapport_fixtures::package("hostile"), options)).unwrap();
    server.plugins.configure_schedule("slow", Some(InstanceSchedule { cron: "0 9 * * *".to_owned(), timezone: "UTC".to_owned() })).unwrap();
    // A run that sleeps inside the plugin, started by hand, is in progress at 09:00.
    let manual = {
        let _inside = server.runtime.enter();
        server.plugins.start("slow", Trigger::Api).unwrap()
    };
    let scheduler = server.runtime.spawn(Arc::clone(&server.plugins).run_schedules());
    wait_until("planned", || planned_for(&server.plugins, "slow", "2026-06-01T09:00:00Z"));

    clock.set(utc("2026-06-01T09:00:00Z"));
    wait_until("the turn taken", || planned_for(&server.plugins, "slow", "2026-06-02T09:00:00Z"));
    let runs = server.plugins.runs("slow", 1000).unwrap();
    assert_eq!(runs.len(), 1, "the scheduled turn was skipped, not queued: {runs:?}");
    assert_eq!((runs[0].id, runs[0].status), (manual.id, RunStatus::Running));
    scheduler.abort();
}
