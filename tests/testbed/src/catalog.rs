//! The in-memory catalog: databases, collections (UUID, options, kind), their
//! documents keyed by `_id` in canonical BSON order, natural (insertion) order, and
//! their indexes. This layer keeps indexes consistent with documents; the oplog and
//! the command semantics live above it (`store.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bson::{doc, Bson, Document};

use crate::bson_cmp::{Key, KeyTuple};
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::index::Index;

#[derive(Debug, Clone)]
pub enum CollKind {
    Collection,
    View {
        view_on: String,
        pipeline: Vec<Bson>,
    },
    Timeseries,
}

/// A stored document, and the record id that gives its natural order.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record_id: u64,
    body: Body,
}

/// How a testbed keeps its documents (`TestbedConfig::compact_documents`).
#[derive(Debug, Clone)]
pub enum Body {
    /// Decoded and shared with the oplog: reads and writes cost no encoding or decoding.
    Shared {
        document: Arc<Document>,
        size: usize,
    },
    /// BSON bytes, decoded per read: a decoded `Document` of a few small fields takes
    /// three times its BSON size, which caps the datasets a testbed can hold (the
    /// verifier benchmark needs millions of documents per side).
    Encoded(Box<[u8]>),
}

impl Body {
    /// How a store keeps `document`, whose BSON is `encoded`.
    pub fn new(compact: bool, document: &Arc<Document>, encoded: Box<[u8]>) -> Body {
        if compact {
            Body::Encoded(encoded)
        } else {
            Body::Shared {
                document: document.clone(),
                size: encoded.len(),
            }
        }
    }
}

impl Stored {
    /// BSON size of the document.
    pub fn size(&self) -> usize {
        match &self.body {
            Body::Shared { size, .. } => *size,
            Body::Encoded(bytes) => bytes.len(),
        }
    }

    pub fn document(&self) -> Arc<Document> {
        match &self.body {
            Body::Shared { document, .. } => document.clone(),
            Body::Encoded(bytes) => Arc::new(decode(bytes)),
        }
    }

    /// An owned copy of the document.
    pub fn decode(&self) -> Document {
        match &self.body {
            Body::Shared { document, .. } => (**document).clone(),
            Body::Encoded(bytes) => decode(bytes),
        }
    }

    /// The document's BSON when it is kept encoded.
    pub fn encoded(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Shared { .. } => None,
            Body::Encoded(bytes) => Some(bytes),
        }
    }

    /// Runs `f` on the document without copying it when it is kept decoded.
    pub fn with_document<T>(&self, f: impl FnOnce(&Document) -> T) -> T {
        match &self.body {
            Body::Shared { document, .. } => f(document),
            Body::Encoded(bytes) => f(&decode(bytes)),
        }
    }

    /// Whether the document's BSON is exactly `encoded`.
    pub fn has_bytes(&self, encoded: &[u8]) -> bool {
        match &self.body {
            Body::Shared { document, .. } => {
                with_encoded(document, |bytes| bytes == encoded).unwrap_or(false)
            }
            Body::Encoded(bytes) => &bytes[..] == encoded,
        }
    }
}

fn decode(bytes: &[u8]) -> Document {
    // The raw conversion is a fifth faster than the serde path of `from_reader`.
    bson::RawDocument::from_bytes(bytes)
        .and_then(Document::try_from)
        .expect("stored documents are valid BSON")
}

#[derive(Debug, Clone)]
pub struct Collection {
    pub uuid: bson::Uuid,
    pub kind: CollKind,
    /// Options as listCollections shows them (normalised create options).
    pub options: Document,
    pub docs: BTreeMap<Key, Stored>,
    /// Natural order: record id → `_id`. Updates keep the record id, as WiredTiger does.
    pub natural: BTreeMap<u64, Key>,
    /// `indexes[0]` is `_id_`; its uniqueness is the `docs` map itself.
    pub indexes: Vec<Index>,
    next_record: u64,
    pub data_size: u64,
}

impl Collection {
    pub fn new(kind: CollKind, options: Document) -> Collection {
        let indexes = match kind {
            CollKind::Collection => vec![Index::id_index()],
            _ => Vec::new(),
        };
        Collection {
            uuid: bson::Uuid::new(),
            kind,
            options,
            docs: BTreeMap::new(),
            natural: BTreeMap::new(),
            indexes,
            next_record: 1,
            data_size: 0,
        }
    }

    pub fn is_view(&self) -> bool {
        matches!(self.kind, CollKind::View { .. })
    }

    pub fn is_timeseries(&self) -> bool {
        matches!(self.kind, CollKind::Timeseries)
    }

    pub fn pre_and_post_images(&self) -> bool {
        matches!(
            self.options
                .get_document("changeStreamPreAndPostImages")
                .ok()
                .and_then(|d| d.get("enabled")),
            Some(Bson::Boolean(true))
        )
    }

    pub fn get(&self, id: &Bson) -> Option<Arc<Document>> {
        self.docs.get(&Key(id.clone())).map(Stored::document)
    }

    pub fn find_index(&self, name: &str) -> Option<usize> {
        self.indexes.iter().position(|index| index.name == name)
    }

    /// Checks every unique index for `doc` (ignoring the document with `self_id`), returning
    /// the keys per index for the caller to insert.
    fn check_unique(
        &self,
        ns: &str,
        document: &Document,
        self_id: Option<&Key>,
    ) -> CmdResult<Vec<Vec<KeyTuple>>> {
        let mut all_keys = Vec::with_capacity(self.indexes.len());
        for index in &self.indexes {
            if index.is_id() {
                all_keys.push(Vec::new());
                continue;
            }
            let keys = index.keys_for(document)?;
            if index.enforces_uniqueness() {
                for key in &keys {
                    let low = (key.clone(), Key(Bson::MinKey));
                    let high = (key.clone(), Key(Bson::MaxKey));
                    let clash = index
                        .entries
                        .range(low..=high)
                        .any(|(_, id)| Some(id) != self_id);
                    if clash {
                        return Err(index.duplicate_error(ns, key));
                    }
                }
            }
            all_keys.push(keys);
        }
        Ok(all_keys)
    }

    /// Inserts a document that already has its `_id` in first position, kept as `body`.
    pub fn insert(&mut self, ns: &str, document: &Document, body: Body) -> CmdResult<()> {
        let id = document.get("_id").cloned().unwrap_or(Bson::Null);
        let key = Key(id);
        if self.docs.contains_key(&key) {
            let id_index = &self.indexes[0];
            return Err(id_index.duplicate_error(ns, &KeyTuple(vec![key])));
        }
        let keys = self.check_unique(ns, document, None)?;
        for (index, keys) in self.indexes.iter_mut().zip(keys) {
            for tuple in keys {
                index.entries.insert((tuple, key.clone()));
            }
        }
        let record_id = self.next_record;
        self.next_record += 1;
        let stored = Stored { record_id, body };
        self.data_size += stored.size() as u64;
        self.natural.insert(record_id, key.clone());
        self.docs.insert(key, stored);
        Ok(())
    }

    /// Replaces the document with the same `_id` by `document`, kept as `body`, keeping
    /// its record id.
    pub fn replace(&mut self, ns: &str, document: &Document, body: Body) -> CmdResult<()> {
        let key = Key(document.get("_id").cloned().unwrap_or(Bson::Null));
        // Only secondary indexes need the old document decoded.
        let secondary = self.indexes.iter().any(|index| !index.is_id());
        let (old_record, old_size, old) = match self.docs.get(&key) {
            Some(stored) => (
                stored.record_id,
                stored.size(),
                secondary.then(|| stored.document()),
            ),
            None => {
                return Err(CommandError::new(
                    ErrorCode::InternalError,
                    "replace of a missing document",
                ))
            }
        };
        let new_keys = self.check_unique(ns, document, Some(&key))?;
        for index in self.indexes.iter_mut() {
            let Some(old) = old.as_ref().filter(|_| !index.is_id()) else {
                continue;
            };
            for tuple in index.keys_for(old).unwrap_or_default() {
                index.entries.remove(&(tuple, key.clone()));
            }
        }
        for (index, keys) in self.indexes.iter_mut().zip(new_keys) {
            for tuple in keys {
                index.entries.insert((tuple, key.clone()));
            }
        }
        let stored = Stored {
            record_id: old_record,
            body,
        };
        self.data_size = self.data_size + stored.size() as u64 - old_size as u64;
        self.docs.insert(key, stored);
        Ok(())
    }

    pub fn delete(&mut self, id: &Bson) -> Option<Arc<Document>> {
        let key = Key(id.clone());
        let stored = self.docs.remove(&key)?;
        self.natural.remove(&stored.record_id);
        self.data_size -= stored.size() as u64;
        let document = stored.document();
        for index in self.indexes.iter_mut() {
            if index.is_id() {
                continue;
            }
            for tuple in index.keys_for(&document).unwrap_or_default() {
                index.entries.remove(&(tuple, key.clone()));
            }
        }
        Some(document)
    }

    /// Builds a new index over the existing documents (DuplicateKey if a unique one clashes).
    pub fn build_index(&self, ns: &str, mut index: Index) -> CmdResult<Index> {
        for (key, stored) in &self.docs {
            for tuple in stored.with_document(|document| index.keys_for(document))? {
                if index.enforces_uniqueness() {
                    let low = (tuple.clone(), Key(Bson::MinKey));
                    let high = (tuple.clone(), Key(Bson::MaxKey));
                    if index.entries.range(low..=high).next().is_some() {
                        return Err(index.duplicate_error(ns, &tuple));
                    }
                }
                index.entries.insert((tuple, key.clone()));
            }
        }
        Ok(index)
    }

    /// Groups of `_id`s that share a key on `index` (for unique conversion).
    pub fn duplicate_groups(&self, position: usize) -> Vec<Vec<Bson>> {
        let index = &self.indexes[position];
        let mut groups = Vec::new();
        let mut current: Option<(&KeyTuple, Vec<Bson>)> = None;
        for (tuple, id) in &index.entries {
            match &mut current {
                Some((key, ids)) if *key == tuple => ids.push(id.0.clone()),
                _ => {
                    if let Some((_, ids)) = current.take() {
                        if ids.len() > 1 {
                            groups.push(ids);
                        }
                    }
                    current = Some((tuple, vec![id.0.clone()]));
                }
            }
        }
        if let Some((_, ids)) = current {
            if ids.len() > 1 {
                groups.push(ids);
            }
        }
        groups
    }

    pub fn list_entry(&self, name: &str, name_only: bool) -> Document {
        let type_name = match self.kind {
            CollKind::Collection => "collection",
            CollKind::View { .. } => "view",
            CollKind::Timeseries => "timeseries",
        };
        if name_only {
            return doc! {"name": name, "type": type_name};
        }
        match &self.kind {
            CollKind::View { .. } => doc! {
                "name": name, "type": "view", "options": self.options.clone(), "info": {"readOnly": true}
            },
            CollKind::Timeseries => doc! {
                "name": name, "type": "timeseries", "options": self.options.clone(), "info": {"readOnly": false}
            },
            CollKind::Collection => doc! {
                "name": name,
                "type": "collection",
                "options": self.options.clone(),
                "info": {"readOnly": false, "uuid": Bson::Binary(bson::Binary::from_uuid(self.uuid))},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            },
        }
    }
}

/// A document's BSON bytes in an allocation of exactly their size, copied from a buffer
/// each thread reuses instead of a `Vec` grown and reallocated several times per
/// document. BadValue for a document BSON cannot hold (a field name with a NUL byte).
pub fn encode(document: &Document) -> CmdResult<Box<[u8]>> {
    with_encoded(document, |bytes| Box::from(bytes)).map_err(cannot_store)
}

/// The document's BSON size, encoded into a reused buffer.
pub fn encoded_size(document: &Document) -> CmdResult<usize> {
    with_encoded(document, <[u8]>::len).map_err(cannot_store)
}

fn cannot_store(error: bson::ser::Error) -> CommandError {
    CommandError::new(
        ErrorCode::BadValue,
        format!("cannot store document: {error}"),
    )
}

/// Runs `f` on `document`'s BSON, encoded into a buffer each thread reuses.
fn with_encoded<T>(document: &Document, f: impl FnOnce(&[u8]) -> T) -> Result<T, bson::ser::Error> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        let result = document.to_writer(&mut *buffer).map(|()| f(&buffer));
        if buffer.capacity() > 1 << 20 {
            // One large document must not pin its size in every thread.
            *buffer = Vec::new();
        }
        result
    })
}

#[derive(Debug, Clone, Default)]
pub struct Database {
    pub collections: BTreeMap<String, Collection>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub databases: BTreeMap<String, Database>,
}

impl Catalog {
    pub fn collection(&self, db: &str, coll: &str) -> Option<&Collection> {
        self.databases
            .get(db)
            .and_then(|database| database.collections.get(coll))
    }

    pub fn collection_mut(&mut self, db: &str, coll: &str) -> Option<&mut Collection> {
        self.databases
            .get_mut(db)
            .and_then(|database| database.collections.get_mut(coll))
    }

    pub fn find_by_uuid(&self, uuid: bson::Uuid) -> Option<(&str, &str, &Collection)> {
        self.databases.iter().find_map(|(db, database)| {
            database
                .collections
                .iter()
                .find(|(_, coll)| coll.uuid == uuid)
                .map(|(name, coll)| (db.as_str(), name.as_str(), coll))
        })
    }
}

/// mongod's namespace rules (the parts a tool can trip over).
pub fn validate_db_name(db: &str) -> CmdResult<()> {
    if db.is_empty() || db.len() > 63 || db.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
        return Err(CommandError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid database name: '{db}'"),
        ));
    }
    Ok(())
}

pub fn validate_coll_name(db: &str, coll: &str) -> CmdResult<()> {
    if coll.is_empty() || coll.contains('\0') || coll.starts_with('.') || coll.contains('$') {
        return Err(CommandError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid collection name: {db}.{coll}"),
        ));
    }
    Ok(())
}
