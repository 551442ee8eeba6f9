//! One client connection: read a request, run it, write the reply (none for
//! `moreToCome` requests), until the client or a failpoint closes the socket.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bson::Bson;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::auth::scram::ScramServer;
use crate::commands::{self, Outcome};
use crate::server::Server;
use crate::wire::{self, Request};

/// What the server knows about one connection.
pub struct ConnCtx {
    pub id: i64,
    /// `client.application.name` from the handshake (failpoint `appName` filter).
    pub app_name: Option<String>,
    pub user: Option<crate::principal::AuthenticatedUser>,
    pub conversations: HashMap<i32, ScramServer>,
    pub next_conversation: i32,
}

pub async fn serve(server: Arc<Server>, stream: TcpStream, mut stop: watch::Receiver<bool>) {
    let id = server.connection_counter.fetch_add(1, Ordering::SeqCst) + 1;
    let mut ctx = ConnCtx {
        id,
        app_name: None,
        user: None,
        conversations: HashMap::new(),
        next_conversation: 1,
    };
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(256 * 1024, read_half);
    let mut reply_id: i32 = 1;
    loop {
        let request = tokio::select! {
            request = wire::read_request(&mut reader) => request,
            _ = stop.changed() => return,
        };
        let request = match request {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(connection = id, %error, "closing connection");
                return;
            }
        };
        let response_to = request.request_id();
        reply_id = reply_id.wrapping_add(1);
        match request {
            Request::Msg {
                body, more_to_come, ..
            } => {
                let outcome = commands::execute(&server, &mut ctx, body).await;
                match outcome {
                    Outcome::Close => return,
                    Outcome::Reply(reply) => {
                        if more_to_come {
                            continue;
                        }
                        let bytes = wire::encode_msg_reply(reply_id, response_to, &reply, false);
                        if wire::write_all(&mut write_half, &bytes).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Request::Query {
                full_collection_name,
                query,
                ..
            } => {
                let reply = legacy_query(&server, &mut ctx, &full_collection_name, query).await;
                match reply {
                    None => return,
                    Some(reply) => {
                        let bytes = wire::encode_op_reply(reply_id, response_to, &reply);
                        if wire::write_all(&mut write_half, &bytes).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Legacy OP_QUERY: only the handshake is allowed, as on mongod 6.0+.
async fn legacy_query(
    server: &Arc<Server>,
    ctx: &mut ConnCtx,
    namespace: &str,
    query: bson::Document,
) -> Option<bson::Document> {
    let command = query
        .keys()
        .next()
        .map(String::as_str)
        .unwrap_or_default()
        .to_string();
    let (db, coll) = namespace.split_once('.').unwrap_or((namespace, ""));
    let is_hello = coll == "$cmd" && matches!(command.as_str(), "hello" | "isMaster" | "ismaster");
    if !is_hello {
        let error = crate::error::CommandError::new(
            crate::error::ErrorCode::UnsupportedOpQueryCommand,
            format!("Unsupported OP_QUERY command: {command}. The client driver may require an upgrade."),
        );
        return Some(error.to_reply_body());
    }
    let mut body = query;
    // Legacy queries may wrap the command in `$query`.
    if let Some(Bson::Document(inner)) = body.get("$query") {
        body = inner.clone();
    }
    body.insert("$db", db);
    match commands::execute(server, ctx, body).await {
        Outcome::Reply(reply) => Some(reply),
        Outcome::Close => None,
    }
}
