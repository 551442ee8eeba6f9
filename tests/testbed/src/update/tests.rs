//! One test per mongod rule the update engine reproduces.

use bson::{doc, Bson, DateTime, Document, Timestamp};

use super::diff::{diff, event_type, UpdateDescription};
use super::*;

fn ctx() -> UpdateContext {
    UpdateContext {
        now: DateTime::from_millis(1_700_000_000_000),
        now_ts: Timestamp {
            time: 1_700_000_000,
            increment: 7,
        },
        matched_position: None,
    }
}

fn run(d: Document, u: Document) -> CmdResult<Document> {
    UpdateSpec::parse(&Bson::Document(u), None)?.apply(&d, &ctx())
}

fn ok(d: Document, u: Document) -> Document {
    match run(d, u) {
        Ok(out) => out,
        Err(e) => panic!("update failed: {e}"),
    }
}

fn err(d: Document, u: Document) -> CommandError {
    match run(d, u) {
        Ok(out) => panic!("expected an error, got {out}"),
        Err(e) => e,
    }
}

fn bytes(d: &Document) -> Vec<u8> {
    bson::to_vec(d).unwrap_or_default()
}

fn described(d: Document, u: Document) -> UpdateDescription {
    let spec = UpdateSpec::parse(&Bson::Document(u), None).expect("parse");
    spec.apply_described(&d, &ctx())
        .expect("apply")
        .1
        .expect("description")
}

#[test]
fn fields_apply_in_lexicographic_then_numeric_order() {
    let out = ok(
        doc! {"_id": 1},
        doc! {"$set": {"b": 1, "a": 1, "10": 1, "9": 1}},
    );
    assert_eq!(
        out.keys().cloned().collect::<Vec<_>>(),
        ["_id", "9", "10", "a", "b"]
    );
}

#[test]
fn existing_fields_keep_position_and_id_stays_first() {
    let out = ok(
        doc! {"z": 1, "_id": 1, "m": 2},
        doc! {"$set": {"a": 1, "z": 5}},
    );
    assert_eq!(
        out.keys().cloned().collect::<Vec<_>>(),
        ["_id", "z", "m", "a"]
    );
    assert_eq!(out.get_i32("z").ok(), Some(5));
}

#[test]
fn noop_update_is_byte_identical() {
    let d = doc! {"_id": 1, "a": 1, "b": {"c": [1, 2.5]}, "n": Bson::Null};
    for u in [
        doc! {"$set": {"a": 1}},
        doc! {"$set": {}},
        doc! {"$unset": {"missing": ""}},
        doc! {"$inc": {"a": 0}},
        doc! {"$min": {"a": 1.0}},
        doc! {"$addToSet": {"b.c": 2.5}},
        doc! {"$pull": {"b.c": 9}},
    ] {
        assert_eq!(bytes(&ok(d.clone(), u.clone())), bytes(&d), "{u}");
    }
}

#[test]
fn set_pads_arrays_with_null() {
    let out = ok(doc! {"_id": 1, "a": [1, 2]}, doc! {"$set": {"a.5": 9}});
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![
            1.into(),
            2.into(),
            Bson::Null,
            Bson::Null,
            Bson::Null,
            9.into()
        ])
    );
}

#[test]
fn set_through_scalar_is_path_not_viable() {
    let e = err(doc! {"_id": 1, "a": 1}, doc! {"$set": {"a.b": 1}});
    assert_eq!(e.code, 28);
    assert_eq!(e.message, "Cannot create field 'b' in element {a: 1}");
    let e = err(doc! {"_id": 1, "a": [1]}, doc! {"$set": {"a.x": 1}});
    assert_eq!(e.message, "Cannot create field 'x' in element {a: [ 1 ]}");
}

#[test]
fn set_creates_nested_documents_once() {
    let out = ok(doc! {"_id": 1}, doc! {"$set": {"x.b": 1, "x.a": 2}});
    assert_eq!(out, doc! {"_id": 1, "x": {"a": 2, "b": 1}});
}

#[test]
fn unset_array_element_sets_null_and_missing_is_noop() {
    let out = ok(doc! {"_id": 1, "a": [1, 2, 3]}, doc! {"$unset": {"a.1": 1}});
    assert_eq!(out, doc! {"_id": 1, "a": [1, Bson::Null, 3]});
    let out = ok(
        doc! {"_id": 1, "a": {"b": 1}},
        doc! {"$unset": {"a.b": 1, "x.y": 1}},
    );
    assert_eq!(out, doc! {"_id": 1, "a": {}});
}

#[test]
fn inc_promotes_int32_to_int64_then_double() {
    let out = ok(doc! {"_id": 1, "a": i32::MAX}, doc! {"$inc": {"a": 1}});
    assert_eq!(out.get("a"), Some(&Bson::Int64(i64::from(i32::MAX) + 1)));
    let out = ok(doc! {"_id": 1, "a": i64::MAX}, doc! {"$inc": {"a": 1}});
    assert!(matches!(out.get("a"), Some(Bson::Double(_))));
    let out = ok(doc! {"_id": 1, "a": 1}, doc! {"$inc": {"a": 0.5}});
    assert_eq!(out.get("a"), Some(&Bson::Double(1.5)));
    let out = ok(doc! {"_id": 1, "a": 2}, doc! {"$mul": {"a": 3i64}});
    assert_eq!(out.get("a"), Some(&Bson::Int64(6)));
}

#[test]
fn inc_and_mul_on_decimal_stay_decimal() {
    let one: bson::Decimal128 = "1.5".parse().expect("decimal");
    let out = ok(doc! {"_id": 1, "a": one}, doc! {"$inc": {"a": 1}});
    assert_eq!(out.get("a").map(|v| v.to_string()), Some("2.5".to_string()));
}

#[test]
fn inc_and_mul_of_missing_field() {
    let out = ok(
        doc! {"_id": 1},
        doc! {"$inc": {"a": 5i64}, "$mul": {"b": 2.5}},
    );
    assert_eq!(out, doc! {"_id": 1, "a": 5i64, "b": 0.0});
    let out = ok(doc! {"_id": 1}, doc! {"$mul": {"b": 7}});
    assert_eq!(out.get("b"), Some(&Bson::Int32(0)));
}

#[test]
fn inc_type_errors() {
    let e = err(doc! {"_id": 1, "a": "x"}, doc! {"$inc": {"a": 1}});
    assert_eq!(e.code, 14);
    assert_eq!(e.message, "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of non-numeric type string");
    let e = err(doc! {"_id": 1}, doc! {"$inc": {"a": "x"}});
    assert_eq!(e.code, 14);
    assert_eq!(
        e.message,
        "Cannot increment with non-numeric argument: {a: \"x\"}"
    );
}

#[test]
fn min_max_use_canonical_order_and_can_change_type() {
    let out = ok(
        doc! {"_id": 1, "a": 5, "b": "s"},
        doc! {"$min": {"a": 2.5}, "$max": {"b": true}},
    );
    assert_eq!(out, doc! {"_id": 1, "a": 2.5, "b": true});
    let out = ok(doc! {"_id": 1, "a": 5}, doc! {"$max": {"a": Bson::Null}});
    assert_eq!(out.get("a"), Some(&Bson::Int32(5)));
}

#[test]
fn rename_moves_values_and_rejects_arrays() {
    let out = ok(
        doc! {"_id": 1, "a": 1, "c": 3},
        doc! {"$rename": {"a": "b"}},
    );
    assert_eq!(out, doc! {"_id": 1, "c": 3, "b": 1});
    let e = err(
        doc! {"_id": 1, "a": [{"b": 1}]},
        doc! {"$rename": {"a.0.b": "c"}},
    );
    assert_eq!(e.code, 2);
    let e = err(
        doc! {"_id": 1, "a": 1, "x": [1]},
        doc! {"$rename": {"a": "x.0"}},
    );
    assert_eq!(e.code, 2);
    let out = ok(doc! {"_id": 1}, doc! {"$rename": {"missing": "b"}});
    assert_eq!(out, doc! {"_id": 1});
}

#[test]
fn conflicting_paths() {
    let e = UpdateSpec::parse(
        &Bson::Document(doc! {"$set": {"a": 1}, "$inc": {"a": 1}}),
        None,
    )
    .map(|_| ())
    .expect_err("expected an error");
    assert_eq!(e.code, 40);
    assert_eq!(
        e.message,
        "Updating the path 'a' would create a conflict at 'a'"
    );
    let e = UpdateSpec::parse(&Bson::Document(doc! {"$set": {"a": 1, "a.b": 1}}), None)
        .map(|_| ())
        .expect_err("expected an error");
    assert_eq!(
        e.message,
        "Updating the path 'a.b' would create a conflict at 'a'"
    );
}

#[test]
fn unknown_and_mixed_operators() {
    let e = UpdateSpec::parse(&Bson::Document(doc! {"$foo": {"a": 1}}), None)
        .map(|_| ())
        .expect_err("expected an error");
    assert_eq!(e.code, 9);
    assert_eq!(e.message, "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update specified as an array");
    let e = UpdateSpec::parse(&Bson::Document(doc! {"$set": {"a": 1}, "b": 2}), None)
        .map(|_| ())
        .expect_err("expected an error");
    assert_eq!(e.code, 9);
    let e = UpdateSpec::parse(&Bson::Document(doc! {"a": 1, "$set": {"b": 2}}), None)
        .map(|_| ())
        .expect_err("expected an error");
    assert_eq!(e.code, 52);
}

#[test]
fn immutable_id() {
    let e = err(doc! {"_id": 1}, doc! {"$set": {"_id": 2}});
    assert_eq!(e.code, 66);
    assert_eq!(
        e.message,
        "Performing an update on the path '_id' would modify the immutable field '_id'"
    );
    assert_eq!(
        ok(doc! {"_id": 1}, doc! {"$set": {"_id": 1}}),
        doc! {"_id": 1}
    );
    let e = err(doc! {"_id": {"a": 1}}, doc! {"$set": {"_id.a": 2}});
    assert_eq!(
        e.message,
        "Performing an update on the path '_id.a' would modify the immutable field '_id'"
    );
}

#[test]
fn replacement_keeps_id_first_and_rejects_a_new_id() {
    let out = ok(doc! {"_id": 1, "a": 1}, doc! {"b": 2});
    assert_eq!(out, doc! {"_id": 1, "b": 2});
    let out = ok(doc! {"_id": 1, "a": 1}, doc! {"b": 2, "_id": 1});
    assert_eq!(out.keys().next().map(String::as_str), Some("_id"));
    let e = err(doc! {"_id": 1}, doc! {"_id": 2});
    assert_eq!(e.code, 66);
}

#[test]
fn push_with_modifiers() {
    let out = ok(
        doc! {"_id": 1, "a": [3, 1]},
        doc! {"$push": {"a": {"$each": [2, 5], "$sort": 1, "$slice": 3}}},
    );
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![1.into(), 2.into(), 3.into()])
    );
    let out = ok(
        doc! {"_id": 1, "a": [1, 2]},
        doc! {"$push": {"a": {"$each": [9], "$position": 0}}},
    );
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![9.into(), 1.into(), 2.into()])
    );
    let out = ok(
        doc! {"_id": 1, "a": [{"x": 2}, {"x": 1}]},
        doc! {"$push": {"a": {"$each": [], "$sort": {"x": -1}}}},
    );
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![doc! {"x": 2}.into(), doc! {"x": 1}.into()])
    );
    let out = ok(doc! {"_id": 1}, doc! {"$push": {"a": 1}});
    assert_eq!(out, doc! {"_id": 1, "a": [1]});
}

#[test]
fn add_to_set_uses_numeric_equality() {
    let out = ok(
        doc! {"_id": 1, "a": [1]},
        doc! {"$addToSet": {"a": {"$each": [1.0, 1i64, 2, 2]}}},
    );
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![1.into(), 2.into()])
    );
}

#[test]
fn pull_value_condition_and_subdocument_query() {
    let out = ok(
        doc! {"_id": 1, "a": [1, 5, 7, 2]},
        doc! {"$pull": {"a": {"$gte": 5}}},
    );
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![1.into(), 2.into()])
    );
    let out = ok(
        doc! {"_id": 1, "a": [{"x": 1, "y": 1}, {"x": 2}]},
        doc! {"$pull": {"a": {"x": 1}}},
    );
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![doc! {"x": 2}.into()])
    );
    let out = ok(
        doc! {"_id": 1, "a": [1, 2, 1.0]},
        doc! {"$pullAll": {"a": [1]}},
    );
    assert_eq!(out.get_array("a").ok().cloned(), Some(vec![2.into()]));
}

#[test]
fn pop_current_date_and_bit() {
    let out = ok(doc! {"_id": 1, "a": [1, 2, 3]}, doc! {"$pop": {"a": -1}});
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![2.into(), 3.into()])
    );
    let out = ok(
        doc! {"_id": 1},
        doc! {"$currentDate": {"d": true, "t": {"$type": "timestamp"}}},
    );
    assert_eq!(out.get("d"), Some(&Bson::DateTime(ctx().now)));
    assert_eq!(out.get("t"), Some(&Bson::Timestamp(ctx().now_ts)));
    let out = ok(
        doc! {"_id": 1, "b": 12},
        doc! {"$bit": {"b": {"and": 10, "or": 1}}},
    );
    assert_eq!(out.get("b"), Some(&Bson::Int32(9)));
}

#[test]
fn positional_operator_uses_matched_position() {
    let spec =
        UpdateSpec::parse(&Bson::Document(doc! {"$set": {"a.$.x": 1}}), None).expect("parse");
    assert!(spec.uses_positional());
    let c = UpdateContext {
        matched_position: Some(1),
        ..ctx()
    };
    let out = spec
        .apply(&doc! {"_id": 1, "a": [{}, {}]}, &c)
        .expect("apply");
    assert_eq!(out, doc! {"_id": 1, "a": [{}, {"x": 1}]});
    let e = spec
        .apply(&doc! {"_id": 1, "a": [{}]}, &ctx())
        .map(|_| ())
        .expect_err("expected an error");
    assert_eq!(
        e.message,
        "The positional operator did not find the match needed from the query."
    );
}

#[test]
fn all_positional_and_array_filters() {
    let out = ok(
        doc! {"_id": 1, "a": [1, 2, 3]},
        doc! {"$inc": {"a.$[]": 10}},
    );
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![11.into(), 12.into(), 13.into()])
    );
    let filters = [doc! {"x": {"$gte": 2}}];
    let spec = UpdateSpec::parse(
        &Bson::Document(doc! {"$set": {"a.$[x]": 0}}),
        Some(&filters),
    )
    .expect("parse");
    let out = spec
        .apply(&doc! {"_id": 1, "a": [1, 2, 3]}, &ctx())
        .expect("apply");
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![1.into(), 0.into(), 0.into()])
    );
    let filters = [doc! {"e.k": 1}];
    let spec = UpdateSpec::parse(
        &Bson::Document(doc! {"$set": {"a.$[e].v": true}}),
        Some(&filters),
    )
    .expect("parse");
    let out = spec
        .apply(&doc! {"_id": 1, "a": [{"k": 1}, {"k": 2}]}, &ctx())
        .expect("apply");
    assert_eq!(
        out.get_array("a").ok().cloned(),
        Some(vec![doc! {"k": 1, "v": true}.into(), doc! {"k": 2}.into()])
    );
}

#[test]
fn array_filter_identifier_errors() {
    let e = UpdateSpec::parse(&Bson::Document(doc! {"$set": {"a.$[x]": 1}}), None)
        .map(|_| ())
        .expect_err("expected an error");
    assert_eq!(
        e.message,
        "No array filter found for identifier 'x' in path 'a.$[x]'"
    );
    let filters = [doc! {"i": 0}, doc! {"j": 0}];
    let e = UpdateSpec::parse(
        &Bson::Document(doc! {"$set": {"a.$[i]": 5.0}}),
        Some(&filters),
    )
    .map(|_| ())
    .expect_err("expected an error");
    assert_eq!(e.code, 9);
    assert_eq!(
        e.message,
        "The array filter for identifier 'j' was not used in the update { $set: { a.$[i]: 5.0 } }"
    );
}

#[test]
fn upsert_seeds_from_query_then_operators() {
    let spec = UpdateSpec::parse(
        &Bson::Document(doc! {"$set": {"z": 1}, "$setOnInsert": {"c": 3}}),
        None,
    )
    .expect("parse");
    let seed = vec![
        ("a.b".to_string(), Bson::Int32(1)),
        ("_id".to_string(), Bson::Int32(7)),
    ];
    let out = spec.apply_upsert(&seed, &ctx()).expect("upsert");
    assert_eq!(out, doc! {"_id": 7, "a": {"b": 1}, "c": 3, "z": 1});
    // $setOnInsert does nothing on an update.
    assert_eq!(
        spec.apply(&doc! {"_id": 1}, &ctx()).expect("apply"),
        doc! {"_id": 1, "z": 1}
    );
    // No _id anywhere: left for the caller.
    let out = spec.apply_upsert(&[], &ctx()).expect("upsert");
    assert!(!out.contains_key("_id"));
    let repl = UpdateSpec::parse(&Bson::Document(doc! {"x": 1}), None).expect("parse");
    assert_eq!(
        repl.apply_upsert(&seed, &ctx()).expect("upsert"),
        doc! {"_id": 7, "x": 1}
    );
}

#[test]
fn empty_operator_document_is_allowed() {
    assert_eq!(
        ok(doc! {"_id": 1, "a": 1}, doc! {"$set": {}}),
        doc! {"_id": 1, "a": 1}
    );
}

#[test]
fn diff_recurses_into_documents_and_arrays() {
    let pad = "a value long enough that a sub-diff is cheaper";
    let pre = doc! {"_id": 1, "a": {"b": 1, "c": pad}, "arr": [1, 2, 3, 4, 5, 6, 7, 8], "gone": 1};
    let post = doc! {"_id": 1, "a": {"b": 5, "c": pad}, "arr": [1, 2, 9, 4, 5, 6, 7, 8, 10]};
    let d = diff(&pre, &post);
    assert_eq!(d.updated_fields, doc! {"a.b": 5, "arr.2": 9, "arr.8": 10});
    assert_eq!(d.removed_fields, vec!["gone".to_string()]);
}

#[test]
fn diff_truncated_arrays_and_type_changes() {
    let pre = doc! {"_id": 1, "arr": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "t": {"x": 1}};
    let post = doc! {"_id": 1, "arr": [1, 2, 3, 4, 5, 6, 7, 8], "t": 5};
    let d = diff(&pre, &post);
    assert_eq!(d.truncated_arrays, vec![("arr".to_string(), 8)]);
    assert_eq!(d.updated_fields, doc! {"t": 5});
}

#[test]
fn diff_logs_whole_subdocument_when_cheaper() {
    let d = diff(
        &doc! {"_id": 1, "a": {"b": 1, "c": 2}},
        &doc! {"_id": 1, "a": {"b": 5, "c": 2}},
    );
    assert_eq!(d.updated_fields, doc! {"a": {"b": 5, "c": 2}});
}

#[test]
fn diff_logs_whole_array_when_cheaper() {
    let pre = doc! {"_id": 1, "a": [1, 2]};
    let post = doc! {"_id": 1, "a": [3, 4]};
    let d = diff(&pre, &post);
    assert_eq!(d.updated_fields, doc! {"a": [3, 4]});
}

#[test]
fn disambiguated_paths_for_dotted_and_numeric_keys() {
    let pre = doc! {"_id": 1, "a": {"0": {"x": 1, "pad": "long enough value"}}, "b.c": {"d": 1, "pad": "long enough value"}};
    let post = doc! {"_id": 1, "a": {"0": {"x": 2, "pad": "long enough value"}}, "b.c": {"d": 2, "pad": "long enough value"}};
    let d = diff(&pre, &post);
    assert_eq!(d.updated_fields, doc! {"a.0.x": 2, "b.c.d": 2});
    assert_eq!(
        d.disambiguated_paths,
        doc! {"a.0.x": ["a", "0", "x"], "b.c.d": ["b.c", "d"]}
    );
    let shown = d.to_document(true);
    assert!(shown.contains_key("disambiguatedPaths"));
    assert!(!d.to_document(false).contains_key("disambiguatedPaths"));
}

#[test]
fn operator_descriptions_follow_the_log() {
    let d = described(
        doc! {"_id": 1, "a": {"b": 1}},
        doc! {"$set": {"a": {"b": 1, "c": 2}}},
    );
    assert_eq!(d.updated_fields, doc! {"a": {"b": 1, "c": 2}});
    let d = described(doc! {"_id": 1, "a": [1, 2]}, doc! {"$push": {"a": 3}});
    assert_eq!(d.updated_fields, doc! {"a.2": 3});
    let d = described(
        doc! {"_id": 1, "a": [1, 2], "x": 1},
        doc! {"$pop": {"a": 1}, "$unset": {"x": 1}},
    );
    assert_eq!(d.updated_fields, doc! {"a": [1]});
    assert_eq!(d.removed_fields, vec!["x".to_string()]);
    let d = described(doc! {"_id": 1}, doc! {"$set": {"n.b": 1, "n.a": 2}});
    assert_eq!(d.updated_fields, doc! {"n": {"a": 2, "b": 1}});
    let d = described(doc! {"_id": 1, "a": [1, 2]}, doc! {"$set": {"a.5": 1}});
    assert_eq!(d.updated_fields, doc! {"a.5": 1});
    let d = described(doc! {"_id": 1, "a": [1, 2, 3]}, doc! {"$inc": {"a.$[]": 1}});
    assert_eq!(d.updated_fields, doc! {"a": [2, 3, 4]});
}

#[test]
fn event_types() {
    let pre = doc! {"_id": 1, "a": 1};
    assert_eq!(
        event_type(UpdateKind::Operators, &pre, &doc! {"_id": 1, "a": 2}),
        "update"
    );
    assert_eq!(
        event_type(UpdateKind::Replacement, &pre, &doc! {"_id": 1, "a": 2}),
        "replace"
    );
    let pre = doc! {"_id": 1, "a": "some fairly long string value", "b": 1};
    assert_eq!(
        event_type(
            UpdateKind::Pipeline,
            &pre,
            &doc! {"_id": 1, "a": "some fairly long string value", "b": 2}
        ),
        "update"
    );
    assert_eq!(
        event_type(
            UpdateKind::Pipeline,
            &doc! {"_id": 1, "a": 1},
            &doc! {"_id": 1, "z": 2}
        ),
        "replace"
    );
}

#[test]
fn pipeline_updates_keep_id_and_describe_by_diff() {
    let pipeline = Bson::Array(vec![doc! {"$set": {"b": 2}}.into()]);
    let spec = UpdateSpec::parse(&pipeline, None).expect("parse");
    assert_eq!(spec.kind(), UpdateKind::Pipeline);
    let pre = doc! {"_id": 1, "a": "some fairly long string value", "b": 1};
    let (out, description) = spec.apply_described(&pre, &ctx()).expect("apply");
    assert_eq!(
        out,
        doc! {"_id": 1, "a": "some fairly long string value", "b": 2}
    );
    assert_eq!(description.map(|d| d.updated_fields), Some(doc! {"b": 2}));
    let bad = Bson::Array(vec![doc! {"$group": {"_id": 1}}.into()]);
    assert!(UpdateSpec::parse(&bad, None).is_err());
}
