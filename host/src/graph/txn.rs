//! A write transaction under construction: reads see the batch's own writes, and each
//! operation can be rolled back alone (an invalid operation leaves no trace). Queries use
//! one without writes as a reader with per-query caches.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::model::{AliasLink, Node, NodeId};
use super::{GraphError, decode_at, keys};
use crate::codec::encode;
use crate::store::{Entry, KeyRange, Store, WriteBatch};

type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A key and the pending state it had before a write (`None`: it had none).
type UndoEntry = (Vec<u8>, Option<Option<Vec<u8>>>);

/// Pending writes over a store.
pub(super) struct Txn<'s> {
    store: &'s dyn Store,
    pending: Pending,
    /// Previous pending state of each key written since the batch began, newest last.
    undo: Vec<UndoEntry>,
    /// Decoded nodes read or written in this batch.
    nodes: HashMap<NodeId, Node>,
    /// Cluster roots looked up in this batch; cleared whenever an alias changes.
    roots: RefCell<HashMap<NodeId, NodeId>>,
}

/// A point to roll back to.
pub(super) struct Savepoint(usize);

impl<'s> Txn<'s> {
    pub(super) fn new(store: &'s dyn Store) -> Self {
        Self { store, pending: Pending::new(), undo: Vec::new(), nodes: HashMap::new(), roots: RefCell::default() }
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, GraphError> {
        match self.pending.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.store.get(key)?),
        }
    }

    pub(super) fn exists(&self, key: &[u8]) -> Result<bool, GraphError> {
        Ok(self.get(key)?.is_some())
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if key.first() == Some(&keys::ns::ALIAS) {
            self.roots.get_mut().clear();
        }
        let previous = self.pending.insert(key.clone(), value);
        self.undo.push((key, previous));
    }

    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.write(key, Some(value));
    }

    pub(super) fn delete(&mut self, key: Vec<u8>) {
        self.write(key, None);
    }

    /// Keys (with values) starting with `prefix`, as the batch would leave them.
    pub(super) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, GraphError> {
        if self.pending.is_empty() {
            return self.store.scan_prefix(prefix).map(|entry| entry.map_err(GraphError::from)).collect();
        }
        let mut merged = BTreeMap::new();
        for entry in self.store.range(KeyRange::prefix(prefix), false) {
            let (key, value) = entry?;
            merged.insert(key, Some(value));
        }
        let range = KeyRange::prefix(prefix);
        for (key, value) in self.pending.range((range.start, range.end)) {
            merged.insert(key.clone(), value.clone());
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    pub(super) fn node(&mut self, id: NodeId) -> Result<Option<Node>, GraphError> {
        if let Some(node) = self.nodes.get(&id) {
            return Ok(Some(node.clone()));
        }
        let key = keys::node(id);
        let Some(bytes) = self.get(&key)? else { return Ok(None) };
        let node: Node = decode_at(&key, &bytes)?;
        self.nodes.insert(id, node.clone());
        Ok(Some(node))
    }

    pub(super) fn put_node(&mut self, node: Node) {
        self.put(keys::node(node.id), encode(&node));
        self.nodes.insert(node.id, node);
    }

    /// The root of `id`'s identity cluster (itself unless merged).
    pub(super) fn root(&self, id: NodeId) -> Result<NodeId, GraphError> {
        if let Some(root) = self.roots.borrow().get(&id) {
            return Ok(*root);
        }
        let mut current = id;
        // Merge chains are short; the bound only guards against a corrupt cycle.
        for _ in 0..64 {
            let key = keys::alias(current);
            match self.get(&key)? {
                Some(bytes) => current = decode_at::<AliasLink>(&key, &bytes)?.parent,
                None => break,
            }
        }
        self.roots.borrow_mut().insert(id, current);
        Ok(current)
    }

    pub(super) fn savepoint(&self) -> Savepoint {
        Savepoint(self.undo.len())
    }

    pub(super) fn rollback(&mut self, to: Savepoint) {
        while self.undo.len() > to.0 {
            let Some((key, previous)) = self.undo.pop() else { break };
            match previous {
                Some(value) => self.pending.insert(key, value),
                None => self.pending.remove(&key),
            };
        }
        // Cheaper than tracking which decoded nodes and roots the rolled-back writes touched.
        self.nodes.clear();
        self.roots.get_mut().clear();
    }

    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn into_batch(self) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for (key, value) in self.pending {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        batch
    }
}
