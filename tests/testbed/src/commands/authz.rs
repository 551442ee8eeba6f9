//! Authorization: with auth on, every command but the handshake needs an authenticated
//! user holding the privilege mongod would check. Also the write-blocking gate.

use std::sync::atomic::Ordering;

use bson::{Bson, Document};

use crate::auth::actions::Action;
use crate::auth::roles::ClusterAction;
use crate::conn::ConnCtx;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::server::Server;
use crate::store::is_internal_db;

/// Commands mongod runs for unauthenticated clients.
fn allowed_unauthenticated(name: &str) -> bool {
    matches!(
        name,
        "hello"
            | "isMaster"
            | "ismaster"
            | "saslStart"
            | "saslContinue"
            | "ping"
            | "buildInfo"
            | "buildinfo"
            | "connectionStatus"
            | "logout"
            | "endSessions"
            | "whatsmyuri"
            | "getnonce"
    )
}

pub fn authorize(
    server: &Server,
    ctx: &ConnCtx,
    name: &str,
    db: &str,
    body: &Document,
) -> CmdResult<()> {
    if !server.auth_enabled() || allowed_unauthenticated(name) {
        return Ok(());
    }
    let Some(user) = &ctx.user else {
        return Err(CommandError::new(
            ErrorCode::Unauthorized,
            format!("Command {name} requires authentication"),
        ));
    };
    let privileges = &user.privileges;
    let coll = match body.get(name) {
        Some(Bson::String(coll)) => coll.as_str(),
        _ => "",
    };
    let allowed = match name {
        "find" | "count" | "distinct" => privileges.can_read(db, coll),
        "aggregate" => authorize_aggregate(ctx, db, coll, body),
        "getMore" | "killCursors" => true,
        "dbStats" => privileges.has_db_action(db, Action::DbStats),
        "collStats" => privileges.has_ns_action(db, coll, Action::CollStats),
        "insert" => privileges.has_ns_action(db, coll, Action::Insert),
        "update" => privileges.has_ns_action(db, coll, Action::Update),
        "delete" => privileges.has_ns_action(db, coll, Action::Remove),
        "findAndModify" | "findandmodify" => {
            privileges.has_ns_action(db, coll, Action::Update)
                || privileges.has_ns_action(db, coll, Action::Remove)
        }
        "listCollections" => privileges.has_db_action(db, Action::ListCollections),
        "listIndexes" => privileges.has_ns_action(db, coll, Action::ListIndexes),
        "renameCollection" => {
            let from = body.get_str("renameCollection").unwrap_or_default();
            let (from_db, from_coll) = from.split_once('.').unwrap_or((from, ""));
            privileges.has_ns_action(from_db, from_coll, Action::RenameCollectionSameDb)
        }
        "create" | "drop" | "createIndexes" | "dropIndexes" | "deleteIndexes" | "collMod"
        | "dropDatabase" => {
            let action = Action::for_ddl_command(if name == "deleteIndexes" {
                "dropIndexes"
            } else {
                name
            });
            match action {
                Some(Action::DropDatabase) => privileges.has_db_action(db, Action::DropDatabase),
                Some(action) => privileges.has_ns_action(db, coll, action),
                None => false,
            }
        }
        "createUser" => privileges.has_db_action(db, Action::CreateUser),
        "dropUser" => privileges.has_db_action(db, Action::DropUser),
        "usersInfo" => privileges.has_db_action(db, Action::ViewUser),
        _ => privileges.can_run_admin_command(name),
    };
    if allowed {
        Ok(())
    } else {
        Err(CommandError::new(
            ErrorCode::Unauthorized,
            format!("not authorized on {db} to execute command {{ {name}: ... }}"),
        ))
    }
}

fn authorize_aggregate(ctx: &ConnCtx, db: &str, coll: &str, body: &Document) -> bool {
    let Some(user) = &ctx.user else { return false };
    let privileges = &user.privileges;
    let change_stream = matches!(body.get("pipeline"), Some(Bson::Array(stages))
        if stages.first().and_then(Bson::as_document).is_some_and(|s| s.contains_key("$changeStream")));
    if change_stream && db == "admin" && coll.is_empty() {
        return privileges.has_cluster_action(ClusterAction::ChangeStreamAnyDb);
    }
    if change_stream {
        return privileges.can_read(db, coll)
            && privileges.has_ns_action(db, coll, Action::ChangeStream);
    }
    privileges.can_read(db, coll)
}

/// mongod's `checkUserWritesAllowed`: while blocked, user writes fail unless the
/// database is internal or the client may bypass. Without auth everyone may bypass.
pub fn check_writes_allowed(server: &Server, ctx: &ConnCtx, db: &str) -> CmdResult<()> {
    if !server.write_block.load(Ordering::SeqCst) || is_internal_db(db) || !server.auth_enabled() {
        return Ok(());
    }
    let bypass = ctx
        .user
        .as_ref()
        .is_some_and(|user| user.may_bypass_write_blocking());
    if bypass {
        return Ok(());
    }
    Err(CommandError::new(
        ErrorCode::UserWritesBlocked,
        "User writes blocked",
    ))
}
