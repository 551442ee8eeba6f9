//! Server-side cursors: live `_id`-order and natural-order scans that see concurrent
//! writes as mongod's do, materialised results for sorts and other plans, and change
//! streams. Dropping or renaming a collection kills its query cursors (QueryPlanKilled).

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{Bson, Document};

use crate::batch::EncodedBatch;
use crate::bson_cmp::Key;
use crate::catalog::Stored;
use crate::changestream::ChangeStreamCursor;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::query::matcher::Matcher;
use crate::query::projection::Projection;
use crate::store::Store;

/// Unused cursors die after mongod's default `cursorTimeoutMillis`.
pub const CURSOR_TIMEOUT: Duration = Duration::from_secs(600);
/// Every batch stays under 16 MiB.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

// One scan per open cursor: the size of the bound-carrying variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Scan {
    /// `_id` index order, resuming after the last key returned; `min` inclusive and `max`
    /// exclusive as with `hint` + `min`/`max`.
    Id {
        forward: bool,
        after: Option<Key>,
        min: Option<Key>,
        max: Option<Key>,
    },
    /// Insertion order, resuming after the last record id.
    Natural { forward: bool, after: Option<u64> },
    /// Results computed up front (sorts, secondary-index plans, aggregation output).
    Materialised(VecDeque<Arc<Document>>),
}

pub struct FindCursor {
    pub db: String,
    pub coll: String,
    /// The collection the cursor reads; None for materialised results of no collection.
    pub uuid: Option<bson::Uuid>,
    pub scan: Scan,
    pub matcher: Option<Matcher>,
    pub projection: Option<Projection>,
    pub skip: u64,
    pub limit_remaining: Option<u64>,
}

/// A document a scan reached: in the store, or computed for this cursor.
enum Candidate<'s> {
    Stored(&'s Stored),
    Computed(Arc<Document>),
}

impl Candidate<'_> {
    fn with_document<T>(&self, f: impl FnOnce(&Document) -> T) -> T {
        match self {
            Candidate::Stored(stored) => stored.with_document(f),
            Candidate::Computed(document) => f(document),
        }
    }

    fn into_shared(self) -> Arc<Document> {
        match self {
            Candidate::Stored(stored) => stored.document(),
            Candidate::Computed(document) => document,
        }
    }
}

impl FindCursor {
    /// The next batch, and whether the cursor is exhausted.
    pub fn next_batch(
        &mut self,
        store: &Store,
        batch_size: Option<u64>,
    ) -> CmdResult<(EncodedBatch, bool)> {
        if let Some(uuid) = self.uuid {
            let alive = store
                .catalog
                .collection(&self.db, &self.coll)
                .is_some_and(|c| c.uuid == uuid);
            if !alive {
                let renamed = store.catalog.find_by_uuid(uuid).is_some();
                let reason = if renamed {
                    "collection renamed"
                } else {
                    "collection dropped"
                };
                return Err(CommandError::new(
                    ErrorCode::QueryPlanKilled,
                    format!("query plan killed :: caused by :: {reason}"),
                ));
            }
        }
        let mut batch = EncodedBatch::default();
        let wanted = batch_size.unwrap_or(u64::MAX);
        loop {
            if batch.len() as u64 >= wanted || self.limit_remaining == Some(0) {
                break;
            }
            let saved = self.save_position();
            let Some(candidate) = self.next_match(store) else {
                return Ok((batch, true));
            };
            let mark = batch.byte_len();
            match (&self.projection, &candidate) {
                (Some(projection), _) => {
                    let output = candidate.with_document(|document| {
                        projection.apply_with_match(document, self.matcher.as_ref())
                    })?;
                    batch.push_document(&output)?;
                }
                (None, Candidate::Stored(stored)) => match stored.encoded() {
                    Some(bytes) => batch.push_bytes(bytes),
                    None => stored.with_document(|document| batch.push_document(document))?,
                },
                (None, Candidate::Computed(document)) => batch.push_document(document)?,
            }
            if batch.len() > 1 && batch.byte_len() > MAX_BATCH_BYTES {
                batch.pop_to(mark);
                self.restore_position(saved, candidate);
                break;
            }
            if let Some(limit) = &mut self.limit_remaining {
                *limit -= 1;
            }
        }
        let exhausted = self.limit_remaining == Some(0);
        Ok((batch, exhausted))
    }

    fn save_position(&self) -> SavedPosition {
        match &self.scan {
            Scan::Id { after, .. } => SavedPosition::Id(after.clone()),
            Scan::Natural { after, .. } => SavedPosition::Natural(*after),
            Scan::Materialised(_) => SavedPosition::Materialised,
        }
    }

    /// Un-reads `candidate` (a batch was full) so the next batch starts with it.
    fn restore_position(&mut self, saved: SavedPosition, candidate: Candidate) {
        match (&mut self.scan, saved) {
            (Scan::Materialised(queue), _) => queue.push_front(candidate.into_shared()),
            (Scan::Id { after, .. }, SavedPosition::Id(previous)) => *after = previous,
            (Scan::Natural { after, .. }, SavedPosition::Natural(previous)) => *after = previous,
            _ => {}
        }
    }

    /// The next document that passes the filter and the skip.
    fn next_match<'s>(&mut self, store: &'s Store) -> Option<Candidate<'s>> {
        loop {
            let candidate = self.next_raw(store)?;
            if let Some(matcher) = &self.matcher {
                if !candidate.with_document(|document| matcher.matches(document)) {
                    continue;
                }
            }
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            return Some(candidate);
        }
    }

    fn next_raw<'s>(&mut self, store: &'s Store) -> Option<Candidate<'s>> {
        match &mut self.scan {
            Scan::Materialised(queue) => queue.pop_front().map(Candidate::Computed),
            Scan::Id {
                forward,
                after,
                min,
                max,
            } => {
                let collection = store.catalog.collection(&self.db, &self.coll)?;
                let lower = match (after.as_ref(), min.as_ref(), *forward) {
                    (Some(last), _, true) => Bound::Excluded(last.clone()),
                    (_, Some(min), _) => Bound::Included(min.clone()),
                    _ => Bound::Unbounded,
                };
                let upper = match (after.as_ref(), max.as_ref(), *forward) {
                    (Some(last), _, false) => Bound::Excluded(last.clone()),
                    (_, Some(max), _) => Bound::Excluded(max.clone()),
                    _ => Bound::Unbounded,
                };
                if let (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u)) =
                    (&lower, &upper)
                {
                    if l >= u {
                        return None;
                    }
                }
                let mut range = collection.docs.range((lower, upper));
                let (key, stored) = if *forward {
                    range.next()?
                } else {
                    range.next_back()?
                };
                *after = Some(key.clone());
                Some(Candidate::Stored(stored))
            }
            Scan::Natural { forward, after } => {
                let collection = store.catalog.collection(&self.db, &self.coll)?;
                let found = match (*forward, *after) {
                    (true, Some(last)) => collection.natural.range(last + 1..).next(),
                    (true, None) => collection.natural.iter().next(),
                    (false, Some(last)) => collection.natural.range(..last).next_back(),
                    (false, None) => collection.natural.iter().next_back(),
                };
                let (record, id) = found?;
                *after = Some(*record);
                collection.docs.get(id).map(Candidate::Stored)
            }
        }
    }
}

enum SavedPosition {
    Id(Option<Key>),
    Natural(Option<u64>),
    Materialised,
}

pub enum CursorKind {
    Find(Box<FindCursor>),
    ChangeStream(Box<ChangeStreamCursor>),
}

pub struct Cursor {
    /// `ns` as replies show it (`db.coll`, `db.$cmd.listCollections`, …).
    pub ns: String,
    pub kind: CursorKind,
    pub lsid: Option<Bson>,
    pub last_used: Instant,
    pub no_timeout: bool,
}

#[derive(Default)]
pub struct CursorTable {
    cursors: HashMap<i64, Cursor>,
    /// Cursors taken out by a running getMore: a concurrent one gets CursorInUse.
    in_use: std::collections::HashSet<i64>,
}

pub enum Take {
    Taken(Box<Cursor>),
    InUse,
    NotFound,
}

impl CursorTable {
    pub fn register(&mut self, cursor: Cursor) -> i64 {
        self.reap();
        loop {
            let id: i64 = rand::random::<i64>() & 0x3fff_ffff_ffff_ffff;
            if id != 0 && !self.cursors.contains_key(&id) {
                self.cursors.insert(id, cursor);
                return id;
            }
        }
    }

    /// Takes a cursor out for a getMore; `release` or `put_back` must follow.
    pub fn take(&mut self, id: i64) -> Take {
        if self.in_use.contains(&id) {
            return Take::InUse;
        }
        match self.cursors.remove(&id) {
            Some(cursor) => {
                self.in_use.insert(id);
                Take::Taken(Box::new(cursor))
            }
            None => Take::NotFound,
        }
    }

    pub fn put_back(&mut self, id: i64, mut cursor: Cursor) {
        self.in_use.remove(&id);
        cursor.last_used = Instant::now();
        self.cursors.insert(id, cursor);
    }

    /// Ends a taken cursor (exhausted, or its getMore failed).
    pub fn release(&mut self, id: i64) {
        self.in_use.remove(&id);
    }

    pub fn contains(&self, id: i64) -> bool {
        self.cursors.contains_key(&id)
    }

    pub fn kill(&mut self, id: i64) -> bool {
        self.cursors.remove(&id).is_some()
    }

    pub fn kill_all(&mut self) -> usize {
        let count = self.cursors.len();
        self.cursors.clear();
        count
    }

    /// endSessions closes the sessions' cursors.
    pub fn kill_for_session(&mut self, lsid: &Bson) {
        self.cursors
            .retain(|_, cursor| cursor.lsid.as_ref() != Some(lsid));
    }

    pub fn len(&self) -> usize {
        self.cursors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cursors.is_empty()
    }

    fn reap(&mut self) {
        let now = Instant::now();
        self.cursors.retain(|_, cursor| {
            cursor.no_timeout || now.duration_since(cursor.last_used) < CURSOR_TIMEOUT
        });
    }
}
