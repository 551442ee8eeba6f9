//! Applying DDL change events to the destination. The applier calls this only with all
//! lanes drained, so a DDL event never races a CRUD write of the same collection.
//!
//! Every operation tolerates having been applied already (create of an existing
//! collection, drop of a missing one, …): after a restart the events since the last
//! checkpoint are applied again.

use std::collections::HashMap;

use bson::{doc, Bson, Document};
use mongodb::error::{Error, ErrorKind};
use mongodb::Client;

use super::event::EventKind;
use crate::error::{EngineError, Result};
use crate::filter::NamespaceFilter;
use crate::indexes::{build_indexes, create_namespace, destination_index_specs};
use crate::metadata::{Metadata, NamespaceKind, NamespaceRecord};
use crate::namespace::Namespace;
use crate::options::BuildIndexes;
use crate::retry::retry;

const NAMESPACE_NOT_FOUND: i32 = 26;
const INDEX_NOT_FOUND: i32 = 27;

/// collMod options applied to the destination as they are. Index changes (hidden, TTL,
/// unique) are not among them: destination indexes stay relaxed during sync and the
/// source's form is restored at commit from the namespace record.
const APPLIED_COLLMOD_OPTIONS: [&str; 6] = [
    "validator",
    "validationLevel",
    "validationAction",
    "viewOn",
    "pipeline",
    "changeStreamPreAndPostImages",
];

pub struct DdlTarget<'a> {
    pub destination: &'a Client,
    pub filter: &'a NamespaceFilter,
    pub metadata: &'a Metadata,
    pub build_indexes: BuildIndexes,
    /// Namespace records by namespace, loaded once and kept in step with `metadata`.
    pub records: &'a mut HashMap<Namespace, NamespaceRecord>,
}

fn code(error: &Error) -> Option<i32> {
    match &*error.kind {
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

/// Runs a destination command, treating the listed error codes as "already done".
async fn command(
    destination: &Client,
    db: &str,
    what: &str,
    body: Document,
    already_done: &[i32],
) -> Result<()> {
    let database = destination.database(db);
    match retry(what, || database.run_command(body.clone())).await {
        Ok(_) => Ok(()),
        Err(error) if code(&error).is_some_and(|c| already_done.contains(&c)) => Ok(()),
        Err(error) => Err(EngineError::destination(error)),
    }
}

async fn collection_names(destination: &Client, db: &str) -> Result<Vec<String>> {
    let database = destination.database(db);
    let body = doc! {"listCollections": 1, "nameOnly": true};
    let reply = retry("listCollections", || database.run_command(body.clone()))
        .await
        .map_err(EngineError::destination)?;
    let batch = reply
        .get_document("cursor")
        .and_then(|cursor| cursor.get_array("firstBatch"))
        .cloned()
        .unwrap_or_default();
    Ok(batch
        .iter()
        .filter_map(|entry| {
            entry
                .as_document()?
                .get_str("name")
                .ok()
                .map(str::to_string)
        })
        .collect())
}

impl DdlTarget<'_> {
    pub async fn apply(&mut self, kind: &EventKind) -> Result<()> {
        match kind {
            EventKind::Create { ns, options } => self.create(ns, options).await,
            EventKind::Drop { ns } => self.drop(ns).await,
            EventKind::Rename {
                from,
                to,
                drop_target,
            } => self.rename(from, to, *drop_target).await,
            EventKind::DropDatabase { db } => self.drop_database(db).await,
            EventKind::CreateIndexes { ns, indexes } => self.create_indexes(ns, indexes).await,
            EventKind::DropIndexes { ns, indexes } => self.drop_indexes(ns, indexes).await,
            EventKind::Modify { ns, description } => self.modify(ns, description).await,
            _ => Ok(()),
        }
    }

    async fn save(&mut self, record: NamespaceRecord) -> Result<()> {
        self.metadata.save_namespace(&record).await?;
        self.records.insert(record.ns.clone(), record);
        Ok(())
    }

    async fn forget(&mut self, ns: &Namespace) -> Result<()> {
        self.metadata.delete_namespace(ns).await?;
        self.records.remove(ns);
        Ok(())
    }

    fn record(&self, ns: &Namespace) -> NamespaceRecord {
        self.records
            .get(ns)
            .cloned()
            .unwrap_or_else(|| NamespaceRecord {
                ns: ns.clone(),
                kind: NamespaceKind::Collection,
                options: Document::new(),
                source_indexes: Vec::new(),
                destination_indexes: Vec::new(),
                estimated_bytes: 0,
                estimated_documents: 0,
            })
    }

    async fn create(&mut self, ns: &Namespace, options: &Document) -> Result<()> {
        if options.contains_key("timeseries") {
            return Err(EngineError::Unsupported(format!(
                "{ns} was created on the source as a time-series collection"
            )));
        }
        let mut options = options.clone();
        let id_index = options.remove("idIndex");
        let kind = if options.contains_key("viewOn") {
            NamespaceKind::View
        } else {
            NamespaceKind::Collection
        };
        // Already there: created by the copy phase (possibly from a newer state than
        // this event, which later modify events or the copy itself account for) or by
        // an earlier run of this event.
        if collection_names(self.destination, &ns.db)
            .await?
            .contains(&ns.coll)
        {
            if !self.records.contains_key(ns) {
                let record = NamespaceRecord {
                    kind,
                    options,
                    ..self.record(ns)
                };
                self.save(record).await?;
            }
            return Ok(());
        }
        let source_indexes = match id_index {
            Some(Bson::Document(spec)) => vec![spec],
            _ => Vec::new(),
        };
        let record = NamespaceRecord {
            kind,
            options,
            source_indexes,
            destination_indexes: Vec::new(),
            ..self.record(ns)
        };
        create_namespace(self.destination, &record).await?;
        self.save(record).await
    }

    async fn drop(&mut self, ns: &Namespace) -> Result<()> {
        let body = doc! {"drop": ns.coll.as_str(), "writeConcern": {"w": "majority"}};
        command(
            self.destination,
            &ns.db,
            "drop",
            body,
            &[NAMESPACE_NOT_FOUND],
        )
        .await?;
        self.forget(ns).await
    }

    /// mongosync's rules: a rename within the filter is applied; out of the filter is an
    /// error that stops the sync; across databases only into a wholly included database.
    ///
    /// A rename *into* the filter from a name it excludes is refused as mongosync does
    /// (within a database both names must be included). Across databases MongoDB never
    /// logs one rename: it copies into a temporary collection of the target database and
    /// renames that within it (SERVER-62556), so with the whole target database included
    /// those events all match and are applied like any other.
    async fn rename(&mut self, from: &Namespace, to: &Namespace, drop_target: bool) -> Result<()> {
        match (self.filter.matches(from), self.filter.matches(to)) {
            (true, false) => {
                return Err(EngineError::Fatal(format!(
                    "{from} was renamed to {to}, which the namespace filter does not include; \
                     the destination cannot follow (mongosync stops here too)"
                )))
            }
            (false, true) => {
                return Err(EngineError::Fatal(format!(
                    "{from} was renamed to {to}, but the namespace filter includes only the new name; \
                     a rename is synced only when the filter includes both names or the whole database \
                     (mongosync's rule), since the destination never had {from}'s documents"
                )))
            }
            (false, false) => return Ok(()),
            (true, true) => {}
        }
        if from.db != to.db && !self.filter.includes_whole_database(&to.db) {
            return Err(EngineError::Fatal(format!(
                "{from} was renamed to {to} in another database; that is only supported when the filter \
                 includes the whole database {}",
                to.db
            )));
        }
        if !drop_target
            && collection_names(self.destination, &to.db)
                .await?
                .contains(&to.coll)
        {
            // On the source `to` did not exist when this rename ran, and the destination
            // has not applied anything after it: so its `to` was copied from a later state,
            // after the rename — it already is the renamed collection. A `from` there is a
            // newer collection of that name (created again before the copy), whose own
            // events follow. Renaming over it would fail (NamespaceExists) or mix the two.
            //
            // Or this very rename was applied before a restart: then `from` is gone and
            // its record may not have moved yet.
            let from_gone = !collection_names(self.destination, &from.db)
                .await?
                .contains(&from.coll);
            if from_gone && !self.records.contains_key(to) {
                if let Some(mut record) = self.records.get(from).cloned() {
                    record.ns = to.clone();
                    self.save(record).await?;
                    self.forget(from).await?;
                }
            }
            tracing::info!(%from, %to, "rename already reflected on the destination; skipped");
            return Ok(());
        }
        let body = doc! {
            "renameCollection": from.to_string(), "to": to.to_string(), "dropTarget": drop_target,
            "writeConcern": {"w": "majority"},
        };
        // NamespaceNotFound: `from` is gone, i.e. this rename was applied before a restart.
        command(
            self.destination,
            "admin",
            "renameCollection",
            body,
            &[NAMESPACE_NOT_FOUND],
        )
        .await?;
        if let Some(mut record) = self.records.get(from).cloned() {
            record.ns = to.clone();
            self.save(record).await?;
        } else if drop_target {
            self.forget(to).await?;
        }
        self.forget(from).await
    }

    /// Drops the destination's synced collections of `db` (the stream already sent one
    /// `drop` per collection before this; anything left is removed here).
    async fn drop_database(&mut self, db: &str) -> Result<()> {
        for coll in collection_names(self.destination, db).await? {
            let ns = Namespace::new(db, coll);
            if self.filter.matches(&ns) {
                self.drop(&ns).await?;
            }
        }
        let recorded: Vec<Namespace> = self
            .records
            .keys()
            .filter(|ns| ns.db == db)
            .cloned()
            .collect();
        for ns in recorded {
            self.forget(&ns).await?;
        }
        Ok(())
    }

    async fn create_indexes(&mut self, ns: &Namespace, indexes: &[Document]) -> Result<()> {
        let mut record = self.record(ns);
        for spec in indexes {
            let name = spec.get_str("name").ok();
            record
                .source_indexes
                .retain(|existing| existing.get_str("name").ok() != name);
            record.source_indexes.push(spec.clone());
        }
        record.destination_indexes =
            destination_index_specs(&record.source_indexes, self.build_indexes);
        build_indexes(self.destination, &record).await?;
        self.save(record).await
    }

    async fn drop_indexes(&mut self, ns: &Namespace, indexes: &[Document]) -> Result<()> {
        let mut record = self.record(ns);
        for spec in indexes {
            let Ok(name) = spec.get_str("name") else {
                continue;
            };
            let body = doc! {"dropIndexes": ns.coll.as_str(), "index": name, "writeConcern": {"w": "majority"}};
            command(
                self.destination,
                &ns.db,
                "dropIndexes",
                body,
                &[NAMESPACE_NOT_FOUND, INDEX_NOT_FOUND],
            )
            .await?;
            record
                .source_indexes
                .retain(|existing| existing.get_str("name") != Ok(name));
            record
                .destination_indexes
                .retain(|existing| existing.get_str("name") != Ok(name));
        }
        self.save(record).await
    }

    async fn modify(&mut self, ns: &Namespace, description: &Document) -> Result<()> {
        let mut record = self.record(ns);
        let mut applied = doc! {"collMod": ns.coll.as_str()};
        for (key, value) in description {
            match key.as_str() {
                "index" => {
                    if let Bson::Document(change) = value {
                        record_index_change(&mut record, change);
                    }
                }
                "collMod" | "writeConcern" | "$db" | "lsid" => {}
                other => {
                    record.options.insert(other, value.clone());
                    if APPLIED_COLLMOD_OPTIONS.contains(&other) {
                        applied.insert(other, value.clone());
                    }
                }
            }
        }
        if applied.len() > 1 {
            applied.insert("writeConcern", doc! {"w": "majority"});
            command(self.destination, &ns.db, "collMod", applied, &[]).await?;
        }
        self.save(record).await
    }
}

/// Records a collMod index change (`hidden`, `expireAfterSeconds`, `prepareUnique`,
/// `unique`) on the source spec, for the commit step; destination indexes keep their
/// relaxed form.
fn record_index_change(record: &mut NamespaceRecord, change: &Document) {
    let by_name = change.get_str("name").ok();
    let by_key = change.get_document("keyPattern").ok();
    let Some(spec) = record.source_indexes.iter_mut().find(|spec| {
        by_name.is_some_and(|name| spec.get_str("name") == Ok(name))
            || by_key.is_some_and(|key| spec.get_document("key") == Ok(key))
    }) else {
        tracing::warn!(ns = %record.ns, ?change, "collMod of an index c2c has no record of");
        return;
    };
    for (key, value) in change {
        match (key.as_str(), value) {
            ("name" | "keyPattern", _) => {}
            // mongod lists hidden/prepareUnique/unique only when true.
            ("hidden" | "prepareUnique" | "unique", Bson::Boolean(false)) => {
                spec.remove(key);
            }
            _ => {
                spec.insert(key.clone(), value.clone());
            }
        }
    }
}
