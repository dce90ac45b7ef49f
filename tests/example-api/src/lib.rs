//! The local JSON API the example connector (`plugins/example`) syncs from: a small CRM's
//! contacts, each with its company and, for some, their latest support ticket. It behaves
//! like the SaaS APIs connectors meet:
//!
//! `GET /v1/contacts?updated_since=<RFC 3339, inclusive>&limit=<1..=200>&after=<token>`
//! with `Authorization: Bearer <token>` answers
//! `{"results": [contact…], "paging": {"next": "<token>"}}`, contacts ordered by
//! `(updated_at, id)`; the last page has no `paging.next`.
//!
//! - Unknown parameters and malformed values are a 400 naming the parameter; a wrong token
//!   is a 401.
//! - [`ExampleApi::throttle_every`] answers every n-th request with 429 and
//!   `Retry-After: 1`; [`ExampleApi::fail_page_once`] answers one page with a 500.
//! - Records can be added and changed while it runs ([`ExampleApi::upsert`]), and many
//!   share a timestamp ([`contacts`]), so a connector paging by time must cope.
//!
//! The server runs on a thread of its own, so sync and async callers alike can use it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The largest page the API serves.
pub const MAX_LIMIT: usize = 200;

/// A company, as embedded in its contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its web domain.
    pub domain: String,
}

/// A contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Its id.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Job title.
    pub title: String,
    /// The company the contact works at.
    pub company: Company,
    /// Their latest support ticket, if they opened one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ticket: Option<Ticket>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A support ticket a contact opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Its id.
    pub id: String,
    /// What it is about.
    pub subject: String,
    /// When the contact opened it.
    pub opened_at: DateTime<Utc>,
}

/// `count` contacts over `count / 10` companies, from 2026-01-01 on, `per_timestamp` of
/// them sharing each update time (so groups of equal timestamps straddle page boundaries);
/// every fifth has a ticket, opened the day before its update.
pub fn contacts(count: usize, per_timestamp: usize) -> Vec<Contact> {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_default();
    let companies = (count / 10).max(1);
    (0..count)
        .map(|n| {
            let c = n % companies;
            let updated_at = start + Duration::seconds(i64::try_from(n / per_timestamp.max(1)).unwrap_or(i64::MAX));
            Contact {
                id: format!("ct-{n:06}"),
                name: format!("Contact {n}"),
                email: format!("contact{n}@company{c}.example"),
                title: ["CTO", "Buyer", "CEO", "Engineer"][n % 4].to_owned(),
                company: Company { id: format!("co-{c:05}"), name: format!("Company {c}"), domain: format!("company{c}.example") },
                last_ticket: n.is_multiple_of(5).then(|| Ticket {
                    id: format!("tk-{n:06}"),
                    subject: format!("Cannot export report {n}"),
                    opened_at: updated_at - Duration::days(1),
                }),
                updated_at,
            }
        })
        .collect()
}

/// Counts of what the API served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests received, answered or not.
    pub requests: u64,
    /// Pages served (200).
    pub pages: u64,
    /// 429 answers.
    pub throttled: u64,
    /// 500 answers.
    pub failed: u64,
    /// 400 and 401 answers.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Data {
    /// Contacts by `(updated_at ms, id)`, the paging order.
    ordered: BTreeMap<(i64, String), Contact>,
    /// The key of each contact in `ordered`.
    keys: HashMap<String, (i64, String)>,
    throttle_every: Option<u64>,
    fail_page: Option<u64>,
    served: Served,
}

type Shared = Arc<(String, Mutex<Data>)>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Data> {
    shared.1.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The API, serving on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct ExampleApi {
    address: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    updated_since: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

fn bad_request(parameter: &str, expected: &str) -> Response {
    let body = json!({"error": "invalid_parameter", "parameter": parameter, "message": format!("`{parameter}`: expected {expected}")});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Reads a paging token: `<updated_at ms>.<id>` of the last contact served.
fn read_token(token: &str) -> Option<(i64, String)> {
    let (millis, id) = token.split_once('.')?;
    Some((millis.parse().ok()?, id.to_owned()))
}

async fn list(
    State(shared): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let mut data = lock(&shared);
    data.served.requests += 1;
    let authorized = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", shared.0));
    if !authorized {
        data.served.refused += 1;
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorized", "message": "send Authorization: Bearer <token>"})))
            .into_response();
    }
    if data.throttle_every.is_some_and(|every| data.served.requests.is_multiple_of(every)) {
        data.served.throttled += 1;
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], Json(json!({"error": "rate_limited"}))).into_response();
    }
    let Ok(Query(query)) = query else {
        data.served.refused += 1;
        return bad_request("query", "only updated_since, limit and after");
    };
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => 50,
        Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
        Some(_) => {
            data.served.refused += 1;
            return bad_request("limit", &format!("a whole number from 1 to {MAX_LIMIT}"));
        }
    };
    let since = match query.updated_since.as_deref().map(DateTime::parse_from_rfc3339) {
        None => i64::MIN,
        Some(Ok(since)) => since.timestamp_millis(),
        Some(Err(_)) => {
            data.served.refused += 1;
            return bad_request("updated_since", "an RFC 3339 time such as 2026-01-01T00:00:00Z");
        }
    };
    let after = match query.after.as_deref().map(read_token) {
        None => None,
        Some(Some(after)) => Some(after),
        Some(None) => {
            data.served.refused += 1;
            return bad_request("after", "a token from paging.next");
        }
    };
    if data.fail_page == Some(data.served.pages + 1) {
        data.fail_page = None;
        data.served.failed += 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "internal"}))).into_response();
    }
    let from = after.clone().unwrap_or((since, String::new()));
    let mut page: Vec<&Contact> = data
        .ordered
        .range(from.clone()..)
        .filter(|(key, _)| key.0 >= since && after.as_ref() != Some(*key))
        .map(|(_, contact)| contact)
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next = page.last().filter(|_| more).map(|last| format!("{}.{}", last.updated_at.timestamp_millis(), last.id));
    let body = json!({"results": page, "paging": next.map(|next| json!({"next": next}))});
    data.served.pages += 1;
    Json(body).into_response()
}

impl ExampleApi {
    /// Starts the API on an ephemeral port of 127.0.0.1, accepting `token`.
    pub fn start(token: &str) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), token)
    }

    /// Starts the API on `address`.
    pub fn start_on(address: SocketAddr, token: &str) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let shared: Shared = Arc::new((token.to_owned(), Mutex::new(Data::default())));
        let router = axum::Router::new().route("/v1/contacts", axum::routing::get(list)).with_state(Arc::clone(&shared));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let listener = runtime.block_on(async { tokio::net::TcpListener::from_std(listener) })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("example-api".to_owned()).spawn(move || {
            runtime.block_on(async {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                    stopped.await.ok();
                });
                if let Err(err) = serve.await {
                    eprintln!("example API stopped: {err}");
                }
            });
        })?;
        Ok(Self { address, shared, stop: Some(stop), thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Adds or replaces contacts (by id).
    pub fn upsert(&self, contacts: impl IntoIterator<Item = Contact>) {
        let mut data = lock(&self.shared);
        for contact in contacts {
            let key = (contact.updated_at.timestamp_millis(), contact.id.clone());
            if let Some(old) = data.keys.insert(contact.id.clone(), key.clone()) {
                data.ordered.remove(&old);
            }
            data.ordered.insert(key, contact);
        }
    }

    /// The contact `id`, as served.
    pub fn contact(&self, id: &str) -> Option<Contact> {
        let data = lock(&self.shared);
        data.keys.get(id).and_then(|key| data.ordered.get(key)).cloned()
    }

    /// Answers every `every`-th request with 429 and `Retry-After: 1` (0 stops it).
    pub fn throttle_every(&self, every: u64) {
        lock(&self.shared).throttle_every = (every > 0).then_some(every);
    }

    /// Answers the request for the `page`-th page served from now (1 = the next) with a 500, once.
    pub fn fail_page_once(&self, page: u64) {
        let mut data = lock(&self.shared);
        data.fail_page = Some(data.served.pages + page);
    }

    /// What it has served so far.
    pub fn served(&self) -> Served {
        lock(&self.shared).served
    }
}

impl Drop for ExampleApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}
