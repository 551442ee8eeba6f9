//! Change streams over the oplog (reference §4): scopes, options, events rendered as
//! mongod renders them, invalidation rules, resume semantics and the post-batch
//! resume token that advances while the cluster is idle.

use bson::{doc, Bson, Document, Timestamp};

use crate::aggregate::Pipeline;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::oplog::{Entry, Op, Token};
use crate::query::matcher::Matcher;
use crate::store::{is_internal_db, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Database(String),
    Collection(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMode {
    Off,
    Default,
    UpdateLookup,
    WhenAvailable,
    Required,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub full_document: ImageMode,
    pub before_change: ImageMode,
    pub show_expanded: bool,
    pub start: StartPoint,
}

#[derive(Debug, Clone)]
pub enum StartPoint {
    Now,
    ResumeAfter(Token),
    StartAfter(Token),
    AtOperationTime(Timestamp),
}

impl Options {
    /// Parses the `$changeStream` stage document.
    pub fn parse(stage: &Document, scope: &Scope) -> CmdResult<Options> {
        let mut options = Options {
            full_document: ImageMode::Default,
            before_change: ImageMode::Off,
            show_expanded: false,
            start: StartPoint::Now,
        };
        let mut starts = 0;
        for (key, value) in stage {
            match key.as_str() {
                "fullDocument" => {
                    options.full_document = match value.as_str() {
                        Some("default") => ImageMode::Default,
                        Some("updateLookup") => ImageMode::UpdateLookup,
                        Some("whenAvailable") => ImageMode::WhenAvailable,
                        Some("required") => ImageMode::Required,
                        _ => {
                            return Err(CommandError::bad_value(format!(
                                "unknown fullDocument mode: {value}"
                            )))
                        }
                    }
                }
                "fullDocumentBeforeChange" => {
                    options.before_change = match value.as_str() {
                        Some("off") => ImageMode::Off,
                        Some("whenAvailable") => ImageMode::WhenAvailable,
                        Some("required") => ImageMode::Required,
                        _ => {
                            return Err(CommandError::bad_value(format!(
                                "unknown fullDocumentBeforeChange mode: {value}"
                            )))
                        }
                    }
                }
                "resumeAfter" => {
                    starts += 1;
                    options.start = StartPoint::ResumeAfter(Token::decode(value)?);
                }
                "startAfter" => {
                    starts += 1;
                    options.start = StartPoint::StartAfter(Token::decode(value)?);
                }
                "startAtOperationTime" => {
                    starts += 1;
                    match value {
                        Bson::Timestamp(ts) => options.start = StartPoint::AtOperationTime(*ts),
                        _ => {
                            return Err(CommandError::type_mismatch(
                                "startAtOperationTime must be a timestamp",
                            ))
                        }
                    }
                }
                "allChangesForCluster" => {
                    let wanted = matches!(value, Bson::Boolean(true));
                    if wanted != (*scope == Scope::Cluster) {
                        return Err(CommandError::bad_value(
                            "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, and with no collection name",
                        ));
                    }
                }
                "showExpandedEvents" => {
                    options.show_expanded = matches!(value, Bson::Boolean(true))
                }
                "comment" => {}
                "showSystemEvents"
                | "showMigrationEvents"
                | "showRawUpdateDescription"
                | "allowToRunOnConfigDB"
                | "allowToRunOnSystemNS"
                | "matchCollectionUUIDForUpdateLookup" => {
                    return Err(CommandError::not_implemented(format!(
                        "the $changeStream option {key}"
                    )))
                }
                other => {
                    return Err(CommandError::new(
                        ErrorCode::IdlUnknownField,
                        format!("BSON field '$changeStream.{other}' is an unknown field."),
                    ))
                }
            }
        }
        if starts > 1 {
            return Err(CommandError::from_code(
                40674,
                "Only one type of resume option is allowed, but multiple were found.",
            ));
        }
        Ok(options)
    }
}

pub struct ChangeStreamCursor {
    pub scope: Scope,
    pub options: Options,
    pub pipeline: Option<Pipeline>,
    /// Events with a token greater than this are returned next.
    low: Token,
    /// Sequence number of the oplog entry to scan next.
    next_seq: u64,
    /// The stream returned an invalidate: the cursor closes.
    pub closed: bool,
    /// A leading `$match` on `ns` / `operationType` only, checked before an event is
    /// rendered (see `namespace_prefilter`).
    prefilter: Option<Matcher>,
}

/// mongod (5.1+) rewrites a change stream's `$match` on `ns` and `operationType` into
/// its oplog scan, so events the stream would drop are never built. The testbed does the
/// same for a leading `$match` that reads nothing else: it is checked against just
/// `{operationType, ns}`, which gives the same answer as on the whole event. Without
/// it every stream renders every event (documents included) and a sharded reader pays
/// for all the others' events too.
pub fn namespace_prefilter(rest: &[Bson]) -> CmdResult<Option<Matcher>> {
    let Some(Bson::Document(stage)) = rest.first() else {
        return Ok(None);
    };
    let Ok(filter) = stage.get_document("$match") else {
        return Ok(None);
    };
    if stage.len() != 1 || !reads_only_namespace(filter) {
        return Ok(None);
    }
    Matcher::parse(filter).map(Some)
}

fn reads_only_namespace(filter: &Document) -> bool {
    filter.iter().all(|(key, value)| match key.as_str() {
        "$and" | "$or" | "$nor" => value.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|item| item.as_document().is_some_and(reads_only_namespace))
        }),
        "ns" | "ns.db" | "ns.coll" | "operationType" => true,
        _ => false,
    })
}

impl ChangeStreamCursor {
    pub fn open(
        store: &Store,
        scope: Scope,
        options: Options,
        pipeline: Option<Pipeline>,
        prefilter: Option<Matcher>,
    ) -> CmdResult<ChangeStreamCursor> {
        let oplog = &store.oplog;
        let low = match &options.start {
            // One tick beyond the latest write, so the stream never returns it.
            StartPoint::Now => {
                let last = store.last_applied;
                Token::high_water_mark(Timestamp {
                    time: last.time,
                    increment: last.increment.saturating_add(1),
                })
            }
            StartPoint::AtOperationTime(ts) => {
                if oplog.history_lost_at(*ts) {
                    return Err(history_lost());
                }
                // Inclusive: the high-water mark at T sorts below every event at T.
                Token::high_water_mark(*ts)
            }
            StartPoint::ResumeAfter(token) | StartPoint::StartAfter(token) => {
                if matches!(options.start, StartPoint::ResumeAfter(_)) && token.from_invalidate {
                    return Err(CommandError::new(
                        ErrorCode::InvalidResumeToken,
                        "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.",
                    ));
                }
                if oplog.history_lost_at(token.ts()) {
                    return Err(history_lost());
                }
                if token.is_event() && !oplog.contains_seq(token.seq) {
                    return Err(CommandError::new(
                        ErrorCode::ChangeStreamFatalError,
                        format!(
                            "cannot resume stream; the resume token was not found. {}",
                            token.encode()
                        ),
                    ));
                }
                *token
            }
        };
        let start_position = oplog.position_of_ts(low.ts());
        let next_seq = oplog
            .get(start_position)
            .map(|entry| entry.seq)
            .unwrap_or_else(|| oplog.next_seq());
        Ok(ChangeStreamCursor {
            scope,
            options,
            pipeline,
            low,
            next_seq,
            closed: false,
            prefilter,
        })
    }

    /// Scans for up to `batch_size` events; returns them with the post-batch resume token.
    pub fn next_batch(
        &mut self,
        store: &Store,
        batch_size: usize,
    ) -> CmdResult<(Vec<Document>, Document)> {
        let oplog = &store.oplog;
        if let Some(first) = oplog.get(0) {
            // Entries this stream had not read yet were truncated away.
            if first.seq > self.next_seq {
                return Err(history_lost());
            }
        }
        let mut batch = Vec::new();
        let mut last_scanned: Option<Timestamp> = None;
        let start = oplog.position_of_seq(self.next_seq);
        let mut full = false;
        for entry in oplog.iter_from(start) {
            for (token, kind) in events_for(entry, &self.scope, self.options.show_expanded) {
                if token <= self.low {
                    continue;
                }
                if batch.len() >= batch_size {
                    full = true;
                    break;
                }
                if kind == EventKind::Main && !self.prefilter_passes(entry)? {
                    self.low = token;
                    continue;
                }
                let rendered = self.render(store, entry, token, kind)?;
                self.low = token;
                if kind == EventKind::Invalidate {
                    self.closed = true;
                }
                if let Some(event) = rendered {
                    batch.push(event);
                }
                if self.closed {
                    break;
                }
            }
            if full || self.closed {
                break;
            }
            last_scanned = Some(entry.ts);
            self.next_seq = entry.seq + 1;
        }
        let mut pbrt = self.low;
        if let Some(ts) = last_scanned {
            let hwm = Token::high_water_mark(ts);
            if hwm > pbrt && !full && !self.closed {
                pbrt = hwm;
                self.low = hwm;
            }
        }
        Ok((batch, pbrt.encode()))
    }

    fn prefilter_passes(&self, entry: &Entry) -> CmdResult<bool> {
        let Some(prefilter) = &self.prefilter else {
            return Ok(true);
        };
        let stub = doc! {"operationType": operation_type(entry), "ns": namespace(entry)};
        prefilter.try_matches(&stub)
    }

    fn render(
        &self,
        store: &Store,
        entry: &Entry,
        token: Token,
        kind: EventKind,
    ) -> CmdResult<Option<Document>> {
        let event = render_event(store, entry, token, kind, &self.options)?;
        let Some(pipeline) = &self.pipeline else {
            return Ok(Some(event));
        };
        let id_before = event.get("_id").cloned();
        let mut output = pipeline.run(vec![event])?;
        let Some(event) = output.pop() else {
            return Ok(None);
        };
        if event.get("_id") != id_before.as_ref() {
            return Err(CommandError::new(
                ErrorCode::ChangeStreamFatalError,
                "Encountered an event whose _id field, which contains the resume token, was modified by the pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that point. Only transformations that retain the unmodified _id field are allowed.",
            ));
        }
        Ok(Some(event))
    }
}

fn history_lost() -> CommandError {
    CommandError::new(
        ErrorCode::ChangeStreamHistoryLost,
        "Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Main,
    Invalidate,
}

fn visible(scope: &Scope, db: &str, coll: &str) -> bool {
    if coll.starts_with("system.") || coll.starts_with('$') {
        return false;
    }
    match scope {
        Scope::Cluster => !is_internal_db(db),
        Scope::Database(d) => d == db,
        Scope::Collection(d, c) => d == db && c == coll,
    }
}

/// The events one oplog entry produces for a stream, in order.
fn events_for(entry: &Entry, scope: &Scope, expanded: bool) -> Vec<(Token, EventKind)> {
    let main = (Token::event(entry, false), EventKind::Main);
    let invalidate = (Token::event(entry, true), EventKind::Invalidate);
    let coll = entry.coll.as_deref().unwrap_or("");
    let is_collection_scope = matches!(scope, Scope::Collection(..));
    match &entry.op {
        Op::Noop => Vec::new(),
        Op::Insert { .. } | Op::Update { .. } | Op::Delete { .. } => {
            if visible(scope, &entry.db, coll) {
                vec![main]
            } else {
                Vec::new()
            }
        }
        Op::Create { .. }
        | Op::CreateIndexes { .. }
        | Op::DropIndexes { .. }
        | Op::Modify { .. } => {
            if expanded && visible(scope, &entry.db, coll) {
                vec![main]
            } else {
                Vec::new()
            }
        }
        Op::Drop => {
            if !visible(scope, &entry.db, coll) {
                return Vec::new();
            }
            if is_collection_scope {
                vec![main, invalidate]
            } else {
                vec![main]
            }
        }
        Op::Rename { to_db, to_coll, .. } => {
            let source = visible(scope, &entry.db, coll);
            let target = visible(scope, to_db, to_coll);
            if !(source || target) {
                return Vec::new();
            }
            if is_collection_scope {
                vec![main, invalidate]
            } else {
                vec![main]
            }
        }
        Op::DropDatabase => match scope {
            Scope::Cluster if !is_internal_db(&entry.db) => vec![main],
            Scope::Database(d) if *d == entry.db => vec![main, invalidate],
            _ => Vec::new(),
        },
    }
}

fn namespace(entry: &Entry) -> Document {
    match &entry.coll {
        Some(coll) => doc! {"db": entry.db.clone(), "coll": coll.clone()},
        None => doc! {"db": entry.db.clone()},
    }
}

fn operation_type(entry: &Entry) -> &str {
    match &entry.op {
        Op::Insert { .. } => "insert",
        Op::Update { kind, .. } => kind,
        Op::Delete { .. } => "delete",
        Op::Create { .. } => "create",
        Op::Drop => "drop",
        Op::Rename { .. } => "rename",
        Op::DropDatabase => "dropDatabase",
        Op::CreateIndexes { .. } => "createIndexes",
        Op::DropIndexes { .. } => "dropIndexes",
        Op::Modify { .. } => "modify",
        Op::Noop => "noop",
    }
}

fn render_event(
    store: &Store,
    entry: &Entry,
    token: Token,
    kind: EventKind,
    options: &Options,
) -> CmdResult<Document> {
    let mut event = doc! {"_id": token.encode()};
    if kind == EventKind::Invalidate {
        event.insert("operationType", "invalidate");
        event.insert("clusterTime", entry.ts);
        event.insert("wallTime", entry.wall);
        return Ok(event);
    }
    let ns = namespace(entry);
    event.insert("operationType", operation_type(entry));
    event.insert("clusterTime", entry.ts);
    event.insert("wallTime", entry.wall);
    if options.show_expanded {
        if let Some(uuid) = entry.uuid {
            event.insert(
                "collectionUUID",
                Bson::Binary(bson::Binary::from_uuid(uuid)),
            );
        }
    }
    match &entry.op {
        Op::Insert { document } => {
            event.insert("fullDocument", (**document).clone());
            event.insert("ns", ns);
            event.insert(
                "documentKey",
                doc! {"_id": document.get("_id").cloned().unwrap_or(Bson::Null)},
            );
        }
        Op::Update {
            id,
            kind,
            description,
            pre,
            post,
        } => {
            event.insert("ns", ns);
            event.insert("documentKey", doc! {"_id": id.clone()});
            if *kind == "update" {
                let mut description = description.clone();
                if !options.show_expanded {
                    description.remove("disambiguatedPaths");
                }
                event.insert("updateDescription", description);
                match options.full_document {
                    ImageMode::UpdateLookup => {
                        event.insert("fullDocument", lookup(store, entry, id));
                    }
                    ImageMode::WhenAvailable | ImageMode::Required => {
                        event.insert(
                            "fullDocument",
                            post_image(entry, post, options.full_document)?,
                        );
                    }
                    _ => {}
                }
            } else {
                event.insert("fullDocument", (**post).clone());
            }
            if let Some(before) = pre_image(entry, pre, options.before_change)? {
                event.insert("fullDocumentBeforeChange", before);
            }
        }
        Op::Delete { id, pre } => {
            event.insert("ns", ns);
            event.insert("documentKey", doc! {"_id": id.clone()});
            if let Some(before) = pre_image(entry, pre, options.before_change)? {
                event.insert("fullDocumentBeforeChange", before);
            }
        }
        Op::Create {
            description,
            ns_type,
        } => {
            event.insert("ns", ns);
            event.insert("operationDescription", description.clone());
            let _ = ns_type;
        }
        Op::Drop | Op::DropDatabase => {
            event.insert("ns", ns);
        }
        Op::Rename {
            to_db,
            to_coll,
            drop_target,
        } => {
            event.insert("ns", ns);
            event.insert("to", doc! {"db": to_db.clone(), "coll": to_coll.clone()});
            if options.show_expanded {
                let mut description = doc! {"to": {"db": to_db.clone(), "coll": to_coll.clone()}};
                if let Some(uuid) = drop_target {
                    description.insert("dropTarget", Bson::Binary(bson::Binary::from_uuid(*uuid)));
                }
                event.insert("operationDescription", description);
            }
        }
        Op::CreateIndexes { indexes } | Op::DropIndexes { indexes } => {
            event.insert("ns", ns);
            let list: Vec<Bson> = indexes.iter().cloned().map(Bson::Document).collect();
            event.insert("operationDescription", doc! {"indexes": list});
        }
        Op::Modify {
            description,
            state_before,
        } => {
            event.insert("ns", ns);
            event.insert("operationDescription", description.clone());
            event.insert("stateBeforeChange", state_before.clone());
        }
        Op::Noop => {}
    }
    Ok(event)
}

fn lookup(store: &Store, entry: &Entry, id: &Bson) -> Bson {
    let coll = entry.coll.as_deref().unwrap_or("");
    match store.catalog.collection(&entry.db, coll) {
        Some(collection) if Some(collection.uuid) == entry.uuid => collection
            .docs
            .get(&crate::bson_cmp::Key(id.clone()))
            .map(|stored| Bson::Document(stored.decode()))
            .unwrap_or(Bson::Null),
        _ => Bson::Null,
    }
}

fn post_image(entry: &Entry, post: &Document, mode: ImageMode) -> CmdResult<Bson> {
    if entry.images {
        return Ok(Bson::Document(post.clone()));
    }
    if mode == ImageMode::Required {
        return Err(missing_image("post-image", entry));
    }
    Ok(Bson::Null)
}

fn pre_image(entry: &Entry, pre: &Document, mode: ImageMode) -> CmdResult<Option<Bson>> {
    match mode {
        ImageMode::Off | ImageMode::Default | ImageMode::UpdateLookup => Ok(None),
        ImageMode::WhenAvailable | ImageMode::Required => {
            if entry.images {
                Ok(Some(Bson::Document(pre.clone())))
            } else if mode == ImageMode::Required {
                Err(missing_image("pre-image", entry))
            } else {
                Ok(Some(Bson::Null))
            }
        }
    }
}

fn missing_image(what: &str, entry: &Entry) -> CommandError {
    CommandError::new(
        ErrorCode::NoMatchingDocument,
        format!(
            "Change stream was configured to require a {what} for all update, delete and replace events, but the {what} was not available for event at {:?}",
            entry.ts
        ),
    )
}
