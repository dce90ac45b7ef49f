//! What the stages downstream of the graph (signals, rules, the outbox) read of it and
//! where they keep what they derive: records by id and kind as stored, identity clusters,
//! the interactions a cluster takes part in, and the derived namespace (`v`), which each
//! stage writes only together with its change-feed position
//! ([`Graph::advance_consumer`]), so what it derived and how far it read never disagree.

use super::identity::cluster_members;
use super::keys::{self, ns};
use super::model::{Node, NodeId, RecordKind};
use super::{Graph, GraphError, decode_node};
use rapport_store::KeyRange;

/// A row of the derived namespace: the stage's own key, and its value.
pub type DerivedRow = (Vec<u8>, Vec<u8>);

impl Graph {
    /// The node `id` as stored (not folded with its cluster), deleted or not.
    pub fn record(&self, id: NodeId) -> Result<Option<Node>, GraphError> {
        let key = keys::node(id);
        self.store.get(&key)?.map(|bytes| decode_node(&key, &bytes)).transpose()
    }

    /// Every node of `kind` as stored, in id order.
    pub fn records(&self, kind: RecordKind) -> impl Iterator<Item = Result<Node, GraphError>> + '_ {
        self.store.scan_prefix(&keys::nodes_of_kind(kind)).map(|entry| {
            let (key, bytes) = entry?;
            decode_node(&key, &bytes)
        })
    }

    /// The root of `id`'s identity cluster (itself unless merged).
    pub fn root(&self, id: NodeId) -> Result<NodeId, GraphError> {
        self.reader().root(id)
    }

    /// The records of the cluster rooted at `root`, the root first.
    pub fn members(&self, root: NodeId) -> Result<Vec<NodeId>, GraphError> {
        cluster_members(&self.reader(), root)
    }

    /// Every interaction some record of `id`'s cluster is on the timeline of (an
    /// organization's or a person's), each once, in id order.
    pub fn interactions_of(&self, id: NodeId) -> Result<Vec<NodeId>, GraphError> {
        let r = self.reader();
        let timeline = match id.kind {
            RecordKind::Organization => ns::ORG_TIMELINE,
            RecordKind::Person => ns::PERSON_TIMELINE,
            _ => return Ok(Vec::new()),
        };
        let mut interactions = Vec::new();
        for member in cluster_members(&r, r.root(id)?)? {
            for (key, _) in r.scan_prefix(&keys::owned_prefix(timeline, member))? {
                interactions.extend(keys::split_timed(&key).map(|(_, interaction)| interaction));
            }
        }
        interactions.sort_unstable();
        interactions.dedup();
        Ok(interactions)
    }

    /// The derived row `key`.
    pub fn derived(&self, key: &[u8]) -> Result<Option<Vec<u8>>, GraphError> {
        Ok(self.store.get(&keys::derived(key))?)
    }

    /// The derived rows whose keys start with `prefix`, in key order or reversed.
    pub fn derived_prefix(&self, prefix: &[u8], reverse: bool) -> impl Iterator<Item = Result<DerivedRow, GraphError>> + '_ {
        self.store.range(KeyRange::prefix(&keys::derived(prefix)), reverse).map(|entry| {
            let (mut key, value) = entry?;
            key.remove(0);
            Ok((key, value))
        })
    }
}
