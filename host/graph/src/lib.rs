//! The client-context graph: organizations, people, deals, interactions and observations,
//! each node holding the data of one source record, joined into clusters by identity
//! resolution.
//!
//! Writes go through [`Graph::ingest`] only, one batch at a time (a single writer), and
//! each batch is one atomic store write. Merges never move data: a merged node gets an
//! alias to its cluster's root and readers fold the cluster, so every merge is undone by
//! deleting that alias.

mod attribution;
mod changes;
pub mod config;
mod downstream;
mod earlier;
mod identity;
mod ingest;
pub mod keys;
pub mod metrics;
pub mod model;
mod names;
mod query;
mod suggestions;
mod txn;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub use downstream::DerivedRow;
pub use identity::IdentityError;
pub use names::Likeness;
pub use query::{
    ContextQuery, DealSummary, Engagement, GraphStats, MemberOf, ObservationItem, OrganizationContext, OrganizationView, PersonView,
    RelationshipHolder, SourcedName, TimelineCursor, TimelineItem, TimelinePage,
};
pub use suggestions::{DEFAULT_MIN_SCORE, JobChange, Suggestion, SuggestionCase};

use model::NodeId;
use rapport_ops::RecordLimits;
use rapport_store::codec::CodecError;
use rapport_store::{Store, StoreError};

/// A failure reading or writing the graph; invalid input is reported per operation instead.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value did not decode.
    #[error("stored value under key {key:?} is unreadable: {source}")]
    Codec {
        /// The key, escaped for display.
        key: String,
        /// Why.
        source: CodecError,
    },
    /// No node has this id.
    #[error("no node with id {0}")]
    NotFound(NodeId),
    /// No change-feed consumer of this name is registered.
    #[error("no change-feed consumer named `{0}` is registered")]
    UnknownConsumer(String),
    /// A consumer asked to move back before its position, or past the newest change.
    #[error("consumer `{consumer}` cannot move to change {to}: it is at {at} and the newest change is {newest}")]
    ConsumerMove {
        /// The consumer.
        consumer: String,
        /// Its position.
        at: u64,
        /// Where it asked to go.
        to: u64,
        /// The newest change's number (0: none yet).
        newest: u64,
    },
}

/// The source of the operator's review decisions: an accepted job change's employments are
/// a record of it, which outranks every other source's employments at those organizations.
pub const REVIEW_SOURCE: &str = "rapport:review";

/// How identity resolution treats addresses, domains and sources.
#[derive(Debug, Clone, Default)]
pub struct IdentityRules {
    /// Domains of free-mail providers: they never identify an organization.
    pub free_mail_domains: HashSet<String>,
    /// Our own domains: a person whose address is there is an employee.
    pub internal_domains: HashSet<String>,
    /// Sources by rank, highest first: a name, or a prefix ending in `*`. Scalar fields
    /// (names, titles, lifecycle, owner) of a cluster come from its best-ranked record
    /// that has them, then the one its source saw last; unlisted sources rank last.
    pub source_priority: Vec<String>,
    /// Local parts of role or automated addresses (`*` matches any run of characters):
    /// such an address is never an employee, a client's person or engagement.
    pub role_addresses: Vec<String>,
}

impl IdentityRules {
    /// The built-in free-mail list, used unless configuration replaces it.
    pub const DEFAULT_FREE_MAIL: &'static [&'static str] = &[
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "qq.com",
        "163.com",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "t-online.de",
        "seznam.cz",
    ];

    /// The built-in role local parts, used unless configuration replaces them.
    pub const DEFAULT_ROLE_ADDRESSES: &'static [&'static str] = &[
        "noreply*",
        "no-reply*",
        "no_reply*",
        "donotreply*",
        "do-not-reply*",
        "mailer-daemon",
        "postmaster",
        "bounce*",
        "*helpdesk*",
        "*support*",
        "help",
        "billing*",
        "invoice*",
        "accounts",
        "accounting",
        "notification*",
        "notify*",
        "alert*",
        "newsletter*",
        "news",
        "marketing",
        "info",
        "hello",
        "contact",
        "admin",
        "sales",
        "office",
        "team",
        "jobs",
        "careers",
        "press",
        "security",
        "abuse",
        "calendar*",
    ];

    /// Rules with the built-in free-mail and role lists and the given internal domains.
    pub fn with_defaults(internal_domains: impl IntoIterator<Item = String>) -> Self {
        Self {
            free_mail_domains: Self::DEFAULT_FREE_MAIL.iter().map(|d| (*d).to_owned()).collect(),
            internal_domains: internal_domains.into_iter().collect(),
            source_priority: Vec::new(),
            role_addresses: Self::DEFAULT_ROLE_ADDRESSES.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// The same rules ranking sources in this order (highest first).
    #[must_use]
    pub fn with_source_priority(self, sources: impl IntoIterator<Item = String>) -> Self {
        Self { source_priority: sources.into_iter().collect(), ..self }
    }

    /// The rank of `source` (0 is the highest; unlisted sources share the lowest).
    pub fn source_rank(&self, source: &str) -> usize {
        self.source_priority
            .iter()
            .position(|entry| match entry.strip_suffix('*') {
                Some(prefix) => source.starts_with(prefix),
                None => source == entry,
            })
            .unwrap_or(self.source_priority.len())
    }

    /// Whether a normalized address is a role or automated one (`noreply@…`, `it-helpdesk@…`).
    pub fn is_role_address(&self, email: &str) -> bool {
        let local = email.rsplit_once('@').map_or(email, |(local, _)| local);
        self.role_addresses.iter().any(|pattern| glob_matches(pattern, local))
    }

    /// Whether addresses `emails` make a role mailbox rather than a person: there is one,
    /// and every one is a role address.
    pub fn is_role_mailbox(&self, emails: &[String]) -> bool {
        !emails.is_empty() && emails.iter().all(|email| self.is_role_address(email))
    }

    /// Whether a domain may identify an organization (it is not a free-mail provider's).
    pub fn identifies_organization(&self, domain: &str) -> bool {
        !self.free_mail_domains.contains(domain)
    }

    /// Whether a normalized address is at one of our own domains.
    pub fn is_internal_address(&self, email: &str) -> bool {
        rapport_ops::email_domain(email).is_some_and(|d| self.internal_domains.contains(d))
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else { return rest.is_empty() };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The graph over a store.
#[derive(Debug)]
pub struct Graph {
    store: Arc<dyn Store>,
    rules: IdentityRules,
    limits: RecordLimits,
    /// One writer at a time: identity resolution reads what earlier batches wrote. It holds
    /// the change feed's next sequence number, read from the store by the first write.
    writer: Mutex<Option<u64>>,
}

impl Graph {
    /// A graph over `store`, with the default record limits.
    pub fn new(store: Arc<dyn Store>, rules: IdentityRules) -> Self {
        Self { store, rules, limits: RecordLimits::default(), writer: Mutex::new(None) }
    }

    /// The same graph checking operations against `limits`.
    #[must_use]
    pub fn with_limits(self, limits: RecordLimits) -> Self {
        Self { limits, ..self }
    }

    /// The limits every operation is checked against.
    pub fn limits(&self) -> &RecordLimits {
        &self.limits
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The node a source record maps to, if the source sent or referred to it.
    pub fn resolve(&self, source: &str, kind: model::RecordKind, external_id: &str) -> Result<Option<NodeId>, GraphError> {
        let key = keys::source_ref(source, kind, external_id);
        self.store.get(&key)?.map(|bytes| decode_at(&key, &bytes)).transpose()
    }

    /// Reads a metadata value written with a batch (import progress, plugin cursors).
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, GraphError> {
        Ok(self.store.get(&keys::meta(name))?)
    }

    /// Every metadata value whose name starts with `prefix`, in name order.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, GraphError> {
        let key_prefix = keys::meta(prefix);
        self.store
            .scan_prefix(&key_prefix)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((String::from_utf8_lossy(&key[1..]).into_owned(), value))
            })
            .collect()
    }

    /// Metadata values whose names fall in `[start, end)`, in name order (or reverse), at
    /// most `limit` of them.
    pub fn meta_range(&self, start: &str, end: &str, reverse: bool, limit: usize) -> Result<Vec<(String, Vec<u8>)>, GraphError> {
        let range = rapport_store::KeyRange::between(keys::meta(start), keys::meta(end));
        self.store
            .range(range, reverse)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((String::from_utf8_lossy(&key[1..]).into_owned(), value))
            })
            .collect()
    }

    /// Writes metadata values (`None` removes one) in one atomic, durable commit.
    pub fn write_meta(&self, entries: Vec<(String, Option<Vec<u8>>)>) -> Result<(), GraphError> {
        let mut batch = rapport_store::WriteBatch::default();
        for (name, value) in entries {
            match value {
                Some(value) => batch.put(keys::meta(&name), value),
                None => batch.delete(keys::meta(&name)),
            }
        }
        Ok(self.store.apply(batch)?)
    }
}

fn decode_at<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, GraphError> {
    rapport_store::codec::decode(bytes).map_err(|source| codec_error(key, source))
}

/// Decodes a value of a type whose layout changed since format 1 (`earlier`).
fn decode_upgrading_at<T: serde::de::DeserializeOwned, Old: serde::de::DeserializeOwned + Into<T>>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, GraphError> {
    rapport_store::codec::decode_upgrading::<T, Old>(bytes).map_err(|source| codec_error(key, source))
}

/// Decodes a stored node, of this layout or an earlier one.
fn decode_node(key: &[u8], bytes: &[u8]) -> Result<model::Node, GraphError> {
    decode_upgrading_at::<model::Node, earlier::NodeV1>(key, bytes)
}

fn codec_error(key: &[u8], source: CodecError) -> GraphError {
    GraphError::Codec { key: String::from_utf8_lossy(key).into_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_patterns_match_whole_local_parts_with_stars() {
        let rules = IdentityRules::with_defaults([]);
        for role in ["noreply@acme.com", "no-reply-billing@acme.com", "it-helpdesk@acme.com", "support@acme.com", "mailer-daemon@x.org"] {
            assert!(rules.is_role_address(role), "{role} is a role address");
        }
        for person in ["anna@acme.com", "information.officer@acme.com", "noelle@acme.com", "salesforce.admin.bob@acme.com"] {
            assert!(!rules.is_role_address(person), "{person} is a person's address");
        }
        assert!(glob_matches("a*b*c", "axxbyyc") && !glob_matches("a*b*c", "axxcyyb") && glob_matches("*", ""));
        assert!(!glob_matches("ab*ba", "aba"), "the two ends may not overlap");
    }

    #[test]
    fn sources_rank_by_name_or_prefix_and_unlisted_last() {
        let rules = IdentityRules::with_defaults([]).with_source_priority(["hubspot".to_owned(), "caldav-*".to_owned()]);
        assert_eq!(rules.source_rank("hubspot"), 0);
        assert_eq!(rules.source_rank("caldav-team"), 1);
        assert_eq!(rules.source_rank("imap-anna"), 2);
        assert_eq!(rules.source_rank("hubspot-old"), 2, "a name without a star matches exactly");
    }
}
