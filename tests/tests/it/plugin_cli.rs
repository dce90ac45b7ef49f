//! `rapport plugin` as an operator types it: install, schedule, disable, list, configure,
//! run, logs, reset, add, upgrade, uninstall; and every read and lifecycle command beside a
//! running daemon, through its API.

use crate::harness::{Daemon, TOKEN, rapport};

fn run(store: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = rapport(store).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn an_instance_is_scheduled_listed_and_disabled_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let package = rapport_fixtures::package("pager");
    let (ok, text) = run(&store, &["plugin", "install", package.to_str().unwrap(), "--instance", "crm"]);
    assert!(ok, "{text}");

    let (ok, text) = run(&store, &["plugin", "schedule", "crm", "*/15 * * * *", "--timezone", "Europe/Paris"]);
    assert!(ok && text.contains("runs on \"*/15 * * * *\" (Europe/Paris)"), "{text}");
    let (ok, text) = run(&store, &["plugin", "list"]);
    assert!(ok && text.contains("schedule \"*/15 * * * *\" Europe/Paris"), "{text}");

    let (ok, text) = run(&store, &["plugin", "schedule", "crm", "*/15 * * *"]);
    assert!(!ok && text.contains("5 fields"), "{text}");
    let (ok, text) = run(&store, &["plugin", "schedule", "crm"]);
    assert!(!ok && text.contains("CRON"), "a schedule or --none is required: {text}");

    let (ok, text) = run(&store, &["plugin", "disable", "crm"]);
    assert!(ok, "{text}");
    let (_, text) = run(&store, &["plugin", "list"]);
    assert!(text.contains("(disabled)"), "{text}");
    let (ok, text) = run(&store, &["plugin", "schedule", "crm", "--none"]);
    assert!(ok && text.contains("has no schedule"), "{text}");
}

#[test]
fn an_instance_lives_its_whole_life_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let pager = rapport_fixtures::package("pager");
    let (ok, text) =
        run(&store, &["plugin", "install", pager.to_str().unwrap(), "--instance", "crm", "--instance-config", r#"{"pages": 1}"#]);
    assert!(ok, "{text}");

    // Configuration: values read as JSON when they parse, as text otherwise.
    let (ok, text) = run(&store, &["plugin", "config", "crm", "--set", "pages=2", "--set", "page_size=3", "--set", "prefix=eu-"]);
    assert!(ok && text.contains(r#""pages": 2"#) && text.contains(r#""prefix": "eu-""#), "{text}");
    let (ok, text) = run(&store, &["plugin", "config", "crm", "--unset", "prefix"]);
    assert!(ok && !text.contains("prefix"), "{text}");
    let (ok, text) = run(&store, &["plugin", "config", "crm", "--replace", "[1]"]);
    assert!(!ok && text.contains("must be a JSON object"), "{text}");
    let (ok, text) = run(&store, &["plugin", "config", "crm", "--replace", "{oops"]);
    assert!(!ok && text.contains("--replace is not valid JSON"), "{text}");

    let (ok, text) = run(&store, &["plugin", "run", "crm"]);
    assert!(ok && text.contains("2 checkpoints, 6 applied"), "{text}");
    let (ok, text) = run(&store, &["plugin", "logs", "crm"]);
    assert!(ok && text.contains("INFO syncing from_page=0 pages=2"), "{text}");
    let (ok, text) = run(&store, &["plugin", "reset", "crm"]);
    assert!(ok && text.contains("from the beginning"), "{text}");
    let (ok, text) = run(&store, &["plugin", "runs", "crm"]);
    assert!(ok && text.contains("Succeeded"), "{text}");

    // A second instance of the installed plugin, then an upgrade with another cursor format.
    let (ok, text) = run(&store, &["plugin", "add", "pager", "crm-us", "--instance-config", r#"{"pages": 1, "prefix": "us-"}"#]);
    assert!(ok && text.contains("instance `crm-us` of plugin pager is ready"), "{text}");
    let next = rapport_fixtures::package("pager-next");
    let (ok, text) = run(&store, &["plugin", "install", next.to_str().unwrap()]);
    assert!(!ok && text.contains("rapport plugin upgrade"), "{text}");
    let (ok, text) = run(&store, &["plugin", "upgrade", next.to_str().unwrap()]);
    assert!(ok && text.contains("upgraded pager 0.1.0 -> 0.2.0") && text.contains("crm, crm-us will sync from the beginning"), "{text}");

    let (ok, text) = run(&store, &["plugin", "uninstall", "crm"]);
    assert!(ok && text.contains("removed instance `crm`") && !text.contains("removed plugin"), "{text}");
    let (ok, text) = run(&store, &["plugin", "uninstall", "pager", "--plugin"]);
    assert!(ok && text.contains("removed instance `crm-us`") && text.contains("removed plugin pager"), "{text}");
    let (_, text) = run(&store, &["plugin", "list"]);
    assert!(text.contains("no plugins installed"), "{text}");
}

#[test]
fn every_plugin_and_graph_command_works_beside_a_running_daemon_with_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let pager = rapport_fixtures::package("pager");
    let (ok, text) = run(
        &store,
        &["plugin", "install", pager.to_str().unwrap(), "--instance", "crm", "--instance-config", r#"{"pages": 2, "page_size": 3}"#],
    );
    assert!(ok, "{text}");
    let (ok, text) = run(&store, &["plugin", "run", "crm"]);
    assert!(ok, "{text}");
    // What reads show with the store to themselves...
    let reads: [&[&str]; 7] = [
        &["changes", "--after", "2", "--limit", "5"],
        &["plugin", "list"],
        &["plugin", "runs", "crm"],
        &["plugin", "logs", "crm"],
        &["graph", "stats"],
        &["graph", "search", "org"],
        &["merges", "review"],
    ];
    let alone: Vec<String> = reads.iter().map(|args| run(&store, args).1).collect();

    let daemon = Daemon::start(&store);
    // ...they show through the daemon, found at the address it wrote into the store.
    for (args, expected) in reads.iter().zip(&alone) {
        let (ok, text) = with_token(&store, args);
        assert!(ok, "{args:?}: {text}");
        assert_eq!(&text, expected, "{args:?}");
    }
    // Without the token the daemon refuses, and the error says what to pass.
    let (ok, text) = run(&store, &["graph", "stats"]);
    assert!(!ok && text.contains("RAPPORT_TOKEN") && text.contains("--token"), "{text}");
    let (ok, text) = run(&store, &["--token", TOKEN, "graph", "stats"]);
    assert!(ok && text.contains("\"organizations\": 6"), "{text}");

    // Graph reads of one record, and identity decisions.
    let (_, found) = with_token(&store, &["graph", "search", "org"]);
    let org = found.lines().next().unwrap().split('\t').next().unwrap().to_owned();
    let (ok, text) = with_token(&store, &["graph", "show", &org]);
    assert!(ok && text.contains(&format!("\"id\": \"{org}\"")), "{text}");
    let (ok, text) = with_token(&store, &["graph", "timeline", &org]);
    assert!(ok, "{text}");
    let (ok, text) = with_token(&store, &["observe", &org, "Prefers calls to email", "--tag", "communication-preference"]);
    assert!(ok && text.starts_with("recorded obs_"), "{text}");
    let (ok, text) = with_token(&store, &["merges", "list"]);
    assert!(ok, "{text}");

    // Lifecycle: every change goes through the daemon, which runs what it is asked to.
    let (ok, text) = with_token(&store, &["plugin", "config", "crm", "--set", "pages=3"]);
    assert!(ok && text.contains(r#""pages": 3"#), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "run", "crm"]);
    assert!(ok && text.contains("1 checkpoints, 3 applied"), "resumed after page 1 with the new page count: {text}");
    let (ok, text) = with_token(&store, &["plugin", "schedule", "crm", "0 6 * * *", "--timezone", "Europe/Paris"]);
    assert!(ok && text.contains("runs on \"0 6 * * *\" (Europe/Paris)"), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "disable", "crm"]);
    assert!(ok && text.contains("disabled"), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "enable", "crm"]);
    assert!(ok && text.contains("enabled"), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "schedule", "crm", "--none"]);
    assert!(ok && text.contains("has no schedule"), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "reset", "crm"]);
    assert!(ok && text.contains("from the beginning"), "{text}");
    // Packages are uploaded to the daemon: installing, adding an instance, upgrading.
    let (ok, text) =
        with_token(&store, &["plugin", "install", pager.to_str().unwrap(), "--instance", "other", "--instance-config", r#"{"pages": 1}"#]);
    assert!(ok && text.contains("installed pager 0.1.0") && text.contains("instance `other` is ready"), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "run", "other"]);
    assert!(ok && text.contains("1 checkpoints"), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "add", "pager", "third"]);
    assert!(ok && text.contains("instance `third` of plugin pager is ready"), "{text}");
    let fs_reader = rapport_fixtures::package("fs-reader");
    let (ok, text) = with_token(&store, &["plugin", "install", fs_reader.to_str().unwrap()]);
    assert!(!ok && text.contains("no filesystem"), "the daemon's refusal comes back whole: {text}");
    let next = rapport_fixtures::package("pager-next");
    let (ok, text) = with_token(&store, &["plugin", "upgrade", next.to_str().unwrap()]);
    assert!(ok && text.contains("upgraded pager 0.1.0 -> 0.2.0"), "{text}");
    let (ok, text) = with_token(&store, &["plugin", "uninstall", "pager", "--plugin"]);
    assert!(
        ok && text.contains("removed instance `crm`") && text.contains("removed instance `third`") && text.contains("removed plugin pager"),
        "{text}"
    );
    let (_, text) = with_token(&store, &["plugin", "list"]);
    assert!(text.contains("no plugins installed"), "{text}");
    daemon.stop();
}

/// [`run`] with the daemon's token in RAPPORT_TOKEN.
fn with_token(store: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = rapport(store).env("RAPPORT_TOKEN", TOKEN).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}
