//! `rapport plugin` as an operator types it: install, schedule, disable, list, configure,
//! run, logs, reset, add, upgrade, uninstall.

use crate::harness::rapport;

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
