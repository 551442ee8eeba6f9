//! hello / isMaster as a replica-set primary (reference §2.1, §2.2), including the
//! awaitable form the drivers' streaming monitors use.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, oid::ObjectId, Bson, Document};

use crate::auth::scram::parse_sasl_supported_mechs;
use crate::conn::ConnCtx;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::server::Server;

pub async fn hello(
    server: &Arc<Server>,
    ctx: &mut ConnCtx,
    name: &str,
    body: &Document,
) -> CmdResult<Document> {
    if let Some(Bson::Document(client)) = body.get("client") {
        if let Ok(application) = client.get_document("application") {
            ctx.app_name = application.get_str("name").ok().map(str::to_string);
        }
    }
    if matches!(body.get("loadBalanced"), Some(Bson::Boolean(true))) {
        return Err(CommandError::bad_value(
            "the testbed is a replica set, not behind a load balancer",
        ));
    }
    wait_if_awaitable(server, body).await?;
    Ok(reply(server, ctx, name, body))
}

/// Awaitable hello: with `topologyVersion` + `maxAwaitTimeMS`, answer at once if the
/// process differs, otherwise wait until the counter moves or the time passes.
async fn wait_if_awaitable(server: &Arc<Server>, body: &Document) -> CmdResult<()> {
    let topology = body.get("topologyVersion");
    let max_await = body.get("maxAwaitTimeMS");
    match (topology, max_await) {
        (None, None) => Ok(()),
        (Some(_), None) | (None, Some(_)) => Err(CommandError::new(
            ErrorCode::Location(31368),
            "A request to wait for changes in the topology must carry both topologyVersion and maxAwaitTimeMS",
        )),
        (Some(Bson::Document(version)), Some(wait)) => {
            let wait_ms = match wait {
                Bson::Int32(v) => i64::from(*v),
                Bson::Int64(v) => *v,
                Bson::Double(v) => *v as i64,
                _ => return Err(CommandError::type_mismatch("maxAwaitTimeMS must be a number")),
            };
            if wait_ms < 0 {
                return Err(CommandError::bad_value("maxAwaitTimeMS must be a non-negative integer"));
            }
            let same_process = matches!(version.get("processId"), Some(Bson::ObjectId(id)) if *id == server.process_id);
            let counter = match version.get("counter") {
                Some(Bson::Int64(v)) => *v,
                Some(Bson::Int32(v)) => i64::from(*v),
                _ => -1,
            };
            if !same_process || counter < server.topology_counter.load(Ordering::SeqCst) {
                return Ok(());
            }
            let mut changes = server.topology_changed.subscribe();
            let _ = tokio::time::timeout(Duration::from_millis(wait_ms as u64), async {
                while changes.changed().await.is_ok() {
                    if *changes.borrow() > counter {
                        return;
                    }
                }
                // The server is shutting down: keep the client waiting the full time.
                std::future::pending::<()>().await
            })
            .await;
            Ok(())
        }
        _ => Err(CommandError::type_mismatch("topologyVersion must be an object")),
    }
}

fn reply(server: &Server, ctx: &ConnCtx, name: &str, body: &Document) -> Document {
    let (last_write, version) = {
        let store = server.store.read();
        (store.last_applied, server.config.wire_version)
    };
    let last_write_date = bson::DateTime::from_millis(i64::from(last_write.time) * 1000);
    let op_time = doc! {"ts": last_write, "t": 1i64};
    let mut reply = Document::new();
    if body.contains_key("helloOk") && name != "hello" {
        reply.insert("helloOk", true);
    }
    if name == "hello" {
        reply.insert("isWritablePrimary", true);
    } else {
        reply.insert("ismaster", true);
    }
    reply.insert(
        "topologyVersion",
        doc! {"processId": server.process_id, "counter": server.topology_counter.load(Ordering::SeqCst)},
    );
    reply.insert("hosts", vec![server.host.clone()]);
    reply.insert("setName", server.config.repl_set.clone());
    reply.insert("setVersion", 1);
    reply.insert("secondary", false);
    reply.insert("primary", server.host.clone());
    reply.insert("me", server.host.clone());
    reply.insert(
        "electionId",
        ObjectId::from_bytes([0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1]),
    );
    reply.insert(
        "lastWrite",
        doc! {
            "opTime": op_time.clone(),
            "lastWriteDate": last_write_date,
            "majorityOpTime": op_time,
            "majorityWriteDate": last_write_date,
        },
    );
    reply.insert("maxBsonObjectSize", 16_777_216);
    reply.insert("maxMessageSizeBytes", crate::wire::MAX_MESSAGE_SIZE as i32);
    reply.insert("maxWriteBatchSize", 100_000);
    reply.insert("localTime", bson::DateTime::now());
    reply.insert("logicalSessionTimeoutMinutes", 30);
    reply.insert("connectionId", ctx.id);
    reply.insert("minWireVersion", 0);
    reply.insert("maxWireVersion", version.number());
    reply.insert("readOnly", false);
    if let (Some(users), Some(Bson::String(who))) = (&server.users, body.get("saslSupportedMechs"))
    {
        if let Some(mechanisms) = parse_sasl_supported_mechs(users, who) {
            reply.insert("saslSupportedMechs", mechanisms);
        }
    }
    reply
}
