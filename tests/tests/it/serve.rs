//! The daemon as an operator runs it: config errors, auth, restarts.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Daemon, TOKEN, binary, rapport};

fn ingest(client: &reqwest::blocking::Client, daemon: &Daemon, external_id: &str) {
    let batch = json!({"source": "crm", "operations": [
        {"op": "upsert_organization", "external_id": external_id, "name": format!("Org {external_id}"), "domains": [format!("{external_id}.example")]},
    ]});
    let response = client.post(daemon.url("/v1/ingest")).bearer_auth(TOKEN).json(&batch).send().unwrap();
    assert_eq!(response.status(), 200);
}

fn organizations(client: &reqwest::blocking::Client, daemon: &Daemon) -> u64 {
    let stats: Value = client.get(daemon.url("/v1/stats")).bearer_auth(TOKEN).send().unwrap().json().unwrap();
    stats["organizations"].as_u64().unwrap()
}

#[test]
fn committed_data_survives_a_restart_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::blocking::Client::new();

    let daemon = Daemon::start(dir.path());
    assert_eq!(client.get(daemon.url("/v1/stats")).send().unwrap().status(), 401, "auth is on by default");
    ingest(&client, &daemon, "a");
    daemon.stop();

    let daemon = Daemon::start(dir.path());
    assert_eq!(organizations(&client, &daemon), 1, "a graceful restart keeps the data");
    ingest(&client, &daemon, "b");
    // An acknowledged batch is durable: killing right after the 200 loses nothing.
    daemon.kill();

    let daemon = Daemon::start(dir.path());
    assert_eq!(organizations(&client, &daemon), 2);
    daemon.stop();
}

#[test]
fn serve_refuses_to_run_without_a_token_unless_in_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let output = rapport(dir.path()).env_remove("RAPPORT_API_TOKEN_SHA256").arg("serve").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rapport token new"), "{stderr}");
}

#[test]
fn a_malformed_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rapport.toml");
    std::fs::write(&config, "[store]\ncache_bytes = 1024\n\n[api]\nmax_body_bytes = \"lots\"\n").unwrap();
    let output = rapport(dir.path()).arg("--config").arg(&config).arg("serve").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{}:5: key `api.max_body_bytes`", config.display())), "{stderr}");

    let output = rapport(dir.path()).env("RAPPORT_API_DEV_MODE", "maybe").arg("serve").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RAPPORT_API_DEV_MODE") && stderr.contains("expected true or false"), "{stderr}");

    // A value found wrong after parsing still names where it came from.
    std::fs::write(&config, "[store]\ncache_bytes = 1024\n\n[api]\nbind = \"everywhere\"\n").unwrap();
    let output = rapport(dir.path()).env_remove("RAPPORT_API_BIND").arg("--config").arg(&config).arg("serve").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{}:5: key `api.bind`", config.display())), "{stderr}");
    let output = rapport(dir.path()).env("RAPPORT_API_BIND", "everywhere").arg("serve").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("environment variable RAPPORT_API_BIND (overrides `api.bind`)"), "{stderr}");
}

#[test]
fn misspelled_variables_are_reported_and_fail_in_strict_mode() {
    let dir = tempfile::tempdir().unwrap();
    let output = rapport(dir.path()).env("RAPPORT_API_BNID", "127.0.0.1:1").args(["graph", "stats"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RAPPORT_API_BNID is not a Rapport setting") && stderr.contains("did you mean RAPPORT_API_BIND?"), "{stderr}");
    let output = rapport(dir.path()).env("RAPPORT_API_BNID", "127.0.0.1:1").args(["--strict", "graph", "stats"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--strict"));
}

#[test]
fn store_open_failures_say_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let daemon = Daemon::start(&store);
    // Reads go through the daemon; an import needs the store itself.
    let lines = dir.path().join("crm.jsonl");
    std::fs::write(&lines, "").unwrap();
    let output = rapport(&store).arg("import").arg(&lines).args(["--source", "crm"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("store.path") && stderr.contains("in use by another process") && stderr.contains("/v1/ingest"), "{stderr}");
    daemon.stop();

    // A store path under a file cannot be created: the error says so, not "in use".
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let output = rapport(&file.join("store")).args(["graph", "stats"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("store.path") && stderr.contains("cannot open the store at") && !stderr.contains("another process"),
        "{stderr}"
    );
}

#[test]
fn relative_paths_in_a_config_file_are_its_directorys_whatever_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rapport.toml");
    // A secret's variable is the daemon's business: other commands run without it.
    let text = "[store]\npath = \"store\"\n[plugins.instances.crm]\nsecrets = { token = { env = \"E2E_UNSET_CRM_TOKEN\" } }\n";
    std::fs::write(&config, text).unwrap();
    let lines = dir.path().join("crm.jsonl");
    std::fs::write(&lines, "{\"op\":\"upsert_organization\",\"external_id\":\"1\",\"name\":\"Acme\"}\n").unwrap();
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let command = |cwd: &Path| {
        let mut command = Command::new(binary());
        command.current_dir(cwd).env("RUST_LOG", "warn").env_remove("E2E_UNSET_CRM_TOKEN").arg("--config").arg(&config);
        command
    };
    let imported = command(first.path()).arg("import").arg(&lines).args(["--source", "crm"]).output().unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    assert!(dir.path().join("store").is_dir());
    assert_eq!(std::fs::read_dir(first.path()).unwrap().count(), 0, "nothing was created in the working directory");
    let stats = command(second.path()).args(["graph", "stats"]).output().unwrap();
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["organizations"], 1, "another working directory sees the same store");
}
