//! kill -9 during a large import: after a restart each batch is wholly present or absent,
//! and importing again (from the start, or resuming) yields the same graph as a clean run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use rapport::import;
use rapport_graph::model::{RecordKind, Timestamp};
use rapport_graph::{ContextQuery, Graph, GraphStats, IdentityRules};
use rapport_store::SledStore;

use crate::harness::rapport;

const ORGS: usize = 100;
const PEOPLE: usize = 400;
const INTERACTIONS: usize = 20_000;
const BATCH: usize = 500;
const SOURCE: &str = "legacy";

/// Writes the input: one batch of organizations and people, then interactions in whole batches.
fn write_input(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for o in 0..ORGS {
        writeln!(out, r#"{{"op":"upsert_organization","external_id":"c{o}","name":"Org {o}","domains":["org{o}.example"]}}"#).unwrap();
    }
    for p in 0..PEOPLE {
        let o = p % ORGS;
        writeln!(
            out,
            r#"{{"op":"upsert_person","external_id":"p{p}","name":"Person {p}","emails":["p{p}@org{o}.example"],"works_at":[{{"organization":"c{o}"}}]}}"#
        )
        .unwrap();
    }
    assert_eq!((ORGS + PEOPLE) % BATCH, 0, "the first batch holds exactly the organizations and people");
    for i in 0..INTERACTIONS {
        let p = (i * 7) % PEOPLE;
        let e = i % 5;
        writeln!(
            out,
            r#"{{"op":"upsert_interaction","external_id":"i{i}","kind":"email","occurred_at":"2026-0{}-{:02}T10:00:00Z","participants":[{{"email":"p{p}@org{}.example"}},{{"email":"employee{e}@northwind.example"}}]}}"#,
            1 + i % 5,
            1 + i % 28,
            p % ORGS
        )
        .unwrap();
    }
}

fn open(store: &Path) -> Graph {
    let store = SledStore::open(store, 16 << 20).unwrap();
    Graph::new(Arc::new(store), IdentityRules::with_defaults(["northwind.example".to_owned()]))
}

/// What the graph says about every organization, in terms that do not depend on node ids.
fn fingerprint(graph: &Graph) -> (GraphStats, BTreeMap<String, (usize, usize, usize)>) {
    let at = Timestamp::from(chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc());
    let mut orgs = BTreeMap::new();
    for o in 0..ORGS {
        let external_id = format!("c{o}");
        let id = graph.resolve(SOURCE, RecordKind::Organization, &external_id).unwrap().unwrap();
        let context = graph.organization_context(id, ContextQuery { at, recent: 1 }).unwrap();
        let timeline = graph.timeline(id, None, Timestamp(i64::MAX / 2), None, 1_000_000).unwrap();
        orgs.insert(external_id, (context.people.len(), context.relationship_holders.len(), timeline.items.len()));
    }
    (graph.stats().unwrap(), orgs)
}

/// Runs an import to completion.
fn import_all(store: &Path, input: &Path, resume: bool) {
    let mut command = rapport(store);
    command.args(["import", "--source", SOURCE, "--batch-size", &BATCH.to_string(), "--progress", "none"]).arg(input);
    if resume {
        command.arg("--resume");
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "import failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// Starts an import, waits until `after_batches` batches are committed, and kills it.
/// Returns whether it was still running when the kill landed.
fn import_and_kill(store: &Path, input: &Path, after_batches: u64) -> bool {
    let mut child = rapport(store)
        .args(["import", "--source", SOURCE, "--batch-size", &BATCH.to_string(), "--progress", "lines"])
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        let line = line.unwrap();
        let batches = line.strip_prefix("committed batches=").and_then(|rest| rest.split(' ').next()?.parse::<u64>().ok());
        if batches.is_some_and(|b| b >= after_batches) {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    // Killed by the signal, not exited on its own: the kill landed while it was working.
    status.code().is_none()
}

#[test]
fn kill_during_import_loses_no_batch_and_reimport_converges() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    write_input(&input);
    let total_batches = ((ORGS + PEOPLE + INTERACTIONS) / BATCH) as u64;

    let reference_store = dir.path().join("reference");
    import_all(&reference_store, &input, false);
    let reference = fingerprint(&open(&reference_store));
    assert_eq!(reference.0.interactions, INTERACTIONS);

    let kill_points = [2, 9, 17, 26, 33];
    let mut landed_mid_run = 0;
    for (round, &after) in kill_points.iter().enumerate() {
        let store = dir.path().join(format!("crashed-{round}"));
        let killed_while_running = import_and_kill(&store, &input, after);

        let graph = open(&store);
        let committed = graph.stats().unwrap().interactions;
        assert_eq!(committed % BATCH, 0, "round {round}: a batch was partly committed ({committed} interactions)");
        let checkpoint = import::checkpoint(&graph, SOURCE).unwrap().expect("at least one batch committed");
        assert_eq!(
            checkpoint.lines as usize,
            ORGS + PEOPLE + committed,
            "round {round}: the import checkpoint commits atomically with its batch"
        );
        let committed_batches = checkpoint.lines / BATCH as u64;
        assert!(committed_batches >= after, "round {round}: it reported {after} batches committed");
        if killed_while_running && committed_batches < total_batches {
            landed_mid_run += 1;
        }
        drop(graph);

        // Alternate between importing everything again and resuming after the checkpoint.
        import_all(&store, &input, round % 2 == 1);
        assert_eq!(fingerprint(&open(&store)), reference, "round {round}: the graph differs from a clean import");
    }
    println!("kills that landed mid-import: {landed_mid_run} of {}", kill_points.len());
    assert!(landed_mid_run > 0, "no kill landed while the import was running");
}

#[test]
fn import_drops_invalid_lines_with_reasons_and_commits_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#,
            r#"{"op":"upsert_organization","external_id":"c2","name":"#,
            r#"{"op":"upsert_person","external_id":"p1","name":"Anna","emails":["anna@acme.com"]}"#,
            r#"{"op":"upsert_person","external_id":"p2","emails":["not-an-address"]}"#,
            "",
            r#"{"op":"upsert_organization","external_id":"c3","name":"Globex"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let store = dir.path().join("store");
    let output = rapport(&store).args(["import", "--source", "legacy", "--progress", "none"]).arg(&input).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("3 applied, 2 skipped"), "{stdout}");
    assert!(stdout.contains("skipped line 2 (-): malformed JSON"), "{stdout}");
    assert!(stdout.contains("skipped line 4 (p2): emails[0]: expected an email address"), "{stdout}");
    // Each skipped line is also logged with its source and reason.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("legacy") && stderr.contains("p2"), "{stderr}");

    let stats = open(&store).stats().unwrap();
    assert_eq!((stats.organizations, stats.people), (2, 1));
}

#[test]
fn import_skips_lines_that_are_not_utf8_and_strips_a_byte_order_mark() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bytes.jsonl");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(br#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#);
    bytes.extend_from_slice(b"\n\xff\xfe binary \x00\n");
    bytes.extend_from_slice(br#"{"op":"upsert_organization","external_id":"c2","name":"Globex"}"#);
    // The last line is cut inside a two-byte character ("é" is C3 A9).
    bytes.extend_from_slice(b"\r\n{\"op\":\"upsert_organization\",\"external_id\":\"c3\",\"name\":\"Caf\xC3");
    std::fs::write(&input, bytes).unwrap();
    let store = dir.path().join("store");
    let import = |resume: bool| {
        let mut command = rapport(&store);
        command.args(["import", "--source", "bytes", "--progress", "none", "--batch-size", "1"]).arg(&input);
        if resume {
            command.arg("--resume");
        }
        command.output().unwrap()
    };
    let output = import(false);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 applied, 2 skipped"), "{stdout}");
    assert!(stdout.contains("skipped line 2 (-): not valid UTF-8 (byte 1 of the line)"), "{stdout}");
    assert!(stdout.contains("skipped line 4 (-): not valid UTF-8 (byte 59 of the line)"), "{stdout}");
    let stats = open(&store).stats().unwrap();
    assert_eq!(stats.organizations, 2, "the line after the bad one and the one with a BOM are both imported");
    // The checkpoint covers the bad lines, so resuming does not stop at them again.
    let output = import(true);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("0 applied, 0 skipped"), "{}", String::from_utf8_lossy(&output.stdout));
}
