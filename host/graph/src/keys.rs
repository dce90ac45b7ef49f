//! The key layout: every key starts with a namespace byte, so each namespace is a
//! contiguous, ordered range of the one store.
//!
//! | ns | key                                   | value                   |
//! |----|---------------------------------------|-------------------------|
//! | n  | node id                               | `Node`                  |
//! | x  | source ␀ kind external id             | node id                 |
//! | e  | normalized email                      | node id (first claimer) |
//! | d  | normalized domain                     | node id (first claimer) |
//! | y  | address domain ␀ person id            | ()  (who writes from it)|
//! | s  | kind, name token ␀ node id            | ()                      |
//! | f  | kind, normalized full name ␀ node id  | ()  (duplicate review)  |
//! | l  | surname ␀ given name ␀ person id      | ()  (duplicate review)  |
//! | r  | node id, node id                      | `DuplicateCandidate`    |
//! | a  | node id                               | `AliasLink` (merged)    |
//! | c  | parent id, child id                   | ()  (merge tree)        |
//! | p  | node id, node id                      | ()  (never merge)       |
//! | g  | merge id                              | `MergeRecord`           |
//! | w  | org id, person id                     | ()  (works at)          |
//! | m  | org id, deal id                       | ()                      |
//! | t  | org id, time, interaction id          | `TimelineEntry`         |
//! | u  | person id, time, interaction id       | ()                      |
//! | o  | subject id, time, observation id      | ()                      |
//! | q  | sequence number (big-endian u64)      | `Change` (change feed)  |
//! | k  | consumer name                         | its feed position (u64) |
//! | v  | stage's own key (derived by a consumer)| the stage's own value   |
//! | _  | name                                  | meta (progress, cursors)|
//!
//! "Everything about organization X" is the `w`, `m`, `t` and `o` ranges of X's
//! cluster members; "X's interactions between t1 and t2" is one `t` range.

use super::model::{MergeId, NODE_ID_LEN, NodeId, RecordKind, Timestamp};

/// Namespace bytes.
pub mod ns {
    /// Nodes.
    pub const NODE: u8 = b'n';
    /// `(source, kind, external id)` → node.
    pub const SOURCE_REF: u8 = b'x';
    /// Email → person.
    pub const EMAIL: u8 = b'e';
    /// Domain → organization.
    pub const DOMAIN: u8 = b'd';
    /// Domain of a person's address → the person (free-mail domains excluded).
    pub const ADDRESS_DOMAIN: u8 = b'y';
    /// Name tokens for search.
    pub const NAME: u8 = b's';
    /// Exact normalized names.
    pub const FULL_NAME: u8 = b'f';
    /// People by surname and given name.
    pub const SURNAME: u8 = b'l';
    /// Likely duplicates awaiting review.
    pub const REVIEW: u8 = b'r';
    /// Merged node → its parent.
    pub const ALIAS: u8 = b'a';
    /// Parent → merged children.
    pub const CHILD: u8 = b'c';
    /// Never-merge pins.
    pub const PIN: u8 = b'p';
    /// Merge log.
    pub const MERGE: u8 = b'g';
    /// Organization → people working there.
    pub const WORKS_AT: u8 = b'w';
    /// Organization → deals.
    pub const DEAL: u8 = b'm';
    /// Organization timeline.
    pub const ORG_TIMELINE: u8 = b't';
    /// Person timeline.
    pub const PERSON_TIMELINE: u8 = b'u';
    /// Observations about a subject.
    pub const ABOUT: u8 = b'o';
    /// The change feed, in sequence order.
    pub const CHANGE: u8 = b'q';
    /// Change-feed consumers' positions.
    pub const CONSUMER: u8 = b'k';
    /// What downstream stages derived, each under a key prefix of its own.
    pub const DERIVED: u8 = b'v';
    /// Metadata: import progress, cursors.
    pub const META: u8 = b'_';
}

fn key(ns: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(ns);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// A time as 8 bytes that sort like the time (sign bit flipped).
pub fn time_bytes(at: Timestamp) -> [u8; 8] {
    ((at.0 as u64) ^ (1 << 63)).to_be_bytes()
}

/// Reads a time written by [`time_bytes`].
pub fn time_from_bytes(bytes: &[u8]) -> Option<Timestamp> {
    let raw = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    Some(Timestamp((raw ^ (1 << 63)) as i64))
}

/// The node's own key.
pub fn node(id: NodeId) -> Vec<u8> {
    key(ns::NODE, &[&id.to_bytes()])
}

/// Prefix of every node of `kind`.
pub fn nodes_of_kind(kind: RecordKind) -> Vec<u8> {
    vec![ns::NODE, kind.tag()]
}

/// The source-reference key of a record.
pub fn source_ref(source: &str, kind: RecordKind, external_id: &str) -> Vec<u8> {
    key(ns::SOURCE_REF, &[source.as_bytes(), &[0, kind.tag()], external_id.as_bytes()])
}

/// Email index key.
pub fn email(normalized: &str) -> Vec<u8> {
    key(ns::EMAIL, &[normalized.as_bytes()])
}

/// Domain index key.
pub fn domain(normalized: &str) -> Vec<u8> {
    key(ns::DOMAIN, &[normalized.as_bytes()])
}

/// The domain of a domain-index key (`None` for any other key).
pub fn claimed_domain(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.strip_prefix(&[ns::DOMAIN])?).ok()
}

/// The key saying `person` has an address at `domain`.
pub fn address_domain(domain: &str, person: NodeId) -> Vec<u8> {
    key(ns::ADDRESS_DOMAIN, &[domain.as_bytes(), &[0], &person.to_bytes()])
}

/// Prefix of the people with an address at `domain`.
pub fn address_domain_prefix(domain: &str) -> Vec<u8> {
    key(ns::ADDRESS_DOMAIN, &[domain.as_bytes(), &[0]])
}

/// Name token index key.
pub fn name_token(kind: RecordKind, token: &str, id: NodeId) -> Vec<u8> {
    key(ns::NAME, &[&[kind.tag()], token.as_bytes(), &[0], &id.to_bytes()])
}

/// Prefix of name tokens of `kind` starting with `token_prefix`.
pub fn name_token_prefix(kind: RecordKind, token_prefix: &str) -> Vec<u8> {
    key(ns::NAME, &[&[kind.tag()], token_prefix.as_bytes()])
}

/// Exact-name index key.
pub fn full_name(kind: RecordKind, normalized: &str, id: NodeId) -> Vec<u8> {
    key(ns::FULL_NAME, &[&[kind.tag()], normalized.as_bytes(), &[0], &id.to_bytes()])
}

/// Prefix of the nodes of `kind` with exactly this normalized name.
pub fn full_name_prefix(kind: RecordKind, normalized: &str) -> Vec<u8> {
    key(ns::FULL_NAME, &[&[kind.tag()], normalized.as_bytes(), &[0]])
}

/// The key of a person by surname and given name (lowercase words).
pub fn surname(surname: &str, given: &str, person: NodeId) -> Vec<u8> {
    key(ns::SURNAME, &[surname.as_bytes(), &[0], given.as_bytes(), &[0], &person.to_bytes()])
}

/// Prefix of the people with this surname.
pub fn surname_prefix(surname: &str) -> Vec<u8> {
    key(ns::SURNAME, &[surname.as_bytes(), &[0]])
}

/// The given name and person of a surname key under `prefix`.
pub fn split_surname<'k>(key: &'k [u8], prefix: &[u8]) -> Option<(&'k str, NodeId)> {
    let rest = key.strip_prefix(prefix)?;
    let given = rest.get(..rest.len().checked_sub(NODE_ID_LEN + 1)?)?;
    Some((std::str::from_utf8(given).ok()?, trailing_id(key)?))
}

/// Review-list key of a likely duplicate pair (smaller id first).
pub fn review(a: NodeId, b: NodeId) -> Vec<u8> {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    key(ns::REVIEW, &[&first.to_bytes(), &second.to_bytes()])
}

/// Alias key of a merged node.
pub fn alias(id: NodeId) -> Vec<u8> {
    key(ns::ALIAS, &[&id.to_bytes()])
}

/// Merge-tree edge.
pub fn child(parent: NodeId, child: NodeId) -> Vec<u8> {
    key(ns::CHILD, &[&parent.to_bytes(), &child.to_bytes()])
}

/// Never-merge pin, stored in both directions.
pub fn pin(a: NodeId, b: NodeId) -> Vec<u8> {
    key(ns::PIN, &[&a.to_bytes(), &b.to_bytes()])
}

/// Merge log entry.
pub fn merge(id: MergeId) -> Vec<u8> {
    key(ns::MERGE, &[&id.to_u128().to_be_bytes()])
}

/// A key `ns | owner | other`, for the `w` and `m` indexes.
pub fn member(ns: u8, owner: NodeId, other: NodeId) -> Vec<u8> {
    key(ns, &[&owner.to_bytes(), &other.to_bytes()])
}

/// A time-ordered key `ns | owner | time | item`, for the `t`, `u` and `o` indexes.
pub fn timed(ns: u8, owner: NodeId, at: Timestamp, item: NodeId) -> Vec<u8> {
    key(ns, &[&owner.to_bytes(), &time_bytes(at), &item.to_bytes()])
}

/// Prefix of `owner`'s entries in namespace `ns`.
pub fn owned_prefix(ns: u8, owner: NodeId) -> Vec<u8> {
    key(ns, &[&owner.to_bytes()])
}

/// The start of `owner`'s entries at or after `at` in a time-ordered namespace.
pub fn timed_bound(ns: u8, owner: NodeId, at: Timestamp) -> Vec<u8> {
    key(ns, &[&owner.to_bytes(), &time_bytes(at)])
}

/// Splits a `ns | owner | other` key into its two ids.
pub fn split_member(key: &[u8]) -> Option<(NodeId, NodeId)> {
    let owner = NodeId::from_bytes(key.get(1..)?)?;
    let other = NodeId::from_bytes(key.get(1 + NODE_ID_LEN..)?)?;
    Some((owner, other))
}

/// Splits a time-ordered key into its time and item id.
pub fn split_timed(key: &[u8]) -> Option<(Timestamp, NodeId)> {
    let at = time_from_bytes(key.get(1 + NODE_ID_LEN..)?)?;
    let item = NodeId::from_bytes(key.get(1 + NODE_ID_LEN + 8..)?)?;
    Some((at, item))
}

/// The node id that ends a key (name-index keys end with one).
pub fn trailing_id(key: &[u8]) -> Option<NodeId> {
    NodeId::from_bytes(&key[key.len().checked_sub(NODE_ID_LEN)?..])
}

/// The change feed's entry `seq`.
pub fn change(seq: u64) -> Vec<u8> {
    key(ns::CHANGE, &[&seq.to_be_bytes()])
}

/// The sequence number of a change-feed key.
pub fn change_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.strip_prefix(&[ns::CHANGE])?.try_into().ok()?))
}

/// The position of the change-feed consumer `name`.
pub fn consumer(name: &str) -> Vec<u8> {
    key(ns::CONSUMER, &[name.as_bytes()])
}

/// A downstream stage's row `stage_key` (its own layout) in the derived namespace.
pub fn derived(stage_key: &[u8]) -> Vec<u8> {
    key(ns::DERIVED, &[stage_key])
}

/// Metadata key `name`.
pub fn meta(name: &str) -> Vec<u8> {
    key(ns::META, &[name.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sort_like_numbers() {
        let times = [-5_000, -1, 0, 1, 1_700_000_000_000];
        let encoded: Vec<_> = times.iter().map(|&t| time_bytes(Timestamp(t))).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        for (t, bytes) in times.iter().zip(&encoded) {
            assert_eq!(time_from_bytes(bytes), Some(Timestamp(*t)));
        }
    }

    #[test]
    fn timed_keys_split_back() {
        let org = NodeId::generate(RecordKind::Organization);
        let item = NodeId::generate(RecordKind::Interaction);
        let k = timed(ns::ORG_TIMELINE, org, Timestamp(42), item);
        assert!(k.starts_with(&owned_prefix(ns::ORG_TIMELINE, org)));
        assert_eq!(split_timed(&k), Some((Timestamp(42), item)));
    }
}
