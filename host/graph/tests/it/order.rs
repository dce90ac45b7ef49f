//! One graph whatever the order: a world known to three sources (a CRM, a mailbox, a
//! calendar) imported in every order of the sources and in shuffled batches must fold to
//! the same context for every organization.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rapport_graph::model::{ChangeOp, NodeId, RecordKind, Timestamp};
use rapport_graph::{ContextQuery, DEFAULT_MIN_SCORE, Graph, Suggestion, SuggestionCase};
use rapport_ops::{DealRecord, Direction, IngestBatch, InteractionKind, InteractionRecord, Operation, OrganizationRecord, PersonRecord};

use super::{TempGraph, rules, temp_graph_with};

/// The time every context is read at.
fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn days_ago(days: i64) -> DateTime<Utc> {
    at() - Duration::days(days)
}

/// When Maria moved from Oldco to Newco, and Tom from Initech to Globex.
const MARIA_MOVED: i64 = 60;
const TOM_MOVED: i64 = 100;

/// Our employees, as the CRM knows them.
const EMPLOYEES: [(&str, &str, &str); 3] = [
    ("anna", "Anna Berg", "anna@northwind.example"),
    ("ben", "Benjamin Ortiz", "ben@northwind.example"),
    ("chloe", "Chloe Lam", "chloe@northwind.example"),
];

/// Client contacts: CRM id, CRM name, address, the name mail headers give, employer.
const CONTACTS: [(&str, &str, &str, &str, &str); 3] = [
    ("rafael", "Rafael Alvarez", "rafael@acme.example", "Rafa", "acme"),
    ("robert", "Robert Chen", "bob.chen@globex.example", "Bob Chen", "globex"),
    ("katherine", "Katherine Ng", "kate.ng@initech.example", "Kate", "initech"),
];

/// A world as three sources know it: each source's operations in their natural order.
struct World {
    sources: Vec<(&'static str, Vec<Operation>)>,
}

/// A tiny deterministic generator: the test needs no randomness crate and repeats exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn world() -> World {
    let mut crm: Vec<Operation> = Vec::new();
    let mut mail: Vec<Operation> = Vec::new();
    let mut calendar: Vec<Operation> = Vec::new();
    let seen = days_ago(1);
    let mut organizations = vec![
        ("acme", "Acme Corp", "acme.example"),
        ("globex", "Globex", "globex.example"),
        ("initech", "Initech", "initech.example"),
        ("oldco", "Oldco Ltd", "oldco.example"),
        ("newco", "Newco GmbH", "newco.example"),
    ];
    let generated: Vec<(String, String, String)> =
        (0..4).map(|k| (format!("co{k}"), format!("Company {k}"), format!("company{k}.example"))).collect();
    organizations.extend(generated.iter().map(|(id, name, domain)| (id.as_str(), name.as_str(), domain.as_str())));
    for (index, (id, name, domain)) in organizations.iter().enumerate() {
        let owner = EMPLOYEES[index % EMPLOYEES.len()].0;
        crm.push(OrganizationRecord::new(*id, *name).domain(*domain).owner(owner).seen_at(seen).into());
        crm.push(DealRecord::new(format!("deal-{id}"), *id, format!("{name} renewal"), "proposal").seen_at(seen).into());
    }
    for (id, name, email) in EMPLOYEES {
        crm.push(PersonRecord::new(id, name).email(email).seen_at(seen).into());
        // Mail and calendar know employees by their header names.
        let first = name.split(' ').next().unwrap();
        mail.push(PersonRecord::new(email, first).email(email).seen_at(seen).into());
        calendar.push(PersonRecord::new(email, first).email(email).seen_at(seen).into());
    }
    // Client people: the CRM's full names, mail's short ones.
    let mut correspondents: Vec<(String, &str)> = Vec::new();
    for (id, name, email, header_name, employer) in CONTACTS {
        crm.push(PersonRecord::new(id, name).email(email).works_at(employer).title("Head of Operations").seen_at(seen).into());
        mail.push(PersonRecord::new(email, header_name).email(email).seen_at(seen).into());
        correspondents.push((email.to_owned(), employer));
    }
    for (k, (id, _, domain)) in generated.iter().enumerate() {
        for j in 0..3 {
            let email = format!("contact{j}@{domain}");
            crm.push(
                PersonRecord::new(format!("c{k}-{j}"), format!("Given{j} Surname{k}")).email(&email).works_at(id).seen_at(seen).into(),
            );
            correspondents.push((email, id.as_str()));
        }
    }
    // CRM duplicates under an initial and nicknames, with no address: they change no
    // context, and the review list must find them.
    crm.push(PersonRecord::new("r-alvarez", "R. Alvarez").phone("+1 555 0100").works_at("acme").seen_at(seen).into());
    crm.push(PersonRecord::new("kate-ng", "Kate Ng").phone("+1 555 0101").works_at("initech").seen_at(seen).into());
    crm.push(
        PersonRecord::new("sebastian", "Sebastian Müller").email("sebastian.mueller@company0.example").works_at("co0").seen_at(seen).into(),
    );
    crm.push(PersonRecord::new("seb", "Seb Müller").phone("+49 555 0102").works_at("co0").seen_at(seen).into());
    crm.push(PersonRecord::new("lena", "Lena Park").email("lena@acme.example").works_at("acme").seen_at(seen).into());
    // Look-alikes that are different people: one name at two companies, both busy all
    // along; alike given names with nothing else in common; one surname, unlike given
    // names; a surname given as an initial.
    crm.push(PersonRecord::new("smith-1", "John Smith").email("john.smith@company1.example").works_at("co1").seen_at(seen).into());
    crm.push(PersonRecord::new("smith-2", "John Smith").email("john.smith@company2.example").works_at("co2").seen_at(seen).into());
    crm.push(PersonRecord::new("chris", "Chris Lee").phone("+1 555 0103").works_at("co1").seen_at(seen).into());
    crm.push(PersonRecord::new("christopher", "Christopher Lee").phone("+1 555 0104").works_at("co3").seen_at(seen).into());
    crm.push(PersonRecord::new("wei", "Wei Zhang").phone("+1 555 0105").works_at("co0").seen_at(seen).into());
    crm.push(PersonRecord::new("li", "Li Zhang").phone("+1 555 0106").works_at("co1").seen_at(seen).into());
    crm.push(PersonRecord::new("laura-kim", "Laura Kim").phone("+1 555 0107").works_at("co2").seen_at(seen).into());
    crm.push(PersonRecord::new("laura-k", "Laura K.").phone("+1 555 0108").works_at("co3").seen_at(seen).into());
    // Two job changes, each a CRM record per employment with its own address; Tom's new
    // one is a personal address, so his new employment files his mail.
    let mut employment = |id: &str, name: &str, email: &str, org: &str, moved: i64, old: bool| {
        let (since, until) = if old { (None, Some(days_ago(moved))) } else { (Some(days_ago(moved)), None) };
        crm.push(PersonRecord::new(id, name).email(email).employment(org, since, until).seen_at(seen).into());
    };
    employment("maria-old", "Maria Lopez", "maria@oldco.example", "oldco", MARIA_MOVED, true);
    employment("maria-new", "Maria Lopez", "maria.lopez@newco.example", "newco", MARIA_MOVED, false);
    employment("tom-old", "Tom Berg", "tom@initech.example", "initech", TOM_MOVED, true);
    employment("tom-new", "Tom Berg", "tom.berg@gmail.com", "globex", TOM_MOVED, false);

    let mut rng = Rng(0x5eed);
    let mut n = 0;
    // Subjects name the interaction and its age, so a timeline reads as what was planted.
    let mut message = |out: &mut Vec<Operation>, kind: InteractionKind, topic: &str, days: i64, employee: &str, theirs: &[&str]| {
        n += 1;
        let direction = if n % 2 == 0 { Direction::Inbound } else { Direction::Outbound };
        let mut record = InteractionRecord::new(format!("{kind:?}-{n}"), kind, days_ago(days))
            .direction(direction)
            .subject(format!("{topic} {n} {days}"))
            .participant_email(employee);
        for address in theirs {
            record = record.participant_email(*address);
        }
        out.push(record.into());
    };
    for (index, (address, _)) in correspondents.iter().enumerate() {
        let employee = EMPLOYEES[index % EMPLOYEES.len()].2;
        for _ in 0..6 {
            let days = rng.below(200) as i64;
            message(&mut mail, InteractionKind::Email, "mail", days, employee, &[address.as_str()]);
        }
        let days = rng.below(200) as i64;
        message(&mut calendar, InteractionKind::Meeting, "meeting", days, employee, &[address.as_str(), "it-helpdesk@northwind.example"]);
    }
    // Maria wrote from Oldco's address before her move and from Newco's after.
    for days in [80, 120] {
        message(&mut mail, InteractionKind::Email, "maria", days, "ben@northwind.example", &["maria@oldco.example"]);
    }
    for days in [10, 40] {
        message(&mut mail, InteractionKind::Email, "maria", days, "ben@northwind.example", &["maria.lopez@newco.example"]);
    }
    // Tom met us from Initech's address before his move, and from a personal one on
    // both sides of it.
    for days in [110, 130] {
        message(&mut calendar, InteractionKind::Meeting, "tom", days, "chloe@northwind.example", &["tom@initech.example"]);
    }
    for days in [10, 40, 80, 140] {
        message(&mut calendar, InteractionKind::Meeting, "tom", days, "chloe@northwind.example", &["tom.berg@gmail.com"]);
    }
    // Rafael from a personal address: nothing ties that mail to Acme until a person says
    // the address is his; a meeting with his colleague puts it on the review list.
    mail.push(PersonRecord::new("rafa.alvarez@gmail.com", "Rafael Alvarez").email("rafa.alvarez@gmail.com").seen_at(seen).into());
    message(&mut mail, InteractionKind::Email, "personal", 3, "anna@northwind.example", &["rafa.alvarez@gmail.com"]);
    message(
        &mut calendar,
        InteractionKind::Meeting,
        "colleague",
        5,
        "anna@northwind.example",
        &["lena@acme.example", "rafa.alvarez@gmail.com"],
    );
    for days in [15, 75, 140] {
        message(&mut mail, InteractionKind::Email, "smith", days, "ben@northwind.example", &["john.smith@company1.example"]);
        message(&mut mail, InteractionKind::Email, "smith", days + 1, "ben@northwind.example", &["john.smith@company2.example"]);
    }
    // Machines: Acme's newsletter, and a helpdesk robot writing alone.
    for days in [2, 30, 95] {
        mail.push(
            InteractionRecord::new(format!("newsletter-{days}"), InteractionKind::Email, days_ago(days))
                .direction(Direction::Inbound)
                .subject(format!("newsletter {days}"))
                .participant_email("news@acme.example")
                .participant_email("anna@northwind.example")
                .automated()
                .into(),
        );
        message(&mut mail, InteractionKind::Email, "robot", days, "it-helpdesk@northwind.example", &["noreply@globex.example"]);
    }
    World { sources: vec![("crm", crm), ("mail", mail), ("calendar", calendar)] }
}

fn ingest_at(graph: &Graph, source: &str, operations: Vec<Operation>) {
    let mut batch = IngestBatch::trusted(source, operations);
    batch.now = at();
    let report = graph.ingest(batch).unwrap();
    assert!(report.committed && report.skipped.is_empty(), "{:?}", report.skipped);
}

/// Every order of the three sources, whole.
fn source_orders() -> Vec<Vec<usize>> {
    vec![vec![0, 1, 2], vec![0, 2, 1], vec![1, 0, 2], vec![1, 2, 0], vec![2, 0, 1], vec![2, 1, 0]]
}

/// The world's operations shuffled across sources and cut into small batches.
fn shuffled_batches(world: &World, seed: u64) -> Vec<(&'static str, Vec<Operation>)> {
    let mut all: Vec<(&'static str, Operation)> =
        world.sources.iter().flat_map(|(source, ops)| ops.iter().map(move |op| (*source, op.clone()))).collect();
    let mut rng = Rng(seed);
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i + 1));
    }
    let mut batches: Vec<(&'static str, Vec<Operation>)> = Vec::new();
    for (source, op) in all {
        match batches.last_mut() {
            Some((last, ops)) if *last == source && ops.len() < 1 + rng.below(8) => ops.push(op),
            _ => batches.push((source, vec![op])),
        }
    }
    batches
}

/// The CRM's organizations.
const ORGANIZATIONS: [&str; 9] = ["acme", "globex", "initech", "oldco", "newco", "co0", "co1", "co2", "co3"];

/// The subjects on an organization's timeline (its CRM id), sorted.
fn timeline(graph: &Graph, org: &str) -> Vec<String> {
    let id = graph.resolve("crm", RecordKind::Organization, org).unwrap().unwrap();
    let page = graph.timeline(id, None, Timestamp::from(at() + Duration::days(1)), None, 10_000).unwrap();
    assert!(page.next.is_none());
    let mut subjects: Vec<String> = page.items.iter().map(|item| item.subject.clone().unwrap_or_default()).collect();
    subjects.sort();
    subjects
}

/// What a reader sees of every CRM organization and of some people, ids replaced by
/// what they name (ids differ between runs).
fn snapshot(graph: &Graph) -> BTreeMap<String, String> {
    let query = ContextQuery { at: Timestamp::from(at()), recent: 1_000 };
    let name = |id: NodeId| graph.person(id).unwrap().name;
    let mut out = BTreeMap::new();
    for external_id in ORGANIZATIONS {
        let id = graph.resolve("crm", RecordKind::Organization, external_id).unwrap().unwrap();
        let context = graph.organization_context(id, query).unwrap();
        let org = &context.organization;
        let mut text = String::new();
        let mut domains = org.domains.clone();
        domains.sort();
        writeln!(text, "{} {domains:?} owner {:?}", org.name, org.owner.map(name)).unwrap();
        let mut people: Vec<String> = context
            .people
            .iter()
            .map(|m| {
                let mut emails = m.person.emails.clone();
                emails.sort();
                format!("{} {emails:?} {:?}..{:?}", m.person.name, m.since, m.until)
            })
            .collect();
        people.sort();
        writeln!(text, "people {people:?}").unwrap();
        let mut holders: Vec<(String, usize)> = context.relationship_holders.iter().map(|h| (h.name.clone(), h.interactions_90d)).collect();
        holders.sort();
        writeln!(text, "holders {holders:?}").unwrap();
        writeln!(text, "engagement {:?}", context.engagement).unwrap();
        let deals: Vec<&str> = context.open_deals.iter().map(|d| d.name.as_str()).collect();
        writeln!(text, "deals {deals:?}").unwrap();
        let mut recent: Vec<String> = context
            .recent_interactions
            .iter()
            .map(|item| {
                let mut employees: Vec<String> = item.employees.iter().map(|e| name(*e)).collect();
                employees.sort();
                format!("{} {employees:?}", item.subject.clone().unwrap_or_default())
            })
            .collect();
        recent.sort();
        writeln!(text, "interactions {recent:?}").unwrap();
        writeln!(text, "timeline {:?}", timeline(graph, external_id)).unwrap();
        out.insert(external_id.to_owned(), text);
    }
    let mut review: Vec<String> = graph
        .duplicates(DEFAULT_MIN_SCORE, 1_000)
        .unwrap()
        .iter()
        .map(|s| {
            let mut names = [s.a, s.b].map(|id| {
                let person = graph.person(id).unwrap();
                format!("{} {:?}", person.name, person.emails.iter().min())
            });
            names.sort();
            format!("{:?} {} {names:?} {:?}", s.case, s.score, s.reasons)
        })
        .collect();
    review.sort();
    out.insert("review".to_owned(), format!("{review:#?}"));
    for contact in ["rafael", "robert", "katherine", "anna", "maria-old", "maria-new", "tom-new"] {
        let person = graph.person(graph.resolve("crm", RecordKind::Person, contact).unwrap().unwrap()).unwrap();
        let mut emails = person.emails.clone();
        emails.sort();
        out.insert(format!("person {contact}"), format!("{} {emails:?} title {:?}", person.name, person.title));
    }
    out
}

fn fresh() -> TempGraph {
    temp_graph_with(rules().with_source_priority(["crm".to_owned(), "calendar".to_owned(), "mail".to_owned()]))
}

#[test]
fn every_order_of_the_sources_and_of_their_batches_folds_to_one_graph() {
    let world = world();
    let mut runs: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for order in source_orders() {
        let t = fresh();
        for &index in &order {
            let (source, ops) = &world.sources[index];
            ingest_at(&t.graph, source, ops.clone());
        }
        let names: Vec<&str> = order.iter().map(|&i| world.sources[i].0).collect();
        runs.push((names.join(" → "), snapshot(&t.graph)));
    }
    for seed in [1_u64, 2, 3] {
        let t = fresh();
        let batches = shuffled_batches(&world, seed);
        assert!(batches.len() > 50, "the shuffle interleaves the sources");
        for (source, ops) in batches {
            ingest_at(&t.graph, source, ops);
        }
        runs.push((format!("shuffled batches, seed {seed}"), snapshot(&t.graph)));
    }
    let (first_name, first) = &runs[0];
    for (name, snapshot) in &runs[1..] {
        for (key, text) in first {
            assert_eq!(&snapshot[key], text, "`{key}` folds differently after `{name}` than after `{first_name}`");
        }
    }

    // And the one graph is the right one.
    let acme = &first["acme"];
    assert!(acme.contains("mail ") && acme.contains("meeting "), "Acme's timeline holds its mail and meetings: {acme}");
    assert!(acme.contains("newsletter"), "the newsletter is on the timeline: {acme}");
    assert!(!acme.contains("personal "), "mail from a personal address is Acme's only once the address is known to be Rafael's");
    assert_eq!(
        first["person robert"], r#"Robert Chen ["bob.chen@globex.example"] title Some("Head of Operations")"#,
        "the CRM's name, not the header's"
    );
    assert!(first["person katherine"].starts_with("Katherine Ng "));
    assert!(first["person anna"].starts_with("Anna Berg "));
    for (key, text) in first {
        assert!(!text.contains("it-helpdesk") && !text.contains("noreply"), "a role address is nobody's holder or person: {key}: {text}");
    }
}

#[test]
fn attribution_follows_identity_by_the_interactions_time_when_the_crm_comes_last() {
    let world = world();
    let t = fresh();
    for index in [1, 2, 0] {
        let (source, ops) = &world.sources[index];
        ingest_at(&t.graph, source, ops.clone());
    }
    let graph = &t.graph;
    let planted = |org: &str, topic: &str| -> Vec<i64> {
        let mut days: Vec<i64> = timeline(graph, org)
            .iter()
            .filter(|s| s.starts_with(&format!("{topic} ")))
            .map(|s| s.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        days.sort_unstable();
        days
    };
    // Each mail counts for the employer of the address it came from.
    assert_eq!(planted("oldco", "maria"), [80, 120]);
    assert_eq!(planted("newco", "maria"), [10, 40]);
    // A personal address says nothing: the employment at the meeting's time decides.
    assert_eq!(planted("initech", "tom"), [110, 130], "Initech's address");
    assert_eq!(planted("globex", "tom"), [10, 40, 80], "the personal address's record works at Globex since the move");
    // Before the move that record worked nowhere: the meeting waits for the two Toms to
    // be known as one.
    assert!(ORGANIZATIONS.iter().all(|org| !planted(org, "tom").contains(&140)));
    assert!(planted("acme", "personal").is_empty());

    // Automated and role-only mail stays off engagement, not off the timeline.
    let query = ContextQuery { at: Timestamp::from(at()), recent: 1_000 };
    let acme = graph.organization_context(graph.resolve("crm", RecordKind::Organization, "acme").unwrap().unwrap(), query).unwrap();
    let in_window: Vec<&str> = acme
        .recent_interactions
        .iter()
        .filter(|i| i.occurred_at >= Timestamp::from(days_ago(180)))
        .filter_map(|i| i.subject.as_deref())
        .collect();
    let newsletters = in_window.iter().filter(|s| s.starts_with("newsletter")).count();
    assert_eq!(newsletters, 3, "{in_window:?}");
    let counted = acme.engagement.interactions_last_90d + acme.engagement.interactions_previous_90d;
    assert_eq!(counted, in_window.len() - newsletters, "the newsletters do not count");
    let globex = timeline(graph, "globex");
    assert!(globex.iter().any(|s| s.starts_with("robot")), "a robot's mail to Globex's noreply is filed: {globex:?}");
    let globex_context =
        graph.organization_context(graph.resolve("crm", RecordKind::Organization, "globex").unwrap().unwrap(), query).unwrap();
    assert!(globex_context.relationship_holders.iter().all(|h| !h.name.is_empty() && !h.name.contains("helpdesk")));
}

#[test]
fn merges_unmerges_and_a_domain_learned_later_refile_the_interactions_involved() {
    let t = fresh();
    let graph = &t.graph;
    let rafael_mail = InteractionRecord::new("m-1", InteractionKind::Email, days_ago(3))
        .subject("from a personal address")
        .participant_email("anna@northwind.example")
        .participant_email("rafa.alvarez@gmail.com");
    let kate_mail = InteractionRecord::new("m-2", InteractionKind::Email, days_ago(4))
        .subject("from a work address")
        .participant_email("anna@northwind.example")
        .participant_email("kate@initech.example");
    ingest_at(graph, "mail", vec![rafael_mail.into(), kate_mail.into()]);
    ingest_at(
        graph,
        "crm",
        vec![
            OrganizationRecord::new("acme", "Acme Corp").domain("acme.example").into(),
            OrganizationRecord::new("initech", "Initech").into(),
            PersonRecord::new("rafael", "Rafael Alvarez").email("rafael@acme.example").works_at("acme").into(),
        ],
    );
    assert!(timeline(graph, "acme").is_empty(), "nothing ties the personal address to Acme yet");
    assert!(timeline(graph, "initech").is_empty(), "Initech has no domain yet");

    // The organization learns its domain: the mail written from it is filed, in that batch.
    let mut batch = IngestBatch::trusted("crm", vec![OrganizationRecord::new("initech", "Initech").domain("initech.example").into()]);
    batch.now = at();
    let report = graph.ingest(batch).unwrap();
    assert_eq!(report.refiled, 1);
    assert_eq!(timeline(graph, "initech"), ["from a work address"]);

    // A person decides the personal address is Rafael's: his mail moves to Acme.
    let rafael = graph.resolve("crm", RecordKind::Person, "rafael").unwrap().unwrap();
    let personal = graph.search(RecordKind::Person, "rafa.alvarez@gmail.com", 1).unwrap()[0];
    let before = graph.last_change().unwrap().unwrap();
    let merge = graph.merge_manually(rafael, personal, "reviewed".into(), Timestamp::from(at())).unwrap();
    assert_eq!(timeline(graph, "acme"), ["from a personal address"]);
    let acme = graph.resolve("crm", RecordKind::Organization, "acme").unwrap().unwrap();
    let refiled: Vec<_> = graph.changes_since(before, 100).unwrap().into_iter().filter(|c| c.op == ChangeOp::Refile).collect();
    assert_eq!(refiled.len(), 1, "the merge re-filed the one mail, in its own commit");
    assert!(refiled[0].clusters.contains(&acme), "the feed names the organization it moved to: {refiled:?}");
    let query = ContextQuery { at: Timestamp::from(at()), recent: 10 };
    assert_eq!(graph.organization_context(acme, query).unwrap().engagement.interactions_last_90d, 1);

    // Undoing the merge takes it back out.
    let before = graph.last_change().unwrap().unwrap();
    graph.unmerge(merge.id, Timestamp::from(at())).unwrap();
    assert!(timeline(graph, "acme").is_empty());
    assert_eq!(graph.organization_context(acme, query).unwrap().engagement.interactions_last_90d, 0);
    let refiled = graph.changes_since(before, 100).unwrap().into_iter().filter(|c| c.op == ChangeOp::Refile).count();
    assert_eq!(refiled, 1);

    // A call the CRM logged with its contact, whose employment had ended by then: it
    // counts for nobody, until the CRM corrects the employment.
    let kate = |until: Option<DateTime<Utc>>| PersonRecord::new("kate", "Katherine Ng").employment("initech", None, until);
    let call = InteractionRecord::new("c-1", InteractionKind::Call, days_ago(4))
        .subject("a call")
        .participant("kate")
        .participant_email("anna@northwind.example");
    ingest_at(graph, "crm", vec![kate(Some(days_ago(10))).into(), call.into()]);
    assert_eq!(timeline(graph, "initech"), ["from a work address"]);
    let mut batch = IngestBatch::trusted("crm", vec![kate(None).into()]);
    batch.now = at();
    assert_eq!(graph.ingest(batch).unwrap().refiled, 1);
    assert_eq!(timeline(graph, "initech"), ["a call", "from a work address"]);
}

/// A record by source and external id.
type Record = (&'static str, &'static str);

/// The pairs planted in the world that are one person, by CRM or mail id.
const PLANTED: [(Record, Record, SuggestionCase); 6] = [
    (("crm", "r-alvarez"), ("crm", "rafael"), SuggestionCase::SameOrganization),
    (("crm", "kate-ng"), ("crm", "katherine"), SuggestionCase::SameOrganization),
    (("crm", "seb"), ("crm", "sebastian"), SuggestionCase::SameOrganization),
    (("mail", "rafa.alvarez@gmail.com"), ("crm", "rafael"), SuggestionCase::PersonalAddress),
    (("crm", "maria-old"), ("crm", "maria-new"), SuggestionCase::JobChange),
    (("crm", "tom-old"), ("crm", "tom-new"), SuggestionCase::JobChange),
];

#[test]
fn the_review_list_finds_the_planted_hard_cases_and_not_the_look_alikes() {
    let world = world();
    let t = fresh();
    for index in [1, 2, 0] {
        let (source, ops) = &world.sources[index];
        ingest_at(&t.graph, source, ops.clone());
    }
    let graph = &t.graph;
    let cluster = |(source, id): (&str, &str)| {
        let node = graph.resolve(source, RecordKind::Person, id).unwrap().unwrap();
        graph.person(node).unwrap().id
    };
    let pair = |x: NodeId, y: NodeId| (x.min(y), x.max(y));
    let suggested = graph.duplicates(DEFAULT_MIN_SCORE, 1_000).unwrap();
    assert!(suggested.windows(2).all(|w| w[0].score >= w[1].score), "ranked by score");
    let found: BTreeMap<(NodeId, NodeId), &Suggestion> = suggested.iter().map(|s| (pair(s.a, s.b), s)).collect();
    let mut hits = 0;
    for (x, y, case) in PLANTED {
        let key = pair(cluster(x), cluster(y));
        let suggestion = found.get(&key).unwrap_or_else(|| panic!("{x:?} ~ {y:?} is not suggested: {suggested:#?}"));
        assert_eq!(suggestion.case, case, "{x:?} ~ {y:?}: {suggestion:?}");
        assert!(!suggestion.reasons.is_empty());
        hits += 1;
    }
    let precision = hits as f64 / suggested.len() as f64;
    let recall = hits as f64 / PLANTED.len() as f64;
    println!(
        "review list on the planted world: {} suggested, {hits} of {} planted; precision {precision:.2}, recall {recall:.2}",
        suggested.len(),
        PLANTED.len()
    );
    assert_eq!(suggested.len(), PLANTED.len(), "only the planted pairs score above the threshold: {suggested:#?}");

    // The look-alikes are listed only when asked for everything, and scored below.
    let everything = graph.duplicates(0.0, 1_000).unwrap();
    for (x, y) in [("smith-1", "smith-2"), ("chris", "christopher")] {
        let key = pair(cluster(("crm", x)), cluster(("crm", y)));
        let look_alike = everything.iter().find(|s| pair(s.a, s.b) == key).unwrap_or_else(|| panic!("{x} ~ {y} is a candidate"));
        assert!(look_alike.score < DEFAULT_MIN_SCORE && look_alike.case == SuggestionCase::NamesOnly, "{look_alike:?}");
    }
    for (x, y) in [("wei", "li"), ("laura-kim", "laura-k")] {
        let key = pair(cluster(("crm", x)), cluster(("crm", y)));
        assert!(everything.iter().all(|s| pair(s.a, s.b) != key), "{x} ~ {y} are not alike at all");
    }

    // Accepting a job change merges the two Toms and ends the old employment at the move,
    // so the meeting from his personal address before it is Initech's now.
    let job_change = found[&pair(cluster(("crm", "tom-old")), cluster(("crm", "tom-new")))].clone();
    let change = job_change.job_change.clone().expect("what accepting records");
    assert_eq!(change.person, cluster(("crm", "tom-old")));
    assert!(!timeline(graph, "initech").iter().any(|s| s.ends_with(" 140")));
    let merge = graph.accept_duplicate(job_change.a, job_change.b, Timestamp::from(at())).unwrap();
    assert!(merge.reason.contains("job change"), "{merge:?}");
    let initech = timeline(graph, "initech");
    assert!(initech.iter().any(|s| s.starts_with("tom ") && s.ends_with(" 140")), "{initech:?}");
    let globex = timeline(graph, "globex");
    assert!(globex.iter().filter(|s| s.starts_with("tom ")).count() == 3, "{globex:?}");
    let tom = graph.person(cluster(("crm", "tom-old"))).unwrap();
    assert!(tom.provenance.iter().any(|p| p.source == rapport_graph::REVIEW_SOURCE), "the decision is a record of its own: {tom:?}");

    // Rejecting pins the pair apart: off the list for good.
    let initial = &found[&pair(cluster(("crm", "r-alvarez")), cluster(("crm", "rafael")))];
    graph.reject_duplicate(initial.a, initial.b).unwrap();
    let left = graph.duplicates(0.0, 1_000).unwrap();
    assert!(left.iter().all(|s| pair(s.a, s.b) != pair(initial.a, initial.b)));
    assert!(left.iter().all(|s| pair(s.a, s.b) != pair(job_change.a, job_change.b)));
}
