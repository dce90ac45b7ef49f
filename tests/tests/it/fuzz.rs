//! The API fuzzed against its own OpenAPI document: schemathesis with every check, over
//! every operation, against a daemon holding the demo world and requiring a token —
//! the coverage, fuzzing and stateful phases, with a fixed seed and a bounded number of
//! examples. Any server error, response off the document, undocumented status or content
//! type, accepted schema-violating request or rejected schema-valid one fails it.

use std::path::Path;
use std::process::Command;

use crate::harness::{Daemon, TOKEN, binary, rapport};

/// A Python with schemathesis: `RAPPORT_PYTHON` (set by `cargo xtask test`) or `python3`.
fn schemathesis() -> Command {
    let python = std::env::var("RAPPORT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python).args(["-c", "import schemathesis"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "schemathesis is missing for {python}: run the tests with `cargo xtask test`, which installs it, \
         or `pip install schemathesis` ({probe:?})"
    );
    let mut command = Command::new(python);
    command.args(["-m", "schemathesis.cli"]);
    command
}

#[test]
fn the_api_holds_to_its_openapi_document_under_fuzzing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo");
    let loaded = Command::new(binary())
        .args(["demo", "--load-only", "--now", "2026-06-01T00:00:00Z", "--data"])
        .arg(&store)
        .arg("--package")
        .arg(rapport_fixtures::package("demo"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    // The demo's store and its plugin instances, served with a token as in production.
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let mut serve = rapport(&store);
    serve.env("RAPPORT_PLUGINS_DIR", store.join("plugins")).arg("serve").stderr(log);
    let daemon = Daemon::spawn(&mut serve, "rapport listening on ");

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/schemathesis.toml");
    let output = schemathesis()
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(daemon.url("/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "all", "--max-examples", "40", "--seed", "20261201", "--no-color"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let daemon_log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    let log_tail: Vec<&str> = daemon_log.lines().rev().take(40).collect();
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}\nthe daemon's log ends with:\n{}",
        String::from_utf8_lossy(&output.stderr),
        log_tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // It did test: every operation of the document, and the stateful phase ran.
    let figure = |label: &str| report.lines().find_map(|l| l.trim().strip_prefix(label)).map(str::trim).unwrap_or_default().to_owned();
    let selected = figure("Selected:");
    assert_eq!(selected.split('/').next(), Some(figure("Tested:").as_str()), "{report}");
    assert_eq!(selected.split('/').nth(1), selected.split('/').next(), "every operation selected: {report}");
    assert!(report.lines().any(|l| l.contains("Stateful") && l.contains('✅')), "{report}");
    daemon.stop();
}
