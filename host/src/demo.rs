//! The demo world: a deterministic, realistic small company and its clients, with planted
//! situations that the graph (and, later, the rules) must surface.
//!
//! Same seed and anchor time, same world. The world arrives as record operations from
//! several sources (a CRM, a mail archive, a support desk), exactly as real sources would
//! send them, so loading it exercises ingest and identity resolution end to end.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use crate::graph::model::Timestamp;
use crate::graph::{Graph, GraphError, IngestBatch, InvalidPolicy};
use crate::ops::{
    DealRecord, DealStatus, Direction, Employment, InteractionKind, InteractionRecord, Lifecycle, ObservationRecord, Operation,
    OrganizationRecord, Participant, PersonRecord, Role, Subject,
};

/// Our own company's domain in the demo; configure it as an internal domain.
pub const INTERNAL_DOMAIN: &str = "northwind.example";

/// Names of the organizations planted with a situation worth an alert.
pub mod planted {
    /// A key client nobody has touched for 45 days.
    pub const SILENT_KEY_CLIENT: &str = "Halcyon Freight";
    /// A client only one employee talks to.
    pub const SINGLE_THREADED: &str = "Marlow Biotech";
    /// A client whose engagement halved in the last 90 days.
    pub const HALVED_ENGAGEMENT: &str = "Corvid Analytics";
    /// A client with a deal stuck in negotiation for 60 days.
    pub const STALLED_DEAL: &str = "Pinecrest Energy";
    /// The support desk's copy of the silent key client (merged by domain).
    pub const SUPPORT_DUPLICATE: &str = "Halcyon Freight Ltd";
    /// The support desk's external id of a contact it knows only by name and a private
    /// address: a likely duplicate for review, not a merge.
    pub const REVIEW_CONTACT: &str = "sd-user-2";
    /// Days of silence at the silent key client.
    pub const SILENT_DAYS: i64 = 45;
    /// Days the stalled deal has spent in its stage.
    pub const STALLED_DAYS: i64 = 60;
}

/// One source's operations, in the order it sends them.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The connection name.
    pub source: &'static str,
    /// Its operations.
    pub operations: Vec<Operation>,
}

/// Size of the generated world.
#[derive(Debug, Clone, Copy)]
pub struct WorldSpec {
    /// Random seed.
    pub seed: u64,
    /// Multiplier of organizations, people, deals and interactions (1 = the base world).
    pub scale: usize,
    /// "Now" of the world; interactions span the 18 months before it.
    pub now: DateTime<Utc>,
}

/// Counts of a generated world.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorldCounts {
    /// Organizations, ours included.
    pub organizations: usize,
    /// People, employees included.
    pub people: usize,
    /// Employees.
    pub employees: usize,
    /// Deals.
    pub deals: usize,
    /// Interactions.
    pub interactions: usize,
    /// Observations.
    pub observations: usize,
}

/// SplitMix64: tiny, fast and stable across releases, which a seeded world needs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Maya", "Noah", "Olga", "Pavel",
    "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Xenia", "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dmitri", "Eva", "Felix",
];
const LAST: &[&str] = &[
    "Novak", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen", "Keller", "Laurent", "Moreau",
    "Nakamura", "Olsen", "Petrov", "Rossi", "Schmidt", "Tanaka", "Ueda", "Varga", "Weber", "Young", "Zeman",
];
const NAME_A: &[&str] = &[
    "Blue", "North", "Silver", "Granite", "Amber", "Cedar", "Harbor", "Iron", "Maple", "Orbit", "Prism", "Quartz", "River", "Summit",
    "Tidal", "Vector", "Willow", "Zenith", "Alder", "Beacon",
];
const NAME_B: &[&str] = &[
    "Logistics",
    "Labs",
    "Systems",
    "Foods",
    "Health",
    "Capital",
    "Media",
    "Robotics",
    "Textiles",
    "Energy",
    "Retail",
    "Software",
    "Mining",
    "Pharma",
    "Studios",
    "Analytics",
];
const STAGES: &[&str] = &["qualification", "discovery", "proposal", "negotiation"];
const TAGS: &[&str] = &["decision-style", "risk", "communication-preference", "pain", "reaction-speed", "price-sensitivity", "motive"];
const NOTES: &[&str] = &[
    "Needs the deadline because the investor is pushing for a Q3 launch",
    "Prefers a call over email; answers within the hour",
    "Decisions go through the CFO; expect two weeks per signature",
    "Very price sensitive since the merger",
    "Only trusts people who visited their warehouse",
    "Unhappy with onboarding speed last spring",
    "Champion is moving to another team next quarter",
];

struct Org {
    external_id: String,
    name: String,
    domain: String,
    role: Role,
    /// Relative activity.
    weight: usize,
    /// Employees who handle the account.
    team: Vec<usize>,
    /// External ids of its people.
    people: Vec<(String, String)>,
    /// Percent change of activity from the first to the last month (-60..=60).
    trend: i64,
}

/// Generates the world for `spec`.
pub fn generate(spec: WorldSpec) -> (Vec<SourceBatch>, WorldCounts) {
    let mut rng = Rng(spec.seed);
    let scale = spec.scale.max(1);
    let mut counts = WorldCounts::default();
    let mut crm = Vec::new();
    let mut mail = Vec::new();
    let mut support = Vec::new();
    let days = |d: i64| spec.now - Duration::days(d);

    crm.push(Operation::UpsertOrganization(OrganizationRecord {
        external_id: "company-0".into(),
        name: "Northwind Consulting".into(),
        domains: vec![INTERNAL_DOMAIN.into()],
        roles: vec![Role::Internal],
        lifecycle: Some(Lifecycle::Active),
        owner: None,
        seen_at: None,
    }));
    let employees: Vec<(String, String)> = (0..30)
        .map(|i| {
            let (first, last) = (FIRST[i % FIRST.len()], LAST[(i * 7) % LAST.len()]);
            let email = format!("{}.{}@{INTERNAL_DOMAIN}", first.to_lowercase(), last.to_lowercase());
            (format!("employee-{i}"), email)
        })
        .collect();
    for (i, (id, email)) in employees.iter().enumerate() {
        crm.push(Operation::UpsertPerson(PersonRecord {
            external_id: id.clone(),
            name: format!("{} {}", FIRST[i % FIRST.len()], LAST[(i * 7) % LAST.len()]),
            emails: vec![email.clone()],
            phones: Vec::new(),
            title: Some(if i < 8 { "Account Manager" } else { "Consultant" }.into()),
            internal: true,
            works_at: vec![Employment { organization: "company-0".into(), since: Some(days(900)), until: None }],
            seen_at: None,
        }));
    }

    let planted_names = [planted::SILENT_KEY_CLIENT, planted::SINGLE_THREADED, planted::HALVED_ENGAGEMENT, planted::STALLED_DEAL];
    let org_count = 199 * scale;
    let mut orgs = Vec::with_capacity(org_count);
    for i in 0..org_count {
        let name = match planted_names.get(i) {
            Some(name) => (*name).to_owned(),
            None => {
                let base = format!("{} {}", NAME_A[i % NAME_A.len()], NAME_B[(i / NAME_A.len()) % NAME_B.len()]);
                let round = i / (NAME_A.len() * NAME_B.len());
                if round == 0 { base } else { format!("{base} {}", round + 1) }
            }
        };
        let slug: String = name.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let role = match i % 8 {
            0..=3 => Role::Client,
            4 | 5 => Role::Prospect,
            6 => Role::Partner,
            _ => Role::Supplier,
        };
        let role = if i < planted_names.len() { Role::Client } else { role };
        let weight = if i < planted_names.len() { 40 } else { 1 + rng.below(30) + if role == Role::Client { 10 } else { 0 } };
        let team_size = if i == 1 { 1 } else { 2 + rng.below(3) };
        let team = (0..team_size).map(|_| rng.below(employees.len())).collect();
        let trend = if i < planted_names.len() { 0 } else { rng.below(121) as i64 - 60 };
        orgs.push(Org {
            external_id: format!("company-{}", i + 1),
            name,
            domain: format!("{slug}.example"),
            role,
            weight,
            team,
            people: Vec::new(),
            trend,
        });
    }
    counts.organizations = orgs.len() + 1;
    counts.employees = employees.len();

    for org in &orgs {
        crm.push(Operation::UpsertOrganization(OrganizationRecord {
            external_id: org.external_id.clone(),
            name: org.name.clone(),
            domains: vec![org.domain.clone()],
            roles: vec![org.role],
            lifecycle: Some(if org.role == Role::Prospect { Lifecycle::Prospect } else { Lifecycle::Active }),
            owner: Some(employees[org.team[0]].0.clone()),
            seen_at: None,
        }));
    }

    // People: 1,970 external contacts at the base scale, about ten per organization.
    let external_people = 1970 * scale;
    let mut contact_names = Vec::with_capacity(external_people);
    for p in 0..external_people {
        let org_index = p % orgs.len();
        let first = FIRST[rng.below(FIRST.len())];
        let last = LAST[rng.below(LAST.len())];
        let external_id = format!("contact-{p}");
        let email = format!("{}.{}{}@{}", first.to_lowercase(), last.to_lowercase(), p, orgs[org_index].domain);
        let left = rng.chance(5);
        contact_names.push(format!("{first} {last}"));
        crm.push(Operation::UpsertPerson(PersonRecord {
            external_id: external_id.clone(),
            name: format!("{first} {last}"),
            emails: vec![email.clone()],
            phones: vec![format!("+1-555-{:04}", p % 10_000)],
            title: Some((*rng.pick(&["CEO", "CTO", "Head of Operations", "Buyer", "Engineer", "Finance Manager"])).into()),
            internal: false,
            works_at: vec![Employment {
                organization: orgs[org_index].external_id.clone(),
                since: Some(days(700 + rng.below(800) as i64)),
                until: left.then(|| days(30 + rng.below(300) as i64)),
            }],
            seen_at: None,
        }));
        if !left {
            orgs[org_index].people.push((external_id, email));
        }
    }
    counts.people = external_people + employees.len();

    // Deals: 600 at the base scale, over clients and prospects.
    let deal_orgs: Vec<usize> = (0..orgs.len()).filter(|&i| matches!(orgs[i].role, Role::Client | Role::Prospect)).collect();
    let deal_count = 600 * scale;
    for d in 0..deal_count {
        let org = if d == 0 { 3 } else { deal_orgs[rng.below(deal_orgs.len())] };
        let (stage_index, status, entered) = if d == 0 {
            (3, DealStatus::Open, days(planted::STALLED_DAYS))
        } else {
            let stage_index = rng.below(STAGES.len());
            let status = match rng.below(10) {
                0..=3 => DealStatus::Open,
                4..=7 => DealStatus::Won,
                _ => DealStatus::Lost,
            };
            (stage_index, status, days(rng.below(20) as i64 + 1))
        };
        let external_id = format!("deal-{d}");
        // Send each earlier stage first, as a CRM sync over time would, so stage history builds up.
        for (s, stage) in STAGES.iter().enumerate().take(stage_index + 1) {
            let last = s == stage_index;
            let entered_at = if last { entered } else { entered - Duration::days(((stage_index - s) * 12) as i64) };
            crm.push(Operation::UpsertDeal(DealRecord {
                external_id: external_id.clone(),
                organization: orgs[org].external_id.clone(),
                name: format!("{} — {}", orgs[org].name, ["renewal", "expansion", "pilot", "new project"][d % 4]),
                amount: Some(((rng.below(95) + 5) * 1000) as f64),
                currency: Some("EUR".into()),
                pipeline: Some("sales".into()),
                stage: (*stage).into(),
                stage_entered_at: Some(entered_at),
                status: if last { status } else { DealStatus::Open },
                closed_at: (last && status != DealStatus::Open).then_some(entered_at),
                seen_at: Some(entered_at),
            }));
        }
    }
    counts.deals = deal_count;

    // Interactions: 50,000 at the base scale over 540 days, each org by weight and trend.
    let total_weight: usize = orgs.iter().map(|o| o.weight).sum();
    let interaction_count = 50_000 * scale;
    let mut made = 0;
    for (o, org) in orgs.iter().enumerate() {
        let share = if o + 1 == orgs.len() { interaction_count - made } else { interaction_count * org.weight / total_weight };
        for n in 0..share {
            let age = match org.name.as_str() {
                planted::SILENT_KEY_CLIENT if n == 0 => planted::SILENT_DAYS,
                planted::SILENT_KEY_CLIENT => planted::SILENT_DAYS + 1 + rng.below(540 - 46) as i64,
                // Twice as many touches 90–180 days ago as in the last 90 days.
                planted::HALVED_ENGAGEMENT => match n % 4 {
                    0 => rng.below(90) as i64,
                    1 | 2 => 90 + rng.below(90) as i64,
                    _ => 180 + rng.below(360) as i64,
                },
                _ => skewed_age(&mut rng, org.trend),
            };
            // The last touch of the silent client is exactly SILENT_DAYS before "now".
            let minutes = if age == planted::SILENT_DAYS && n == 0 { 0 } else { rng.below(24 * 60) as i64 };
            let at = days(age) - Duration::minutes(minutes);
            let employee = &employees[org.team[rng.below(org.team.len())]];
            let contact = match org.people.is_empty() {
                true => continue,
                false => &org.people[rng.below(org.people.len())],
            };
            let kind = match rng.below(20) {
                0..=11 => InteractionKind::Email,
                12..=14 => InteractionKind::Meeting,
                15..=17 => InteractionKind::Call,
                18 => InteractionKind::Message,
                _ => InteractionKind::Ticket,
            };
            let direction = if rng.chance(50) { Direction::Inbound } else { Direction::Outbound };
            let record = InteractionRecord {
                external_id: format!("{}-{o}-{n}", kind_slug(kind)),
                kind,
                occurred_at: at,
                direction,
                duration_secs: matches!(kind, InteractionKind::Meeting | InteractionKind::Call).then(|| 900 + rng.below(3600) as u32),
                participants: vec![
                    Participant { email: Some(employee.1.clone()), person: None },
                    Participant { email: Some(contact.1.clone()), person: None },
                ],
                organization: None,
                thread: (kind == InteractionKind::Email).then(|| format!("thread-{o}-{}", n / 3)),
                subject: Some(format!("{} with {}", kind_slug(kind), org.name)),
                resolved_at: (kind == InteractionKind::Ticket).then(|| at + Duration::hours(1 + rng.below(72) as i64)),
            };
            made += 1;
            match kind {
                InteractionKind::Email | InteractionKind::Message => mail.push(Operation::UpsertInteraction(record)),
                InteractionKind::Ticket => support.push(Operation::UpsertInteraction(record)),
                _ => crm.push(Operation::UpsertInteraction(record)),
            }
        }
    }
    counts.interactions = made;

    // The support desk knows the silent key client under another name and one contact twice.
    let silent = &orgs[0];
    support.insert(
        0,
        Operation::UpsertOrganization(OrganizationRecord {
            external_id: "sd-org-1".into(),
            name: planted::SUPPORT_DUPLICATE.into(),
            domains: vec![silent.domain.clone()],
            roles: vec![Role::Client],
            lifecycle: None,
            owner: None,
            seen_at: None,
        }),
    );
    if let Some((_, email)) = silent.people.first() {
        support.insert(
            1,
            Operation::UpsertPerson(PersonRecord {
                external_id: "sd-user-1".into(),
                name: "Support contact".into(),
                emails: vec![email.to_uppercase()],
                phones: Vec::new(),
                title: None,
                internal: false,
                works_at: vec![Employment { organization: "sd-org-1".into(), since: None, until: None }],
                seen_at: None,
            }),
        );
    }

    // ...and a second contact under the same name with a private address: no shared key,
    // so it goes to the review list instead of being merged.
    if let Some((contact_id, _)) = silent.people.get(1) {
        let index: usize = contact_id.trim_start_matches("contact-").parse().unwrap_or(0);
        support.insert(
            2,
            Operation::UpsertPerson(PersonRecord {
                external_id: planted::REVIEW_CONTACT.into(),
                name: contact_names[index].clone(),
                emails: vec![format!("{}@gmail.com", contact_names[index].to_lowercase().replace(' ', "."))],
                phones: Vec::new(),
                title: None,
                internal: false,
                works_at: vec![Employment { organization: "sd-org-1".into(), since: None, until: None }],
                seen_at: None,
            }),
        );
    }

    // Observations: 300, the company's memory.
    for i in 0..300 {
        let org = &orgs[if i < 10 { i % planted_names.len() } else { rng.below(orgs.len()) }];
        let author = &employees[org.team[0]];
        crm.push(Operation::AddObservation(ObservationRecord {
            external_id: format!("note-{i}"),
            about: Subject { organization: Some(org.external_id.clone()), person: None, id: None },
            author_email: Some(author.1.clone()),
            text: (*rng.pick(NOTES)).into(),
            tags: vec![(*rng.pick(TAGS)).into()],
            observed_at: Some(days(rng.below(400) as i64)),
        }));
    }
    counts.observations = 300;

    let batches = vec![
        SourceBatch { source: "crm", operations: crm },
        SourceBatch { source: "mail", operations: mail },
        SourceBatch { source: "support", operations: support },
    ];
    (batches, counts)
}

/// Loads a generated world into `graph`, `batch_size` operations per commit, calling
/// `progress` with the number of operations applied so far.
pub fn load(graph: &Graph, batches: Vec<SourceBatch>, batch_size: usize, mut progress: impl FnMut(usize)) -> Result<usize, GraphError> {
    let mut done = 0;
    for batch in batches {
        let mut operations = batch.operations.into_iter().peekable();
        while operations.peek().is_some() {
            let chunk: Vec<Operation> = operations.by_ref().take(batch_size).collect();
            let report = graph.ingest(IngestBatch {
                source: batch.source.to_owned(),
                operations: chunk,
                policy: InvalidPolicy::SkipInvalid,
                meta: Vec::new(),
                now: Timestamp::now(),
            })?;
            done += report.applied + report.skipped.len();
            progress(done);
        }
    }
    Ok(done)
}

/// Writes each source's operations as `<dir>/<source>.jsonl`, the format `rapport import`
/// reads; returns the files.
pub fn export(batches: &[SourceBatch], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::with_capacity(batches.len());
    for batch in batches {
        let path = dir.join(format!("{}.jsonl", batch.source));
        let mut out = BufWriter::new(std::fs::File::create(&path)?);
        for op in &batch.operations {
            serde_json::to_writer(&mut out, op)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        files.push(path);
    }
    Ok(files)
}

/// Days ago, over 540 days, denser at the recent end for a positive trend.
fn skewed_age(rng: &mut Rng, trend: i64) -> i64 {
    loop {
        let age = rng.below(540) as i64;
        // Acceptance sampling: density falls linearly from (100 + trend) now to (100 - trend) at 540 days.
        let density = 100 + trend - 2 * trend * age / 540;
        if (rng.below(200) as i64) < density {
            return age;
        }
    }
}

fn kind_slug(kind: InteractionKind) -> &'static str {
    match kind {
        InteractionKind::Email => "email",
        InteractionKind::Meeting => "meeting",
        InteractionKind::Call => "call",
        InteractionKind::Message => "message",
        InteractionKind::Ticket => "ticket",
        InteractionKind::Note => "note",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world() {
        let spec = WorldSpec { seed: 7, scale: 1, now: DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc() };
        let (a, counts) = generate(spec);
        let (b, _) = generate(spec);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.operations, y.operations);
        }
        assert_eq!(counts.organizations, 200);
        assert_eq!(counts.people, 2000);
        assert_eq!(counts.deals, 600);
        assert!(counts.interactions > 45_000 && counts.interactions <= 50_000, "{counts:?}");
        for batch in &a {
            for op in &batch.operations {
                assert!(op.validate("").is_empty(), "{op:?}");
            }
        }
    }
}
