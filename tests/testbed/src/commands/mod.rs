//! Command dispatch: authentication and authorization, failpoints, retryable-write
//! replay, then the command itself, and finally the reply decoration every mongod
//! reply has (`ok`, error labels, `$clusterTime`, `operationTime`).

mod admin;
pub mod authz;
mod crud;
mod ddl;
mod hello;
mod read;
mod testbed;
mod users;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document};

use crate::conn::ConnCtx;
use crate::error::{self, CmdResult, CommandError, ErrorCode};
use crate::server::Server;
use crate::session::{self, Lookup};

pub enum Outcome {
    Reply(Document),
    /// Close the socket without replying (failpoint `closeConnection`).
    Close,
}

/// Generic arguments any command may carry (`generic_argument.idl`).
pub const GENERIC_ARGS: &[&str] = &[
    "$db",
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "stmtId",
    "stmtIds",
    "$clusterTime",
    "$readPreference",
    "readConcern",
    "writeConcern",
    "maxTimeMS",
    "comment",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "clientOperationKey",
    "$audit",
    "$client",
    "mayBypassWriteBlocking",
    "txnRetryCounter",
    "backpressure",
];

/// Facts about the request that decide its error labels.
struct LabelFacts {
    has_txn_number: bool,
    in_transaction: bool,
    change_stream: bool,
}

pub async fn execute(server: &Arc<Server>, ctx: &mut ConnCtx, mut body: Document) -> Outcome {
    let name = body.keys().next().cloned().unwrap_or_default();
    let facts = LabelFacts {
        has_txn_number: body.contains_key("txnNumber"),
        in_transaction: body.contains_key("autocommit"),
        change_stream: is_change_stream_command(&name, &body),
    };
    let result = run(server, ctx, &name, &mut body).await;
    match result {
        Ok(Some(reply)) => Outcome::Reply(decorate(server, reply)),
        Ok(None) => Outcome::Close,
        Err(error) => {
            let mut reply = error_reply(&error, &facts);
            if is_state_change_code(error.code) {
                // mongod attaches its topology version to NotPrimary/Shutdown errors; drivers
                // compare it with the one they monitor and ignore stale errors.
                reply.insert(
                    "topologyVersion",
                    doc! {"processId": server.process_id, "counter": server.topology_counter.load(Ordering::SeqCst)},
                );
            }
            Outcome::Reply(decorate(server, reply))
        }
    }
}

/// NotPrimaryError and ShutdownError categories of `error_codes.yml`.
fn is_state_change_code(code: i32) -> bool {
    matches!(
        code,
        10107 | 13435 | 13436 | 189 | 11602 | 10058 | 91 | 11600
    )
}

fn is_change_stream_command(name: &str, body: &Document) -> bool {
    match name {
        "getMore" => true,
        "aggregate" => match body.get("pipeline") {
            Some(Bson::Array(stages)) => stages
                .first()
                .and_then(Bson::as_document)
                .is_some_and(|stage| stage.contains_key("$changeStream")),
            _ => false,
        },
        _ => false,
    }
}

/// Runs one command. `Ok(None)` means: close the connection.
async fn run(
    server: &Arc<Server>,
    ctx: &mut ConnCtx,
    name: &str,
    // Mutable so that a write command can take its statements instead of copying them.
    body: &mut Document,
) -> CmdResult<Option<Document>> {
    let db = match body.get("$db") {
        Some(Bson::String(db)) => db.clone(),
        _ => {
            return Err(CommandError::new(
                ErrorCode::IdlFailedToParse,
                "BSON field 'OperationSessionInfo.$db' is missing but a required field",
            ))
        }
    };
    gossip_cluster_time(server, body);
    if let Some(Bson::Boolean(true)) = body.get("startTransaction") {
        return Err(CommandError::new(
            ErrorCode::OperationNotSupportedInTransaction,
            "the testbed does not implement multi-document transactions",
        ));
    }
    authz::authorize(server, ctx, name, &db, body)?;
    let namespace = command_namespace(name, &db, body);
    let action = server
        .failpoints
        .lock()
        .check(name, &namespace, ctx.app_name.as_deref());
    let mut write_concern_error = None;
    if let Some(action) = action {
        if let Some(block) = action.block {
            tokio::time::sleep(block).await;
        }
        if action.close_connection {
            return Ok(None);
        }
        if let Some(error) = action.error {
            return Err(error);
        }
        write_concern_error = action.write_concern_error;
    }
    let latency = server.latency_micros.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    let retry_key = retryable_key(name, body);
    if let Some((session, txn_number)) = &retry_key {
        match server.retry_cache.lock().lookup(session, *txn_number) {
            Lookup::Replay(reply) => return Ok(Some(reply)),
            Lookup::TooOld(latest) => {
                return Err(CommandError::from_code(
                    225,
                    format!("Retryable write with txnNumber {txn_number} is prohibited on session because a newer retryable write with txnNumber {latest} has already started on this session."),
                ))
            }
            Lookup::Fresh => {}
        }
    }
    let mut reply = dispatch(server, ctx, name, &db, body).await?;
    if let Some(wce) = write_concern_error {
        if is_write_command(name) {
            reply.insert("writeConcernError", wce);
        }
    }
    if let Some((session, txn_number)) = retry_key {
        let mut cached = reply.clone();
        cached.insert("ok", 1.0);
        server
            .retry_cache
            .lock()
            .remember(session, txn_number, cached);
    }
    Ok(Some(reply))
}

fn is_write_command(name: &str) -> bool {
    matches!(
        name,
        "insert" | "update" | "delete" | "findAndModify" | "findandmodify"
    )
}

fn retryable_key(name: &str, body: &Document) -> Option<(Vec<u8>, i64)> {
    if !is_write_command(name) || body.contains_key("autocommit") {
        return None;
    }
    let txn_number = match body.get("txnNumber") {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        _ => return None,
    };
    let session = session::session_key(body.get("lsid")?)?;
    Some((session, txn_number))
}

/// Without auth mongod accepts a gossiped cluster time and advances to it; with auth it
/// would verify a signature the testbed never issues, so foreign times are ignored.
fn gossip_cluster_time(server: &Server, body: &Document) {
    if server.auth_enabled() {
        return;
    }
    if let Some(Bson::Document(cluster_time)) = body.get("$clusterTime") {
        if let Some(Bson::Timestamp(ts)) = cluster_time.get("clusterTime") {
            server.store.write().clock.advance_to(*ts);
        }
    }
}

/// `db.coll` for the failpoint `namespace` filter.
fn command_namespace(name: &str, db: &str, body: &Document) -> String {
    match body.get(name) {
        Some(Bson::String(coll)) => format!("{db}.{coll}"),
        _ => db.to_string(),
    }
}

async fn dispatch(
    server: &Arc<Server>,
    ctx: &mut ConnCtx,
    name: &str,
    db: &str,
    body: &mut Document,
) -> CmdResult<Document> {
    match name {
        "hello" | "isMaster" | "ismaster" => hello::hello(server, ctx, name, body).await,
        "ping" => Ok(Document::new()),
        "buildInfo" | "buildinfo" => Ok(admin::build_info(server)),
        "getParameter" => admin::get_parameter(server, body),
        "serverStatus" => Ok(admin::server_status(server)),
        "hostInfo" => Ok(admin::host_info()),
        "replSetGetStatus" => Ok(admin::repl_set_get_status(server)),
        "getCmdLineOpts" => Ok(doc! {"argv": ["c2c-testbed"], "parsed": {}}),
        "whatsmyuri" => Ok(doc! {"you": "127.0.0.1"}),
        "connectionStatus" => Ok(admin::connection_status(ctx, body)),
        "endSessions" | "killSessions" => Ok(admin::end_sessions(server, body)),
        "startSession" => Ok(admin::start_session()),
        "refreshSessions" => Ok(Document::new()),
        "setUserWriteBlockMode" => admin::set_user_write_block_mode(server, db, body),
        "appendOplogNote" => admin::append_oplog_note(server, db, body),
        "configureFailPoint" => admin::configure_fail_point(server, db, body),
        "waitForFailPoint" => admin::wait_for_fail_point(server, body).await,
        "dbStats" => admin::db_stats(server, db, body),
        "collStats" => admin::coll_stats(server, db, body),
        "listDatabases" => ddl::list_databases(server, db, body),
        "listCollections" => ddl::list_collections(server, db, body),
        "listIndexes" => ddl::list_indexes(server, db, body),
        "create" => ddl::create(server, ctx, db, body),
        "drop" => ddl::drop(server, ctx, db, body),
        "dropDatabase" => ddl::drop_database(server, ctx, db),
        "renameCollection" => ddl::rename_collection(server, ctx, db, body),
        "createIndexes" => ddl::create_indexes(server, ctx, db, body),
        "dropIndexes" | "deleteIndexes" => ddl::drop_indexes(server, ctx, db, body),
        "collMod" => ddl::coll_mod(server, ctx, db, body),
        "insert" => crud::insert(server, ctx, db, body),
        "update" => crud::update(server, ctx, db, body),
        "delete" => crud::delete(server, ctx, db, body),
        "findAndModify" | "findandmodify" => crud::find_and_modify(server, ctx, db, body),
        "bulkWrite" => Err(CommandError::not_implemented(
            "the bulkWrite command (claim wire version 21 or lower)",
        )),
        "find" => read::find(server, db, body),
        "getMore" => read::get_more(server, db, body).await,
        "killCursors" => read::kill_cursors(server, body),
        "count" => read::count(server, db, body),
        "distinct" => read::distinct(server, db, body),
        "aggregate" => read::aggregate(server, db, body),
        "saslStart" => users::sasl_start(server, ctx, db, body),
        "saslContinue" => users::sasl_continue(server, ctx, body),
        "logout" => {
            ctx.user = None;
            Ok(Document::new())
        }
        "createUser" => users::create_user(server, db, body),
        "dropUser" => users::drop_user(server, db, body),
        "usersInfo" => users::users_info(server, db, body),
        "testbedTruncateOplog" => testbed::truncate_oplog(server, body),
        "testbedSetOplogRetention" => testbed::set_oplog_retention(server, body),
        "testbedKillAllCursors" => Ok(testbed::kill_all_cursors(server)),
        "testbedStepDown" => Ok(testbed::step_down(server)),
        "testbedAdvanceClock" => testbed::advance_clock(server, body),
        "testbedSetLatency" => testbed::set_latency(server, body),
        "testbedRunTTLPass" => testbed::run_ttl_pass(server),
        "commitTransaction" | "abortTransaction" => Err(CommandError::new(
            ErrorCode::Location(251),
            "the testbed does not implement multi-document transactions",
        )),
        "explain"
        | "mapReduce"
        | "geoNear"
        | "shardCollection"
        | "listShards"
        | "replSetInitiate"
        | "replSetReconfig"
        | "replSetStepDown"
        | "convertToCapped"
        | "cloneCollectionAsCapped"
        | "compact"
        | "validate"
        | "reIndex"
        | "dbHash"
        | "setFeatureCompatibilityVersion"
        | "setParameter"
        | "fsync"
        | "shutdown"
        | "currentOp"
        | "killOp"
        | "getLog"
        | "getDefaultRWConcern"
        | "setDefaultRWConcern"
        | "grantRolesToUser"
        | "revokeRolesFromUser"
        | "updateUser"
        | "createRole" => Err(CommandError::not_implemented(format!("the {name} command"))),
        _ => Err(CommandError::new(
            ErrorCode::CommandNotFound,
            format!("no such command: '{name}'"),
        )),
    }
}

/// The `ok: 0` body with labels computed as mongod's `error_labels.cpp` does.
fn error_reply(error: &CommandError, facts: &LabelFacts) -> Document {
    let mut reply = error.to_reply_body();
    let labels = match &error.labels_override {
        Some(labels) => labels.clone(),
        None => computed_labels(error.code, facts),
    };
    if !labels.is_empty() {
        reply.insert("errorLabels", labels);
    }
    reply
}

fn computed_labels(code: i32, facts: &LabelFacts) -> Vec<String> {
    if facts.in_transaction {
        return if error::is_retriable_code(code) || matches!(code, 112 | 251 | 24) {
            vec!["TransientTransactionError".to_string()]
        } else {
            Vec::new()
        };
    }
    if facts.has_txn_number && error::is_retriable_code(code) {
        return vec!["RetryableWriteError".to_string()];
    }
    if facts.change_stream {
        if error::is_resumable_change_stream_code(code) {
            return vec!["ResumableChangeStreamError".to_string()];
        }
        if error::is_non_resumable_change_stream_code(code) {
            return vec!["NonResumableChangeStreamError".to_string()];
        }
    }
    Vec::new()
}

/// Adds `ok`, `$clusterTime` (zero signature, as un-keyed replica sets send) and
/// `operationTime` to a reply.
fn decorate(server: &Server, mut reply: Document) -> Document {
    if !reply.contains_key("ok") {
        reply.insert("ok", 1.0);
    }
    let (cluster_time, operation_time) = {
        let store = server.store.read();
        (store.clock.now(), store.last_applied)
    };
    reply.insert(
        "$clusterTime",
        doc! {
            "clusterTime": cluster_time,
            "signature": {
                "hash": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 20] }),
                "keyId": 0i64,
            },
        },
    );
    reply.insert("operationTime", operation_time);
    reply
}

/// Rejects fields a command does not know (mongod's IDL is strict).
pub fn check_fields(command: &str, body: &Document, allowed: &[&str]) -> CmdResult<()> {
    for key in body.keys().skip(1) {
        if GENERIC_ARGS.contains(&key.as_str()) || allowed.contains(&key.as_str()) {
            continue;
        }
        return Err(CommandError::new(
            ErrorCode::IdlUnknownField,
            format!("BSON field '{command}.{key}' is an unknown field."),
        ));
    }
    Ok(())
}

/// The collection name a command targets (`{find: "coll"}`), validated as a string.
pub fn collection_arg(command: &str, body: &Document) -> CmdResult<String> {
    match body.get(command) {
        Some(Bson::String(name)) if !name.is_empty() => Ok(name.clone()),
        Some(Bson::String(_)) => Err(CommandError::new(
            ErrorCode::InvalidNamespace,
            "Invalid namespace specified",
        )),
        _ => Err(CommandError::new(
            ErrorCode::InvalidNamespace,
            format!(
                "collection name has invalid type {}",
                type_name(body.get(command))
            ),
        )),
    }
}

/// mongod's type names, as its error messages use them.
pub fn type_name(value: Option<&Bson>) -> &'static str {
    crate::query::expr::type_name(value)
}

/// A non-negative integer argument of any numeric type.
pub fn as_count(field: &str, value: &Bson) -> CmdResult<u64> {
    let number = match value {
        Bson::Int32(v) => i64::from(*v),
        Bson::Int64(v) => *v,
        Bson::Double(v) if v.fract() == 0.0 => *v as i64,
        _ => return Err(CommandError::type_mismatch(format!("BSON field '{field}' is the wrong type '{}', expected types '[long, int, decimal, double]'", type_name(Some(value))))),
    };
    if number < 0 {
        return Err(CommandError::bad_value(format!(
            "BSON field '{field}' value must be >= 0, actual value '{number}'"
        )));
    }
    Ok(number as u64)
}
