//! Walking a paged JSON API: [`Pages`] sends the first request, then follows the API's
//! paging style until the last page. Each page's status is checked
//! ([`crate::http::Response::check`]) and its body read as JSON.
//!
//! ```ignore
//! use rapport_sdk::paging::{Pages, Paging};
//!
//! let first = client.get("/contacts").query("limit", "100");
//! for page in Pages::new(first, Paging::cursor("after", "/paging/next")) {
//!     let contacts: Vec<Contact> = page?.items("/results")?;
//!     // emit, then checkpoint
//! }
//! ```

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::PluginError;
use crate::http::{Request, Response};

/// How an API says where the next page is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// The body holds the next page's token at a JSON pointer (`/paging/next`); it goes back
    /// as query parameter `param`. No token (or null, or "") means this was the last page.
    Cursor {
        /// The query parameter carrying the token.
        param: String,
        /// Where the token is in the body (a JSON pointer).
        next_at: String,
    },
    /// Query parameters `offset` and `limit`; a page with fewer than `limit` items (at the
    /// JSON pointer `items_at`) is the last.
    Offset {
        /// The offset parameter's name.
        offset_param: String,
        /// The page size parameter's name.
        limit_param: String,
        /// The page size.
        limit: u64,
        /// Where the items are in the body.
        items_at: String,
    },
    /// RFC 8288: the `Link` header's `rel="next"` URL; none means the last page.
    LinkHeader,
}

impl Paging {
    /// [`Paging::Cursor`].
    pub fn cursor(param: &str, next_at: &str) -> Self {
        Self::Cursor { param: param.to_owned(), next_at: next_at.to_owned() }
    }

    /// [`Paging::Offset`] with parameters `offset` and `limit`.
    pub fn offset(limit: u64, items_at: &str) -> Self {
        Self::Offset { offset_param: "offset".to_owned(), limit_param: "limit".to_owned(), limit, items_at: items_at.to_owned() }
    }
}

/// One page: the response and its body as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The response (status 2xx).
    pub response: Response,
    /// Its body.
    pub body: Value,
}

impl Page {
    /// The value at a JSON pointer (`/results`, `/data/items`), if present.
    pub fn at(&self, pointer: &str) -> Option<&Value> {
        self.body.pointer(pointer)
    }

    /// The array at a JSON pointer read into `T`s. An empty body is an empty page; a body
    /// without the array is invalid data naming the pointer and the keys that are there
    /// (a mistyped pointer would otherwise read every page as empty); an item that does not
    /// fit is invalid data naming its index and field.
    pub fn items<T: DeserializeOwned>(&self, pointer: &str) -> Result<Vec<T>, PluginError> {
        if self.body.is_null() {
            return Ok(Vec::new());
        }
        let Some(items) = self.at(pointer) else {
            return Err(PluginError::InvalidData(format!("{}: {}", self.response.url, missing(&self.body, pointer))));
        };
        let Value::Array(items) = items else {
            return Err(PluginError::InvalidData(format!("{}: `{pointer}` is not an array", self.response.url)));
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                T::deserialize(item).map_err(|err| PluginError::InvalidData(format!("{}: {pointer}/{index}: {err}", self.response.url)))
            })
            .collect()
    }
}

/// Why `pointer` finds nothing in `body`: the first missing step, and what is there instead.
fn missing(body: &Value, pointer: &str) -> String {
    let mut at = body;
    let mut walked = String::new();
    for step in pointer.split('/').skip(1) {
        let next = match at {
            Value::Object(map) => map.get(step),
            Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(value) => {
                at = value;
                walked = format!("{walked}/{step}");
            }
            None => break,
        }
    }
    let place = if walked.is_empty() { "the page".to_owned() } else { format!("`{walked}`") };
    let there = match at {
        Value::Object(map) if map.is_empty() => "an empty object".to_owned(),
        Value::Object(map) => format!("the keys {}", map.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")),
        Value::Array(items) => format!("an array of {}", items.len()),
        other => format!("a {}", json_type(other)),
    };
    format!("no `{pointer}` in the page: {place} holds {there}; check the pointer")
}

/// Whether walking `pointer` into `body` meets a null (itself, or one of its parents).
fn null_on_the_way(body: &Value, pointer: &str) -> bool {
    let mut at = body;
    for step in pointer.split('/').skip(1) {
        match at {
            Value::Null => return true,
            Value::Object(map) => match map.get(step) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return false,
        }
    }
    at.is_null()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Query parameters that commonly carry a page size.
const PAGE_SIZE_PARAMS: &[&str] = &["limit", "per_page", "page_size", "pagesize", "size", "count", "max", "maxresults", "top", "$top"];

/// The page size the request asks for, if one of its query parameters is a known page-size name.
fn requested_page_size(url: &str) -> Option<usize> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        PAGE_SIZE_PARAMS.contains(&name.to_ascii_lowercase().as_str()).then(|| value.parse().ok()).flatten()
    })
}

/// The items on a page, as far as paging can tell without knowing where they are: the
/// longest array in the body, at its top or one level down.
fn longest_array(body: &Value) -> usize {
    let children: Box<dyn Iterator<Item = &Value>> = match body {
        Value::Object(map) => {
            Box::new(map.values().flat_map(|v| std::iter::once(v).chain(v.as_object().into_iter().flat_map(|m| m.values()))))
        }
        other => Box::new(std::iter::once(other)),
    };
    children.filter_map(Value::as_array).map(Vec::len).max().unwrap_or(0)
}

/// The pages of a listing, fetched one at a time as the iteration goes.
#[derive(Debug)]
pub struct Pages {
    first: Request,
    next: Option<Request>,
    paging: Paging,
    offset: u64,
    /// Pages fetched so far.
    fetched: u64,
}

impl Pages {
    /// Pages starting with `first` (holding the filters, without paging parameters for
    /// [`Paging::Offset`], which adds them).
    pub fn new(first: Request, paging: Paging) -> Self {
        let next = match &paging {
            Paging::Offset { offset_param, limit_param, limit, .. } => {
                first.clone().query(offset_param, "0").query(limit_param, &limit.to_string())
            }
            Paging::Cursor { .. } | Paging::LinkHeader => first.clone(),
        };
        Self { first, next: Some(next), paging, offset: 0, fetched: 0 }
    }

    /// A warning when `page`, the last by its paging, was full: as many items as the request
    /// asked for. Either the listing ends exactly there or the next-page pointer is wrong,
    /// which would otherwise end a sync after its first page without a word.
    fn full_last_page(&self, page: &Page) -> Option<String> {
        let where_next = match &self.paging {
            // A null on the way (`"paging": null`) is the API saying "no more", not a wrong pointer.
            Paging::Cursor { next_at, .. } if null_on_the_way(&page.body, next_at) => return None,
            Paging::Cursor { next_at, .. } => match page.at(next_at) {
                None => missing(&page.body, next_at),
                Some(value) => format!("the token at `{next_at}` is {value}"),
            },
            Paging::LinkHeader => "the answer has no `Link` header with rel=\"next\"".to_owned(),
            // A full offset page always asks for the next.
            Paging::Offset { .. } => return None,
        };
        let size = requested_page_size(self.first.url())?;
        let items = longest_array(&page.body);
        (size > 0 && items >= size).then(|| {
            format!(
                "page {} of {} was full ({items} items, as many as asked for) but names no next page ({where_next}): \
                 if the listing goes on, the paging's next-page pointer is wrong",
                self.fetched, page.response.url
            )
        })
    }

    /// The request for the page after `page`, if there is one.
    fn after(&mut self, page: &Page) -> Option<Request> {
        match &self.paging {
            Paging::Cursor { param, next_at } => match page.at(next_at) {
                Some(Value::String(token)) if !token.is_empty() => Some(self.first.clone().query(param, token)),
                Some(Value::Number(token)) => Some(self.first.clone().query(param, &token.to_string())),
                _ => None,
            },
            Paging::Offset { offset_param, limit_param, limit, items_at } => {
                let count = page.at(items_at).and_then(Value::as_array).map_or(0, Vec::len) as u64;
                self.offset += count;
                (count >= *limit && count > 0)
                    .then(|| self.first.clone().query(offset_param, &self.offset.to_string()).query(limit_param, &limit.to_string()))
            }
            Paging::LinkHeader => {
                let link = page.response.header("link")?;
                next_link(link).map(|url| {
                    let mut request = self.first.clone();
                    request.set_url(&url);
                    request
                })
            }
        }
    }
}

impl Iterator for Pages {
    type Item = Result<Page, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        let request = self.next.take()?;
        let fetched = request.send().map_err(PluginError::from).and_then(Response::check).and_then(|response| {
            let body = if response.body.is_empty() { Value::Null } else { response.json()? };
            Ok(Page { response, body })
        });
        match fetched {
            Ok(page) => {
                self.fetched += 1;
                self.next = self.after(&page);
                if self.next.is_none()
                    && let Some(warning) = self.full_last_page(&page)
                {
                    crate::log(crate::Level::Warn, &warning, &[]);
                }
                Some(Ok(page))
            }
            Err(err) => Some(Err(err)),
        }
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header value.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else { return false };
            name.trim().eq_ignore_ascii_case("rel")
                && value.trim().trim_matches('"').split_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(url: &str, headers: &[(&str, &str)], body: Value) -> Page {
        let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        Page { response: Response { status: 200, headers, body: body.to_string().into_bytes(), url: url.to_owned() }, body }
    }

    #[test]
    fn link_headers_name_the_next_page() {
        let header = r#"<https://api.example.com/items?page=1>; rel="prev", <https://api.example.com/items?page=3>; rel="next""#;
        assert_eq!(next_link(header).as_deref(), Some("https://api.example.com/items?page=3"));
        assert_eq!(next_link(r#"</items?page=2>; rel="next last""#).as_deref(), Some("/items?page=2"));
        assert_eq!(next_link(r#"<https://api.example.com/items?page=1>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn each_style_finds_the_following_request_or_the_end() {
        let first = Request::get("https://api.example.com/v1/items").query("q", "a b");
        let mut cursor = Pages::new(first.clone(), Paging::cursor("after", "/paging/next"));
        let next = cursor.after(&page("https://api.example.com/v1/items", &[], serde_json::json!({"paging": {"next": "t/2"}})));
        assert_eq!(next.map(|r| r.url().to_owned()).as_deref(), Some("https://api.example.com/v1/items?q=a%20b&after=t%2F2"));
        assert!(cursor.after(&page("https://api.example.com/v1/items", &[], serde_json::json!({"paging": null}))).is_none());

        let mut offset = Pages::new(first.clone(), Paging::offset(2, "/items"));
        assert_eq!(offset.next.as_ref().map(Request::url), Some("https://api.example.com/v1/items?q=a%20b&offset=0&limit=2"));
        let full = offset.after(&page("u", &[], serde_json::json!({"items": [1, 2]})));
        assert_eq!(full.map(|r| r.url().to_owned()).as_deref(), Some("https://api.example.com/v1/items?q=a%20b&offset=2&limit=2"));
        assert!(offset.after(&page("u", &[], serde_json::json!({"items": [3]}))).is_none(), "a short page is the last");

        let mut link = Pages::new(first, Paging::LinkHeader);
        let relative = link.after(&page("https://api.example.com/v1/items", &[("link", r#"</v1/items?page=2>; rel="next""#)], Value::Null));
        assert_eq!(relative.map(|r| r.url().to_owned()).as_deref(), Some("https://api.example.com/v1/items?page=2"));
        assert!(link.after(&page("https://api.example.com/v1/items", &[], Value::Null)).is_none());
    }

    #[test]
    fn items_that_do_not_fit_name_their_index() {
        let listing = page("https://api.example.com/v1/items", &[], serde_json::json!({"results": [{"id": 1}, {"id": "x"}]}));
        #[derive(Debug, serde::Deserialize)]
        struct Item {
            #[allow(dead_code)]
            id: u32,
        }
        let err = listing.items::<Item>("/results").unwrap_err();
        assert!(matches!(&err, PluginError::InvalidData(m) if m.contains("/results/1")), "{err:?}");
    }

    #[test]
    fn a_wrong_items_pointer_is_an_error_naming_what_is_there_and_an_empty_body_an_empty_page() {
        let url = "https://api.example.com/v1/tickets";
        let cases = [
            (
                "/ticket",
                serde_json::json!({"tickets": [], "next": null}),
                Some("no `/ticket` in the page: the page holds the keys `next`, `tickets`"),
            ),
            (
                "/data/items",
                serde_json::json!({"data": {"rows": [1]}}),
                Some("no `/data/items` in the page: `/data` holds the keys `rows`"),
            ),
            ("/results", serde_json::json!([1, 2]), Some("the page holds an array of 2")),
            ("/results", serde_json::json!({"results": "none"}), Some("`/results` is not an array")),
            ("/results", serde_json::json!({"results": []}), None),
            ("/results", Value::Null, None),
        ];
        for (pointer, body, expected) in cases {
            let result = page(url, &[], body.clone()).items::<Value>(pointer);
            match (expected, result) {
                (None, Ok(items)) => assert!(items.is_empty(), "{body}"),
                (Some(text), Err(PluginError::InvalidData(message))) => assert!(message.contains(text), "{body}: {message}"),
                (expected, result) => panic!("{pointer} in {body}: expected {expected:?}, got {result:?}"),
            }
        }
    }

    #[test]
    fn a_full_last_page_warns_that_the_next_pointer_may_be_wrong() {
        let full = serde_json::json!({"tickets": [1, 2, 3], "next_page": "abc"});
        let short = serde_json::json!({"tickets": [1, 2], "next": null});
        let sized = Request::get("https://api.example.com/v1/tickets").query("per_page", "3");
        let cases = [
            (
                sized.clone(),
                Paging::cursor("page", "/next"),
                full.clone(),
                Some("no `/next` in the page: the page holds the keys `next_page`, `tickets`"),
            ),
            (sized.clone(), Paging::cursor("page", "/next"), short, None),
            (sized.clone(), Paging::cursor("page", "/paging/next"), serde_json::json!({"tickets": [1, 2, 3], "paging": null}), None),
            (
                sized.clone(),
                Paging::cursor("page", "/paging/next"),
                serde_json::json!({"tickets": [1, 2, 3], "paging": {}}),
                Some("`/paging` holds an empty object"),
            ),
            (sized.clone(), Paging::LinkHeader, full.clone(), Some("no `Link` header")),
            (sized, Paging::offset(3, "/tickets"), full.clone(), None),
            (Request::get("https://api.example.com/v1/tickets"), Paging::cursor("page", "/next"), full, None),
        ];
        for (first, paging, body, expected) in cases {
            let mut pages = Pages::new(first, paging.clone());
            pages.fetched = 1;
            let warning = pages.full_last_page(&page("https://api.example.com/v1/tickets", &[], body));
            match (expected, &warning) {
                (None, None) => {}
                (Some(text), Some(warning)) => {
                    assert!(warning.contains(text) && warning.contains("page 1 of") && warning.contains("3 items"), "{warning}")
                }
                _ => panic!("{paging:?}: expected {expected:?}, got {warning:?}"),
            }
        }
    }
}
