//! Ids: a ULID (time-ordered, so keys sort by creation) behind a short prefix that says what
//! it names — `mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0` for a merge, `run_…` for a plugin run. Every
//! single-kind id is declared by [`prefixed_id!`], so they print, parse and store alike;
//! the graph's node ids (`org_`, `per_`, `deal_`, `int_`, `obs_`: one type over five kinds)
//! use the same ULID text rules ([`parse_ulid`]).

/// A ULID exactly as Rapport writes it: 26 upper-case Crockford base-32 digits, the first
/// at most 7. The documented id patterns say the same, so a lower-case or aliased spelling
/// is refused rather than silently read as another id.
pub fn parse_ulid(text: &str) -> Option<u128> {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let strict = text.len() == 26 && text.as_bytes()[0] <= b'7' && text.bytes().all(|b| DIGITS.contains(&b));
    strict.then(|| ulid::Ulid::from_string(text).ok().map(|u| u.0)).flatten()
}

/// A text that does not spell an id of the expected kind; the text is cut, since it is
/// echoed to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a {what} (expected {prefix}_ and a ULID, such as {prefix}_01J9Z3K4X7Q8R2M5N6P7T8V9W0)")]
pub struct BadId {
    /// What was expected, e.g. "merge id".
    pub what: &'static str,
    /// The expected prefix.
    pub prefix: &'static str,
    /// The text given, at most 64 characters of it.
    pub text: String,
}

impl BadId {
    /// `text` refused as a `what` with `prefix`.
    pub fn new(what: &'static str, prefix: &'static str, text: &str) -> Self {
        let text = match text.char_indices().nth(64) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None => text.to_owned(),
        };
        Self { what, prefix, text }
    }
}

/// Declares an id type: `prefixed_id!(/// docs
/// MergeId, "mrg", "merge id");`. Text form `mrg_<ULID>` (`Display`, `FromStr`, and serde
/// in human-readable formats such as JSON); the bare 128-bit number in binary ones (the
/// store's codec), so keys and stored values stay compact.
#[macro_export]
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u128);

        impl $name {
            /// The prefix of the text form, before the `_`.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, ordered by the current time.
            pub fn generate() -> Self {
                Self($crate::ulid::Ulid::new().0)
            }

            /// The id of this ULID.
            pub const fn from_ulid(ulid: $crate::ulid::Ulid) -> Self {
                Self(ulid.0)
            }

            /// The smallest id of the millisecond `unix_ms`: every id made before it sorts
            /// below (for range scans by age).
            pub fn first_at(unix_ms: u64) -> Self {
                Self($crate::ulid::Ulid::from_parts(unix_ms, 0).0)
            }

            /// The 128-bit value, as keys hold it (big-endian there).
            pub const fn to_u128(self) -> u128 {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}_{}", $prefix, $crate::ulid::Ulid(self.0))
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::id::BadId;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.strip_prefix(concat!($prefix, "_"))
                    .and_then($crate::id::parse_ulid)
                    .map(Self)
                    .ok_or_else(|| $crate::id::BadId::new($what, $prefix, text))
            }
        }

        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.collect_str(self) } else { s.serialize_u128(self.0) }
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = <::std::string::String as $crate::serde::Deserialize>::deserialize(d)?;
                    text.parse().map_err(<D::Error as $crate::serde::de::Error>::custom)
                } else {
                    <u128 as $crate::serde::Deserialize>::deserialize(d).map(Self)
                }
            }
        }
    };
}

prefixed_id!(
    /// An identity merge (`mrg_…`): one cluster joined another; undoing it names this id.
    MergeId,
    "mrg",
    "merge id"
);

prefixed_id!(
    /// One run of a plugin instance (`run_…`), ordered by its start.
    RunId,
    "run",
    "run id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_parse_and_store_by_one_rule() {
        let id = MergeId::from_ulid(ulid::Ulid::from_string("01J9Z3K4X7Q8R2M5N6P7T8V9W0").unwrap());
        assert_eq!(id.to_string(), "mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0");
        assert_eq!("mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0".parse::<MergeId>(), Ok(id));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0\"");
        assert_eq!(serde_json::from_str::<MergeId>("\"mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0\"").unwrap(), id);
        let stored = postcard::to_stdvec(&id).unwrap();
        assert!(stored.len() <= 19, "binary formats hold the number: {stored:?}");
        assert_eq!(postcard::from_bytes::<MergeId>(&stored).unwrap(), id);
        for refused in [
            "run_01J9Z3K4X7Q8R2M5N6P7T8V9W0", // another kind
            "mrg_01j9z3k4x7q8r2m5n6p7t8v9w0", // lower case
            "01J9Z3K4X7Q8R2M5N6P7T8V9W0",     // no prefix
            "mrg_81J9Z3K4X7Q8R2M5N6P7T8V9W0", // beyond 128 bits
            "mrg_01J9Z3K4X7Q8R2M5N6P7T8V9WU", // not Crockford
        ] {
            let err = refused.parse::<MergeId>().unwrap_err();
            assert!(err.to_string().contains("is not a merge id (expected mrg_"), "{err}");
        }
        assert!(BadId::new("run id", "run", &"x".repeat(500)).text.chars().count() <= 65, "echoes are cut");
    }

    #[test]
    fn ids_sort_by_time_and_first_at_bounds_a_millisecond() {
        let earlier = RunId::from_ulid(ulid::Ulid::from_parts(1_000, u128::MAX));
        let later = RunId::from_ulid(ulid::Ulid::from_parts(1_001, 0));
        assert!(earlier < RunId::first_at(1_001) && RunId::first_at(1_001) <= later);
        assert!(earlier.to_string() < later.to_string(), "the text sorts like the number");
        assert!(RunId::generate() > later);
    }
}
