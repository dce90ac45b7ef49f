//! Keeping the aggregates current: the maintainer follows the change feed and, for each
//! record a change touches, takes back what it had contributed and adds what it
//! contributes now, committing the rows and its feed position together. Re-reading a
//! change is harmless (a record's contribution is replaced, not added), so a crash before
//! the commit only means reading it again. A rebuild computes the same rows from the graph
//! alone.

use std::collections::{BTreeMap, BTreeSet};

use rapport_graph::model::{ChangeOp, NodeId, RecordKind};
use rapport_graph::{Graph, GraphError};
use rapport_store::codec::{decode, encode};

use crate::contribution::{Contribution, Roots, Tally};
use crate::keys;
use crate::{CONSUMER, Signals, SignalsError};

/// Changes read per commit.
const CHUNK: usize = 2_000;
/// Rows written per commit of a rebuild.
const REBUILD_ROWS: usize = 20_000;

/// Rows to write in one commit, each once (`None` deletes).
type Rows = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// How far a catch-up went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Feed entries read.
    pub changes: usize,
    /// Records whose contribution changed.
    pub records: usize,
    /// The feed position reached.
    pub position: u64,
}

/// What a set of records changes, summed per row before any row is read.
#[derive(Default)]
struct Deltas {
    tallies: BTreeMap<Vec<u8>, Tally>,
    /// Deal rows as they are to be (`None`: gone).
    deals: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    contributions: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Deltas {
    /// Adds (`take_back` false) or takes back what `record` contributes.
    fn count(&mut self, record: NodeId, contribution: &Contribution, take_back: bool) {
        match contribution {
            Contribution::Interaction { day, organizations, pairs, tally } => {
                let rows = organizations.iter().map(|org| keys::org_day(*org, *day));
                let rows = rows.chain(pairs.iter().map(|(org, employee)| keys::pair_day(*org, *employee, *day)));
                for row in rows.collect::<Vec<_>>() {
                    let sum = self.tallies.entry(row).or_default();
                    if take_back { *sum -= *tally } else { *sum += *tally }
                }
            }
            // A record is taken back before it is added again, so the newer value stays.
            Contribution::Deal { organization, facts } => {
                self.deals.insert(keys::deal(*organization, record), (!take_back).then(|| encode(facts)));
            }
        }
    }

    /// The rows: each tally read once and moved by its delta.
    fn into_rows(self, graph: &Graph) -> Result<Rows, SignalsError> {
        let mut rows = Rows::new();
        for (key, delta) in self.tallies {
            if delta.is_zero() {
                continue;
            }
            let mut sum: Tally = match graph.derived(&key)? {
                Some(bytes) => decode(&bytes).map_err(|source| Signals::unreadable(&key, source))?,
                None => Tally::default(),
            };
            sum += delta;
            rows.push((key, (!sum.is_zero()).then(|| encode(&sum))));
        }
        rows.extend(self.deals);
        rows.extend(self.contributions);
        Ok(rows)
    }
}

/// The records whose contribution a change may have changed.
fn touched_by(graph: &Graph, change: &rapport_graph::model::Change, out: &mut BTreeSet<NodeId>) -> Result<(), GraphError> {
    match (change.kind, change.op) {
        (RecordKind::Interaction | RecordKind::Deal, _) => {
            out.insert(change.node);
        }
        // A merge or unmerge changes which records of an interaction are one cluster.
        (RecordKind::Organization | RecordKind::Person, ChangeOp::Merge | ChangeOp::Unmerge) => {
            for cluster in change.clusters.iter().chain([&change.node]) {
                out.extend(graph.interactions_of(*cluster)?);
            }
        }
        _ => {}
    }
    Ok(())
}

fn stored_contribution(graph: &Graph, record: NodeId) -> Result<Option<Contribution>, SignalsError> {
    let key = keys::contribution(record);
    graph.derived(&key)?.map(|bytes| decode(&bytes).map_err(|source| Signals::unreadable(&key, source))).transpose()
}

fn current_contribution(graph: &Graph, roots: &mut Roots, record: NodeId) -> Result<Option<Contribution>, GraphError> {
    match graph.record(record)? {
        Some(node) => Contribution::of(graph, roots, &node),
        None => Ok(None),
    }
}

/// Reads up to one chunk of the feed after the consumer's position and commits what it
/// changes with the new position; `None` when there was nothing to read.
pub(crate) fn catch_up_chunk(graph: &Graph) -> Result<Option<CatchUp>, SignalsError> {
    // A read, not `register_consumer` (a write under the graph's lock): `Signals::open`
    // registered the maintainer.
    let (position, _) = crate::position(graph)?;
    let changes = graph.changes_since(position, CHUNK)?;
    let Some(last) = changes.last().map(|c| c.seq) else { return Ok(None) };
    let mut records = BTreeSet::new();
    for change in &changes {
        touched_by(graph, change, &mut records)?;
    }
    let (mut deltas, mut roots) = (Deltas::default(), Roots::default());
    let mut moved = 0;
    for record in records {
        let (before, now) = (stored_contribution(graph, record)?, current_contribution(graph, &mut roots, record)?);
        if before == now {
            continue;
        }
        moved += 1;
        if let Some(before) = &before {
            deltas.count(record, before, true);
        }
        if let Some(now) = &now {
            deltas.count(record, now, false);
        }
        deltas.contributions.insert(keys::contribution(record), now.as_ref().map(encode));
    }
    graph.advance_consumer(CONSUMER, last, deltas.into_rows(graph)?)?;
    Ok(Some(CatchUp { changes: changes.len(), records: moved, position: last }))
}

/// Replaces every row of the stage with what the graph gives now, and moves the consumer to
/// the change read before the graph was: the changes after it are read again, which is
/// harmless. A marker row stays while it works, so an interrupted rebuild is started again.
pub(crate) fn rebuild(graph: &Graph) -> Result<u64, SignalsError> {
    let at = graph.register_consumer(CONSUMER)?;
    let through = graph.last_change()?.unwrap_or(0).max(at);
    let commit = |rows: Rows| graph.advance_consumer(CONSUMER, at, rows);
    commit(vec![(keys::rebuilding(), Some(Vec::new()))])?;
    // Clear in slices (the marker itself stays).
    loop {
        let stale: Rows = graph
            .derived_prefix(&keys::all(), false)
            .filter(|row| row.as_ref().map_or(true, |(key, _)| *key != keys::rebuilding()))
            .take(REBUILD_ROWS)
            .map(|row| row.map(|(key, _)| (key, None)))
            .collect::<Result<_, _>>()?;
        if stale.is_empty() {
            break;
        }
        commit(stale)?;
    }
    let (mut deltas, mut roots) = (Deltas::default(), Roots::default());
    let mut pending = Rows::new();
    for kind in [RecordKind::Interaction, RecordKind::Deal] {
        for node in graph.records(kind) {
            let node = node?;
            if let Some(contribution) = Contribution::of(graph, &mut roots, &node)? {
                deltas.count(node.id, &contribution, false);
                pending.push((keys::contribution(node.id), Some(encode(&contribution))));
            }
            if pending.len() >= REBUILD_ROWS {
                commit(std::mem::take(&mut pending))?;
            }
        }
    }
    commit(pending)?;
    let mut rows = deltas.into_rows(graph)?;
    while rows.len() > REBUILD_ROWS {
        let rest = rows.split_off(REBUILD_ROWS);
        commit(std::mem::replace(&mut rows, rest))?;
    }
    rows.push((keys::rebuilding(), None));
    graph.advance_consumer(CONSUMER, through, rows)?;
    Ok(through)
}

/// Whether a rebuild was interrupted (its marker is still there).
pub(crate) fn rebuild_interrupted(graph: &Graph) -> Result<bool, GraphError> {
    Ok(graph.derived(&keys::rebuilding())?.is_some())
}
