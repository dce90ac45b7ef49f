//! Relationship signals: per-day aggregates of every organization's touches (and of each
//! employee × organization pair) and its deals' facts, kept current from the graph's change
//! feed by [`Signals::catch_up`] and read as signals at any time by
//! [`Signals::organization`].
//!
//! The stage sits downstream of the graph and writes only its own rows of the graph's
//! derived namespace (`keys.rs`), always together with its feed position. What depends on
//! "now" is computed when read (`read.rs`), so nothing is rewritten as days pass.

mod config;
mod contribution;
mod keys;
mod maintain;
pub mod metrics;
mod read;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use config::{ENV_KEYS, RawSignals, SignalsConfig};
pub use maintain::CatchUp;
pub use read::{OrganizationSignals, STRENGTH_WEIGHTS, Strength, StrengthComponent};

use metrics::METRICS;
use rapport_graph::{DerivedRow, Graph, GraphError};
use rapport_store::codec::CodecError;

/// The maintainer's name in the change feed.
pub const CONSUMER: &str = "signals";

/// The signal maintainer's feed position in `graph` (0 before it first ran) and the newest
/// change, read without opening the signals (which may build them).
pub fn position(graph: &Graph) -> Result<(u64, u64), SignalsError> {
    let position = graph.consumers()?.into_iter().find(|(name, _)| name == CONSUMER).map_or(0, |(_, p)| p);
    Ok((position, graph.last_change()?.unwrap_or(0)))
}

/// A failure keeping or reading signals.
#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    /// The graph failed (or has no such record).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A row of the stage did not decode.
    #[error("signal row {key} is unreadable: {source}; `rapport signals rebuild` writes every row again")]
    Unreadable {
        /// The key, escaped for display.
        key: String,
        /// Why.
        source: CodecError,
    },
}

/// The signals of a graph.
#[derive(Debug)]
pub struct Signals {
    graph: Arc<Graph>,
    config: SignalsConfig,
    /// One maintainer at a time: two would each take back the same contribution.
    maintainer: Mutex<()>,
    /// A rebuild started by [`Self::start_rebuild`] is under way.
    rebuilding: AtomicBool,
}

impl Signals {
    /// The signals of `graph`. The first time (or after an interrupted rebuild) the
    /// aggregates are built from the graph as it stands, then followed from the feed.
    pub fn open(graph: Arc<Graph>, config: SignalsConfig) -> Result<Self, SignalsError> {
        let signals = Self { graph, config, maintainer: Mutex::new(()), rebuilding: AtomicBool::new(false) };
        let registered = signals.graph.consumers()?.iter().any(|(name, _)| name == CONSUMER);
        if !registered || maintain::rebuild_interrupted(&signals.graph)? {
            signals.rebuild()?;
        }
        Ok(signals)
    }

    /// Reads the change feed to its end, updating what the changes touched; returns how
    /// far it went. Cost: the records the changes name (and, for a merge, the clusters'
    /// interactions), never a scan of the graph.
    pub fn catch_up(&self) -> Result<CatchUp, SignalsError> {
        let _one = self.maintainer.lock().unwrap_or_else(PoisonError::into_inner);
        let span = tracing::debug_span!("signals_catch_up");
        let _entered = span.enter();
        let (position, newest) = self.position()?;
        METRICS.lag.set(i64::try_from(newest.saturating_sub(position)).unwrap_or(i64::MAX));
        let mut total = CatchUp::default();
        while let Some(step) = maintain::catch_up_chunk(&self.graph)? {
            total.changes += step.changes;
            total.records += step.records;
            total.position = step.position;
            METRICS.changes_read.inc_by(step.changes as u64);
            METRICS.records_updated.inc_by(step.records as u64);
        }
        METRICS.lag.set(0);
        if total.changes > 0 {
            tracing::debug!(changes = total.changes, records = total.records, position = total.position, "signals caught up");
        }
        Ok(total)
    }

    /// Writes every aggregate again from the graph alone; returns the feed position it
    /// stands at. The values equal those kept from the feed.
    pub fn rebuild(&self) -> Result<u64, SignalsError> {
        let _one = self.maintainer.lock().unwrap_or_else(PoisonError::into_inner);
        let position = maintain::rebuild(&self.graph)?;
        METRICS.rebuilds.inc();
        tracing::info!(position, "signals rebuilt from the graph");
        Ok(position)
    }

    /// Starts a rebuild on a thread of its own unless one is under way; whether it started.
    /// Until it ends, [`Self::is_rebuilding`] says so (readers should wait: the rows are
    /// being written again).
    pub fn start_rebuild(self: &Arc<Self>) -> bool {
        if self.rebuilding.swap(true, Ordering::SeqCst) {
            return false;
        }
        let signals = Arc::clone(self);
        let started = std::thread::Builder::new().name("signals-rebuild".to_owned()).spawn(move || {
            if let Err(err) = signals.rebuild() {
                tracing::error!(error = %err, "the signals rebuild failed; it starts again when the daemon restarts");
            }
            signals.rebuilding.store(false, Ordering::SeqCst);
        });
        if let Err(err) = started {
            tracing::error!(error = %err, "cannot start the signals rebuild");
            self.rebuilding.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Whether a rebuild started by [`Self::start_rebuild`] is under way.
    pub fn is_rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::SeqCst)
    }

    /// The maintainer's feed position and the newest change.
    pub fn position(&self) -> Result<(u64, u64), SignalsError> {
        position(&self.graph)
    }

    /// Every row of the stage, in key order: what a rebuild and the maintainer must agree
    /// on (for tests and checks).
    pub fn rows(&self) -> Result<Vec<DerivedRow>, SignalsError> {
        Ok(self.graph.derived_prefix(&keys::all(), false).collect::<Result<_, _>>()?)
    }

    fn unreadable(key: &[u8], source: CodecError) -> SignalsError {
        SignalsError::Unreadable { key: key.iter().flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect(), source }
    }
}
