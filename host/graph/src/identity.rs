//! Identity clusters: merging, undoing merges, never-merge pins, and the review list of
//! likely duplicates that share no identifying key.
//!
//! A merge adds an alias from the joining cluster's root to the other root and logs a
//! `MergeRecord`; undoing it removes the alias and pins the two apart, so the automatic
//! resolution that merged them cannot merge them again.

use tracing::{debug, info};

use super::keys::{self, ns};
use super::model::{AliasLink, Body, ChangeOp, DuplicateCandidate, MergeId, MergeRecord, Node, NodeId, RecordKind, Timestamp};
use super::names::{PersonName, given_names_alike};
use super::txn::{PendingChange, Touched, Txn};
use super::{Graph, GraphError, decode_at};
use rapport_store::KeyRange;
use rapport_store::codec::encode;

/// Why a manual identity change was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The graph failed or an id is unknown.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// No merge has this id.
    #[error("no merge with id {0}")]
    UnknownMerge(String),
    /// The merge was already undone.
    #[error("merge {0} was already undone")]
    AlreadyUndone(String),
    /// The two records are not two organizations or two people.
    #[error("{0} and {1} are not two organizations or two people")]
    KindMismatch(NodeId, NodeId),
    /// The two records are already one cluster.
    #[error("{0} and {1} are already merged; undo that merge first")]
    AlreadyMerged(NodeId, NodeId),
    /// A pin keeps them apart.
    #[error("{0} and {1} are pinned apart (never merge)")]
    Pinned(NodeId, NodeId),
}

/// Every member of the cluster rooted at `root`, the root first.
pub(super) fn cluster_members(txn: &Txn<'_>, root: NodeId) -> Result<Vec<NodeId>, GraphError> {
    let mut members = vec![root];
    let mut next = 0;
    while next < members.len() {
        for (key, _) in txn.scan_prefix(&keys::owned_prefix(ns::CHILD, members[next]))? {
            if let Some((_, child)) = keys::split_member(&key) {
                members.push(child);
            }
        }
        next += 1;
    }
    Ok(members)
}

pub(super) fn pinned_apart(txn: &Txn<'_>, a: NodeId, b: NodeId) -> Result<bool, GraphError> {
    let left = cluster_members(txn, a)?;
    let right = cluster_members(txn, b)?;
    for x in &left {
        for y in &right {
            if txn.exists(&keys::pin(*x, *y))? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Joins `newcomer`'s cluster to `existing`'s unless they are one already or pinned apart.
pub(super) fn merge_clusters(
    txn: &mut Txn<'_>,
    existing: NodeId,
    newcomer: NodeId,
    reason: String,
    now: Timestamp,
) -> Result<Option<MergeRecord>, GraphError> {
    let winner = txn.root(existing)?;
    let loser = txn.root(newcomer)?;
    if winner == loser || pinned_apart(txn, winner, loser)? {
        return Ok(None);
    }
    let merge_id = MergeId::generate();
    txn.put(keys::alias(loser), encode(&AliasLink { parent: winner, merge_id }));
    txn.put(keys::child(winner, loser), Vec::new());
    let record = MergeRecord { id: merge_id, kind: winner.kind, winner, loser, reason, merged_at: now, undone_at: None };
    touch_people(txn, &record);
    txn.changed(PendingChange { node: loser, op: ChangeOp::Merge, at: now, related: vec![winner] });
    debug!(%winner, %loser, reason = %record.reason, "identity merge");
    txn.put(keys::merge(merge_id), encode(&record));
    Ok(Some(record))
}

/// A merge or unmerge of people changes who both sides' participants speak for.
fn touch_people(txn: &mut Txn<'_>, record: &MergeRecord) {
    if record.kind == RecordKind::Person {
        txn.touch(Touched::Person(record.winner));
        txn.touch(Touched::Person(record.loser));
    }
}

/// A normalized full name (lowercase words joined by single spaces); `None` when empty.
pub(super) fn normalized_name(name: &str) -> Option<String> {
    let words: Vec<String> = name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Why a pair is on the review list, as written: two organizations of one name, two
/// people whose names are alike (scored when read, see `suggestions`); any other reason is
/// a shared identifying key a source was not trusted to join on.
pub(super) const SAME_ORGANIZATION_NAME: &str = "same organization name";
pub(super) const SIMILAR_NAMES: &str = "similar names";

/// Pairs one written person adds at most: a name shared by more records than this says
/// nothing on its own, and the list must stay linear in the records (which of so many
/// namesakes pair up then depends on the order they came in).
const MAX_NAMESAKES: usize = 50;

/// Puts `node` on the review list beside the records whose names are alike and that are
/// not in its cluster: organizations of the same name, people of the same surname with
/// given names that may be one person's. Only names decide here, so the list of candidates
/// does not depend on the order records arrive in; whether a pair is worth a person's
/// time is decided when the list is read, from the graph as it stands.
pub(super) fn flag_duplicates(txn: &mut Txn<'_>, node: &Node, now: Timestamp) -> Result<(), GraphError> {
    if node.deleted_at.is_some() {
        return Ok(());
    }
    let root = txn.root(node.id)?;
    let mut alike = Vec::new();
    match &node.body {
        Body::Organization(o) => {
            let Some(full) = normalized_name(&o.name) else { return Ok(()) };
            for (key, _) in txn.scan_prefix(&keys::full_name_prefix(node.id.kind, &full))? {
                alike.extend(keys::trailing_id(&key).map(|other| (other, SAME_ORGANIZATION_NAME)));
            }
        }
        Body::Person(p) => {
            let Some(name) = PersonName::split(&p.name) else { return Ok(()) };
            let prefix = keys::surname_prefix(&name.surname);
            for (key, _) in txn.scan_prefix(&prefix)? {
                let Some((given, other)) = keys::split_surname(&key, &prefix) else { continue };
                if given_names_alike(&name.given, given).is_some() {
                    alike.push((other, SIMILAR_NAMES));
                    if alike.len() == MAX_NAMESAKES {
                        break;
                    }
                }
            }
        }
        _ => return Ok(()),
    }
    for (other, reason) in alike {
        if other == node.id || txn.root(other)? == root || pinned_apart(txn, root, txn.root(other)?)? {
            continue;
        }
        flag_pair(txn, other, node.id, reason.to_owned(), now)?;
    }
    Ok(())
}

/// Puts a pair on the review list, for a person to merge or pin apart.
pub(super) fn flag_pair(txn: &mut Txn<'_>, a: NodeId, b: NodeId, reason: String, now: Timestamp) -> Result<(), GraphError> {
    txn.put(keys::review(a, b), encode(&DuplicateCandidate { a, b, reason, found_at: now }));
    Ok(())
}

/// Checks that `a` and `b` are existing organizations (or people) in two clusters.
pub(super) fn check_separate_pair(txn: &mut Txn<'_>, a: NodeId, b: NodeId) -> Result<(), IdentityError> {
    if a.kind != b.kind || !matches!(a.kind, RecordKind::Organization | RecordKind::Person) {
        return Err(IdentityError::KindMismatch(a, b));
    }
    for id in [a, b] {
        if txn.node(id)?.is_none() {
            return Err(GraphError::NotFound(id).into());
        }
    }
    if txn.root(a)? == txn.root(b)? {
        return Err(IdentityError::AlreadyMerged(a, b));
    }
    Ok(())
}

impl Graph {
    /// Runs `work` as one atomic write batch under the writer lock.
    pub(super) fn write<T, E: From<GraphError>>(&self, work: impl FnOnce(&mut Txn<'_>) -> Result<T, E>) -> Result<T, E> {
        // A poisoned lock only means another batch panicked; its writes were never committed.
        let mut writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut txn = Txn::new(&*self.store);
        let value = work(&mut txn)?;
        super::attribution::refile(&mut txn, &self.rules)?;
        let changes = self.write_changes(&mut txn, &mut writer, Timestamp::now())?;
        self.store.apply(txn.into_batch()).map_err(GraphError::from)?;
        Self::changes_committed(&mut writer, changes);
        Ok(value)
    }

    /// Merge records, newest first, before the merge `before` (for paging).
    pub fn merges(&self, before: Option<MergeId>, limit: usize) -> Result<Vec<MergeRecord>, GraphError> {
        let end = match before {
            Some(id) => keys::merge(id),
            None => vec![ns::MERGE + 1],
        };
        let mut out = Vec::new();
        for entry in self.store.range(KeyRange::between(vec![ns::MERGE], end), true).take(limit) {
            let (key, value) = entry?;
            out.push(decode_at(&key, &value)?);
        }
        Ok(out)
    }

    /// Undoes a merge: the joined cluster stands alone again and is pinned apart from the other.
    pub fn unmerge(&self, merge_id: MergeId, now: Timestamp) -> Result<MergeRecord, IdentityError> {
        self.write(|txn| {
            let key = keys::merge(merge_id);
            let Some(bytes) = txn.get(&key)? else { return Err(IdentityError::UnknownMerge(merge_id.to_string())) };
            let mut record: MergeRecord = decode_at(&key, &bytes)?;
            if record.undone_at.is_some() {
                return Err(IdentityError::AlreadyUndone(merge_id.to_string()));
            }
            txn.delete(keys::alias(record.loser));
            txn.delete(keys::child(record.winner, record.loser));
            txn.put(keys::pin(record.winner, record.loser), Vec::new());
            txn.put(keys::pin(record.loser, record.winner), Vec::new());
            record.undone_at = Some(now);
            touch_people(txn, &record);
            txn.changed(PendingChange { node: record.loser, op: ChangeOp::Unmerge, at: now, related: vec![record.winner] });
            txn.put(key, encode(&record));
            info!(merge = %merge_id, winner = %record.winner, loser = %record.loser, "merge undone");
            Ok(record)
        })
    }

    /// Merges two records' clusters by hand (e.g. from the review list).
    pub fn merge_manually(&self, a: NodeId, b: NodeId, reason: String, now: Timestamp) -> Result<MergeRecord, IdentityError> {
        self.write(|txn| {
            check_separate_pair(txn, a, b)?;
            let record = merge_clusters(txn, a, b, reason, now)?.ok_or(IdentityError::Pinned(a, b))?;
            txn.delete(keys::review(a, b));
            Ok(record)
        })
    }

    /// Pins two records apart: automatic resolution will never merge their clusters.
    pub fn pin_apart(&self, a: NodeId, b: NodeId) -> Result<(), IdentityError> {
        self.write(|txn| {
            check_separate_pair(txn, a, b)?;
            txn.put(keys::pin(a, b), Vec::new());
            txn.put(keys::pin(b, a), Vec::new());
            txn.delete(keys::review(a, b));
            Ok(())
        })
    }
}
