//! Testbed-only commands, clearly prefixed, for faults `failCommand` cannot express:
//! truncating the oplog, killing every cursor, stepping down, moving the clock, adding
//! latency, and running the TTL monitor on demand.

use std::sync::atomic::Ordering;

use bson::{doc, Bson, Document, Timestamp};

use super::as_count;
use crate::error::{CmdResult, CommandError};
use crate::server::Server;

pub fn truncate_oplog(server: &Server, body: &Document) -> CmdResult<Document> {
    let keep = match body.get("keep") {
        Some(value) => as_count("keep", value)? as usize,
        None => 0,
    };
    let mut store = server.store.write();
    let before = store.oplog.len();
    store.oplog.truncate_keep(keep);
    Ok(doc! {"removed": (before - store.oplog.len()) as i64})
}

pub fn set_oplog_retention(server: &Server, body: &Document) -> CmdResult<Document> {
    let retention = match body.get("entries") {
        None | Some(Bson::Null) => None,
        Some(value) => Some(as_count("entries", value)?.max(1) as usize),
    };
    server.store.write().oplog.set_retention(retention);
    Ok(Document::new())
}

pub fn kill_all_cursors(server: &Server) -> Document {
    let killed = server.cursors.lock().kill_all();
    doc! {"killed": killed as i64}
}

/// A simulated election: the topology version moves (waking awaitable hellos) and
/// every cursor dies, as on a real step-down.
pub fn step_down(server: &Server) -> Document {
    server.bump_topology();
    server.cursors.lock().kill_all();
    doc! {"topologyVersionCounter": server.topology_counter.load(Ordering::SeqCst)}
}

pub fn advance_clock(server: &Server, body: &Document) -> CmdResult<Document> {
    let mut store = server.store.write();
    let now = store.clock.now();
    let target = match (body.get("seconds"), body.get("to")) {
        (Some(seconds), None) => Timestamp {
            time: now.time + as_count("seconds", seconds)? as u32,
            increment: 0,
        },
        (None, Some(Bson::Timestamp(to))) => *to,
        _ => {
            return Err(CommandError::bad_value(
                "testbedAdvanceClock takes either 'seconds' or 'to' (a timestamp)",
            ))
        }
    };
    store.clock.advance_to(target);
    Ok(doc! {"clusterTime": store.clock.now()})
}

pub fn set_latency(server: &Server, body: &Document) -> CmdResult<Document> {
    let micros = match (body.get("micros"), body.get("ms")) {
        (Some(value), _) => as_count("micros", value)?,
        (None, Some(value)) => as_count("ms", value)? * 1000,
        (None, None) => {
            return Err(CommandError::bad_value(
                "testbedSetLatency takes 'micros' or 'ms'",
            ))
        }
    };
    server.latency_micros.store(micros, Ordering::Relaxed);
    Ok(Document::new())
}

/// One pass of mongod's TTL monitor: deletes expired documents (with delete events).
pub fn run_ttl_pass(server: &Server) -> CmdResult<Document> {
    let now_ms = bson::DateTime::now().timestamp_millis();
    let mut store = server.store.write();
    let mut expired: Vec<(String, String, Bson)> = Vec::new();
    for (db, database) in &store.catalog.databases {
        for (name, collection) in &database.collections {
            for index in &collection.indexes {
                let expire = match index.spec.get("expireAfterSeconds") {
                    Some(Bson::Int32(v)) => i64::from(*v),
                    Some(Bson::Int64(v)) => *v,
                    Some(Bson::Double(v)) => *v as i64,
                    _ => continue,
                };
                if index.fields.len() != 1 {
                    continue;
                }
                let path = &index.fields[0].path;
                for stored in collection.docs.values() {
                    let document = stored.document();
                    let dates: Vec<i64> = match crate::query::path::get_path(&document, path) {
                        Some(Bson::DateTime(date)) => vec![date.timestamp_millis()],
                        Some(Bson::Array(items)) => items
                            .iter()
                            .filter_map(|i| match i {
                                Bson::DateTime(d) => Some(d.timestamp_millis()),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    if let Some(earliest) = dates.into_iter().min() {
                        if earliest + expire * 1000 <= now_ms {
                            expired.push((
                                db.clone(),
                                name.clone(),
                                document.get("_id").cloned().unwrap_or(Bson::Null),
                            ));
                        }
                    }
                }
            }
        }
    }
    let mut deleted = 0i64;
    for (db, coll, id) in expired {
        if store.delete(&db, &coll, &id)?.is_some() {
            deleted += 1;
        }
    }
    server.notify_oplog(&store);
    Ok(doc! {"deleted": deleted})
}
