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
    source_priority: Option<Vec<String>>,
    role_addresses: Option<Vec<String>>,
    extra_role_addresses: Option<Vec<String>>,
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
    ("identity.source_priority", EnvKind::List),
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
        identity.source_priority = sources("identity.source_priority", self.source_priority.unwrap_or_default())?;
        if let Some(list) = self.role_addresses {
            identity.role_addresses = local_parts("identity.role_addresses", list)?;
        }
        identity.role_addresses.extend(local_parts("identity.extra_role_addresses", self.extra_role_addresses.unwrap_or_default())?);
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

/// Source names, each written once, a trailing `*` standing for any rest.
fn sources(key: &str, list: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut seen = HashSet::new();
    for source in &list {
        let name = source.strip_suffix('*').unwrap_or(source);
        if !ops::is_valid_source(name) {
            return Err(invalid(key, format!("`{source}` is not a source name such as \"hubspot\" or a prefix such as \"imap-*\"")));
        }
        if !seen.insert(source) {
            return Err(invalid(key, format!("`{source}` is listed twice; each source has one rank")));
        }
    }
    Ok(list)
}

/// Local-part patterns: lowercase, no `@`, `*` for any run of characters.
fn local_parts(key: &str, list: Vec<String>) -> Result<Vec<String>, ConfigError> {
    list.into_iter()
        .map(|pattern| {
            let valid =
                !pattern.is_empty() && pattern != "*" && !pattern.chars().any(|c| c == '@' || c.is_whitespace() || c.is_uppercase());
            if valid {
                Ok(pattern)
            } else {
                Err(invalid(
                    key,
                    format!("`{pattern}` is not a lowercase local part such as \"noreply\" or a pattern such as \"*-support\""),
                ))
            }
        })
        .collect()
}
