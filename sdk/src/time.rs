//! Instants as remote APIs give them (RFC 3339 text, Unix seconds or milliseconds), kept as
//! milliseconds since the Unix epoch so cursors can compare and subtract them; written as
//! RFC 3339 in UTC, as the host reads them.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// From seconds since the Unix epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Reads RFC 3339 (`2026-03-08T07:30:00Z`, `2026-03-08T09:30:00.250+02:00`).
    pub fn parse(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| Self(t.timestamp_millis()))
    }

    /// The current time, from the host's clock.
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This instant minus `duration` (saturating).
    #[must_use]
    pub fn minus(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)))
    }

    /// RFC 3339 in UTC, with milliseconds when they are not zero.
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .map_or_else(|| self.0.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Records take times as UTC instants; an instant out of chrono's range (beyond ±262,000
/// years) saturates to its bound.
impl From<Timestamp> for DateTime<Utc> {
    fn from(timestamp: Timestamp) -> Self {
        Self::from_timestamp_millis(timestamp.0).unwrap_or(if timestamp.0 < 0 { Self::MIN_UTC } else { Self::MAX_UTC })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

/// Reads RFC 3339 text, or a number of milliseconds since the epoch.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Millis(millis) => Ok(Self(millis)),
            Raw::Text(text) => Self::parse(&text)
                .ok_or_else(|| serde::de::Error::custom(format!("expected an RFC 3339 time such as 2026-03-08T07:30:00Z, found {text:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_print_as_rfc_3339() {
        let t = Timestamp::parse("2026-03-08T09:30:00.250+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-08T07:30:00.250Z");
        assert_eq!(Timestamp::parse("2026-03-08T07:30:00Z").unwrap().to_rfc3339(), "2026-03-08T07:30:00Z");
        assert_eq!(Timestamp::parse("yesterday"), None);
        let read: Vec<Timestamp> = serde_json::from_str(r#"["2026-03-08T07:30:00Z", 1772955000000]"#).unwrap();
        assert_eq!(read[0], read[1]);
        assert!(serde_json::from_str::<Timestamp>(r#""soon""#).unwrap_err().to_string().contains("RFC 3339"));
    }
}
