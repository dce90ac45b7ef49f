//! The conformance suite every [`Store`] backend must pass: this crate's tests run it
//! against sled, and another backend's tests call [`conformance`] with its own `open`.

// A test suite: a failed check panics with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::{KeyRange, Store, WriteBatch};

fn keys_of(store: &dyn Store, range: KeyRange, reverse: bool) -> Vec<Vec<u8>> {
    store.range(range, reverse).map(|e| e.unwrap().0).collect()
}

fn batch(puts: &[(&[u8], &[u8])], deletes: &[&[u8]]) -> WriteBatch {
    let mut batch = WriteBatch::default();
    for (k, v) in puts {
        batch.put(k.to_vec(), v.to_vec());
    }
    for k in deletes {
        batch.delete(k.to_vec());
    }
    batch
}

/// Runs every check against stores made by `open` (which must reopen the same data for
/// the same path); panics at the first that fails.
pub fn conformance(open: impl Fn(&Path) -> Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    // get / apply
    assert_eq!(store.get(b"a").unwrap(), None);
    store.apply(batch(&[(b"a", b"1"), (b"n\x01x", b"2"), (b"t\xff\xff", b"3")], &[])).unwrap();
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get(b"t\xff\xff").unwrap().as_deref(), Some(&b"3"[..]));

    // later writes in one batch win, deletes apply, an empty batch is fine
    store.apply(batch(&[(b"a", b"first"), (b"a", b"second")], &[b"n\x01x"])).unwrap();
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(store.get(b"n\x01x").unwrap(), None);
    let mut put_then_delete = WriteBatch::default();
    put_then_delete.put(b"gone".to_vec(), b"x".to_vec());
    put_then_delete.delete(b"gone".to_vec());
    store.apply(put_then_delete).unwrap();
    assert_eq!(store.get(b"gone").unwrap(), None);
    store.apply(WriteBatch::default()).unwrap();

    // ordered ranges and prefixes, both directions
    store.apply(batch(&[(b"ab", b""), (b"ab\x00", b""), (b"ab\xff", b""), (b"ac", b""), (b"aa", b"")], &[])).unwrap();
    assert_eq!(keys_of(&*store, KeyRange::prefix(b"ab"), false), vec![b"ab".to_vec(), b"ab\x00".to_vec(), b"ab\xff".to_vec()]);
    assert_eq!(keys_of(&*store, KeyRange::prefix(b"ab"), true), vec![b"ab\xff".to_vec(), b"ab\x00".to_vec(), b"ab".to_vec()]);
    assert_eq!(keys_of(&*store, KeyRange::between(b"aa".to_vec(), b"ac".to_vec()), false).len(), 4);
    assert_eq!(keys_of(&*store, KeyRange::prefix(b"t\xff"), false), vec![b"t\xff\xff".to_vec()]);
    assert_eq!(keys_of(&*store, KeyRange::prefix(b"zz"), false), Vec::<Vec<u8>>::new());
    let scanned: Vec<_> = store.scan_prefix(b"a").map(|e| e.unwrap().0).collect();
    assert_eq!(scanned.first().map(Vec::as_slice), Some(&b"a"[..]));
    assert!(scanned.windows(2).all(|w| w[0] < w[1]));

    // compare-and-swap
    assert!(store.compare_and_swap(b"cas", None, Some(b"v1")).unwrap());
    assert!(!store.compare_and_swap(b"cas", None, Some(b"v2")).unwrap());
    assert!(!store.compare_and_swap(b"cas", Some(b"wrong"), Some(b"v2")).unwrap());
    assert_eq!(store.get(b"cas").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(store.compare_and_swap(b"cas", Some(b"v1"), Some(b"v2")).unwrap());
    assert!(store.compare_and_swap(b"cas", Some(b"v2"), None).unwrap());
    assert_eq!(store.get(b"cas").unwrap(), None);

    // a committed batch survives closing and reopening
    store.apply(batch(&[(b"durable", b"yes")], &[])).unwrap();
    store.flush().unwrap();
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(reopened.get(b"durable").unwrap().as_deref(), Some(&b"yes"[..]));
    assert_eq!(reopened.get(b"a").unwrap().as_deref(), Some(&b"second"[..]));
}
