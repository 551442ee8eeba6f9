//! Dotted-path traversal with mongod's semantics.
//!
//! Two flavours exist because mongod has two:
//! - [`get_path`]: a plain walk (documents by name, arrays only by numeric index), used for
//!   `_id`, shard-key-like extraction and upsert seeding.
//! - [`iterate`]: the matcher's `BSONElementIterator` (SERVER `src/mongo/db/matcher/path.cpp`):
//!   implicit traversal into arrays, numeric components that index arrays *and* name fields,
//!   one "missing" (EOO) value where a path dead-ends inside a document, and the array offset
//!   that the positional `$` operator later uses.

use bson::{Bson, Document};

/// Plain lookup: a component descends into a sub-document by name, or indexes an array when it
/// is a non-negative decimal number. No implicit array traversal.
pub fn get_path<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut current = doc.get(first)?;
    for part in parts {
        current = step(current, part)?;
    }
    Some(current)
}

/// One component of [`get_path`].
fn step<'a>(value: &'a Bson, part: &str) -> Option<&'a Bson> {
    match value {
        Bson::Document(d) => d.get(part),
        Bson::Array(items) => array_index(part).and_then(|i| items.get(i)),
        _ => None,
    }
}

/// A path component usable as an array index: all ASCII digits (mongod's `isAllDigits`).
pub fn array_index(part: &str) -> Option<usize> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Whether the leaf array itself is expanded into its elements (most predicates) or handed over
/// whole (`$size`, `$elemMatch`, `$all` with `$elemMatch`: mongod's `kNoTraversal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafArray {
    /// Yield every element, then the array itself.
    Traverse,
    /// Yield the array itself only.
    NoTraversal,
}

/// One value produced by [`iterate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathValue<'a> {
    /// `None` is mongod's EOO: the path is missing at this point.
    pub value: Option<&'a Bson>,
    /// Index in the outermost array traversed *implicitly* to reach this value (what mongod
    /// records as the "elemMatchKey" for the positional `$`). `None` when no implicit array
    /// traversal happened (explicit numeric indexes do not count).
    pub array_offset: Option<usize>,
}

/// Every value the matcher sees for `path` in `doc`, in mongod's order.
pub fn iterate<'a>(doc: &'a Document, path: &str, leaf: LeafArray) -> Vec<PathValue<'a>> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk_document(doc, &parts, leaf, &mut out);
    out
}

/// `getFieldDottedOrArray` then the BEGIN state of the iterator.
fn walk_document<'a>(
    doc: &'a Document,
    parts: &[&str],
    leaf: LeafArray,
    out: &mut Vec<PathValue<'a>>,
) {
    let mut current = doc;
    let mut index = 0;
    loop {
        let Some(value) = current.get(parts[index]) else {
            out.push(PathValue {
                value: None,
                array_offset: None,
            });
            return;
        };
        let is_last = index + 1 == parts.len();
        match value {
            Bson::Array(items) => {
                walk_array(value, items, &parts[index + 1..], leaf, out);
                return;
            }
            _ if is_last => {
                out.push(PathValue {
                    value: Some(value),
                    array_offset: None,
                });
                return;
            }
            Bson::Document(sub) => {
                current = sub;
                index += 1;
            }
            // A scalar in the middle of the path: the path is missing.
            _ => {
                out.push(PathValue {
                    value: None,
                    array_offset: None,
                });
                return;
            }
        }
    }
}

/// The IN_ARRAY state: `array` was reached and `rest` remains of the path.
fn walk_array<'a>(
    array: &'a Bson,
    items: &'a [Bson],
    rest: &[&str],
    leaf: LeafArray,
    out: &mut Vec<PathValue<'a>>,
) {
    if rest.is_empty() && leaf == LeafArray::NoTraversal {
        out.push(PathValue {
            value: Some(array),
            array_offset: None,
        });
        return;
    }
    let offset_part = rest.first().and_then(|p| array_index(p));
    for (i, item) in items.iter().enumerate() {
        if rest.is_empty() {
            out.push(PathValue {
                value: Some(item),
                array_offset: Some(i),
            });
            continue;
        }
        let is_offset_match = offset_part == Some(i);
        if let Bson::Document(sub) = item {
            // Implicit traversal: our index overrides whatever the sub-walk recorded.
            let start = out.len();
            walk_document(sub, rest, leaf, out);
            for produced in &mut out[start..] {
                produced.array_offset = Some(i);
            }
        }
        if !is_offset_match {
            continue;
        }
        // Explicit index (`a.0`): not an implicit traversal, so no offset of ours.
        if rest.len() == 1 {
            out.push(PathValue {
                value: Some(item),
                array_offset: None,
            });
        } else if let Bson::Document(sub) = item {
            walk_document(sub, &rest[1..], leaf, out);
        } else if let Bson::Array(nested) = item {
            walk_array(item, nested, &rest[1..], leaf, out);
        }
    }
    if rest.is_empty() {
        // kTraverse yields the leaf array itself last.
        out.push(PathValue {
            value: Some(array),
            array_offset: None,
        });
    }
}

/// Sort-key values for `path` (index key generation rules, used by `sort`): missing → null,
/// an empty leaf array → undefined (so `[]` sorts below null), a non-empty leaf array → its
/// elements (nested arrays stay whole), arrays in the middle are traversed element by element.
pub fn sort_key_values(doc: &Document, path: &str) -> Vec<Bson> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    collect_sort_keys(doc.get(parts[0]), &parts[1..], &mut out);
    out
}

fn collect_sort_keys(value: Option<&Bson>, rest: &[&str], out: &mut Vec<Bson>) {
    let Some(value) = value else {
        out.push(Bson::Null);
        return;
    };
    if rest.is_empty() {
        match value {
            Bson::Array(items) if items.is_empty() => out.push(Bson::Undefined),
            Bson::Array(items) => out.extend(items.iter().cloned()),
            other => out.push(other.clone()),
        }
        return;
    }
    match value {
        Bson::Document(sub) => collect_sort_keys(sub.get(rest[0]), &rest[1..], out),
        Bson::Array(items) => {
            if let Some(item) = array_index(rest[0]).and_then(|i| items.get(i)) {
                collect_sort_keys(Some(item), &rest[1..], out);
            } else if items.is_empty() {
                out.push(Bson::Null);
            } else {
                for item in items {
                    match item {
                        Bson::Document(sub) => collect_sort_keys(sub.get(rest[0]), &rest[1..], out),
                        _ => out.push(Bson::Null),
                    }
                }
            }
        }
        _ => out.push(Bson::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn values(doc: &Document, path: &str) -> Vec<(Option<Bson>, Option<usize>)> {
        iterate(doc, path, LeafArray::Traverse)
            .into_iter()
            .map(|pv| (pv.value.cloned(), pv.array_offset))
            .collect()
    }

    #[test]
    fn get_path_walks_documents_and_numeric_indexes_only() {
        let d = doc! {"a": {"b": [10, {"c": 3}]}, "x": 1};
        assert_eq!(get_path(&d, "x"), Some(&Bson::Int32(1)));
        assert_eq!(get_path(&d, "a.b.0"), Some(&Bson::Int32(10)));
        assert_eq!(get_path(&d, "a.b.1.c"), Some(&Bson::Int32(3)));
        assert_eq!(get_path(&d, "a.b.c"), None);
        assert_eq!(get_path(&d, "a.b.5"), None);
        assert_eq!(get_path(&d, "x.y"), None);
        assert_eq!(get_path(&d, "missing"), None);
    }

    #[test]
    fn scalar_and_missing() {
        let d = doc! {"a": 1, "b": {"c": 2}};
        assert_eq!(values(&d, "a"), vec![(Some(bson!(1)), None)]);
        assert_eq!(values(&d, "b.c"), vec![(Some(bson!(2)), None)]);
        assert_eq!(values(&d, "z"), vec![(None, None)]);
        assert_eq!(values(&d, "a.b"), vec![(None, None)]);
    }

    #[test]
    fn leaf_array_yields_elements_then_array() {
        let d = doc! {"a": [1, [2]]};
        assert_eq!(
            values(&d, "a"),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!([2])), Some(1)),
                (Some(bson!([1, [2]])), None)
            ]
        );
        let no_trav: Vec<_> = iterate(&d, "a", LeafArray::NoTraversal)
            .into_iter()
            .map(|pv| pv.value.cloned())
            .collect();
        assert_eq!(no_trav, vec![Some(bson!([1, [2]]))]);
    }

    #[test]
    fn array_of_documents_with_missing_fields() {
        let d = doc! {"a": [{"b": 1}, {"c": 2}, 5]};
        // The scalar element 5 yields nothing; {c: 2} yields missing.
        assert_eq!(
            values(&d, "a.b"),
            vec![(Some(bson!(1)), Some(0)), (None, Some(1))]
        );
        let empty = doc! {"a": []};
        assert_eq!(values(&empty, "a.b"), vec![]);
    }

    #[test]
    fn nested_arrays_keep_outermost_offset() {
        let d = doc! {"a": [{"b": [1, 2]}]};
        assert_eq!(
            values(&d, "a.b"),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!(2)), Some(0)),
                (Some(bson!([1, 2])), Some(0))
            ]
        );
    }

    #[test]
    fn numeric_component_indexes_and_names_fields() {
        let d = doc! {"a": [[1, 2], 7]};
        assert_eq!(values(&d, "a.0"), vec![(Some(bson!([1, 2])), None)]);
        assert_eq!(values(&d, "a.1"), vec![(Some(bson!(7)), None)]);
        let nested = doc! {"a": [[1, 2]]};
        assert_eq!(
            values(&nested, "a.0.1"),
            vec![(Some(bson!(2)), None)],
            "a.0.1 indexes into the nested array"
        );
        let named = doc! {"a": {"0": 5}};
        assert_eq!(values(&named, "a.0"), vec![(Some(bson!(5)), None)]);
        // A document element is both traversed implicitly (field "0" missing) and indexed.
        let docs = doc! {"a": [{"b": 1}]};
        assert_eq!(
            values(&docs, "a.0.b"),
            vec![(None, Some(0)), (Some(bson!(1)), None)]
        );
    }

    #[test]
    fn sort_keys_follow_index_key_rules() {
        assert_eq!(sort_key_values(&doc! {}, "a"), vec![Bson::Null]);
        assert_eq!(sort_key_values(&doc! {"a": []}, "a"), vec![Bson::Undefined]);
        assert_eq!(
            sort_key_values(&doc! {"a": [3, [1]]}, "a"),
            vec![bson!(3), bson!([1])]
        );
        assert_eq!(
            sort_key_values(&doc! {"a": [{"b": 2}, {"c": 1}, 4]}, "a.b"),
            vec![bson!(2), Bson::Null, Bson::Null]
        );
        assert_eq!(sort_key_values(&doc! {"a": [5, 6]}, "a.1"), vec![bson!(6)]);
    }
}
