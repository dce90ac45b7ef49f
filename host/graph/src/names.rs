//! Name likeness for duplicate suggestions: a person's given name and surname, and whether
//! two given names may be one person's — the same, an initial ("R." ~ "Rafael"), a prefix
//! ("Seb" ~ "Sebastian") or a nickname ("Bob" ~ "Robert", "Kate" ~ "Katherine").
//!
//! The nicknames are a public, hand-curated English list embedded in the build
//! (`data/nicknames.csv`; its origin and licence are in `data/README.md`).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// How two given names are alike, closest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Likeness {
    /// Spelled the same.
    Same,
    /// One is a nickname of the other, or both of one name.
    Nickname,
    /// One starts the other (three letters at least).
    Prefix,
    /// One is the other's initial.
    Initial,
}

impl Likeness {
    /// How it reads in a reason.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Same => "the same given name",
            Self::Nickname => "a nickname",
            Self::Prefix => "a shortened given name",
            Self::Initial => "an initial",
        }
    }
}

/// A person's name as duplicate suggestions compare it: lowercase words, the first being
/// the given name and the last the surname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PersonName {
    pub given: String,
    pub surname: String,
}

impl PersonName {
    /// The name's given name and surname; `None` for a single word or none.
    pub(crate) fn split(name: &str) -> Option<Self> {
        let mut words = name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase);
        let given = words.next()?;
        let surname = words.next_back()?;
        Some(Self { given, surname })
    }
}

/// Whether two given names (lowercase) may be one person's, and how.
pub(crate) fn given_names_alike(a: &str, b: &str) -> Option<Likeness> {
    if a == b {
        return Some(Likeness::Same);
    }
    if NICKNAMES.alike(a, b) {
        return Some(Likeness::Nickname);
    }
    let (short, long) = if a.chars().count() <= b.chars().count() { (a, b) } else { (b, a) };
    match short.chars().count() {
        1 if long.starts_with(short) => Some(Likeness::Initial),
        n if n >= 3 && long.starts_with(short) => Some(Likeness::Prefix),
        _ => None,
    }
}

/// The nickname list, read both ways.
struct Nicknames(HashMap<&'static str, HashSet<&'static str>>);

static NICKNAMES: LazyLock<Nicknames> = LazyLock::new(|| Nicknames::parse(include_str!("../data/nicknames.csv")));

impl Nicknames {
    fn parse(csv: &'static str) -> Self {
        let mut related: HashMap<&'static str, HashSet<&'static str>> = HashMap::new();
        for line in csv.lines().skip(1) {
            let mut fields = line.split(',');
            let (Some(name), Some("has_nickname"), Some(nickname)) = (fields.next(), fields.next(), fields.next()) else { continue };
            related.entry(name).or_default().insert(nickname);
            related.entry(nickname).or_default().insert(name);
        }
        Self(related)
    }

    /// One is the other's nickname, or both are nicknames of one name.
    fn alike(&self, a: &str, b: &str) -> bool {
        match (self.0.get(a), self.0.get(b)) {
            (Some(of_a), Some(of_b)) => of_a.contains(b) || !of_a.is_disjoint(of_b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_names_are_alike_by_initial_prefix_or_nickname_and_not_otherwise() {
        let cases = [
            ("rafael", "rafael", Some(Likeness::Same)),
            ("r", "rafael", Some(Likeness::Initial)),
            ("seb", "sebastian", Some(Likeness::Nickname)),
            ("sebas", "sebastian", Some(Likeness::Prefix)),
            ("bob", "robert", Some(Likeness::Nickname)),
            ("robert", "bob", Some(Likeness::Nickname)),
            ("kate", "katherine", Some(Likeness::Nickname)),
            ("bob", "rob", Some(Likeness::Nickname)),
            ("r", "samuel", None),
            ("se", "sebastian", None),
            ("anna", "maria", None),
            ("john", "jane", None),
        ];
        for (a, b, expected) in cases {
            assert_eq!(given_names_alike(a, b), expected, "{a} ~ {b}");
        }
        assert!(NICKNAMES.0.len() > 1_000, "the list is embedded");
    }

    #[test]
    fn names_split_into_given_name_and_surname() {
        let split = |n: &str| PersonName::split(n).map(|p| (p.given, p.surname));
        assert_eq!(split("R. Alvarez"), Some(("r".into(), "alvarez".into())));
        assert_eq!(split("Rafael A. Alvarez"), Some(("rafael".into(), "alvarez".into())));
        assert_eq!(split("Müller"), None);
        assert_eq!(split("  "), None);
    }
}
