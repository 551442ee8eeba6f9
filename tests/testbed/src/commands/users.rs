//! SASL authentication and user management commands.

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};

use crate::auth::scram::{ScramServer, ScramStep};
use crate::auth::users::{RoleRef, UserSpec, UserStore};
use crate::conn::ConnCtx;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::principal::AuthenticatedUser;
use crate::server::Server;

fn users(server: &Server) -> CmdResult<&UserStore> {
    server
        .users
        .as_deref()
        .ok_or_else(|| CommandError::new(ErrorCode::AuthenticationFailed, "Authentication failed."))
}

fn payload(body: &Document) -> CmdResult<Vec<u8>> {
    match body.get("payload") {
        Some(Bson::Binary(binary)) => Ok(binary.bytes.clone()),
        Some(Bson::String(text)) => Ok(text.as_bytes().to_vec()),
        _ => Err(CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'payload' is missing but a required field",
        )),
    }
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

pub fn sasl_start(
    server: &Server,
    ctx: &mut ConnCtx,
    db: &str,
    body: &Document,
) -> CmdResult<Document> {
    let store = users(server)?;
    let mechanism = body.get_str("mechanism").unwrap_or_default();
    let client_first = payload(body)?;
    let (mut conversation, server_first) = ScramServer::start(store, db, mechanism, &client_first)?;
    let skip_empty = body
        .get_document("options")
        .ok()
        .and_then(|o| o.get("skipEmptyExchange"))
        .is_some_and(|v| matches!(v, Bson::Boolean(true)));
    conversation.set_skip_empty_exchange(skip_empty);
    let id = ctx.next_conversation;
    ctx.next_conversation += 1;
    ctx.conversations.insert(id, conversation);
    Ok(doc! {"conversationId": id, "done": false, "payload": binary(server_first)})
}

pub fn sasl_continue(server: &Server, ctx: &mut ConnCtx, body: &Document) -> CmdResult<Document> {
    let store = users(server)?;
    let id = match body.get("conversationId") {
        Some(Bson::Int32(id)) => *id,
        Some(Bson::Int64(id)) => *id as i32,
        _ => {
            return Err(CommandError::new(
                ErrorCode::IdlFailedToParse,
                "BSON field 'saslContinue.conversationId' is missing but a required field",
            ))
        }
    };
    let message = payload(body)?;
    let Some(conversation) = ctx.conversations.get_mut(&id) else {
        return Err(CommandError::new(
            ErrorCode::Location(17),
            "No SASL session state found",
        ));
    };
    let step = conversation.step(&message);
    match step {
        Err(error) => {
            ctx.conversations.remove(&id);
            Err(error)
        }
        Ok(ScramStep::Continue(payload)) => {
            Ok(doc! {"conversationId": id, "done": false, "payload": binary(payload)})
        }
        Ok(ScramStep::Done { payload, user, db }) => {
            ctx.conversations.remove(&id);
            let roles = store
                .lookup(&user, &db)
                .map(|u| u.roles)
                .unwrap_or_default();
            ctx.user = Some(AuthenticatedUser::new(user, db, &roles));
            Ok(doc! {"conversationId": id, "done": true, "payload": binary(payload)})
        }
    }
}

fn parse_roles(db: &str, value: Option<&Bson>) -> CmdResult<Vec<RoleRef>> {
    let Some(Bson::Array(items)) = value else {
        return Err(CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'createUser.roles' is missing but a required field",
        ));
    };
    items
        .iter()
        .map(|item| match item {
            Bson::String(role) => Ok(RoleRef::new(role.clone(), db)),
            Bson::Document(role) => Ok(RoleRef::new(
                role.get_str("role")
                    .map_err(|_| CommandError::bad_value("role documents need 'role'"))?,
                role.get_str("db").unwrap_or(db),
            )),
            _ => Err(CommandError::bad_value(
                "roles must be strings or {role, db} documents",
            )),
        })
        .collect()
}

pub fn create_user(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    super::check_fields(
        "createUser",
        body,
        &[
            "pwd",
            "roles",
            "customData",
            "mechanisms",
            "digestPassword",
            "authenticationRestrictions",
        ],
    )?;
    let store = server.users.as_deref().ok_or_else(|| {
        CommandError::not_implemented("createUser on a testbed started without --auth")
    })?;
    let user = body
        .get_str("createUser")
        .map_err(|_| CommandError::type_mismatch("createUser must be a string"))?;
    let password = body.get_str("pwd").map_err(|_| CommandError::bad_value("Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db"))?;
    let roles = parse_roles(db, body.get("roles"))?;
    store.add(UserSpec {
        user: user.to_string(),
        db: db.to_string(),
        password: password.to_string(),
        roles,
    })?;
    Ok(Document::new())
}

pub fn drop_user(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    let store = users(server)?;
    let user = body
        .get_str("dropUser")
        .map_err(|_| CommandError::type_mismatch("dropUser must be a string"))?;
    store.remove(user, db)?;
    Ok(Document::new())
}

pub fn users_info(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    let store = users(server)?;
    let wanted: Option<String> = match body.get("usersInfo") {
        Some(Bson::String(name)) => Some(name.clone()),
        Some(Bson::Document(spec)) => spec.get_str("user").ok().map(str::to_string),
        _ => None,
    };
    let list: Vec<Bson> = store
        .list()
        .into_iter()
        .filter(|u| u.db == db && wanted.as_ref().is_none_or(|w| *w == u.user))
        .map(|u| {
            let roles: Vec<Bson> = u.roles.iter().map(|r| Bson::Document(doc! {"role": r.role.clone(), "db": r.db.clone()})).collect();
            Bson::Document(doc! {"_id": format!("{}.{}", u.db, u.user), "user": u.user.clone(), "db": u.db.clone(), "roles": roles, "mechanisms": u.mechanisms()})
        })
        .collect();
    Ok(doc! {"users": list})
}
