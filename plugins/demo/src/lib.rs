//! The demo world as a synthetic source: a deterministic, realistic small company and its
//! clients, with planted situations that the graph (and, later, the rules) must surface.
//!
//! Same seed, scale and anchor time, same world. It comes from three sources — a CRM, a
//! mail archive, a support desk — and this plugin is installed once per source (its
//! configuration's `source` says which part it sends), so loading it exercises plugin
//! runs, ingest and identity resolution across sources end to end. The generator is also a
//! library: the host uses it natively for `rapport demo --export` and its benchmarks.
//!
//! Configuration: `source` (`crm`, `mail` or `support`, required), `seed` (42), `scale`
//! (1), `now` (RFC 3339, required: the world's "today"), `page_size` (1000). The cursor is
//! the number of operations sent.

use chrono::{DateTime, Duration, Utc};
use rapport_sdk::record::{
    Deal, DealStatus, Direction, Interaction, InteractionKind, Lifecycle, Observation, Operation, Organization, Person, Role,
};
use rapport_sdk::time::Timestamp;
fn ts(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from_millis(at.timestamp_millis())
}

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

    crm.push(
        Organization::new("company-0", "Northwind Consulting")
            .domain(INTERNAL_DOMAIN)
            .role(Role::Internal)
            .lifecycle(Lifecycle::Active)
            .into(),
    );
    let employees: Vec<(String, String)> = (0..30)
        .map(|i| {
            let (first, last) = (FIRST[i % FIRST.len()], LAST[(i * 7) % LAST.len()]);
            let email = format!("{}.{}@{INTERNAL_DOMAIN}", first.to_lowercase(), last.to_lowercase());
            (format!("employee-{i}"), email)
        })
        .collect();
    for (i, (id, email)) in employees.iter().enumerate() {
        let person = Person::new(id.clone(), format!("{} {}", FIRST[i % FIRST.len()], LAST[(i * 7) % LAST.len()]))
            .email(email.clone())
            .title(if i < 8 { "Account Manager" } else { "Consultant" })
            .internal()
            .employment("company-0", Some(ts(days(900))), None);
        crm.push(person.into());
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
        let lifecycle = if org.role == Role::Prospect { Lifecycle::Prospect } else { Lifecycle::Active };
        let organization = Organization::new(org.external_id.clone(), org.name.clone())
            .domain(org.domain.clone())
            .role(org.role)
            .lifecycle(lifecycle)
            .owner(employees[org.team[0]].0.clone());
        crm.push(organization.into());
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
        let title = *rng.pick(&["CEO", "CTO", "Head of Operations", "Buyer", "Engineer", "Finance Manager"]);
        let since = days(700 + rng.below(800) as i64);
        let until = left.then(|| days(30 + rng.below(300) as i64));
        let person = Person::new(external_id.clone(), format!("{first} {last}"))
            .email(email.clone())
            .phone(format!("+1-555-{:04}", p % 10_000))
            .title(title)
            .employment(orgs[org_index].external_id.clone(), Some(ts(since)), until.map(ts));
        crm.push(person.into());
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
            let name = format!("{} — {}", orgs[org].name, ["renewal", "expansion", "pilot", "new project"][d % 4]);
            let mut deal = Deal::new(external_id.clone(), orgs[org].external_id.clone(), name, *stage)
                .amount(((rng.below(95) + 5) * 1000) as f64, "EUR")
                .pipeline("sales")
                .stage_entered_at(ts(entered_at))
                .status(if last { status } else { DealStatus::Open })
                .seen_at(ts(entered_at));
            if last && status != DealStatus::Open {
                deal = deal.closed_at(ts(entered_at));
            }
            crm.push(deal.into());
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
            let mut record = Interaction::new(format!("{}-{o}-{n}", kind_slug(kind)), kind, ts(at))
                .direction(direction)
                .participant_email(employee.1.clone())
                .participant_email(contact.1.clone())
                .subject(format!("{} with {}", kind_slug(kind), org.name));
            if matches!(kind, InteractionKind::Meeting | InteractionKind::Call) {
                record = record.duration_secs(900 + rng.below(3600) as u32);
            }
            if kind == InteractionKind::Email {
                record = record.thread(format!("thread-{o}-{}", n / 3));
            }
            if kind == InteractionKind::Ticket {
                record = record.resolved_at(ts(at + Duration::hours(1 + rng.below(72) as i64)));
            }
            made += 1;
            match kind {
                InteractionKind::Email | InteractionKind::Message => mail.push(record.into()),
                InteractionKind::Ticket => support.push(record.into()),
                _ => crm.push(record.into()),
            }
        }
    }
    counts.interactions = made;

    // The support desk knows the silent key client under another name and one contact twice.
    let silent = &orgs[0];
    support.insert(0, Organization::new("sd-org-1", planted::SUPPORT_DUPLICATE).domain(silent.domain.clone()).role(Role::Client).into());
    if let Some((_, email)) = silent.people.first() {
        support.insert(1, Person::new("sd-user-1", "Support contact").email(email.to_uppercase()).works_at("sd-org-1").into());
    }

    // ...and a second contact under the same name with a private address: no shared key,
    // so it goes to the review list instead of being merged.
    if let Some((contact_id, _)) = silent.people.get(1) {
        let index: usize = contact_id.trim_start_matches("contact-").parse().unwrap_or(0);
        let private = format!("{}@gmail.com", contact_names[index].to_lowercase().replace(' ', "."));
        support.insert(2, Person::new(planted::REVIEW_CONTACT, contact_names[index].clone()).email(private).works_at("sd-org-1").into());
    }

    // Observations: 300, the company's memory.
    for i in 0..300 {
        let org = &orgs[if i < 10 { i % planted_names.len() } else { rng.below(orgs.len()) }];
        let author = &employees[org.team[0]];
        let (text, tag) = (*rng.pick(NOTES), *rng.pick(TAGS));
        let observation = Observation::about_organization(format!("note-{i}"), org.external_id.clone(), text)
            .author(author.1.clone())
            .tag(tag)
            .observed_at(ts(days(rng.below(400) as i64)));
        crm.push(observation.into());
    }
    counts.observations = 300;

    let batches = vec![
        SourceBatch { source: "crm", operations: crm },
        SourceBatch { source: "mail", operations: mail },
        SourceBatch { source: "support", operations: support },
    ];
    (batches, counts)
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

/// The connector, built only for the sandbox (natively this crate is the generator alone).
#[cfg(target_arch = "wasm32")]
mod source {
    use super::{DateTime, Operation, Utc, WorldSpec, generate};
    use rapport_sdk::{Config, Connector, PluginError};

    /// The plugin: one source's part of the world, in pages.
    #[derive(Default)]
    struct DemoSource;

    impl Connector for DemoSource {
        fn sync(&mut self, config: &Config, cursor: Option<String>) -> Result<(), PluginError> {
            let source: String = config.require("source")?;
            let now: String = config.require("now")?;
            let now = DateTime::parse_from_rfc3339(&now)
                .map_err(|_| PluginError::Config(format!("key `now`: expected an RFC 3339 time, found {now:?}")))?
                .with_timezone(&Utc);
            let spec = WorldSpec { seed: config.get_or("seed", 42)?, scale: config.get_or("scale", 1)?, now };
            let page_size: usize = config.get_or("page_size", 1000)?;
            let (batches, _) = generate(spec);
            let batch = batches
                .into_iter()
                .find(|b| b.source == source)
                .ok_or_else(|| PluginError::Config(format!("key `source`: expected crm, mail or support, found {source:?}")))?;
            let sent: usize = match cursor {
                None => 0,
                Some(c) => c.parse().map_err(|_| PluginError::InvalidData(format!("unreadable cursor {c:?}")))?,
            };
            let total = batch.operations.len();
            rapport_sdk::info!(source = source, operations = total, from = sent; "sending the demo world");
            let mut operations = batch.operations.into_iter().skip(sent).peekable();
            let mut done = sent;
            while operations.peek().is_some() {
                let page: Vec<Operation> = operations.by_ref().take(page_size.max(1)).collect();
                done += page.len();
                rapport_sdk::emit(page);
                rapport_sdk::checkpoint(&done.to_string());
            }
            Ok(())
        }
    }

    rapport_sdk::export_connector!(DemoSource);
}
