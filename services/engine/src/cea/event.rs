//! Typed change events, parsed from the raw documents of a cluster-wide change stream
//! opened with `showExpandedEvents`, and their binary form for the spill files.
//!
//! Parsing is strict: an operation type we do not know is an error, never skipped,
//! because skipping a change we do not understand would silently diverge the copy.

use std::fmt;

use bson::{Bson, Document, Timestamp};

use crate::namespace::Namespace;

/// One change event with its position in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The resume token (`_id`): resuming after it continues right behind this event.
    pub token: Document,
    pub cluster_time: Timestamp,
    pub kind: EventKind,
    /// Approximate encoded size in bytes, for the spill's memory bound.
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Insert {
        ns: Namespace,
        id: Bson,
        document: Document,
    },
    Replace {
        ns: Namespace,
        id: Bson,
        document: Document,
    },
    Update {
        ns: Namespace,
        id: Bson,
        updated_fields: Document,
        removed_fields: Vec<String>,
        truncated_arrays: Vec<(String, i64)>,
        /// `updateDescription.disambiguatedPaths`: present for paths whose dotted form is
        /// ambiguous (field names containing dots, numeric object keys).
        disambiguated_paths: Document,
    },
    Delete {
        ns: Namespace,
        id: Bson,
    },
    Create {
        ns: Namespace,
        options: Document,
    },
    Drop {
        ns: Namespace,
    },
    Rename {
        from: Namespace,
        to: Namespace,
        drop_target: bool,
    },
    DropDatabase {
        db: String,
    },
    CreateIndexes {
        ns: Namespace,
        indexes: Vec<Document>,
    },
    DropIndexes {
        ns: Namespace,
        indexes: Vec<Document>,
    },
    Modify {
        ns: Namespace,
        description: Document,
    },
    /// Not a source change: the reader's promise that everything before `token` has
    /// been pushed. Applying it only advances the checkpoint and the lag clock, so an
    /// idle or filtered-out source still checkpoints and shows lag ≈ 0.
    HighWaterMark,
}

/// Why a raw change document could not become an [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// `invalidate` or an operation type c2c does not apply (`shardCollection`, …).
    Unsupported {
        operation: String,
        ns: Option<Namespace>,
    },
    /// A field is missing or has the wrong type.
    Malformed(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unsupported {
                operation,
                ns: Some(ns),
            } => {
                write!(f, "change event '{operation}' on {ns} is not supported")
            }
            ParseError::Unsupported {
                operation,
                ns: None,
            } => write!(f, "change event '{operation}' is not supported"),
            ParseError::Malformed(what) => write!(f, "malformed change event: {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

impl EventKind {
    /// The namespace a CRUD event writes to (DDL and marks have none).
    pub fn crud_ns(&self) -> Option<&Namespace> {
        match self {
            EventKind::Insert { ns, .. }
            | EventKind::Replace { ns, .. }
            | EventKind::Update { ns, .. }
            | EventKind::Delete { ns, .. } => Some(ns),
            _ => None,
        }
    }

    /// The document key of a CRUD event.
    pub fn document_id(&self) -> Option<&Bson> {
        match self {
            EventKind::Insert { id, .. }
            | EventKind::Replace { id, .. }
            | EventKind::Update { id, .. }
            | EventKind::Delete { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn is_ddl(&self) -> bool {
        self.crud_ns().is_none() && !matches!(self, EventKind::HighWaterMark)
    }
}

/// Reads the `clusterTime` a resume token encodes. Both mongod's KeyString tokens and the
/// testbed's start with `82` (the KeyString type byte of a Timestamp) followed by the
/// big-endian seconds and increment, so high-water-mark tokens (which carry no
/// `clusterTime` field) still tell how far the stream has read.
pub fn token_time(token: &Document) -> Option<Timestamp> {
    let data = token.get_str("_data").ok()?;
    if data.len() < 18 || !data.starts_with("82") {
        return None;
    }
    let time = u32::from_str_radix(data.get(2..10)?, 16).ok()?;
    let increment = u32::from_str_radix(data.get(10..18)?, 16).ok()?;
    Some(Timestamp { time, increment })
}

pub(super) fn malformed(what: impl Into<String>) -> ParseError {
    ParseError::Malformed(what.into())
}

pub(super) fn namespace(raw: &Document, field: &str) -> Result<Namespace, ParseError> {
    let ns = raw
        .get_document(field)
        .map_err(|_| malformed(format!("'{field}' missing")))?;
    let db = ns
        .get_str("db")
        .map_err(|_| malformed(format!("'{field}.db' missing")))?;
    let coll = ns
        .get_str("coll")
        .map_err(|_| malformed(format!("'{field}.coll' missing")))?;
    Ok(Namespace::new(db, coll))
}

fn document_id(raw: &Document) -> Result<Bson, ParseError> {
    raw.get_document("documentKey")
        .ok()
        .and_then(|key| key.get("_id"))
        .cloned()
        .ok_or_else(|| malformed("'documentKey._id' missing"))
}

pub(super) fn sub_document(raw: &Document, field: &str) -> Result<Document, ParseError> {
    raw.get_document(field)
        .cloned()
        .map_err(|_| malformed(format!("'{field}' missing")))
}

pub(super) fn documents(array: Option<&Bson>, what: &str) -> Result<Vec<Document>, ParseError> {
    match array {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_document()
                    .cloned()
                    .ok_or_else(|| malformed(format!("{what}: not a document")))
            })
            .collect(),
        _ => Err(malformed(format!("'{what}' missing"))),
    }
}

fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 => Some(*v as i64),
        _ => None,
    }
}

pub(super) fn update_kind(
    raw: &Document,
    ns: Namespace,
    id: Bson,
) -> Result<EventKind, ParseError> {
    let description = raw
        .get_document("updateDescription")
        .map_err(|_| malformed("'updateDescription' missing"))?;
    let updated_fields = description
        .get_document("updatedFields")
        .cloned()
        .unwrap_or_default();
    let removed_fields = match description.get("removedFields") {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed("removedFields: not a string"))
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let truncated_arrays = match description.get("truncatedArrays") {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|item| {
                let item = item
                    .as_document()
                    .ok_or_else(|| malformed("truncatedArrays: not a document"))?;
                let field = item
                    .get_str("field")
                    .map_err(|_| malformed("truncatedArrays.field"))?;
                let size = item
                    .get("newSize")
                    .and_then(integer)
                    .ok_or_else(|| malformed("truncatedArrays.newSize"))?;
                Ok((field.to_string(), size))
            })
            .collect::<Result<_, ParseError>>()?,
        _ => Vec::new(),
    };
    let disambiguated_paths = description
        .get_document("disambiguatedPaths")
        .cloned()
        .unwrap_or_default();
    Ok(EventKind::Update {
        ns,
        id,
        updated_fields,
        removed_fields,
        truncated_arrays,
        disambiguated_paths,
    })
}

impl Event {
    /// Parses one raw change-stream document; `size` is its encoded length.
    pub fn parse(raw: &Document, size: usize) -> Result<Event, ParseError> {
        let token = raw
            .get_document("_id")
            .map_err(|_| malformed("resume token '_id' missing"))?
            .clone();
        let cluster_time = raw
            .get_timestamp("clusterTime")
            .map_err(|_| malformed("'clusterTime' missing"))?;
        let operation = raw
            .get_str("operationType")
            .map_err(|_| malformed("'operationType' missing"))?;
        let description = || sub_document(raw, "operationDescription");
        let kind = match operation {
            "insert" => EventKind::Insert {
                ns: namespace(raw, "ns")?,
                id: document_id(raw)?,
                document: sub_document(raw, "fullDocument")?,
            },
            "replace" => EventKind::Replace {
                ns: namespace(raw, "ns")?,
                id: document_id(raw)?,
                document: sub_document(raw, "fullDocument")?,
            },
            "update" => update_kind(raw, namespace(raw, "ns")?, document_id(raw)?)?,
            "delete" => EventKind::Delete {
                ns: namespace(raw, "ns")?,
                id: document_id(raw)?,
            },
            "create" => EventKind::Create {
                ns: namespace(raw, "ns")?,
                options: description().unwrap_or_default(),
            },
            "drop" => EventKind::Drop {
                ns: namespace(raw, "ns")?,
            },
            "rename" => {
                let drop_target = raw
                    .get_document("operationDescription")
                    .map(|d| d.contains_key("dropTarget"))
                    .unwrap_or(false);
                EventKind::Rename {
                    from: namespace(raw, "ns")?,
                    to: namespace(raw, "to")?,
                    drop_target,
                }
            }
            "dropDatabase" => {
                let ns = raw
                    .get_document("ns")
                    .map_err(|_| malformed("'ns' missing"))?;
                EventKind::DropDatabase {
                    db: ns
                        .get_str("db")
                        .map_err(|_| malformed("'ns.db' missing"))?
                        .to_string(),
                }
            }
            "createIndexes" => EventKind::CreateIndexes {
                ns: namespace(raw, "ns")?,
                indexes: documents(
                    description()?.get("indexes"),
                    "operationDescription.indexes",
                )?,
            },
            "dropIndexes" => EventKind::DropIndexes {
                ns: namespace(raw, "ns")?,
                indexes: documents(
                    description()?.get("indexes"),
                    "operationDescription.indexes",
                )?,
            },
            "modify" => EventKind::Modify {
                ns: namespace(raw, "ns")?,
                description: description()?,
            },
            other => {
                return Err(ParseError::Unsupported {
                    operation: other.to_string(),
                    ns: namespace(raw, "ns").ok(),
                })
            }
        };
        Ok(Event {
            token,
            cluster_time,
            kind,
            size,
        })
    }

    /// A high-water mark at `token` (a PBRT or a filtered-out event's `_id`).
    pub fn high_water_mark(token: Document, cluster_time: Timestamp) -> Event {
        Event {
            token,
            cluster_time,
            kind: EventKind::HighWaterMark,
            size: 64,
        }
    }
}
