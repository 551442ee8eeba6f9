//! Canonical form of a document for comparison: the same bytes for the same document
//! whatever the order of its fields, and different bytes for any other difference —
//! types included (`1` as int32, int64 and double are three different documents).
//!
//! mongod itself reorders fields (a `$set` of new fields, an update applied as
//! `$set`/`$unset`, a replacement written by a driver that sorts keys), so field order
//! alone is never called a mismatch, as mongosync 1.14 re-fetches before reporting one.
//! Embedded documents are canonical too; arrays keep their order (it is data).

use bson::{RawArray, RawBsonRef, RawDocument};
use xxhash_rust::xxh3::xxh3_128;

/// 128-bit hash of the canonical form; what the range hashes sum.
pub fn document_hash(document: &RawDocument) -> u128 {
    let mut bytes = Vec::with_capacity(document.as_bytes().len() + 16);
    write_document(document, &mut bytes);
    xxh3_128(&bytes)
}

/// True when the two documents are equal up to field order.
pub fn canonically_equal(a: &RawDocument, b: &RawDocument) -> bool {
    if a.as_bytes() == b.as_bytes() {
        return true;
    }
    let (mut left, mut right) = (Vec::new(), Vec::new());
    write_document(a, &mut left);
    write_document(b, &mut right);
    left == right
}

fn write_document(document: &RawDocument, out: &mut Vec<u8>) {
    let mut elements: Vec<(&str, Option<RawBsonRef<'_>>)> = document
        .iter()
        .map(|element| match element {
            Ok((key, value)) => (key, Some(value)),
            Err(_) => ("", None),
        })
        .collect();
    // Stable: duplicate keys (legal in BSON) keep their relative order.
    elements.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (key, value) in elements {
        write_len_prefixed(key.as_bytes(), out);
        match value {
            Some(value) => write_value(value, out),
            // A malformed element compares unequal to any well-formed one.
            None => out.push(0xff),
        }
    }
    out.push(b'}');
}

fn write_array(array: &RawArray, out: &mut Vec<u8>) {
    out.push(b'[');
    for value in array {
        match value {
            Ok(value) => write_value(value, out),
            Err(_) => out.push(0xff),
        }
    }
    out.push(b']');
}

fn write_len_prefixed(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn write_value(value: RawBsonRef<'_>, out: &mut Vec<u8>) {
    out.push(value.element_type() as u8);
    match value {
        RawBsonRef::Double(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
        RawBsonRef::String(v) | RawBsonRef::JavaScriptCode(v) | RawBsonRef::Symbol(v) => {
            write_len_prefixed(v.as_bytes(), out)
        }
        RawBsonRef::Document(v) => write_document(v, out),
        RawBsonRef::Array(v) => write_array(v, out),
        RawBsonRef::Binary(v) => {
            out.push(u8::from(v.subtype));
            write_len_prefixed(v.bytes, out);
        }
        RawBsonRef::ObjectId(v) => out.extend_from_slice(&v.bytes()),
        RawBsonRef::Boolean(v) => out.push(u8::from(v)),
        RawBsonRef::DateTime(v) => out.extend_from_slice(&v.timestamp_millis().to_le_bytes()),
        RawBsonRef::RegularExpression(v) => {
            write_len_prefixed(v.pattern.as_bytes(), out);
            write_len_prefixed(v.options.as_bytes(), out);
        }
        RawBsonRef::JavaScriptCodeWithScope(v) => {
            write_len_prefixed(v.code.as_bytes(), out);
            write_document(v.scope, out);
        }
        RawBsonRef::Int32(v) => out.extend_from_slice(&v.to_le_bytes()),
        RawBsonRef::Timestamp(v) => {
            out.extend_from_slice(&v.time.to_le_bytes());
            out.extend_from_slice(&v.increment.to_le_bytes());
        }
        RawBsonRef::Int64(v) => out.extend_from_slice(&v.to_le_bytes()),
        RawBsonRef::Decimal128(v) => out.extend_from_slice(&v.bytes()),
        // The pointer's fields are private; its debug form holds both of them.
        RawBsonRef::DbPointer(v) => write_len_prefixed(format!("{v:?}").as_bytes(), out),
        RawBsonRef::Null | RawBsonRef::Undefined | RawBsonRef::MinKey | RawBsonRef::MaxKey => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Bson};

    fn raw(document: bson::Document) -> bson::RawDocumentBuf {
        bson::RawDocumentBuf::from_document(&document).unwrap()
    }

    #[test]
    fn field_order_does_not_matter_at_any_depth() {
        let a = raw(doc! {"_id": 1, "a": 1, "b": {"x": 1, "y": [1, {"p": 1, "q": 2}]}});
        let b = raw(doc! {"b": {"y": [1, {"q": 2, "p": 1}], "x": 1}, "a": 1, "_id": 1});
        assert_eq!(document_hash(&a), document_hash(&b));
        assert!(canonically_equal(&a, &b));
    }

    #[test]
    fn numeric_types_differ() {
        let int32 = raw(doc! {"_id": 1, "v": 1});
        let int64 = raw(doc! {"_id": 1, "v": 1i64});
        let double = raw(doc! {"_id": 1, "v": 1.0});
        let hashes = [
            document_hash(&int32),
            document_hash(&int64),
            document_hash(&double),
        ];
        assert_ne!(hashes[0], hashes[1]);
        assert_ne!(hashes[0], hashes[2]);
        assert_ne!(hashes[1], hashes[2]);
        assert!(!canonically_equal(&int32, &double));
    }

    #[test]
    fn array_order_and_values_matter() {
        let a = raw(doc! {"v": [1, 2]});
        let b = raw(doc! {"v": [2, 1]});
        assert!(!canonically_equal(&a, &b));
        let c = raw(doc! {"v": "ab", "w": "c"});
        let d = raw(doc! {"v": "a", "w": "bc"});
        assert_ne!(document_hash(&c), document_hash(&d));
    }

    #[test]
    fn missing_and_null_fields_differ() {
        let a = raw(doc! {"_id": 1, "v": Bson::Null});
        let b = raw(doc! {"_id": 1});
        assert!(!canonically_equal(&a, &b));
        let c = raw(doc! {"_id": 1, "n": {"a": Bson::Null}});
        let e = raw(doc! {"_id": 1, "n": {}});
        assert_ne!(document_hash(&c), document_hash(&e));
    }
}
