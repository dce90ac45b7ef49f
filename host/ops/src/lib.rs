//! Record operations: the one input format shared by every source (API ingest, `import`,
//! and plugin runs).
//!
//! An operation names records by their *external id within the source* that sends it;
//! the graph maps `(source, kind, external id)` to its own nodes. This module only
//! parses and validates; `rapport_graph` applies a [`IngestBatch`] of them.

mod batch;
mod build;
#[cfg(feature = "openapi")]
mod schema;
mod text;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use batch::{IngestBatch, IngestReport, InvalidPolicy, SkippedOperation, SourceTrust};
#[cfg(feature = "openapi")]
pub use schema::{Domain, Email, ExternalId, Label, MergeIdText, Name, NodeIdText, Tag, Text, TimelineCursorText};
pub use text::{
    DOMAIN_PATTERN, EMAIL_PATTERN, LABEL_PATTERN, MAX_DOMAIN_CHARS, MAX_EMAIL_CHARS, MAX_ID_CHARS, MAX_TAG_CHARS, MERGE_ID_PATTERN,
    NAME_PATTERN, NODE_ID_PATTERN, SOURCE_PATTERN, SOURCE_RULE, TAG_PATTERN, TAG_RULE, TEXT_PATTERN, TIMELINE_CURSOR_PATTERN, email_domain,
    excerpt, is_valid_source, is_valid_tag, normalize_domain, normalize_email,
};
use text::{hidden_characters, is_visible, longer_than};

fn is_false(value: &bool) -> bool {
    !*value
}

/// One change from a source, written in JSON as an object with an `op` field naming the
/// variant in snake case (`{"op": "upsert_person", ...}`); read it with [`parse_operation`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Creates or replaces an organization.
    UpsertOrganization(OrganizationRecord),
    /// Creates or replaces a person.
    UpsertPerson(PersonRecord),
    /// Creates or replaces a deal; a changed stage extends its stage history.
    UpsertDeal(DealRecord),
    /// Creates or replaces an interaction (email, meeting, call, message, ticket, note).
    UpsertInteraction(InteractionRecord),
    /// Creates or replaces an observation (free text about an organization or person).
    AddObservation(ObservationRecord),
    /// Soft-deletes a record: it leaves queries but keeps its provenance.
    Delete(DeleteRecord),
    /// Links two records of the source.
    Link(LinkRecord),
}

/// Organization fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrganizationRecord {
    /// Id of the record in the source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub external_id: String,
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(value_type = Name))]
    pub name: String,
    /// Web and email domains (`acme.com`); used to recognise the organization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Domain>, max_items = 1000))]
    pub domains: Vec<String>,
    /// What the organization is to us.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub roles: Vec<Role>,
    /// Where the relationship stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// External id (in the same source) of the employee who owns the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ExternalId>))]
    pub owner: Option<String>,
    /// When the source last saw the record (defaults to the time of ingest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<DateTime<Utc>>,
}

/// Person fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PersonRecord {
    /// Id of the record in the source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub external_id: String,
    /// Display name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Label))]
    pub name: String,
    /// Email addresses; the first is the primary one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Email>, max_items = 1000))]
    pub emails: Vec<String>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Name>, max_items = 1000))]
    pub phones: Vec<String>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Label>))]
    pub title: Option<String>,
    /// Whether the person is one of our employees (a relationship holder).
    #[serde(default, skip_serializing_if = "is_false")]
    pub internal: bool,
    /// Employments, by the organization's external id in the same source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub works_at: Vec<Employment>,
    /// When the source last saw the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<DateTime<Utc>>,
}

/// A person's employment at an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Employment {
    /// External id of the organization in the same source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub organization: String,
    /// Start of the employment, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// End of the employment; absent while current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// Deal fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DealRecord {
    /// Id of the record in the source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub external_id: String,
    /// External id of the organization in the same source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub organization: String,
    /// Display name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Label))]
    pub name: String,
    /// Amount in the currency's major unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub amount: Option<f64>,
    /// ISO 4217 currency code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z]{3}$"))]
    pub currency: Option<String>,
    /// Pipeline name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Label>))]
    pub pipeline: Option<String>,
    /// Current stage.
    #[cfg_attr(feature = "openapi", schema(value_type = Name))]
    pub stage: String,
    /// When the current stage was entered (defaults to the time of ingest when the stage changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_entered_at: Option<DateTime<Utc>>,
    /// Open, won or lost.
    #[serde(default, skip_serializing_if = "DealStatus::is_open")]
    pub status: DealStatus,
    /// When the deal was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// When the source last saw the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<DateTime<Utc>>,
}

/// Interaction fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InteractionRecord {
    /// Id of the record in the source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub external_id: String,
    /// What kind of touch this was.
    pub kind: InteractionKind,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who sent it, seen from our side.
    #[serde(default)]
    pub direction: Direction,
    /// Length of a meeting or call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
    /// Everyone involved, ours and theirs.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub participants: Vec<Participant>,
    /// External id of the organization, when the source knows it; otherwise derived
    /// from the participants' employers and email domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ExternalId>))]
    pub organization: Option<String>,
    /// Conversation thread id in the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Label>))]
    pub thread: Option<String>,
    /// Subject line or title (bodies are not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Label>))]
    pub subject: Option<String>,
    /// For tickets: when it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Sent by a machine rather than a person: mail with `List-Unsubscribe`,
    /// `Precedence: bulk` or `Auto-Submitted`, as the connector read it. It stays on the
    /// timeline and never counts as engagement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automated: bool,
}

/// A participant, by email address or by the person's external id in the same source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// External id of the person in the same source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

/// Observation fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ObservationRecord {
    /// Id of the record in the source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub external_id: String,
    /// What the observation is about.
    pub about: Subject,
    /// Email of the employee who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Email>))]
    pub author_email: Option<String>,
    /// The observation itself.
    #[cfg_attr(feature = "openapi", schema(value_type = Text))]
    pub text: String,
    /// Tags from the taxonomy (decision-style, risk, pain, motive, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Tag>, max_items = 1000))]
    pub tags: Vec<String>,
    /// When it was observed (defaults to the time of ingest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
}

/// A reference to an organization or a person: exactly one field is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// External id of an organization in the same source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// External id of a person in the same source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// A graph node id (`org_…` or `per_…`), for observations written against the graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Soft-deletion of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteRecord {
    /// Kind of the record.
    pub kind: RecordKind,
    /// Id of the record in the source.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub external_id: String,
}

/// A relation between two records of the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkRecord {
    /// Which relation.
    pub relation: Relation,
    /// External id of the person.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub person: String,
    /// External id of the organization.
    #[cfg_attr(feature = "openapi", schema(value_type = ExternalId))]
    pub organization: String,
    /// Start of the relation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// End of the relation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// Relations a [`LinkRecord`] can state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The person works at the organization.
    WorksAt,
    /// The person (an employee) owns the account.
    Owns,
}

/// Kinds of records a source can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// An organization.
    Organization,
    /// A person.
    Person,
    /// A deal.
    Deal,
    /// An interaction.
    Interaction,
    /// An observation.
    Observation,
}

impl RecordKind {
    /// The byte that stands for the kind in keys.
    pub fn tag(self) -> u8 {
        match self {
            Self::Organization => 1,
            Self::Person => 2,
            Self::Deal => 3,
            Self::Interaction => 4,
            Self::Observation => 5,
        }
    }

    /// The kind a key byte stands for.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            1 => Self::Organization,
            2 => Self::Person,
            3 => Self::Deal,
            4 => Self::Interaction,
            5 => Self::Observation,
            _ => return None,
        })
    }

    /// The prefix of this kind's ids in text form.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::Organization => "org",
            Self::Person => "per",
            Self::Deal => "deal",
            Self::Interaction => "int",
            Self::Observation => "obs",
        }
    }

    /// Every kind, in tag order.
    pub const ALL: [Self; 5] = [Self::Organization, Self::Person, Self::Deal, Self::Interaction, Self::Observation];
}

/// What an organization is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Pays us.
    Client,
    /// Might pay us.
    Prospect,
    /// Works with us.
    Partner,
    /// We pay them.
    Supplier,
    /// Ourselves.
    Internal,
}

/// Where a relationship stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Not yet active.
    Prospect,
    /// Active.
    Active,
    /// Was active.
    Former,
}

/// Deal status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    /// Still in the pipeline.
    #[default]
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

impl DealStatus {
    /// Whether the deal is still in the pipeline (the default, left out when written).
    pub fn is_open(&self) -> bool {
        *self == Self::Open
    }
}

/// Kinds of interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InteractionKind {
    /// An email.
    Email,
    /// A meeting.
    Meeting,
    /// A phone or video call.
    Call,
    /// A chat message.
    Message,
    /// A support ticket.
    Ticket,
    /// A note logged in a CRM.
    Note,
}

/// Direction of an interaction, seen from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// They reached out.
    Inbound,
    /// We reached out.
    Outbound,
    /// Both sides, or unknown.
    #[default]
    Internal,
}

/// One problem with one field of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON path of the field, e.g. `operations[3].participants[0].email`.
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl FieldError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// The `op` names, as written in JSON.
const OP_NAMES: &[&str] =
    &["upsert_organization", "upsert_person", "upsert_deal", "upsert_interaction", "add_observation", "delete", "link"];

/// Parses one operation from JSON, reporting the path of the first bad field under `base`.
pub fn parse_operation(json: &str, base: &str) -> Result<Operation, FieldError> {
    let value = serde_json::from_str(json).map_err(|err| FieldError::new(base, format!("malformed JSON: {err}")))?;
    operation_from_value(value, base)
}

/// Parses one operation from an already-parsed JSON value.
///
/// The `op` tag is read first and the rest deserialized into that operation's record, so
/// errors carry the full path of the bad field (serde loses paths inside tagged enums).
pub fn operation_from_value(value: serde_json::Value, base: &str) -> Result<Operation, FieldError> {
    let serde_json::Value::Object(mut fields) = value else {
        return Err(FieldError::new(base, "expected an object with an \"op\" field"));
    };
    let op = match fields.remove("op") {
        Some(serde_json::Value::String(op)) => op,
        _ => return Err(FieldError::new(join_path(base, "op"), format!("expected one of {}", OP_NAMES.join(", ")))),
    };
    let rest = serde_json::Value::Object(fields);
    Ok(match op.as_str() {
        "upsert_organization" => Operation::UpsertOrganization(record(rest, base)?),
        "upsert_person" => Operation::UpsertPerson(record(rest, base)?),
        "upsert_deal" => Operation::UpsertDeal(record(rest, base)?),
        "upsert_interaction" => Operation::UpsertInteraction(record(rest, base)?),
        "add_observation" => Operation::AddObservation(record(rest, base)?),
        "delete" => Operation::Delete(record(rest, base)?),
        "link" => Operation::Link(record(rest, base)?),
        other => {
            return Err(FieldError::new(
                join_path(base, "op"),
                format!("unknown operation `{}`, expected one of {}", excerpt(other, 64), OP_NAMES.join(", ")),
            ));
        }
    })
}

fn record<T: serde::de::DeserializeOwned>(value: serde_json::Value, base: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let inner = err.path().to_string();
        let path = join_path(base, if inner == "." { "" } else { &inner });
        FieldError::new(path, err.into_inner().to_string())
    })
}

fn join_path(base: &str, inner: &str) -> String {
    match (base.is_empty(), inner.is_empty()) {
        (_, true) => base.to_owned(),
        (true, false) => inner.to_owned(),
        (false, false) if inner.starts_with('[') => format!("{base}{inner}"),
        (false, false) => format!("{base}.{inner}"),
    }
}

impl Operation {
    /// The external id the operation is about, for logs and skip reports.
    pub fn external_id(&self) -> &str {
        match self {
            Self::UpsertOrganization(r) => &r.external_id,
            Self::UpsertPerson(r) => &r.external_id,
            Self::UpsertDeal(r) => &r.external_id,
            Self::UpsertInteraction(r) => &r.external_id,
            Self::AddObservation(r) => &r.external_id,
            Self::Delete(r) => &r.external_id,
            Self::Link(r) => &r.person,
        }
    }

    /// Checks each field on its own, within `limits` (what the OpenAPI document can state);
    /// every problem is reported with its path under `base`. Rules across fields or against
    /// the graph (an interval's order, a reference) are checked when the operation is applied.
    pub fn validate(&self, base: &str, limits: &RecordLimits) -> Vec<FieldError> {
        let mut v = Validator { base, limits, errors: Vec::new() };
        match self {
            Self::UpsertOrganization(r) => {
                v.external_id("external_id", &r.external_id);
                v.name("name", &r.name, Required::Yes);
                v.list("domains", &r.domains, |v, path, domain| v.domain(path, domain));
                v.list("roles", &r.roles, |_, _, _| {});
                if let Some(owner) = &r.owner {
                    v.external_id("owner", owner);
                }
            }
            Self::UpsertPerson(r) => {
                v.external_id("external_id", &r.external_id);
                v.name("name", &r.name, Required::No);
                v.list("emails", &r.emails, |v, path, email| v.email(path, email));
                v.list("phones", &r.phones, |v, path, phone| v.name(path, phone, Required::Yes));
                v.optional_name("title", r.title.as_deref());
                v.list("works_at", &r.works_at, |v, path, job| v.external_id(&format!("{path}.organization"), &job.organization));
            }
            Self::UpsertDeal(r) => {
                v.external_id("external_id", &r.external_id);
                v.external_id("organization", &r.organization);
                v.name("name", &r.name, Required::No);
                v.name("stage", &r.stage, Required::Yes);
                v.optional_name("pipeline", r.pipeline.as_deref());
                if let Some(amount) = r.amount
                    && (!amount.is_finite() || amount < 0.0)
                {
                    v.error("amount", "expected a finite, non-negative number");
                }
                if let Some(currency) = &r.currency
                    && (currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()))
                {
                    v.error("currency", "expected an ISO 4217 code such as \"EUR\"");
                }
            }
            Self::UpsertInteraction(r) => {
                v.external_id("external_id", &r.external_id);
                if r.participants.is_empty() {
                    v.error("participants", "expected at least one participant");
                }
                v.list("participants", &r.participants, |v, path, p| match (&p.email, &p.person) {
                    (Some(email), None) => v.email(&format!("{path}.email"), email),
                    (None, Some(person)) => v.external_id(&format!("{path}.person"), person),
                    _ => v.error(path, "expected exactly one of \"email\" or \"person\""),
                });
                if let Some(org) = &r.organization {
                    v.external_id("organization", org);
                }
                v.optional_name("thread", r.thread.as_deref());
                v.optional_name("subject", r.subject.as_deref());
            }
            Self::AddObservation(r) => {
                v.external_id("external_id", &r.external_id);
                v.text("text", &r.text);
                let set = [&r.about.organization, &r.about.person, &r.about.id];
                if set.iter().filter(|f| f.is_some()).count() != 1 {
                    v.error("about", "expected exactly one of \"organization\", \"person\" or \"id\"");
                }
                for (field, id) in
                    [("about.organization", &r.about.organization), ("about.person", &r.about.person), ("about.id", &r.about.id)]
                {
                    if let Some(id) = id {
                        v.external_id(field, id);
                    }
                }
                if let Some(email) = &r.author_email {
                    v.email("author_email", email);
                }
                v.list("tags", &r.tags, |v, path, tag| {
                    if !is_valid_tag(tag) {
                        v.error(path, TAG_RULE);
                    }
                });
            }
            Self::Delete(r) => v.external_id("external_id", &r.external_id),
            Self::Link(r) => {
                v.external_id("person", &r.person);
                v.external_id("organization", &r.organization);
            }
        }
        v.errors
    }
}

/// Limits every record operation must respect, whatever its source (`[records]` in the
/// config): they bound what one operation costs to store, index and read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Items in one list (emails, phones, domains, roles, participants, employments, tags).
    pub max_list_items: usize,
    /// Characters of a name, title, subject, stage, pipeline, thread or phone number.
    pub max_name_chars: usize,
    /// Characters of an observation's text.
    pub max_text_chars: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self { max_list_items: 1000, max_name_chars: 1000, max_text_chars: 50_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Required {
    Yes,
    No,
}

struct Validator<'a> {
    base: &'a str,
    limits: &'a RecordLimits,
    errors: Vec<FieldError>,
}

impl Validator<'_> {
    fn error(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError::new(join_path(self.base, field), message));
    }

    /// Checks the list's length, then each item with `check` (given the item's path).
    fn list<T>(&mut self, field: &str, items: &[T], mut check: impl FnMut(&mut Self, &str, &T)) {
        let max = self.limits.max_list_items;
        if items.len() > max {
            self.error(field, &format!("expected at most {max} items (records.max_list_items), got {}", items.len()));
            return;
        }
        for (i, item) in items.iter().enumerate() {
            check(self, &format!("{field}[{i}]"), item);
        }
    }

    /// A name or another short text shown to people: bounded, no control characters, and
    /// something visible when it is required.
    fn name(&mut self, field: &str, value: &str, required: Required) {
        let max = self.limits.max_name_chars;
        if let Some(length) = longer_than(value, max) {
            self.error(field, &format!("expected at most {max} characters (records.max_name_chars), got {length}"));
        } else if let Some(problem) = hidden_characters(value, false) {
            self.error(field, problem);
        } else if required == Required::Yes && !is_visible(value) {
            self.error(field, "must contain a visible character");
        }
    }

    fn optional_name(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.name(field, value, Required::No);
        }
    }

    /// Free text (an observation): bounded, line breaks and tabs allowed.
    fn text(&mut self, field: &str, value: &str) {
        let max = self.limits.max_text_chars;
        if let Some(length) = longer_than(value, max) {
            self.error(field, &format!("expected at most {max} characters (records.max_text_chars), got {length}"));
        } else if let Some(problem) = hidden_characters(value, true) {
            self.error(field, problem);
        } else if !is_visible(value) {
            self.error(field, "must contain a visible character");
        }
    }

    fn external_id(&mut self, field: &str, value: &str) {
        if value.is_empty() || longer_than(value, MAX_ID_CHARS).is_some() {
            self.error(field, "expected an id of 1 to 256 characters");
        } else if let Some(problem) = hidden_characters(value, false) {
            self.error(field, problem);
        } else if !is_visible(value) {
            self.error(field, "expected an id with a visible character");
        }
    }

    fn email(&mut self, field: &str, value: &str) {
        if longer_than(value, MAX_EMAIL_CHARS).is_some() || normalize_email(value).is_none() {
            self.error(field, "expected an email address such as \"anna@acme.com\" (at most 254 characters)");
        }
    }

    fn domain(&mut self, field: &str, value: &str) {
        if normalize_domain(value).is_none() {
            self.error(field, "expected a domain name such as \"acme.com\"");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_path_of_a_bad_field() {
        let err = parse_operation(
            r#"{"op":"upsert_interaction","external_id":"i1","kind":"fax","occurred_at":"2026-01-01T00:00:00Z","participants":[]}"#,
            "operations[2]",
        )
        .unwrap_err();
        assert_eq!(err.path, "operations[2].kind");
        assert!(err.message.contains("unknown variant"), "{}", err.message);
    }

    #[test]
    fn serializes_to_what_it_parses() {
        let json =
            r#"{"op":"upsert_organization","external_id":"o","name":"A","domains":["a.com"],"roles":["client"],"lifecycle":"active"}"#;
        let op = parse_operation(json, "").unwrap();
        assert_eq!(serde_json::to_string(&op).unwrap(), json);
    }

    #[test]
    fn refuses_unknown_fields() {
        let err = parse_operation(r#"{"op":"upsert_organization","external_id":"o","name":"A","colour":1}"#, "").unwrap_err();
        assert!(err.message.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn validation_lists_every_problem() {
        let op = parse_operation(
            r#"{"op":"upsert_interaction","external_id":"","kind":"email","occurred_at":"2026-01-01T00:00:00Z",
                "participants":[{"email":"not-an-address"},{"email":"a@b.com","person":"p1"}]}"#,
            "",
        )
        .unwrap();
        let paths: Vec<_> = op.validate("operations[0]", &RecordLimits::default()).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["operations[0].external_id", "operations[0].participants[0].email", "operations[0].participants[1]"]);
    }

    fn problems(json: &str, limits: &RecordLimits) -> Vec<String> {
        parse_operation(json, "").unwrap().validate("", limits).into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn lists_and_texts_are_bounded_with_the_limit_named() {
        let limits = RecordLimits { max_list_items: 3, max_name_chars: 10, max_text_chars: 20 };
        let emails: Vec<String> = (0..4).map(|i| format!("\"a{i}@acme.com\"")).collect();
        let person = format!(r#"{{"op":"upsert_person","external_id":"p","name":"Anna Novak X","emails":[{}]}}"#, emails.join(","));
        assert_eq!(
            problems(&person, &limits),
            [
                "name: expected at most 10 characters (records.max_name_chars), got 12",
                "emails: expected at most 3 items (records.max_list_items), got 4",
            ]
        );
        let note =
            r#"{"op":"add_observation","external_id":"o","about":{"organization":"c"},"text":"twenty-one characters","tags":["a","b"]}"#;
        assert_eq!(problems(note, &limits), ["text: expected at most 20 characters (records.max_text_chars), got 21"]);
        assert!(problems(note, &RecordLimits::default()).is_empty());
    }

    #[test]
    fn control_bidi_and_invisible_characters_are_refused_with_the_path() {
        let limits = RecordLimits::default();
        let org = |name: &str, id: &str| {
            let op = serde_json::json!({"op": "upsert_organization", "external_id": id, "name": name});
            problems(&op.to_string(), &limits)
        };
        assert!(org("Acme", "c1").is_empty());
        assert!(org("Acme\u{0}", "c1")[0].starts_with("name: must not contain control characters"));
        assert!(org("Acme \u{202E}emca", "c1")[0].starts_with("name: must not contain bidirectional"));
        assert_eq!(org("\u{200B}\u{FEFF} ", "c1"), ["name: must contain a visible character"]);
        assert_eq!(org("Acme", "\u{200B}"), ["external_id: expected an id with a visible character"]);
        assert!(org("Acme", "c\u{0}1")[0].starts_with("external_id: must not contain control characters"));
        let note = serde_json::json!({"op": "add_observation", "external_id": "o", "about": {"organization": "c"},
            "text": "line one\nline two\tend"});
        assert!(problems(&note.to_string(), &limits).is_empty(), "line breaks and tabs are fine in free text");
    }

    #[test]
    fn excerpts_cut_long_echoes() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt(&"é".repeat(100), 3), "ééé… (200 bytes)");
    }

    #[test]
    fn normalizes_addresses_and_domains() {
        assert_eq!(normalize_email(" Anna@ACME.com ").as_deref(), Some("anna@acme.com"));
        assert_eq!(normalize_email("anna@localhost"), None);
        assert_eq!(normalize_domain("WWW.Acme.COM.").as_deref(), Some("acme.com"));
        assert_eq!(normalize_domain("acme/com"), None);
        assert_eq!(normalize_domain("www.com").as_deref(), Some("www.com"));
    }
}
