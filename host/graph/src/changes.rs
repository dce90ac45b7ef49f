//! The change feed: every batch that changes records appends, in its own commit, one entry
//! per change under an increasing sequence number (`q` namespace), so later stages (signals,
//! rules, the webhook outbox) can follow what changed without scanning the graph, and a
//! consumer that stores its position with what it derives never skips or doubles a change.
//!
//! A consumer registers by name and follows the feed: read [`Graph::changes_since`] its
//! position, derive, then [`Graph::advance_consumer`] with its outputs, which writes them
//! and the new position in one commit. A crash between the two loses the outputs and the
//! move together, so the consumer reads the same changes again. Pruning keeps every entry
//! some registered consumer has not passed.

use super::model::{Change, Timestamp};
use super::txn::Txn;
use super::{Graph, GraphError, decode_at, keys};
use rapport_store::KeyRange;
use rapport_store::codec::encode;

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

    /// Deletes the changes written before `cutoff` that every registered consumer has
    /// passed, oldest first, but never the newest (the next number continues from it, even
    /// after a restart); returns how many.
    pub fn prune_changes(&self, cutoff: Timestamp) -> Result<usize, GraphError> {
        let Some(last) = self.last_change()? else { return Ok(0) };
        let mut pruned = 0;
        loop {
            // Read per slice: a consumer may move on meanwhile, never back.
            let passed = self.consumers()?.into_iter().map(|(_, position)| position).min().unwrap_or(u64::MAX);
            // In slices, so a long-idle daemon's first prune is not one huge batch.
            let stale: Vec<u64> = self
                .changes_since(0, PRUNE_SLICE)?
                .into_iter()
                .take_while(|change| change.written_at < cutoff && change.seq < last && change.seq <= passed)
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

    /// Registers the consumer `name`, if it is not, at the newest change: it follows what
    /// changes from now on (what came before is the graph itself, which it reads to start).
    /// Returns its position.
    pub fn register_consumer(&self, name: &str) -> Result<u64, GraphError> {
        self.write(|txn| {
            let key = keys::consumer(name);
            if let Some(bytes) = txn.get(&key)? {
                return decode_at(&key, &bytes);
            }
            let position = self.last_change()?.unwrap_or(0);
            txn.put(key, encode(&position));
            Ok(position)
        })
    }

    /// Forgets the consumer `name`: pruning no longer waits for it.
    pub fn unregister_consumer(&self, name: &str) -> Result<(), GraphError> {
        self.write(|txn| {
            txn.delete(keys::consumer(name));
            Ok(())
        })
    }

    /// The registered consumers and their positions (the last change each has passed), by
    /// name.
    pub fn consumers(&self) -> Result<Vec<(String, u64)>, GraphError> {
        self.store
            .range(KeyRange::prefix(&[keys::ns::CONSUMER]), false)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((String::from_utf8_lossy(&key[1..]).into_owned(), decode_at(&key, &value)?))
            })
            .collect()
    }

    /// Moves the consumer `name` to change `through` and writes `outputs` (rows of the
    /// derived namespace under the stage's own keys; `None` removes one) in the same
    /// commit: what it derived from the changes up to there. It may not move back, nor
    /// past the newest change.
    pub fn advance_consumer(&self, name: &str, through: u64, outputs: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), GraphError> {
        self.write(|txn| {
            let key = keys::consumer(name);
            let Some(bytes) = txn.get(&key)? else { return Err(GraphError::UnknownConsumer(name.to_owned())) };
            let at: u64 = decode_at(&key, &bytes)?;
            let newest = self.last_change()?.unwrap_or(0);
            if through < at || through > newest {
                return Err(GraphError::ConsumerMove { consumer: name.to_owned(), at, to: through, newest });
            }
            txn.put(key, encode(&through));
            for (row, value) in outputs {
                match value {
                    Some(value) => txn.put(keys::derived(&row), value),
                    None => txn.delete(keys::derived(&row)),
                }
            }
            Ok(())
        })
    }
}
