//! `find`/`$sort` orders.
//!
//! Values compare by the canonical BSON order (`bson_cmp::compare`). A field that holds an array
//! sorts by its smallest element ascending and its largest element descending; an empty array
//! sorts as `undefined` (below null) and a missing field as null, as mongod's sort-key
//! generation does (DOCS `/reference/bson-type-comparison-order/`, "Arrays").
//! Ties are left to the caller, which sorts stably.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::path::sort_key_values;
use crate::bson_cmp::{compare, Number};
use crate::error::{CmdResult, CommandError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortField {
    pub path: String,
    pub ascending: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SortSpec {
    fields: Vec<SortField>,
}

impl SortSpec {
    pub fn parse(spec: &Document) -> CmdResult<SortSpec> {
        let fields = spec
            .iter()
            .map(|(path, value)| parse_field(path, value))
            .collect::<CmdResult<Vec<_>>>()?;
        Ok(SortSpec { fields })
    }

    pub fn fields(&self) -> &[SortField] {
        &self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Compare two documents field by field.
    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        for field in &self.fields {
            let left = sort_key(a, field);
            let right = sort_key(b, field);
            let order = compare(&left, &right);
            let order = if field.ascending {
                order
            } else {
                order.reverse()
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }

    /// The per-field sort keys of `doc`, for callers that precompute them.
    pub fn key(&self, doc: &Document) -> Vec<Bson> {
        self.fields.iter().map(|f| sort_key(doc, f)).collect()
    }

    /// Compare keys produced by [`SortSpec::key`].
    pub fn compare_keys(&self, a: &[Bson], b: &[Bson]) -> Ordering {
        for ((field, left), right) in self.fields.iter().zip(a).zip(b) {
            let order = compare(left, right);
            let order = if field.ascending {
                order
            } else {
                order.reverse()
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }
}

/// mongod's `SortPattern` validation (codes 15974, 15975, 17312).
fn parse_field(path: &str, value: &Bson) -> CmdResult<SortField> {
    if path.is_empty() {
        return Err(CommandError::bad_value(
            "FieldPath cannot be constructed with empty string",
        ));
    }
    if let Bson::Document(d) = value {
        if d.contains_key("$meta") {
            return Err(CommandError::not_implemented("$meta in sort"));
        }
        return Err(CommandError::from_code(
            17312,
            "$meta is the only expression supported by $sort right now",
        ));
    }
    let Some(number) = Number::from_bson(value) else {
        return Err(CommandError::from_code(
            15974,
            format!("Illegal key in $sort specification: {path}: {value}"),
        ));
    };
    let direction = number.to_f64();
    if direction == 1.0 || direction == -1.0 {
        return Ok(SortField {
            path: path.to_string(),
            ascending: direction == 1.0,
        });
    }
    Err(CommandError::from_code(
        15975,
        "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
    ))
}

/// The smallest key ascending, the largest descending.
fn sort_key(doc: &Document, field: &SortField) -> Bson {
    let keys = sort_key_values(doc, &field.path);
    let chosen = if field.ascending {
        keys.into_iter().min_by(compare)
    } else {
        keys.into_iter().max_by(compare)
    };
    chosen.unwrap_or(Bson::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId};

    fn sorted(spec: Document, mut docs: Vec<Document>) -> Vec<Document> {
        let s = SortSpec::parse(&spec).expect("valid sort");
        docs.sort_by(|a, b| s.compare(a, b));
        docs
    }

    fn ids(docs: &[Document]) -> Vec<i32> {
        docs.iter()
            .map(|d| d.get_i32("_id").expect("int _id"))
            .collect()
    }

    #[test]
    fn parse_accepts_any_numeric_one() {
        let s = SortSpec::parse(&doc! {"a": 1, "b": -1.0, "c": Bson::Int64(-1)}).expect("valid");
        assert_eq!(
            s.fields(),
            &[
                SortField {
                    path: "a".into(),
                    ascending: true
                },
                SortField {
                    path: "b".into(),
                    ascending: false
                },
                SortField {
                    path: "c".into(),
                    ascending: false
                },
            ]
        );
    }

    #[test]
    fn parse_rejects_bad_directions() {
        assert_eq!(SortSpec::parse(&doc! {"a": 2}).expect_err("2").code, 15975);
        assert_eq!(SortSpec::parse(&doc! {"a": 0}).expect_err("0").code, 15975);
        assert_eq!(
            SortSpec::parse(&doc! {"a": "asc"}).expect_err("str").code,
            15974
        );
        assert_eq!(
            SortSpec::parse(&doc! {"a": {"$meta": "textScore"}})
                .expect_err("meta")
                .code,
            238
        );
        assert_eq!(
            SortSpec::parse(&doc! {"a": {"x": 1}})
                .expect_err("obj")
                .code,
            17312
        );
    }

    #[test]
    fn canonical_type_order_across_types() {
        let docs = vec![
            doc! {"_id": 1, "v": "10"},
            doc! {"_id": 2, "v": 9},
            doc! {"_id": 3, "v": ObjectId::from_bytes([0; 12])},
            doc! {"_id": 4, "v": {"a": 1}},
            doc! {"_id": 5, "v": Bson::Null},
            doc! {"_id": 6, "v": Bson::MinKey},
            doc! {"_id": 7, "v": f64::NAN},
            doc! {"_id": 8, "v": Bson::Int64(-5)},
        ];
        assert_eq!(
            ids(&sorted(doc! {"v": 1}, docs.clone())),
            vec![6, 5, 7, 8, 2, 1, 4, 3]
        );
        assert_eq!(
            ids(&sorted(doc! {"v": -1}, docs)),
            vec![3, 4, 1, 2, 8, 7, 5, 6]
        );
    }

    #[test]
    fn missing_sorts_as_null_and_ties_are_stable() {
        let docs = vec![
            doc! {"_id": 1, "v": 1},
            doc! {"_id": 2},
            doc! {"_id": 3, "v": Bson::Null},
        ];
        assert_eq!(ids(&sorted(doc! {"v": 1}, docs)), vec![2, 3, 1]);
    }

    #[test]
    fn arrays_use_min_ascending_and_max_descending() {
        let docs = vec![
            doc! {"_id": 1, "v": [5, 1]},
            doc! {"_id": 2, "v": 3},
            doc! {"_id": 3, "v": [2, 9]},
        ];
        assert_eq!(ids(&sorted(doc! {"v": 1}, docs.clone())), vec![1, 3, 2]);
        assert_eq!(ids(&sorted(doc! {"v": -1}, docs)), vec![3, 1, 2]);
    }

    #[test]
    fn empty_array_sorts_below_null() {
        let docs = vec![
            doc! {"_id": 1, "v": Bson::Null},
            doc! {"_id": 2, "v": []},
            doc! {"_id": 3},
        ];
        assert_eq!(ids(&sorted(doc! {"v": 1}, docs)), vec![2, 1, 3]);
    }

    #[test]
    fn dotted_paths_and_compound_keys() {
        let docs = vec![
            doc! {"_id": 1, "a": {"b": 2}, "c": 1},
            doc! {"_id": 2, "a": [{"b": 3}, {"b": 0}], "c": 1},
            doc! {"_id": 3, "a": {"b": 2}, "c": 0},
        ];
        assert_eq!(
            ids(&sorted(doc! {"a.b": 1, "c": 1}, docs.clone())),
            vec![2, 3, 1]
        );
        assert_eq!(ids(&sorted(doc! {"a.b": -1, "c": -1}, docs)), vec![2, 1, 3]);
    }

    #[test]
    fn numbers_of_all_widths_interleave() {
        let docs = vec![
            doc! {"_id": 1, "v": Bson::Int64(3)},
            doc! {"_id": 2, "v": 2.5},
            doc! {"_id": 3, "v": 1},
        ];
        assert_eq!(ids(&sorted(doc! {"v": 1}, docs)), vec![3, 2, 1]);
    }

    #[test]
    fn precomputed_keys_agree() {
        let s = SortSpec::parse(&doc! {"v": -1}).expect("valid");
        let a = doc! {"v": [1, 7]};
        let b = doc! {"v": 5};
        assert_eq!(s.compare_keys(&s.key(&a), &s.key(&b)), s.compare(&a, &b));
        assert_eq!(s.compare(&a, &b), Ordering::Less);
    }
}
