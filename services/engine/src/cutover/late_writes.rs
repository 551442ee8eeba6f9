//! Writes that reach the source after the commit point Tc are not on the destination.
//! With `sourceAndDestination` they can only come from a user that bypasses write
//! blocking; with `destinationOnly` or `none` the application was told to stop writing
//! before `/commit`. Either way c2c fails the commit loudly rather than lose them
//! silently (mongosync 1.17+ also fails the migration when it detects them).
//!
//! Two nets: the commit's drain reports a synced event after Tc that it read (see
//! `Applier::run_until`), and [`first_after`] re-reads the source's change stream from
//! Tc to "now" (after the drain and again before `Committed`), which also covers a
//! restart in the middle of the commit.

use std::time::Duration;

use bson::{Document, RawDocumentBuf, Timestamp};
use mongodb::Client;

use super::blocking::noop_time;
use crate::cea::event::{token_time, Event, EventKind};
use crate::error::{EngineError, Result, Side};
use crate::filter::NamespaceFilter;
use crate::namespace::{is_excluded_database, Namespace};
use crate::retry::retry;

/// The first synced change on `source` after `tc`, described, or `None`.
pub(crate) async fn first_after(
    source: &Client,
    filter: &NamespaceFilter,
    tc: Timestamp,
) -> Result<Option<String>> {
    let until = noop_time(source, Side::Source, "late-write check").await?;
    let found = retry("late-write check", || scan(source, filter, tc, until))
        .await
        .map_err(EngineError::source)?;
    Ok(found.map(|event| describe_raw(&event)))
}

async fn scan(
    source: &Client,
    filter: &NamespaceFilter,
    tc: Timestamp,
    until: Timestamp,
) -> Result<Option<Document>, mongodb::error::Error> {
    // Strictly after Tc: Tc itself is c2c's no-op.
    let after = Timestamp {
        time: tc.time,
        increment: tc.increment + 1,
    };
    let mut stream = source
        .watch()
        .show_expanded_events(true)
        .start_at_operation_time(after)
        .max_await_time(Duration::from_millis(200))
        .await?
        .with_type::<RawDocumentBuf>();
    loop {
        if let Some(raw) = stream.next_if_any().await? {
            let event = raw.to_document().unwrap_or_default();
            let time = event.get_timestamp("clusterTime").ok();
            if time.is_some_and(|time| time > until) {
                return Ok(None);
            }
            if is_synced(filter, &event) {
                return Ok(Some(event));
            }
        }
        let position = stream
            .resume_token()
            .and_then(|token| bson::to_document(&token).ok())
            .and_then(|token| token_time(&token));
        if position.is_some_and(|time| time >= until) {
            return Ok(None);
        }
    }
}

/// Whether a raw change event touches a synced namespace (as the reader decides).
fn is_synced(filter: &NamespaceFilter, event: &Document) -> bool {
    let namespace = |field: &str| {
        let ns = event.get_document(field).ok()?;
        Some((ns.get_str("db").ok()?, ns.get_str("coll").ok()))
    };
    let selected = |entry: Option<(&str, Option<&str>)>| match entry {
        Some((db, Some(coll))) => filter.matches(&Namespace::new(db, coll)),
        Some((db, None)) => !is_excluded_database(db),
        None => false,
    };
    selected(namespace("ns")) || selected(namespace("to"))
}

fn describe_raw(event: &Document) -> String {
    let operation = event.get_str("operationType").unwrap_or("change");
    let ns = event
        .get_document("ns")
        .map(|ns| {
            format!(
                "{}.{}",
                ns.get_str("db").unwrap_or_default(),
                ns.get_str("coll").unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let key = event
        .get_document("documentKey")
        .map(|key| format!(" {key}"))
        .unwrap_or_default();
    let time = event
        .get_timestamp("clusterTime")
        .map(|t| format!(" at {}.{}", t.time, t.increment))
        .unwrap_or_default();
    format!("{operation} on {ns}{key}{time}")
}

/// The same description for an event the drain read.
pub(crate) fn describe(event: &Event) -> String {
    let (operation, ns) = match &event.kind {
        EventKind::Insert { ns, .. } => ("insert", ns.to_string()),
        EventKind::Replace { ns, .. } => ("replace", ns.to_string()),
        EventKind::Update { ns, .. } => ("update", ns.to_string()),
        EventKind::Delete { ns, .. } => ("delete", ns.to_string()),
        EventKind::Create { ns, .. } => ("create", ns.to_string()),
        EventKind::Drop { ns } => ("drop", ns.to_string()),
        EventKind::Rename { from, .. } => ("rename", from.to_string()),
        EventKind::DropDatabase { db } => ("dropDatabase", db.clone()),
        EventKind::CreateIndexes { ns, .. } => ("createIndexes", ns.to_string()),
        EventKind::DropIndexes { ns, .. } => ("dropIndexes", ns.to_string()),
        EventKind::Modify { ns, .. } => ("modify", ns.to_string()),
        EventKind::HighWaterMark => ("mark", String::new()),
    };
    let key = event
        .kind
        .document_id()
        .map(|id| format!(" {{_id: {id}}}"))
        .unwrap_or_default();
    let time = event.cluster_time;
    format!(
        "{operation} on {ns}{key} at {}.{}",
        time.time, time.increment
    )
}
