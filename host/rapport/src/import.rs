//! Bulk import of record operations from JSON Lines, one operation per line.
//!
//! Batches are committed atomically, each with the number of lines it completes, so an
//! interrupted import leaves whole batches only and can resume after the last one.
//! Invalid lines are dropped, counted and logged with their line number and reason; the
//! rest is committed.

use std::io::BufRead;

use serde::{Deserialize, Serialize};
use tracing::warn;

use rapport_graph::{Graph, GraphError};
use rapport_ops::{self as ops, IngestBatch, Operation};
use rapport_store::codec;

/// An import failed as a whole (the store, or reading the input).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The graph failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The input could not be read.
    #[error("cannot read line {line} of the input: {source}")]
    Read {
        /// 1-based line.
        line: u64,
        /// Why.
        source: std::io::Error,
    },
}

/// One dropped line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: u64,
    /// The record's external id, when the line parsed that far.
    pub external_id: Option<String>,
    /// Why it was dropped.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Lines read (blank lines included), counting resumed ones.
    pub lines: u64,
    /// Lines passed over because an earlier run had committed them.
    pub resumed_after: u64,
    /// Operations applied.
    pub applied: u64,
    /// Lines dropped, each with its reason.
    pub skipped: Vec<SkippedLine>,
    /// Batches committed.
    pub batches: u64,
    /// Identity merges made.
    pub merges: u64,
}

/// Progress reported after each committed batch.
#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    /// Batches committed so far.
    pub batches: u64,
    /// Lines consumed so far.
    pub lines: u64,
    /// Input bytes consumed so far.
    pub bytes: u64,
}

/// How far an import of a source got, committed atomically with each batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The input's name (its path).
    pub input: String,
    /// Lines of it whose operations are committed.
    pub lines: u64,
}

/// The checkpoint of the last import of `source`, if any.
pub fn checkpoint(graph: &Graph, source: &str) -> Result<Option<Checkpoint>, GraphError> {
    let Some(bytes) = graph.meta(&checkpoint_key(source))? else { return Ok(None) };
    codec::decode(&bytes).map(Some).map_err(|err| GraphError::Codec { key: checkpoint_key(source), source: err })
}

fn checkpoint_key(source: &str) -> String {
    format!("import/{source}")
}

/// Options of one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The source (connection) name the records belong to.
    pub source: String,
    /// A name for the input (its path), remembered for `resume`.
    pub input_name: String,
    /// Operations per committed batch.
    pub batch_size: usize,
    /// Continue after the lines a previous import of the same input committed.
    pub resume: bool,
}

/// Imports operations from `input`, calling `progress` after each commit.
pub fn import_jsonl(
    graph: &Graph,
    input: impl BufRead,
    options: &ImportOptions,
    mut progress: impl FnMut(ImportProgress),
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::default();
    if options.resume
        && let Some(previous) = checkpoint(graph, &options.source)?
        && previous.input == options.input_name
    {
        summary.resumed_after = previous.lines;
    }
    let mut pending: Vec<(u64, Operation)> = Vec::with_capacity(options.batch_size);
    let mut bytes = 0_u64;
    let mut line_no = 0_u64;
    let mut committed_through = summary.resumed_after;
    let mut lines = RawLines { input, buf: Vec::new() };
    loop {
        let raw = match lines.next_line() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(source) => {
                // Keep what was read before the failure, so `--resume` continues after it.
                let read = line_no;
                if !pending.is_empty() {
                    commit(graph, options, &mut pending, read, &mut summary)?;
                }
                return Err(ImportError::Read { line: read + 1, source });
            }
        };
        line_no += 1;
        bytes += raw.len() as u64;
        if line_no <= summary.resumed_after {
            continue;
        }
        let mut text = raw.strip_suffix(b"\n").unwrap_or(raw);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        if line_no == 1 {
            text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
        }
        let line = match std::str::from_utf8(text) {
            Ok(line) => line,
            Err(err) => {
                let reason = format!("not valid UTF-8 (byte {} of the line); nothing of it was read", err.valid_up_to() + 1);
                skip(&mut summary, &options.source, line_no, None, reason);
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match ops::parse_operation(line, "") {
            Ok(op) => pending.push((line_no, op)),
            Err(err) => skip(&mut summary, &options.source, line_no, None, err.to_string()),
        }
        if pending.len() == options.batch_size {
            commit(graph, options, &mut pending, line_no, &mut summary)?;
            committed_through = line_no;
            progress(ImportProgress { batches: summary.batches, lines: line_no, bytes });
        }
    }
    // Lines skipped after the last batch move the checkpoint too, so a resume does not
    // read them again.
    if !pending.is_empty() || summary.batches == 0 || committed_through < line_no {
        commit(graph, options, &mut pending, line_no, &mut summary)?;
        progress(ImportProgress { batches: summary.batches, lines: line_no, bytes });
    }
    summary.lines = line_no;
    Ok(summary)
}

/// The byte-order mark some editors write at the start of a UTF-8 file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines as bytes, so a line that is not UTF-8 is one bad line rather than the end of the
/// input (`BufRead::lines` fails on it, and would fail again at the same place on resume).
struct RawLines<R> {
    input: R,
    buf: Vec<u8>,
}

impl<R: BufRead> RawLines<R> {
    /// The next line with its `\n` (absent on a last line without one), or `None` at the end.
    fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.buf.clear();
        let read = self.input.read_until(b'\n', &mut self.buf)?;
        Ok((read > 0).then_some(self.buf.as_slice()))
    }
}

/// Logs and keeps a dropped line; what it quotes of the input is cut short.
fn skip(summary: &mut ImportSummary, source: &str, line: u64, external_id: Option<String>, reason: String) {
    let external_id = external_id.map(|id| ops::excerpt(&id, 256).into_owned());
    let reason = ops::excerpt(&reason, 1000).into_owned();
    warn!(source, line, external_id = external_id.as_deref().unwrap_or(""), %reason, "import line skipped");
    summary.skipped.push(SkippedLine { line, external_id, reason });
}

fn commit(
    graph: &Graph,
    options: &ImportOptions,
    pending: &mut Vec<(u64, Operation)>,
    through_line: u64,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    let (lines, operations): (Vec<u64>, Vec<Operation>) = std::mem::take(pending).into_iter().unzip();
    let checkpoint = Checkpoint { input: options.input_name.clone(), lines: through_line };
    let report = graph.ingest(IngestBatch {
        meta: vec![(checkpoint_key(&options.source), codec::encode(&checkpoint))],
        ..IngestBatch::trusted(options.source.clone(), operations)
    })?;
    summary.applied += report.applied as u64;
    summary.merges += report.merges as u64;
    summary.batches += 1;
    for skipped in report.skipped {
        let reason = skipped.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        skip(summary, &options.source, lines[skipped.index], Some(skipped.external_id), reason);
    }
    Ok(())
}
