//! MongoDB's canonical BSON order, as the `_id` index sorts keys.
//!
//! The engine needs it to sort sampled `_id`s into partition boundaries and to recognise
//! the checkpointed `_id` when a copy resumes. Both must agree with the server's index
//! order, so numbers of every width are compared exactly (a long above 2^53 must stay
//! distinct from the nearest double, or neighbouring partitions overlap or leave gaps),
//! NaN sorts below every number, and types are ranked before values.

use std::cmp::Ordering;

use bson::{Bson, Document};

use decimal::Dec;

mod decimal;

/// mongod's `canonicalizeBSONType` rank: values of different ranks never compare by value.
pub fn rank(value: &Bson) -> i32 {
    match value {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// The canonical total order over BSON values.
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let by_rank = rank(a).cmp(&rank(b));
    if by_rank != Ordering::Equal {
        return by_rank;
    }
    match (a, b) {
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::Document(x), Bson::Document(y)) => compare_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            compare_elements(x.iter().map(|v| ("", v)), y.iter().map(|v| ("", v)))
        }
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_bytes()
            .cmp(y.pattern.as_bytes())
            .then_with(|| x.options.as_bytes().cmp(y.options.as_bytes())),
        (Bson::DbPointer(_), Bson::DbPointer(_)) => {
            // The bson crate hides the fields; the raw encoding (length-prefixed namespace,
            // then the ObjectId) compared by size then bytes is mongod's order.
            let encode = |v: &Bson| bson::to_vec(&bson::doc! {"p": v.clone()}).unwrap_or_default();
            let (x, y) = (encode(a), encode(b));
            x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
        }
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents(&x.scope, &y.scope)),
        _ => match (Number::of(a), Number::of(b)) {
            (Some(x), Some(y)) => x.compare(&y),
            // MinKey, MaxKey, null and undefined carry no value: equal rank is equality.
            _ => Ordering::Equal,
        },
    }
}

/// Equality in the canonical order (`1 == 1.0 == NumberLong(1)`, as the `_id` index sees it).
pub fn equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

/// Documents compare element by element: type rank, then field name, then value; a
/// prefix sorts first.
pub fn compare_documents(a: &Document, b: &Document) -> Ordering {
    compare_elements(
        a.iter().map(|(k, v)| (k.as_str(), v)),
        b.iter().map(|(k, v)| (k.as_str(), v)),
    )
}

fn compare_elements<'a>(
    mut left: impl Iterator<Item = (&'a str, &'a Bson)>,
    mut right: impl Iterator<Item = (&'a str, &'a Bson)>,
) -> Ordering {
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((lk, lv)), Some((rk, rv))) => {
                let order = rank(lv)
                    .cmp(&rank(rv))
                    .then_with(|| lk.as_bytes().cmp(rk.as_bytes()))
                    .then_with(|| compare(lv, rv));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// A number of any BSON width.
#[derive(Debug, Clone, Copy)]
enum Number {
    Long(i64),
    Double(f64),
    Decimal(Dec),
}

impl Number {
    fn of(value: &Bson) -> Option<Number> {
        match value {
            Bson::Int32(v) => Some(Number::Long(i64::from(*v))),
            Bson::Int64(v) => Some(Number::Long(*v)),
            Bson::Double(v) => Some(Number::Double(*v)),
            Bson::Decimal128(v) => Some(Number::Decimal(Dec::decode(v))),
            _ => None,
        }
    }

    fn is_nan(&self) -> bool {
        match self {
            Number::Long(_) => false,
            Number::Double(v) => v.is_nan(),
            Number::Decimal(d) => matches!(d, Dec::NaN),
        }
    }

    /// Exact comparison; NaN is below every number and equal to NaN of any width.
    fn compare(&self, other: &Number) -> Ordering {
        match (self.is_nan(), other.is_nan()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        match (*self, *other) {
            (Number::Long(x), Number::Long(y)) => x.cmp(&y),
            (Number::Double(x), Number::Double(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            (Number::Long(x), Number::Double(y)) => long_vs_double(x, y),
            (Number::Double(x), Number::Long(y)) => long_vs_double(y, x).reverse(),
            (Number::Decimal(x), Number::Decimal(y)) => x.compare(&y),
            (Number::Decimal(x), Number::Long(y)) => x.compare(&Dec::from_i64(y)),
            (Number::Long(x), Number::Decimal(y)) => Dec::from_i64(x).compare(&y),
            // mongod converts the double to a 34-digit decimal before comparing.
            (Number::Decimal(x), Number::Double(y)) => x.compare(&Dec::from_f64(y)),
            (Number::Double(x), Number::Decimal(y)) => Dec::from_f64(x).compare(&y),
        }
    }
}

/// mongod's `compareLongToDouble`: exact, without rounding the long to a double.
fn long_vs_double(long: i64, double: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if double >= TWO_63 {
        return Ordering::Less;
    }
    if double < -TWO_63 {
        return Ordering::Greater;
    }
    let whole = double.trunc();
    // `whole` is within i64's range here, so the cast is exact.
    match long.cmp(&(whole as i64)) {
        Ordering::Equal => 0.0_f64
            .partial_cmp(&(double - whole))
            .unwrap_or(Ordering::Equal),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, Decimal128, Timestamp};
    use std::str::FromStr;

    fn dec(text: &str) -> Bson {
        Bson::Decimal128(Decimal128::from_str(text).expect("valid decimal"))
    }

    #[test]
    fn numbers_compare_exactly_across_widths() {
        assert!(equal(&Bson::Int32(1), &Bson::Int64(1)));
        assert!(equal(&Bson::Int32(1), &Bson::Double(1.0)));
        assert!(equal(&Bson::Double(1.0), &dec("1.000")));
        assert!(equal(&Bson::Int64(1000), &dec("1E+3")));
        assert!(equal(&Bson::Double(-0.0), &Bson::Int32(0)));
        assert!(equal(&dec("-0"), &Bson::Int32(0)));
        let big = (1_i64 << 53) + 1;
        assert_eq!(
            compare(&Bson::Int64(big), &Bson::Double((1_i64 << 53) as f64)),
            Ordering::Greater
        );
        assert_eq!(
            compare(&Bson::Int64(i64::MAX), &Bson::Double(9.3e18)),
            Ordering::Less
        );
        assert_eq!(
            compare(&Bson::Int64(i64::MIN), &Bson::Double(-9.3e18)),
            Ordering::Greater
        );
        assert_eq!(
            compare(&Bson::Double(1.5), &Bson::Int32(1)),
            Ordering::Greater
        );
        assert_eq!(
            compare(&Bson::Double(-1.5), &Bson::Int32(-1)),
            Ordering::Less
        );
        assert_eq!(compare(&dec("0.1"), &Bson::Double(0.1)), Ordering::Less);
        assert_eq!(compare(&dec("2.5"), &Bson::Int64(2)), Ordering::Greater);
        assert_eq!(compare(&dec("-2.5"), &Bson::Int64(-2)), Ordering::Less);
        assert_eq!(
            compare(&dec("9223372036854775808"), &Bson::Int64(i64::MAX)),
            Ordering::Greater
        );
        assert_eq!(
            compare(&dec("Infinity"), &Bson::Double(f64::MAX)),
            Ordering::Greater
        );
        assert_eq!(
            compare(&dec("-Infinity"), &Bson::Double(f64::NEG_INFINITY)),
            Ordering::Equal
        );
        assert_eq!(compare(&dec("1E-6000"), &Bson::Int32(0)), Ordering::Greater);
        assert_eq!(
            compare(&dec("1E+6000"), &Bson::Double(f64::MAX)),
            Ordering::Greater
        );
    }

    #[test]
    fn nan_is_lowest_number_and_equal_to_itself() {
        assert!(equal(&Bson::Double(f64::NAN), &dec("NaN")));
        assert_eq!(
            compare(&Bson::Double(f64::NAN), &Bson::Double(f64::NEG_INFINITY)),
            Ordering::Less
        );
        assert_eq!(compare(&dec("NaN"), &Bson::Int64(i64::MIN)), Ordering::Less);
        assert_eq!(
            compare(&Bson::Null, &Bson::Double(f64::NAN)),
            Ordering::Less
        );
    }

    #[test]
    fn types_are_ranked_before_values() {
        let ordered = [
            Bson::MinKey,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Int32(5),
            Bson::String("10".into()),
            Bson::String("9".into()),
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": 1, "b": 1}),
            Bson::Document(doc! {"a": "x"}),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Binary(Binary {
                subtype: BinarySubtype::UserDefined(0x80),
                bytes: vec![9],
            }),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![0, 0],
            }),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::ObjectId(ObjectId::from_bytes([1; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(-1)),
            Bson::DateTime(bson::DateTime::from_millis(0)),
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: u32::MAX,
            }),
            Bson::Timestamp(Timestamp {
                time: u32::MAX,
                increment: 0,
            }),
            Bson::RegularExpression(bson::Regex {
                pattern: "a".into(),
                options: String::new(),
            }),
            Bson::JavaScriptCode("x".into()),
            Bson::MaxKey,
        ];
        for pair in ordered.windows(2) {
            assert_eq!(
                compare(&pair[0], &pair[1]),
                Ordering::Less,
                "{:?} < {:?}",
                pair[0],
                pair[1]
            );
            assert_eq!(compare(&pair[1], &pair[0]), Ordering::Greater);
        }
        // Field order matters for documents: {a,b} and {b,a} are different keys.
        assert!(!equal(
            &Bson::Document(doc! {"a": 1, "b": 2}),
            &Bson::Document(doc! {"b": 2, "a": 1})
        ));
        assert!(equal(
            &Bson::Document(doc! {"a": 1}),
            &Bson::Document(doc! {"a": 1.0})
        ));
    }
}
