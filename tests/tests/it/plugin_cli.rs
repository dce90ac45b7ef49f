//! `rapport plugin` as an operator types it: install, schedule, disable, list.

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
