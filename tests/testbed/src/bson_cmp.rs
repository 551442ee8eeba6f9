//! BSON comparison exactly as mongod does it (testbed reference §5).
//!
//! Two orders live here:
//! - [`compare`]: the canonical total order used by sort, index keys, `$min`/`$max`
//!   and aggregation comparisons. Types are ranked first (`canonical_rank`), numbers of
//!   every width form one class compared exactly, documents compare element by element
//!   (rank, then field name, then value).
//! - Query predicates add type bracketing on top; that logic lives in `query::matcher`
//!   and uses [`same_bracket`].
//!
//! Numbers are never converted to `f64` to compare them: a long above 2^53 must stay
//! distinct from the nearest double, or `_id` partitions overlap silently.

use std::cmp::Ordering;

use bson::{spec::BinarySubtype, Bson, Document};

use crate::decimal::Dec;

/// mongod's `canonicalizeBSONType` rank.
pub fn canonical_rank(value: &Bson) -> i32 {
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

/// True when both values sit in the same comparison class (same canonical rank).
pub fn same_bracket(a: &Bson, b: &Bson) -> bool {
    canonical_rank(a) == canonical_rank(b)
}

/// The canonical total order over BSON values.
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let rank_order = canonical_rank(a).cmp(&canonical_rank(b));
    if rank_order != Ordering::Equal {
        return rank_order;
    }
    match (a, b) {
        (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_), _) => {
            compare_numbers(a, b)
        }
        (Bson::String(_) | Bson::Symbol(_), _) => string_bytes(a).cmp(string_bytes(b)),
        (Bson::Document(x), Bson::Document(y)) => compare_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => compare_arrays(x, y),
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| subtype_byte(x.subtype).cmp(&subtype_byte(y.subtype)))
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
        (Bson::DbPointer(x), Bson::DbPointer(y)) => {
            // Fields are private in the bson crate; its raw encoding is size, namespace, oid,
            // which is exactly mongod's "size then bytes" order.
            let xe =
                bson::to_vec(&bson::doc! {"p": Bson::DbPointer(x.clone())}).unwrap_or_default();
            let ye =
                bson::to_vec(&bson::doc! {"p": Bson::DbPointer(y.clone())}).unwrap_or_default();
            xe.len().cmp(&ye.len()).then_with(|| xe.cmp(&ye))
        }
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents(&x.scope, &y.scope)),
        // MinKey, MaxKey, Null and Undefined carry no value: equal rank means equal.
        _ => Ordering::Equal,
    }
}

/// Element by element: canonical rank, then field name, then value; a prefix sorts first.
pub fn compare_documents(a: &Document, b: &Document) -> Ordering {
    let mut left = a.iter();
    let mut right = b.iter();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((lk, lv)), Some((rk, rv))) => {
                let order = canonical_rank(lv)
                    .cmp(&canonical_rank(rv))
                    .then_with(|| lk.as_bytes().cmp(rk.as_bytes()))
                    .then_with(|| compare(lv, rv));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Arrays compare like documents keyed "0", "1", …: the names are equal position by
/// position, so only rank and value matter.
pub fn compare_arrays(a: &[Bson], b: &[Bson]) -> Ordering {
    for (lv, rv) in a.iter().zip(b.iter()) {
        let order = canonical_rank(lv)
            .cmp(&canonical_rank(rv))
            .then_with(|| compare(lv, rv));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Equality under the canonical order (so `1 == 1.0 == NumberLong(1)`).
pub fn values_equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

fn string_bytes(value: &Bson) -> &[u8] {
    match value {
        Bson::String(s) | Bson::Symbol(s) => s.as_bytes(),
        _ => &[],
    }
}

fn subtype_byte(subtype: BinarySubtype) -> u8 {
    u8::from(subtype)
}

/// A number of any BSON width, for exact cross-type comparison.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    Long(i64),
    Double(f64),
    Decimal(Dec),
}

impl Number {
    pub fn from_bson(value: &Bson) -> Option<Number> {
        match value {
            Bson::Int32(v) => Some(Number::Long(i64::from(*v))),
            Bson::Int64(v) => Some(Number::Long(*v)),
            Bson::Double(v) => Some(Number::Double(*v)),
            Bson::Decimal128(d) => Some(Number::Decimal(Dec::from_decimal128(d))),
            _ => None,
        }
    }

    pub fn is_nan(&self) -> bool {
        match self {
            Number::Long(_) => false,
            Number::Double(d) => d.is_nan(),
            Number::Decimal(d) => d.is_nan(),
        }
    }

    /// Lossy view, for arithmetic and display only, never for ordering.
    pub fn to_f64(&self) -> f64 {
        match self {
            Number::Long(v) => *v as f64,
            Number::Double(v) => *v,
            Number::Decimal(d) => d.to_f64(),
        }
    }
}

/// Exact numeric comparison; NaN sorts below every number and equals NaN.
pub fn compare_numbers(a: &Bson, b: &Bson) -> Ordering {
    match (Number::from_bson(a), Number::from_bson(b)) {
        (Some(x), Some(y)) => compare_number(&x, &y),
        _ => Ordering::Equal,
    }
}

pub fn compare_number(a: &Number, b: &Number) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    match (a, b) {
        (Number::Long(x), Number::Long(y)) => x.cmp(y),
        (Number::Double(x), Number::Double(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Number::Long(x), Number::Double(y)) => compare_long_to_double(*x, *y),
        (Number::Double(x), Number::Long(y)) => compare_long_to_double(*y, *x).reverse(),
        (Number::Decimal(x), Number::Decimal(y)) => x.cmp_value(y),
        (Number::Decimal(x), Number::Long(y)) => x.cmp_value(&Dec::from_i64(*y)),
        (Number::Long(x), Number::Decimal(y)) => Dec::from_i64(*x).cmp_value(y),
        (Number::Decimal(x), Number::Double(y)) => x.cmp_value(&Dec::from_f64_34_digits(*y)),
        (Number::Double(x), Number::Decimal(y)) => Dec::from_f64_34_digits(*x).cmp_value(y),
    }
}

/// mongod's `compareLongToDouble`: exact, without rounding the long to a double.
fn compare_long_to_double(long: i64, double: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if double >= TWO_63 {
        return Ordering::Less;
    }
    if double < -TWO_63 {
        return Ordering::Greater;
    }
    let whole = double.trunc();
    let whole_long = whole as i64;
    match long.cmp(&whole_long) {
        Ordering::Equal => 0.0_f64
            .partial_cmp(&(double - whole))
            .unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// A BSON value ordered and compared by the canonical order, for use as a map key.
#[derive(Debug, Clone)]
pub struct Key(pub Bson);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        compare(&self.0, &other.0) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

/// A compound index key: a tuple of values compared position by position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyTuple(pub Vec<Key>);

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, Binary, Decimal128, Timestamp};
    use std::str::FromStr;

    fn dec(s: &str) -> Bson {
        Bson::Decimal128(Decimal128::from_str(s).unwrap())
    }

    #[test]
    fn numbers_of_every_width_compare_exactly() {
        assert!(values_equal(&Bson::Int32(1), &Bson::Int64(1)));
        assert!(values_equal(&Bson::Int32(1), &Bson::Double(1.0)));
        assert!(values_equal(&Bson::Double(1.0), &dec("1.0")));
        assert!(values_equal(&Bson::Int64(1), &dec("1")));
        assert!(values_equal(&Bson::Double(-0.0), &Bson::Double(0.0)));
        // 2^53 + 1 is not representable as a double: the long is greater.
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
            compare(&Bson::Double(1.5), &Bson::Int32(1)),
            Ordering::Greater
        );
        assert_eq!(
            compare(&Bson::Double(-1.5), &Bson::Int32(-1)),
            Ordering::Less
        );
        assert_eq!(compare(&dec("0.1"), &Bson::Double(0.1)), Ordering::Less);
        assert_eq!(compare(&dec("2.5"), &Bson::Int32(2)), Ordering::Greater);
    }

    #[test]
    fn nan_sorts_below_every_number_and_equals_itself() {
        assert!(values_equal(
            &Bson::Double(f64::NAN),
            &Bson::Double(f64::NAN)
        ));
        assert!(values_equal(&Bson::Double(f64::NAN), &dec("NaN")));
        assert_eq!(
            compare(&Bson::Double(f64::NAN), &Bson::Double(f64::NEG_INFINITY)),
            Ordering::Less
        );
        assert_eq!(
            compare(&Bson::Double(f64::NAN), &Bson::Int64(i64::MIN)),
            Ordering::Less
        );
        assert_eq!(
            compare(&Bson::Null, &Bson::Double(f64::NAN)),
            Ordering::Less
        );
    }

    #[test]
    fn canonical_type_order() {
        let ordered = vec![
            Bson::MinKey,
            Bson::Null,
            Bson::Int32(5),
            Bson::String("10".into()),
            Bson::Document(doc! {"a": 1}),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![1],
            }),
            Bson::ObjectId(ObjectId::new()),
            Bson::Boolean(false),
            Bson::DateTime(bson::DateTime::from_millis(0)),
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 1,
            }),
            Bson::RegularExpression(bson::Regex {
                pattern: "a".into(),
                options: "".into(),
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
        }
    }

    #[test]
    fn strings_bytewise_and_documents_by_field_name() {
        assert_eq!(
            compare(&Bson::String("10".into()), &Bson::String("9".into())),
            Ordering::Less
        );
        assert_eq!(
            compare(&Bson::String("a".into()), &Bson::String("ab".into())),
            Ordering::Less
        );
        let ab = Bson::Document(doc! {"a": 1, "b": 2});
        let ba = Bson::Document(doc! {"b": 2, "a": 1});
        assert!(!values_equal(&ab, &ba));
        assert_eq!(compare(&ab, &ba), Ordering::Less);
        let a1 = Bson::Document(doc! {"a": 1});
        assert_eq!(compare(&a1, &ab), Ordering::Less);
        // rank before field name: {a: "x"} > {b: 1} because string ranks above number
        assert_eq!(
            compare(
                &Bson::Document(doc! {"a": "x"}),
                &Bson::Document(doc! {"b": 1})
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn bindata_by_length_then_subtype_then_bytes() {
        let short = Bson::Binary(Binary {
            subtype: BinarySubtype::UserDefined(0x80),
            bytes: vec![9],
        });
        let long = Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![0, 0],
        });
        assert_eq!(compare(&short, &long), Ordering::Less);
        let generic = Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![9],
        });
        assert_eq!(compare(&generic, &short), Ordering::Less);
    }

    #[test]
    fn timestamps_compare_unsigned() {
        let small = Bson::Timestamp(Timestamp {
            time: 1,
            increment: u32::MAX,
        });
        let big = Bson::Timestamp(Timestamp {
            time: u32::MAX,
            increment: 0,
        });
        assert_eq!(compare(&small, &big), Ordering::Less);
    }
}
