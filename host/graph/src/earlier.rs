//! Values as earlier releases wrote them, read into today's types
//! (`codec::decode_upgrading`): a store written before a layout changed opens without a
//! migration pass, and each value takes the new layout when it is next written.

use serde::Deserialize;

use super::model::{
    Body, Deal, Direction, Interaction, InteractionKind, Node, NodeId, Observation, Organization, Person, Provenance, TimelineEntry,
    Timestamp,
};

/// A node as format 1 wrote it: interactions without their participants' addresses.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct NodeV1 {
    id: NodeId,
    provenance: Provenance,
    created_at: Timestamp,
    updated_at: Timestamp,
    deleted_at: Option<Timestamp>,
    placeholder: bool,
    body: BodyV1,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
enum BodyV1 {
    Organization(Organization),
    Person(Person),
    Deal(Deal),
    Interaction(InteractionV1),
    Observation(Observation),
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct InteractionV1 {
    kind: InteractionKind,
    occurred_at: Timestamp,
    direction: Direction,
    duration_secs: Option<u32>,
    participants: Vec<NodeId>,
    employees: Vec<NodeId>,
    organizations: Vec<NodeId>,
    thread: Option<String>,
    subject: Option<String>,
    resolved_at: Option<Timestamp>,
}

impl From<NodeV1> for Node {
    fn from(old: NodeV1) -> Self {
        let body = match old.body {
            BodyV1::Organization(o) => Body::Organization(o),
            BodyV1::Person(p) => Body::Person(p),
            BodyV1::Deal(d) => Body::Deal(d),
            BodyV1::Observation(o) => Body::Observation(o),
            // Format 1 kept no addresses and did not say whether the organizations were the
            // source's or derived: they stay as they were until identity moves them.
            BodyV1::Interaction(i) => Body::Interaction(Interaction {
                kind: i.kind,
                occurred_at: i.occurred_at,
                direction: i.direction,
                duration_secs: i.duration_secs,
                addresses: vec![None; i.participants.len()],
                participants: i.participants,
                filed_under: None,
                automated: false,
                employees: i.employees,
                organizations: i.organizations,
                engages: true,
                thread: i.thread,
                subject: i.subject,
                resolved_at: i.resolved_at,
            }),
        };
        Self {
            id: old.id,
            provenance: old.provenance,
            created_at: old.created_at,
            updated_at: old.updated_at,
            deleted_at: old.deleted_at,
            placeholder: old.placeholder,
            body,
        }
    }
}

/// A timeline entry as format 1 wrote it: every interaction counted as engagement.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct TimelineEntryV1 {
    employees: Vec<NodeId>,
}

impl From<TimelineEntryV1> for TimelineEntry {
    fn from(old: TimelineEntryV1) -> Self {
        Self { employees: old.employees, engages: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InteractionKind, RecordKind};
    use rapport_store::codec::{FORMAT_V1, FORMAT_V2, decode_upgrading, encode, encode_v2};

    #[test]
    fn a_format_1_interaction_reads_with_its_attribution_kept() {
        let (person, org) = (NodeId::generate(RecordKind::Person), NodeId::generate(RecordKind::Organization));
        let id = NodeId::generate(RecordKind::Interaction);
        let old = NodeV1 {
            id,
            provenance: Provenance { source: "mail".into(), external_id: "m-1".into(), seen_at: Timestamp(5) },
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            deleted_at: None,
            placeholder: false,
            body: BodyV1::Interaction(InteractionV1 {
                kind: InteractionKind::Email,
                occurred_at: Timestamp(3),
                direction: Direction::Inbound,
                duration_secs: None,
                participants: vec![person],
                employees: Vec::new(),
                organizations: vec![org],
                thread: None,
                subject: Some("hello".into()),
                resolved_at: None,
            }),
        };
        let bytes = encode(&old);
        assert_eq!(bytes[0], FORMAT_V1);
        let node: Node = decode_upgrading::<Node, NodeV1>(&bytes).unwrap();
        let Body::Interaction(i) = &node.body else { panic!("an interaction") };
        assert_eq!((i.participants.clone(), i.addresses.clone(), i.organizations.clone()), (vec![person], vec![None], vec![org]));
        assert!(i.engages && !i.automated && i.filed_under.is_none());
        assert_eq!(i.subject.as_deref(), Some("hello"));

        let again = encode_v2(&node);
        assert_eq!(again[0], FORMAT_V2);
        assert_eq!(decode_upgrading::<Node, NodeV1>(&again).unwrap(), node);
        let entry: TimelineEntry = decode_upgrading::<_, TimelineEntryV1>(&encode(&TimelineEntryV1 { employees: vec![person] })).unwrap();
        assert_eq!(entry, TimelineEntry { employees: vec![person], engages: true });
    }
}
