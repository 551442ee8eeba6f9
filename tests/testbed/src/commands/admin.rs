//! Administrative and diagnostic commands: buildInfo, getParameter, status, sessions,
//! write blocking, oplog notes, failpoints and statistics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document};

use super::{check_fields, collection_arg};
use crate::conn::ConnCtx;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::oplog::Op;
use crate::server::Server;

pub fn build_info(server: &Server) -> Document {
    let (version, version_array, _) = server.config.wire_version.server_version();
    doc! {
        "version": version,
        "gitVersion": "c2c-testbed",
        "versionArray": version_array.to_vec(),
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": 16_777_216,
        "storageEngines": ["wiredTiger"],
        "modules": [],
        "javascriptEngine": "none",
        "testbed": true,
    }
}

pub fn get_parameter(server: &Server, body: &Document) -> CmdResult<Document> {
    let (_, _, fcv) = server.config.wire_version.server_version();
    let all = matches!(body.get("getParameter"), Some(Bson::String(s)) if s == "*");
    let mut reply = Document::new();
    for (key, _) in body.iter().skip(1) {
        if super::GENERIC_ARGS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "featureCompatibilityVersion" => {
                reply.insert("featureCompatibilityVersion", doc! {"version": fcv});
            }
            "cursorTimeoutMillis" => {
                reply.insert(
                    "cursorTimeoutMillis",
                    crate::cursor::CURSOR_TIMEOUT.as_millis() as i64,
                );
            }
            "periodicNoopIntervalSecs" => {
                reply.insert(
                    "periodicNoopIntervalSecs",
                    server.config.idle_noop_interval.as_secs().max(1) as i32,
                );
            }
            "maxBSONDepth" => {
                reply.insert("maxBSONDepth", 100);
            }
            other => {
                return Err(CommandError::new(
                    ErrorCode::InvalidOptions,
                    format!("no option found to get: {other}"),
                ))
            }
        }
    }
    if all {
        reply.insert("featureCompatibilityVersion", doc! {"version": fcv});
        reply.insert(
            "cursorTimeoutMillis",
            crate::cursor::CURSOR_TIMEOUT.as_millis() as i64,
        );
    }
    if reply.is_empty() {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "no option found to get",
        ));
    }
    Ok(reply)
}

pub fn server_status(server: &Server) -> Document {
    let (version, _, _) = server.config.wire_version.server_version();
    let (oplog_len, cursors) = (server.store.read().oplog.len(), server.cursors.lock().len());
    doc! {
        "host": server.host.clone(),
        "version": version,
        "process": "c2c-testbed",
        "uptime": 1.0,
        "localTime": bson::DateTime::now(),
        "connections": {"totalCreated": server.connection_counter.load(Ordering::SeqCst)},
        "metrics": {"cursor": {"open": {"total": cursors as i64}}},
        "oplogEntries": oplog_len as i64,
        "repl": {"setName": server.config.repl_set.clone(), "isWritablePrimary": true, "primary": server.host.clone()},
    }
}

pub fn host_info() -> Document {
    doc! {
        "system": {"hostname": "localhost", "cpuArch": std::env::consts::ARCH, "numCores": std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(1)},
        "os": {"type": std::env::consts::OS},
    }
}

pub fn repl_set_get_status(server: &Server) -> Document {
    let last = server.store.read().last_applied;
    doc! {
        "set": server.config.repl_set.clone(),
        "myState": 1,
        "members": [{
            "_id": 0, "name": server.host.clone(), "health": 1.0, "state": 1, "stateStr": "PRIMARY",
            "optime": {"ts": last, "t": 1i64}, "self": true,
        }],
    }
}

pub fn connection_status(ctx: &ConnCtx, body: &Document) -> Document {
    let show = matches!(body.get("showPrivileges"), Some(Bson::Boolean(true)));
    let mut info = match &ctx.user {
        Some(user) => {
            let mut info =
                doc! {"authenticatedUsers": [{"user": user.user.clone(), "db": user.db.clone()}]};
            info.extend(user.privileges.describe(show));
            info
        }
        None => {
            let mut info = doc! {"authenticatedUsers": [], "authenticatedUserRoles": []};
            if show {
                info.insert("authenticatedUserPrivileges", Vec::<Bson>::new());
            }
            info
        }
    };
    if !info.contains_key("authenticatedUserRoles") {
        info.insert("authenticatedUserRoles", Vec::<Bson>::new());
    }
    doc! {"authInfo": info}
}

pub fn end_sessions(server: &Server, body: &Document) -> Document {
    let name = body.keys().next().cloned().unwrap_or_default();
    if let Some(Bson::Array(sessions)) = body.get(&name) {
        let mut cursors = server.cursors.lock();
        let mut cache = server.retry_cache.lock();
        for lsid in sessions {
            cursors.kill_for_session(lsid);
            if let Some(key) = crate::session::session_key(lsid) {
                cache.forget(&key);
            }
        }
    }
    Document::new()
}

pub fn start_session() -> Document {
    let id = bson::Binary::from_uuid(bson::Uuid::new());
    doc! {"id": {"id": Bson::Binary(id)}, "timeoutMinutes": 30}
}

fn require_admin(db: &str, command: &str) -> CmdResult<()> {
    if db != "admin" {
        return Err(CommandError::new(
            ErrorCode::Unauthorized,
            format!("{command} may only be run against the admin database."),
        ));
    }
    Ok(())
}

pub fn set_user_write_block_mode(
    server: &Server,
    db: &str,
    body: &Document,
) -> CmdResult<Document> {
    require_admin(db, "setUserWriteBlockMode")?;
    check_fields("setUserWriteBlockMode", body, &["global", "reason"])?;
    let global =
        match body.get("global") {
            Some(Bson::Boolean(global)) => *global,
            Some(_) => return Err(CommandError::type_mismatch(
                "BSON field 'setUserWriteBlockMode.global' is the wrong type, expected type 'bool'",
            )),
            None => {
                return Err(CommandError::new(
                    ErrorCode::IdlFailedToParse,
                    "BSON field 'setUserWriteBlockMode.global' is missing but a required field",
                ))
            }
        };
    server.write_block.store(global, Ordering::SeqCst);
    Ok(Document::new())
}

pub fn append_oplog_note(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    require_admin(db, "appendOplogNote")?;
    if !matches!(body.get("data"), Some(Bson::Document(_))) {
        return Err(CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'appendOplogNote.data' is missing but a required field",
        ));
    }
    let mut store = server.store.write();
    let ts = store.tick();
    store.log(ts, "admin", None, Op::Noop);
    server.notify_oplog(&store);
    Ok(Document::new())
}

pub fn configure_fail_point(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    require_admin(db, "configureFailPoint")?;
    let count = server.failpoints.lock().configure(body)?;
    Ok(doc! {"count": count})
}

pub async fn wait_for_fail_point(server: &Arc<Server>, body: &Document) -> CmdResult<Document> {
    let wanted = match body.get("timesEntered") {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Double(v)) => *v as i64,
        _ => {
            return Err(CommandError::new(
                ErrorCode::IdlFailedToParse,
                "BSON field 'waitForFailPoint.timesEntered' is missing but a required field",
            ))
        }
    };
    let max_ms = match body.get("maxTimeMS") {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        _ => {
            return Err(CommandError::new(
                ErrorCode::IdlFailedToParse,
                "BSON field 'waitForFailPoint.maxTimeMS' is missing but a required field",
            ))
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(max_ms.max(0) as u64);
    loop {
        if server.failpoints.lock().times_entered >= wanted {
            return Ok(Document::new());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CommandError::new(
                ErrorCode::MaxTimeMSExpired,
                "operation exceeded time limit",
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn db_stats(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    let scale = match body.get("scale") {
        Some(value) => super::as_count("scale", value)?.max(1) as f64,
        None => 1.0,
    };
    let store = server.store.read();
    let (mut collections, mut views, mut objects, mut data_size, mut indexes) =
        (0i64, 0i64, 0i64, 0u64, 0i64);
    if let Some(database) = store.catalog.databases.get(db) {
        for collection in database.collections.values() {
            if collection.is_view() {
                views += 1;
                continue;
            }
            collections += 1;
            objects += collection.docs.len() as i64;
            data_size += collection.data_size;
            indexes += collection.indexes.len() as i64;
        }
    }
    let avg = if objects > 0 {
        data_size as f64 / objects as f64
    } else {
        0.0
    };
    Ok(doc! {
        "db": db,
        "collections": collections,
        "views": views,
        "objects": objects,
        "avgObjSize": avg,
        "dataSize": data_size as f64 / scale,
        "storageSize": data_size as f64 / scale,
        "indexes": indexes,
        "indexSize": 0.0,
        "totalSize": data_size as f64 / scale,
        "scaleFactor": scale,
        "fsUsedSize": 0.0,
        "fsTotalSize": 0.0,
    })
}

/// The deprecated collStats command (tools still call it).
pub fn coll_stats(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    let coll = collection_arg("collStats", body)?;
    let store = server.store.read();
    let collection = store.catalog.collection(db, &coll).ok_or_else(|| {
        CommandError::new(
            ErrorCode::NamespaceNotFound,
            format!("Collection [{db}.{coll}] not found."),
        )
    })?;
    let count = collection.docs.len() as i64;
    let size = collection.data_size as i64;
    Ok(doc! {
        "ns": format!("{db}.{coll}"),
        "size": size,
        "count": count,
        "avgObjSize": if count > 0 { size / count } else { 0 },
        "storageSize": size,
        "nindexes": collection.indexes.len() as i32,
        "totalIndexSize": 0,
        "capped": matches!(collection.options.get("capped"), Some(Bson::Boolean(true))),
    })
}
