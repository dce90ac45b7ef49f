//! What the graph stores: nodes, their provenance, and the values kept in indexes.
//!
//! These types are the storage schema (encoded by `codec`) and, being plain data, also
//! the API's JSON shapes: ids print as `org_…`, times as RFC 3339.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use rapport_core::id::MergeId;
use rapport_core::id::parse_ulid;
pub use rapport_ops::{DealStatus, Direction, InteractionKind, Lifecycle, RecordKind, Role};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// This time shifted by `days` (negative for the past).
    pub fn plus_days(self, days: i64) -> Self {
        Self(self.0 + days * 86_400_000)
    }

    /// Whole days from `self` to `later`.
    pub fn days_until(self, later: Self) -> i64 {
        (later.0 - self.0).div_euclid(86_400_000)
    }

    /// As a chrono time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0).single().unwrap_or_default()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Self(value.timestamp_millis())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.to_datetime().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).serialize(s)
        } else {
            self.0.serialize(s)
        }
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 time, UTC"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() { DateTime::<Utc>::deserialize(d).map(Self::from) } else { i64::deserialize(d).map(Self) }
    }
}

/// A node's stable id: its kind and a ULID. Printed as `org_01J…`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Kind of the node.
    pub kind: RecordKind,
    /// Unique, time-ordered part.
    pub ulid: u128,
}

/// Byte length of a node id inside keys.
pub const NODE_ID_LEN: usize = 17;

impl NodeId {
    /// A fresh id of `kind`.
    pub fn generate(kind: RecordKind) -> Self {
        Self { kind, ulid: ulid::Ulid::new().0 }
    }

    /// The id's bytes as used in keys: kind tag, then the ULID big-endian.
    pub fn to_bytes(self) -> [u8; NODE_ID_LEN] {
        let mut out = [0; NODE_ID_LEN];
        out[0] = self.kind.tag();
        out[1..].copy_from_slice(&self.ulid.to_be_bytes());
        out
    }

    /// Reads an id from the start of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let kind = RecordKind::from_tag(*bytes.first()?)?;
        let ulid = u128::from_be_bytes(bytes.get(1..NODE_ID_LEN)?.try_into().ok()?);
        Some(Self { kind, ulid })
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.kind.id_prefix(), ulid::Ulid(self.ulid))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A text id that does not name a node.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a node id (expected e.g. org_01J9Z3K4X7Q8R2M5N6P7T8V9W0)")]
pub struct BadNodeId(pub String);

impl FromStr for NodeId {
    type Err = BadNodeId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The text is echoed to clients: a long one is cut.
        let bad = || BadNodeId(rapport_ops::excerpt(s, 64).into_owned());
        let (prefix, rest) = s.split_once('_').ok_or_else(bad)?;
        let kind = RecordKind::ALL.into_iter().find(|k| k.id_prefix() == prefix).ok_or_else(bad)?;
        Ok(Self { kind, ulid: parse_ulid(rest).ok_or_else(bad)? })
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { (self.kind.tag(), self.ulid).serialize(s) }
    }
}

impl utoipa::PartialSchema for NodeId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(rapport_ops::NODE_ID_PATTERN))
            .description(Some("Node id: kind prefix and ULID"))
            .examples(["org_01J9Z3K4X7Q8R2M5N6P7T8V9W0"])
            .into()
    }
}

impl utoipa::ToSchema for NodeId {}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(D::Error::custom)
        } else {
            let (tag, ulid) = <(u8, u128)>::deserialize(d)?;
            let kind = RecordKind::from_tag(tag).ok_or_else(|| D::Error::custom("unknown node kind"))?;
            Ok(Self { kind, ulid })
        }
    }
}

/// Where a node's data came from: one record of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Provenance {
    /// The connection (plugin instance or named import) that sent the record.
    pub source: String,
    /// The record's id in that source.
    pub external_id: String,
    /// When the source last saw the record.
    pub seen_at: Timestamp,
}

/// One node: the data of one source record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Stable id.
    pub id: NodeId,
    /// The source record behind it.
    pub provenance: Provenance,
    /// First ingest.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Set when the source deleted the record; the node stays for its provenance.
    pub deleted_at: Option<Timestamp>,
    /// Whether the node exists only because another record referred to it.
    pub placeholder: bool,
    /// Kind-specific data.
    pub body: Body,
}

/// Kind-specific node data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// An organization.
    Organization(Organization),
    /// A person.
    Person(Person),
    /// A deal.
    Deal(Deal),
    /// An interaction.
    Interaction(Interaction),
    /// An observation.
    Observation(Observation),
}

/// An organization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// Display name.
    pub name: String,
    /// Normalized domains.
    pub domains: Vec<String>,
    /// Roles.
    pub roles: Vec<Role>,
    /// Lifecycle.
    pub lifecycle: Option<Lifecycle>,
    /// Account owner (an employee).
    pub owner: Option<NodeId>,
}

/// A person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Display name.
    pub name: String,
    /// Normalized email addresses.
    pub emails: Vec<String>,
    /// Phone numbers.
    pub phones: Vec<String>,
    /// Job title.
    pub title: Option<String>,
    /// One of our employees.
    pub internal: bool,
    /// Employments.
    pub works_at: Vec<Job>,
}

/// A person's employment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The organization.
    pub organization: NodeId,
    /// Start.
    pub since: Option<Timestamp>,
    /// End; absent while current.
    pub until: Option<Timestamp>,
}

impl Person {
    /// The organizations the person works at, at `at`.
    pub fn current_employers(&self, at: Timestamp) -> impl Iterator<Item = NodeId> + '_ {
        self.works_at.iter().filter(move |job| job.until.is_none_or(|until| until > at)).map(|job| job.organization)
    }
}

/// A deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    /// The organization.
    pub organization: NodeId,
    /// Display name.
    pub name: String,
    /// Amount in the currency's major unit.
    pub amount: Option<f64>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// Pipeline.
    pub pipeline: Option<String>,
    /// Current stage.
    pub stage: String,
    /// Every stage the deal entered, oldest first; the last is the current one.
    pub stage_history: Vec<StageEntry>,
    /// Open, won, lost.
    pub status: DealStatus,
    /// When closed.
    pub closed_at: Option<Timestamp>,
}

/// A deal entering a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageEntry {
    /// The stage.
    pub stage: String,
    /// When it was entered.
    pub entered_at: Timestamp,
}

/// An interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// What kind.
    pub kind: InteractionKind,
    /// When.
    pub occurred_at: Timestamp,
    /// Who started it.
    pub direction: Direction,
    /// Length of a meeting or call.
    pub duration_secs: Option<u32>,
    /// People involved.
    pub participants: Vec<NodeId>,
    /// The address each participant took part with, in `participants` order (`None`: the
    /// source named the person, not an address): it says which employer a message was for.
    pub addresses: Vec<Option<String>>,
    /// The organization the source filed it under, if it did.
    pub filed_under: Option<NodeId>,
    /// Sent by a machine (a mailing list, bulk or auto-submitted mail), as its source said.
    pub automated: bool,
    /// The participants who are our employees, as identity stands (kept current by
    /// re-attribution).
    pub employees: Vec<NodeId>,
    /// Organizations involved: `filed_under`, or derived from the participants as identity
    /// stands (kept current by re-attribution).
    pub organizations: Vec<NodeId>,
    /// Whether it counts as engagement: not automated, and with a participant on their
    /// side who is a person rather than a role address.
    pub engages: bool,
    /// Thread id in the source.
    pub thread: Option<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// For tickets: when resolved.
    pub resolved_at: Option<Timestamp>,
}

/// An observation: what an employee noticed about an organization or person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// What it is about.
    pub about: NodeId,
    /// Who wrote it.
    pub author: Option<NodeId>,
    /// The text.
    pub text: String,
    /// Tags.
    pub tags: Vec<String>,
    /// When observed.
    pub observed_at: Timestamp,
}

/// The value of a timeline index entry: enough to rank relationship holders without
/// reading the interaction itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Our employees who took part.
    pub employees: Vec<NodeId>,
    /// Whether it counts as engagement (see [`Interaction::engages`]).
    pub engages: bool,
}

/// What happened to a record, as the change feed says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// Written (created, changed, or filled in after a placeholder).
    Upsert,
    /// Deleted by its source.
    Delete,
    /// Linked to another record (a person's employer, an organization's owner).
    Link,
    /// Its cluster joined another (the record is the cluster root that joined).
    Merge,
    /// A merge of its cluster was undone.
    Unmerge,
    /// An interaction re-filed: identity changed which organizations or employees it
    /// counts for (its clusters name the organizations before and after).
    Refile,
}

/// One entry of the change feed: a record changed, written in the batch that changed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    /// Its place in the feed: increasing with every change, never reused.
    pub seq: u64,
    /// The record.
    pub node: NodeId,
    /// Its kind.
    pub kind: RecordKind,
    /// What happened.
    pub op: ChangeOp,
    /// The clusters whose view changed, by root as the batch left them: the record's own,
    /// and for a link the other record's; a merge lists the joined root too, an unmerge both.
    pub clusters: Vec<NodeId>,
    /// The record's own time: when an interaction happened, an observation was made, else
    /// when its source last saw it.
    pub at: Timestamp,
    /// When the batch was written.
    pub written_at: Timestamp,
}

/// One identity merge: `loser`'s cluster joined `winner`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergeRecord {
    /// Id of the merge (a ULID, printed as `mrg_…` in JSON).
    #[schema(value_type = String, example = "mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0")]
    pub id: MergeId,
    /// Kind of the merged nodes.
    pub kind: RecordKind,
    /// The cluster root that stayed.
    pub winner: NodeId,
    /// The cluster root that joined it.
    pub loser: NodeId,
    /// Why, e.g. "shared email anna@acme.com".
    pub reason: String,
    /// When.
    pub merged_at: Timestamp,
    /// When it was undone, if it was.
    pub undone_at: Option<Timestamp>,
}

/// Two records that may be one, as written to the review list (judged when read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicateCandidate {
    /// One record.
    pub a: NodeId,
    /// The other.
    pub b: NodeId,
    /// Why they look alike, e.g. "same name at the same organization".
    pub reason: String,
    /// When the likeness was noticed.
    pub found_at: Timestamp,
}

/// The value of an alias key: `node` is merged into `parent` by merge `merge_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasLink {
    /// The cluster it joined.
    pub parent: NodeId,
    /// The merge that did it.
    pub merge_id: MergeId,
}
