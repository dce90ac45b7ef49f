//! Record operations: what a connector emits. These are the host's own types
//! (`rapport-ops`), so what a plugin builds is exactly what the host parses and validates.
//! Each record starts from its required fields and adds the optional ones by method;
//! [`crate::emit`] takes them as [`Operation`]s. External ids are the records' ids in the
//! source; references between records (a person's employer, a deal's organization) use the
//! same ids. Times are anything that becomes a UTC time, a [`Timestamp`] among them.
//!
//! ```ignore
//! use rapport_sdk::record::{Organization, Person, Role};
//!
//! rapport_sdk::emit([
//!     Organization::new("c-17", "Acme").domain("acme.com").role(Role::Client).into(),
//!     Person::new("p-4", "Ada Lovelace").email("ada@acme.com").works_at("c-17").into(),
//! ]);
//! ```

pub use rapport_ops::{
    DealRecord as Deal, DealStatus, DeleteRecord as Delete, Direction, InteractionKind, InteractionRecord as Interaction, Lifecycle,
    LinkRecord as Link, ObservationRecord as Observation, Operation, OrganizationRecord as Organization, PersonRecord as Person,
    RecordKind, Relation, Role,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn sdk_times_become_the_records_times() {
        let at = Timestamp::parse("2026-03-08T09:30:00.250+02:00").unwrap();
        let meeting: Operation = Interaction::new("i-1", InteractionKind::Meeting, at).participant_email("ada@acme.com").into();
        assert_eq!(
            meeting.to_json(),
            r#"{"op":"upsert_interaction","external_id":"i-1","kind":"meeting","occurred_at":"2026-03-08T07:30:00.250Z","direction":"internal","participants":[{"email":"ada@acme.com"}]}"#
        );
    }
}
