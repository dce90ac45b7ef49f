//! Applying record operations: upserts keyed by `(source, kind, external id)`, identity
//! resolution on emails and domains, index maintenance, and the one atomic commit.

use std::collections::{BTreeSet, HashSet};

use tracing::debug;

use super::attribution::{self, Attributor};
use super::keys::{self, ns};
use super::model::{
    Body, ChangeOp, Deal, Interaction, Job, Node, NodeId, Observation, Organization, Person, Provenance, RecordKind, StageEntry,
    TimelineEntry, Timestamp,
};
use super::txn::{PendingChange, Touched, Txn};
use super::{Graph, GraphError, IdentityRules, decode_at, identity};
use crate::metrics::{METRICS, OutcomeLabels};
use rapport_ops::{
    self as ops, DealRecord, FieldError, IngestBatch, IngestReport, InteractionRecord, InvalidPolicy, LinkRecord, ObservationRecord,
    Operation, OrganizationRecord, PersonRecord, Relation, SkippedOperation, SourceTrust,
};
use rapport_store::codec::{encode, encode_v2};

/// An operation could not be applied, or the graph failed.
enum ApplyError {
    Invalid(FieldError),
    Graph(GraphError),
}

impl From<GraphError> for ApplyError {
    fn from(err: GraphError) -> Self {
        Self::Graph(err)
    }
}

fn invalid(path: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid(FieldError { path: path.to_owned(), message: message.into() })
}

/// An interval must not end before it starts.
fn check_interval(path: &str, start: Option<Timestamp>, end: Option<Timestamp>) -> Result<(), ApplyError> {
    match (start, end) {
        (Some(start), Some(end)) if end < start => Err(invalid(path, "must not be earlier than the start")),
        _ => Ok(()),
    }
}

impl Graph {
    /// Validates and applies a batch in one atomic, durable commit.
    pub fn ingest(&self, batch: IngestBatch) -> Result<IngestReport, GraphError> {
        self.ingest_then(batch, |_| Vec::new())
    }

    /// Like [`Graph::ingest`], and writes in the same commit the metadata `finish` derives
    /// from the batch's report (a plugin run's record with its counts).
    #[tracing::instrument(name = "ingest_batch", skip_all, fields(source = %batch.source, operations = batch.operations.len()))]
    pub fn ingest_then(
        &self,
        batch: IngestBatch,
        finish: impl FnOnce(&IngestReport) -> Vec<(String, Vec<u8>)>,
    ) -> Result<IngestReport, GraphError> {
        // A poisoned lock only means another batch panicked; its writes were never committed.
        let mut writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = std::time::Instant::now();
        let mut txn = Txn::new(&*self.store);
        let mut report = IngestReport::default();
        for (index, op) in batch.operations.iter().enumerate() {
            let mut errors = op.validate("", &self.limits);
            if errors.is_empty() {
                let savepoint = txn.savepoint();
                let mut apply = Apply {
                    txn: &mut txn,
                    graph: self,
                    source: &batch.source,
                    trust: batch.trust,
                    now: Timestamp::from(batch.now),
                    merges: 0,
                    untrusted: 0,
                };
                match apply.operation(op) {
                    Ok(()) => {
                        report.merges += apply.merges;
                        report.untrusted += apply.untrusted;
                        report.applied += 1;
                        continue;
                    }
                    Err(ApplyError::Invalid(err)) => {
                        txn.rollback(savepoint);
                        errors.push(err);
                    }
                    Err(ApplyError::Graph(err)) => return Err(err),
                }
            }
            // Reported, not logged: the caller knows how to name and scrub it (a line number,
            // a plugin's secrets).
            report.skipped.push(SkippedOperation { index, external_id: op.external_id().to_owned(), errors });
        }
        let metrics = &*METRICS;
        let count = |outcome, n: usize| metrics.ingest_operations.get_or_create(&OutcomeLabels { outcome }).inc_by(n as u64);
        if batch.policy == InvalidPolicy::RejectBatch && !report.skipped.is_empty() {
            count("rejected", batch.operations.len());
            metrics.ingest_batches.get_or_create(&OutcomeLabels { outcome: "rejected" }).inc();
            return Ok(report);
        }
        report.refiled = attribution::refile(&mut txn, &self.rules)?;
        report.changes = self.write_changes(&mut txn, &mut writer, Timestamp::from(batch.now))?;
        for (name, value) in batch.meta.into_iter().chain(finish(&report)) {
            txn.put(keys::meta(&name), value);
        }
        report.keys_written = txn.len();
        self.store.apply(txn.into_batch())?;
        Self::changes_committed(&mut writer, report.changes);
        report.committed = true;
        count("applied", report.applied);
        count("skipped", report.skipped.len());
        metrics.ingest_batches.get_or_create(&OutcomeLabels { outcome: "committed" }).inc();
        metrics.identity_merges.inc_by(report.merges as u64);
        metrics.ingest_duration.observe(started.elapsed().as_secs_f64());
        debug!(applied = report.applied, skipped = report.skipped.len(), keys = report.keys_written, "batch committed");
        Ok(report)
    }
}

struct Apply<'a, 's> {
    txn: &'a mut Txn<'s>,
    graph: &'a Graph,
    source: &'a str,
    trust: SourceTrust,
    now: Timestamp,
    merges: usize,
    untrusted: usize,
}

impl Apply<'_, '_> {
    fn operation(&mut self, op: &Operation) -> Result<(), ApplyError> {
        match op {
            Operation::UpsertOrganization(r) => self.organization(r),
            Operation::UpsertPerson(r) => self.person(r),
            Operation::UpsertDeal(r) => self.deal(r),
            Operation::UpsertInteraction(r) => self.interaction(r),
            Operation::AddObservation(r) => self.observation(r),
            Operation::Delete(r) => self.delete(r.kind, &r.external_id),
            Operation::Link(r) => self.link(r),
        }
    }

    /// The node a source record maps to, if the source sent it (or referred to it) before.
    fn lookup(&self, kind: RecordKind, external_id: &str) -> Result<Option<NodeId>, GraphError> {
        let key = keys::source_ref(self.source, kind, external_id);
        self.txn.get(&key)?.map(|bytes| decode_at(&key, &bytes)).transpose()
    }

    fn fresh_node(&mut self, kind: RecordKind, external_id: &str, seen_at: Timestamp, body: Body) -> Node {
        let id = NodeId::generate(kind);
        self.txn.put(keys::source_ref(self.source, kind, external_id), encode(&id));
        Node {
            id,
            provenance: Provenance { source: self.source.to_owned(), external_id: external_id.to_owned(), seen_at },
            created_at: self.now,
            updated_at: self.now,
            deleted_at: None,
            placeholder: false,
            body,
        }
    }

    /// The node for a reference to an organization or person of this source, created as a
    /// placeholder when the source has not sent the record yet (records may come in any order).
    fn reference(&mut self, kind: RecordKind, external_id: &str) -> Result<NodeId, GraphError> {
        if let Some(id) = self.lookup(kind, external_id)? {
            return Ok(id);
        }
        let body = match kind {
            RecordKind::Person => Body::Person(Person::default()),
            _ => Body::Organization(Organization::default()),
        };
        let mut node = self.fresh_node(kind, external_id, self.now, body);
        node.placeholder = true;
        let id = node.id;
        self.txn.put_node(node);
        Ok(id)
    }

    /// The existing node of a record (with its old body) or a new one.
    fn upsert_target(
        &mut self,
        kind: RecordKind,
        external_id: &str,
        seen_at: Option<Timestamp>,
        empty: Body,
    ) -> Result<(Node, Option<Node>), GraphError> {
        let seen_at = seen_at.unwrap_or(self.now);
        if let Some(id) = self.lookup(kind, external_id)?
            && let Some(old) = self.txn.node(id)?
        {
            let mut node = old.clone();
            node.provenance.seen_at = node.provenance.seen_at.max(seen_at);
            node.updated_at = self.now;
            node.deleted_at = None;
            node.placeholder = false;
            return Ok((node, Some(old)));
        }
        Ok((self.fresh_node(kind, external_id, seen_at, empty), None))
    }

    /// Writes `node`, replacing `old`'s index entries and identity claims with its own, and
    /// notes the change (an upsert, or a delete) for the feed.
    fn store(&mut self, node: Node, old: Option<&Node>) -> Result<(), GraphError> {
        let op = if node.deleted_at.is_some() { ChangeOp::Delete } else { ChangeOp::Upsert };
        self.store_as(node, old, op, None)
    }

    /// [`Self::store`], noted in the feed as `op`, touching `other`'s cluster too.
    fn store_as(&mut self, node: Node, old: Option<&Node>, op: ChangeOp, other: Option<NodeId>) -> Result<(), GraphError> {
        if let (Body::Person(new), Some(Node { body: Body::Person(was), deleted_at, .. })) = (&node.body, old)
            && (new.emails != was.emails || new.works_at != was.works_at || new.internal != was.internal || node.deleted_at != *deleted_at)
        {
            // A new person has no interactions yet; a changed one may speak for others now.
            self.txn.touch(Touched::Person(node.id));
        }
        let old_claims = old.map(|n| self.claims(n)).unwrap_or_default();
        let new_claims = self.claims(&node);
        let id = node.id;
        write_node(self.txn, &self.graph.rules, node.clone(), old, op, other);
        identity::flag_duplicates(self.txn, &node, self.now)?;
        let claimed: HashSet<&[u8]> = new_claims.iter().map(|(k, _)| k.as_slice()).collect();
        for (key, _) in old_claims.iter().filter(|(k, _)| !claimed.contains(k.as_slice())) {
            self.release(key, id)?;
        }
        for (key, reason) in new_claims {
            self.claim(key, id, reason)?;
        }
        Ok(())
    }

    /// The identity keys a node claims: its emails, or its organization domains.
    fn claims(&self, node: &Node) -> Vec<(Vec<u8>, String)> {
        if node.deleted_at.is_some() {
            return Vec::new();
        }
        match &node.body {
            Body::Person(p) => p.emails.iter().map(|e| (keys::email(e), format!("shared email {e}"))).collect(),
            Body::Organization(o) => o
                .domains
                .iter()
                .filter(|d| self.graph.rules.identifies_organization(d))
                .map(|d| (keys::domain(d), format!("shared domain {d}")))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn claim(&mut self, key: Vec<u8>, id: NodeId, reason: String) -> Result<(), GraphError> {
        match self.txn.get(&key)? {
            None => {
                self.touch_domain(&key);
                self.txn.put(key, encode(&id));
            }
            Some(bytes) => {
                let owner: NodeId = decode_at(&key, &bytes)?;
                if owner == id {
                    return Ok(());
                }
                if !self.trust.join_clusters && self.joins_two_clusters(owner, id)? {
                    // A person decides: the pair waits on the review list, nothing merges.
                    let reason = format!("{reason}; source {} is not trusted to join two clusters", self.source);
                    identity::flag_pair(self.txn, owner, id, reason, self.now)?;
                    self.untrusted += 1;
                } else if identity::merge_clusters(self.txn, owner, id, reason, self.now)?.is_some() {
                    self.merges += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether merging `newcomer` into `owner`'s cluster would join two clusters that both
    /// exist already (rather than add a record to one).
    fn joins_two_clusters(&self, owner: NodeId, newcomer: NodeId) -> Result<bool, GraphError> {
        let (theirs, ours) = (self.txn.root(owner)?, self.txn.root(newcomer)?);
        if theirs == ours {
            return Ok(false);
        }
        Ok(ours != newcomer || !self.txn.scan_prefix(&keys::owned_prefix(ns::CHILD, ours))?.is_empty())
    }

    fn release(&mut self, key: &[u8], id: NodeId) -> Result<(), GraphError> {
        if let Some(bytes) = self.txn.get(key)?
            && decode_at::<NodeId>(key, &bytes)? == id
        {
            self.touch_domain(key);
            self.txn.delete(key.to_vec());
        }
        Ok(())
    }

    /// A domain claim changed hands: the people writing from it may speak for another
    /// organization now.
    fn touch_domain(&mut self, claim: &[u8]) {
        if let Some(domain) = keys::claimed_domain(claim) {
            self.txn.touch(Touched::Domain(domain.to_owned()));
        }
    }

    fn organization(&mut self, r: &OrganizationRecord) -> Result<(), ApplyError> {
        let owner = r.owner.as_deref().map(|o| self.reference(RecordKind::Person, o)).transpose()?;
        let (mut node, old) = self.upsert_target(
            RecordKind::Organization,
            &r.external_id,
            r.seen_at.map(Into::into),
            Body::Organization(Organization::default()),
        )?;
        node.body = Body::Organization(Organization {
            name: r.name.trim().to_owned(),
            domains: dedup(r.domains.iter().filter_map(|d| ops::normalize_domain(d))),
            roles: dedup(r.roles.iter().copied()),
            lifecycle: r.lifecycle,
            owner,
        });
        Ok(self.store(node, old.as_ref())?)
    }

    fn person(&mut self, r: &PersonRecord) -> Result<(), ApplyError> {
        let mut works_at = Vec::with_capacity(r.works_at.len());
        for (i, job) in r.works_at.iter().enumerate() {
            check_interval(&format!("works_at[{i}].until"), job.since.map(Into::into), job.until.map(Into::into))?;
            works_at.push(Job {
                organization: self.reference(RecordKind::Organization, &job.organization)?,
                since: job.since.map(Into::into),
                until: job.until.map(Into::into),
            });
        }
        let emails = dedup_ordered(r.emails.iter().filter_map(|e| ops::normalize_email(e)));
        let by_domain = emails.iter().any(|e| self.graph.rules.is_internal_address(e));
        if r.internal && !by_domain && !self.trust.internal {
            self.untrusted += 1;
        }
        let internal = by_domain || (r.internal && self.trust.internal);
        let (mut node, old) =
            self.upsert_target(RecordKind::Person, &r.external_id, r.seen_at.map(Into::into), Body::Person(Person::default()))?;
        node.body = Body::Person(Person {
            name: r.name.trim().to_owned(),
            emails,
            phones: r.phones.clone(),
            title: r.title.clone(),
            internal,
            works_at,
        });
        Ok(self.store(node, old.as_ref())?)
    }

    fn deal(&mut self, r: &DealRecord) -> Result<(), ApplyError> {
        let organization = self.reference(RecordKind::Organization, &r.organization)?;
        let seen_at = r.seen_at.map(Timestamp::from);
        let placeholder = Body::Deal(Deal {
            organization,
            name: String::new(),
            amount: None,
            currency: None,
            pipeline: None,
            stage: String::new(),
            stage_history: Vec::new(),
            status: r.status,
            closed_at: None,
        });
        let (mut node, old) = self.upsert_target(RecordKind::Deal, &r.external_id, seen_at, placeholder)?;
        let mut stage_history = match old.as_ref().map(|n| &n.body) {
            Some(Body::Deal(d)) => d.stage_history.clone(),
            _ => Vec::new(),
        };
        if stage_history.last().is_none_or(|last| last.stage != r.stage) {
            let entered_at = r.stage_entered_at.map(Timestamp::from).or(seen_at).unwrap_or(self.now);
            stage_history.push(StageEntry { stage: r.stage.clone(), entered_at });
        }
        node.body = Body::Deal(Deal {
            organization,
            name: r.name.clone(),
            amount: r.amount,
            currency: r.currency.clone(),
            pipeline: r.pipeline.clone(),
            stage: r.stage.clone(),
            stage_history,
            status: r.status,
            closed_at: r.closed_at.map(Into::into),
        });
        Ok(self.store(node, old.as_ref())?)
    }

    /// The person with this address, or a new one known only by it.
    fn person_by_email(&mut self, email: &str) -> Result<NodeId, GraphError> {
        let key = keys::email(email);
        if let Some(bytes) = self.txn.get(&key)? {
            return decode_at(&key, &bytes);
        }
        let person = Person { emails: vec![email.to_owned()], internal: self.graph.rules.is_internal_address(email), ..Person::default() };
        let node = self.fresh_node(RecordKind::Person, &format!("email:{email}"), self.now, Body::Person(person));
        let id = node.id;
        self.store(node, None)?;
        Ok(id)
    }

    fn interaction(&mut self, r: &InteractionRecord) -> Result<(), ApplyError> {
        let at = Timestamp::from(r.occurred_at);
        check_interval("resolved_at", Some(at), r.resolved_at.map(Into::into))?;
        let mut participants = Vec::with_capacity(r.participants.len());
        let mut addresses = Vec::with_capacity(r.participants.len());
        let mut seen = HashSet::with_capacity(r.participants.len());
        for p in &r.participants {
            let (id, address) = match (&p.email, &p.person) {
                (Some(email), _) => {
                    let email = ops::normalize_email(email).ok_or_else(|| invalid("participants", "bad email"))?;
                    (self.person_by_email(&email)?, Some(email))
                }
                (None, Some(person)) => (self.reference(RecordKind::Person, person)?, None),
                (None, None) => return Err(invalid("participants", "expected an email or a person")),
            };
            if seen.insert(id) {
                participants.push(id);
                addresses.push(address);
            }
        }
        let filed_under = r.organization.as_deref().map(|org| self.reference(RecordKind::Organization, org)).transpose()?;
        let mut interaction = Interaction {
            kind: r.kind,
            occurred_at: at,
            direction: r.direction,
            duration_secs: r.duration_secs,
            participants,
            addresses,
            filed_under,
            automated: r.automated,
            employees: Vec::new(),
            organizations: Vec::new(),
            engages: false,
            thread: r.thread.clone(),
            subject: r.subject.clone(),
            resolved_at: r.resolved_at.map(Into::into),
        };
        Attributor::new(&self.graph.rules).attribute(self.txn, &interaction)?.apply_to(&mut interaction);
        let (mut node, old) = self.upsert_target(RecordKind::Interaction, &r.external_id, None, Body::Interaction(interaction.clone()))?;
        node.body = Body::Interaction(interaction);
        Ok(self.store(node, old.as_ref())?)
    }

    fn observation(&mut self, r: &ObservationRecord) -> Result<(), ApplyError> {
        let about = match (&r.about.organization, &r.about.person, &r.about.id) {
            (Some(org), _, _) => self.reference(RecordKind::Organization, org)?,
            (_, Some(person), _) => self.reference(RecordKind::Person, person)?,
            (_, _, Some(text)) => {
                let id: NodeId = text.parse().map_err(|e: super::model::BadNodeId| invalid("about.id", e.to_string()))?;
                if !matches!(id.kind, RecordKind::Organization | RecordKind::Person) || self.txn.node(id)?.is_none() {
                    return Err(invalid("about.id", format!("no organization or person has id {id}")));
                }
                id
            }
            _ => return Err(invalid("about", "expected an organization, a person or an id")),
        };
        let author = match r.author_email.as_deref().and_then(ops::normalize_email) {
            Some(email) => Some(self.person_by_email(&email)?),
            None => None,
        };
        let observed_at = r.observed_at.map(Timestamp::from).unwrap_or(self.now);
        let body = Body::Observation(Observation { about, author, text: r.text.clone(), tags: dedup(r.tags.iter().cloned()), observed_at });
        let (mut node, old) = self.upsert_target(RecordKind::Observation, &r.external_id, None, body.clone())?;
        node.body = body;
        Ok(self.store(node, old.as_ref())?)
    }

    fn delete(&mut self, kind: RecordKind, external_id: &str) -> Result<(), ApplyError> {
        let node = match self.lookup(kind, external_id)? {
            Some(id) => self.txn.node(id)?,
            None => None,
        };
        let Some(old) = node else {
            return Err(invalid("external_id", format!("this source has no {kind:?} with this id").to_lowercase()));
        };
        if old.deleted_at.is_some() {
            return Ok(());
        }
        let mut node = old.clone();
        node.deleted_at = Some(self.now);
        node.updated_at = self.now;
        Ok(self.store(node, Some(&old))?)
    }

    fn link(&mut self, r: &LinkRecord) -> Result<(), ApplyError> {
        check_interval("until", r.since.map(Into::into), r.until.map(Into::into))?;
        let person = self.reference(RecordKind::Person, &r.person)?;
        let organization = self.reference(RecordKind::Organization, &r.organization)?;
        let (target, old) = match r.relation {
            Relation::WorksAt => (person, self.txn.node(person)?),
            Relation::Owns => (organization, self.txn.node(organization)?),
        };
        let old = old.ok_or(GraphError::NotFound(target))?;
        let mut node = old.clone();
        match &mut node.body {
            Body::Person(p) => {
                let job = Job { organization, since: r.since.map(Into::into), until: r.until.map(Into::into) };
                match p.works_at.iter_mut().find(|j| j.organization == organization) {
                    Some(existing) => *existing = job,
                    None => p.works_at.push(job),
                }
            }
            Body::Organization(o) => o.owner = Some(person),
            _ => return Err(invalid("relation", "link joins a person and an organization")),
        }
        node.updated_at = self.now;
        let other = if target == person { organization } else { person };
        Ok(self.store_as(node, Some(&old), ChangeOp::Link, Some(other))?)
    }
}

/// The records whose views a change of `node` touches, besides its own.
fn related_records(node: &Node) -> Vec<NodeId> {
    match &node.body {
        Body::Interaction(i) => i.organizations.iter().chain(&i.participants).chain(&i.employees).copied().collect(),
        Body::Deal(d) => vec![d.organization],
        Body::Observation(o) => vec![o.about],
        Body::Person(p) => p.works_at.iter().map(|job| job.organization).collect(),
        Body::Organization(_) => Vec::new(),
    }
}

/// A record's own time, as the change feed gives it.
fn record_time(node: &Node) -> Timestamp {
    match &node.body {
        Body::Interaction(i) => i.occurred_at,
        Body::Observation(o) => o.observed_at,
        _ => node.provenance.seen_at,
    }
}

/// Writes `node`, replacing `old`'s index entries with its own, and notes the change for
/// the feed as `op` (touching `other`'s cluster too). Identity claims are the caller's.
pub(super) fn write_node(txn: &mut Txn<'_>, rules: &IdentityRules, node: Node, old: Option<&Node>, op: ChangeOp, other: Option<NodeId>) {
    let mut related: Vec<NodeId> = old.into_iter().chain([&node]).flat_map(related_records).chain(other).collect();
    related.sort_unstable();
    related.dedup();
    txn.changed(PendingChange { node: node.id, op, at: record_time(&node), related });
    let old_entries = old.map(|old| index_entries(rules, old)).unwrap_or_default();
    let new_entries = index_entries(rules, &node);
    let kept: HashSet<&[u8]> = new_entries.iter().map(|(k, _)| k.as_slice()).collect();
    for (key, _) in &old_entries {
        if !kept.contains(key.as_slice()) {
            txn.delete(key.clone());
        }
    }
    // An interaction's entries (`t`, `u`) have been written by every release, so one that
    // is unchanged is in the store as it is: a re-filing writes only what moved. Other
    // kinds gained index entries (`l`, `y`) that a store from before lacks; they are
    // written whole.
    let unchanged: HashSet<(&[u8], &[u8])> = match node.body {
        Body::Interaction(_) => old_entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect(),
        _ => HashSet::new(),
    };
    for (key, value) in new_entries {
        if !unchanged.contains(&(key.as_slice(), value.as_slice())) {
            txn.put(key, value);
        }
    }
    txn.put_node(node);
}

/// The index entries a node owns; a deleted node owns none.
fn index_entries(rules: &IdentityRules, node: &Node) -> Vec<(Vec<u8>, Vec<u8>)> {
    if node.deleted_at.is_some() {
        return Vec::new();
    }
    let id = node.id;
    match &node.body {
        Body::Organization(o) => name_entries(id, &o.name).collect(),
        Body::Person(p) => {
            let domains: BTreeSet<&str> =
                p.emails.iter().filter_map(|e| ops::email_domain(e)).filter(|d| rules.identifies_organization(d)).collect();
            let surname = crate::names::PersonName::split(&p.name).map(|n| (keys::surname(&n.surname, &n.given, id), Vec::new()));
            name_entries(id, &p.name)
                .chain(surname)
                .chain(p.works_at.iter().map(|j| (keys::member(ns::WORKS_AT, j.organization, id), Vec::new())))
                .chain(domains.into_iter().map(|domain| (keys::address_domain(domain, id), Vec::new())))
                .collect()
        }
        Body::Deal(d) => vec![(keys::member(ns::DEAL, d.organization, id), Vec::new())],
        Body::Interaction(i) => {
            let entry = encode_v2(&TimelineEntry { employees: i.employees.clone(), engages: i.engages });
            i.organizations
                .iter()
                .map(|org| (keys::timed(ns::ORG_TIMELINE, *org, i.occurred_at, id), entry.clone()))
                // A person's timeline is read item by item, so its keys carry no summary.
                .chain(i.participants.iter().map(|p| (keys::timed(ns::PERSON_TIMELINE, *p, i.occurred_at, id), Vec::new())))
                .collect()
        }
        Body::Observation(o) => vec![(keys::timed(ns::ABOUT, o.about, o.observed_at, id), Vec::new())],
    }
}

/// The search tokens and the exact-name key of a name.
fn name_entries(id: NodeId, name: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    let exact = identity::normalized_name(name).map(|full| (keys::full_name(id.kind, &full, id), Vec::new()));
    name_tokens(name).map(move |t| (keys::name_token(id.kind, &t, id), Vec::new())).chain(exact)
}

/// Lowercased words of a name, for prefix search.
pub(super) fn name_tokens(name: &str) -> impl Iterator<Item = String> + '_ {
    let tokens: BTreeSet<String> = name.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect();
    tokens.into_iter()
}

fn dedup<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}

/// The items without repeats, in first-seen order.
fn dedup_ordered<T: Eq + std::hash::Hash + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|item| seen.insert(item.clone())).collect()
}
