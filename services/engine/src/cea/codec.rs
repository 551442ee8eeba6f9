//! The binary form of change events in spill files: one BSON document per event,
//! self-delimiting by its length prefix, with short field names to keep files small.

use bson::{doc, Bson, Document};

use super::event::{
    documents, malformed, namespace, sub_document, update_kind, Event, EventKind, ParseError,
};
use crate::namespace::Namespace;

impl Event {
    /// The spill-file form: one BSON document (self-delimiting by its length prefix).
    pub fn encode(&self) -> Document {
        let ns_doc = |ns: &Namespace| doc! {"db": ns.db.clone(), "coll": ns.coll.clone()};
        let mut out = doc! {"t": self.token.clone(), "ct": self.cluster_time};
        let body = match &self.kind {
            EventKind::Insert { ns, id, document } => {
                doc! {"k": "i", "ns": ns_doc(ns), "id": id.clone(), "d": document.clone()}
            }
            EventKind::Replace { ns, id, document } => {
                doc! {"k": "r", "ns": ns_doc(ns), "id": id.clone(), "d": document.clone()}
            }
            EventKind::Update {
                ns,
                id,
                updated_fields,
                removed_fields,
                truncated_arrays,
                disambiguated_paths,
            } => doc! {
                "k": "u", "ns": ns_doc(ns), "id": id.clone(), "uf": updated_fields.clone(), "rf": removed_fields.clone(),
                "ta": truncated_arrays.iter().map(|(f, n)| doc! {"field": f.clone(), "newSize": *n}).collect::<Vec<_>>(),
                "dp": disambiguated_paths.clone(),
            },
            EventKind::Delete { ns, id } => doc! {"k": "d", "ns": ns_doc(ns), "id": id.clone()},
            EventKind::Create { ns, options } => {
                doc! {"k": "c", "ns": ns_doc(ns), "o": options.clone()}
            }
            EventKind::Drop { ns } => doc! {"k": "x", "ns": ns_doc(ns)},
            EventKind::Rename {
                from,
                to,
                drop_target,
            } => doc! {"k": "mv", "ns": ns_doc(from), "to": ns_doc(to), "dt": *drop_target},
            EventKind::DropDatabase { db } => doc! {"k": "xdb", "db": db.clone()},
            EventKind::CreateIndexes { ns, indexes } => {
                doc! {"k": "ci", "ns": ns_doc(ns), "ix": indexes.clone()}
            }
            EventKind::DropIndexes { ns, indexes } => {
                doc! {"k": "di", "ns": ns_doc(ns), "ix": indexes.clone()}
            }
            EventKind::Modify { ns, description } => {
                doc! {"k": "m", "ns": ns_doc(ns), "o": description.clone()}
            }
            EventKind::HighWaterMark => doc! {"k": "hwm"},
        };
        out.extend(body);
        out
    }

    /// Inverse of [`Event::encode`]; `size` is the encoded length read from the file.
    pub fn decode(encoded: &Document, size: usize) -> Result<Event, ParseError> {
        let token = sub_document(encoded, "t")?;
        let cluster_time = encoded
            .get_timestamp("ct")
            .map_err(|_| malformed("spilled event: 'ct'"))?;
        let id = || {
            encoded
                .get("id")
                .cloned()
                .ok_or_else(|| malformed("spilled event: 'id'"))
        };
        let ns = || namespace(encoded, "ns");
        let kind = match encoded
            .get_str("k")
            .map_err(|_| malformed("spilled event: 'k'"))?
        {
            "i" => EventKind::Insert {
                ns: ns()?,
                id: id()?,
                document: sub_document(encoded, "d")?,
            },
            "r" => EventKind::Replace {
                ns: ns()?,
                id: id()?,
                document: sub_document(encoded, "d")?,
            },
            "u" => {
                let removed_fields = match encoded.get("rf") {
                    Some(Bson::Array(items)) => items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                let description = doc! {
                    "updatedFields": sub_document(encoded, "uf")?,
                    "removedFields": removed_fields,
                    "truncatedArrays": encoded.get("ta").cloned().unwrap_or(Bson::Array(Vec::new())),
                    "disambiguatedPaths": sub_document(encoded, "dp")?,
                };
                update_kind(&doc! {"updateDescription": description}, ns()?, id()?)?
            }
            "d" => EventKind::Delete {
                ns: ns()?,
                id: id()?,
            },
            "c" => EventKind::Create {
                ns: ns()?,
                options: sub_document(encoded, "o")?,
            },
            "x" => EventKind::Drop { ns: ns()? },
            "mv" => EventKind::Rename {
                from: ns()?,
                to: namespace(encoded, "to")?,
                drop_target: encoded
                    .get_bool("dt")
                    .map_err(|_| malformed("spilled event: 'dt'"))?,
            },
            "xdb" => EventKind::DropDatabase {
                db: encoded
                    .get_str("db")
                    .map_err(|_| malformed("spilled event: 'db'"))?
                    .to_string(),
            },
            "ci" => EventKind::CreateIndexes {
                ns: ns()?,
                indexes: documents(encoded.get("ix"), "ix")?,
            },
            "di" => EventKind::DropIndexes {
                ns: ns()?,
                indexes: documents(encoded.get("ix"), "ix")?,
            },
            "m" => EventKind::Modify {
                ns: ns()?,
                description: sub_document(encoded, "o")?,
            },
            "hwm" => EventKind::HighWaterMark,
            other => return Err(malformed(format!("spilled event: unknown kind {other:?}"))),
        };
        Ok(Event {
            token,
            cluster_time,
            kind,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Parsing (event.rs) and the spill form (here) together: every kind parsed from a
    //! raw change document must come back equal from its encoding.
    use bson::Timestamp;

    use super::*;
    use crate::cea::event::token_time;

    fn raw(operation: &str, extra: Document) -> Document {
        let mut raw = doc! {
            "_id": {"_data": "8200000005000000010A"},
            "operationType": operation,
            "clusterTime": Timestamp { time: 5, increment: 1 },
            "ns": {"db": "app", "coll": "c"},
        };
        raw.extend(extra);
        raw
    }

    #[test]
    fn parses_and_round_trips_every_kind() {
        let cases = [
            raw(
                "insert",
                doc! {"documentKey": {"_id": 1}, "fullDocument": {"_id": 1, "a": 1}},
            ),
            raw(
                "replace",
                doc! {"documentKey": {"_id": 1}, "fullDocument": {"_id": 1, "b": 1}},
            ),
            raw(
                "update",
                doc! {"documentKey": {"_id": "k"}, "updateDescription": {
                "updatedFields": {"a.0": 1}, "removedFields": ["b"],
                "truncatedArrays": [{"field": "c", "newSize": 2}], "disambiguatedPaths": {}}},
            ),
            raw("delete", doc! {"documentKey": {"_id": 1}}),
            raw(
                "create",
                doc! {"operationDescription": {"idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}},
            ),
            raw("drop", doc! {}),
            raw(
                "rename",
                doc! {"to": {"db": "app", "coll": "d"}, "operationDescription": {"to": {"db": "app", "coll": "d"}}},
            ),
            raw(
                "createIndexes",
                doc! {"operationDescription": {"indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1"}]}},
            ),
            raw(
                "dropIndexes",
                doc! {"operationDescription": {"indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1"}]}},
            ),
            raw(
                "modify",
                doc! {"operationDescription": {"index": {"name": "a_1", "hidden": true}}},
            ),
        ];
        for case in cases {
            let event = Event::parse(&case, 100).unwrap();
            assert_eq!(Event::decode(&event.encode(), 100).unwrap(), event);
        }
        let update = Event::parse(&cases_update(), 1).unwrap();
        assert!(
            matches!(update.kind, EventKind::Update { ref truncated_arrays, .. } if truncated_arrays == &[("c".to_string(), 2)])
        );
    }

    fn cases_update() -> Document {
        raw(
            "update",
            doc! {"documentKey": {"_id": 1}, "updateDescription": {"updatedFields": {}, "truncatedArrays": [{"field": "c", "newSize": 2}]}},
        )
    }

    #[test]
    fn unknown_and_invalidate_are_errors() {
        assert!(matches!(
            Event::parse(&raw("shardCollection", doc! {}), 1),
            Err(ParseError::Unsupported { .. })
        ));
        let mut invalidate = raw("invalidate", doc! {});
        invalidate.remove("ns");
        assert!(matches!(
            Event::parse(&invalidate, 1),
            Err(ParseError::Unsupported { ns: None, .. })
        ));
        assert!(matches!(
            Event::parse(&doc! {"operationType": "insert"}, 1),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn token_time_reads_the_keystring_timestamp() {
        let token = doc! {"_data": "825F266370000000012B022C01"};
        assert_eq!(
            token_time(&token),
            Some(Timestamp {
                time: 0x5F26_6370,
                increment: 1
            })
        );
        assert_eq!(token_time(&doc! {"_data": "zz"}), None);
    }
}
