//! Tests for aggregation expressions: one or more per operator, with the type and
//! overflow edges mongod is particular about.

use std::str::FromStr;

use bson::{bson, doc, oid::ObjectId, Bson, Decimal128, Document};

use super::{is_truthy, Expr};

fn dec(text: &str) -> Bson {
    Bson::Decimal128(Decimal128::from_str(text).unwrap())
}

fn eval_on(expr: Bson, root: &Document) -> Option<Bson> {
    Expr::parse(&expr).unwrap().eval(root).unwrap()
}

fn ev(expr: Bson) -> Option<Bson> {
    let root = doc! {"_id": 1, "a": {"b": 5}, "arr": [{"b": 1}, {"b": 2}, 3, [{"b": 4}]], "s": "x", "n": Bson::Null};
    eval_on(expr, &root)
}

fn code_of(expr: Bson) -> i32 {
    match Expr::parse(&expr) {
        Err(e) => e.code,
        Ok(parsed) => parsed.eval(&doc! {"a": 1}).err().map_or(0, |e| e.code),
    }
}

#[test]
fn field_paths_and_variables() {
    assert_eq!(ev(bson!("$a.b")), Some(Bson::Int32(5)));
    assert_eq!(ev(bson!("$missing")), None);
    assert_eq!(ev(bson!("$arr.b")), Some(bson!([1, 2, [4]])));
    assert_eq!(ev(bson!("$s.b")), None);
    assert_eq!(ev(bson!("$$ROOT.a.b")), Some(Bson::Int32(5)));
    assert_eq!(ev(bson!("$$CURRENT.s")), Some(bson!("x")));
    assert_eq!(
        eval_on(bson!("$$ROOT"), &doc! {"x": 1}),
        Some(bson!({"x": 1}))
    );
    assert_eq!(ev(bson!("$$REMOVE")), None);
    assert_eq!(code_of(bson!("$$nope")), 17276);
    assert_eq!(code_of(bson!("$")), 16872);
    assert_eq!(code_of(bson!("$a..b")), 15998);
    assert_eq!(code_of(bson!("$$NOW")), 238);
}

#[test]
fn literals_objects_arrays() {
    assert_eq!(ev(bson!("plain")), Some(bson!("plain")));
    assert_eq!(ev(bson!({"$literal": "$a"})), Some(bson!("$a")));
    assert_eq!(
        ev(bson!({"x": "$a.b", "y": "$missing"})),
        Some(bson!({"x": 5}))
    );
    assert_eq!(
        ev(bson!(["$a.b", "$missing"])),
        Some(bson!([5, Bson::Null]))
    );
    assert_eq!(ev(bson!({})), Some(bson!({})));
    assert_eq!(code_of(bson!({"$add": [1], "x": 1})), 15983);
    assert_eq!(code_of(bson!({"a": 1, "$b": 1})), 16410);
}

#[test]
fn unknown_and_unimplemented_operators() {
    let err = Expr::parse(&bson!({"$foo": 1})).unwrap_err();
    assert_eq!(
        (err.code, err.code_name, err.message.as_str()),
        (
            168,
            "InvalidPipelineOperator",
            "Unrecognized expression '$foo'"
        )
    );
    let err = Expr::parse(&bson!({"$dateToString": {}})).unwrap_err();
    assert_eq!(err.code, 238);
    assert!(err.message.contains("$dateToString"));
}

#[test]
fn comparisons_use_canonical_order_without_bracketing() {
    assert_eq!(ev(bson!({"$eq": [1, 1.0]})), Some(bson!(true)));
    assert_eq!(
        ev(bson!({"$eq": [dec("1.0"), Bson::Int64(1)]})),
        Some(bson!(true))
    );
    assert_eq!(ev(bson!({"$lt": [5, "a"]})), Some(bson!(true)));
    assert_eq!(
        ev(bson!({"$gt": [ObjectId::new(), "zzz"]})),
        Some(bson!(true))
    );
    assert_eq!(ev(bson!({"$eq": [f64::NAN, f64::NAN]})), Some(bson!(true)));
    assert_eq!(
        ev(bson!({"$lt": [f64::NAN, f64::NEG_INFINITY]})),
        Some(bson!(true))
    );
    assert_eq!(
        ev(bson!({"$ne": ["$_id", {"$literal": f64::NAN}]})),
        Some(bson!(true))
    );
    assert_eq!(
        eval_on(
            bson!({"$ne": ["$_id", {"$literal": f64::NAN}]}),
            &doc! {"_id": f64::NAN}
        ),
        Some(bson!(false))
    );
    // missing ranks below null and with undefined
    assert_eq!(
        ev(bson!({"$lt": ["$missing", Bson::Null]})),
        Some(bson!(true))
    );
    assert_eq!(
        ev(bson!({"$eq": ["$missing", Bson::Undefined]})),
        Some(bson!(true))
    );
    assert_eq!(ev(bson!({"$gte": [2, 2]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$lte": [3, 2]})), Some(bson!(false)));
    assert_eq!(ev(bson!({"$cmp": ["b", "a"]})), Some(bson!(1)));
    assert_eq!(ev(bson!({"$cmp": [1, 2]})), Some(bson!(-1)));
    assert_eq!(ev(bson!({"$cmp": [[1], [1]]})), Some(bson!(0)));
    assert_eq!(code_of(bson!({"$eq": [1]})), 16020);
}

#[test]
fn logic_and_conditionals() {
    assert_eq!(ev(bson!({"$and": [1, "x", []]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$and": [1, 0]})), Some(bson!(false)));
    assert_eq!(ev(bson!({"$and": []})), Some(bson!(true)));
    assert_eq!(
        ev(bson!({"$or": [Bson::Null, "$missing", dec("0")]})),
        Some(bson!(false))
    );
    assert_eq!(ev(bson!({"$or": [0, f64::NAN]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$not": [0]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$cond": [true, "y", "n"]})), Some(bson!("y")));
    assert_eq!(
        ev(bson!({"$cond": {"if": "$missing", "then": "y", "else": "n"}})),
        Some(bson!("n"))
    );
    assert_eq!(code_of(bson!({"$cond": {"if": 1, "then": 2}})), 17082);
    assert_eq!(code_of(bson!({"$cond": [1, 2]})), 16020);
    assert_eq!(
        ev(bson!({"$ifNull": ["$missing", Bson::Null, "d"]})),
        Some(bson!("d"))
    );
    assert_eq!(ev(bson!({"$ifNull": ["$a.b", "d"]})), Some(bson!(5)));
    assert_eq!(ev(bson!({"$ifNull": ["$n", "$missing"]})), None);
    let switch = bson!({"$switch": {"branches": [{"case": {"$eq": ["$s", "y"]}, "then": 1}, {"case": "$s", "then": 2}], "default": 3}});
    assert_eq!(ev(switch), Some(bson!(2)));
    assert_eq!(
        code_of(bson!({"$switch": {"branches": [{"case": false, "then": 1}]}})),
        40066
    );
    assert_eq!(code_of(bson!({"$switch": {"branches": []}})), 40068);
    assert!(
        !is_truthy(None) && !is_truthy(Some(&Bson::Undefined)) && !is_truthy(Some(&bson!(-0.0)))
    );
    assert!(is_truthy(Some(&bson!(""))) && is_truthy(Some(&bson!({}))));
}

#[test]
fn type_and_predicates() {
    let types = [
        (bson!(1.5), "double"),
        (bson!("s"), "string"),
        (bson!({}), "object"),
        (bson!([]), "array"),
        (Bson::Int32(1), "int"),
        (Bson::Int64(1), "long"),
        (dec("1"), "decimal"),
        (Bson::Null, "null"),
        (Bson::Boolean(true), "bool"),
        (Bson::MinKey, "minKey"),
        (Bson::MaxKey, "maxKey"),
        (Bson::ObjectId(ObjectId::new()), "objectId"),
        (Bson::Undefined, "undefined"),
        (
            Bson::Timestamp(bson::Timestamp {
                time: 1,
                increment: 1,
            }),
            "timestamp",
        ),
        (Bson::DateTime(bson::DateTime::from_millis(0)), "date"),
    ];
    for (value, name) in types {
        assert_eq!(ev(bson!({"$type": {"$literal": value}})), Some(bson!(name)));
    }
    assert_eq!(ev(bson!({"$type": "$missing"})), Some(bson!("missing")));
    assert_eq!(ev(bson!({"$isNumber": dec("1")})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$isNumber": "$s"})), Some(bson!(false)));
    assert_eq!(ev(bson!({"$isArray": ["$arr"]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$size": "$arr"})), Some(bson!(4)));
    assert_eq!(code_of(bson!({"$size": "$missing"})), 17124);
    assert_eq!(ev(bson!({"$bsonSize": "$$ROOT"})), Some(Bson::Int32(bson::to_vec(&doc! {"_id": 1, "a": {"b": 5}, "arr": [{"b": 1}, {"b": 2}, 3, [{"b": 4}]], "s": "x", "n": Bson::Null}).unwrap().len() as i32)));
    assert_eq!(ev(bson!({"$bsonSize": "$missing"})), Some(Bson::Null));
    assert_eq!(code_of(bson!({"$bsonSize": "$a"})), 31393);
}

#[test]
fn add_widens_like_mongod() {
    assert_eq!(ev(bson!({"$add": [1, 2]})), Some(Bson::Int32(3)));
    assert_eq!(
        ev(bson!({"$add": [i32::MAX, 1]})),
        Some(Bson::Int64(i64::from(i32::MAX) + 1))
    );
    assert_eq!(
        ev(bson!({"$add": [Bson::Int64(1), 1]})),
        Some(Bson::Int64(2))
    );
    assert_eq!(
        ev(bson!({"$add": [Bson::Int64(i64::MAX), 1]})),
        Some(Bson::Double(9_223_372_036_854_775_808.0))
    );
    assert_eq!(ev(bson!({"$add": [1, 0.5]})), Some(Bson::Double(1.5)));
    assert_eq!(ev(bson!({"$add": [1, dec("0.5")]})), Some(dec("1.5")));
    assert_eq!(ev(bson!({"$add": []})), Some(Bson::Int32(0)));
    assert_eq!(ev(bson!({"$add": [1, "$missing"]})), Some(Bson::Null));
    let date = Bson::DateTime(bson::DateTime::from_millis(1000));
    assert_eq!(
        ev(bson!({"$add": [date.clone(), 500]})),
        Some(Bson::DateTime(bson::DateTime::from_millis(1500)))
    );
    assert_eq!(
        ev(bson!({"$add": [date.clone(), 1.5]})),
        Some(Bson::DateTime(bson::DateTime::from_millis(1002)))
    );
    assert_eq!(code_of(bson!({"$add": [date.clone(), date]})), 16612);
    assert_eq!(code_of(bson!({"$add": [1, "x"]})), 16554);
}

#[test]
fn subtract_multiply_divide_mod_abs() {
    assert_eq!(ev(bson!({"$subtract": [5, 7]})), Some(Bson::Int32(-2)));
    assert_eq!(
        ev(bson!({"$subtract": [i32::MIN, 1]})),
        Some(Bson::Int64(i64::from(i32::MIN) - 1))
    );
    assert_eq!(
        ev(bson!({"$subtract": [Bson::Int64(i64::MIN), 1]})),
        Some(Bson::Double(i64::MIN as f64 - 1.0))
    );
    assert_eq!(
        ev(bson!({"$subtract": [dec("1"), 0.5]})),
        Some(dec("0.500000000000000"))
    );
    let (d1, d2) = (
        bson::DateTime::from_millis(5000),
        bson::DateTime::from_millis(2000),
    );
    assert_eq!(ev(bson!({"$subtract": [d1, d2]})), Some(Bson::Int64(3000)));
    assert_eq!(
        ev(bson!({"$subtract": [d1, 1000]})),
        Some(Bson::DateTime(bson::DateTime::from_millis(4000)))
    );
    assert_eq!(code_of(bson!({"$subtract": [1, d1]})), 16556);
    assert_eq!(
        ev(bson!({"$subtract": [Bson::Null, "x"]})),
        Some(Bson::Null)
    );

    assert_eq!(ev(bson!({"$multiply": [3, 4]})), Some(Bson::Int32(12)));
    assert_eq!(
        ev(bson!({"$multiply": [65536, 65536]})),
        Some(Bson::Int64(1 << 32))
    );
    assert_eq!(
        ev(bson!({"$multiply": [Bson::Int64(i64::MAX), 2]})),
        Some(Bson::Double(i64::MAX as f64 * 2.0))
    );
    assert_eq!(ev(bson!({"$multiply": [2, 0.5]})), Some(Bson::Double(1.0)));
    assert_eq!(ev(bson!({"$multiply": [dec("1.5"), 2]})), Some(dec("3.0")));
    assert_eq!(code_of(bson!({"$multiply": ["x"]})), 16555);

    assert_eq!(ev(bson!({"$divide": [10, 4]})), Some(Bson::Double(2.5)));
    assert_eq!(ev(bson!({"$divide": [10, 2]})), Some(Bson::Double(5.0)));
    assert_eq!(ev(bson!({"$divide": [dec("10"), 4]})), Some(dec("2.5")));
    let third = ev(bson!({"$divide": [dec("1"), dec("3")]})).unwrap();
    assert_eq!(
        third.to_string(),
        dec("0.3333333333333333333333333333333333").to_string()
    );
    assert_eq!(code_of(bson!({"$divide": [1, 0]})), 16608);
    assert_eq!(code_of(bson!({"$divide": [1, dec("0")]})), 16608);
    assert_eq!(code_of(bson!({"$divide": ["a", 1]})), 16609);
    assert_eq!(ev(bson!({"$divide": ["$missing", 1]})), Some(Bson::Null));

    assert_eq!(ev(bson!({"$mod": [7, 3]})), Some(Bson::Int32(1)));
    assert_eq!(ev(bson!({"$mod": [-7, 3]})), Some(Bson::Int32(-1)));
    assert_eq!(
        ev(bson!({"$mod": [Bson::Int64(7), 3]})),
        Some(Bson::Int64(1))
    );
    assert_eq!(ev(bson!({"$mod": [7.5, 2]})), Some(Bson::Double(1.5)));
    assert_eq!(ev(bson!({"$mod": [dec("7.5"), 2]})), Some(dec("1.5")));
    assert_eq!(ev(bson!({"$mod": [i32::MIN, -1]})), Some(Bson::Int32(0)));
    assert_eq!(code_of(bson!({"$mod": [1, 0]})), 16610);
    assert_eq!(code_of(bson!({"$mod": [1, "a"]})), 16611);

    assert_eq!(ev(bson!({"$abs": -5})), Some(Bson::Int32(5)));
    assert_eq!(ev(bson!({"$abs": i32::MIN})), Some(Bson::Int64(2147483648)));
    assert_eq!(ev(bson!({"$abs": -2.5})), Some(Bson::Double(2.5)));
    assert_eq!(ev(bson!({"$abs": dec("-1.5")})), Some(dec("1.5")));
    assert_eq!(ev(bson!({"$abs": Bson::Null})), Some(Bson::Null));
    assert_eq!(code_of(bson!({"$abs": Bson::Int64(i64::MIN)})), 28680);
    assert_eq!(code_of(bson!({"$abs": "x"})), 28765);
}

#[test]
fn conversions() {
    assert_eq!(ev(bson!({"$toString": 2.5})), Some(bson!("2.5")));
    assert_eq!(
        ev(bson!({"$toString": 1234567.0})),
        Some(bson!("1.23457e+06"))
    );
    assert_eq!(ev(bson!({"$toString": 0.0001})), Some(bson!("0.0001")));
    assert_eq!(ev(bson!({"$toString": 0.00001})), Some(bson!("1e-05")));
    assert_eq!(ev(bson!({"$toString": -0.0})), Some(bson!("-0")));
    assert_eq!(
        ev(bson!({"$toString": f64::NEG_INFINITY})),
        Some(bson!("-Infinity"))
    );
    assert_eq!(ev(bson!({"$toString": Bson::Int64(-7)})), Some(bson!("-7")));
    assert_eq!(ev(bson!({"$toString": dec("1.50")})), Some(bson!("1.50")));
    assert_eq!(ev(bson!({"$toString": true})), Some(bson!("true")));
    let oid = ObjectId::new();
    assert_eq!(
        ev(bson!({"$toString": oid})),
        Some(Bson::String(oid.to_hex()))
    );
    assert_eq!(
        ev(bson!({"$toString": bson::DateTime::from_millis(1538)})),
        Some(bson!("1970-01-01T00:00:01.538Z"))
    );
    assert_eq!(ev(bson!({"$toString": "$missing"})), Some(Bson::Null));
    assert_eq!(code_of(bson!({"$toString": {"$literal": {"a": 1}}})), 241);

    assert_eq!(ev(bson!({"$toInt": 2.9})), Some(Bson::Int32(2)));
    assert_eq!(ev(bson!({"$toInt": -2.9})), Some(Bson::Int32(-2)));
    assert_eq!(ev(bson!({"$toInt": "42"})), Some(Bson::Int32(42)));
    assert_eq!(ev(bson!({"$toInt": true})), Some(Bson::Int32(1)));
    assert_eq!(ev(bson!({"$toInt": dec("-7.9")})), Some(Bson::Int32(-7)));
    assert_eq!(code_of(bson!({"$toInt": Bson::Int64(1 << 40)})), 241);
    assert_eq!(code_of(bson!({"$toInt": f64::NAN})), 241);
    assert_eq!(code_of(bson!({"$toInt": "4.5"})), 241);
    assert_eq!(
        code_of(bson!({"$toInt": bson::DateTime::from_millis(1)})),
        241
    );

    assert_eq!(
        ev(bson!({"$toLong": bson::DateTime::from_millis(77)})),
        Some(Bson::Int64(77))
    );
    assert_eq!(
        ev(bson!({"$toLong": 1e18})),
        Some(Bson::Int64(1_000_000_000_000_000_000))
    );
    assert_eq!(code_of(bson!({"$toLong": 9.3e18})), 241);
    assert_eq!(
        ev(bson!({"$toDouble": "1.5e3"})),
        Some(Bson::Double(1500.0))
    );
    assert_eq!(
        ev(bson!({"$toDouble": Bson::Int64(3)})),
        Some(Bson::Double(3.0))
    );
    assert_eq!(
        ev(bson!({"$toDouble": dec("0.25")})),
        Some(Bson::Double(0.25))
    );
    assert_eq!(code_of(bson!({"$toDouble": "abc"})), 241);
    assert_eq!(
        ev(bson!({"$toDecimal": 2.5})),
        Some(dec("2.50000000000000"))
    );
    assert_eq!(ev(bson!({"$toDecimal": 7})), Some(dec("7")));
    assert_eq!(ev(bson!({"$toDecimal": "1.10"})), Some(dec("1.10")));
    assert_eq!(ev(bson!({"$toBool": 0})), Some(bson!(false)));
    assert_eq!(ev(bson!({"$toBool": "false"})), Some(bson!(true)));
}

#[test]
fn arrays_and_strings() {
    assert_eq!(ev(bson!({"$concat": ["a", "$s", "b"]})), Some(bson!("axb")));
    assert_eq!(ev(bson!({"$concat": ["a", "$missing"]})), Some(Bson::Null));
    assert_eq!(code_of(bson!({"$concat": ["a", 1]})), 16702);
    assert_eq!(
        ev(bson!({"$concatArrays": [[1], [2, 3]]})),
        Some(bson!([1, 2, 3]))
    );
    assert_eq!(ev(bson!({"$arrayElemAt": [[1, 2, 3], -1]})), Some(bson!(3)));
    assert_eq!(
        ev(bson!({"$arrayElemAt": [[1, 2, 3], 1.0]})),
        Some(bson!(2))
    );
    assert_eq!(ev(bson!({"$arrayElemAt": [[1, 2, 3], 5]})), None);
    assert_eq!(ev(bson!({"$arrayElemAt": [[1, 2, 3], -4]})), None);
    assert_eq!(code_of(bson!({"$arrayElemAt": [[1], 1.5]})), 28691);
    assert_eq!(code_of(bson!({"$arrayElemAt": [1, 0]})), 28689);
    assert_eq!(code_of(bson!({"$arrayElemAt": [[1], "x"]})), 28690);
    assert_eq!(
        ev(bson!({"$in": [2.0, [1, Bson::Int64(2)]]})),
        Some(bson!(true))
    );
    assert_eq!(ev(bson!({"$in": ["x", []]})), Some(bson!(false)));
    assert_eq!(code_of(bson!({"$in": [1, "$missing"]})), 40081);
}

#[test]
fn accumulator_expressions() {
    assert_eq!(ev(bson!({"$min": [3, 1, "a", Bson::Null]})), Some(bson!(1)));
    assert_eq!(
        ev(bson!({"$max": [3, 1, "a", Bson::Null]})),
        Some(bson!("a"))
    );
    assert_eq!(ev(bson!({"$max": [[1, 5, 2]]})), Some(bson!(5)));
    assert_eq!(
        ev(bson!({"$min": [Bson::Null, "$missing"]})),
        Some(Bson::Null)
    );
    assert_eq!(ev(bson!({"$sum": [1, 2.5, "x"]})), Some(bson!(3.5)));
    assert_eq!(ev(bson!({"$sum": "$arr.b"})), Some(bson!(3)));
    assert_eq!(ev(bson!({"$sum": "$s"})), Some(bson!(0)));
    assert_eq!(
        ev(bson!({"$sum": [i32::MAX, i32::MAX]})),
        Some(Bson::Int64(2 * i64::from(i32::MAX)))
    );
    assert_eq!(
        ev(bson!({"$sum": [Bson::Int64(i64::MAX), Bson::Int64(i64::MAX)]})),
        Some(Bson::Double(2.0 * i64::MAX as f64))
    );
    assert_eq!(ev(bson!({"$avg": [1, 2]})), Some(bson!(1.5)));
    assert_eq!(ev(bson!({"$avg": [dec("1"), 2]})), Some(dec("1.5")));
    assert_eq!(ev(bson!({"$avg": ["x"]})), Some(Bson::Null));
}

#[test]
fn objects() {
    assert_eq!(
        ev(bson!({"$objectToArray": "$a"})),
        Some(bson!([{"k": "b", "v": 5}]))
    );
    assert_eq!(code_of(bson!({"$objectToArray": 1})), 40390);
    assert_eq!(
        ev(bson!({"$arrayToObject": [[["x", 1], ["y", 2], ["x", 3]]]})),
        Some(bson!({"x": 3, "y": 2}))
    );
    assert_eq!(
        ev(bson!({"$arrayToObject": [[{"k": "x", "v": 1}]]})),
        Some(bson!({"x": 1}))
    );
    assert_eq!(code_of(bson!({"$arrayToObject": [[["x"]]]})), 40396);
    assert_eq!(
        code_of(bson!({"$arrayToObject": [[{"k": 1, "v": 1}]]})),
        40394
    );
    assert_eq!(
        code_of(bson!({"$arrayToObject": [[["x", 1], {"k": "y", "v": 1}]]})),
        40397
    );
    assert_eq!(
        ev(bson!({"$mergeObjects": [{"x": 1, "y": 1}, Bson::Null, {"x": 2}]})),
        Some(bson!({"x": 2, "y": 1}))
    );
    assert_eq!(code_of(bson!({"$mergeObjects": [1]})), 40400);
    assert_eq!(ev(bson!({"$getField": "s"})), Some(bson!("x")));
    assert_eq!(
        ev(bson!({"$getField": {"field": "b", "input": "$a"}})),
        Some(bson!(5))
    );
    assert_eq!(
        ev(bson!({"$getField": {"field": "b", "input": "$missing"}})),
        Some(Bson::Null)
    );
    assert_eq!(
        eval_on(bson!({"$getField": {"$literal": "$x"}}), &doc! {"$x": 1}),
        Some(bson!(1))
    );
    assert_eq!(code_of(bson!({"$getField": "$a"})), 5654602);
    assert_eq!(
        ev(bson!({"$setField": {"field": "c", "input": "$a", "value": 1}})),
        Some(bson!({"b": 5, "c": 1}))
    );
    assert_eq!(
        ev(bson!({"$setField": {"field": "b", "input": "$a", "value": "$$REMOVE"}})),
        Some(bson!({}))
    );
}

#[test]
fn let_binds_variables() {
    let expr =
        bson!({"$let": {"vars": {"x": "$a.b", "y": 2}, "in": {"$multiply": ["$$x", "$$y"]}}});
    assert_eq!(ev(expr), Some(bson!(10)));
    let nested = bson!({"$let": {"vars": {"x": 1}, "in": {"$let": {"vars": {"x": {"$add": ["$$x", 1]}}, "in": "$$x"}}}});
    assert_eq!(ev(nested), Some(bson!(2)));
    assert_eq!(
        ev(bson!({"$let": {"vars": {"d": "$a"}, "in": "$$d.b"}})),
        Some(bson!(5))
    );
    assert_eq!(
        code_of(bson!({"$let": {"vars": {"Bad": 1}, "in": 1}})),
        16870
    );
    assert_eq!(code_of(bson!({"$let": {"vars": {}, "in": "$$x"}})), 17276);
    assert_eq!(code_of(bson!({"$let": {"vars": {}}})), 16877);
}
