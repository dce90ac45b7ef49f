//! What one record adds to the aggregates: an interaction adds a `Tally` to its day for each
//! organization it counts for and each employee × organization pair; a deal adds its facts
//! under its organization. The maintainer stores each record's contribution, so a change
//! takes back exactly what the record had added and adds what it adds now.

use std::collections::{BTreeSet, HashMap};
use std::ops::{AddAssign, SubAssign};

use rapport_graph::model::{Body, DealStatus, Direction, InteractionKind, Node, NodeId, Timestamp};
use rapport_graph::{Graph, GraphError};
use serde::{Deserialize, Serialize};

use crate::keys::Day;

/// Counts of one day (or a sum of days). Signed, so deltas are tallies too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Interactions that count as engagement.
    pub touches: i64,
    /// Of those, started by them.
    pub inbound: i64,
    /// Started by us.
    pub outbound: i64,
    /// Meetings.
    pub meetings: i64,
    /// Calls.
    pub calls: i64,
    /// Emails and chat messages.
    pub written: i64,
    /// Support tickets.
    pub tickets: i64,
    /// Minutes in meetings and calls.
    pub minutes: i64,
}

impl Tally {
    /// Whether every count is zero (the row can go).
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Both sides spoke: a meeting or a call, or an inbound and an outbound.
    pub fn two_way(&self) -> bool {
        self.meetings + self.calls > 0 || (self.inbound > 0 && self.outbound > 0)
    }

    /// The kinds of channel used (written, meeting, call, ticket).
    pub fn channels(&self) -> usize {
        [self.written, self.meetings, self.calls, self.tickets].iter().filter(|n| **n > 0).count()
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.touches += o.touches;
        self.inbound += o.inbound;
        self.outbound += o.outbound;
        self.meetings += o.meetings;
        self.calls += o.calls;
        self.written += o.written;
        self.tickets += o.tickets;
        self.minutes += o.minutes;
    }
}

impl SubAssign for Tally {
    fn sub_assign(&mut self, o: Self) {
        self.touches -= o.touches;
        self.inbound -= o.inbound;
        self.outbound -= o.outbound;
        self.meetings -= o.meetings;
        self.calls -= o.calls;
        self.written -= o.written;
        self.tickets -= o.tickets;
        self.minutes -= o.minutes;
    }
}

/// What the signals need of a deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealFacts {
    /// Open, won, lost.
    pub status: DealStatus,
    /// Amount in its currency's major unit.
    pub amount: Option<f64>,
    /// The current stage.
    pub stage: String,
    /// When it entered the current stage (its creation if the source gave no history).
    pub stage_entered_at: Timestamp,
    /// When it closed: the source's time, else when it entered its last stage.
    pub closed_at: Option<Timestamp>,
}

/// What a record contributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Contribution {
    /// An interaction: its tally on its day, for these organization records and these
    /// (organization record, employee record) pairs — one record per cluster.
    Interaction { day: Day, organizations: Vec<NodeId>, pairs: Vec<(NodeId, NodeId)>, tally: Tally },
    /// A deal, under its organization record.
    Deal { organization: NodeId, facts: DealFacts },
}

impl Contribution {
    /// What `node` contributes as the graph stands; `None` for a record that adds nothing
    /// (deleted, not engagement, a note, another kind).
    pub fn of(graph: &Graph, roots: &mut Roots, node: &Node) -> Result<Option<Self>, GraphError> {
        if node.deleted_at.is_some() || node.placeholder {
            return Ok(None);
        }
        match &node.body {
            Body::Interaction(i) if i.engages && i.kind != InteractionKind::Note && !i.organizations.is_empty() => {
                let organizations = roots.one_per_cluster(graph, &i.organizations)?;
                let employees = roots.one_per_cluster(graph, &i.employees)?;
                let pairs = organizations.iter().flat_map(|o| employees.iter().map(move |e| (*o, *e))).collect();
                let minutes = i64::from(i.duration_secs.unwrap_or(0)) / 60;
                let mut tally = Tally { touches: 1, ..Tally::default() };
                match i.direction {
                    Direction::Inbound => tally.inbound = 1,
                    Direction::Outbound => tally.outbound = 1,
                    Direction::Internal => {}
                }
                match i.kind {
                    InteractionKind::Meeting => (tally.meetings, tally.minutes) = (1, minutes),
                    InteractionKind::Call => (tally.calls, tally.minutes) = (1, minutes),
                    InteractionKind::Email | InteractionKind::Message => tally.written = 1,
                    InteractionKind::Ticket => tally.tickets = 1,
                    InteractionKind::Note => {}
                }
                Ok(Some(Self::Interaction { day: Day::of(i.occurred_at), organizations, pairs, tally }))
            }
            Body::Deal(d) => {
                let stage_entered_at = d.stage_history.last().map_or(node.created_at, |s| s.entered_at);
                let closed_at = match d.status {
                    DealStatus::Open => None,
                    _ => Some(d.closed_at.unwrap_or(stage_entered_at)),
                };
                let facts = DealFacts { status: d.status, amount: d.amount, stage: d.stage.clone(), stage_entered_at, closed_at };
                Ok(Some(Self::Deal { organization: d.organization, facts }))
            }
            _ => Ok(None),
        }
    }
}

/// Cluster roots, each looked up once in a pass over many records (identity does not
/// change under a pass: a merge made meanwhile is in the feed, and read after it).
#[derive(Default)]
pub struct Roots(HashMap<NodeId, NodeId>);

impl Roots {
    fn of(&mut self, graph: &Graph, record: NodeId) -> Result<NodeId, GraphError> {
        if let Some(root) = self.0.get(&record) {
            return Ok(*root);
        }
        let root = graph.root(record)?;
        self.0.insert(record, root);
        Ok(root)
    }

    /// `records` with at most one record of each identity cluster (the first in id
    /// order): an interaction filed under two records of one organization counts for it
    /// once.
    fn one_per_cluster(&mut self, graph: &Graph, records: &[NodeId]) -> Result<Vec<NodeId>, GraphError> {
        let mut sorted = records.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut roots = BTreeSet::new();
        let mut kept = Vec::with_capacity(sorted.len());
        for record in sorted {
            if roots.insert(self.of(graph, record)?) {
                kept.push(record);
            }
        }
        Ok(kept)
    }
}
