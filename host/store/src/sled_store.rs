//! The sled backend: one sled tree holds every namespace, so a batch is one atomic
//! `apply_batch` (sled's cross-tree transactions cost far more).

use std::ops::Bound;
use std::path::Path;

use super::{Entry, EntryIter, KeyRange, Store, StoreError, WriteBatch};

/// A [`Store`] backed by an embedded sled database.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Durability comes from explicit flushes at batch boundaries, not a timer.
            .flush_every_ms(None)
            .open()
            .map_err(|err| match err {
                // sled reports a held lock as an I/O error of its own wording.
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => StoreError::Locked { path: dir.to_owned() },
                sled::Error::Io(source) => StoreError::Open { path: dir.to_owned(), source },
                other => backend(other),
            })?;
        let tree = db.open_tree("rapport").map_err(backend)?;
        Ok(Self { db, tree })
    }
}

fn backend(err: sled::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Entry, StoreError> {
    item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend)
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn range(&self, range: KeyRange, reverse: bool) -> EntryIter<'_> {
        let bounds: (Bound<Vec<u8>>, Bound<Vec<u8>>) = (range.start, range.end);
        let iter = self.tree.range(bounds);
        if reverse { Box::new(iter.rev().map(entry)) } else { Box::new(iter.map(entry)) }
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.into_writes() {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.tree.apply_batch(sled_batch).map_err(backend)?;
        self.flush()
    }

    fn compare_and_swap(&self, key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, StoreError> {
        let swapped = self.tree.compare_and_swap(key, expected, new).map_err(backend)?.is_ok();
        if swapped {
            self.flush()?;
        }
        Ok(swapped)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend).map(drop)
    }
}
