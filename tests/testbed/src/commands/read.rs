//! find, getMore, killCursors, count, distinct and aggregate (including opening change
//! streams and `$collStats`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};

use super::{as_count, check_fields, collection_arg};
use crate::aggregate::Pipeline;
use crate::bson_cmp::{self, Key};
use crate::catalog::{CollKind, Collection, Stored};
use crate::changestream::{ChangeStreamCursor, Options, Scope};
use crate::cursor::{Cursor, CursorKind, FindCursor, Scan, Take};
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::query::matcher::Matcher;
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::server::Server;
use crate::store::Store;

const DEFAULT_FIRST_BATCH: u64 = 101;
/// Change-stream getMores wait this long for events when the client gives no maxTimeMS.
const DEFAULT_AWAIT: Duration = Duration::from_secs(1);

fn cursor_batch_size(body: &Document) -> CmdResult<Option<u64>> {
    match body.get("cursor") {
        Some(Bson::Document(cursor)) => match cursor.get("batchSize") {
            Some(value) => Ok(Some(as_count("cursor.batchSize", value)?)),
            None => Ok(None),
        },
        Some(_) => Err(CommandError::type_mismatch(
            "cursor field must be an object",
        )),
        None => Ok(None),
    }
}

fn first_batch_reply(id: i64, ns: &str, batch: Bson) -> Document {
    doc! {"cursor": {"firstBatch": batch, "id": id, "ns": ns}}
}

/// Registers `cursor` unless exhausted and returns the reply.
fn reply_with_cursor(
    server: &Server,
    ns: String,
    batch: Bson,
    exhausted: bool,
    cursor: Option<CursorKind>,
    body: &Document,
) -> Document {
    let id = match (exhausted, cursor) {
        (false, Some(kind)) => server.cursors.lock().register(Cursor {
            ns: ns.clone(),
            kind,
            lsid: body.get("lsid").cloned(),
            last_used: Instant::now(),
            no_timeout: matches!(body.get("noCursorTimeout"), Some(Bson::Boolean(true))),
        }),
        _ => 0,
    };
    first_batch_reply(id, &ns, batch)
}

const FIND_FIELDS: &[&str] = &[
    "filter",
    "sort",
    "projection",
    "hint",
    "skip",
    "limit",
    "batchSize",
    "singleBatch",
    "min",
    "max",
    "returnKey",
    "showRecordId",
    "noCursorTimeout",
    "tailable",
    "awaitData",
    "allowDiskUse",
    "collation",
    "let",
    "allowPartialResults",
    "oplogReplay",
    "readOnce",
    "requestResumeToken",
    "resumeAfter",
    "collectionUUID",
];

pub fn find(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields("find", body, FIND_FIELDS)?;
    for refused in [
        "returnKey",
        "showRecordId",
        "tailable",
        "awaitData",
        "let",
        "requestResumeToken",
        "resumeAfter",
    ] {
        if matches!(body.get(refused), Some(value) if value != &Bson::Boolean(false)) {
            return Err(CommandError::not_implemented(format!(
                "find option '{refused}'"
            )));
        }
    }
    if let Some(collation) = body.get("collation") {
        if !crate::index::is_simple_collation(collation) {
            return Err(CommandError::not_implemented("collation"));
        }
    }
    check_read_concern(body)?;
    let coll = collection_arg("find", body)?;
    let filter = optional_document(body, "filter")?;
    let sort = optional_document(body, "sort")?;
    let projection = match optional_document(body, "projection")? {
        Some(spec) if !spec.is_empty() => Some(Projection::parse(&spec)?),
        _ => None,
    };
    let skip = body
        .get("skip")
        .map(|v| as_count("skip", v))
        .transpose()?
        .unwrap_or(0);
    let limit = body
        .get("limit")
        .map(|v| as_count("limit", v))
        .transpose()?
        .filter(|l| *l > 0);
    let batch_size = body
        .get("batchSize")
        .map(|v| as_count("batchSize", v))
        .transpose()?;
    let single_batch = matches!(body.get("singleBatch"), Some(Bson::Boolean(true)));
    let matcher = match &filter {
        Some(filter) if !filter.is_empty() => Some(Matcher::parse(filter)?),
        _ => None,
    };
    let sort_spec = match &sort {
        Some(sort) if !sort.is_empty() => Some(SortSpec::parse(sort)?),
        _ => None,
    };
    let ns = format!("{db}.{coll}");
    let store = server.store.read();
    if let Some(expected) = body.get("collectionUUID") {
        check_collection_uuid(&store, db, &coll, expected)?;
    }
    let Some(collection) = store.catalog.collection(db, &coll) else {
        return Ok(first_batch_reply(0, &ns, Bson::Array(Vec::new())));
    };
    if let CollKind::View { .. } = collection.kind {
        return Err(CommandError::not_implemented(format!(
            "find on the view {ns}"
        )));
    }
    let scan = plan_scan(
        &store,
        collection,
        body,
        matcher.as_ref(),
        sort_spec.as_ref(),
        filter.as_ref(),
    )?;
    let mut cursor = FindCursor {
        db: db.to_string(),
        coll: coll.clone(),
        uuid: Some(collection.uuid),
        scan: scan.0,
        matcher: if scan.1 { None } else { matcher },
        projection,
        skip: if scan.1 { 0 } else { skip },
        limit_remaining: if scan.1 { None } else { limit },
    };
    if scan.1 {
        // Materialised plans already applied filter, sort, skip and limit.
        if let Scan::Materialised(queue) = &mut cursor.scan {
            let kept: VecDeque<_> = queue
                .drain(..)
                .skip(skip as usize)
                .take(limit.unwrap_or(u64::MAX) as usize)
                .collect();
            *queue = kept;
        }
    }
    let first = match (batch_size, limit) {
        (Some(size), _) => Some(size),
        (None, Some(limit)) => Some(
            limit
                .min(DEFAULT_FIRST_BATCH)
                .max(limit.min(DEFAULT_FIRST_BATCH)),
        ),
        (None, None) => Some(DEFAULT_FIRST_BATCH),
    };
    let (batch, exhausted) = cursor.next_batch(&store, first)?;
    drop(store);
    let exhausted = exhausted || single_batch;
    Ok(reply_with_cursor(
        server,
        ns,
        batch.into(),
        exhausted,
        Some(CursorKind::Find(Box::new(cursor))),
        body,
    ))
}

fn check_read_concern(body: &Document) -> CmdResult<()> {
    if let Some(Bson::Document(read_concern)) = body.get("readConcern") {
        if let Some(Bson::String(level)) = read_concern.get("level") {
            if level == "snapshot" || read_concern.contains_key("atClusterTime") {
                return Err(CommandError::not_implemented(
                    "readConcern snapshot / atClusterTime",
                ));
            }
        }
    }
    Ok(())
}

fn optional_document(body: &Document, field: &str) -> CmdResult<Option<Document>> {
    match body.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(document)) => Ok(Some(document.clone())),
        Some(other) => Err(CommandError::type_mismatch(format!(
            "BSON field '{field}' is the wrong type '{}', expected type 'object'",
            super::type_name(Some(other))
        ))),
    }
}

/// Chooses the scan. Returns (scan, materialised-with-filter-applied).
fn plan_scan(
    store: &Store,
    collection: &Collection,
    body: &Document,
    matcher: Option<&Matcher>,
    sort: Option<&SortSpec>,
    filter: Option<&Document>,
) -> CmdResult<(Scan, bool)> {
    let hint = resolve_hint(collection, body.get("hint"))?;
    let min = optional_document(body, "min")?;
    let max = optional_document(body, "max")?;
    if (min.is_some() || max.is_some()) && hint.is_none() {
        return Err(CommandError::from_code(
            51173,
            "When using min()/max() a hint of which index to use must be provided",
        ));
    }
    let id_sort = sort.and_then(|s| match s.fields() {
        [field] if field.path == "_id" => Some(!field.ascending),
        _ => None,
    });
    let _ = store;
    // An `_id` equality is a point lookup in the `_id` index (mongod's IDHACK, or an index
    // scan of one key), the rest of the filter applied to the document found; at most
    // one document needs no sort.
    if hint.is_none() {
        if let Some(id) = matcher.and_then(id_equality) {
            return Ok((materialise(collection, vec![Key(id)], matcher, None), true));
        }
    }
    match hint {
        Some(Hint::Natural(forward)) => {
            if min.is_some() || max.is_some() {
                return Err(CommandError::from_code(
                    51174,
                    "min and max are not allowed with a $natural hint",
                ));
            }
            if sort.is_none() {
                return Ok((
                    Scan::Natural {
                        forward,
                        after: None,
                    },
                    false,
                ));
            }
            Ok((
                materialise(
                    collection,
                    collection.natural.values().cloned().collect(),
                    matcher,
                    sort,
                ),
                true,
            ))
        }
        Some(Hint::Index(position)) if collection.indexes[position].is_id() => {
            let bound = |doc: &Option<Document>| -> CmdResult<Option<Key>> {
                match doc {
                    None => Ok(None),
                    Some(doc) if doc.len() == 1 && doc.contains_key("_id") => {
                        Ok(Some(Key(doc.get("_id").cloned().unwrap_or(Bson::Null))))
                    }
                    Some(_) => Err(CommandError::from_code(
                        51174,
                        "The index chosen is not consistent with min/max",
                    )),
                }
            };
            let (min, max) = (bound(&min)?, bound(&max)?);
            match (sort, id_sort) {
                (None, _) => Ok((
                    Scan::Id {
                        forward: true,
                        after: None,
                        min,
                        max,
                    },
                    false,
                )),
                (Some(_), Some(descending)) => Ok((
                    Scan::Id {
                        forward: !descending,
                        after: None,
                        min,
                        max,
                    },
                    false,
                )),
                (Some(_), None) => {
                    let ids = ids_in_range(collection, min.as_ref(), max.as_ref());
                    Ok((materialise(collection, ids, matcher, sort), true))
                }
            }
        }
        Some(Hint::Index(position)) => {
            let ids = secondary_index_order(collection, position, min.as_ref(), max.as_ref())?;
            Ok((materialise(collection, ids, matcher, sort), true))
        }
        None => match (sort, id_sort) {
            (Some(_), Some(descending)) => Ok((
                Scan::Id {
                    forward: !descending,
                    after: None,
                    min: None,
                    max: None,
                },
                false,
            )),
            (Some(_), None) => Ok((
                materialise(
                    collection,
                    collection.natural.values().cloned().collect(),
                    matcher,
                    sort,
                ),
                true,
            )),
            (None, _) => {
                // Another filter on _id makes mongod use the _id index; anything else is
                // a collection scan in natural order.
                let uses_id = filter.is_some_and(|f| f.keys().any(|k| k == "_id"));
                if uses_id {
                    Ok((
                        Scan::Id {
                            forward: true,
                            after: None,
                            min: None,
                            max: None,
                        },
                        false,
                    ))
                } else {
                    Ok((
                        Scan::Natural {
                            forward: true,
                            after: None,
                        },
                        false,
                    ))
                }
            }
        },
    }
}

/// The value of a top-level `_id` equality the filter requires, when one key of the
/// `_id` index can answer it (not a document, array or regex: those compare by rules a
/// single key lookup does not follow).
fn id_equality(matcher: &Matcher) -> Option<Bson> {
    matcher
        .equality_fields()
        .into_iter()
        .find(|(path, _)| path == "_id")
        .map(|(_, id)| id)
        .filter(|id| {
            !matches!(
                id,
                Bson::Document(_) | Bson::Array(_) | Bson::RegularExpression(_)
            )
        })
}

enum Hint {
    Natural(bool),
    Index(usize),
}

fn resolve_hint(collection: &Collection, hint: Option<&Bson>) -> CmdResult<Option<Hint>> {
    let not_found =
        || CommandError::bad_value("hint provided does not correspond to an existing index");
    match hint {
        None => Ok(None),
        Some(Bson::String(name)) if name.is_empty() => Ok(None),
        Some(Bson::String(name)) => collection
            .find_index(name)
            .map(|p| Some(Hint::Index(p)))
            .ok_or_else(not_found),
        Some(Bson::Document(pattern)) if pattern.is_empty() => Ok(None),
        Some(Bson::Document(pattern)) => {
            if let Some(direction) = pattern.get("$natural") {
                let forward =
                    bson_cmp::compare(direction, &Bson::Int32(0)) != std::cmp::Ordering::Less;
                return Ok(Some(Hint::Natural(forward)));
            }
            collection
                .indexes
                .iter()
                .position(|index| {
                    index.key_pattern() == *pattern
                        || bson_cmp::values_equal(
                            &Bson::Document(index.key_pattern()),
                            &Bson::Document(pattern.clone()),
                        )
                })
                .map(|p| Some(Hint::Index(p)))
                .ok_or_else(not_found)
        }
        Some(_) => Err(CommandError::failed_to_parse(
            "hint must be a string or an object",
        )),
    }
}

fn ids_in_range(collection: &Collection, min: Option<&Key>, max: Option<&Key>) -> Vec<Key> {
    collection
        .docs
        .keys()
        .filter(|key| min.is_none_or(|m| *key >= m) && max.is_none_or(|m| *key < m))
        .cloned()
        .collect()
}

/// `_id`s in the order of a secondary index, within `[min, max)` of its key pattern.
fn secondary_index_order(
    collection: &Collection,
    position: usize,
    min: Option<&Document>,
    max: Option<&Document>,
) -> CmdResult<Vec<Key>> {
    let index = &collection.indexes[position];
    let directions: Vec<i32> = index.fields.iter().map(|f| f.direction).collect();
    let bound = |doc: Option<&Document>| -> CmdResult<Option<Vec<Bson>>> {
        let Some(doc) = doc else { return Ok(None) };
        let names: Vec<&String> = doc.keys().collect();
        let wanted: Vec<&String> = index.fields.iter().map(|f| &f.path).collect();
        if names != wanted {
            return Err(CommandError::from_code(
                51174,
                "The index chosen is not consistent with min/max",
            ));
        }
        Ok(Some(doc.values().cloned().collect()))
    };
    let (min, max) = (bound(min)?, bound(max)?);
    let compare = |a: &[Bson], b: &[Bson]| -> std::cmp::Ordering {
        for ((x, y), direction) in a.iter().zip(b.iter()).zip(directions.iter()) {
            let order = bson_cmp::compare(x, y);
            let order = if *direction < 0 {
                order.reverse()
            } else {
                order
            };
            if order != std::cmp::Ordering::Equal {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    };
    let mut entries: Vec<(Vec<Bson>, Key)> = index
        .entries
        .iter()
        .map(|(tuple, id)| (tuple.0.iter().map(|k| k.0.clone()).collect(), id.clone()))
        .collect();
    entries.sort_by(|a, b| compare(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
    let mut seen = std::collections::BTreeSet::new();
    let mut ids = Vec::new();
    for (values, id) in entries {
        if min
            .as_ref()
            .is_some_and(|m| compare(&values, m) == std::cmp::Ordering::Less)
        {
            continue;
        }
        if max
            .as_ref()
            .is_some_and(|m| compare(&values, m) != std::cmp::Ordering::Less)
        {
            continue;
        }
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn materialise(
    collection: &Collection,
    ids: Vec<Key>,
    matcher: Option<&Matcher>,
    sort: Option<&SortSpec>,
) -> Scan {
    let mut documents: Vec<Arc<Document>> = ids
        .iter()
        .filter_map(|id| collection.docs.get(id).map(Stored::document))
        .filter(|d| matcher.is_none_or(|m| m.matches(d)))
        .collect();
    if let Some(sort) = sort {
        documents.sort_by(|a, b| sort.compare(a, b));
    }
    Scan::Materialised(documents.into())
}

pub async fn get_more(server: &Arc<Server>, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "getMore",
        body,
        &[
            "collection",
            "batchSize",
            "maxTimeMS",
            "term",
            "lastKnownCommittedOpTime",
            "includeQueryStatsMetrics",
        ],
    )?;
    let id = match body.get("getMore") {
        Some(Bson::Int64(id)) => *id,
        other => {
            return Err(CommandError::type_mismatch(format!(
                "BSON field 'getMore.getMore' is the wrong type '{}', expected type 'long'",
                super::type_name(other)
            )))
        }
    };
    let coll = match body.get("collection") {
        Some(Bson::String(coll)) => coll.clone(),
        _ => {
            return Err(CommandError::new(
                ErrorCode::IdlFailedToParse,
                "BSON field 'getMore.collection' is missing but a required field",
            ))
        }
    };
    let batch_size = body
        .get("batchSize")
        .map(|v| as_count("batchSize", v))
        .transpose()?
        .filter(|b| *b > 0);
    let max_time = match body.get("maxTimeMS") {
        Some(value) => Duration::from_millis(as_count("maxTimeMS", value)?),
        None => DEFAULT_AWAIT,
    };
    let mut cursor = match server.cursors.lock().take(id) {
        Take::Taken(cursor) => *cursor,
        Take::InUse => {
            return Err(CommandError::new(
                ErrorCode::Location(143),
                format!("Cursor id {id} is already in use"),
            ))
        }
        Take::NotFound => {
            return Err(CommandError::new(
                ErrorCode::CursorNotFound,
                format!("cursor id {id} not found"),
            ))
        }
    };
    let requested_ns = format!("{db}.{coll}");
    if cursor.ns != requested_ns {
        let message = format!("Requested getMore on namespace '{requested_ns}', but cursor belongs to a different namespace {}", cursor.ns);
        server.cursors.lock().put_back(id, cursor);
        return Err(CommandError::new(ErrorCode::Unauthorized, message));
    }
    let result = match &mut cursor.kind {
        CursorKind::Find(find) => {
            let store = server.store.read();
            find.next_batch(&store, batch_size)
                .map(|(batch, exhausted)| (Bson::from(batch), exhausted, None))
        }
        CursorKind::ChangeStream(stream) => change_stream_batch(
            server,
            stream,
            batch_size.unwrap_or(u64::MAX) as usize,
            max_time,
        )
        .await
        .map(|(batch, pbrt)| {
            let closed = stream.closed;
            (Bson::from(batch), closed, Some(pbrt))
        }),
    };
    match result {
        Ok((batch, exhausted, pbrt)) => {
            let ns = cursor.ns.clone();
            let reply_id = if exhausted { 0 } else { id };
            if exhausted {
                server.cursors.lock().release(id);
            } else {
                server.cursors.lock().put_back(id, cursor);
            }
            let mut cursor_doc = doc! {"nextBatch": batch, "id": reply_id, "ns": ns};
            if let Some(pbrt) = pbrt {
                cursor_doc.insert("postBatchResumeToken", pbrt);
            }
            Ok(doc! {"cursor": cursor_doc})
        }
        // mongod kills a cursor whose getMore failed.
        Err(error) => {
            server.cursors.lock().release(id);
            Err(error)
        }
    }
}

/// Waits up to `max_time` for at least one event, as an awaitData getMore does.
async fn change_stream_batch(
    server: &Arc<Server>,
    stream: &mut ChangeStreamCursor,
    batch_size: usize,
    max_time: Duration,
) -> CmdResult<(Vec<Document>, Document)> {
    let deadline = tokio::time::Instant::now() + max_time;
    let mut changes = server.oplog_seq.subscribe();
    loop {
        changes.borrow_and_update();
        let (batch, pbrt) = {
            let store = server.store.read();
            stream.next_batch(&store, batch_size)?
        };
        if !batch.is_empty() || stream.closed || tokio::time::Instant::now() >= deadline {
            return Ok((batch, pbrt));
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            let store = server.store.read();
            return stream.next_batch(&store, batch_size);
        }
    }
}

pub fn kill_cursors(server: &Server, body: &Document) -> CmdResult<Document> {
    check_fields("killCursors", body, &["cursors"])?;
    let Some(Bson::Array(ids)) = body.get("cursors") else {
        return Err(CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'killCursors.cursors' is missing but a required field",
        ));
    };
    let mut killed = Vec::new();
    let mut not_found = Vec::new();
    let mut table = server.cursors.lock();
    for id in ids {
        let Bson::Int64(id) = id else {
            return Err(CommandError::type_mismatch("cursor ids must be longs"));
        };
        if table.kill(*id) {
            killed.push(*id);
        } else {
            not_found.push(*id);
        }
    }
    Ok(
        doc! {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []},
    )
}

pub fn count(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "count",
        body,
        &[
            "query",
            "limit",
            "skip",
            "hint",
            "collation",
            "fields",
            "collectionUUID",
        ],
    )?;
    let coll = collection_arg("count", body)?;
    let matcher = match optional_document(body, "query")? {
        Some(query) if !query.is_empty() => Some(Matcher::parse(&query)?),
        _ => None,
    };
    let skip = body
        .get("skip")
        .map(|v| as_count("skip", v))
        .transpose()?
        .unwrap_or(0);
    let limit = match body.get("limit") {
        Some(Bson::Int32(v)) => Some(i64::from(*v).unsigned_abs()),
        Some(Bson::Int64(v)) => Some(v.unsigned_abs()),
        Some(Bson::Double(v)) => Some(v.abs() as u64),
        _ => None,
    }
    .filter(|l| *l > 0);
    let store = server.store.read();
    let Some(collection) = store.catalog.collection(db, &coll) else {
        return Ok(doc! {"n": 0});
    };
    let total = match &matcher {
        None => collection.docs.len() as u64,
        Some(matcher) => collection
            .docs
            .values()
            .filter(|s| s.with_document(|document| matcher.matches(document)))
            .count() as u64,
    };
    let mut n = total.saturating_sub(skip);
    if let Some(limit) = limit {
        n = n.min(limit);
    }
    Ok(doc! {"n": n as i64})
}

pub fn distinct(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "distinct",
        body,
        &["key", "query", "collation", "hint", "collectionUUID"],
    )?;
    let coll = collection_arg("distinct", body)?;
    let key = body.get_str("key").map_err(|_| {
        CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'distinct.key' is missing but a required field",
        )
    })?;
    let matcher = match optional_document(body, "query")? {
        Some(query) if !query.is_empty() => Some(Matcher::parse(&query)?),
        _ => None,
    };
    let store = server.store.read();
    let mut values: Vec<Bson> = Vec::new();
    if let Some(collection) = store.catalog.collection(db, &coll) {
        for stored in collection.docs.values() {
            let document = stored.document();
            if matcher.as_ref().is_some_and(|m| !m.matches(&document)) {
                continue;
            }
            for value in crate::query::path::sort_key_values(&document, key) {
                let expanded = match value {
                    Bson::Array(items) => items,
                    other => vec![other],
                };
                for item in expanded {
                    if matches!(item, Bson::Null)
                        && crate::query::path::get_path(&document, key).is_none()
                    {
                        continue;
                    }
                    if !values.iter().any(|v| bson_cmp::values_equal(v, &item)) {
                        values.push(item);
                    }
                }
            }
        }
    }
    values.sort_by(bson_cmp::compare);
    Ok(doc! {"values": values})
}

pub fn aggregate(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "aggregate",
        body,
        &[
            "pipeline",
            "cursor",
            "allowDiskUse",
            "hint",
            "let",
            "collation",
            "explain",
            "bypassDocumentValidation",
            "collectionUUID",
        ],
    )?;
    if matches!(body.get("explain"), Some(Bson::Boolean(true))) {
        return Err(CommandError::not_implemented("aggregate explain"));
    }
    if body.contains_key("let") {
        return Err(CommandError::not_implemented("'let' in aggregate"));
    }
    if let Some(collation) = body.get("collation") {
        if !crate::index::is_simple_collation(collation) {
            return Err(CommandError::not_implemented("collation"));
        }
    }
    check_read_concern(body)?;
    if !body.contains_key("cursor") {
        return Err(CommandError::failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    let Some(Bson::Array(stages)) = body.get("pipeline") else {
        return Err(CommandError::type_mismatch(
            "'pipeline' option must be specified as an array",
        ));
    };
    let batch_size = cursor_batch_size(body)?;
    let target = match body.get("aggregate") {
        Some(Bson::String(coll)) => Some(coll.clone()),
        Some(Bson::Int32(1)) | Some(Bson::Int64(1)) | Some(Bson::Double(_)) => None,
        _ => return Err(CommandError::failed_to_parse("Invalid aggregate namespace")),
    };
    let first_stage = stages.first().and_then(Bson::as_document);
    if let Some(stage) = first_stage.and_then(|s| s.get_document("$changeStream").ok()) {
        return open_change_stream(server, db, target, stage, &stages[1..], batch_size, body);
    }
    let Some(coll) = target else {
        return Err(CommandError::not_implemented(
            "collectionless aggregate stages other than $changeStream",
        ));
    };
    let ns = format!("{db}.{coll}");
    let coll_stats = first_stage.and_then(|s| s.get("$collStats"));
    let pipeline = Pipeline::parse_with(
        if coll_stats.is_some() {
            &stages[1..]
        } else {
            &stages[..]
        },
        &crate::aggregate::AggregateOptions {
            sample_seed: server.config.sample_seed,
        },
    )?;
    let output = {
        let store = server.store.read();
        if let Some(stage) = coll_stats {
            let input = vec![coll_stats_stage(&store, server, db, &coll, stage)?];
            drop(store);
            pipeline.run(input)?
        } else if let Some(sampled) = pipeline
            .leading_sample()
            .and_then(|(size, seed)| sample_collection(&store, db, &coll, size, seed))
        {
            drop(store);
            pipeline.run_after_sample(sampled)?
        } else {
            let input = collection_input(&store, db, &coll)?;
            drop(store);
            pipeline.run(input)?
        }
    };
    let mut cursor = FindCursor {
        db: db.to_string(),
        coll,
        uuid: None,
        scan: Scan::Materialised(output.into_iter().map(Arc::new).collect()),
        matcher: None,
        projection: None,
        skip: 0,
        limit_remaining: None,
    };
    let (batch, exhausted) = {
        let store = server.store.read();
        cursor.next_batch(&store, Some(batch_size.unwrap_or(DEFAULT_FIRST_BATCH)))?
    };
    Ok(reply_with_cursor(
        server,
        ns,
        batch.into(),
        exhausted,
        Some(CursorKind::Find(Box::new(cursor))),
        body,
    ))
}

/// mongod's `collectionUUID` guard (6.0+): the command runs only if `coll` is the
/// collection with that UUID; otherwise CollectionUUIDMismatch says where it is now
/// (`actualCollection`: its name if it is in `db`, else null), so a reader can follow a
/// rename instead of reading an empty namespace.
fn check_collection_uuid(store: &Store, db: &str, coll: &str, expected: &Bson) -> CmdResult<()> {
    let uuid = match expected {
        Bson::Binary(binary) if binary.subtype == bson::spec::BinarySubtype::Uuid => binary
            .to_uuid()
            .map_err(|e| CommandError::bad_value(format!("invalid collectionUUID: {e}")))?,
        _ => {
            return Err(CommandError::type_mismatch(
                "BSON field 'collectionUUID' is the wrong type, expected type 'uuid'",
            ))
        }
    };
    if store
        .catalog
        .collection(db, coll)
        .is_some_and(|c| c.uuid == uuid)
    {
        return Ok(());
    }
    let actual = store
        .catalog
        .find_by_uuid(uuid)
        .filter(|(found_db, _, _)| *found_db == db)
        .map_or(Bson::Null, |(_, name, _)| Bson::String(name.to_string()));
    Err(CommandError::new(
        ErrorCode::CollectionUuidMismatch,
        format!("Collection UUID {uuid} does not match collection name {db}.{coll}"),
    )
    .with_extra(doc! {
        "db": db,
        "collectionUUID": expected.clone(),
        "expectedCollection": coll,
        "actualCollection": actual,
    }))
}

/// A leading `$sample` on a collection (not a view): picks `size` documents and copies
/// only those, as mongod's random cursor reads only what it returns. Copying the whole
/// collection first made sampling a large collection cost as much as reading it, under
/// the store's lock.
fn sample_collection(
    store: &Store,
    db: &str,
    coll: &str,
    size: u64,
    seed: Option<u64>,
) -> Option<Vec<Document>> {
    let collection = store.catalog.collection(db, coll)?;
    if matches!(collection.kind, CollKind::View { .. }) {
        return None;
    }
    let mut keys: Vec<&Key> = collection.natural.values().collect();
    crate::aggregate::sample_in_place(size, &mut keys, seed);
    Some(
        keys.into_iter()
            .filter_map(|k| collection.docs.get(k))
            .map(Stored::decode)
            .collect(),
    )
}

/// The documents an aggregation reads: the collection in natural order, or a view's
/// pipeline applied to its source.
fn collection_input(store: &Store, db: &str, coll: &str) -> CmdResult<Vec<Document>> {
    let Some(collection) = store.catalog.collection(db, coll) else {
        return Ok(Vec::new());
    };
    match &collection.kind {
        CollKind::View { view_on, pipeline } => {
            let source = collection_input(store, db, view_on)?;
            Pipeline::parse(pipeline)?.run(source)
        }
        _ => Ok(collection
            .natural
            .values()
            .filter_map(|k| collection.docs.get(k))
            .map(Stored::decode)
            .collect()),
    }
}

fn coll_stats_stage(
    store: &Store,
    server: &Server,
    db: &str,
    coll: &str,
    spec: &Bson,
) -> CmdResult<Document> {
    let Bson::Document(spec) = spec else {
        return Err(CommandError::failed_to_parse(
            "$collStats must take a nested object",
        ));
    };
    let collection = store
        .catalog
        .collection(db, coll)
        .ok_or_else(|| CommandError::new(ErrorCode::NamespaceNotFound, format!("Unable to retrieve storageStats in $collStats stage :: caused by :: Collection [{db}.{coll}] not found.")))?;
    let count = collection.docs.len() as i64;
    let size = collection.data_size as i64;
    let mut output = doc! {"ns": format!("{db}.{coll}"), "host": server.host.clone(), "localTime": bson::DateTime::now()};
    for (key, _) in spec {
        match key.as_str() {
            "storageStats" => {
                let mut index_sizes = Document::new();
                for index in &collection.indexes {
                    index_sizes.insert(index.name.clone(), 0i64);
                }
                output.insert(
                    "storageStats",
                    doc! {
                        "size": size,
                        "count": count,
                        "avgObjSize": if count > 0 { size / count } else { 0 },
                        "storageSize": size,
                        "freeStorageSize": 0i64,
                        "capped": matches!(collection.options.get("capped"), Some(Bson::Boolean(true))),
                        "nindexes": collection.indexes.len() as i32,
                        "totalIndexSize": 0i64,
                        "indexSizes": index_sizes,
                        "totalSize": size,
                    },
                );
            }
            "count" => {
                output.insert("count", doc! {"count": count});
            }
            "latencyStats" | "queryExecStats" => {
                return Err(CommandError::not_implemented(format!("$collStats.{key}")))
            }
            other => {
                return Err(CommandError::new(
                    ErrorCode::IdlUnknownField,
                    format!("BSON field '$collStats.{other}' is an unknown field."),
                ))
            }
        }
    }
    Ok(output)
}

fn open_change_stream(
    server: &Server,
    db: &str,
    target: Option<String>,
    stage: &Document,
    rest: &[Bson],
    batch_size: Option<u64>,
    body: &Document,
) -> CmdResult<Document> {
    let scope = match (&target, db) {
        (None, "admin") => Scope::Cluster,
        (None, db) => Scope::Database(db.to_string()),
        (Some(coll), db) => Scope::Collection(db.to_string(), coll.clone()),
    };
    match &scope {
        Scope::Database(d) | Scope::Collection(d, _) if crate::store::is_internal_db(d) => {
            return Err(CommandError::new(
                ErrorCode::InvalidNamespace,
                format!("$changeStream may not be opened on the internal {d} database"),
            ));
        }
        Scope::Cluster
            if !matches!(stage.get("allChangesForCluster"), Some(Bson::Boolean(true))) =>
        {
            return Err(CommandError::new(
                ErrorCode::InvalidNamespace,
                "$changeStream may not be opened on the internal admin database",
            ));
        }
        _ => {}
    }
    for stage in rest {
        let name = stage
            .as_document()
            .and_then(|s| s.keys().next().cloned())
            .unwrap_or_default();
        if !matches!(
            name.as_str(),
            "$match"
                | "$project"
                | "$addFields"
                | "$set"
                | "$unset"
                | "$replaceRoot"
                | "$replaceWith"
                | "$redact"
                | "$changeStreamSplitLargeEvent"
        ) {
            return Err(CommandError::new(
                ErrorCode::IllegalOperation,
                format!("{name} is not permitted in a $changeStream pipeline"),
            ));
        }
    }
    let options = Options::parse(stage, &scope)?;
    let pipeline = if rest.is_empty() {
        None
    } else {
        Some(Pipeline::parse(rest)?)
    };
    let prefilter = crate::changestream::namespace_prefilter(rest)?;
    let ns = match &scope {
        Scope::Cluster => "admin.$cmd.aggregate".to_string(),
        Scope::Database(d) => format!("{d}.$cmd.aggregate"),
        Scope::Collection(d, c) => format!("{d}.{c}"),
    };
    let store = server.store.read();
    if let Scope::Collection(d, c) = &scope {
        if store
            .catalog
            .collection(d, c)
            .is_some_and(Collection::is_view)
        {
            return Err(CommandError::new(
                ErrorCode::CommandNotSupportedOnView,
                format!("Namespace {d}.{c} is a view, not a collection"),
            ));
        }
    }
    let mut cursor = ChangeStreamCursor::open(&store, scope, options, pipeline, prefilter)?;
    let (batch, pbrt) =
        cursor.next_batch(&store, batch_size.unwrap_or(DEFAULT_FIRST_BATCH) as usize)?;
    drop(store);
    let closed = cursor.closed;
    let mut reply = reply_with_cursor(
        server,
        ns,
        batch.into(),
        closed,
        Some(CursorKind::ChangeStream(Box::new(cursor))),
        body,
    );
    if let Ok(cursor_doc) = reply.get_document_mut("cursor") {
        cursor_doc.insert("postBatchResumeToken", pbrt);
    }
    Ok(reply)
}
