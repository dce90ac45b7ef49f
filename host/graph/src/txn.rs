//! A write transaction under construction: reads see the batch's own writes, and each
//! operation can be rolled back alone (an invalid operation leaves no trace). Queries use
//! one without writes as a reader with per-query caches.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::model::{AliasLink, Change, ChangeOp, Node, NodeId, Timestamp};
use super::{GraphError, decode_at, decode_node, keys};
use rapport_store::codec::{encode, encode_v2};
use rapport_store::{Entry, KeyRange, Store, WriteBatch};

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
    /// The records this batch changed, in order, for the change feed.
    changes: Vec<PendingChange>,
    /// What changed identity in this batch, for re-attribution before it commits.
    touched: Vec<Touched>,
}

/// A change of identity whose interactions must be attributed again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Touched {
    /// A person's cluster: its employments, addresses, internal flag or members changed.
    Person(NodeId),
    /// The organization holding this domain changed.
    Domain(String),
}

/// A record change of this batch, numbered when the batch commits.
pub(super) struct PendingChange {
    pub node: NodeId,
    pub op: ChangeOp,
    /// The record's own time.
    pub at: Timestamp,
    /// Records whose clusters the change touches too: an interaction's organizations and
    /// people, a deal's organization, a person's employers (before and after), the other
    /// record of a link, the cluster a merge joined.
    pub related: Vec<NodeId>,
}

/// A point to roll back to: the undo log's length, the changes and the touched identities
/// noted so far.
pub(super) struct Savepoint(usize, usize, usize);

impl<'s> Txn<'s> {
    pub(super) fn new(store: &'s dyn Store) -> Self {
        Self {
            store,
            pending: Pending::new(),
            undo: Vec::new(),
            nodes: HashMap::new(),
            roots: RefCell::default(),
            changes: Vec::new(),
            touched: Vec::new(),
        }
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
        let node = decode_node(&key, &bytes)?;
        self.nodes.insert(id, node.clone());
        Ok(Some(node))
    }

    pub(super) fn put_node(&mut self, node: Node) {
        self.put(keys::node(node.id), encode_v2(&node));
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
        Savepoint(self.undo.len(), self.changes.len(), self.touched.len())
    }

    /// Notes an identity change whose interactions need attributing again.
    pub(super) fn touch(&mut self, touched: Touched) {
        self.touched.push(touched);
    }

    /// The identity changes noted so far, each once; the list starts again empty.
    pub(super) fn take_touched(&mut self) -> std::collections::BTreeSet<Touched> {
        std::mem::take(&mut self.touched).into_iter().collect()
    }

    /// Notes a change for the feed; a rollback past it forgets it.
    pub(super) fn changed(&mut self, change: PendingChange) {
        self.changes.push(change);
    }

    /// Writes the batch's changes into the feed from sequence number `next` on, each with
    /// the clusters it touched as the batch leaves them; returns how many.
    pub(super) fn write_changes(&mut self, next: &mut u64, written_at: Timestamp) -> Result<usize, GraphError> {
        let changes = std::mem::take(&mut self.changes);
        for change in &changes {
            let mut clusters = vec![self.root(change.node)?];
            for related in &change.related {
                let root = self.root(*related)?;
                if !clusters.contains(&root) {
                    clusters.push(root);
                }
            }
            // After a merge both sides have one root; the feed still names the joined one.
            if change.op == ChangeOp::Merge && !clusters.contains(&change.node) {
                clusters.push(change.node);
            }
            let entry =
                Change { seq: *next, node: change.node, kind: change.node.kind, op: change.op, clusters, at: change.at, written_at };
            self.put(keys::change(*next), encode(&entry));
            *next += 1;
        }
        Ok(changes.len())
    }

    pub(super) fn rollback(&mut self, to: Savepoint) {
        self.changes.truncate(to.1);
        self.touched.truncate(to.2);
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
