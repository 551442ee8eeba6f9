//! Writes with their consequences: every document write and DDL goes through here,
//! so the catalog, its indexes and the oplog never disagree, and every change gets
//! exactly one strictly increasing optime.

use std::sync::Arc;

use bson::{doc, oid::ObjectId, Bson, Document, Timestamp};

use crate::catalog::{validate_coll_name, validate_db_name, Body, Catalog, CollKind, Collection};
use crate::clock::ClusterClock;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::oplog::{Entry, Op, Oplog};

/// Largest document mongod stores.
pub const MAX_BSON_SIZE: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct Store {
    pub catalog: Catalog,
    pub oplog: Oplog,
    pub clock: ClusterClock,
    /// Optime of the last write (operationTime of reads).
    pub last_applied: Timestamp,
    /// Keep documents as BSON bytes (`TestbedConfig::compact_documents`).
    pub compact_documents: bool,
}

/// Databases a cluster change stream never shows and user writes never block.
pub fn is_internal_db(db: &str) -> bool {
    matches!(db, "admin" | "config" | "local")
}

impl Store {
    pub fn new(oplog_retention: Option<usize>) -> Store {
        let clock = ClusterClock::new();
        let last_applied = clock.now();
        let mut store = Store {
            catalog: Catalog::default(),
            oplog: Oplog::new(oplog_retention),
            clock,
            last_applied,
            compact_documents: false,
        };
        // Real replica-set members always have these; tools must filter them out.
        for (db, coll) in [
            ("admin", "system.version"),
            ("config", "system.sessions"),
            ("local", "startup_log"),
        ] {
            let mut collection = Collection::new(CollKind::Collection, Document::new());
            if db == "admin" {
                let version =
                    Arc::new(doc! {"_id": "featureCompatibilityVersion", "version": "7.0"});
                if let Ok(encoded) = crate::catalog::encode(&version) {
                    let body = Body::new(false, &version, encoded);
                    let _ = collection.insert("admin.system.version", &version, body);
                }
            }
            store
                .catalog
                .databases
                .entry(db.to_string())
                .or_default()
                .collections
                .insert(coll.to_string(), collection);
        }
        store
    }

    pub fn tick(&mut self) -> Timestamp {
        self.clock.tick()
    }

    /// Appends an entry at `ts` (which the caller got from `tick`).
    pub fn log(&mut self, ts: Timestamp, db: &str, coll: Option<&str>, op: Op) {
        let (uuid, images) = match coll.and_then(|c| self.catalog.collection(db, c)) {
            Some(collection) => (Some(collection.uuid), collection.pre_and_post_images()),
            None => (None, false),
        };
        self.log_with_uuid(ts, db, coll, uuid, images, op);
    }

    pub fn log_with_uuid(
        &mut self,
        ts: Timestamp,
        db: &str,
        coll: Option<&str>,
        uuid: Option<bson::Uuid>,
        images: bool,
        op: Op,
    ) {
        self.oplog.append(Entry {
            seq: 0,
            ts,
            wall: bson::DateTime::now(),
            db: db.to_string(),
            coll: coll.map(str::to_string),
            uuid,
            images,
            op,
        });
        self.last_applied = ts;
    }

    pub fn noop(&mut self) -> Timestamp {
        let ts = self.tick();
        self.log(ts, "admin", None, Op::Noop);
        ts
    }

    /// The collection for a write, creating it (with its `create` event) if missing.
    pub fn ensure_collection(&mut self, db: &str, coll: &str) -> CmdResult<()> {
        match self.catalog.collection(db, coll) {
            Some(collection) if collection.is_view() => {
                return Err(CommandError::new(
                    ErrorCode::CommandNotSupportedOnView,
                    format!("Namespace {db}.{coll} is a view, not a collection"),
                ))
            }
            Some(collection) if collection.is_timeseries() => {
                return Err(CommandError::not_implemented(format!(
                    "writes to the time-series collection {db}.{coll}"
                )))
            }
            Some(_) => return Ok(()),
            None => {}
        }
        self.create_collection(db, coll, CollKind::Collection, Document::new())
    }

    pub fn create_collection(
        &mut self,
        db: &str,
        coll: &str,
        kind: CollKind,
        options: Document,
    ) -> CmdResult<()> {
        validate_db_name(db)?;
        validate_coll_name(db, coll)?;
        let ns_type = match kind {
            CollKind::Collection => "collection",
            CollKind::View { .. } => "view",
            CollKind::Timeseries => "timeseries",
        };
        let mut description = options.clone();
        if let CollKind::Collection = kind {
            description.insert("idIndex", doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"});
        }
        let collection = Collection::new(kind.clone(), options);
        let uuid = collection.uuid;
        let database = self.catalog.databases.entry(db.to_string()).or_default();
        database.collections.insert(coll.to_string(), collection);
        if let CollKind::Timeseries = kind {
            // mongod backs a time-series collection with a buckets collection and a view.
            database
                .collections
                .entry(format!("system.buckets.{coll}"))
                .or_insert_with(|| Collection::new(CollKind::Collection, Document::new()));
            database
                .collections
                .entry("system.views".to_string())
                .or_insert_with(|| Collection::new(CollKind::Collection, Document::new()));
        }
        if let CollKind::View { .. } = kind {
            database
                .collections
                .entry("system.views".to_string())
                .or_insert_with(|| Collection::new(CollKind::Collection, Document::new()));
        }
        let ts = self.tick();
        let images = false;
        let uuid = if matches!(kind, CollKind::View { .. }) {
            None
        } else {
            Some(uuid)
        };
        self.log_with_uuid(
            ts,
            db,
            Some(coll),
            uuid,
            images,
            Op::Create {
                description,
                ns_type,
            },
        );
        Ok(())
    }

    /// Inserts one document, creating the collection if needed.
    pub fn insert(
        &mut self,
        db: &str,
        coll: &str,
        document: PreparedInsert,
    ) -> CmdResult<Arc<Document>> {
        self.ensure_collection(db, coll)?;
        let ts = self.tick();
        let (fixed, form) = document.finish(ts, self.compact_documents)?;
        let fixed = Arc::new(fixed);
        let ns = format!("{db}.{coll}");
        let collection = self
            .catalog
            .collection_mut(db, coll)
            .ok_or_else(missing(db, coll))?;
        let body = match form {
            Form::Encoded(encoded) => Body::Encoded(encoded),
            Form::Sized(size) => Body::Shared {
                document: fixed.clone(),
                size,
            },
        };
        collection.insert(&ns, &fixed, body)?;
        self.log(
            ts,
            db,
            Some(coll),
            Op::Insert {
                document: fixed.clone(),
            },
        );
        Ok(fixed)
    }

    /// Writes `post` (the new document and its BSON) over the document with the same
    /// `_id` and logs an update or replace.
    pub fn update(
        &mut self,
        db: &str,
        coll: &str,
        pre: Arc<Document>,
        (post, encoded): (Arc<Document>, Box<[u8]>),
        kind: &'static str,
        description: Document,
    ) -> CmdResult<Timestamp> {
        let ns = format!("{db}.{coll}");
        let collection = self
            .catalog
            .collection_mut(db, coll)
            .ok_or_else(missing(db, coll))?;
        let body = Body::new(self.compact_documents, &post, encoded);
        collection.replace(&ns, &post, body)?;
        let ts = self.tick();
        let id = post.get("_id").cloned().unwrap_or(Bson::Null);
        self.log(
            ts,
            db,
            Some(coll),
            Op::Update {
                id,
                kind,
                description,
                pre,
                post,
            },
        );
        Ok(ts)
    }

    pub fn delete(&mut self, db: &str, coll: &str, id: &Bson) -> CmdResult<Option<Arc<Document>>> {
        let collection = self
            .catalog
            .collection_mut(db, coll)
            .ok_or_else(missing(db, coll))?;
        let Some(pre) = collection.delete(id) else {
            return Ok(None);
        };
        let ts = self.tick();
        self.log(
            ts,
            db,
            Some(coll),
            Op::Delete {
                id: id.clone(),
                pre: pre.clone(),
            },
        );
        Ok(Some(pre))
    }

    /// Drops a collection or view; returns the number of indexes it had.
    pub fn drop_collection(&mut self, db: &str, coll: &str) -> Option<usize> {
        let database = self.catalog.databases.get_mut(db)?;
        let removed = database.collections.remove(coll)?;
        if removed.is_timeseries() {
            database
                .collections
                .remove(&format!("system.buckets.{coll}"));
        }
        let ts = self.tick();
        let uuid = if removed.is_view() {
            None
        } else {
            Some(removed.uuid)
        };
        self.log_with_uuid(ts, db, Some(coll), uuid, false, Op::Drop);
        Some(removed.indexes.len())
    }

    /// Drops every collection (a `drop` each) and then the database.
    pub fn drop_database(&mut self, db: &str) {
        let names: Vec<String> = match self.catalog.databases.get(db) {
            Some(database) => database.collections.keys().cloned().collect(),
            None => return,
        };
        for name in names {
            if name.starts_with("system.") {
                if let Some(database) = self.catalog.databases.get_mut(db) {
                    database.collections.remove(&name);
                }
                continue;
            }
            self.drop_collection(db, &name);
        }
        self.catalog.databases.remove(db);
        let ts = self.tick();
        self.log_with_uuid(ts, db, None, None, false, Op::DropDatabase);
    }

    /// Same-database rename (cross-database renames are refused by the command layer).
    pub fn rename(&mut self, db: &str, from: &str, to: &str, drop_target: bool) -> CmdResult<()> {
        validate_coll_name(db, to)?;
        let database = self
            .catalog
            .databases
            .get_mut(db)
            .ok_or_else(missing(db, from))?;
        if !database.collections.contains_key(from) {
            return Err(missing(db, from)());
        }
        let mut dropped_uuid = None;
        if let Some(existing) = database.collections.get(to) {
            if !drop_target {
                return Err(CommandError::new(
                    ErrorCode::NamespaceExists,
                    "target namespace exists",
                ));
            }
            dropped_uuid = Some(existing.uuid);
            database.collections.remove(to);
        }
        let Some(collection) = database.collections.remove(from) else {
            return Err(missing(db, from)());
        };
        let uuid = collection.uuid;
        database.collections.insert(to.to_string(), collection);
        let ts = self.tick();
        self.log_with_uuid(
            ts,
            db,
            Some(from),
            Some(uuid),
            false,
            Op::Rename {
                to_db: db.to_string(),
                to_coll: to.to_string(),
                drop_target: dropped_uuid,
            },
        );
        Ok(())
    }

    /// Lists (db, coll, Collection) for `listDatabases`-style scans.
    pub fn data_size_of(&self, db: &str) -> u64 {
        self.catalog
            .databases
            .get(db)
            .map(|database| database.collections.values().map(|c| c.data_size).sum())
            .unwrap_or(0)
    }
}

pub fn missing<'a>(db: &'a str, coll: &'a str) -> impl Fn() -> CommandError + 'a {
    move || {
        CommandError::new(
            ErrorCode::NamespaceNotFound,
            format!("ns not found: {db}.{coll}"),
        )
    }
}

/// A document made ready for insert as mongod's `fixDocumentForInsert` does (`_id`
/// first, generated if missing; empty top-level timestamps set to the insert's optime)
/// and checked against the size limit. Insert commands prepare their documents before
/// they take the store's write lock, which every other command waits for.
#[derive(Debug)]
pub struct PreparedInsert {
    document: Document,
    /// None while empty timestamps wait for the optime.
    form: Option<Form>,
}

/// What a store keeps beside the decoded document (`Body`): its BSON when compact, its
/// size otherwise (encoded into a reused buffer, so nothing is allocated for it).
#[derive(Debug)]
enum Form {
    Encoded(Box<[u8]>),
    Sized(usize),
}

impl PreparedInsert {
    /// `compact`: the store keeps documents as BSON (`Store::compact_documents`).
    pub fn new(
        document: Document,
        bypass_empty_ts: bool,
        compact: bool,
    ) -> CmdResult<PreparedInsert> {
        if let Some(id) = document.get("_id") {
            let kind = match id {
                Bson::Array(_) => Some("an array"),
                Bson::RegularExpression(_) => Some("a regex"),
                Bson::Undefined => Some("a undefined"),
                _ => None,
            };
            if let Some(kind) = kind {
                return Err(CommandError::new(
                    ErrorCode::InvalidIdField,
                    format!("can't use {kind} for _id"),
                ));
            }
        }
        // Drivers put `_id` first: such a document is stored as it came.
        let document = if document.keys().next().is_some_and(|key| key == "_id") {
            document
        } else {
            let mut document = document;
            let id = document
                .remove("_id")
                .unwrap_or_else(|| Bson::ObjectId(ObjectId::new()));
            let mut fixed = Document::new();
            fixed.insert("_id", id);
            fixed.extend(document);
            fixed
        };
        let waits_for_ts = !bypass_empty_ts
            && document
                .iter()
                .any(|(key, value)| key != "_id" && is_empty_ts(value));
        let form = if waits_for_ts {
            None
        } else {
            Some(form_for_insert(&document, compact)?)
        };
        Ok(PreparedInsert { document, form })
    }

    /// The document and what to keep beside it, once the insert has its optime `ts`.
    fn finish(self, ts: Timestamp, compact: bool) -> CmdResult<(Document, Form)> {
        match self.form {
            Some(form) => Ok((self.document, form)),
            None => {
                let mut document = self.document;
                for (key, value) in document.iter_mut() {
                    if key != "_id" && is_empty_ts(value) {
                        *value = Bson::Timestamp(ts);
                    }
                }
                let form = form_for_insert(&document, compact)?;
                Ok((document, form))
            }
        }
    }
}

fn is_empty_ts(value: &Bson) -> bool {
    matches!(value, Bson::Timestamp(t) if t.time == 0 && t.increment == 0)
}

fn form_for_insert(document: &Document, compact: bool) -> CmdResult<Form> {
    let form = if compact {
        Form::Encoded(crate::catalog::encode(document)?)
    } else {
        Form::Sized(crate::catalog::encoded_size(document)?)
    };
    let size = match &form {
        Form::Encoded(encoded) => encoded.len(),
        Form::Sized(size) => *size,
    };
    if size > MAX_BSON_SIZE {
        return Err(CommandError::new(
            ErrorCode::BadValue,
            format!("object to insert too large. size in bytes: {size}, max size: {MAX_BSON_SIZE}"),
        ));
    }
    Ok(form)
}
