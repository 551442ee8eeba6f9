//! Routing CRUD events to parallel lanes by document key, so that every event of one
//! destination document is applied by one lane, in stream order.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use bson::{doc, Bson};

use crate::namespace::Namespace;

/// The lane of a document. `_id` values mongod treats as equal (1, 1.0, 1L; a string and
/// a symbol) hash equally: a delete of `{_id: 1}` followed by an insert of `{_id: 1.0}`
/// touch the same destination document and must stay in order.
pub fn lane_of(ns: &Namespace, id: &Bson, lanes: usize) -> usize {
    (key_hash(ns, id) % lanes as u64) as usize
}

/// A hash of the destination document an event touches, equal for `_id`s mongod treats
/// as equal (see `lane_of`).
pub fn key_hash(ns: &Namespace, id: &Bson) -> u64 {
    let mut hasher = DefaultHasher::new();
    ns.hash(&mut hasher);
    canonical_hash(id, &mut hasher);
    hasher.finish()
}

fn canonical_hash(value: &Bson, hasher: &mut DefaultHasher) {
    let number = |f: f64, hasher: &mut DefaultHasher| {
        1u8.hash(hasher);
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            (f as i64).hash(hasher);
        } else if f.is_nan() {
            u64::MAX.hash(hasher);
        } else {
            f.to_bits().hash(hasher);
        }
    };
    match value {
        Bson::Int32(v) => number(f64::from(*v), hasher),
        Bson::Int64(v) if v.unsigned_abs() < 9_000_000_000_000_000 => number(*v as f64, hasher),
        Bson::Int64(v) => (1u8, *v).hash(hasher),
        Bson::Double(v) => number(*v, hasher),
        Bson::Decimal128(v) => match v.to_string().parse::<f64>() {
            Ok(f) => number(f, hasher),
            Err(_) => (1u8, v.to_string()).hash(hasher),
        },
        Bson::String(s) | Bson::Symbol(s) => (2u8, s).hash(hasher),
        Bson::Document(document) => {
            3u8.hash(hasher);
            for (key, value) in document {
                key.hash(hasher);
                canonical_hash(value, hasher);
            }
        }
        Bson::Array(items) => {
            4u8.hash(hasher);
            items.iter().for_each(|item| canonical_hash(item, hasher));
        }
        other => {
            5u8.hash(hasher);
            bson::to_vec(&doc! {"v": other.clone()})
                .unwrap_or_default()
                .hash(hasher);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_ids_share_a_lane() {
        let ns = Namespace::new("a", "b");
        for lanes in [3, 16] {
            assert_eq!(
                lane_of(&ns, &Bson::Int32(7), lanes),
                lane_of(&ns, &Bson::Double(7.0), lanes)
            );
            assert_eq!(
                lane_of(&ns, &Bson::Int64(7), lanes),
                lane_of(&ns, &Bson::Int32(7), lanes)
            );
            assert_eq!(
                lane_of(&ns, &Bson::String("x".into()), lanes),
                lane_of(&ns, &Bson::Symbol("x".into()), lanes)
            );
        }
    }
}
