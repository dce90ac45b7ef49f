//! Signals read from the aggregates at a given time: everything that depends on "now"
//! (days since, windows) is computed here, so the values are right at any hour without
//! rewriting a row. A cluster's records are folded when read.

use std::collections::{BTreeMap, HashMap};

use rapport_graph::model::{DealStatus, NodeId, Timestamp};
use rapport_store::codec::decode;
use serde::{Deserialize, Serialize};

use crate::contribution::{DealFacts, Tally};
use crate::keys::{self, Day};
use crate::{Signals, SignalsError};

/// The weights of the relationship-strength components, summing to 1.
pub const STRENGTH_WEIGHTS: [(&str, f64); 4] = [("recency", 0.35), ("frequency", 0.30), ("reciprocity", 0.20), ("channel_mix", 0.15)];
/// Touches in 90 days that make frequency full: about one a week.
const FULL_FREQUENCY: f64 = 12.0;
/// Channels (written, meeting, call, ticket) that make the channel mix full.
const FULL_MIX: f64 = 3.0;

/// An organization's relationship signals at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrganizationSignals {
    /// The organization (its cluster's id).
    pub organization: NodeId,
    /// The time they were read for.
    pub at: Timestamp,
    /// The last day with a touch (an interaction that counts as engagement), UTC.
    pub last_touch: Option<chrono::NaiveDate>,
    /// Whole days from it to `at`.
    pub days_since_last_touch: Option<i64>,
    /// The last two-way touch: a day with a meeting or a call, or with a message of one
    /// side answered by the other within the configured window (see ARCHITECTURE.md).
    pub last_two_way_touch: Option<chrono::NaiveDate>,
    /// Whole days from it to `at`.
    pub days_since_two_way_touch: Option<i64>,
    /// Touches in the last 30 days (`at`'s day and the 29 before).
    pub touches_30d: i64,
    /// Touches in the last 90 days.
    pub touches_90d: i64,
    /// Touches in the 90 days before those.
    pub touches_previous_90d: i64,
    /// `touches_90d / touches_previous_90d - 1` (absent when the previous period had none).
    pub engagement_trend: Option<f64>,
    /// Touches of the last 90 days they started.
    pub inbound_90d: i64,
    /// Touches of the last 90 days we started.
    pub outbound_90d: i64,
    /// Meetings in the last 90 days.
    pub meetings_90d: i64,
    /// Hours in meetings and calls in the last 90 days.
    pub meeting_hours_90d: f64,
    /// The next planned meeting's day.
    pub next_meeting: Option<chrono::NaiveDate>,
    /// Distinct employees in the touches of the last 90 days (breadth: the risk if one
    /// leaves).
    pub employees_90d: usize,
    /// The share of the last 90 days' touches the top holder took part in (0–1).
    pub top_holder_share: Option<f64>,
    /// Every employee with a touch, strongest first.
    pub holders: Vec<Strength>,
    /// Open deals.
    pub open_deals: usize,
    /// Sum of the open deals' amounts.
    pub pipeline_value: f64,
    /// Days the longest-waiting open deal has been in its stage.
    pub longest_days_in_stage: Option<i64>,
    /// Won in the last 365 days (sum of amounts).
    pub won_revenue_12m: f64,
    /// Won in the 365 days before those.
    pub won_revenue_previous_12m: f64,
    /// `won_revenue_12m / won_revenue_previous_12m - 1` (absent without a previous year).
    pub revenue_trend: Option<f64>,
}

/// One employee's relationship strength with an organization, with what makes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Strength {
    /// The employee (their cluster's id).
    pub employee: NodeId,
    /// 0–100: the weighted sum of the components.
    pub score: f64,
    /// Touches with them in the last 90 days.
    pub touches_90d: i64,
    /// Whole days since their last touch.
    pub days_since_last_touch: i64,
    /// The components, each 0–1, with its weight.
    pub components: Vec<StrengthComponent>,
}

/// A component of a strength score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StrengthComponent {
    /// `recency`, `frequency`, `reciprocity` or `channel_mix`.
    pub name: String,
    /// Its value, 0–1.
    pub value: f64,
    /// Its weight in the score.
    pub weight: f64,
    /// How it was computed, in words.
    pub detail: String,
}

/// Days of a cluster, summed over its records.
type Days = BTreeMap<Day, Tally>;

/// The sum of `days` within `[from, to]`.
fn sum(days: &Days, from: Day, to: Day) -> Tally {
    let mut total = Tally::default();
    for tally in days.range(from..=to).map(|(_, t)| t) {
        total += *tally;
    }
    total
}

fn ratio_less_one(now: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| now / before - 1.0)
}

/// Rounds to 4 decimals, so figures read well and compare exactly.
fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

impl Signals {
    /// The signals of organization `id` (or the cluster it was merged into) at `at`.
    pub fn organization(&self, id: NodeId, at: Timestamp) -> Result<OrganizationSignals, SignalsError> {
        let view = self.graph.organization(id)?;
        let members: Vec<NodeId> = [view.id].into_iter().chain(view.merged.iter().copied()).collect();
        let mut days = Days::new();
        let mut pairs: HashMap<NodeId, Days> = HashMap::new();
        let mut deals = Vec::new();
        for &member in &members {
            for row in self.graph.derived_prefix(&keys::org_days(member), false) {
                let (key, value) = row?;
                let Some(day) = keys::day_of_org_key(&key) else { continue };
                *days.entry(day).or_default() += self.decode::<Tally>(&key, &value)?;
            }
            for row in self.graph.derived_prefix(&keys::pair_days(member), false) {
                let (key, value) = row?;
                let Some((employee, day)) = keys::split_pair_key(&key) else { continue };
                let employee = self.graph.root(employee)?;
                *pairs.entry(employee).or_default().entry(day).or_default() += self.decode::<Tally>(&key, &value)?;
            }
            for row in self.graph.derived_prefix(&keys::deals(member), false) {
                let (key, value) = row?;
                deals.push(self.decode::<DealFacts>(&key, &value)?);
            }
        }
        let today = Day::of(at);
        let days_to = |day: Day| i64::from(today.0 - day.0);
        let last_touch = days.range(..=today).rev().find(|(_, t)| t.touches > 0).map(|(d, _)| *d);
        let last_two_way = self.last_two_way(&days, today);
        let recent = sum(&days, today.plus(-89), today);
        let previous = sum(&days, today.plus(-179), today.plus(-90));
        let next_meeting = days.range(today.plus(1)..).find(|(_, t)| t.meetings > 0).map(|(d, _)| d.date());

        let mut holders: Vec<Strength> = pairs.iter().filter_map(|(employee, days)| self.strength(*employee, days, today)).collect();
        holders.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.employee.cmp(&b.employee)));
        let active: Vec<&Strength> = holders.iter().filter(|h| h.touches_90d > 0).collect();
        let top = active.iter().map(|h| h.touches_90d).max();

        let (mut open_deals, mut pipeline_value, mut longest_days_in_stage) = (0, 0.0, None::<i64>);
        let (mut won, mut won_before) = (0.0, 0.0);
        for deal in &deals {
            match deal.status {
                DealStatus::Open => {
                    open_deals += 1;
                    pipeline_value += deal.amount.unwrap_or(0.0);
                    let waited = deal.stage_entered_at.days_until(at);
                    longest_days_in_stage = Some(longest_days_in_stage.map_or(waited, |d| d.max(waited)));
                }
                DealStatus::Won => {
                    let Some(closed) = deal.closed_at else { continue };
                    let ago = closed.days_until(at);
                    if (0..365).contains(&ago) {
                        won += deal.amount.unwrap_or(0.0);
                    } else if (365..730).contains(&ago) {
                        won_before += deal.amount.unwrap_or(0.0);
                    }
                }
                DealStatus::Lost => {}
            }
        }
        Ok(OrganizationSignals {
            organization: view.id,
            at,
            last_touch: last_touch.map(Day::date),
            days_since_last_touch: last_touch.map(days_to),
            last_two_way_touch: last_two_way.map(Day::date),
            days_since_two_way_touch: last_two_way.map(days_to),
            touches_30d: sum(&days, today.plus(-29), today).touches,
            touches_90d: recent.touches,
            touches_previous_90d: previous.touches,
            engagement_trend: ratio_less_one(recent.touches as f64, previous.touches as f64).map(round),
            inbound_90d: recent.inbound,
            outbound_90d: recent.outbound,
            meetings_90d: recent.meetings,
            meeting_hours_90d: round(recent.minutes as f64 / 60.0),
            next_meeting,
            employees_90d: active.len(),
            top_holder_share: top.filter(|_| recent.touches > 0).map(|top| round(top as f64 / recent.touches as f64)),
            holders,
            open_deals,
            pipeline_value: round(pipeline_value),
            longest_days_in_stage,
            won_revenue_12m: round(won),
            won_revenue_previous_12m: round(won_before),
            revenue_trend: ratio_less_one(won, won_before).map(round),
        })
    }

    /// The latest day up to `today` that was two-way on its own, or whose one-sided touches
    /// were answered from the other side within the window before it.
    fn last_two_way(&self, days: &Days, today: Day) -> Option<Day> {
        let window = self.config.two_way_window_days;
        let past: Vec<(&Day, &Tally)> = days.range(..=today).rev().collect();
        for (i, (day, tally)) in past.iter().enumerate() {
            if tally.two_way() {
                return Some(**day);
            }
            let earlier = past[i + 1..].iter().take_while(|(d, _)| d.0 >= day.0 - window);
            let answered = earlier.into_iter().any(|(_, t)| (tally.inbound > 0 && t.outbound > 0) || (tally.outbound > 0 && t.inbound > 0));
            if answered {
                return Some(**day);
            }
        }
        None
    }

    /// An employee's strength from their days with the organization; `None` without a
    /// touch up to `today`.
    fn strength(&self, employee: NodeId, days: &Days, today: Day) -> Option<Strength> {
        let last = days.range(..=today).rev().find(|(_, t)| t.touches > 0).map(|(d, _)| *d)?;
        let recent = sum(days, today.plus(-89), today);
        let since = i64::from(today.0 - last.0);
        let half_life = f64::from(self.config.strength_half_life_days);
        let both = recent.meetings + recent.calls;
        let (theirs, ours) = (recent.inbound + both, recent.outbound + both);
        let values = [
            (0.5f64.powf(since as f64 / half_life), format!("last touch {since} days ago, halving every {half_life} days")),
            ((recent.touches as f64 / FULL_FREQUENCY).min(1.0), format!("{} touches in 90 days, full at {FULL_FREQUENCY}", recent.touches)),
            (
                if theirs.max(ours) == 0 { 0.0 } else { theirs.min(ours) as f64 / theirs.max(ours) as f64 },
                format!("{theirs} from them and {ours} from us in 90 days (meetings and calls count for both)"),
            ),
            (
                (recent.channels() as f64 / FULL_MIX).min(1.0),
                format!("{} kinds of channel in 90 days, full at {FULL_MIX}", recent.channels()),
            ),
        ];
        let components: Vec<StrengthComponent> = STRENGTH_WEIGHTS
            .iter()
            .zip(values)
            .map(|((name, weight), (value, detail))| StrengthComponent {
                name: (*name).to_owned(),
                value: round(value),
                weight: *weight,
                detail,
            })
            .collect();
        let score = round(100.0 * components.iter().map(|c| c.value * c.weight).sum::<f64>());
        Some(Strength { employee, score, touches_90d: recent.touches, days_since_last_touch: since, components })
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, key: &[u8], value: &[u8]) -> Result<T, SignalsError> {
        decode(value).map_err(|source| Self::unreadable(key, source))
    }
}
