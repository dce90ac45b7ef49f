//! Reading the graph: folded cluster views, an organization's context, timelines, search.
//!
//! Readers never see a half-written batch (each batch is one atomic store write) and fold
//! identity clusters at read time, which is what keeps merges reversible.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::attribution::ClusterIdentity;
use super::earlier::TimelineEntryV1;
use super::identity::cluster_members;
use super::ingest::name_tokens;
use super::keys::{self, ns};
use super::model::{
    Body, DealStatus, Direction, InteractionKind, Lifecycle, Node, NodeId, Provenance, RecordKind, Role, StageEntry, TimelineEntry,
    Timestamp,
};
use super::txn::Txn;
use super::{Graph, GraphError, IdentityRules, decode_at, decode_node, decode_upgrading_at};
use rapport_ops as ops;
use rapport_store::KeyRange;

/// An organization as the graph knows it: every member record of its cluster folded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrganizationView {
    /// The cluster's id.
    pub id: NodeId,
    /// Name (from the most recently updated record that has one).
    pub name: String,
    /// Domains of every record.
    pub domains: Vec<String>,
    /// Roles of every record.
    pub roles: Vec<Role>,
    /// Lifecycle.
    pub lifecycle: Option<Lifecycle>,
    /// Account owner.
    pub owner: Option<NodeId>,
    /// Ids of the records merged into this one.
    pub merged: Vec<NodeId>,
    /// Where the data came from.
    pub provenance: Vec<Provenance>,
    /// Each record's own name, the best-ranked source's first (it is `name`); the others
    /// are the values that lost to it.
    pub names: Vec<SourcedName>,
}

/// A person as the graph knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PersonView {
    /// The cluster's id.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Every address.
    pub emails: Vec<String>,
    /// Job title.
    pub title: Option<String>,
    /// One of our employees.
    pub internal: bool,
    /// A role or automated mailbox (`noreply@…`, `it-helpdesk@…`): every address is one,
    /// so it never counts as anyone's person, employee or engagement.
    pub role: bool,
    /// Ids of the records merged into this one.
    pub merged: Vec<NodeId>,
    /// Where the data came from.
    pub provenance: Vec<Provenance>,
    /// Each record's own name, the best-ranked source's first (it is `name`); the others
    /// are the values that lost to it.
    pub names: Vec<SourcedName>,
}

/// A name as one source gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourcedName {
    /// The source.
    pub source: String,
    /// The name it gave.
    pub name: String,
}

/// A person at an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberOf {
    /// The person.
    pub person: PersonView,
    /// Start of the employment.
    pub since: Option<Timestamp>,
    /// End of the employment.
    pub until: Option<Timestamp>,
}

/// An open deal with how long it has been in its stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DealSummary {
    /// Deal id.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Amount.
    pub amount: Option<f64>,
    /// Currency.
    pub currency: Option<String>,
    /// Current stage.
    pub stage: String,
    /// Status.
    pub status: DealStatus,
    /// Days since the current stage was entered.
    pub days_in_stage: i64,
    /// Every stage entered.
    pub stage_history: Vec<StageEntry>,
}

/// One interaction on a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineItem {
    /// Interaction id.
    pub id: NodeId,
    /// When.
    pub occurred_at: Timestamp,
    /// Kind.
    pub kind: InteractionKind,
    /// Direction.
    pub direction: Direction,
    /// Subject line.
    pub subject: Option<String>,
    /// Our employees involved.
    pub employees: Vec<NodeId>,
    /// Everyone involved.
    pub participants: Vec<NodeId>,
}

/// A page of a timeline, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelinePage {
    /// The items.
    pub items: Vec<TimelineItem>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next: Option<String>,
}

/// An employee ranked by recent interactions with an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelationshipHolder {
    /// The employee.
    pub person: NodeId,
    /// Name.
    pub name: String,
    /// Interactions with the organization in the last 90 days.
    pub interactions_90d: usize,
}

/// How much an organization is in touch with us.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Engagement {
    /// Latest interaction.
    pub last_interaction_at: Option<Timestamp>,
    /// Whole days since then.
    pub days_since_last_interaction: Option<i64>,
    /// Interactions in the last 90 days.
    pub interactions_last_90d: usize,
    /// Interactions in the 90 days before those.
    pub interactions_previous_90d: usize,
}

/// An observation as shown with its subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObservationItem {
    /// Observation id.
    pub id: NodeId,
    /// What it is about.
    pub about: NodeId,
    /// Who wrote it.
    pub author: Option<NodeId>,
    /// Text.
    pub text: String,
    /// Tags.
    pub tags: Vec<String>,
    /// When observed.
    pub observed_at: Timestamp,
    /// Where it came from.
    pub provenance: Provenance,
}

/// Everything worth knowing before talking to an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrganizationContext {
    /// The organization.
    pub organization: OrganizationView,
    /// Its people (current and former).
    pub people: Vec<MemberOf>,
    /// Its open deals.
    pub open_deals: Vec<DealSummary>,
    /// Latest interactions, newest first.
    pub recent_interactions: Vec<TimelineItem>,
    /// Latest observations, newest first.
    pub observations: Vec<ObservationItem>,
    /// Who holds the relationship: employees by interactions in the last 90 days.
    pub relationship_holders: Vec<RelationshipHolder>,
    /// Engagement figures.
    pub engagement: Engagement,
}

/// Parameters of a context query.
#[derive(Debug, Clone, Copy)]
pub struct ContextQuery {
    /// The time the context is computed for.
    pub at: Timestamp,
    /// How many recent interactions and observations to include.
    pub recent: usize,
}

/// Node counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphStats {
    /// Live organizations (cluster roots).
    pub organizations: usize,
    /// Live people (cluster roots).
    pub people: usize,
    /// Live deals.
    pub deals: usize,
    /// Live interactions.
    pub interactions: usize,
    /// Live observations.
    pub observations: usize,
    /// Active merges.
    pub merges: usize,
}

impl Graph {
    pub(super) fn reader(&self) -> Txn<'_> {
        Txn::new(&*self.store)
    }

    /// The organization with this id (or the cluster it was merged into).
    pub fn organization(&self, id: NodeId) -> Result<OrganizationView, GraphError> {
        let mut r = self.reader();
        organization_view(&mut r, &self.rules, id)
    }

    /// The person with this id (or the cluster it was merged into).
    pub fn person(&self, id: NodeId) -> Result<PersonView, GraphError> {
        let mut r = self.reader();
        person_view(&mut r, &self.rules, id)
    }

    /// The context of an organization at `query.at`.
    pub fn organization_context(&self, id: NodeId, query: ContextQuery) -> Result<OrganizationContext, GraphError> {
        let mut r = self.reader();
        let organization = organization_view(&mut r, &self.rules, id)?;
        let members = cluster_members(&r, organization.id)?;

        let mut people = BTreeMap::new();
        let mut open_deals = Vec::new();
        for &member in &members {
            for (key, _) in r.scan_prefix(&keys::owned_prefix(ns::WORKS_AT, member))? {
                let Some((_, person)) = keys::split_member(&key) else { continue };
                if people.contains_key(&r.root(person)?) {
                    continue;
                }
                let view = person_view(&mut r, &self.rules, person)?;
                if view.role {
                    continue;
                }
                // The employment as the cluster folds it: an accepted job change's dates win.
                let mut job = None;
                for candidate in ClusterIdentity::of(&mut r, view.id)?.jobs {
                    if r.root(candidate.organization)? == organization.id {
                        job = Some(candidate);
                        break;
                    }
                }
                let (since, until) = job.map_or((None, None), |j| (j.since, j.until));
                people.insert(view.id, MemberOf { person: view, since, until });
            }
            for (key, _) in r.scan_prefix(&keys::owned_prefix(ns::DEAL, member))? {
                let Some((_, deal)) = keys::split_member(&key) else { continue };
                if let Some(Node { id, body: Body::Deal(d), deleted_at: None, .. }) = r.node(deal)?
                    && d.status == DealStatus::Open
                {
                    let entered = d.stage_history.last().map_or(query.at, |s| s.entered_at);
                    open_deals.push(DealSummary {
                        id,
                        name: d.name,
                        amount: d.amount,
                        currency: d.currency,
                        stage: d.stage,
                        status: d.status,
                        days_in_stage: entered.days_until(query.at),
                        stage_history: d.stage_history,
                    });
                }
            }
        }

        // One pass over the last 180 days gives engagement and the relationship holders.
        // An interaction filed under two records of the cluster counts once.
        let window_start = query.at.plus_days(-180);
        let recent_start = query.at.plus_days(-90);
        let mut last_90 = 0;
        let mut previous_90 = 0;
        let mut counted = HashSet::new();
        let mut holders: HashMap<NodeId, usize> = HashMap::new();
        let mut last_interaction_at = None;
        for &member in &members {
            let range = KeyRange::between(
                keys::timed_bound(ns::ORG_TIMELINE, member, window_start),
                keys::timed_bound(ns::ORG_TIMELINE, member, Timestamp(query.at.0 + 1)),
            );
            let mut window_last = None;
            for entry in self.store.range(range, false) {
                let (key, value) = entry?;
                let Some((at, item)) = keys::split_timed(&key) else { continue };
                let entry = timeline_entry(&key, &value)?;
                if !entry.engages {
                    continue;
                }
                window_last = Some(at);
                if !counted.insert(item) {
                    continue;
                }
                if at >= recent_start {
                    last_90 += 1;
                    for employee in entry.employees {
                        *holders.entry(r.root(employee)?).or_default() += 1;
                    }
                } else {
                    previous_90 += 1;
                }
            }
            // The window is in time order: its last engaging entry is the latest; only a
            // window without one needs a look further back.
            let latest = match window_last {
                Some(at) => Some(at),
                None => {
                    let before = KeyRange::between(
                        keys::owned_prefix(ns::ORG_TIMELINE, member),
                        keys::timed_bound(ns::ORG_TIMELINE, member, window_start),
                    );
                    let mut latest = None;
                    for entry in self.store.range(before, true) {
                        let (key, value) = entry?;
                        if timeline_entry(&key, &value)?.engages {
                            latest = keys::split_timed(&key).map(|(at, _)| at);
                            break;
                        }
                    }
                    latest
                }
            };
            last_interaction_at = last_interaction_at.max(latest);
        }
        let mut relationship_holders = Vec::with_capacity(holders.len());
        for (person, count) in holders {
            let name = person_view(&mut r, &self.rules, person)?.name;
            relationship_holders.push(RelationshipHolder { person, name, interactions_90d: count });
        }
        relationship_holders.sort_by(|a, b| b.interactions_90d.cmp(&a.interactions_90d).then_with(|| a.name.cmp(&b.name)));

        let recent_interactions = self.timeline_in(&mut r, &members, ns::ORG_TIMELINE, None, End::At(query.at), query.recent)?.items;
        let observations = observations_of(&mut r, &members, query.recent)?;
        Ok(OrganizationContext {
            organization,
            people: people.into_values().collect(),
            open_deals,
            recent_interactions,
            observations,
            relationship_holders,
            engagement: Engagement {
                last_interaction_at,
                days_since_last_interaction: last_interaction_at.map(|t| t.days_until(query.at)),
                interactions_last_90d: last_90,
                interactions_previous_90d: previous_90,
            },
        })
    }

    /// A page of interactions of an organization or person in `[from, to)`, newest first.
    /// `before` continues from a previous page's `next`.
    pub fn timeline(
        &self,
        id: NodeId,
        from: Option<Timestamp>,
        to: Timestamp,
        before: Option<TimelineCursor>,
        limit: usize,
    ) -> Result<TimelinePage, GraphError> {
        let mut r = self.reader();
        let space = match id.kind {
            RecordKind::Person => ns::PERSON_TIMELINE,
            _ => ns::ORG_TIMELINE,
        };
        let root = r.root(id)?;
        if r.node(root)?.is_none() {
            return Err(GraphError::NotFound(id));
        }
        let members = cluster_members(&r, root)?;
        let end = match before {
            Some(cursor) if cursor.at < to => End::Before(cursor),
            _ => End::At(to),
        };
        self.timeline_in(&mut r, &members, space, from, end, limit)
    }

    fn timeline_in(
        &self,
        r: &mut Txn<'_>,
        members: &[NodeId],
        space: u8,
        from: Option<Timestamp>,
        end: End,
        limit: usize,
    ) -> Result<TimelinePage, GraphError> {
        let mut hits = Vec::new();
        for &member in members {
            let start = match from {
                Some(from) => keys::timed_bound(space, member, from),
                None => keys::owned_prefix(space, member),
            };
            let end = match end {
                End::At(to) => keys::timed_bound(space, member, to),
                End::Before(cursor) => keys::timed(space, member, cursor.at, cursor.item),
            };
            for entry in self.store.range(KeyRange::between(start, end), true).take(limit + 1) {
                let (key, _) = entry?;
                if let Some(hit) = keys::split_timed(&key) {
                    hits.push(hit);
                }
            }
        }
        hits.sort_by(|a, b| b.cmp(a));
        hits.dedup();
        let more = hits.len() > limit;
        hits.truncate(limit);
        let mut items = Vec::with_capacity(hits.len());
        for (_, id) in &hits {
            if let Some(Node { id, body: Body::Interaction(i), .. }) = r.node(*id)? {
                items.push(TimelineItem {
                    id,
                    occurred_at: i.occurred_at,
                    kind: i.kind,
                    direction: i.direction,
                    subject: i.subject,
                    employees: i.employees,
                    participants: i.participants,
                });
            }
        }
        // The cursor names the last item itself, so items sharing its millisecond are
        // neither repeated nor skipped on the next page.
        let next = more.then(|| hits.last().map(|&(at, item)| TimelineCursor { at, item }.to_string())).flatten();
        Ok(TimelinePage { items, next })
    }

    /// Live organizations or people (cluster roots), in id order, after `after`.
    pub fn list(&self, kind: RecordKind, after: Option<NodeId>, limit: usize) -> Result<Vec<NodeId>, GraphError> {
        let r = self.reader();
        let start = match after {
            Some(id) => {
                let mut key = keys::node(id);
                key.push(0);
                key
            }
            None => keys::nodes_of_kind(kind),
        };
        let end = rapport_store::prefix_successor(&keys::nodes_of_kind(kind)).unwrap_or_default();
        let mut out = Vec::new();
        for entry in self.store.range(KeyRange::between(start, end), false) {
            let (key, value) = entry?;
            let node = decode_node(&key, &value)?;
            if node.deleted_at.is_some() || node.placeholder || r.root(node.id)? != node.id {
                continue;
            }
            out.push(node.id);
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Observations about an organization or person (its whole cluster), newest first,
    /// optionally only those with `tag`.
    pub fn observations(&self, id: NodeId, tag: Option<&str>, limit: usize) -> Result<Vec<ObservationItem>, GraphError> {
        let mut r = self.reader();
        let (root, _) = cluster_nodes(&mut r, &self.rules, id)?;
        let members = cluster_members(&r, root)?;
        let mut items = observations_of(&mut r, &members, if tag.is_some() { usize::MAX } else { limit })?;
        if let Some(tag) = tag {
            items.retain(|o| o.tags.iter().any(|t| t == tag));
        }
        items.truncate(limit);
        Ok(items)
    }

    /// Searches organizations or people by email, domain or name words.
    pub fn search(&self, kind: RecordKind, query: &str, limit: usize) -> Result<Vec<NodeId>, GraphError> {
        let mut r = self.reader();
        let query = query.trim();
        let domain = ops::normalize_domain(query).filter(|_| !query.contains(' '));
        let mut found = match (ops::normalize_email(query), domain) {
            (Some(email), _) if kind == RecordKind::Person => {
                let key = keys::email(&email);
                self.store.get(&key)?.map(|bytes| decode_at(&key, &bytes)).transpose()?.into_iter().collect()
            }
            (Some(email), _) => self.by_domain(ops::email_domain(&email).unwrap_or_default())?.into_iter().collect(),
            (None, Some(domain)) if kind == RecordKind::Person => match self.by_domain(&domain)? {
                // People by domain: the people of the organization that owns it.
                Some(org) => {
                    let mut people = Vec::new();
                    for member in cluster_members(&r, r.root(org)?)? {
                        for (key, _) in r.scan_prefix(&keys::owned_prefix(ns::WORKS_AT, member))? {
                            people.extend(keys::split_member(&key).map(|(_, person)| person));
                        }
                    }
                    people
                }
                None => Vec::new(),
            },
            (None, Some(domain)) => self.by_domain(&domain)?.into_iter().collect(),
            (None, None) => Vec::new(),
        };
        if found.is_empty() {
            let tokens: Vec<String> = name_tokens(query).collect();
            if let Some(first) = tokens.first() {
                for entry in self.store.scan_prefix(&keys::name_token_prefix(kind, first)) {
                    let (key, _) = entry?;
                    found.extend(keys::trailing_id(&key));
                }
            }
            // Every other word must prefix some word of the name too.
            let mut kept = Vec::new();
            for id in found {
                let name = match r.node(id)? {
                    Some(Node { body: Body::Organization(o), .. }) => o.name,
                    Some(Node { body: Body::Person(p), .. }) => p.name,
                    _ => continue,
                };
                let words: Vec<String> = name_tokens(&name).collect();
                if tokens.iter().all(|t| words.iter().any(|w| w.starts_with(t.as_str()))) {
                    kept.push(id);
                }
            }
            found = kept;
        }
        let mut roots = Vec::new();
        for id in found {
            let root = r.root(id)?;
            if root.kind == kind && !roots.contains(&root) {
                roots.push(root);
            }
        }
        roots.truncate(limit);
        Ok(roots)
    }

    fn by_domain(&self, domain: &str) -> Result<Option<NodeId>, GraphError> {
        let key = keys::domain(domain);
        self.store.get(&key)?.map(|bytes| decode_at(&key, &bytes)).transpose()
    }

    /// Counts live nodes of each kind.
    pub fn stats(&self) -> Result<GraphStats, GraphError> {
        let mut stats = GraphStats::default();
        for kind in RecordKind::ALL {
            let mut count = 0;
            for entry in self.store.scan_prefix(&keys::nodes_of_kind(kind)) {
                let (key, value) = entry?;
                let node = decode_node(&key, &value)?;
                let merged = self.store.get(&keys::alias(node.id))?.is_some();
                if node.deleted_at.is_none() && !node.placeholder && !merged {
                    count += 1;
                }
            }
            match kind {
                RecordKind::Organization => stats.organizations = count,
                RecordKind::Person => stats.people = count,
                RecordKind::Deal => stats.deals = count,
                RecordKind::Interaction => stats.interactions = count,
                RecordKind::Observation => stats.observations = count,
            }
        }
        stats.merges = self.store.scan_prefix(&[ns::ALIAS]).count();
        Ok(stats)
    }
}

/// Where a timeline page continues: just before this item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineCursor {
    /// The last item's time.
    pub at: Timestamp,
    /// The last item.
    pub item: NodeId,
}

impl fmt::Display for TimelineCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.at.0, self.item)
    }
}

impl FromStr for TimelineCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (at, item) = s.split_once(':').ok_or(())?;
        // As the documented pattern says: an optional minus and at most 18 digits.
        let digits = at.strip_prefix('-').unwrap_or(at);
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        Ok(Self { at: Timestamp(at.parse().map_err(drop)?), item: item.parse().map_err(drop)? })
    }
}

/// The (exclusive) end of a timeline range.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Before this time.
    At(Timestamp),
    /// Before this item.
    Before(TimelineCursor),
}

/// A timeline entry, of this layout or an earlier one.
fn timeline_entry(key: &[u8], value: &[u8]) -> Result<TimelineEntry, GraphError> {
    decode_upgrading_at::<TimelineEntry, TimelineEntryV1>(key, value)
}

/// The live member nodes of `id`'s cluster, in the order they give scalar fields: by their
/// source's rank, then the one their source saw last; `NotFound` when none lives.
fn cluster_nodes(r: &mut Txn<'_>, rules: &IdentityRules, id: NodeId) -> Result<(NodeId, Vec<Node>), GraphError> {
    let root = r.root(id)?;
    let mut nodes = Vec::new();
    for member in cluster_members(r, root)? {
        if let Some(node) = r.node(member)?
            && node.deleted_at.is_none()
        {
            nodes.push(node);
        }
    }
    if nodes.is_empty() || nodes.iter().all(|n| n.placeholder) {
        return Err(GraphError::NotFound(id));
    }
    // Only what the sources said decides, never the order they said it in: ties fall to the
    // source name and the record's id in it.
    nodes.sort_by(|a, b| {
        let key = |n: &Node| (rules.source_rank(&n.provenance.source), std::cmp::Reverse(n.provenance.seen_at));
        key(a)
            .cmp(&key(b))
            .then_with(|| a.provenance.source.cmp(&b.provenance.source))
            .then_with(|| a.provenance.external_id.cmp(&b.provenance.external_id))
    });
    Ok((root, nodes))
}

pub(super) fn organization_view(r: &mut Txn<'_>, rules: &IdentityRules, id: NodeId) -> Result<OrganizationView, GraphError> {
    if id.kind != RecordKind::Organization {
        return Err(GraphError::NotFound(id));
    }
    let (root, nodes) = cluster_nodes(r, rules, id)?;
    let mut view = OrganizationView {
        id: root,
        name: String::new(),
        domains: Vec::new(),
        roles: Vec::new(),
        lifecycle: None,
        owner: None,
        merged: nodes.iter().map(|n| n.id).filter(|m| *m != root).collect(),
        provenance: nodes.iter().map(|n| n.provenance.clone()).collect(),
        names: Vec::new(),
    };
    for node in nodes {
        let Body::Organization(o) = node.body else { continue };
        push_name(&mut view.names, &node.provenance, &o.name);
        if view.name.is_empty() {
            view.name = o.name;
        }
        view.lifecycle = view.lifecycle.or(o.lifecycle);
        view.owner = view.owner.or(o.owner);
        extend_unique(&mut view.domains, o.domains);
        extend_unique(&mut view.roles, o.roles);
    }
    Ok(view)
}

pub(super) fn person_view(r: &mut Txn<'_>, rules: &IdentityRules, id: NodeId) -> Result<PersonView, GraphError> {
    if id.kind != RecordKind::Person {
        return Err(GraphError::NotFound(id));
    }
    let (root, nodes) = cluster_nodes(r, rules, id)?;
    let mut view = PersonView {
        id: root,
        name: String::new(),
        emails: Vec::new(),
        title: None,
        internal: false,
        role: false,
        merged: nodes.iter().map(|n| n.id).filter(|m| *m != root).collect(),
        provenance: nodes.iter().map(|n| n.provenance.clone()).collect(),
        names: Vec::new(),
    };
    for node in nodes {
        let Body::Person(p) = node.body else { continue };
        push_name(&mut view.names, &node.provenance, &p.name);
        if view.name.is_empty() {
            view.name = p.name;
        }
        view.title = view.title.or(p.title);
        view.internal |= p.internal;
        extend_unique(&mut view.emails, p.emails);
    }
    view.role = rules.is_role_mailbox(&view.emails);
    Ok(view)
}

/// Lists a record's non-empty name with its source.
fn push_name(names: &mut Vec<SourcedName>, provenance: &Provenance, name: &str) {
    if !name.is_empty() {
        names.push(SourcedName { source: provenance.source.clone(), name: name.to_owned() });
    }
}

fn observations_of(r: &mut Txn<'_>, members: &[NodeId], limit: usize) -> Result<Vec<ObservationItem>, GraphError> {
    let mut ids = Vec::new();
    for &member in members {
        let scanned = r.scan_prefix(&keys::owned_prefix(ns::ABOUT, member))?;
        for (key, _) in scanned.into_iter().rev().take(limit) {
            if let Some(hit) = keys::split_timed(&key) {
                ids.push(hit);
            }
        }
    }
    ids.sort_by(|a, b| b.cmp(a));
    ids.truncate(limit);
    let mut out = Vec::with_capacity(ids.len());
    for (_, id) in ids {
        if let Some(Node { id, provenance, body: Body::Observation(o), .. }) = r.node(id)? {
            out.push(ObservationItem {
                id,
                about: o.about,
                author: o.author,
                text: o.text,
                tags: o.tags,
                observed_at: o.observed_at,
                provenance,
            });
        }
    }
    Ok(out)
}

/// Appends the items `into` does not hold yet, in linear time (a cluster may hold large lists).
fn extend_unique<T: Eq + std::hash::Hash + Clone>(into: &mut Vec<T>, items: Vec<T>) {
    let mut seen: HashSet<T> = into.iter().cloned().collect();
    into.extend(items.into_iter().filter(|item| seen.insert(item.clone())));
}
