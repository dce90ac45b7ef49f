//! The example connector: contacts and their companies from the example CRM API
//! (`tests/example-api`), incrementally.
//!
//! Configuration: `base_url` (required), `page_size` (default 100), `lookback_secs`
//! (default 300); secret `api_token`. Each page becomes an organization and a person per
//! contact and a checkpoint; the cursor is a [`Watermark`], so records sharing a timestamp
//! across a page boundary, or committed late by the remote, are neither lost nor repeated.

use std::time::Duration;

use rapport_sdk::cursor::{Versioned, Watermark};
use rapport_sdk::http::Client;
use rapport_sdk::paging::{Pages, Paging};
use rapport_sdk::record::{Operation, Organization, Person, Role};
use rapport_sdk::time::Timestamp;
use rapport_sdk::{Config, Connector, PluginError};
use serde::Deserialize;

/// A company as the API embeds it in a contact.
#[derive(Debug, Deserialize)]
struct Company {
    id: String,
    name: String,
    domain: String,
}

/// A contact as the API lists it.
#[derive(Debug, Deserialize)]
struct Contact {
    id: String,
    name: String,
    email: String,
    title: String,
    company: Company,
    updated_at: Timestamp,
}

impl Versioned for Contact {
    fn id(&self) -> &str {
        &self.id
    }

    fn modified(&self) -> Timestamp {
        self.updated_at
    }
}

impl Contact {
    fn operations(self) -> [Operation; 2] {
        let company = Organization::new(&self.company.id, self.company.name).domain(self.company.domain).role(Role::Client);
        let person = Person::new(self.id, self.name).email(self.email).title(self.title).works_at(self.company.id).seen_at(self.updated_at);
        [company.into(), person.into()]
    }
}

#[derive(Default)]
struct Example;

impl Connector for Example {
    fn check(&mut self, config: &Config) -> Result<(), PluginError> {
        let page_size: u64 = config.get_or("page_size", 100)?;
        if !(1..=200).contains(&page_size) {
            return Err(PluginError::Config(format!("key `page_size`: expected 1 to 200, found {page_size}")));
        }
        config.require::<String>("base_url").map(drop)
    }

    fn sync(&mut self, config: &Config, cursor: Option<String>) -> Result<(), PluginError> {
        let token = rapport_sdk::secret("api_token")
            .ok_or_else(|| PluginError::Config("secret `api_token` is not set: add it to the instance in rapport.toml".to_owned()))?;
        let client = Client::new(&config.require::<String>("base_url")?).bearer(&token);
        let page_size: u64 = config.get_or("page_size", 100)?;
        let mut mark = Watermark::resume(cursor.as_deref(), Duration::from_secs(config.get_or("lookback_secs", 300)?))?;

        let mut first = client.get("/v1/contacts").query("limit", &page_size.to_string());
        if let Some(from) = mark.query_from() {
            first = first.query("updated_since", &from.to_rfc3339());
        }
        rapport_sdk::info!(since = mark.query_from().map_or_else(|| "the beginning".to_owned(), |t| t.to_rfc3339()); "syncing contacts");
        let emitted = mark.sync_pages(Pages::new(first, Paging::cursor("after", "/paging/next")), "/results", Contact::operations)?;
        rapport_sdk::info!(contacts = emitted; "contacts synced");
        Ok(())
    }
}

rapport_sdk::export_connector!(Example);
