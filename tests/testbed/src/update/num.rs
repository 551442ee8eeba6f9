//! mongod's `SafeNum` arithmetic for `$inc`, `$mul` and `$bit`: the result takes the widest
//! operand type (int < long < double < decimal), int overflow widens to long, long overflow
//! falls back to double.

use bson::Bson;

use super::ops::BitOp;
use crate::decimal::{Dec, DecKind};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Width {
    Int,
    Long,
    Double,
    Decimal,
}

fn width(v: &Bson) -> Width {
    match v {
        Bson::Int32(_) => Width::Int,
        Bson::Int64(_) => Width::Long,
        Bson::Double(_) => Width::Double,
        _ => Width::Decimal,
    }
}

fn as_i64(v: &Bson) -> i64 {
    match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        _ => 0,
    }
}

fn as_f64(v: &Bson) -> f64 {
    match v {
        Bson::Int32(i) => f64::from(*i),
        Bson::Int64(i) => *i as f64,
        Bson::Double(d) => *d,
        Bson::Decimal128(d) => Dec::from_decimal128(d).to_f64(),
        _ => 0.0,
    }
}

/// `Decimal128(double)` rounds to 15 significant digits (kRoundTo15Digits), unlike
/// comparisons, which use 34.
fn dec_from_f64_15(value: f64) -> Dec {
    if !value.is_finite() || value == 0.0 {
        return Dec::from_f64_34_digits(value);
    }
    let text = format!("{:.14e}", value.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    Dec {
        negative: value < 0.0,
        kind: DecKind::Finite,
        coefficient: digits.parse().unwrap_or(0),
        exponent: exp.parse::<i32>().unwrap_or(0) - 14,
    }
}

fn as_dec(v: &Bson) -> Dec {
    match v {
        Bson::Int32(_) | Bson::Int64(_) => Dec::from_i64(as_i64(v)),
        Bson::Double(d) => dec_from_f64_15(*d),
        Bson::Decimal128(d) => Dec::from_decimal128(d),
        _ => Dec::from_i64(0),
    }
}

fn arith(
    a: &Bson,
    b: &Bson,
    int_op: fn(i64, i64) -> Option<i64>,
    f_op: fn(f64, f64) -> f64,
    d_op: fn(&Dec, &Dec) -> Dec,
) -> Bson {
    match width(a).max(width(b)) {
        Width::Int => match int_op(as_i64(a), as_i64(b)) {
            Some(r) => i32::try_from(r).map(Bson::Int32).unwrap_or(Bson::Int64(r)),
            None => Bson::Double(f_op(as_f64(a), as_f64(b))),
        },
        Width::Long => match int_op(as_i64(a), as_i64(b)) {
            Some(r) => Bson::Int64(r),
            None => Bson::Double(f_op(as_f64(a), as_f64(b))),
        },
        Width::Double => Bson::Double(f_op(as_f64(a), as_f64(b))),
        Width::Decimal => Bson::Decimal128(d_op(&as_dec(a), &as_dec(b)).to_decimal128()),
    }
}

pub(crate) fn add(a: &Bson, b: &Bson) -> Bson {
    arith(a, b, i64::checked_add, |x, y| x + y, |x, y| x.add(y))
}

pub(crate) fn mul(a: &Bson, b: &Bson) -> Bson {
    arith(a, b, i64::checked_mul, |x, y| x * y, |x, y| x.mul(y))
}

/// `$bit`: int op int stays int; anything with a long becomes long.
pub(crate) fn bit(op: BitOp, a: &Bson, b: &Bson) -> Bson {
    let (x, y) = (as_i64(a), as_i64(b));
    let r = match op {
        BitOp::And => x & y,
        BitOp::Or => x | y,
        BitOp::Xor => x ^ y,
    };
    if matches!((a, b), (Bson::Int32(_), Bson::Int32(_))) {
        Bson::Int32(r as i32)
    } else {
        Bson::Int64(r)
    }
}
