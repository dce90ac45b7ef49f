//! The change feed: every batch that changes records appends, in its own commit, one entry
//! per change under an increasing sequence number (`q` namespace), so later stages (signals,
//! rules, the webhook outbox) can follow what changed without scanning the graph, and a
//! consumer that stores its position with what it derives never skips or doubles a change.

use super::model::{Change, Timestamp};
use super::txn::Txn;
use super::{Graph, GraphError, decode_at, keys};
use rapport_store::KeyRange;

/// Entries pruned per batch.
const PRUNE_SLICE: usize = 10_000;

impl Graph {
    /// Numbers `txn`'s changes from the feed's next sequence number on and writes them into
    /// it; `next` is the writer's (read from the store by the first batch), moved on by
    /// [`Self::changes_committed`] once the batch is durable, so a failed commit reuses the
    /// numbers. Returns how many.
    pub(super) fn write_changes(&self, txn: &mut Txn<'_>, next: &mut Option<u64>, now: Timestamp) -> Result<usize, GraphError> {
        let mut seq = match *next {
            Some(seq) => seq,
            None => *next.insert(self.last_change()?.map_or(1, |last| last + 1)),
        };
        txn.write_changes(&mut seq, now)
    }

    /// The batch holding `written` changes is durable: their numbers are taken.
    pub(super) fn changes_committed(next: &mut Option<u64>, written: usize) {
        if let Some(seq) = next {
            *seq += written as u64;
        }
    }

    /// The sequence number of the newest change, if there is one.
    pub fn last_change(&self) -> Result<Option<u64>, GraphError> {
        match self.store.range(KeyRange::prefix(&[keys::ns::CHANGE]), true).next() {
            Some(entry) => Ok(keys::change_seq(&entry?.0)),
            None => Ok(None),
        }
    }

    /// Deletes the changes written before `cutoff`, oldest first, but never the newest (the
    /// next number continues from it, even after a restart); returns how many.
    pub fn prune_changes(&self, cutoff: Timestamp) -> Result<usize, GraphError> {
        let Some(last) = self.last_change()? else { return Ok(0) };
        let mut pruned = 0;
        loop {
            // In slices, so a long-idle daemon's first prune is not one huge batch.
            let stale: Vec<u64> = self
                .changes_since(0, PRUNE_SLICE)?
                .into_iter()
                .take_while(|change| change.written_at < cutoff && change.seq < last)
                .map(|change| change.seq)
                .collect();
            if stale.is_empty() {
                return Ok(pruned);
            }
            pruned += stale.len();
            self.write(|txn| {
                stale.iter().for_each(|seq| txn.delete(keys::change(*seq)));
                Ok::<_, GraphError>(())
            })?;
        }
    }

    /// Up to `limit` changes after sequence number `after` (0: from the first), in order.
    pub fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, GraphError> {
        let range = KeyRange::between(keys::change(after.saturating_add(1)), vec![keys::ns::CHANGE + 1]);
        self.store
            .range(range, false)
            .take(limit)
            .map(|entry| entry.map_err(GraphError::from).and_then(|(k, v)| decode_at(&k, &v)))
            .collect()
    }
}
