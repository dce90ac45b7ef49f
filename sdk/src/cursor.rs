//! Incremental sync by modification time, without losing or repeating records.
//!
//! Asking a remote for "records changed after the newest one I saw" loses records: several
//! may share that timestamp across a page boundary, and a remote may commit a change with a
//! timestamp a little in the past. A [`Watermark`] asks again from a **lookback window**
//! before its high-water mark and remembers the records it emitted inside that window (id
//! and timestamp), so the overlap is skipped, not emitted twice; a record changed again
//! comes back with a newer timestamp and is emitted.
//!
//! [`Watermark::sync_pages`] does the whole loop — skip what was emitted, emit the rest,
//! checkpoint after each page:
//!
//! ```ignore
//! impl Versioned for Contact {
//!     fn id(&self) -> &str { &self.id }
//!     fn modified(&self) -> Timestamp { self.updated_at }
//! }
//!
//! let mut mark = Watermark::resume(cursor.as_deref(), Duration::from_secs(300))?;
//! let mut first = client.get("/contacts");
//! if let Some(from) = mark.query_from() {
//!     first = first.query("updated_since", &from.to_rfc3339());
//! }
//! mark.sync_pages(Pages::new(first, Paging::cursor("after", "/paging/next")), "/results", Contact::operations)?;
//! ```
//!
//! Written by hand, the loop is `observe` for each record, `emit` the new ones, and
//! `checkpoint` after each page.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::PluginError;
use crate::paging::Pages;
use crate::record::Operation;
use crate::time::Timestamp;

/// A remote record with an id and a modification time.
pub trait Versioned {
    /// Its id in the remote.
    fn id(&self) -> &str;
    /// When it last changed.
    fn modified(&self) -> Timestamp;
}

/// The cursor format: the high-water mark and the records seen inside the lookback window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Stored {
    /// The newest modification time emitted (milliseconds since the epoch).
    high: Option<i64>,
    /// Ids emitted within the window before `high`, with their modification time.
    seen: BTreeMap<String, i64>,
}

/// A modification-time cursor with a lookback window and de-duplication by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    stored: Stored,
    lookback: Duration,
}

impl Watermark {
    /// Reads the run's cursor (`None` on a first sync) with the window to look back.
    pub fn resume(cursor: Option<&str>, lookback: Duration) -> Result<Self, PluginError> {
        let stored = match cursor {
            None | Some("") => Stored::default(),
            Some(text) => serde_json::from_str(text).map_err(|err| {
                PluginError::InvalidData(format!("the stored cursor is not a watermark ({err}); reset the instance's cursor"))
            })?,
        };
        Ok(Self { stored, lookback })
    }

    /// Where the next query starts (inclusive): the high-water mark minus the lookback
    /// window, or `None` for everything.
    pub fn query_from(&self) -> Option<Timestamp> {
        self.stored.high.map(|high| Timestamp::from_millis(high).minus(self.lookback))
    }

    /// The newest modification time emitted so far.
    pub fn high(&self) -> Option<Timestamp> {
        self.stored.high.map(Timestamp::from_millis)
    }

    /// Notes a record the remote returned; `true` if it is new or changed (emit it),
    /// `false` if this very version was already emitted.
    pub fn observe(&mut self, id: &str, modified: Timestamp) -> bool {
        let millis = modified.millis();
        if self.stored.seen.get(id) == Some(&millis) {
            return false;
        }
        self.stored.seen.insert(id.to_owned(), millis);
        self.stored.high = Some(self.stored.high.map_or(millis, |high| high.max(millis)));
        true
    }

    /// The cursor to commit: records older than the window are forgotten, since the next
    /// query does not return them.
    pub fn cursor(&mut self) -> String {
        if let Some(from) = self.query_from() {
            self.stored.seen.retain(|_, modified| *modified >= from.millis());
        }
        serde_json::to_string(&self.stored).unwrap_or_default()
    }

    /// Commits what was emitted since the last checkpoint with this cursor.
    pub fn checkpoint(&mut self) {
        crate::checkpoint(&self.cursor());
    }

    /// Syncs a listing: reads each page's items at the JSON pointer `items_at`, skips the
    /// ones already emitted, emits the operations `to_operations` makes of the others, and
    /// checkpoints after each page. Returns how many items were emitted.
    pub fn sync_pages<T, O>(&mut self, pages: Pages, items_at: &str, mut to_operations: impl FnMut(T) -> O) -> Result<u64, PluginError>
    where
        T: DeserializeOwned + Versioned,
        O: IntoIterator,
        O::Item: Into<Operation>,
    {
        let mut emitted = 0;
        for page in pages {
            let items: Vec<T> = page?.items(items_at)?;
            let fresh: Vec<T> = items.into_iter().filter(|item| self.observe(item.id(), item.modified())).collect();
            emitted += fresh.len() as u64;
            crate::emit(fresh.into_iter().flat_map(&mut to_operations));
            self.checkpoint();
        }
        Ok(emitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlap_is_skipped_and_changes_come_through() {
        let window = Duration::from_secs(60);
        let mut mark = Watermark::resume(None, window).unwrap();
        assert_eq!(mark.query_from(), None);
        let t = |s: i64| Timestamp::from_secs(1_800_000_000 + s);
        assert!(mark.observe("a", t(0)) && mark.observe("b", t(100)) && mark.observe("c", t(100)));
        let cursor = mark.cursor();

        let mut next = Watermark::resume(Some(&cursor), window).unwrap();
        assert_eq!(next.query_from(), Some(t(40)), "the high-water mark minus the window");
        assert!(!next.observe("b", t(100)) && !next.observe("c", t(100)), "already emitted");
        assert!(next.observe("d", t(100)), "same timestamp, new record");
        assert!(next.observe("b", t(130)), "changed again");
        assert!(next.observe("e", t(90)), "committed late, inside the window");
        // `a` fell out of the window: the cursor forgets it.
        assert!(!next.cursor().contains("\"a\""));
    }

    #[test]
    fn an_unreadable_cursor_says_so() {
        let err = Watermark::resume(Some("page-3"), Duration::ZERO).unwrap_err();
        assert!(matches!(&err, PluginError::InvalidData(m) if m.contains("not a watermark")), "{err:?}");
    }
}
