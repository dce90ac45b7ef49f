//! Builders for record operations: each record starts from its required fields and takes
//! the optional ones by method, and becomes an [`Operation`] with `.into()`. Connectors use
//! them through the SDK; host code and tests use them to write operations without JSON.
//!
//! ```
//! use rapport_ops::{Operation, OrganizationRecord, PersonRecord, Role};
//!
//! let operations: [Operation; 2] = [
//!     OrganizationRecord::new("c-17", "Acme").domain("acme.com").role(Role::Client).into(),
//!     PersonRecord::new("p-4", "Ada Lovelace").email("ada@acme.com").works_at("c-17").into(),
//! ];
//! assert_eq!(operations[1].external_id(), "p-4");
//! ```

use chrono::{DateTime, Utc};

use crate::{
    DealRecord, DealStatus, DeleteRecord, Direction, Employment, InteractionKind, InteractionRecord, Lifecycle, LinkRecord,
    ObservationRecord, Operation, OrganizationRecord, Participant, PersonRecord, RecordKind, Relation, Role, Subject,
};

/// Builder methods for optional fields: `text name;` takes anything that becomes a
/// `String`, `time name;` any instant that becomes a UTC time, `value name: Type;` the
/// value itself.
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
    ($(#[$doc:meta])* time $field:ident; $($rest:tt)*) => {
        $(#[$doc])*
        #[must_use]
        pub fn $field(mut self, value: impl Into<DateTime<Utc>>) -> Self {
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

impl Operation {
    /// The operation as the JSON document the host reads, without empty fields.
    pub fn to_json(&self) -> String {
        // Every field is a string, number, bool, time or list of them: serializing cannot fail.
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
    OrganizationRecord => UpsertOrganization,
    PersonRecord => UpsertPerson,
    DealRecord => UpsertDeal,
    InteractionRecord => UpsertInteraction,
    ObservationRecord => AddObservation,
    DeleteRecord => Delete,
    LinkRecord => Link,
);

impl OrganizationRecord {
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

        /// The employee (a person of this source, by external id) who owns the account.
        text owner;

        /// When the source last saw the record.
        time seen_at;
    }
}

impl PersonRecord {
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

    /// Marks the person as one of our employees (a relationship holder).
    #[must_use]
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self
    }

    /// A current employment at an organization of this source, by external id.
    #[must_use]
    pub fn works_at(self, organization: impl Into<String>) -> Self {
        self.employment(organization, None::<DateTime<Utc>>, None::<DateTime<Utc>>)
    }

    /// An employment with its known start and end.
    #[must_use]
    pub fn employment<T: Into<DateTime<Utc>>>(mut self, organization: impl Into<String>, since: Option<T>, until: Option<T>) -> Self {
        self.works_at.push(Employment { organization: organization.into(), since: since.map(Into::into), until: until.map(Into::into) });
        self
    }

    setters! {
        /// The job title.
        text title;

        /// When the source last saw the record.
        time seen_at;
    }
}

impl DealRecord {
    /// A deal with its id, its organization's id (both in the source), name and current stage.
    pub fn new(external_id: impl Into<String>, organization: impl Into<String>, name: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            external_id: external_id.into(),
            organization: organization.into(),
            name: name.into(),
            amount: None,
            currency: None,
            pipeline: None,
            stage: stage.into(),
            stage_entered_at: None,
            status: DealStatus::Open,
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

    /// Open (the default), won or lost.
    #[must_use]
    pub fn status(mut self, status: DealStatus) -> Self {
        self.status = status;
        self
    }

    setters! {
        /// The pipeline.
        text pipeline;

        /// When the current stage was entered.
        time stage_entered_at;

        /// When it was closed.
        time closed_at;

        /// When the source last saw the record.
        time seen_at;
    }
}

impl InteractionRecord {
    /// An interaction with its id in the source, kind and time; add at least one participant.
    pub fn new(external_id: impl Into<String>, kind: InteractionKind, occurred_at: impl Into<DateTime<Utc>>) -> Self {
        Self {
            external_id: external_id.into(),
            kind,
            occurred_at: occurred_at.into(),
            direction: Direction::Internal,
            duration_secs: None,
            participants: Vec::new(),
            organization: None,
            thread: None,
            subject: None,
            resolved_at: None,
            automated: false,
        }
    }

    /// Marks it sent by a machine (a mailing list, bulk or auto-submitted mail): it never
    /// counts as engagement.
    #[must_use]
    pub fn automated(mut self) -> Self {
        self.automated = true;
        self
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

    /// Who reached out (unknown, written `internal`, by default).
    #[must_use]
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    setters! {
        /// The length of a meeting or call.
        value duration_secs: u32;

        /// The organization, when the source knows it (otherwise derived from participants).
        text organization;

        /// The conversation thread's id in the source.
        text thread;

        /// The subject line or title (bodies are never stored).
        text subject;

        /// For tickets: when it was resolved.
        time resolved_at;
    }
}

impl ObservationRecord {
    /// An observation about an organization of the source.
    pub fn about_organization(external_id: impl Into<String>, organization: impl Into<String>, text: impl Into<String>) -> Self {
        Self::about(external_id, Subject { organization: Some(organization.into()), person: None, id: None }, text)
    }

    /// An observation about a person of the source.
    pub fn about_person(external_id: impl Into<String>, person: impl Into<String>, text: impl Into<String>) -> Self {
        Self::about(external_id, Subject { organization: None, person: Some(person.into()), id: None }, text)
    }

    /// An observation about a graph node (`org_…`, `per_…`), as people write them.
    pub fn about_node(external_id: impl Into<String>, node: impl Into<String>, text: impl Into<String>) -> Self {
        Self::about(external_id, Subject { organization: None, person: None, id: Some(node.into()) }, text)
    }

    fn about(external_id: impl Into<String>, about: Subject, text: impl Into<String>) -> Self {
        Self { external_id: external_id.into(), about, author_email: None, text: text.into(), tags: Vec::new(), observed_at: None }
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
        time observed_at;
    }
}

impl DeleteRecord {
    /// Deletes the source's record of `kind` with this external id.
    pub fn new(kind: RecordKind, external_id: impl Into<String>) -> Self {
        Self { kind, external_id: external_id.into() }
    }
}

impl LinkRecord {
    /// `person` (external id) stands in `relation` to `organization` (external id).
    pub fn new(relation: Relation, person: impl Into<String>, organization: impl Into<String>) -> Self {
        Self { relation, person: person.into(), organization: organization.into(), since: None, until: None }
    }

    setters! {
        /// Since when.
        time since;

        /// Until when.
        time until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordLimits, parse_operation};

    #[test]
    fn built_operations_serialize_without_empty_fields_and_parse_back() {
        let org: Operation = OrganizationRecord::new("c-1", "Acme").domain("acme.com").role(Role::Client).into();
        assert_eq!(
            org.to_json(),
            r#"{"op":"upsert_organization","external_id":"c-1","name":"Acme","domains":["acme.com"],"roles":["client"]}"#
        );
        let delete: Operation = DeleteRecord::new(RecordKind::Person, "p-1").into();
        assert_eq!(delete.to_json(), r#"{"op":"delete","kind":"person","external_id":"p-1"}"#);
        let note: Operation = ObservationRecord::about_person("n-1", "p-1", "Prefers calls").tag("communication-preference").into();
        assert_eq!(
            note.to_json(),
            r#"{"op":"add_observation","external_id":"n-1","about":{"person":"p-1"},"text":"Prefers calls","tags":["communication-preference"]}"#
        );
        let at = DateTime::parse_from_rfc3339("2026-03-08T07:30:00Z").unwrap().with_timezone(&Utc);
        let operations: Vec<Operation> = vec![
            org,
            delete,
            note,
            PersonRecord::new("p-1", "Ada").email("ada@acme.com").works_at("c-1").internal().title("CTO").seen_at(at).into(),
            DealRecord::new("d-1", "c-1", "Renewal", "proposal").amount(1200.0, "EUR").status(DealStatus::Won).closed_at(at).into(),
            InteractionRecord::new("i-1", InteractionKind::Meeting, at)
                .participant("p-1")
                .participant_email("bob@acme.com")
                .direction(Direction::Outbound)
                .duration_secs(1800)
                .into(),
            LinkRecord::new(Relation::Owns, "p-1", "c-1").since(at).into(),
        ];
        for operation in operations {
            let json = operation.to_json();
            assert_eq!(parse_operation(&json, "").unwrap(), operation, "{json}");
            assert!(operation.validate("", &RecordLimits::default()).is_empty(), "{json}");
        }
    }
}
