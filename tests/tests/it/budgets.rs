//! What a hostile plugin makes the daemon hold stays within the documented bound
//! (`PluginsConfig::host_memory_bound_bytes`): floods of big operations, big log lines and a
//! big cursor, each run through a real daemon, whose peak resident memory is read from
//! the kernel after each.

use rapport_plugin_host::config::PluginsConfig;
use serde_json::json;

use crate::harness::{Daemon, rapport};

/// The process's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

const MIB: u64 = 1 << 20;

#[test]
fn floods_of_bytes_keep_the_daemon_within_its_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = dir.path().join("rapport.toml");
    std::fs::write(
        &config,
        "[plugins]\nmemory_limit_bytes = 67108864\nmax_pending_bytes = 16777216\nmax_cursor_bytes = 1048576\nmax_log_line_bytes = 8192\n",
    )
    .unwrap();
    let mut limits = PluginsConfig::with_dir(dir.path().join("plugins"));
    limits.memory_limit_bytes = 64 * MIB;
    limits.max_pending_bytes = 16 << 20;
    let bound = limits.host_memory_bound_bytes();

    // Each flood would have the daemon hold about a gigabyte without the budgets.
    let floods = [
        ("warm-up", json!({"behaviour": "malformed"}), "succeeded"),
        ("big-emit", json!({"behaviour": "big-emit", "bytes": 10_000_000, "count": 100}), "pending_bytes"),
        ("big-log", json!({"behaviour": "big-log", "bytes": 8_000_000, "count": 40}), "succeeded"),
        ("big-cursor", json!({"behaviour": "big-cursor", "bytes": 50_000_000, "count": 1}), "cursor_too_large"),
    ];
    let package = rapport_fixtures::package("hostile");
    for (instance, instance_config, _) in &floods {
        let output = rapport(&store)
            .arg("--config")
            .arg(&config)
            .args(["plugin", "install", package.to_str().unwrap(), "--instance", instance, "--instance-config"])
            .arg(instance_config.to_string())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let daemon = Daemon::spawn(rapport(&store).arg("--config").arg(&config).arg("serve"), "rapport listening on ");
    let pid = daemon.child.id();
    let mut baseline = 0;
    for (instance, _, outcome) in floods {
        let id = daemon.start_run(instance);
        let record = daemon.wait_for_run(instance, &id, |r| r["status"] != "running");
        let got = record["failure"]["kind"].as_str().unwrap_or(if record["status"] == "succeeded" { "succeeded" } else { "?" });
        assert_eq!(got, outcome, "{record}");
        let peak = peak_rss(pid);
        if instance == "warm-up" {
            // The engine, a first instance and the store's cache are the daemon's, not a run's.
            baseline = peak;
            continue;
        }
        println!("{instance}: peak RSS {} MiB, {} MiB over the baseline; bound {} MiB", peak / MIB, (peak - baseline) / MIB, bound / MIB);
        assert!(peak <= baseline + bound, "{instance}: peak {peak} bytes exceeds the baseline {baseline} + bound {bound}");
    }
    daemon.stop();
}

#[test]
fn a_log_flood_reaches_neither_the_store_nor_the_daemons_stderr_past_the_kept_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let package = rapport_fixtures::package("hostile");
    let flood = json!({"behaviour": "big-log", "bytes": 100, "count": 200_000});
    let output = rapport(&store)
        .args(["plugin", "install", package.to_str().unwrap(), "--instance", "chatty", "--instance-config"])
        .arg(flood.to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = rapport(&store).env("RUST_LOG", "info").args(["plugin", "run", "chatty"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = stderr.lines().filter(|line| line.contains("a big field")).count();
    assert_eq!(shown, 1000, "the lines a run keeps are shown, the rest only counted");
    assert!(stderr.contains("log_lines_dropped") && stderr.contains("199000"), "{}", &stderr[stderr.len().saturating_sub(2000)..]);
}
