//! The demo world's planted situations, loaded through the demo plugin (one instance per
//! source, as `rapport demo` does) and seen through the API.

use rapport::demo::{self, WorldSpec, planted};
use rapport_graph::model::RecordKind;
use rapport_plugin_host::InstallOptions;
use rapport_plugin_host::registry::{RunStatus, Trigger};
use serde_json::{Value, json};

use crate::harness::TestServer;

const NOW: &str = "2026-06-01T00:00:00Z";

fn context_of(server: &TestServer, name: &str) -> Value {
    let found = server.get_json(&format!("/v1/organizations/search?q={}", name.replace(' ', "+")));
    let matches: Vec<&Value> = found["items"].as_array().unwrap().iter().collect();
    assert!(!matches.is_empty(), "{name} not found");
    let id = matches[0]["id"].as_str().unwrap();
    server.get_json(&format!("/v1/organizations/{id}/context?at={NOW}"))
}

#[test]
fn planted_situations_are_visible_through_the_api() {
    let now = chrono::DateTime::parse_from_rfc3339(NOW).unwrap().to_utc();
    let (_, counts) = demo::generate(WorldSpec { seed: 42, scale: 1, now });
    let server = TestServer::start();
    for source in ["crm", "mail", "support"] {
        let config = json!({"source": source, "seed": 42, "scale": 1, "now": NOW, "page_size": 5000});
        let options = InstallOptions { instance: Some(source.to_owned()), config: Some(config) };
        server.runtime.block_on(server.plugins.install(&rapport_fixtures::package("demo"), options)).unwrap();
        let run = server.runtime.block_on(server.plugins.run(source, Trigger::Cli, |_| {})).unwrap();
        assert_eq!((run.status, run.operations_skipped), (RunStatus::Succeeded, 0), "{run:?}");
    }

    let stats = server.get_json("/v1/stats");
    assert_eq!(stats["interactions"], counts.interactions);
    assert_eq!(stats["deals"], counts.deals);
    assert_eq!(stats["organizations"], counts.organizations, "the support desk's copy merged away");

    let silent = context_of(&server, planted::SILENT_KEY_CLIENT);
    assert_eq!(silent["engagement"]["days_since_last_interaction"], planted::SILENT_DAYS);
    assert!(silent["engagement"]["interactions_previous_90d"].as_u64().unwrap() > 20, "it was a busy account");

    let mut duplicate_sources: Vec<&str> =
        silent["organization"]["provenance"].as_array().unwrap().iter().map(|p| p["source"].as_str().unwrap()).collect();
    duplicate_sources.sort_unstable();
    assert_eq!(duplicate_sources, ["crm", "support"], "the cross-source duplicate is one organization");
    assert_eq!(silent["organization"]["name"], planted::SILENT_KEY_CLIENT);
    let merged_contact = silent["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["person"]["provenance"].as_array().unwrap().len() == 2)
        .expect("the support desk's contact merged into the CRM's");
    assert_ne!(merged_contact["person"]["name"], "Support contact");

    let review = server.get_json("/v1/duplicates");
    let flagged = review["items"].as_array().unwrap().iter().any(|c| {
        let support_contact = server.graph.resolve("support", RecordKind::Person, planted::REVIEW_CONTACT).unwrap().unwrap().to_string();
        c["a"] == support_contact.as_str() || c["b"] == support_contact.as_str()
    });
    assert!(flagged, "the same-name contact is on the review list: {review}");

    let single = context_of(&server, planted::SINGLE_THREADED);
    let holders = single["relationship_holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1, "only one employee talks to them: {holders:?}");
    assert!(holders[0]["interactions_90d"].as_u64().unwrap() > 10);

    let halved = context_of(&server, planted::HALVED_ENGAGEMENT);
    let last = halved["engagement"]["interactions_last_90d"].as_f64().unwrap();
    let previous = halved["engagement"]["interactions_previous_90d"].as_f64().unwrap();
    let ratio = last / previous;
    assert!((0.35..0.65).contains(&ratio), "engagement should have halved: {last} vs {previous}");

    let stalled = context_of(&server, planted::STALLED_DEAL);
    let stuck = stalled["open_deals"].as_array().unwrap().iter().map(|d| d["days_in_stage"].as_i64().unwrap()).max();
    assert_eq!(stuck, Some(planted::STALLED_DAYS));

    // A healthy client for contrast: several holders, recent touches, no long-stuck deal.
    let healthy = context_of(&server, "Orbit Logistics");
    assert!(healthy["relationship_holders"].as_array().unwrap().len() > 1);
    assert!(healthy["engagement"]["days_since_last_interaction"].as_i64().unwrap() < 30);
}
