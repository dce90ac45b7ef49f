//! The demo world on the host's side: generated natively by the demo plugin's library
//! (`plugins/demo`) for `rapport demo --export` and the benchmarks, written as JSONL. `rapport demo` itself loads the world through the plugin, as a user's sources would.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rapport_ops::Operation;

pub use rapport_demo::{INTERNAL_DOMAIN, WorldCounts, WorldSpec, planted};

/// One source's operations, in the order it sends them.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The connection name.
    pub source: &'static str,
    /// Its operations.
    pub operations: Vec<Operation>,
}

/// Generates the world for `spec`, as the host's operations: the demo plugin's generator
/// run natively, its operations read as any source's would be.
pub fn generate(spec: WorldSpec) -> (Vec<SourceBatch>, WorldCounts) {
    let (batches, counts) = rapport_demo::generate(spec);
    let batches = batches
        .into_iter()
        .map(|batch| {
            let operations = batch
                .operations
                .iter()
                // The generator's operations are valid by construction (a unit test checks).
                .filter_map(|op| rapport_ops::parse_operation(&op.to_json(), "").ok())
                .collect();
            SourceBatch { source: batch.source, operations }
        })
        .collect();
    (batches, counts)
}

/// Writes each source's operations as `<dir>/<source>.jsonl`, the format `rapport import`
/// reads; returns the files.
pub fn export(batches: &[SourceBatch], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::with_capacity(batches.len());
    for batch in batches {
        let path = dir.join(format!("{}.jsonl", batch.source));
        let mut out = BufWriter::new(std::fs::File::create(&path)?);
        for op in &batch.operations {
            serde_json::to_writer(&mut out, op)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::DateTime;

    #[test]
    fn same_seed_same_world() {
        let spec = WorldSpec { seed: 7, scale: 1, now: DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc() };
        let (a, counts) = generate(spec);
        let (b, _) = generate(spec);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.operations, y.operations);
        }
        assert_eq!(counts.organizations, 200);
        assert_eq!(counts.people, 2000);
        assert_eq!(counts.deals, 600);
        assert!(counts.interactions > 45_000 && counts.interactions <= 50_000, "{counts:?}");
        let generated: usize = rapport_demo::generate(spec).0.iter().map(|b| b.operations.len()).sum();
        assert_eq!(a.iter().map(|b| b.operations.len()).sum::<usize>(), generated, "every generated operation parses");
        for batch in &a {
            for op in &batch.operations {
                assert!(op.validate("", &rapport_ops::RecordLimits::default()).is_empty(), "{op:?}");
            }
        }
    }
}
