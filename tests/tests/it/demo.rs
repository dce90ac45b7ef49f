//! The README's demo: `rapport demo` loads the world through the demo plugin (one instance
//! per source, each run shown), serves it on loopback without a token, and points at a
//! planted situation.

use serde_json::Value;

use crate::harness::{Daemon, binary};

#[test]
fn the_demo_serves_the_world_on_loopback_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut command = std::process::Command::new(binary());
    command.args(["demo", "--bind", "127.0.0.1:0", "--now", "2026-06-01T00:00:00Z", "--data"]).arg(&data).env("RUST_LOG", "warn");
    command.arg("--package").arg(rapport_fixtures::package("demo"));
    let daemon = Daemon::spawn(&mut command, "rapport demo ready: open ");
    let shown = daemon.output();
    for source in ["crm", "mail", "support"] {
        assert!(shown.lines().any(|l| l.trim_start().starts_with(&format!("{source}: run_")) && l.contains("Succeeded")), "{shown}");
    }
    assert!(shown.contains("through the demo plugin"), "{shown}");
    let client = reqwest::blocking::Client::new();
    let found: Value = client.get(daemon.url("/v1/organizations/search?q=halcyon")).send().unwrap().json().unwrap();
    let id = found["items"][0]["id"].as_str().expect("the planted client is there").to_owned();
    let context: Value =
        client.get(daemon.url(&format!("/v1/organizations/{id}/context?at=2026-06-01T00:00:00Z"))).send().unwrap().json().unwrap();
    assert_eq!(context["engagement"]["days_since_last_interaction"], 45);
    daemon.stop();

    // Running it again starts over in the same directory; a directory it did not make is refused.
    let other = dir.path().join("precious");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let output = std::process::Command::new(binary())
        .args(["demo", "--load-only", "--data"])
        .arg(&other)
        .arg("--package")
        .arg(rapport_fixtures::package("demo"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a demo store"));
    assert!(other.join("notes.txt").exists());
    let again = std::process::Command::new(binary())
        .args(["demo", "--load-only", "--now", "2026-06-01T00:00:00Z", "--data"])
        .arg(&data)
        .arg("--package")
        .arg(rapport_fixtures::package("demo"))
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

/// A copy of the binary in a directory of its own (a hard link when possible), as a user
/// with a release binary has it.
fn lone_binary(dir: &std::path::Path) -> std::path::PathBuf {
    let copy = dir.join("rapport");
    if std::fs::hard_link(binary(), &copy).is_err() {
        std::fs::copy(binary(), &copy).unwrap();
    }
    copy
}

#[test]
fn the_demo_runs_without_arguments_through_a_package_beside_the_binary_or_natively() {
    let dir = tempfile::tempdir().unwrap();
    let rapport = lone_binary(dir.path());
    let demo = |data: &str| {
        let output = std::process::Command::new(&rapport)
            .current_dir(dir.path())
            .args(["demo", "--load-only", "--now", "2026-06-01T00:00:00Z", "--data", data])
            .env_remove("RAPPORT_DEMO_PACKAGE")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // No package anywhere near: the world is loaded natively, with a note saying so.
    let native = demo("native");
    assert!(native.contains("note: the demo plugin's package is not beside this binary"), "{native}");
    assert!(native.contains("natively") && native.contains("200 organizations"), "{native}");

    // With `demo-plugin/` beside the binary, the world goes through the plugin.
    let package = dir.path().join("demo-plugin");
    std::fs::create_dir_all(&package).unwrap();
    for file in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(rapport_fixtures::package("demo").join(file), package.join(file)).unwrap();
    }
    let through_plugin = demo("plugin");
    assert!(through_plugin.contains("through the demo plugin") && through_plugin.contains("200 organizations"), "{through_plugin}");
    assert!(!through_plugin.contains("note:"), "{through_plugin}");
}
