//! Pipeline tests: every stage, the driver's count_documents shape, PCSM's `_id` range
//! queries, and the parse errors mongod reports.

use std::str::FromStr;

use bson::{bson, doc, Bson, Decimal128, Document};

use super::{AggregateOptions, Pipeline};

fn run(stages: Vec<Bson>, input: Vec<Document>) -> Vec<Document> {
    Pipeline::parse(&stages).unwrap().run(input).unwrap()
}

fn parse_code(stages: Vec<Bson>) -> i32 {
    Pipeline::parse(&stages).err().map_or(0, |e| e.code)
}

fn numbers(n: i32) -> Vec<Document> {
    (0..n).map(|i| doc! {"_id": i, "v": i % 3}).collect()
}

#[test]
fn count_documents_shape() {
    let stages = vec![
        bson!({"$match": {"v": {"$gte": 1}}}),
        bson!({"$skip": 1}),
        bson!({"$limit": 3}),
        bson!({"$group": {"_id": 1, "n": {"$sum": 1}}}),
    ];
    assert_eq!(
        run(stages.clone(), numbers(10)),
        vec![doc! {"_id": 1, "n": 3}]
    );
    assert!(run(stages, Vec::new()).is_empty());
}

#[test]
fn pcsm_id_range_queries() {
    let input = vec![
        doc! {"_id": 1},
        doc! {"_id": Bson::Int64(5)},
        doc! {"_id": 2.5},
        doc! {"_id": f64::NAN},
        doc! {"_id": "a"},
        doc! {"_id": "b"},
        doc! {"_id": 7},
    ];
    let stages = vec![
        bson!({"$match": {"$expr": {"$ne": ["$_id", {"$literal": f64::NAN}]}}}),
        bson!({"$group": {"_id": {"type": {"$type": "$_id"}}, "minKey": {"$min": "$_id"}, "maxKey": {"$max": "$_id"}}}),
        bson!({"$sort": {"_id.type": 1}}),
    ];
    let out = run(stages, input);
    assert_eq!(
        out,
        vec![
            doc! {"_id": {"type": "double"}, "minKey": 2.5, "maxKey": 2.5},
            doc! {"_id": {"type": "int"}, "minKey": 1, "maxKey": 7},
            doc! {"_id": {"type": "long"}, "minKey": Bson::Int64(5), "maxKey": Bson::Int64(5)},
            doc! {"_id": {"type": "string"}, "minKey": "a", "maxKey": "b"},
        ]
    );
}

#[test]
fn group_accumulators() {
    let input = vec![
        doc! {"_id": 1, "k": 1, "x": 2},
        doc! {"_id": 2, "k": 1.0, "x": "s"},
        doc! {"_id": 3, "k": Bson::Int64(1)},
        doc! {"_id": 4, "x": 5},
        doc! {"_id": 5, "k": Bson::Null, "x": 2},
    ];
    let stages = vec![bson!({"$group": {
        "_id": "$k", "sum": {"$sum": "$x"}, "avg": {"$avg": "$x"}, "min": {"$min": "$x"}, "max": {"$max": "$x"},
        "first": {"$first": "$x"}, "last": {"$last": "$x"}, "push": {"$push": "$x"}, "set": {"$addToSet": "$x"}, "count": {"$count": {}},
    }})];
    let out = run(stages, input);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        doc! {"_id": 1, "sum": 2, "avg": 2.0, "min": 2, "max": "s", "first": 2, "last": Bson::Null, "push": [2, "s"], "set": [2, "s"], "count": 3}
    );
    // missing and null group together under null
    assert_eq!(out[1].get("_id"), Some(&Bson::Null));
    assert_eq!(out[1].get("push"), Some(&bson!([5, 2])));
    assert_eq!(out[1].get("set"), Some(&bson!([5, 2])));
}

#[test]
fn group_sum_types() {
    let big = vec![doc! {"x": i32::MAX}, doc! {"x": 1}];
    let out = run(
        vec![bson!({"$group": {"_id": Bson::Null, "s": {"$sum": "$x"}}})],
        big,
    );
    assert_eq!(out[0].get("s"), Some(&Bson::Int64(i64::from(i32::MAX) + 1)));
    let dec = vec![
        doc! {"x": Bson::Decimal128(Decimal128::from_str("1.5").unwrap())},
        doc! {"x": 1},
    ];
    let out = run(
        vec![bson!({"$group": {"_id": Bson::Null, "s": {"$sum": "$x"}, "a": {"$avg": "$x"}}})],
        dec,
    );
    assert_eq!(
        out[0].get("s"),
        Some(&Bson::Decimal128(Decimal128::from_str("2.5").unwrap()))
    );
    assert_eq!(
        out[0].get("a"),
        Some(&Bson::Decimal128(Decimal128::from_str("1.25").unwrap()))
    );
}

#[test]
fn group_errors() {
    assert_eq!(
        parse_code(vec![bson!({"$group": {"n": {"$sum": 1}}})]),
        15955
    );
    assert_eq!(
        parse_code(vec![bson!({"$group": {"_id": 1, "n": {"$foo": 1}}})]),
        15952
    );
    assert_eq!(
        parse_code(vec![
            bson!({"$group": {"_id": 1, "n": {"$stdDevPop": "$x"}}})
        ]),
        238
    );
    assert_eq!(
        parse_code(vec![bson!({"$group": {"_id": 1, "n": 1}})]),
        40234
    );
    assert_eq!(
        parse_code(vec![bson!({"$group": {"_id": 1, "a.b": {"$sum": 1}}})]),
        40235
    );
    assert_eq!(
        parse_code(vec![
            bson!({"$group": {"_id": 1, "n": {"$sum": 1, "$max": 1}}})
        ]),
        40238
    );
    assert_eq!(
        parse_code(vec![bson!({"$group": {"_id": 1, "n": {"$sum": [1, 2]}}})]),
        40237
    );
}

#[test]
fn project_inclusion_exclusion_and_expressions() {
    let input = vec![
        doc! {"a": 1, "_id": 9, "b": {"c": 1, "d": 2}, "arr": [1, {"c": 3, "d": 4}, [{"c": 5}]]},
    ];
    let out = run(
        vec![bson!({"$project": {"b.c": 1, "arr.c": 1}})],
        input.clone(),
    );
    assert_eq!(
        out,
        vec![doc! {"_id": 9, "b": {"c": 1}, "arr": [{"c": 3}, [{"c": 5}]]}]
    );
    let out = run(
        vec![bson!({"$project": {"b.c": 0, "arr.c": 0, "_id": 0}})],
        input.clone(),
    );
    assert_eq!(
        out,
        vec![doc! {"a": 1, "b": {"d": 2}, "arr": [1, {"d": 4}, [{}]]}]
    );
    let out = run(
        vec![bson!({"$project": {"_id": 0, "x": {"$add": ["$a", 1]}, "a": 1, "gone": "$$REMOVE"}})],
        input.clone(),
    );
    assert_eq!(out, vec![doc! {"a": 1, "x": 2}]);
    let out = run(
        vec![bson!({"$project": {"_id": "$a", "s": {"n": "$b.d"}}})],
        input.clone(),
    );
    assert_eq!(out, vec![doc! {"_id": 1, "s": {"n": 2}}]);
    let out = run(vec![bson!({"$project": {"_id": 0}})], input);
    assert_eq!(out[0].keys().collect::<Vec<_>>(), vec!["a", "b", "arr"]);
    // PCSM's $collStats projection shape
    let stats = vec![doc! {"ns": "d.c", "storageStats": {"size": 10, "count": 2, "avgObjSize": 5}}];
    let out = run(
        vec![
            bson!({"$project": {"size": "$storageStats.size", "count": "$storageStats.count", "avgObjSize": "$storageStats.avgObjSize"}}),
        ],
        stats,
    );
    assert_eq!(out, vec![doc! {"size": 10, "count": 2, "avgObjSize": 5}]);
}

#[test]
fn project_errors() {
    assert_eq!(parse_code(vec![bson!({"$project": {}})]), 51272);
    assert_eq!(
        parse_code(vec![bson!({"$project": {"a": 1, "b": 0}})]),
        31254
    );
    assert_eq!(
        parse_code(vec![bson!({"$project": {"a": 0, "b": 1}})]),
        31253
    );
    assert_eq!(
        parse_code(vec![bson!({"$project": {"a": 0, "b": "$x"}})]),
        31252
    );
    assert_eq!(
        parse_code(vec![bson!({"$project": {"a": 1, "a.b": 1}})]),
        31249
    );
    assert_eq!(parse_code(vec![bson!({"$project": {"$a": 1}})]), 16410);
    assert_eq!(parse_code(vec![bson!({"$project": 1})]), 15969);
}

#[test]
fn add_fields_set_unset() {
    let input = vec![doc! {"_id": 1, "a": {"x": 1}, "arr": [1, {"y": 2}], "z": 3}];
    let out = run(
        vec![bson!({"$addFields": {"a.b": 2, "arr.k": "$z", "n": {"m": 1}, "z": "$$REMOVE"}})],
        input.clone(),
    );
    assert_eq!(
        out,
        vec![
            doc! {"_id": 1, "a": {"x": 1, "b": 2}, "arr": [{"k": 3}, {"y": 2, "k": 3}], "n": {"m": 1}}
        ]
    );
    let out = run(
        vec![bson!({"$set": {"a": {"q": 1}, "new.deep": true}})],
        input.clone(),
    );
    assert_eq!(
        out,
        vec![
            doc! {"_id": 1, "a": {"x": 1, "q": 1}, "arr": [1, {"y": 2}], "z": 3, "new": {"deep": true}}
        ]
    );
    let out = run(vec![bson!({"$unset": ["a.x", "z"]})], input.clone());
    assert_eq!(out, vec![doc! {"_id": 1, "a": {}, "arr": [1, {"y": 2}]}]);
    assert_eq!(
        run(vec![bson!({"$unset": "arr"})], input),
        vec![doc! {"_id": 1, "a": {"x": 1}, "z": 3}]
    );
    assert_eq!(parse_code(vec![bson!({"$unset": []})]), 31119);
    assert_eq!(parse_code(vec![bson!({"$unset": [1]})]), 31120);
    assert_eq!(parse_code(vec![bson!({"$unset": 1})]), 31002);
}

#[test]
fn sort_skip_limit() {
    let input = vec![
        doc! {"_id": 1, "v": "a"},
        doc! {"_id": 2, "v": 10},
        doc! {"_id": 3, "v": 2.5},
        doc! {"_id": 4},
    ];
    let out = run(
        vec![
            bson!({"$sort": {"v": -1}}),
            bson!({"$skip": 1}),
            bson!({"$limit": 2}),
        ],
        input,
    );
    assert_eq!(
        out.iter()
            .map(|d| d.get_i32("_id").unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(parse_code(vec![bson!({"$limit": 0})]), 15958);
    assert_eq!(parse_code(vec![bson!({"$limit": -1})]), 15958);
    assert_eq!(parse_code(vec![bson!({"$limit": "x"})]), 15957);
    assert_eq!(parse_code(vec![bson!({"$skip": -1})]), 15956);
    assert_eq!(parse_code(vec![bson!({"$skip": "x"})]), 15972);
    assert_eq!(parse_code(vec![bson!({"$sort": {}})]), 15976);
    assert_eq!(
        run(
            vec![bson!({"$skip": Bson::Int64(0)}), bson!({"$limit": 2.0})],
            numbers(5)
        )
        .len(),
        2
    );
}

#[test]
fn count_stage() {
    assert_eq!(
        run(vec![bson!({"$count": "total"})], numbers(4)),
        vec![doc! {"total": 4}]
    );
    assert!(run(vec![bson!({"$count": "total"})], Vec::new()).is_empty());
    assert_eq!(parse_code(vec![bson!({"$count": ""})]), 40157);
    assert_eq!(parse_code(vec![bson!({"$count": "$x"})]), 40158);
    assert_eq!(parse_code(vec![bson!({"$count": "a.b"})]), 40160);
    assert_eq!(parse_code(vec![bson!({"$count": 1})]), 40156);
}

#[test]
fn sample_is_seeded_and_without_replacement() {
    let options = AggregateOptions {
        sample_seed: Some(42),
    };
    let stages = vec![bson!({"$sample": {"size": 5}})];
    let first = Pipeline::parse_with(&stages, &options)
        .unwrap()
        .run(numbers(20))
        .unwrap();
    let second = Pipeline::parse_with(&stages, &options)
        .unwrap()
        .run(numbers(20))
        .unwrap();
    assert_eq!(first, second);
    let mut ids: Vec<i32> = first.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    assert_eq!(
        run(vec![bson!({"$sample": {"size": 50}})], numbers(7)).len(),
        7
    );
    assert_eq!(parse_code(vec![bson!({"$sample": {"size": -1}})]), 28747);
    assert_eq!(parse_code(vec![bson!({"$sample": {"size": "x"}})]), 28746);
    assert_eq!(parse_code(vec![bson!({"$sample": {}})]), 28749);
    assert_eq!(
        parse_code(vec![bson!({"$sample": {"size": 1, "x": 1}})]),
        28748
    );
}

#[test]
fn replace_root_and_with() {
    let input = vec![doc! {"_id": 1, "inner": {"a": 1}}];
    assert_eq!(
        run(
            vec![bson!({"$replaceRoot": {"newRoot": "$inner"}})],
            input.clone()
        ),
        vec![doc! {"a": 1}]
    );
    assert_eq!(
        run(vec![bson!({"$replaceWith": {"x": "$_id"}})], input.clone()),
        vec![doc! {"x": 1}]
    );
    let err = Pipeline::parse(&[bson!({"$replaceRoot": {"newRoot": "$missing"}})])
        .unwrap()
        .run(input)
        .unwrap_err();
    assert_eq!(err.code, 40228);
    assert_eq!(parse_code(vec![bson!({"$replaceRoot": {}})]), 40414);
}

#[test]
fn unwind_forms() {
    let input = vec![
        doc! {"_id": 1, "a": {"b": [1, 2]}},
        doc! {"_id": 2, "a": {"b": []}},
        doc! {"_id": 3, "a": {"b": Bson::Null}},
        doc! {"_id": 4},
        doc! {"_id": 5, "a": {"b": "s"}},
    ];
    let out = run(vec![bson!({"$unwind": "$a.b"})], input.clone());
    assert_eq!(
        out,
        vec![
            doc! {"_id": 1, "a": {"b": 1}},
            doc! {"_id": 1, "a": {"b": 2}},
            doc! {"_id": 5, "a": {"b": "s"}}
        ]
    );
    let spec = bson!({"$unwind": {"path": "$a.b", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}});
    let out = run(vec![spec], input);
    assert_eq!(out.len(), 6);
    assert_eq!(out[1], doc! {"_id": 1, "a": {"b": 2}, "i": Bson::Int64(1)});
    assert_eq!(out[2], doc! {"_id": 2, "a": {"b": []}, "i": Bson::Null});
    assert_eq!(out[4], doc! {"_id": 4, "i": Bson::Null});
    assert_eq!(parse_code(vec![bson!({"$unwind": "a"})]), 28818);
    assert_eq!(
        parse_code(vec![bson!({"$unwind": {"path": "$a", "x": 1}})]),
        28811
    );
    assert_eq!(
        parse_code(vec![
            bson!({"$unwind": {"path": "$a", "includeArrayIndex": "$i"}})
        ]),
        28822
    );
}

#[test]
fn stage_errors_and_metadata() {
    let err = Pipeline::parse(&[bson!({"$foo": 1})]).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (40324, "Unrecognized pipeline stage name: '$foo'")
    );
    let err = Pipeline::parse(&[bson!({"$match": {}, "$limit": 1})]).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            40323,
            "A pipeline stage specification object must contain exactly one field."
        )
    );
    for stage in [
        "$lookup",
        "$facet",
        "$out",
        "$merge",
        "$bucket",
        "$sortByCount",
        "$unionWith",
        "$setWindowFields",
    ] {
        let mut spec = Document::new();
        spec.insert(stage, Document::new());
        assert_eq!(parse_code(vec![Bson::Document(spec)]), 238, "{stage}");
    }
    assert_eq!(
        parse_code(vec![bson!({"$match": {}}), bson!({"$changeStream": {}})]),
        40602
    );
    assert_eq!(parse_code(vec![bson!({"$collStats": {}})]), 40602);
    assert_eq!(parse_code(vec![bson!({"$match": 1})]), 15959);

    let pipeline = Pipeline::parse(&[
        bson!({"$set": {"a": 1}}),
        bson!({"$unset": "b"}),
        bson!({"$replaceWith": "$$ROOT"}),
    ])
    .unwrap();
    assert_eq!(
        pipeline.stage_names(),
        vec!["$set", "$unset", "$replaceWith"]
    );
    assert!(pipeline.is_update_pipeline());
    let pipeline =
        Pipeline::parse(&[bson!({"$project": {"a": 1}}), bson!({"$match": {}})]).unwrap();
    assert!(!pipeline.is_update_pipeline());
}

#[test]
fn match_surfaces_expr_errors() {
    let pipeline =
        Pipeline::parse(&[bson!({"$match": {"$expr": {"$divide": [1, "$z"]}}})]).unwrap();
    assert_eq!(pipeline.run(vec![doc! {"z": 0}]).unwrap_err().code, 16608);
    assert!(pipeline.run(vec![doc! {}]).unwrap().is_empty());
}
