//! The storage boundary: a narrow, ordered key-value trait that the graph is written against.
//!
//! Everything the daemon persists goes through [`Store`].
//! Keys are namespaced byte strings (the graph owns the layout, see `graph::keys`), so a
//! "tree" is a key prefix and a [`WriteBatch`] spanning several namespaces is still one
//! atomic write. A batch is durable when [`Store::apply`] returns.
//! [`SledStore`] is the default, zero-setup backend; any other backend must pass the
//! conformance suite ([`conformance`], feature `testing`), which this crate's tests run
//! against sled.
//! The value [`codec`] and the `[store]` [`config`] section live here too.

pub mod codec;
pub mod config;
#[cfg(feature = "testing")]
pub mod conformance;
mod sled_store;

use std::fmt;
use std::ops::Bound;

pub use sled_store::SledStore;

/// A failure of the storage backend itself (I/O, corruption); never a "not found".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend reported an error.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// Another process holds the store open.
    #[error("the store at {} is in use by another process (a running `rapport serve`?)", path.display())]
    Locked {
        /// The store's directory.
        path: std::path::PathBuf,
    },
    /// The store's files could not be created or opened.
    #[error("cannot open the store at {}: {source}", path.display())]
    Open {
        /// The store's directory.
        path: std::path::PathBuf,
        /// Why (permissions, a missing parent, a full disk, …).
        source: std::io::Error,
    },
}

/// One key-value pair read from the store.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A boxed iterator over entries in key order (or reverse key order).
pub type EntryIter<'a> = Box<dyn Iterator<Item = Result<Entry, StoreError>> + Send + 'a>;

/// Ordered key-value storage with atomic, durable batches.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Iterates over keys within `range`, ascending; `reverse` iterates descending.
    fn range(&self, range: KeyRange, reverse: bool) -> EntryIter<'_>;

    /// Applies every write of `batch` atomically: after a crash either all or none are visible.
    /// The batch is durable when this returns.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Sets `key` to `new` (or removes it for `None`) only if its current value equals
    /// `expected` (`None` meaning absent). Returns whether the swap happened. Durable on return.
    fn compare_and_swap(&self, key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, StoreError>;

    /// Forces every write so far to stable storage.
    fn flush(&self) -> Result<(), StoreError>;

    /// Iterates over all keys starting with `prefix`, ascending.
    fn scan_prefix(&self, prefix: &[u8]) -> EntryIter<'_> {
        self.range(KeyRange::prefix(prefix), false)
    }
}

/// A half-open or closed interval of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Lower bound.
    pub start: Bound<Vec<u8>>,
    /// Upper bound.
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        let end = prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Self { start: Bound::Included(prefix.to_vec()), end }
    }

    /// Keys in `[start, end)`.
    pub fn between(start: Vec<u8>, end: Vec<u8>) -> Self {
        Self { start: Bound::Included(start), end: Bound::Excluded(end) }
    }
}

/// The smallest key greater than every key that starts with `prefix`, if one exists.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Writes applied together by [`Store::apply`]; later writes to the same key win.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// Queues `key = value`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((key, Some(value)));
    }

    /// Queues the removal of `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.push((key, None));
    }

    /// Number of queued writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The queued writes, in order.
    pub fn into_writes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.writes
    }
}
