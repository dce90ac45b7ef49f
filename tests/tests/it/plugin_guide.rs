//! `docs/plugin-guide.md`, followed as written: every `sh` block (not those marked
//! `no-run`, which a person types in another terminal or once per machine) runs in order in
//! one shell, in a fresh directory, with `rapport` on the PATH, `RAPPORT` at this checkout
//! and `EXAMPLE_API` at a running example API — what the guide's `no-run` blocks set up.

use std::path::Path;

use rapport_example_api::{ExampleApi, contacts};

use crate::harness::binary;

/// The `sh` blocks of a Markdown text, in order.
fn runnable_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
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

#[test]
fn the_plugin_guide_works_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let guide = std::fs::read_to_string(root.join("docs/plugin-guide.md")).unwrap();
    let blocks = runnable_blocks(&guide);
    assert!(blocks.len() >= 6, "the guide's runnable blocks were not found: {blocks:?}");
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));

    let api = ExampleApi::start("example-token").unwrap();
    api.upsert(contacts(500, 4));
    api.throttle_every(7);
    let work = tempfile::tempdir().unwrap();
    let bin_dir = binary().parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", path)
        .env("RAPPORT", root)
        .env("EXAMPLE_API", api.url())
        .env("RUST_LOG", "warn")
        // The guide's crate builds on its own, as a reader's would; only the compiler's
        // chatter is kept out of the way.
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the guide failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}");

    // Step 5: the test run synced all 500 contacts (an organization and a person each) in
    // pages of 100, a checkpoint each, and logged it.
    assert!(stdout.contains("Succeeded") && stdout.contains("1000 applied") && stdout.contains("5 checkpoints"), "{stdout}");
    assert!(stdout.contains("contacts synced contacts=500"), "{stdout}");
    assert!(stdout.contains("final cursor: {\"high\""), "{stdout}");
    // Step 6: installed, run (the same 1000 operations into the real store), logs shown,
    // scheduled and listed.
    assert!(stdout.contains("installed my-crm 0.1.0"), "{stdout}");
    assert_eq!(stdout.matches("1000 applied").count(), 2, "{stdout}");
    assert!(stdout.contains("runs on \"*/15 * * * *\" (Europe/Paris)"), "{stdout}");
    assert!(stdout.contains("instance my-crm  plugin my-crm") && stdout.contains("network granted: http://127.0.0.1:"), "{stdout}");
    assert!(api.served().throttled > 0, "the 429s were met and waited out");
}
