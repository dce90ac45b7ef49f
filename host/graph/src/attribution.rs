//! Attribution: which organizations an interaction counts for, which of its participants
//! are our employees, and whether it counts as engagement. It is decided from identity as
//! it stands when a batch commits, never frozen at the moment the interaction arrived, so
//! the graph is the same whatever order its sources came in.
//!
//! Each participant on their side speaks for organizations by, in order:
//! 1. the domain of the address it took part with, when an organization holds that domain
//!    (the address says which employer a message was written for);
//! 2. else its cluster's employments current at the interaction's time (`since`/`until`);
//! 3. else the organizations holding the domains of its cluster's other addresses.
//!
//! A participant whose cluster is internal, or who wrote from one of our domains, is an
//! employee, unless the address is a role one (`it-helpdesk@…`). An interaction its source
//! filed under an organization stays there. It does not count as engagement when its source
//! said a machine sent it, or when everyone on their side is a role address.
//!
//! A batch that changes a person's identity (employments, addresses, the internal flag, a
//! merge or an unmerge of its cluster) or which organization holds a domain notes it
//! (`Txn::touch`). Before the batch commits, [`refile`] attributes again the interactions
//! of exactly those people (the `u` ranges of their clusters' members, and for a domain
//! the people with an address there, `y`) and rewrites those whose attribution changed,
//! each noted in the feed as a re-filing. The cost is that of the people involved, never a
//! scan of the graph.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use super::identity::cluster_members;
use super::keys::{self, ns};
use super::model::{Body, ChangeOp, Interaction, Job, Node, NodeId, Timestamp};
use super::txn::{Touched, Txn};
use super::{GraphError, IdentityRules, REVIEW_SOURCE, decode_at, ingest};

/// The derived part of an interaction.
#[derive(Debug, PartialEq)]
pub(super) struct Attribution {
    pub employees: Vec<NodeId>,
    pub organizations: Vec<NodeId>,
    pub engages: bool,
}

impl Attribution {
    /// Writes itself into `interaction`; whether that changed anything.
    pub(super) fn apply_to(self, interaction: &mut Interaction) -> bool {
        let changed = interaction.employees != self.employees
            || interaction.organizations != self.organizations
            || interaction.engages != self.engages;
        interaction.employees = self.employees;
        interaction.organizations = self.organizations;
        interaction.engages = self.engages;
        changed
    }
}

/// What attribution (and the review list) needs of one person cluster: its live members
/// folded.
#[derive(Default)]
pub(super) struct ClusterIdentity {
    /// Some member is one of our employees.
    pub internal: bool,
    /// Every member's addresses.
    pub emails: Vec<String>,
    /// Every member's employments, except where the operator's review decided an
    /// organization's dates (`REVIEW_SOURCE`): then those alone.
    pub jobs: Vec<Job>,
}

impl ClusterIdentity {
    /// Folds the live members of the cluster rooted at `root`.
    pub(super) fn of(txn: &mut Txn<'_>, root: NodeId) -> Result<Self, GraphError> {
        let mut cluster = Self::default();
        let mut seen = HashSet::new();
        let mut reviewed = Vec::new();
        let mut sourced = Vec::new();
        for member in cluster_members(txn, root)? {
            let Some(Node { body: Body::Person(p), deleted_at: None, provenance, .. }) = txn.node(member)? else { continue };
            cluster.internal |= p.internal;
            cluster.emails.extend(p.emails.into_iter().filter(|e| seen.insert(e.clone())));
            if provenance.source == REVIEW_SOURCE { reviewed.extend(p.works_at) } else { sourced.extend(p.works_at) }
        }
        let mut decided = Vec::with_capacity(reviewed.len());
        for job in &reviewed {
            decided.push(txn.root(job.organization)?);
        }
        for job in sourced {
            if !decided.contains(&txn.root(job.organization)?) {
                cluster.jobs.push(job);
            }
        }
        cluster.jobs.extend(reviewed);
        Ok(cluster)
    }

    /// The employments current at `at`.
    pub(super) fn jobs_at(&self, at: Timestamp) -> impl Iterator<Item = &Job> {
        self.jobs.iter().filter(move |job| job.since.is_none_or(|since| since <= at) && job.until.is_none_or(|until| until > at))
    }
}

/// Attributes interactions, reading each person cluster once while identity stays as it is.
pub(super) struct Attributor<'r> {
    rules: &'r IdentityRules,
    clusters: HashMap<NodeId, Rc<ClusterIdentity>>,
}

impl<'r> Attributor<'r> {
    pub(super) fn new(rules: &'r IdentityRules) -> Self {
        Self { rules, clusters: HashMap::new() }
    }

    fn cluster(&mut self, txn: &mut Txn<'_>, person: NodeId) -> Result<Rc<ClusterIdentity>, GraphError> {
        let root = txn.root(person)?;
        if let Some(cluster) = self.clusters.get(&root) {
            return Ok(Rc::clone(cluster));
        }
        let cluster = Rc::new(ClusterIdentity::of(txn, root)?);
        self.clusters.insert(root, Rc::clone(&cluster));
        Ok(cluster)
    }

    /// The attribution of `interaction` as identity stands in `txn`.
    pub(super) fn attribute(&mut self, txn: &mut Txn<'_>, interaction: &Interaction) -> Result<Attribution, GraphError> {
        let rules = self.rules;
        let mut employees = Vec::new();
        let mut organizations: BTreeSet<NodeId> = interaction.filed_under.into_iter().collect();
        let (mut theirs, mut their_people) = (0, 0);
        for (index, &person) in interaction.participants.iter().enumerate() {
            let address = interaction.addresses.get(index).and_then(Option::as_deref);
            let cluster = self.cluster(txn, person)?;
            let role = match address {
                Some(address) => rules.is_role_address(address),
                None => rules.is_role_mailbox(&cluster.emails),
            };
            if cluster.internal || address.is_some_and(|a| rules.is_internal_address(a)) {
                if !role {
                    employees.push(person);
                }
                continue;
            }
            theirs += 1;
            their_people += usize::from(!role);
            if interaction.filed_under.is_none() {
                self.organizations_of(txn, &cluster, address, interaction.occurred_at, &mut organizations)?;
            }
        }
        let engages = !interaction.automated && (theirs == 0 || their_people > 0);
        Ok(Attribution { employees, organizations: organizations.into_iter().collect(), engages })
    }

    /// The organizations a participant on their side speaks for (see the module's rules).
    fn organizations_of(
        &self,
        txn: &Txn<'_>,
        cluster: &ClusterIdentity,
        address: Option<&str>,
        at: Timestamp,
        out: &mut BTreeSet<NodeId>,
    ) -> Result<(), GraphError> {
        if let Some(org) = address.map(|a| domain_holder(txn, self.rules, a)).transpose()?.flatten() {
            out.insert(org);
            return Ok(());
        }
        let before = out.len();
        out.extend(cluster.jobs_at(at).map(|job| job.organization));
        if out.len() > before {
            return Ok(());
        }
        for email in &cluster.emails {
            out.extend(domain_holder(txn, self.rules, email)?);
        }
        Ok(())
    }
}

/// The organization holding the domain of `address`, unless it is a free-mail one.
pub(super) fn domain_holder(txn: &Txn<'_>, rules: &IdentityRules, address: &str) -> Result<Option<NodeId>, GraphError> {
    let Some(domain) = rapport_ops::email_domain(address).filter(|d| rules.identifies_organization(d)) else { return Ok(None) };
    let key = keys::domain(domain);
    txn.get(&key)?.map(|bytes| decode_at(&key, &bytes)).transpose()
}

/// Attributes again the interactions of the identities this batch touched and rewrites
/// those whose attribution changed; returns how many moved.
pub(super) fn refile(txn: &mut Txn<'_>, rules: &IdentityRules) -> Result<usize, GraphError> {
    let touched = txn.take_touched();
    if touched.is_empty() {
        return Ok(0);
    }
    let mut people = BTreeSet::new();
    for touched in touched {
        match touched {
            Touched::Person(person) => {
                people.insert(person);
            }
            Touched::Domain(domain) => {
                for (key, _) in txn.scan_prefix(&keys::address_domain_prefix(&domain))? {
                    people.extend(keys::trailing_id(&key));
                }
            }
        }
    }
    let mut roots = BTreeSet::new();
    for person in people {
        roots.insert(txn.root(person)?);
    }
    let mut interactions = BTreeSet::new();
    for root in roots {
        for member in cluster_members(txn, root)? {
            for (key, _) in txn.scan_prefix(&keys::owned_prefix(ns::PERSON_TIMELINE, member))? {
                interactions.extend(keys::split_timed(&key).map(|(_, id)| id));
            }
        }
    }
    let mut attributor = Attributor::new(rules);
    let mut moved = 0;
    for id in interactions {
        let Some(old) = txn.node(id)? else { continue };
        let Node { body: Body::Interaction(interaction), deleted_at: None, .. } = &old else { continue };
        let attribution = attributor.attribute(txn, interaction)?;
        let mut node = old.clone();
        let Body::Interaction(interaction) = &mut node.body else { continue };
        if attribution.apply_to(interaction) {
            ingest::write_node(txn, rules, node, Some(&old), ChangeOp::Refile, None);
            moved += 1;
        }
    }
    Ok(moved)
}
