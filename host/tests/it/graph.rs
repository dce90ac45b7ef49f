//! Ingest and identity resolution, through the library.

use rapport::graph::model::{RecordKind, Timestamp};
use rapport::graph::{ContextQuery, GraphStats, IngestBatch, InvalidPolicy};

use crate::harness::{ingest, op, temp_graph};

/// One identity case: operations per source, then the clusters expected.
struct Case {
    name: &'static str,
    steps: &'static [(&'static str, &'static str)],
    organizations: usize,
    people: usize,
    merges: usize,
}

const IDENTITY_CASES: &[Case] = &[
    Case {
        name: "people merge on a normalized email across sources",
        steps: &[
            ("crm", r#"{"op":"upsert_person","external_id":"p1","name":"Anna Novak","emails":["anna@acme.com"]}"#),
            ("support", r#"{"op":"upsert_person","external_id":"u9","name":"A. Novak","emails":[" Anna@ACME.com "]}"#),
        ],
        organizations: 0,
        people: 1,
        merges: 1,
    },
    Case {
        name: "organizations merge on a domain across sources",
        steps: &[
            ("crm", r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#),
            ("billing", r#"{"op":"upsert_organization","external_id":"b7","name":"ACME GmbH","domains":["WWW.Acme.com"]}"#),
        ],
        organizations: 1,
        people: 0,
        merges: 1,
    },
    Case {
        name: "a free-mail domain never identifies an organization",
        steps: &[
            ("crm", r#"{"op":"upsert_organization","external_id":"c1","name":"Solo Consulting","domains":["gmail.com"]}"#),
            ("crm", r#"{"op":"upsert_organization","external_id":"c2","name":"Other Freelancer","domains":["gmail.com"]}"#),
        ],
        organizations: 2,
        people: 0,
        merges: 0,
    },
    Case {
        name: "the same record sent twice is one node",
        steps: &[
            ("crm", r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#),
            ("crm", r#"{"op":"upsert_organization","external_id":"c1","name":"Acme Inc","domains":["acme.com"]}"#),
        ],
        organizations: 1,
        people: 0,
        merges: 0,
    },
    Case {
        name: "the same external id in two sources is two records",
        steps: &[
            ("crm-eu", r#"{"op":"upsert_organization","external_id":"1","name":"Acme EU"}"#),
            ("crm-us", r#"{"op":"upsert_organization","external_id":"1","name":"Acme US"}"#),
        ],
        organizations: 2,
        people: 0,
        merges: 0,
    },
    Case {
        name: "same name without a shared key is not merged",
        steps: &[
            ("crm", r#"{"op":"upsert_person","external_id":"p1","name":"Anna Novak","emails":["anna@acme.com"]}"#),
            ("crm", r#"{"op":"upsert_person","external_id":"p2","name":"Anna Novak","emails":["anna.novak@globex.com"]}"#),
        ],
        organizations: 0,
        people: 2,
        merges: 0,
    },
    Case {
        name: "an interaction participant resolves to the known person by email",
        steps: &[
            ("crm", r#"{"op":"upsert_person","external_id":"p1","name":"Anna Novak","emails":["anna@acme.com"]}"#),
            ("mail", r#"{"op":"upsert_interaction","external_id":"m1","kind":"email","occurred_at":"2026-05-01T10:00:00Z","participants":[{"email":"ANNA@acme.com"},{"email":"ben@northwind.example"}]}"#),
        ],
        organizations: 0,
        people: 2,
        merges: 0,
    },
];

#[test]
fn identity_resolution_table() {
    for case in IDENTITY_CASES {
        let t = temp_graph();
        for (source, json) in case.steps {
            let report = ingest(&t.graph, source, &[json]);
            assert_eq!(report.applied, 1, "{}: {report:?}", case.name);
        }
        let stats = t.graph.stats().unwrap();
        let expected = (case.organizations, case.people, case.merges);
        assert_eq!((stats.organizations, stats.people, stats.merges), expected, "{}", case.name);
    }
}

#[test]
fn merged_records_fold_into_one_view_with_all_provenance() {
    let t = temp_graph();
    ingest(&t.graph, "crm", &[r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"],"roles":["client"]}"#]);
    ingest(&t.graph, "billing", &[r#"{"op":"upsert_organization","external_id":"b7","name":"ACME GmbH","domains":["acme.com","acme.de"],"roles":["supplier"]}"#]);
    let crm = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
    let billing = t.graph.resolve("billing", RecordKind::Organization, "b7").unwrap().unwrap();
    let view = t.graph.organization(billing).unwrap();
    assert_eq!(view.id, crm, "the first-seen record is the cluster's id");
    assert_eq!(view.name, "Acme", "the first-seen record wins scalar fields");
    assert_eq!(view.domains, ["acme.com", "acme.de"]);
    assert_eq!(view.merged, [billing]);
    let sources: Vec<_> = view.provenance.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(sources, ["crm", "billing"]);
}

#[test]
fn interactions_are_filed_under_the_participants_organization() {
    let t = temp_graph();
    ingest(
        &t.graph,
        "crm",
        &[
            r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#,
            r#"{"op":"upsert_person","external_id":"e1","name":"Ben Berg","emails":["ben@northwind.example"]}"#,
        ],
    );
    // Anna is unknown to the CRM: her organization comes from her email domain.
    ingest(&t.graph, "mail", &[
        r#"{"op":"upsert_interaction","external_id":"m1","kind":"email","direction":"inbound","occurred_at":"2026-05-01T10:00:00Z","participants":[{"email":"anna@acme.com"},{"email":"ben@northwind.example"}]}"#,
    ]);
    let org = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
    let ben = t.graph.resolve("crm", RecordKind::Person, "e1").unwrap().unwrap();
    let at = Timestamp::from(chrono::DateTime::parse_from_rfc3339("2026-05-10T00:00:00Z").unwrap().to_utc());
    let context = t.graph.organization_context(org, ContextQuery { at, recent: 10 }).unwrap();
    assert_eq!(context.recent_interactions.len(), 1);
    assert_eq!(context.recent_interactions[0].employees, [ben], "ben is internal by his domain");
    assert_eq!(context.relationship_holders.len(), 1);
    assert_eq!(context.relationship_holders[0].person, ben);
    assert_eq!(context.engagement.days_since_last_interaction, Some(8));
}

#[test]
fn invalid_operations_are_skipped_with_paths_and_the_rest_committed() {
    let t = temp_graph();
    let report = ingest(
        &t.graph,
        "import",
        &[
            r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#,
            r#"{"op":"upsert_person","external_id":"p1","emails":["not an address"]}"#,
            r#"{"op":"upsert_organization","external_id":"c2","name":"Globex"}"#,
        ],
    );
    assert!(report.committed);
    assert_eq!(report.applied, 2);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].index, 1);
    assert_eq!(report.skipped[0].external_id, "p1");
    assert_eq!(report.skipped[0].errors[0].path, "emails[0]");
    assert_eq!(t.graph.stats().unwrap().organizations, 2);
}

#[test]
fn a_rejected_batch_writes_nothing() {
    let t = temp_graph();
    let report = t
        .graph
        .ingest(IngestBatch {
            source: "api".into(),
            operations: vec![
                op(r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#),
                op(r#"{"op":"add_observation","external_id":"o1","about":{"id":"org_01J9Z3K4X7Q8R2M5N6P7T8V9W0"},"text":"x"}"#),
            ],
            policy: InvalidPolicy::RejectBatch,
            meta: vec![("cursor".into(), b"42".to_vec())],
            now: Timestamp::now(),
        })
        .unwrap();
    assert!(!report.committed);
    assert_eq!(report.skipped[0].errors[0].path, "about.id");
    assert_eq!(t.graph.stats().unwrap(), GraphStats::default());
    assert_eq!(t.graph.meta("cursor").unwrap(), None, "metadata commits with the batch or not at all");
}

#[test]
fn a_failed_operation_leaves_no_partial_writes() {
    let t = temp_graph();
    // The author would be created as a new person, but the subject does not exist.
    let report = ingest(&t.graph, "api", &[
        r#"{"op":"add_observation","external_id":"o1","about":{"id":"org_01J9Z3K4X7Q8R2M5N6P7T8V9W0"},"author_email":"new@northwind.example","text":"x"}"#,
        r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#,
    ]);
    assert_eq!((report.applied, report.skipped.len()), (1, 1));
    assert_eq!(t.graph.search(RecordKind::Person, "new@northwind.example", 5).unwrap(), []);
    assert_eq!(t.graph.stats().unwrap().people, 0);
}

#[test]
fn an_updated_interaction_moves_on_the_timeline() {
    let t = temp_graph();
    let first = r#"{"op":"upsert_interaction","external_id":"m1","kind":"call","organization":"c1","occurred_at":"2026-05-01T10:00:00Z","participants":[{"email":"anna@acme.com"}]}"#;
    let moved = r#"{"op":"upsert_interaction","external_id":"m1","kind":"call","organization":"c1","occurred_at":"2026-05-03T10:00:00Z","participants":[{"email":"anna@acme.com"}]}"#;
    ingest(&t.graph, "crm", &[r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#, first]);
    ingest(&t.graph, "crm", &[moved, moved]);
    let org = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
    let page = t.graph.timeline(org, None, Timestamp(i64::MAX / 2), None, 10).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].occurred_at.to_datetime().to_rfc3339(), "2026-05-03T10:00:00+00:00");
}

#[test]
fn deletes_are_soft_and_keep_provenance() {
    let t = temp_graph();
    ingest(&t.graph, "crm", &[r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#]);
    let report = ingest(&t.graph, "crm", &[
        r#"{"op":"delete","kind":"organization","external_id":"c1"}"#,
        r#"{"op":"delete","kind":"organization","external_id":"never-sent"}"#,
    ]);
    assert_eq!((report.applied, report.skipped.len()), (1, 1));
    let id = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().expect("provenance kept");
    assert!(t.graph.organization(id).is_err(), "a deleted organization leaves queries");
    assert_eq!(t.graph.search(RecordKind::Organization, "acme", 5).unwrap(), []);
    ingest(&t.graph, "crm", &[r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#]);
    assert_eq!(t.graph.organization(id).unwrap().name, "Acme", "sending it again brings it back under the same id");
}

#[test]
fn deal_stage_history_accumulates() {
    let t = temp_graph();
    let stage = |stage: &str, at: &str| {
        format!(r#"{{"op":"upsert_deal","external_id":"d1","organization":"c1","name":"Renewal","stage":"{stage}","stage_entered_at":"{at}"}}"#)
    };
    let ops = [stage("proposal", "2026-03-01T00:00:00Z"), stage("proposal", "2026-03-05T00:00:00Z"), stage("negotiation", "2026-04-01T00:00:00Z")];
    for json in &ops {
        ingest(&t.graph, "crm", &[json]);
    }
    ingest(&t.graph, "crm", &[r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#]);
    let org = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
    let at = Timestamp::from(chrono::DateTime::parse_from_rfc3339("2026-04-11T00:00:00Z").unwrap().to_utc());
    let context = t.graph.organization_context(org, ContextQuery { at, recent: 5 }).unwrap();
    let deal = &context.open_deals[0];
    let stages: Vec<_> = deal.stage_history.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, ["proposal", "negotiation"]);
    assert_eq!(deal.days_in_stage, 10);
}

#[test]
fn timeline_pages_cover_everything_once() {
    let t = temp_graph();
    let ops: Vec<String> = (0..25)
        .map(|i| {
            format!(
                r#"{{"op":"upsert_interaction","external_id":"m{i}","kind":"email","organization":"c1","occurred_at":"2026-05-01T10:{i:02}:00Z","participants":[{{"email":"anna@acme.com"}}]}}"#
            )
        })
        .collect();
    let refs: Vec<&str> = ops.iter().map(String::as_str).collect();
    ingest(&t.graph, "mail", &refs);
    let org = t.graph.resolve("mail", RecordKind::Organization, "c1").unwrap().unwrap();
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = t.graph.timeline(org, None, Timestamp(i64::MAX / 2), before.as_deref(), 10).unwrap();
        assert!(page.items.windows(2).all(|w| w[0].occurred_at > w[1].occurred_at), "newest first");
        seen.extend(page.items.iter().map(|i| i.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (25, 25));
}
