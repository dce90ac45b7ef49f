//! Ingest and identity resolution, through the library.

use rapport_graph::model::{ChangeOp, NodeId, RecordKind, Timestamp};
use rapport_graph::{ContextQuery, DEFAULT_MIN_SCORE, GraphError, GraphStats, IdentityError, SuggestionCase};
use rapport_ops::{IngestBatch, InvalidPolicy, SourceTrust};

use crate::{ingest, op, rules, temp_graph, temp_graph_with};

/// One step of an identity case.
enum Step {
    /// An operation from a source.
    Op(&'static str, &'static str),
    /// Undo the most recent merge.
    UnmergeLast,
    /// Pin two records apart, by (source, kind, external id).
    Pin((&'static str, RecordKind, &'static str), (&'static str, RecordKind, &'static str)),
}

use Step::{Op, Pin, UnmergeLast};

/// One identity case: steps, then the clusters, active merges and review entries expected.
struct Case {
    name: &'static str,
    steps: &'static [Step],
    organizations: usize,
    people: usize,
    merges: usize,
    review: usize,
}

const ANNA_CRM: &str = r#"{"op":"upsert_person","external_id":"p1","name":"Anna Novak","emails":["anna@acme.com"]}"#;
const ANNA_SUPPORT: &str = r#"{"op":"upsert_person","external_id":"u9","name":"A. Novak","emails":[" Anna@ACME.com "]}"#;
const ACME_CRM: &str = r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#;
const ACME_BILLING: &str = r#"{"op":"upsert_organization","external_id":"b7","name":"ACME GmbH","domains":["WWW.Acme.com"]}"#;

const IDENTITY_CASES: &[Case] = &[
    Case {
        name: "people merge on a normalized email across sources",
        steps: &[Op("crm", ANNA_CRM), Op("support", ANNA_SUPPORT)],
        organizations: 0,
        people: 1,
        merges: 1,
        review: 0,
    },
    Case {
        name: "organizations merge on a domain across sources",
        steps: &[Op("crm", ACME_CRM), Op("billing", ACME_BILLING)],
        organizations: 1,
        people: 0,
        merges: 1,
        review: 0,
    },
    Case {
        name: "a free-mail domain never identifies an organization",
        steps: &[
            Op("crm", r#"{"op":"upsert_organization","external_id":"c1","name":"Solo Consulting","domains":["gmail.com"]}"#),
            Op("crm", r#"{"op":"upsert_organization","external_id":"c2","name":"Other Freelancer","domains":["gmail.com"]}"#),
        ],
        organizations: 2,
        people: 0,
        merges: 0,
        review: 0,
    },
    Case {
        name: "the same record sent twice is one node",
        steps: &[
            Op("crm", ACME_CRM),
            Op("crm", r#"{"op":"upsert_organization","external_id":"c1","name":"Acme Inc","domains":["acme.com"]}"#),
        ],
        organizations: 1,
        people: 0,
        merges: 0,
        review: 0,
    },
    Case {
        name: "the same external id in two sources is two records",
        steps: &[
            Op("crm-eu", r#"{"op":"upsert_organization","external_id":"1","name":"Acme EU"}"#),
            Op("crm-us", r#"{"op":"upsert_organization","external_id":"1","name":"Acme US"}"#),
        ],
        organizations: 2,
        people: 0,
        merges: 0,
        review: 0,
    },
    Case {
        name: "an interaction participant resolves to the known person by email",
        steps: &[
            Op("crm", ANNA_CRM),
            Op(
                "mail",
                r#"{"op":"upsert_interaction","external_id":"m1","kind":"email","occurred_at":"2026-05-01T10:00:00Z","participants":[{"email":"ANNA@acme.com"},{"email":"ben@northwind.example"}]}"#,
            ),
        ],
        organizations: 0,
        people: 2,
        merges: 0,
        review: 0,
    },
    Case {
        name: "unmerge restores both records",
        steps: &[Op("crm", ANNA_CRM), Op("support", ANNA_SUPPORT), UnmergeLast],
        organizations: 0,
        people: 2,
        merges: 0,
        review: 0,
    },
    Case {
        name: "an undone merge is not redone when the record is sent again",
        steps: &[Op("crm", ACME_CRM), Op("billing", ACME_BILLING), UnmergeLast, Op("billing", ACME_BILLING)],
        organizations: 2,
        people: 0,
        merges: 0,
        review: 0,
    },
    Case {
        name: "a pin prevents a merge",
        steps: &[
            Op("crm", r#"{"op":"upsert_person","external_id":"p1","name":"Anna Novak"}"#),
            Op("support", r#"{"op":"upsert_person","external_id":"u9","name":"Anna N."}"#),
            Pin(("crm", RecordKind::Person, "p1"), ("support", RecordKind::Person, "u9")),
            Op("crm", ANNA_CRM),
            Op("support", ANNA_SUPPORT),
        ],
        organizations: 0,
        people: 2,
        merges: 0,
        review: 0,
    },
    Case {
        name: "same name at the same organization goes to review, not a merge",
        steps: &[
            Op(
                "crm",
                r#"{"op":"upsert_person","external_id":"p1","name":"Anna Novak","emails":["anna@acme.com"],"works_at":[{"organization":"c1"}]}"#,
            ),
            Op(
                "crm",
                r#"{"op":"upsert_person","external_id":"p2","name":"anna  novak","emails":["a.novak@acme-mail.com"],"works_at":[{"organization":"c1"}]}"#,
            ),
        ],
        organizations: 0,
        people: 2,
        merges: 0,
        review: 1,
    },
    Case {
        name: "same name at different organizations is not a duplicate",
        steps: &[
            Op("crm", r#"{"op":"upsert_person","external_id":"p1","name":"Anna Novak","works_at":[{"organization":"c1"}]}"#),
            Op("crm", r#"{"op":"upsert_person","external_id":"p2","name":"Anna Novak","works_at":[{"organization":"c2"}]}"#),
        ],
        organizations: 0,
        people: 2,
        merges: 0,
        review: 0,
    },
    Case {
        name: "organizations with the same name and no shared domain go to review",
        steps: &[
            Op("crm", r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#),
            Op("billing", r#"{"op":"upsert_organization","external_id":"b1","name":"ACME","domains":["acme-corp.net"]}"#),
        ],
        organizations: 2,
        people: 0,
        merges: 0,
        review: 1,
    },
];

#[test]
fn identity_resolution_table() {
    for case in IDENTITY_CASES {
        let t = temp_graph();
        for step in case.steps {
            match step {
                Op(source, json) => {
                    let report = ingest(&t.graph, source, &[json]);
                    assert_eq!(report.applied, 1, "{}: {report:?}", case.name);
                }
                UnmergeLast => {
                    let last = t.graph.merges(None, 1).unwrap().pop().expect("a merge to undo");
                    t.graph.unmerge(last.id, Timestamp::now()).unwrap();
                }
                Pin(a, b) => {
                    let a = t.graph.resolve(a.0, a.1, a.2).unwrap().unwrap();
                    let b = t.graph.resolve(b.0, b.1, b.2).unwrap().unwrap();
                    t.graph.pin_apart(a, b).unwrap();
                }
            }
        }
        let stats = t.graph.stats().unwrap();
        let review = t.graph.duplicates(DEFAULT_MIN_SCORE, 100).unwrap().len();
        let expected = (case.organizations, case.people, case.merges, case.review);
        assert_eq!((stats.organizations, stats.people, stats.merges, review), expected, "{}", case.name);
    }
}

#[test]
fn unmerge_restores_each_records_own_view() {
    let t = temp_graph();
    ingest(&t.graph, "crm", &[ACME_CRM]);
    ingest(&t.graph, "billing", &[ACME_BILLING]);
    let crm = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
    let billing = t.graph.resolve("billing", RecordKind::Organization, "b7").unwrap().unwrap();
    assert_eq!(t.graph.organization(billing).unwrap().id, crm);
    let merge = t.graph.merges(None, 10).unwrap().pop().unwrap();
    assert_eq!((merge.winner, merge.loser, merge.reason.as_str()), (crm, billing, "shared domain acme.com"));

    let undone = t.graph.unmerge(merge.id, Timestamp::now()).unwrap();
    assert!(undone.undone_at.is_some());
    let (a, b) = (t.graph.organization(crm).unwrap(), t.graph.organization(billing).unwrap());
    assert_eq!((a.id, a.name.as_str(), a.merged.len()), (crm, "Acme", 0));
    assert_eq!((b.id, b.name.as_str(), b.merged.len()), (billing, "ACME GmbH", 0));
    assert!(matches!(t.graph.unmerge(merge.id, Timestamp::now()), Err(IdentityError::AlreadyUndone(_))));
    // By hand, the pinned pair can still not be merged; the log keeps the undone merge.
    assert!(matches!(t.graph.merge_manually(crm, billing, "x".into(), Timestamp::now()), Err(IdentityError::Pinned(..))));
    assert_eq!(t.graph.merges(None, 10).unwrap().len(), 1);
}

#[test]
fn a_reviewed_duplicate_can_be_merged_by_hand() {
    let t = temp_graph();
    ingest(&t.graph, "crm", &[r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#]);
    ingest(&t.graph, "billing", &[r#"{"op":"upsert_organization","external_id":"b1","name":"ACME","domains":["acme-corp.net"]}"#]);
    let candidate = t.graph.duplicates(DEFAULT_MIN_SCORE, 10).unwrap().pop().expect("a review entry");
    assert_eq!(
        (candidate.case, candidate.reasons.as_slice()),
        (SuggestionCase::OrganizationName, ["both named Acme".to_owned()].as_slice())
    );
    let merge = t.graph.merge_manually(candidate.a, candidate.b, "reviewed by ops".into(), Timestamp::now()).unwrap();
    assert_eq!(merge.reason, "reviewed by ops");
    assert_eq!(t.graph.stats().unwrap().organizations, 1);
    assert!(t.graph.duplicates(0.0, 10).unwrap().is_empty());
    assert!(matches!(
        t.graph.merge_manually(candidate.a, candidate.b, "again".into(), Timestamp::now()),
        Err(IdentityError::AlreadyMerged(..))
    ));
}

#[test]
fn merged_records_fold_into_one_view_with_all_provenance_and_scalars_by_source_rank() {
    let crm = r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"],"roles":["client"],"seen_at":"2026-01-01T00:00:00Z"}"#;
    let billing = r#"{"op":"upsert_organization","external_id":"b7","name":"ACME GmbH","domains":["acme.com","acme.de"],"roles":["supplier"],"seen_at":"2026-02-01T00:00:00Z"}"#;
    for crm_first in [true, false] {
        let t = temp_graph_with(rules().with_source_priority(["crm".to_owned()]));
        let order = if crm_first { [("crm", crm), ("billing", billing)] } else { [("billing", billing), ("crm", crm)] };
        for (source, op) in order {
            ingest(&t.graph, source, &[op]);
        }
        let crm_id = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
        let billing_id = t.graph.resolve("billing", RecordKind::Organization, "b7").unwrap().unwrap();
        let view = t.graph.organization(billing_id).unwrap();
        let first = if crm_first { crm_id } else { billing_id };
        assert_eq!(view.id, first, "the first-seen record is the cluster's id");
        assert_eq!(view.name, "Acme", "the best-ranked source wins scalar fields, whatever the order");
        assert_eq!(view.domains, ["acme.com", "acme.de"]);
        assert_eq!(view.merged, [if crm_first { billing_id } else { crm_id }]);
        let sources: Vec<_> = view.provenance.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(sources, ["crm", "billing"], "records listed in rank order");
        let names: Vec<(&str, &str)> = view.names.iter().map(|n| (n.source.as_str(), n.name.as_str())).collect();
        assert_eq!(names, [("crm", "Acme"), ("billing", "ACME GmbH")], "the losing name stays visible");
    }
    // Unranked sources: the record its source saw last wins.
    let t = temp_graph();
    ingest(&t.graph, "billing", &[billing]);
    ingest(&t.graph, "crm", &[crm]);
    let crm_id = t.graph.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
    assert_eq!(t.graph.organization(crm_id).unwrap().name, "ACME GmbH");
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
    ingest(
        &t.graph,
        "mail",
        &[
            r#"{"op":"upsert_interaction","external_id":"m1","kind":"email","direction":"inbound","occurred_at":"2026-05-01T10:00:00Z","participants":[{"email":"anna@acme.com"},{"email":"ben@northwind.example"}]}"#,
        ],
    );
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
            trust: SourceTrust::FULL,
            meta: vec![("cursor".into(), b"42".to_vec())],
            now: chrono::Utc::now(),
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
    let report = ingest(
        &t.graph,
        "api",
        &[
            r#"{"op":"add_observation","external_id":"o1","about":{"id":"org_01J9Z3K4X7Q8R2M5N6P7T8V9W0"},"author_email":"new@northwind.example","text":"x"}"#,
            r#"{"op":"upsert_organization","external_id":"c1","name":"Acme"}"#,
        ],
    );
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
    let report = ingest(
        &t.graph,
        "crm",
        &[
            r#"{"op":"delete","kind":"organization","external_id":"c1"}"#,
            r#"{"op":"delete","kind":"organization","external_id":"never-sent"}"#,
        ],
    );
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
        format!(
            r#"{{"op":"upsert_deal","external_id":"d1","organization":"c1","name":"Renewal","stage":"{stage}","stage_entered_at":"{at}"}}"#
        )
    };
    let ops = [
        stage("proposal", "2026-03-01T00:00:00Z"),
        stage("proposal", "2026-03-05T00:00:00Z"),
        stage("negotiation", "2026-04-01T00:00:00Z"),
    ];
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
                r#"{{"op":"upsert_interaction","external_id":"m{i}","kind":"email","organization":"c1","occurred_at":"2026-05-01T10:{:02}:00Z","participants":[{{"email":"anna@acme.com"}}]}}"#,
                // Groups of three share a time, so page boundaries fall inside groups.
                i / 3
            )
        })
        .collect();
    let refs: Vec<&str> = ops.iter().map(String::as_str).collect();
    ingest(&t.graph, "mail", &refs);
    let org = t.graph.resolve("mail", RecordKind::Organization, "c1").unwrap().unwrap();
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let cursor = before.as_deref().map(|b| b.parse().unwrap());
        let page = t.graph.timeline(org, None, Timestamp(i64::MAX / 2), cursor, 10).unwrap();
        assert!(page.items.windows(2).all(|w| w[0].occurred_at >= w[1].occurred_at), "newest first");
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

#[test]
fn list_limits_skip_the_operation_naming_the_path_and_the_limit() {
    let store = temp_graph();
    let emails = |n: usize| (0..n).map(|i| format!("\"a{i}@acme.com\"")).collect::<Vec<_>>().join(",");
    let at_limit = format!(r#"{{"op":"upsert_person","external_id":"p1","name":"Anna","emails":[{}]}}"#, emails(1000));
    let over = format!(r#"{{"op":"upsert_person","external_id":"p2","name":"Ben","emails":[{}]}}"#, emails(1001));
    let report = ingest(&store.graph, "crm", &[&at_limit, &over]);
    assert_eq!(report.applied, 1);
    assert_eq!(report.skipped[0].external_id, "p2");
    assert_eq!(report.skipped[0].errors[0].to_string(), "emails: expected at most 1000 items (records.max_list_items), got 1001");
}

#[test]
fn a_person_with_a_huge_address_list_ingests_and_reads_in_linear_time() {
    // Raised limits: the cost of dedup and folding must stay linear in the list's length
    // (it was quadratic: 100,000 addresses took minutes to ingest and to read).
    let dir = tempfile::tempdir().unwrap();
    let store = rapport_store::SledStore::open(dir.path(), 32 << 20).unwrap();
    let limits = rapport_ops::RecordLimits { max_list_items: 100_000, ..Default::default() };
    let graph = rapport_graph::Graph::new(std::sync::Arc::new(store), rules()).with_limits(limits);
    let emails: Vec<String> = (0..50_000).map(|i| format!("\"a{}@acme.com\"", i % 40_000)).collect();
    let person = format!(r#"{{"op":"upsert_person","external_id":"p1","name":"Anna","emails":[{}]}}"#, emails.join(","));
    let report = ingest(&graph, "crm", &[&person]);
    assert_eq!(report.applied, 1, "{:?}", report.skipped);
    let id = graph.resolve("crm", RecordKind::Person, "p1").unwrap().unwrap();
    let view = graph.person(id).unwrap();
    assert_eq!(view.emails.len(), 40_000, "repeats removed, order kept");
    assert_eq!(view.emails[0], "a0@acme.com");
}

fn ingest_as(graph: &rapport_graph::Graph, source: &str, trust: SourceTrust, ops: &[&str]) -> rapport_ops::IngestReport {
    let operations = ops.iter().map(|j| op(j)).collect();
    graph
        .ingest(IngestBatch {
            source: source.to_owned(),
            operations,
            policy: InvalidPolicy::SkipInvalid,
            trust,
            meta: Vec::new(),
            now: chrono::Utc::now(),
        })
        .unwrap()
}

#[test]
fn a_source_not_trusted_for_it_can_neither_join_two_clusters_nor_make_a_client_an_employee() {
    let store = temp_graph();
    let graph = &store.graph;
    ingest(
        graph,
        "crm",
        &[
            r#"{"op":"upsert_organization","external_id":"a","name":"Acme","domains":["acme.com"]}"#,
            r#"{"op":"upsert_organization","external_id":"g","name":"Globex","domains":["globex.com"]}"#,
            r#"{"op":"upsert_person","external_id":"p","name":"Paula","emails":["paula@acme.com"]}"#,
        ],
    );
    let id = |source: &str, kind, external: &str| graph.resolve(source, kind, external).unwrap().unwrap();
    let (acme, globex) = (id("crm", RecordKind::Organization, "a"), id("crm", RecordKind::Organization, "g"));
    let rogue = [
        r#"{"op":"upsert_organization","external_id":"x","name":"Acme Globex","domains":["acme.com","globex.com"]}"#,
        r#"{"op":"upsert_person","external_id":"q","name":"Paula","emails":["paula@acme.com"],"internal":true}"#,
    ];
    let report = ingest_as(graph, "rogue", SourceTrust::default(), &rogue);
    assert_eq!((report.applied, report.untrusted), (2, 2), "{report:?}");
    // Its record joined one cluster (a record of its own may), not both.
    assert_eq!(graph.organization(acme).unwrap().merged.len(), 1);
    assert_ne!(graph.organization(acme).unwrap().id, graph.organization(globex).unwrap().id, "two clients stay two");
    let review = graph.duplicates(DEFAULT_MIN_SCORE, 10).unwrap();
    assert!(
        review.iter().any(|d| d.case == SuggestionCase::SharedKey && d.reasons[0].contains("not trusted to join two clusters")),
        "{review:?}"
    );
    assert!(!graph.person(id("crm", RecordKind::Person, "p")).unwrap().internal, "the client's contact is no employee");

    // The same operations from a source trusted for both do what they say.
    let report = ingest_as(
        graph,
        "trusted",
        SourceTrust::FULL,
        &rogue.map(|op| op.replace("\"x\"", "\"y\"").replace("\"q\"", "\"r\"")).each_ref().map(String::as_str),
    );
    assert_eq!(report.untrusted, 0);
    assert_eq!(graph.organization(acme).unwrap().id, graph.organization(globex).unwrap().id, "a trusted source joins them");
    assert!(graph.person(id("crm", RecordKind::Person, "p")).unwrap().internal);
}

/// The feed's entries after `after` as (op, kind, node, clusters) for comparing.
fn feed(graph: &rapport_graph::Graph, after: u64) -> Vec<(ChangeOp, RecordKind, NodeId, Vec<NodeId>)> {
    graph.changes_since(after, 1000).unwrap().into_iter().map(|c| (c.op, c.kind, c.node, c.clusters)).collect()
}

#[test]
fn every_operation_kind_appends_its_changes_to_the_feed_in_the_same_commit() {
    let t = temp_graph();
    let g = &t.graph;
    let id = |kind, external_id| g.resolve("crm", kind, external_id).unwrap().unwrap();
    use RecordKind::{Deal, Interaction, Observation, Organization, Person};
    // Each case: operations, then each change (op, the record, every cluster it touches).
    type Expected = &'static [(ChangeOp, (RecordKind, &'static str), &'static [(RecordKind, &'static str)])];
    let cases: Vec<(&str, Vec<&str>, Expected)> = vec![
        ("an organization", vec![ACME_CRM], &[(ChangeOp::Upsert, (Organization, "c1"), &[(Organization, "c1")])]),
        ("a person", vec![ANNA_CRM], &[(ChangeOp::Upsert, (Person, "p1"), &[(Person, "p1")])]),
        (
            "a deal, and its organization",
            vec![r#"{"op":"upsert_deal","external_id":"d1","organization":"c1","name":"Renewal","stage":"proposal"}"#],
            &[(ChangeOp::Upsert, (Deal, "d1"), &[(Deal, "d1"), (Organization, "c1")])],
        ),
        (
            "an interaction, its participant and the organization it is filed under",
            vec![
                r#"{"op":"upsert_interaction","external_id":"i1","kind":"meeting","occurred_at":"2026-05-01T09:00:00Z","participants":[{"email":"anna@acme.com"}]}"#,
            ],
            &[(ChangeOp::Upsert, (Interaction, "i1"), &[(Interaction, "i1"), (Organization, "c1"), (Person, "p1")])],
        ),
        (
            "an observation, and what it is about",
            vec![r#"{"op":"add_observation","external_id":"o1","about":{"organization":"c1"},"text":"Needs the deadline"}"#],
            &[(ChangeOp::Upsert, (Observation, "o1"), &[(Observation, "o1"), (Organization, "c1")])],
        ),
        (
            "a link, and both sides",
            vec![r#"{"op":"link","relation":"works_at","person":"p1","organization":"c1"}"#],
            &[(ChangeOp::Link, (Person, "p1"), &[(Person, "p1"), (Organization, "c1")])],
        ),
        (
            "a delete",
            vec![r#"{"op":"delete","kind":"deal","external_id":"d1"}"#],
            &[(ChangeOp::Delete, (Deal, "d1"), &[(Deal, "d1"), (Organization, "c1")])],
        ),
        ("an invalid operation, nothing", vec![r#"{"op":"delete","kind":"deal","external_id":"nope"}"#], &[]),
    ];
    for (name, ops, expected) in cases {
        let before = g.last_change().unwrap().unwrap_or(0);
        let report = ingest(g, "crm", &ops);
        let got: Vec<_> = feed(g, before)
            .into_iter()
            .map(|(op, kind, node, mut clusters)| {
                clusters.sort_unstable();
                (op, kind, node, clusters)
            })
            .collect();
        let want: Vec<_> = expected
            .iter()
            .map(|(op, (kind, ext), clusters)| {
                let mut clusters: Vec<NodeId> = clusters.iter().map(|(k, e)| id(*k, e)).collect();
                clusters.sort_unstable();
                (*op, *kind, id(*kind, ext), clusters)
            })
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(report.changes, want.len(), "{name}");
    }
    // Sequence numbers increase by one, and the record's own time is the interaction's.
    let all = g.changes_since(0, 1000).unwrap();
    assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1), "{all:?}");
    let meeting = all.iter().find(|c| c.kind == Interaction).unwrap();
    assert_eq!(meeting.at.to_datetime().to_rfc3339(), "2026-05-01T09:00:00+00:00");
    assert_eq!(g.changes_since(all[2].seq, 2).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [all[3].seq, all[4].seq]);
}

#[test]
fn a_merge_and_an_unmerge_list_both_clusters_and_rejected_writes_list_nothing() {
    let t = temp_graph();
    let g = &t.graph;
    ingest(g, "crm", &[ACME_CRM]);
    let after_first = g.last_change().unwrap().unwrap();
    ingest(g, "billing", &[ACME_BILLING]);
    let crm = g.resolve("crm", RecordKind::Organization, "c1").unwrap().unwrap();
    let billing = g.resolve("billing", RecordKind::Organization, "b7").unwrap().unwrap();
    // The newcomer is written, then its cluster joins: its upsert lists the joined root.
    assert_eq!(
        feed(g, after_first),
        [
            (ChangeOp::Upsert, RecordKind::Organization, billing, vec![crm]),
            (ChangeOp::Merge, RecordKind::Organization, billing, vec![crm, billing]),
        ]
    );
    let before_unmerge = g.last_change().unwrap().unwrap();
    let merge = g.merges(None, 1).unwrap().pop().unwrap();
    g.unmerge(merge.id, Timestamp::now()).unwrap();
    assert_eq!(feed(g, before_unmerge), [(ChangeOp::Unmerge, RecordKind::Organization, billing, vec![billing, crm])]);

    // A rejected batch and a rolled-back operation add nothing; numbering goes on.
    let last = g.last_change().unwrap();
    let rejected = IngestBatch {
        policy: InvalidPolicy::RejectBatch,
        ..IngestBatch::trusted(
            "crm",
            vec![
                op(r#"{"op":"upsert_organization","external_id":"c9","name":"Nine"}"#),
                op(r#"{"op":"delete","kind":"deal","external_id":"nope"}"#),
            ],
        )
    };
    assert!(!g.ingest(rejected).unwrap().committed);
    assert_eq!(g.last_change().unwrap(), last);
    ingest(g, "crm", &[r#"{"op":"upsert_organization","external_id":"c9","name":"Nine"}"#]);
    assert_eq!(g.last_change().unwrap(), last.map(|n| n + 1));
}

#[test]
fn the_feed_numbering_goes_on_after_the_store_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = rapport_store::SledStore::open(dir.path(), 8 << 20).unwrap();
        rapport_graph::Graph::new(std::sync::Arc::new(store), rapport_graph::IdentityRules::with_defaults([]))
    };
    let graph = open();
    ingest(&graph, "crm", &[ACME_CRM, ANNA_CRM]);
    drop(graph);
    let graph = open();
    ingest(&graph, "crm", &[r#"{"op":"upsert_organization","external_id":"c9","name":"Nine"}"#]);
    assert_eq!(graph.changes_since(0, 10).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn pruning_drops_changes_older_than_the_window_but_never_the_newest() {
    let t = temp_graph();
    let g = &t.graph;
    let day = 86_400_000;
    let now = Timestamp::now();
    let at = |days_ago: i64| Timestamp(now.0 - days_ago * day);
    for (n, days_ago) in [(1, 100), (2, 50), (3, 1)] {
        let op = op(&format!(r#"{{"op":"upsert_organization","external_id":"c{n}","name":"Org {n}"}}"#));
        g.ingest(IngestBatch { now: at(days_ago).to_datetime(), ..IngestBatch::trusted("crm", vec![op]) }).unwrap();
    }
    assert_eq!(g.prune_changes(at(60)).unwrap(), 1, "only the 100-day-old entry is outside a 60-day window");
    assert_eq!(g.changes_since(0, 10).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(g.prune_changes(now).unwrap(), 1, "everything is old now, but the newest stays");
    assert_eq!(g.changes_since(0, 10).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [3]);
    // Numbering goes on from the newest.
    ingest(g, "crm", &[r#"{"op":"upsert_organization","external_id":"c4","name":"Org 4"}"#]);
    assert_eq!(g.last_change().unwrap(), Some(4));
}

fn org(n: u32) -> String {
    format!(r#"{{"op":"upsert_organization","external_id":"c{n}","name":"Org {n}"}}"#)
}

#[test]
fn a_consumer_moves_with_its_outputs_in_one_commit_and_only_forward() {
    let t = temp_graph();
    let g = &t.graph;
    ingest(g, "crm", &[&org(1)]);
    assert_eq!(g.register_consumer("signals").unwrap(), 1, "a new consumer starts at the newest change");
    ingest(g, "crm", &[&org(2), &org(3)]);
    assert_eq!(g.register_consumer("signals").unwrap(), 1, "registering again keeps the position");

    let unread = g.changes_since(1, 10).unwrap();
    assert_eq!(unread.iter().map(|c| c.seq).collect::<Vec<_>>(), [2, 3]);
    g.advance_consumer("signals", 3, vec![(b"signals/org-count".to_vec(), Some(b"3".to_vec()))]).unwrap();
    assert_eq!(g.consumers().unwrap(), [("signals".to_owned(), 3)]);
    assert_eq!(g.derived(b"signals/org-count").unwrap().as_deref(), Some(&b"3"[..]));

    // Back, or past the newest change: refused, and neither the position nor the outputs move.
    for to in [2, 4] {
        let err = g.advance_consumer("signals", to, vec![(b"signals/org-count".to_vec(), None)]).unwrap_err();
        assert!(matches!(err, GraphError::ConsumerMove { at: 3, newest: 3, .. }), "{err}");
    }
    assert_eq!(g.consumers().unwrap(), [("signals".to_owned(), 3)]);
    assert!(g.derived(b"signals/org-count").unwrap().is_some());
    let err = g.advance_consumer("rules", 3, Vec::new()).unwrap_err();
    assert!(matches!(&err, GraphError::UnknownConsumer(name) if name == "rules"), "{err}");
}

#[test]
fn pruning_never_removes_an_entry_a_registered_consumer_has_not_passed() {
    let t = temp_graph();
    let g = &t.graph;
    ingest(g, "crm", &[&org(1)]);
    g.register_consumer("outbox").unwrap();
    g.register_consumer("signals").unwrap();
    ingest(g, "crm", &[&org(2), &org(3), &org(4)]);
    let everything = Timestamp::now().plus_days(1);
    g.advance_consumer("signals", 4, Vec::new()).unwrap();
    assert_eq!(g.prune_changes(everything).unwrap(), 1, "the outbox is at 1: only entry 1 may go");
    g.advance_consumer("outbox", 2, Vec::new()).unwrap();
    assert_eq!(g.prune_changes(everything).unwrap(), 1);
    assert_eq!(g.changes_since(0, 10).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4]);
    g.unregister_consumer("outbox").unwrap();
    assert_eq!(g.prune_changes(everything).unwrap(), 1, "without it, all but the newest go");
    assert_eq!(g.changes_since(0, 10).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [4]);
}
