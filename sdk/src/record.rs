//! Typed builders for record operations: what a connector emits. Each builder starts from
//! the required fields and adds the optional ones by method; [`crate::emit`] takes them as
//! [`Operation`]s. External ids are the records' ids in the source; references between
//! records (a person's employer, a deal's organization) use the same ids.
//!
//! ```ignore
//! use rapport_sdk::record::{Organization, Person, Role};
//!
//! rapport_sdk::emit([
//!     Organization::new("c-17", "Acme").domain("acme.com").role(Role::Client).into(),
//!     Person::new("p-4", "Ada Lovelace").email("ada@acme.com").works_at("c-17").into(),
//! ]);
//! ```

use serde::Serialize;

use crate::time::Timestamp;

fn is_false(value: &bool) -> bool {
    !*value
}

/// Builder methods for optional fields: `text name;` takes anything that becomes a
/// `String`, `value name: Type;` takes the value itself.
macro_rules! setters {
    () => {};
    ($(#[$doc:meta])* text $field:ident; $($rest:tt)*) => {
        $(#[$doc])*
        #[must_use]
        pub fn $field(mut self, value: impl Into<String>) -> Self {
            self.$field = Some(value.into());
            self
        }
        setters!($($rest)*);
    };
    ($(#[$doc:meta])* value $field:ident: $type:ty; $($rest:tt)*) => {
        $(#[$doc])*
        #[must_use]
        pub fn $field(mut self, value: $type) -> Self {
            self.$field = Some(value);
            self
        }
        setters!($($rest)*);
    };
}

/// One change to emit; built from the records below with `.into()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Creates or replaces an organization.
    UpsertOrganization(Organization),
    /// Creates or replaces a person.
    UpsertPerson(Person),
    /// Creates or replaces a deal.
    UpsertDeal(Deal),
    /// Creates or replaces an interaction.
    UpsertInteraction(Interaction),
    /// Creates or replaces an observation.
    AddObservation(Observation),
    /// Soft-deletes a record.
    Delete(Delete),
    /// Links a person to an organization.
    Link(Link),
}

impl Operation {
    /// The operation as the JSON document the host reads.
    pub fn to_json(&self) -> String {
        // Every field is a string, number, bool or list of them: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

macro_rules! into_operation {
    ($($record:ident => $variant:ident),+ $(,)?) => {
        $(impl From<$record> for Operation {
            fn from(record: $record) -> Self {
                Self::$variant(record)
            }
        })+
    };
}

into_operation!(
    Organization => UpsertOrganization,
    Person => UpsertPerson,
    Deal => UpsertDeal,
    Interaction => UpsertInteraction,
    Observation => AddObservation,
    Delete => Delete,
    Link => Link,
);

/// What an organization is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Not yet active.
    Prospect,
    /// Active.
    Active,
    /// Was active.
    Former,
}

/// An organization (a client, partner, supplier).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organization {
    external_id: String,
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    domains: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle: Option<Lifecycle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_at: Option<Timestamp>,
}

impl Organization {
    /// An organization with its id in the source and its display name.
    pub fn new(external_id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            external_id: external_id.into(),
            name: name.into(),
            domains: Vec::new(),
            roles: Vec::new(),
            lifecycle: None,
            owner: None,
            seen_at: None,
        }
    }

    /// Adds a web or email domain (`acme.com`); domains identify the organization across
    /// sources.
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domains.push(domain.into());
        self
    }

    /// Adds a role.
    #[must_use]
    pub fn role(mut self, role: Role) -> Self {
        self.roles.push(role);
        self
    }

    setters! {
        /// Where the relationship stands.
        value lifecycle: Lifecycle;

        /// The employee (a [`Person`] of this source, by external id) who owns the account.
        text owner;

        /// When the source last saw the record.
        value seen_at: Timestamp;
    }
}

/// A person's employment at an organization.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Employment {
    organization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<Timestamp>,
}

/// A person: a contact at a client, or one of our employees ([`Person::internal`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    external_id: String,
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    emails: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    phones: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    internal: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    works_at: Vec<Employment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_at: Option<Timestamp>,
}

impl Person {
    /// A person with their id in the source and display name (may be empty).
    pub fn new(external_id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            external_id: external_id.into(),
            name: name.into(),
            emails: Vec::new(),
            phones: Vec::new(),
            title: None,
            internal: false,
            works_at: Vec::new(),
            seen_at: None,
        }
    }

    /// Adds an email address (the first is the primary one); emails identify people across
    /// sources.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.emails.push(email.into());
        self
    }

    /// Adds a phone number.
    #[must_use]
    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phones.push(phone.into());
        self
    }

    setters! {
        /// The job title.
        text title;
    }

    /// Marks the person as one of our employees (a relationship holder).
    #[must_use]
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self
    }

    /// A current employment at an organization of this source, by external id.
    #[must_use]
    pub fn works_at(self, organization: impl Into<String>) -> Self {
        self.employment(organization, None, None)
    }

    /// An employment with its known start and end.
    #[must_use]
    pub fn employment(mut self, organization: impl Into<String>, since: Option<Timestamp>, until: Option<Timestamp>) -> Self {
        self.works_at.push(Employment { organization: organization.into(), since, until });
        self
    }

    setters! {
        /// When the source last saw the record.
        value seen_at: Timestamp;
    }
}

/// Deal status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    /// Still in the pipeline.
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

/// A deal with an organization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deal {
    external_id: String,
    organization: String,
    name: String,
    stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage_entered_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<DealStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_at: Option<Timestamp>,
}

impl Deal {
    /// A deal with its id, its organization's id (both in the source), name and current stage.
    pub fn new(external_id: impl Into<String>, organization: impl Into<String>, name: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            external_id: external_id.into(),
            organization: organization.into(),
            name: name.into(),
            stage: stage.into(),
            amount: None,
            currency: None,
            pipeline: None,
            stage_entered_at: None,
            status: None,
            closed_at: None,
            seen_at: None,
        }
    }

    /// The amount in the currency's major unit, with its ISO 4217 code.
    #[must_use]
    pub fn amount(mut self, amount: f64, currency: impl Into<String>) -> Self {
        self.amount = Some(amount);
        self.currency = Some(currency.into());
        self
    }

    setters! {
        /// The pipeline.
        text pipeline;

        /// When the current stage was entered.
        value stage_entered_at: Timestamp;

        /// Open (the default), won or lost.
        value status: DealStatus;

        /// When it was closed.
        value closed_at: Timestamp;

        /// When the source last saw the record.
        value seen_at: Timestamp;
    }
}

/// Kinds of interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Who reached out, seen from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// They did.
    Inbound,
    /// We did.
    Outbound,
    /// Both sides, or unknown (the default).
    Internal,
}

/// A participant: by email address, or by a person's external id in the source.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Participant {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    person: Option<String>,
}

/// An email, meeting, call, message, ticket or note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interaction {
    external_id: String,
    kind: InteractionKind,
    occurred_at: Timestamp,
    participants: Vec<Participant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<Timestamp>,
}

impl Interaction {
    /// An interaction with its id in the source, kind and time; add at least one participant.
    pub fn new(external_id: impl Into<String>, kind: InteractionKind, occurred_at: Timestamp) -> Self {
        Self {
            external_id: external_id.into(),
            kind,
            occurred_at,
            participants: Vec::new(),
            direction: None,
            duration_secs: None,
            organization: None,
            thread: None,
            subject: None,
            resolved_at: None,
        }
    }

    /// A participant by email address.
    #[must_use]
    pub fn participant_email(mut self, email: impl Into<String>) -> Self {
        self.participants.push(Participant { email: Some(email.into()), person: None });
        self
    }

    /// A participant by a person's external id in the source.
    #[must_use]
    pub fn participant(mut self, person: impl Into<String>) -> Self {
        self.participants.push(Participant { email: None, person: Some(person.into()) });
        self
    }

    setters! {
        /// Who reached out.
        value direction: Direction;

        /// The length of a meeting or call.
        value duration_secs: u32;

        /// The organization, when the source knows it (otherwise derived from participants).
        text organization;

        /// The conversation thread's id in the source.
        text thread;

        /// The subject line or title (bodies are never stored).
        text subject;

        /// For tickets: when it was resolved.
        value resolved_at: Timestamp;
    }
}

/// What an observation is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct About {
    #[serde(skip_serializing_if = "Option::is_none")]
    organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    person: Option<String>,
}

/// Free-form context an employee wrote about an organization or a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    external_id: String,
    about: About,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    author_email: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_at: Option<Timestamp>,
}

impl Observation {
    /// An observation about an organization of the source.
    pub fn about_organization(external_id: impl Into<String>, organization: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(external_id, About { organization: Some(organization.into()), person: None }, text.into())
    }

    /// An observation about a person of the source.
    pub fn about_person(external_id: impl Into<String>, person: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(external_id, About { organization: None, person: Some(person.into()) }, text.into())
    }

    fn new(external_id: impl Into<String>, about: About, text: String) -> Self {
        Self { external_id: external_id.into(), about, text, author_email: None, tags: Vec::new(), observed_at: None }
    }

    /// The email of the employee who wrote it.
    #[must_use]
    pub fn author(mut self, email: impl Into<String>) -> Self {
        self.author_email = Some(email.into());
        self
    }

    /// Adds a tag (`risk`, `motive`, `decision-style`, …).
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    setters! {
        /// When it was observed.
        value observed_at: Timestamp;
    }
}

/// Kinds of records, for [`Delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Soft-deletes a record the source no longer has: it leaves queries, its provenance stays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delete {
    kind: RecordKind,
    external_id: String,
}

impl Delete {
    /// Deletes the source's record of `kind` with this external id.
    pub fn new(kind: RecordKind, external_id: impl Into<String>) -> Self {
        Self { kind, external_id: external_id.into() }
    }
}

/// Relations a [`Link`] states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The person works at the organization.
    WorksAt,
    /// The person (an employee) owns the account.
    Owns,
}

/// A relation between a person and an organization of the source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    relation: Relation,
    person: String,
    organization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<Timestamp>,
}

impl Link {
    /// `person` (external id) stands in `relation` to `organization` (external id).
    pub fn new(relation: Relation, person: impl Into<String>, organization: impl Into<String>) -> Self {
        Self { relation, person: person.into(), organization: organization.into(), since: None, until: None }
    }

    setters! {
        /// Since when.
        value since: Timestamp;

        /// Until when.
        value until: Timestamp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_serialize_in_the_ingest_format_without_empty_fields() {
        let org: Operation = Organization::new("c-1", "Acme").domain("acme.com").role(Role::Client).into();
        assert_eq!(
            org.to_json(),
            r#"{"op":"upsert_organization","external_id":"c-1","name":"Acme","domains":["acme.com"],"roles":["client"]}"#
        );
        let delete: Operation = Delete::new(RecordKind::Person, "p-1").into();
        assert_eq!(delete.to_json(), r#"{"op":"delete","kind":"person","external_id":"p-1"}"#);
        let note: Operation = Observation::about_person("n-1", "p-1", "Prefers calls").tag("communication-preference").into();
        assert_eq!(
            note.to_json(),
            r#"{"op":"add_observation","external_id":"n-1","about":{"person":"p-1"},"text":"Prefers calls","tags":["communication-preference"]}"#
        );
    }
}
