//! The signal maintainer's rows in the graph's derived namespace, all under `S`:
//!
//! | key                               | value          |
//! |-----------------------------------|----------------|
//! | `S c` record id                   | `Contribution` (what that interaction or deal adds) |
//! | `S o` org id, day                 | `Tally` of the organization record's day |
//! | `S e` org id, employee id, day    | `Tally` of that employee with that organization record |
//! | `S d` org id, deal id             | `DealFacts`    |
//! | `S !rebuild`                      | () while a rebuild is under way |
//!
//! Keys name records, never clusters: a reader folds a cluster's members, so a merge moves
//! nothing here. Days are UTC days since the Unix epoch, sign bit flipped, so they sort.

use rapport_graph::model::{NODE_ID_LEN, NodeId, Timestamp};

/// The stage's prefix.
pub const STAGE: u8 = b'S';
const CONTRIBUTION: u8 = b'c';
const ORG_DAY: u8 = b'o';
const PAIR_DAY: u8 = b'e';
const DEAL: u8 = b'd';

/// A UTC day, counted from 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Day(pub i32);

impl Day {
    /// The day `at` falls on.
    pub fn of(at: Timestamp) -> Self {
        Self(i32::try_from(at.0.div_euclid(86_400_000)).unwrap_or(if at.0 < 0 { i32::MIN } else { i32::MAX }))
    }

    /// `days` later (earlier if negative).
    pub fn plus(self, days: i32) -> Self {
        Self(self.0.saturating_add(days))
    }

    /// As a calendar date.
    pub fn date(self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_num_days_from_ce_opt(self.0.saturating_add(719_163)).unwrap_or_default()
    }

    fn bytes(self) -> [u8; 4] {
        ((self.0 as u32) ^ (1 << 31)).to_be_bytes()
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        Some(Self((u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) ^ (1 << 31)) as i32))
    }
}

fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![STAGE, kind];
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// What `record` contributes.
pub fn contribution(record: NodeId) -> Vec<u8> {
    key(CONTRIBUTION, &[&record.to_bytes()])
}

/// An organization record's tally of `day`.
pub fn org_day(org: NodeId, day: Day) -> Vec<u8> {
    key(ORG_DAY, &[&org.to_bytes(), &day.bytes()])
}

/// Every day of an organization record.
pub fn org_days(org: NodeId) -> Vec<u8> {
    key(ORG_DAY, &[&org.to_bytes()])
}

/// An employee's tally of `day` with an organization record.
pub fn pair_day(org: NodeId, employee: NodeId, day: Day) -> Vec<u8> {
    key(PAIR_DAY, &[&org.to_bytes(), &employee.to_bytes(), &day.bytes()])
}

/// Every employee's days with an organization record.
pub fn pair_days(org: NodeId) -> Vec<u8> {
    key(PAIR_DAY, &[&org.to_bytes()])
}

/// A deal's facts under its organization record.
pub fn deal(org: NodeId, deal: NodeId) -> Vec<u8> {
    key(DEAL, &[&org.to_bytes(), &deal.to_bytes()])
}

/// Every deal of an organization record.
pub fn deals(org: NodeId) -> Vec<u8> {
    key(DEAL, &[&org.to_bytes()])
}

/// The marker of a rebuild under way.
pub fn rebuilding() -> Vec<u8> {
    vec![STAGE, b'!', b'r']
}

/// Everything of this stage.
pub fn all() -> Vec<u8> {
    vec![STAGE]
}

/// The day at the end of an organization day key.
pub fn day_of_org_key(key: &[u8]) -> Option<Day> {
    Day::read(key.get(2 + NODE_ID_LEN..)?)
}

/// The employee and day of a pair key.
pub fn split_pair_key(key: &[u8]) -> Option<(NodeId, Day)> {
    let rest = key.get(2 + NODE_ID_LEN..)?;
    Some((NodeId::from_bytes(rest)?, Day::read(rest.get(NODE_ID_LEN..)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_sort_like_time_and_read_back() {
        let days = [Day(-800), Day(-1), Day(0), Day(1), Day(20_000)];
        for pair in days.windows(2) {
            assert!(pair[0].bytes() < pair[1].bytes());
        }
        for day in days {
            assert_eq!(Day::read(&day.bytes()), Some(day));
        }
        assert_eq!(Day::of(Timestamp(-1)), Day(-1), "the millisecond before the epoch is on the day before");
        assert_eq!(Day(0).date().to_string(), "1970-01-01");
        assert_eq!(Day(20_454).date().to_string(), "2026-01-01");
    }
}
