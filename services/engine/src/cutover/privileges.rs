//! The privileges write blocking needs, checked at `/start` with `connectionStatus
//! {showPrivileges: true}`: c2c must be able to set the block (`setUserWriteBlockMode`)
//! and to keep writing through it (`bypassWriteBlockingMode`), both on the cluster
//! resource. A cluster with auth off (no authenticated user) grants everything, so it is
//! skipped, as mongosync does.

use std::collections::BTreeSet;

use bson::{doc, Bson, Document};
use mongodb::Client;

use crate::error::{EngineError, Result, Side};
use crate::options::WriteBlocking;
use crate::retry::retry;

/// The cluster actions write blocking needs on a blocked cluster.
pub const WRITE_BLOCKING_ACTIONS: [&str; 2] = ["bypassWriteBlockingMode", "setUserWriteBlockMode"];

/// Which clusters c2c blocks under a `enableUserWriteBlocking` setting.
pub fn blocked_sides(blocking: WriteBlocking) -> &'static [Side] {
    match blocking {
        WriteBlocking::None => &[],
        WriteBlocking::DestinationOnly => &[Side::Destination],
        WriteBlocking::SourceAndDestination => &[Side::Source, Side::Destination],
    }
}

/// Fails with `Refused`, naming the cluster and the missing actions, when c2c's user on a
/// cluster it will block lacks them.
pub async fn check(source: &Client, destination: &Client, blocking: WriteBlocking) -> Result<()> {
    let mut problems = Vec::new();
    for side in blocked_sides(blocking) {
        let client = match side {
            Side::Source => source,
            Side::Destination => destination,
        };
        let Some(actions) = cluster_actions(client, *side).await? else {
            continue;
        };
        let missing: Vec<&str> = WRITE_BLOCKING_ACTIONS
            .iter()
            .copied()
            .filter(|action| !actions.contains(*action))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "on the {side} cluster c2c's user lacks {} on the cluster resource",
                missing.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(EngineError::Refused(format!(
        "write blocking cannot work: {} (grant them, e.g. with the root role or a custom role; or start with enableUserWriteBlocking: \"none\")",
        problems.join("; ")
    )))
}

/// The actions the connection's users hold on the cluster resource; `None` when nobody is
/// authenticated (auth off).
async fn cluster_actions(client: &Client, side: Side) -> Result<Option<BTreeSet<String>>> {
    let admin = client.database("admin");
    let command = doc! {"connectionStatus": 1, "showPrivileges": true};
    let reply = retry("connectionStatus", || admin.run_command(command.clone()))
        .await
        .map_err(|error| match side {
            Side::Source => EngineError::source(error),
            Side::Destination => EngineError::destination(error),
        })?;
    Ok(actions_from_reply(&reply))
}

fn actions_from_reply(reply: &Document) -> Option<BTreeSet<String>> {
    let info = reply.get_document("authInfo").ok()?;
    let users = info.get_array("authenticatedUsers").ok()?;
    if users.is_empty() {
        return None;
    }
    let privileges = info
        .get_array("authenticatedUserPrivileges")
        .cloned()
        .unwrap_or_default();
    let mut actions = BTreeSet::new();
    for privilege in privileges.iter().filter_map(Bson::as_document) {
        let on_cluster = privilege
            .get_document("resource")
            .is_ok_and(|resource| resource.get_bool("cluster") == Ok(true));
        if !on_cluster {
            continue;
        }
        if let Ok(list) = privilege.get_array("actions") {
            actions.extend(list.iter().filter_map(Bson::as_str).map(str::to_string));
        }
    }
    Some(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cluster_actions_and_treats_no_user_as_auth_off() {
        let reply = doc! {"authInfo": {
            "authenticatedUsers": [{"user": "c2c", "db": "admin"}],
            "authenticatedUserPrivileges": [
                {"resource": {"cluster": true}, "actions": ["bypassWriteBlockingMode", "find"]},
                {"resource": {"db": "", "collection": ""}, "actions": ["setUserWriteBlockMode"]},
            ],
        }};
        let actions = actions_from_reply(&reply).expect("authenticated");
        assert!(actions.contains("bypassWriteBlockingMode"));
        assert!(!actions.contains("setUserWriteBlockMode"));
        let anonymous =
            doc! {"authInfo": {"authenticatedUsers": [], "authenticatedUserPrivileges": []}};
        assert_eq!(actions_from_reply(&anonymous), None);
    }
}
