//! The command line beside a running daemon: the same read commands (`graph stats`,
//! `graph search`, `plugin list`, `plugin runs`) timed with the store to themselves and
//! through the daemon holding it, over a graph of 20,000 organizations with a synced plugin
//! instance. Each figure is a whole command, process start included, as an operator types
//! it. Prints its figures; asserts nothing.
//!
//! Run with `cargo xtask bench --bench cli`.

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rapport::config::token_digest;
use rapport_core::hex;

const TOKEN: &str = "bench-token-0123456789";
const ORGANIZATIONS: usize = 20_000;
const ROUNDS: u32 = 20;

fn rapport(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rapport"));
    command.arg("--config").arg(config).env("RUST_LOG", "warn").env("RAPPORT_TOKEN", TOKEN);
    command
}

/// Mean milliseconds of `args`, which must succeed.
fn timed(config: &Path, args: &[&str]) -> f64 {
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let output = rapport(config).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(ROUNDS)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rapport.toml");
    let text = format!("[store]\npath = \"store\"\n\n[api]\nbind = \"127.0.0.1:0\"\ntoken_sha256 = [\"{}\"]\n", hex(&token_digest(TOKEN)));
    std::fs::write(&config, text).unwrap();
    let lines: String = (0..ORGANIZATIONS)
        .map(|n| {
            format!("{{\"op\":\"upsert_organization\",\"external_id\":\"{n}\",\"name\":\"Org {n}\",\"domains\":[\"org{n}.example\"]}}\n")
        })
        .collect();
    std::fs::write(dir.path().join("orgs.jsonl"), lines).unwrap();
    let import = rapport(&config).arg("import").arg(dir.path().join("orgs.jsonl")).args(["--source", "crm"]).output().unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let pager = rapport_fixtures::package("pager");
    let install = rapport(&config).args(["plugin", "install"]).arg(&pager).args(["--instance", "crm-sync"]).output().unwrap();
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    assert!(rapport(&config).args(["plugin", "run", "crm-sync"]).output().unwrap().status.success());

    let commands: [&[&str]; 4] =
        [&["graph", "stats"], &["graph", "search", "org 1999"], &["plugin", "list"], &["plugin", "runs", "crm-sync"]];
    let alone: Vec<f64> = commands.iter().map(|args| timed(&config, args)).collect();

    let mut daemon = rapport(&config).arg("serve").stdout(Stdio::piped()).spawn().unwrap();
    let mut banner = String::new();
    BufReader::new(daemon.stdout.take().unwrap()).read_line(&mut banner).unwrap();
    assert!(banner.starts_with("rapport listening on "), "{banner}");
    let beside: Vec<f64> = commands.iter().map(|args| timed(&config, args)).collect();
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    println!("rapport CLI benchmark: {ORGANIZATIONS} organizations, one synced instance; mean of {ROUNDS} runs per command");
    for ((args, alone), beside) in commands.iter().zip(&alone).zip(&beside) {
        println!("{:<28} store: {alone:6.1} ms   through the daemon: {beside:6.1} ms   ratio {:.2}", args.join(" "), beside / alone);
    }
}
