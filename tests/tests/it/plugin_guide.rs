//! `docs/plugin-guide.md`, followed as written: every `sh` block (not those marked
//! `no-run`, which a person types in another terminal or once per machine) runs in order in
//! one shell, in a fresh directory, with `rapport` on the PATH, `RAPPORT` at this checkout
//! and `EXAMPLE_API` at a running example API — what the guide's `no-run` blocks set up;
//! then the test starts the daemon as the guide says, and runs the `sh daemon` blocks beside
//! it. The guide's port 8090 becomes a free one.

use std::path::Path;
use std::process::{Command, Output};

use rapport_example_api::{ExampleApi, contacts};

use crate::harness::{Daemon, binary};

/// The blocks of a Markdown text fenced as ```` ```{info} ````, in order.
fn blocks(markdown: &str, info: &str) -> Vec<String> {
    let (opening, mut blocks, mut current) = (format!("```{info}"), Vec::new(), None::<String>);
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, fence) if fence == opening => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Runs `blocks` in one bash in `dir`, as the guide's reader would; fails showing both streams.
fn run_script(blocks: &[String], dir: &Path, api: &ExampleApi) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin_dir = binary().parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output: Output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{}", blocks.join("\n")))
        .current_dir(dir)
        .env("PATH", path)
        .env("RAPPORT", root)
        .env("EXAMPLE_API", api.url())
        .env("RUST_LOG", "warn")
        .env_remove("RAPPORT_TOKEN")
        // The guide's crate builds on its own, as a reader's would; only the compiler's
        // chatter is kept out of the way.
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the guide failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    stdout
}

#[test]
fn the_plugin_guide_works_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let guide = std::fs::read_to_string(root.join("docs/plugin-guide.md")).unwrap().replace("8090", &port.to_string());
    let (alone, beside) = (blocks(&guide, "sh"), blocks(&guide, "sh daemon"));
    assert!(alone.len() >= 8 && !beside.is_empty(), "the guide's runnable blocks were not found: {alone:?} {beside:?}");

    let api = ExampleApi::start("example-token").unwrap();
    api.upsert(contacts(500, 4));
    api.throttle_every(7);
    let work = tempfile::tempdir().unwrap();
    let stdout = run_script(&alone, work.path(), &api);

    // Step 4: packaged by the one command.
    assert!(stdout.contains("packaged . into ./package"), "{stdout}");
    // Step 5: the test run synced all 500 contacts (an organization and a person each, and
    // the 100 tickets) in pages of 100, a checkpoint each, and logged it.
    assert!(stdout.contains("Succeeded") && stdout.contains("1100 applied") && stdout.contains("5 checkpoints"), "{stdout}");
    assert!(stdout.contains("contacts synced contacts=500"), "{stdout}");
    assert!(stdout.contains("final cursor: {\"high\""), "{stdout}");
    assert!(!stdout.contains("in the log:"), "the guide's connector logs no warnings: {stdout}");
    // Step 6: installed, run (the same 1100 operations into the real store), logs shown,
    // scheduled and listed; and what landed: 50 companies, 500 people, 100 tickets, on
    // their companies' timelines.
    assert!(stdout.contains("installed my-crm 0.1.0"), "{stdout}");
    assert_eq!(stdout.matches("1100 applied").count(), 2, "{stdout}");
    assert!(stdout.contains("runs on \"*/15 * * * *\" (Europe/Paris)"), "{stdout}");
    assert!(stdout.contains("instance my-crm  plugin my-crm") && stdout.contains("network granted: http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("\"organizations\": 50") && stdout.contains("\"people\": 500"), "{stdout}");
    assert!(stdout.contains("\"interactions\": 100"), "{stdout}");
    assert!(stdout.contains("\tticket\tinbound\tCannot export report 0"), "{stdout}");
    let company: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("my-crm/company.json")).unwrap()).unwrap();
    assert_eq!(company["organization"]["name"], "Company 0", "{company}");
    assert!(api.served().throttled > 0, "the 429s were met and waited out");

    // Step 7: served where the secret's variable is set; the commands go through it.
    let crate_dir = work.path().join("my-crm");
    let mut serve = Command::new(binary());
    serve.current_dir(&crate_dir).args(["--config", "rapport.toml", "serve"]).env("MY_CRM_TOKEN", "example-token").env("RUST_LOG", "warn");
    let daemon = Daemon::spawn(&mut serve, "rapport listening on ");
    assert_eq!(daemon.base, format!("http://127.0.0.1:{port}"));
    let stdout = run_script(&beside, &crate_dir, &api);
    assert!(stdout.contains("instance my-crm  plugin my-crm"), "{stdout}");
    assert!(stdout.contains("Succeeded") && stdout.contains("\"organizations\": 50"), "{stdout}");
    let runs: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(runs[0]["operations_applied"], 1100, "{runs}");
    daemon.stop();
}
