//! The review list, judged: pairs of records that may be one (found by name when written,
//! `identity::flag_duplicates`, or set aside by trust) are scored when the list is read,
//! from the graph as it stands — each with its case, its reasons and a score — and a person
//! accepts (merges) or rejects (pins apart) them. Nothing here merges on its own.
//!
//! Scores (the list hides those under [`DEFAULT_MIN_SCORE`] unless asked):
//!
//! | case | score |
//! |------|-------|
//! | a shared address or domain a source was not trusted to join on | 0.95 |
//! | one surname, given names alike, at one organization | 0.9 same, 0.85 nickname, 0.8 prefix, 0.75 initial |
//! | a personal address with a known person's full name, in interactions with their organization | 0.8 |
//! | one full name at two organizations, the old one's activity ending as the new one's begins | 0.75 (gap ≤ 90 days), 0.6 (≤ 180) |
//! | two organizations of one name | 0.6 |
//! | alike names and nothing else | 0.3 same full name, 0.2 otherwise |

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::attribution::{ClusterIdentity, domain_holder};
use super::identity::{
    self, IdentityError, SAME_ORGANIZATION_NAME, SIMILAR_NAMES, check_separate_pair, cluster_members, merge_clusters, pinned_apart,
};
use super::ingest;
use super::keys::{self, ns};
use super::model::{Body, ChangeOp, DuplicateCandidate, Job, MergeRecord, Node, NodeId, Person, Provenance, RecordKind, Timestamp};
use super::names::{Likeness, PersonName, given_names_alike};
use super::query::{organization_view, person_view};
use super::txn::Txn;
use super::{Graph, GraphError, IdentityRules, REVIEW_SOURCE, decode_at};
use rapport_store::KeyRange;
use rapport_store::codec::encode;

/// The score under which the review list leaves a pair out unless asked.
pub const DEFAULT_MIN_SCORE: f64 = 0.5;

/// How far apart the old employer's last activity and the new one's first may be for a job
/// change, and how much they may overlap.
const JOB_CHANGE_GAP_DAYS: i64 = 180;
const JOB_CHANGE_OVERLAP_DAYS: i64 = 30;

/// Why two records may be one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionCase {
    /// They share an address or a domain; their source was not trusted to join them.
    SharedKey,
    /// One surname and given names alike, at one organization.
    SameOrganization,
    /// A personal (free-mail) address under a known person's full name, in interactions
    /// with that person's organization.
    PersonalAddress,
    /// One full name at two organizations, the old one's activity ending as the new one's
    /// begins.
    JobChange,
    /// Two organizations of one name.
    OrganizationName,
    /// Alike names and nothing else: below the threshold.
    NamesOnly,
}

/// The job change a suggestion found: accepting it merges the people and ends the old
/// employment where the new one starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobChange {
    /// The person at the old organization (a cluster id).
    pub person: NodeId,
    /// The old organization.
    pub from: NodeId,
    /// The new organization.
    pub to: NodeId,
    /// When the new employment starts and the old one ends.
    pub at: Timestamp,
}

/// Two records that may be one, as the graph stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suggestion {
    /// One record (its cluster's id).
    pub a: NodeId,
    /// The other.
    pub b: NodeId,
    /// Why they may be one.
    pub case: SuggestionCase,
    /// How likely, from 0 to 1 (see the documentation for the table).
    pub score: f64,
    /// What was compared, in words.
    pub reasons: Vec<String>,
    /// For a job change: what accepting it records.
    pub job_change: Option<JobChange>,
    /// When the pair was first noticed.
    pub found_at: Timestamp,
}

/// The person clusters folded so far in one reading of the list, by root.
type Profiles = HashMap<NodeId, Option<Rc<Profile>>>;

/// What the review list compares of a person cluster.
struct Profile {
    root: NodeId,
    name: String,
    identity: ClusterIdentity,
    /// Organization clusters it belongs to: by employment at any time, or by address.
    organizations: BTreeSet<NodeId>,
    /// Its first and last interaction.
    activity: Option<(Timestamp, Timestamp)>,
}

impl Profile {
    fn personal_only(&self, rules: &IdentityRules) -> bool {
        self.identity.jobs.is_empty()
            && !self.identity.emails.is_empty()
            && self.identity.emails.iter().all(|e| rapport_ops::email_domain(e).is_some_and(|d| !rules.identifies_organization(d)))
    }
}

impl Graph {
    /// The review list: likely duplicates still awaiting a decision, scored from the graph
    /// as it stands, best first; those scoring under `min_score` are left out.
    pub fn duplicates(&self, min_score: f64, limit: usize) -> Result<Vec<Suggestion>, GraphError> {
        let mut r = Txn::new(&*self.store);
        let mut seen = HashSet::new();
        // A person is on many pairs (namesakes): fold each cluster once per reading.
        let mut profiles = HashMap::new();
        let mut out = Vec::new();
        for entry in self.store.scan_prefix(&[ns::REVIEW]) {
            let (key, value) = entry?;
            let candidate: DuplicateCandidate = decode_at(&key, &value)?;
            let (ra, rb) = (r.root(candidate.a)?, r.root(candidate.b)?);
            if ra == rb || !seen.insert((ra.min(rb), ra.max(rb))) || pinned_apart(&r, ra, rb)? {
                continue;
            }
            if let Some(suggestion) = self.judge(&mut r, &mut profiles, &candidate)?
                && suggestion.score >= min_score
            {
                out.push(suggestion);
            }
        }
        out.sort_by(|x, y| y.score.total_cmp(&x.score).then_with(|| (x.a, x.b).cmp(&(y.a, y.b))));
        out.truncate(limit);
        Ok(out)
    }

    /// Judges two records as the review list would, whether or not they are on it; `None`
    /// when nothing about them suggests they are one.
    pub fn suggestion(&self, a: NodeId, b: NodeId) -> Result<Option<Suggestion>, GraphError> {
        let mut r = Txn::new(&*self.store);
        let reason = if a.kind == RecordKind::Organization { SAME_ORGANIZATION_NAME } else { SIMILAR_NAMES };
        let candidate = DuplicateCandidate { a, b, reason: reason.to_owned(), found_at: Timestamp::now() };
        self.judge(&mut r, &mut HashMap::new(), &candidate)
    }

    /// Accepts a suggestion: merges the two records' clusters and, for a job change, records
    /// the old employment's end and the new one's start as the operator's
    /// (`REVIEW_SOURCE`), so attribution follows them.
    pub fn accept_duplicate(&self, a: NodeId, b: NodeId, now: Timestamp) -> Result<MergeRecord, IdentityError> {
        let suggestion = self.suggestion(a, b)?;
        self.write(|txn| {
            check_separate_pair(txn, a, b)?;
            let reasons = suggestion.as_ref().map_or_else(|| "merged by hand".to_owned(), |s| s.reasons.join("; "));
            let record = merge_clusters(txn, a, b, format!("accepted: {reasons}"), now)?.ok_or(IdentityError::Pinned(a, b))?;
            txn.delete(keys::review(a, b));
            if let Some(change) = suggestion.and_then(|s| s.job_change) {
                self.record_job_change(txn, &record, &change, now)?;
            }
            Ok(record)
        })
    }

    /// Rejects a suggestion: the two records are pinned apart for good.
    pub fn reject_duplicate(&self, a: NodeId, b: NodeId) -> Result<(), IdentityError> {
        self.pin_apart(a, b)
    }

    fn record_job_change(&self, txn: &mut Txn<'_>, merge: &MergeRecord, change: &JobChange, now: Timestamp) -> Result<(), GraphError> {
        let external_id = format!("job-change:{}", merge.id);
        let works_at = vec![
            Job { organization: change.from, since: None, until: Some(change.at) },
            Job { organization: change.to, since: Some(change.at), until: None },
        ];
        let node = Node {
            id: NodeId::generate(RecordKind::Person),
            provenance: Provenance { source: REVIEW_SOURCE.to_owned(), external_id: external_id.clone(), seen_at: now },
            created_at: now,
            updated_at: now,
            deleted_at: None,
            placeholder: false,
            body: Body::Person(Person { works_at, ..Person::default() }),
        };
        let id = node.id;
        txn.put(keys::source_ref(REVIEW_SOURCE, RecordKind::Person, &external_id), encode(&id));
        ingest::write_node(txn, &self.rules, node, None, ChangeOp::Upsert, None);
        merge_clusters(txn, merge.winner, id, format!("the job change accepted in {}", merge.id), now)?;
        Ok(())
    }

    fn judge(&self, r: &mut Txn<'_>, profiles: &mut Profiles, candidate: &DuplicateCandidate) -> Result<Option<Suggestion>, GraphError> {
        let (a, b) = (r.root(candidate.a)?, r.root(candidate.b)?);
        let suggest = |case, score, reasons: Vec<String>, job_change| Suggestion {
            a,
            b,
            case,
            score,
            reasons,
            job_change,
            found_at: candidate.found_at,
        };
        if candidate.reason != SIMILAR_NAMES && candidate.reason != SAME_ORGANIZATION_NAME {
            return Ok(Some(suggest(SuggestionCase::SharedKey, 0.95, vec![candidate.reason.clone()], None)));
        }
        if a.kind == RecordKind::Organization {
            let (x, y) = (organization_view(r, &self.rules, a), organization_view(r, &self.rules, b));
            let (Ok(x), Ok(y)) = (x, y) else { return Ok(None) };
            if identity::normalized_name(&x.name) != identity::normalized_name(&y.name) {
                return Ok(None);
            }
            return Ok(Some(suggest(SuggestionCase::OrganizationName, 0.6, vec![format!("both named {}", x.name)], None)));
        }
        let (Some(x), Some(y)) = (self.cached_profile(r, profiles, a)?, self.cached_profile(r, profiles, b)?) else { return Ok(None) };
        let (Some(nx), Some(ny)) = (PersonName::split(&x.name), PersonName::split(&y.name)) else { return Ok(None) };
        let Some(likeness) = given_names_alike(&nx.given, &ny.given).filter(|_| nx.surname == ny.surname) else { return Ok(None) };
        let names = if likeness == Likeness::Same {
            format!("the same name, {}", x.name)
        } else {
            let (first, second) = if x.name <= y.name { (&x.name, &y.name) } else { (&y.name, &x.name) };
            format!("the same surname and {} ({first} ~ {second})", likeness.describe())
        };
        if let Some(&shared) = x.organizations.intersection(&y.organizations).next() {
            let org = organization_view(r, &self.rules, shared).map(|o| o.name).unwrap_or_default();
            let score = match likeness {
                Likeness::Same => 0.9,
                Likeness::Nickname => 0.85,
                Likeness::Prefix => 0.8,
                Likeness::Initial => 0.75,
            };
            return Ok(Some(suggest(SuggestionCase::SameOrganization, score, vec![names, format!("both at {org}")], None)));
        }
        if likeness != Likeness::Same {
            return Ok(Some(suggest(SuggestionCase::NamesOnly, 0.2, vec![names], None)));
        }
        for (personal, known) in [(&x, &y), (&y, &x)] {
            if let Some(&first) = known.organizations.first()
                && personal.personal_only(&self.rules)
            {
                let together = self.interactions_with(r, personal.root, &known.organizations)?;
                if together > 0 {
                    let address = personal.identity.emails.join(", ");
                    let org = organization_view(r, &self.rules, first).map(|o| o.name).unwrap_or_default();
                    let reasons = vec![names, format!("a personal address ({address}) in {together} interactions with {org}")];
                    return Ok(Some(suggest(SuggestionCase::PersonalAddress, 0.8, reasons, None)));
                }
            }
        }
        for (old, new) in [(&x, &y), (&y, &x)] {
            if let Some(change) = Self::job_change(old, new) {
                let gap = change.1;
                let (from, to) =
                    (organization_view(r, &self.rules, change.0.from)?.name, organization_view(r, &self.rules, change.0.to)?.name);
                let when = change.0.at.to_datetime().format("%Y-%m-%d");
                let reasons = vec![names, format!("at {from} until {when}, at {to} from then ({gap} days apart): likely a job change")];
                let score = if gap <= 90 { 0.75 } else { 0.6 };
                return Ok(Some(suggest(SuggestionCase::JobChange, score, reasons, Some(change.0))));
            }
        }
        Ok(Some(suggest(SuggestionCase::NamesOnly, 0.3, vec![names], None)))
    }

    /// Whether `old`'s activity at one organization ends as `new`'s at another begins; the
    /// change and the days between the two.
    fn job_change(old: &Profile, new: &Profile) -> Option<(JobChange, i64)> {
        let (Some((_, old_last)), Some((new_first, new_last))) = (old.activity, new.activity) else { return None };
        if old.organizations.len() != 1 || new.organizations.len() != 1 {
            return None;
        }
        let (from, to) = (old.organizations.first()?, new.organizations.first()?);
        let gap = old_last.days_until(new_first);
        if from == to || new_last <= old_last || !(-JOB_CHANGE_OVERLAP_DAYS..=JOB_CHANGE_GAP_DAYS).contains(&gap) {
            return None;
        }
        // The old employment ends just after its last interaction, or where the new one's begin.
        let at = new_first.max(Timestamp(old_last.0 + 1));
        Some((JobChange { person: old.root, from: *from, to: *to, at }, gap.max(0)))
    }

    /// How many of `person`'s interactions are filed under one of `organizations`.
    fn interactions_with(&self, r: &mut Txn<'_>, person: NodeId, organizations: &BTreeSet<NodeId>) -> Result<usize, GraphError> {
        let mut together = 0;
        for member in cluster_members(r, person)? {
            for (key, _) in r.scan_prefix(&keys::owned_prefix(ns::PERSON_TIMELINE, member))? {
                let Some((_, id)) = keys::split_timed(&key) else { continue };
                if let Some(Node { body: Body::Interaction(i), deleted_at: None, .. }) = r.node(id)? {
                    for org in i.organizations {
                        if organizations.contains(&r.root(org)?) {
                            together += 1;
                            break;
                        }
                    }
                }
            }
        }
        Ok(together)
    }

    fn cached_profile(&self, r: &mut Txn<'_>, profiles: &mut Profiles, root: NodeId) -> Result<Option<Rc<Profile>>, GraphError> {
        if let Some(profile) = profiles.get(&root) {
            return Ok(profile.clone());
        }
        let profile = self.profile(r, root)?.map(Rc::new);
        profiles.insert(root, profile.clone());
        Ok(profile)
    }

    fn profile(&self, r: &mut Txn<'_>, root: NodeId) -> Result<Option<Profile>, GraphError> {
        let Ok(view) = person_view(r, &self.rules, root) else { return Ok(None) };
        let identity = ClusterIdentity::of(r, root)?;
        let mut organizations = BTreeSet::new();
        for job in &identity.jobs {
            organizations.insert(r.root(job.organization)?);
        }
        for email in &identity.emails {
            if let Some(org) = domain_holder(r, &self.rules, email)? {
                organizations.insert(r.root(org)?);
            }
        }
        let mut activity: Option<(Timestamp, Timestamp)> = None;
        for member in cluster_members(r, root)? {
            let prefix = keys::owned_prefix(ns::PERSON_TIMELINE, member);
            let ends = [false, true].map(|reverse| self.store.range(KeyRange::prefix(&prefix), reverse).next());
            for end in ends.into_iter().flatten() {
                let Some((at, _)) = keys::split_timed(&end?.0) else { continue };
                activity = Some(activity.map_or((at, at), |(first, last)| (first.min(at), last.max(at))));
            }
        }
        Ok(Some(Profile { root, name: view.name, identity, organizations, activity }))
    }
}
