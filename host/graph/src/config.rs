//! The graph's sections of `rapport.toml`: `[identity]` (who is internal, which mail
//! domains are free) and `[records]` (what every record operation must respect).

use std::collections::HashSet;

use rapport_core::config::{ConfigError, EnvKeys, EnvKind, invalid, set_positive};
use rapport_ops::{self as ops, RecordLimits};
use serde::Deserialize;

use crate::IdentityRules;

/// `[identity]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    internal_domains: Option<Vec<String>>,
    free_mail_domains: Option<Vec<String>>,
    extra_free_mail_domains: Option<Vec<String>>,
}

/// `[records]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecords {
    max_list_items: Option<usize>,
    max_name_chars: Option<usize>,
    max_text_chars: Option<usize>,
}

/// The keys of `[identity]` and `[records]` an environment variable may set.
pub const ENV_KEYS: EnvKeys = &[
    ("identity.internal_domains", EnvKind::List),
    ("records.max_list_items", EnvKind::Number),
    ("records.max_name_chars", EnvKind::Number),
    ("records.max_text_chars", EnvKind::Number),
];

impl RawIdentity {
    /// The validated rules: the built-in free-mail list unless replaced, plus extras.
    pub fn validate(self) -> Result<IdentityRules, ConfigError> {
        let mut identity = IdentityRules::with_defaults(domains("identity.internal_domains", self.internal_domains.unwrap_or_default())?);
        if let Some(list) = self.free_mail_domains {
            identity.free_mail_domains = domains("identity.free_mail_domains", list)?;
        }
        identity.free_mail_domains.extend(domains("identity.extra_free_mail_domains", self.extra_free_mail_domains.unwrap_or_default())?);
        Ok(identity)
    }
}

impl RawRecords {
    /// The validated limits; each positive.
    pub fn validate(self) -> Result<RecordLimits, ConfigError> {
        let mut records = RecordLimits::default();
        set_positive(&mut records.max_list_items, "records.max_list_items", self.max_list_items, std::convert::identity)?;
        set_positive(&mut records.max_name_chars, "records.max_name_chars", self.max_name_chars, std::convert::identity)?;
        set_positive(&mut records.max_text_chars, "records.max_text_chars", self.max_text_chars, std::convert::identity)?;
        Ok(records)
    }
}

fn domains(key: &str, list: Vec<String>) -> Result<HashSet<String>, ConfigError> {
    list.iter()
        .map(|d| ops::normalize_domain(d).ok_or_else(|| invalid(key, format!("`{d}` is not a domain name such as \"acme.com\""))))
        .collect()
}
