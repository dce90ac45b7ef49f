//! Each signal on a small world whose values were computed by hand.

use rapport_graph::model::RecordKind;

use crate::{World, time};

fn email(id: &str, direction: &str, at: &str, from: &str, to: &str) -> String {
    format!(
        r#"{{"op":"upsert_interaction","external_id":"{id}","kind":"email","direction":"{direction}","occurred_at":"{at}","participants":[{{"email":"{from}"}},{{"email":"{to}"}}]}}"#
    )
}

fn meeting(id: &str, at: &str, minutes: u32, people: &[&str]) -> String {
    let participants: Vec<String> = people.iter().map(|p| format!(r#"{{"email":"{p}"}}"#)).collect();
    format!(
        r#"{{"op":"upsert_interaction","external_id":"{id}","kind":"meeting","occurred_at":"{at}","duration_secs":{},"participants":[{}]}}"#,
        minutes * 60,
        participants.join(",")
    )
}

fn deal(id: &str, amount: u32, stage: &str, status: &str, entered: &str) -> String {
    format!(
        r#"{{"op":"upsert_deal","external_id":"{id}","organization":"c1","name":"Deal {id}","amount":{amount},"stage":"{stage}","status":"{status}","stage_entered_at":"{entered}"}}"#
    )
}

#[test]
fn signals_match_the_hand_computed_values() {
    let w = World::new();
    w.ingest(
        "crm",
        &[
            r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#.to_owned(),
            deal("d1", 10_000, "proposal", "open", "2026-05-01T09:00:00Z"),
            deal("d2", 5_000, "won", "won", "2026-01-10T09:00:00Z"),
            deal("d3", 2_000, "won", "won", "2025-03-01T09:00:00Z"),
            deal("d4", 9_000, "lost", "lost", "2026-04-01T09:00:00Z"),
        ],
    );
    let (ben, cara, anna, dan) = ("ben@northwind.example", "cara@northwind.example", "anna@acme.com", "dan@acme.com");
    w.ingest(
        "mail",
        &[
            email("e1", "inbound", "2026-05-30T10:00:00Z", anna, ben),
            email("e2", "outbound", "2026-05-20T10:00:00Z", ben, anna),
            meeting("m1", "2026-04-15T14:00:00Z", 60, &[cara, dan]),
            email("e3", "inbound", "2026-02-15T10:00:00Z", anna, ben),
            // Neither a machine's mail nor a role address's counts.
            r#"{"op":"upsert_interaction","external_id":"n1","kind":"email","direction":"inbound","occurred_at":"2026-05-31T06:00:00Z","automated":true,"participants":[{"email":"anna@acme.com"},{"email":"ben@northwind.example"}]}"#.to_owned(),
            email("r1", "inbound", "2026-05-31T07:00:00Z", "noreply@acme.com", ben),
            // A planned meeting is the next meeting, not a touch.
            meeting("m2", "2026-06-10T09:00:00Z", 30, &[ben, anna]),
        ],
    );
    w.signals.catch_up().unwrap();
    let acme = w.id("crm", RecordKind::Organization, "c1");
    let s = w.signals.organization(acme, time("2026-06-01T12:00:00Z")).unwrap();

    assert_eq!(s.last_touch.map(|d| d.to_string()).as_deref(), Some("2026-05-30"));
    assert_eq!(s.days_since_last_touch, Some(2));
    // The inbound of 30 May answers the outbound of 20 May (within 14 days).
    assert_eq!(s.last_two_way_touch.map(|d| d.to_string()).as_deref(), Some("2026-05-30"));
    assert_eq!(s.days_since_two_way_touch, Some(2));
    assert_eq!((s.touches_30d, s.touches_90d, s.touches_previous_90d), (2, 3, 1));
    assert_eq!(s.engagement_trend, Some(2.0));
    assert_eq!((s.inbound_90d, s.outbound_90d, s.meetings_90d), (1, 1, 1));
    assert_eq!(s.meeting_hours_90d, 1.0);
    assert_eq!(s.next_meeting.map(|d| d.to_string()).as_deref(), Some("2026-06-10"));
    assert_eq!(s.employees_90d, 2);
    assert_eq!(s.top_holder_share, Some(0.6667), "ben took part in 2 of the 3 touches");

    let holders: Vec<_> =
        s.holders.iter().map(|h| (w.graph.person(h.employee).unwrap().emails, h.touches_90d, h.days_since_last_touch)).collect();
    assert_eq!(holders, [(vec![ben.to_owned()], 2, 2), (vec![cara.to_owned()], 1, 47)], "ben first, then cara");
    // Ben: recency 0.5^(2/30) = 0.9548, frequency 2/12, reciprocity 1 from them 1 from us,
    // one channel of three: 35×0.9548 + 30×0.1667 + 20×1 + 15×0.3333 = 63.42.
    let ben_strength = &s.holders[0];
    let values: Vec<(&str, f64)> = ben_strength.components.iter().map(|c| (c.name.as_str(), c.value)).collect();
    assert_eq!(values, [("recency", 0.9548), ("frequency", 0.1667), ("reciprocity", 1.0), ("channel_mix", 0.3333)]);
    assert!((ben_strength.score - 63.42).abs() < 0.01, "{}", ben_strength.score);
    // Cara: 0.5^(47/30) = 0.3375, 1/12, a meeting counts for both sides, one channel.
    assert!((s.holders[1].score - 39.31).abs() < 0.01, "{}", s.holders[1].score);
    let weights: f64 = ben_strength.components.iter().map(|c| c.weight).sum();
    assert!((weights - 1.0).abs() < 1e-9);

    assert_eq!((s.open_deals, s.pipeline_value, s.longest_days_in_stage), (1, 10_000.0, Some(31)));
    assert_eq!((s.won_revenue_12m, s.won_revenue_previous_12m, s.revenue_trend), (5_000.0, 2_000.0, Some(1.5)));
}

#[test]
fn values_follow_the_clock_without_a_write() {
    let w = World::new();
    w.ingest("crm", &[r#"{"op":"upsert_organization","external_id":"c1","name":"Acme","domains":["acme.com"]}"#.to_owned()]);
    w.ingest("mail", &[email("e1", "outbound", "2026-05-01T10:00:00Z", "ben@northwind.example", "anna@acme.com")]);
    w.signals.catch_up().unwrap();
    let acme = w.id("crm", RecordKind::Organization, "c1");
    let rows = w.signals.rows().unwrap();
    let then = w.signals.organization(acme, time("2026-05-02T00:00:00Z")).unwrap();
    let later = w.signals.organization(acme, time("2026-08-15T00:00:00Z")).unwrap();
    assert_eq!((then.days_since_last_touch, then.touches_30d, then.touches_90d), (Some(1), 1, 1));
    assert_eq!((later.days_since_last_touch, later.touches_30d, later.touches_90d, later.touches_previous_90d), (Some(106), 0, 0, 1));
    assert_eq!(then.last_two_way_touch, None, "nobody answered");
    assert_eq!(w.signals.rows().unwrap(), rows, "reading wrote nothing");
}
