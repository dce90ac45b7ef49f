//! The client-context graph: organizations, people, deals, interactions and observations,
//! each node holding the data of one source record, joined into clusters by identity
//! resolution.
//!
//! Writes go through [`Graph::ingest`] only, one batch at a time (a single writer), and
//! each batch is one atomic store write. Merges never move data: a merged node gets an
//! alias to its cluster's root and readers fold the cluster, so every merge is undone by
//! deleting that alias.

mod changes;
pub mod config;
mod identity;
mod ingest;
pub mod keys;
pub mod metrics;
pub mod model;
mod query;
mod txn;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub use identity::IdentityError;
pub use query::{
    ContextQuery, DealSummary, Engagement, GraphStats, MemberOf, ObservationItem, OrganizationContext, OrganizationView, PersonView,
    RelationshipHolder, TimelineCursor, TimelineItem, TimelinePage,
};

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

/// How identity resolution treats addresses and domains.
#[derive(Debug, Clone, Default)]
pub struct IdentityRules {
    /// Domains of free-mail providers: they never identify an organization.
    pub free_mail_domains: HashSet<String>,
    /// Our own domains: a person whose address is there is an employee.
    pub internal_domains: HashSet<String>,
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

    /// Rules with the built-in free-mail list and the given internal domains.
    pub fn with_defaults(internal_domains: impl IntoIterator<Item = String>) -> Self {
        Self {
            free_mail_domains: Self::DEFAULT_FREE_MAIL.iter().map(|d| (*d).to_owned()).collect(),
            internal_domains: internal_domains.into_iter().collect(),
        }
    }
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
    rapport_store::codec::decode(bytes).map_err(|source| GraphError::Codec { key: String::from_utf8_lossy(key).into_owned(), source })
}
