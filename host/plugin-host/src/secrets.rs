//! One instance's secrets: handed to that instance's plugin on request, and cut out of
//! everything the run reports (its log lines, errors, run record).

use std::borrow::Cow;
use std::collections::BTreeMap;

use rapport_core::Secret;

/// What replaces a secret value in text.
pub const REDACTED: &str = "[redacted]";

/// The secrets of the instance a run belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets {
    by_name: BTreeMap<String, Secret>,
}

impl Secrets {
    pub fn new(by_name: BTreeMap<String, Secret>) -> Self {
        Self { by_name }
    }

    /// The value of secret `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(Secret::expose)
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in self.by_name.values() {
            if text.contains(secret.expose()) {
                text = Cow::Owned(text.replace(secret.expose(), REDACTED));
            }
        }
        text
    }
}
