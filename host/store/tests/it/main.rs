//! The store's integration tests: the conformance suite run against sled.

// Test helpers unwrap: a panic with a location is the right failure in a test.
#![allow(clippy::unwrap_used)]

use rapport_store::SledStore;
use rapport_store::conformance::conformance;

#[test]
fn sled_store_conforms() {
    conformance(|path| Box::new(SledStore::open(path, 8 << 20).unwrap()));
}
