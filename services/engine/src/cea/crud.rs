//! Applying a run of CRUD events (no DDL in between) to the destination: order kept per
//! document key, parallel across keys.
//!
//! Events are routed to lanes by a hash of (namespace, canonical `_id`), so every event
//! of one document goes to the same lane, in stream order; lanes run concurrently. A
//! lane takes its events namespace by namespace and sends them as `update` and `delete`
//! commands of many statements, `ordered: true`; a document's events never pass each
//! other, which is the only order that matters.

use std::collections::{HashMap, HashSet};

use bson::{doc, rawdoc, Bson, Document, RawArrayBuf, RawDocumentBuf};
use mongodb::options::{CollectionOptions, ReadConcern};
use mongodb::Client;

use super::event::{Event, EventKind};
use super::lanes::{key_hash, lane_of};
use crate::error::{EngineError, Result};
use crate::namespace::Namespace;
use crate::retry::retry;

/// Bounds of one write command (the server's limits are 100,000 statements and 16 MiB
/// plus overhead; staying well under keeps retries cheap).
const MAX_STATEMENTS: usize = 1000;
const MAX_COMMAND_BYTES: usize = 8 << 20;

/// What the CRUD side needs: both clusters (the source for the refetch fallback).
pub struct CrudTarget<'a> {
    pub source: &'a Client,
    pub destination: &'a Client,
    pub lanes: usize,
}

/// Applies `events` (CRUD only) and returns once every lane is done.
pub async fn apply_crud(target: &CrudTarget<'_>, events: &[&Event]) -> Result<()> {
    let lanes = target.lanes.max(1);
    let mut routed: Vec<Vec<&Event>> = vec![Vec::new(); lanes];
    for event in events {
        if let (Some(ns), Some(id)) = (event.kind.crud_ns(), event.kind.document_id()) {
            routed[lane_of(ns, id, lanes)].push(event);
        }
    }
    let work = routed
        .iter()
        .filter(|lane| !lane.is_empty())
        .map(|lane| apply_lane(target, lane));
    futures::future::try_join_all(work).await?;
    Ok(())
}

/// How one event becomes destination writes.
enum Plan<'e> {
    Update(Vec<Statement<'e>>),
    Delete(Statement<'e>),
    /// The update description cannot be replayed faithfully: take the source's document.
    Refetch,
}

/// One write statement. An upsert borrows the event's document, which is encoded
/// straight into the command, never cloned.
enum Statement<'e> {
    Built(Document),
    Upsert {
        filter: Document,
        document: &'e Document,
    },
}

impl Statement<'_> {
    fn encode(&self) -> std::result::Result<RawDocumentBuf, bson::raw::Error> {
        match self {
            Statement::Built(statement) => RawDocumentBuf::from_document(statement),
            Statement::Upsert { filter, document } => {
                let mut statement = RawDocumentBuf::new();
                statement.append("q", RawDocumentBuf::from_document(filter)?);
                statement.append("u", RawDocumentBuf::from_document(document)?);
                statement.append("upsert", true);
                Ok(statement)
            }
        }
    }
}

fn id_filter(id: &Bson) -> Document {
    // `$eq` so a regex or operator-looking `_id` is matched as a value, not as a query.
    doc! {"_id": {"$eq": id.clone()}}
}

fn plan(event: &Event) -> Plan<'_> {
    match &event.kind {
        EventKind::Insert { id, document, .. } | EventKind::Replace { id, document, .. } => {
            Plan::Update(vec![Statement::Upsert {
                filter: id_filter(id),
                document,
            }])
        }
        EventKind::Delete { id, .. } => {
            Plan::Delete(Statement::Built(doc! {"q": id_filter(id), "limit": 1}))
        }
        EventKind::Update {
            id,
            updated_fields,
            removed_fields,
            truncated_arrays,
            disambiguated_paths,
            ..
        } => {
            // A field name containing '.' (or starting with '$') cannot be addressed by an
            // update path, so the dotted form would write the wrong field.
            let unaddressable = disambiguated_paths.values().any(|path| match path {
                Bson::Array(parts) => parts.iter().any(|p| {
                    p.as_str()
                        .is_some_and(|s| s.contains('.') || s.starts_with('$'))
                }),
                _ => true,
            });
            if unaddressable {
                return Plan::Refetch;
            }
            let filter = id_filter(id);
            let mut statements = Vec::new();
            let mut update = Document::new();
            if !truncated_arrays.is_empty() {
                let truncate: Document = truncated_arrays
                    .iter()
                    .map(|(field, size)| {
                        (
                            field.clone(),
                            Bson::Document(doc! {"$each": [], "$slice": *size}),
                        )
                    })
                    .collect();
                // mongod refuses conflicting paths in one update ("a" and "a.1"), and a
                // `$pull` typically yields both a truncation and element sets. Then the
                // truncation goes first in its own statement, as mongod's array diff
                // resizes before it sets elements.
                let conflicts = truncated_arrays.iter().any(|(field, _)| {
                    updated_fields
                        .keys()
                        .chain(removed_fields.iter())
                        .any(|path| overlaps(field, path))
                });
                if conflicts {
                    statements.push(Statement::Built(
                        doc! {"q": filter.clone(), "u": {"$push": truncate}},
                    ));
                } else {
                    update.insert("$push", truncate);
                }
            }
            if !updated_fields.is_empty() {
                update.insert("$set", updated_fields.clone());
            }
            if !removed_fields.is_empty() {
                let unset: Document = removed_fields
                    .iter()
                    .map(|field| (field.clone(), Bson::String(String::new())))
                    .collect();
                update.insert("$unset", unset);
            }
            if !update.is_empty() {
                // Never an upsert: a missing document was deleted later in the stream, and an
                // update description alone is not a whole document.
                statements.push(Statement::Built(doc! {"q": filter, "u": update}));
            }
            Plan::Update(statements)
        }
        _ => Plan::Update(Vec::new()),
    }
}

fn overlaps(a: &str, b: &str) -> bool {
    a == b
        || b.strip_prefix(a).is_some_and(|rest| rest.starts_with('.'))
        || a.strip_prefix(b).is_some_and(|rest| rest.starts_with('.'))
}

/// Statements collected for one command, each remembering which event it came from.
struct Pending<'e> {
    ns: Option<&'e Namespace>,
    delete: bool,
    statements: Vec<Statement<'e>>,
    owners: Vec<&'e Event>,
    bytes: usize,
}

impl<'e> Pending<'e> {
    fn new() -> Pending<'e> {
        Pending {
            ns: None,
            delete: false,
            statements: Vec::new(),
            owners: Vec::new(),
            bytes: 0,
        }
    }

    fn accepts(&self, ns: &Namespace, delete: bool, bytes: usize) -> bool {
        self.ns.is_none()
            || (self.ns == Some(ns)
                && self.delete == delete
                && self.statements.len() < MAX_STATEMENTS
                && self.bytes + bytes <= MAX_COMMAND_BYTES)
    }
}

/// A lane's events go out namespace by namespace. Order only matters per document, and
/// a document belongs to one namespace, so this keeps every guarantee while writes that
/// interleave collections (the usual case) still fill commands: taken in stream order,
/// every switch of collection would end a command, one round trip per event or two.
async fn apply_lane(target: &CrudTarget<'_>, events: &[&Event]) -> Result<()> {
    let mut groups: Vec<Vec<&Event>> = Vec::new();
    let mut group_of: HashMap<&Namespace, usize> = HashMap::new();
    for event in events {
        let Some(ns) = event.kind.crud_ns() else {
            continue;
        };
        let index = *group_of.entry(ns).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[index].push(event);
    }
    for group in groups {
        apply_namespace(target, &group).await?;
    }
    Ok(())
}

/// One namespace's events of a lane, as few commands as they allow. Updates (upserts,
/// replacements) and deletes collect in two commands at once; only a document's own
/// events must stay in order, so an event whose document has a statement waiting in the
/// other command sends that command first. Keys are compared by hash: a collision only
/// sends a command early.
async fn apply_namespace(target: &CrudTarget<'_>, events: &[&Event]) -> Result<()> {
    let mut updates = Waiting::new();
    let mut deletes = Waiting::new();
    for event in events {
        let (Some(ns), Some(id)) = (event.kind.crud_ns(), event.kind.document_id()) else {
            continue;
        };
        let key = key_hash(ns, id);
        let (statements, delete) = match plan(event) {
            Plan::Update(statements) => (statements, false),
            Plan::Delete(statement) => (vec![statement], true),
            Plan::Refetch => {
                updates.flush_if_holding(target, key).await?;
                deletes.flush_if_holding(target, key).await?;
                refetch(target, event).await?;
                continue;
            }
        };
        let (own, other) = if delete {
            (&mut deletes, &mut updates)
        } else {
            (&mut updates, &mut deletes)
        };
        other.flush_if_holding(target, key).await?;
        if !own.pending.accepts(ns, delete, event.size) {
            own.flush(target).await?;
        }
        own.add(ns, delete, key, event, statements);
    }
    updates.flush(target).await?;
    deletes.flush(target).await
}

/// A command being filled and the documents it touches.
struct Waiting<'e> {
    pending: Pending<'e>,
    keys: HashSet<u64>,
}

impl<'e> Waiting<'e> {
    fn new() -> Waiting<'e> {
        Waiting {
            pending: Pending::new(),
            keys: HashSet::new(),
        }
    }

    fn add(
        &mut self,
        ns: &'e Namespace,
        delete: bool,
        key: u64,
        event: &'e Event,
        statements: Vec<Statement<'e>>,
    ) {
        self.pending.ns = Some(ns);
        self.pending.delete = delete;
        self.pending.bytes += event.size;
        for statement in statements {
            self.pending.statements.push(statement);
            self.pending.owners.push(event);
        }
        self.keys.insert(key);
    }

    async fn flush(&mut self, target: &CrudTarget<'_>) -> Result<()> {
        self.keys.clear();
        flush(target, &mut self.pending).await
    }

    async fn flush_if_holding(&mut self, target: &CrudTarget<'_>, key: u64) -> Result<()> {
        if self.keys.contains(&key) {
            self.flush(target).await?;
        }
        Ok(())
    }
}

/// Sends the pending command. On a write error the failing statement's event is
/// resolved (update → refetch, anything else → fatal) and the command continues with
/// the statements after that event's last one.
async fn flush(target: &CrudTarget<'_>, pending: &mut Pending<'_>) -> Result<()> {
    let taken = std::mem::replace(pending, Pending::new());
    let Some(ns) = taken.ns else { return Ok(()) };
    let mut start = 0;
    while start < taken.statements.len() {
        let statements = &taken.statements[start..];
        let Some((failed, code, message)) =
            write(target.destination, ns, taken.delete, statements).await?
        else {
            break;
        };
        let index = start + failed;
        let event = taken.owners[index];
        if !matches!(event.kind, EventKind::Update { .. }) {
            return Err(EngineError::Fatal(format!("applying a change event to {ns} failed on the destination: {message} (code {code})")));
        }
        tracing::debug!(%ns, code, message, "update event does not apply on the destination; taking the source's document");
        refetch(target, event).await?;
        start = index + 1;
        while start < taken.statements.len() && std::ptr::eq(taken.owners[start], event) {
            start += 1;
        }
    }
    Ok(())
}

/// Runs one ordered write command; returns the first write error (its statement index).
async fn write(
    destination: &Client,
    ns: &Namespace,
    delete: bool,
    statements: &[Statement<'_>],
) -> Result<Option<(usize, i32, String)>> {
    let database = destination.database(&ns.db);
    let command = write_command(ns, delete, statements)?;
    let what = if delete {
        "apply deletes"
    } else {
        "apply updates"
    };
    let reply = retry(what, || database.run_raw_command(command.clone()))
        .await
        .map_err(EngineError::destination)?;
    if let Ok(concern) = reply.get_document("writeConcernError") {
        // Every statement is idempotent, so the caller's retry of the batch is safe; make
        // it fatal here rather than pretend the write is durable.
        return Err(EngineError::Fatal(format!(
            "write concern failed on the destination for {ns}: {concern}"
        )));
    }
    let first = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|errors| errors.first())
        .and_then(Bson::as_document);
    Ok(first.map(|error| {
        let index = error
            .get("index")
            .and_then(Bson::as_i32)
            .unwrap_or(0)
            .max(0) as usize;
        let code = error.get("code").and_then(Bson::as_i32).unwrap_or(0);
        let message = error.get_str("errmsg").unwrap_or("").to_string();
        (index, code, message)
    }))
}

/// The command as raw BSON, each statement encoded once: a retry re-sends a copy of the
/// bytes, where a `Document` command was deep-cloned for every attempt and encoded again
/// by the driver (the applier's main CPU cost with 1 KiB documents).
fn write_command(
    ns: &Namespace,
    delete: bool,
    statements: &[Statement<'_>],
) -> Result<RawDocumentBuf> {
    let mut list = RawArrayBuf::new();
    for statement in statements {
        list.push(statement.encode().map_err(|e| {
            EngineError::Fatal(format!("a change event for {ns} cannot be encoded: {e}"))
        })?);
    }
    let mut command = RawDocumentBuf::new();
    if delete {
        command.append("delete", ns.coll.as_str());
        command.append("deletes", list);
        command.append("ordered", true);
    } else {
        command.append("update", ns.coll.as_str());
        command.append("updates", list);
        command.append("ordered", true);
        // The destination may carry the source's validators; the source already
        // validated these documents.
        command.append("bypassDocumentValidation", true);
    }
    command.append("writeConcern", rawdoc! {"w": "majority"});
    Ok(command)
}

/// The fallback for an update event that cannot be replayed on the destination (the
/// path no longer exists in that shape, conflicting operators, unaddressable field
/// names): replace the destination document with the source's current version, or
/// delete it if the source no longer has it.
///
/// Why this is correct: the source's current document is the result of this event and
/// of every later one for the same key. Those later events are still in the stream and
/// will be applied after this, in order, on top of a document that is already at least
/// as new; replacements and deletes simply overwrite, and updates either apply (setting
/// values the document already has) or fail and refetch again. When the applier catches
/// up, the document equals the source's. In between it may be "ahead" of the stream,
/// which is invisible because the destination is not readable until commit.
async fn refetch(target: &CrudTarget<'_>, event: &Event) -> Result<()> {
    let (Some(ns), Some(id)) = (event.kind.crud_ns(), event.kind.document_id()) else {
        return Ok(());
    };
    let collection = target
        .source
        .database(&ns.db)
        .collection_with_options::<Document>(
            &ns.coll,
            CollectionOptions::builder()
                .read_concern(ReadConcern::majority())
                .build(),
        );
    let filter = id_filter(id);
    let current = retry("refetch source document", || {
        collection.find_one(filter.clone())
    })
    .await
    .map_err(EngineError::source)?;
    let (delete, statement) = match current {
        Some(document) => (
            false,
            Statement::Built(doc! {"q": filter, "u": document, "upsert": true}),
        ),
        None if source_has_collection(target.source, ns).await? => {
            (true, Statement::Built(doc! {"q": filter, "limit": 1}))
        }
        // The collection was dropped or renamed later in the stream; that DDL event will
        // handle the destination collection, so leave it as it is.
        None => return Ok(()),
    };
    match write(target.destination, ns, delete, &[statement]).await? {
        None => Ok(()),
        Some((_, code, message)) => Err(EngineError::Fatal(format!(
            "replacing a document of {ns} from the source failed: {message} (code {code})"
        ))),
    }
}

async fn source_has_collection(source: &Client, ns: &Namespace) -> Result<bool> {
    let database = source.database(&ns.db);
    let command =
        doc! {"listCollections": 1, "filter": {"name": ns.coll.as_str()}, "nameOnly": true};
    let reply = retry("listCollections", || database.run_command(command.clone()))
        .await
        .map_err(EngineError::source)?;
    let first_batch = reply
        .get_document("cursor")
        .and_then(|cursor| cursor.get_array("firstBatch"));
    Ok(first_batch.is_ok_and(|batch| !batch.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_conflicting_with_sets_becomes_two_statements() {
        let event = Event {
            token: doc! {},
            cluster_time: bson::Timestamp {
                time: 1,
                increment: 1,
            },
            kind: EventKind::Update {
                ns: Namespace::new("a", "b"),
                id: Bson::Int32(1),
                updated_fields: doc! {"arr.0": 2, "x": 1},
                removed_fields: vec!["y".into()],
                truncated_arrays: vec![("arr".into(), 2)],
                disambiguated_paths: doc! {},
            },
            size: 10,
        };
        let Plan::Update(statements) = plan(&event) else {
            panic!("expected updates")
        };
        assert_eq!(statements.len(), 2);
        let Statement::Built(first) = &statements[0] else {
            panic!("expected a built statement")
        };
        assert_eq!(
            first.get_document("u").unwrap(),
            &doc! {"$push": {"arr": {"$each": [], "$slice": 2i64}}}
        );
        assert!(overlaps("a", "a.1") && overlaps("a.1", "a") && !overlaps("a", "ab"));
    }
}
