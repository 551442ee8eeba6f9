//! Arithmetic with mongod's result types (`ExpressionAdd`, `AccumulatorSum`, ...):
//! int op int stays int unless it overflows (then long), long overflow becomes double,
//! any double makes a double, any decimal makes a decimal. Integer sums are kept exact
//! and doubles are summed in double-double precision, as mongod's
//! `DoubleDoubleSummation` does, so large longs are not rounded through `f64` early.

use bson::Bson;

use super::dec_math::{
    dec_bson, dec_div, dec_from_f64, dec_from_i128, dec_rem, to_dec, to_f64, DEC_ONE, DEC_ZERO,
};
use super::{is_nullish, loc, type_name};
use crate::bson_cmp::Number;
use crate::decimal::Dec;
use crate::error::CmdResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    Int,
    Long,
    Double,
    Decimal,
}

pub(crate) fn width_of(value: &Bson) -> Option<Width> {
    match value {
        Bson::Int32(_) => Some(Width::Int),
        Bson::Int64(_) => Some(Width::Long),
        Bson::Double(_) => Some(Width::Double),
        Bson::Decimal128(_) => Some(Width::Decimal),
        _ => None,
    }
}

/// A double-double accumulator (TwoSum), so that summing many doubles or large longs
/// rounds once at the end instead of at every step.
#[derive(Debug, Default, Clone, Copy)]
struct DoubleDouble {
    hi: f64,
    lo: f64,
}

impl DoubleDouble {
    fn add(&mut self, value: f64) {
        if !value.is_finite() || !self.hi.is_finite() {
            self.hi += value;
            self.lo = 0.0;
            return;
        }
        let sum = self.hi + value;
        let virtual_value = sum - self.hi;
        let error = (self.hi - (sum - virtual_value)) + (value - virtual_value);
        let low = self.lo + error;
        let total = sum + low;
        self.lo = low - (total - sum);
        self.hi = total;
    }

    fn add_i128(&mut self, value: i128) {
        let high = value as f64;
        let rest = value - high as i128;
        self.add(high);
        self.add(rest as f64);
    }

    fn value(&self) -> f64 {
        if self.hi.is_finite() {
            self.hi + self.lo
        } else {
            self.hi
        }
    }
}

/// The running state of `$sum`/`$avg`/`$add`: the widest type seen, the exact integer
/// total, the double total, and the decimal total (decimals plus doubles converted).
#[derive(Debug, Clone)]
pub(crate) struct NumSum {
    width: Width,
    ints: i128,
    doubles: DoubleDouble,
    decimals: Dec,
    count: u64,
}

impl NumSum {
    pub(crate) fn new() -> NumSum {
        NumSum {
            width: Width::Int,
            ints: 0,
            doubles: DoubleDouble::default(),
            decimals: DEC_ZERO,
            count: 0,
        }
    }

    /// Adds a number; returns false (and ignores the value) for non-numbers.
    pub(crate) fn add(&mut self, value: &Bson) -> bool {
        let Some(width) = width_of(value) else {
            return false;
        };
        self.width = self.width.max(width);
        self.count += 1;
        match Number::from_bson(value) {
            Some(Number::Long(v)) => self.ints += i128::from(v),
            Some(Number::Double(v)) => {
                self.doubles.add(v);
                self.decimals = self.decimals.add(&dec_from_f64(v));
            }
            Some(Number::Decimal(d)) => self.decimals = self.decimals.add(&d),
            None => {}
        }
        true
    }

    pub(crate) fn is_decimal(&self) -> bool {
        self.width == Width::Decimal
    }

    pub(crate) fn total_f64(&self) -> f64 {
        let mut total = self.doubles;
        total.add_i128(self.ints);
        total.value()
    }

    pub(crate) fn total_dec(&self) -> Dec {
        self.decimals.add(&dec_from_i128(self.ints))
    }

    pub(crate) fn result(&self) -> Bson {
        match self.width {
            Width::Int | Width::Long => {
                if self.width == Width::Int {
                    if let Ok(small) = i32::try_from(self.ints) {
                        return Bson::Int32(small);
                    }
                }
                match i64::try_from(self.ints) {
                    Ok(long) => Bson::Int64(long),
                    Err(_) => Bson::Double(self.total_f64()),
                }
            }
            Width::Double => Bson::Double(self.total_f64()),
            Width::Decimal => dec_bson(self.total_dec()),
        }
    }

    /// `$avg`: null without numbers, decimal when a decimal was seen, else double.
    pub(crate) fn average(&self) -> Bson {
        if self.count == 0 {
            return Bson::Null;
        }
        if self.is_decimal() {
            return dec_bson(dec_div(
                &self.total_dec(),
                &Dec::from_i64(self.count as i64),
            ));
        }
        Bson::Double(self.total_f64() / self.count as f64)
    }
}

/// `$sum` over values (non-numbers ignored).
pub(crate) fn sum_of(values: &[Bson]) -> Bson {
    let mut sum = NumSum::new();
    for value in values {
        sum.add(value);
    }
    sum.result()
}

pub(crate) fn avg_of(values: &[Bson]) -> Bson {
    let mut sum = NumSum::new();
    for value in values {
        sum.add(value);
    }
    sum.average()
}

/// `$add`: numbers and at most one date; a nullish operand makes the result null.
pub(crate) fn add(values: &[Option<Bson>]) -> CmdResult<Bson> {
    let mut sum = NumSum::new();
    let mut date = None;
    for value in values {
        match value {
            None | Some(Bson::Null | Bson::Undefined) => return Ok(Bson::Null),
            Some(Bson::DateTime(when)) => {
                if date.is_some() {
                    return Err(loc(16612, "only one date allowed in an $add expression"));
                }
                date = Some(when.timestamp_millis());
            }
            Some(other) => {
                if !sum.add(other) {
                    return Err(loc(
                        16554,
                        format!(
                            "$add only supports numeric or date types, not {}",
                            type_name(Some(other))
                        ),
                    ));
                }
            }
        }
    }
    let Some(millis) = date else {
        return Ok(sum.result());
    };
    let offset = round_to_i64(&sum.result()).ok_or_else(|| loc(15, "date overflow in $add"))?;
    let total = millis
        .checked_add(offset)
        .ok_or_else(|| loc(15, "date overflow in $add"))?;
    Ok(Bson::DateTime(bson::DateTime::from_millis(total)))
}

/// A number rounded half away from zero (mongod's `llround` for date arithmetic).
fn round_to_i64(value: &Bson) -> Option<i64> {
    match Number::from_bson(value)? {
        Number::Long(v) => Some(v),
        Number::Double(v) => {
            let rounded = v.round();
            // [-2^63, 2^63): the doubles that convert to a long without saturating.
            (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
                .contains(&rounded)
                .then_some(rounded as i64)
        }
        Number::Decimal(d) => round_to_i64(&Bson::Double(d.to_f64())),
    }
}

pub(crate) fn subtract(left: Option<&Bson>, right: Option<&Bson>) -> CmdResult<Bson> {
    if let (Some(l), Some(r)) = (left, right) {
        if let (Some(lw), Some(rw)) = (width_of(l), width_of(r)) {
            return Ok(match lw.max(rw) {
                Width::Decimal => {
                    let negated = to_dec(r);
                    let negated = Dec {
                        negative: !negated.negative,
                        ..negated
                    };
                    dec_bson(to_dec(l).add(&negated))
                }
                Width::Double => Bson::Double(to_f64(l) - to_f64(r)),
                width => {
                    let (a, b) = (integer(l), integer(r));
                    match a.checked_sub(b) {
                        Some(diff) if width == Width::Int => int_or_long(diff),
                        Some(diff) => Bson::Int64(diff),
                        None => Bson::Double(a as f64 - b as f64),
                    }
                }
            });
        }
    }
    if is_nullish(left) || is_nullish(right) {
        return Ok(Bson::Null);
    }
    match (left, right) {
        (Some(Bson::DateTime(a)), Some(Bson::DateTime(b))) => a
            .timestamp_millis()
            .checked_sub(b.timestamp_millis())
            .map(Bson::Int64)
            .ok_or_else(|| loc(15, "date overflow in $subtract")),
        (Some(Bson::DateTime(a)), Some(number)) if width_of(number).is_some() => {
            let offset =
                round_to_i64(number).ok_or_else(|| loc(15, "date overflow in $subtract"))?;
            let millis = a
                .timestamp_millis()
                .checked_sub(offset)
                .ok_or_else(|| loc(15, "date overflow in $subtract"))?;
            Ok(Bson::DateTime(bson::DateTime::from_millis(millis)))
        }
        _ => Err(loc(
            16556,
            format!(
                "cant $subtract a {} from a {}",
                type_name(right),
                type_name(left)
            ),
        )),
    }
}

fn integer(value: &Bson) -> i64 {
    match value {
        Bson::Int32(v) => i64::from(*v),
        Bson::Int64(v) => *v,
        _ => 0,
    }
}

/// `Value::createIntOrLong`.
fn int_or_long(value: i64) -> Bson {
    i32::try_from(value).map_or(Bson::Int64(value), Bson::Int32)
}

pub(crate) fn multiply(values: &[Option<Bson>]) -> CmdResult<Bson> {
    let mut width = Width::Int;
    let mut long_product: i64 = 1;
    let mut double_product = 1.0_f64;
    let mut decimal_product = DEC_ONE;
    for value in values {
        let value = match value {
            None | Some(Bson::Null | Bson::Undefined) => return Ok(Bson::Null),
            Some(value) => value,
        };
        let Some(value_width) = width_of(value) else {
            return Err(loc(
                16555,
                format!(
                    "$multiply only supports numeric types, not {}",
                    type_name(Some(value))
                ),
            ));
        };
        decimal_product = decimal_product.mul(&to_dec(value));
        let mut next = width.max(value_width);
        if next <= Width::Long {
            match long_product.checked_mul(integer(value)) {
                Some(product) => long_product = product,
                None => {
                    // Long overflow continues in double, like mongod.
                    double_product = long_product as f64 * integer(value) as f64;
                    next = Width::Double;
                }
            }
        } else if next == Width::Double {
            if width <= Width::Long {
                double_product = long_product as f64;
            }
            double_product *= to_f64(value);
        }
        width = next;
    }
    Ok(match width {
        Width::Int => int_or_long(long_product),
        Width::Long => Bson::Int64(long_product),
        Width::Double => Bson::Double(double_product),
        Width::Decimal => dec_bson(decimal_product),
    })
}

fn is_zero(value: &Bson) -> bool {
    match Number::from_bson(value) {
        Some(Number::Long(v)) => v == 0,
        Some(Number::Double(v)) => v == 0.0,
        Some(Number::Decimal(d)) => d.is_zero(),
        None => false,
    }
}

pub(crate) fn divide(left: Option<&Bson>, right: Option<&Bson>) -> CmdResult<Bson> {
    if let (Some(l), Some(r)) = (left, right) {
        if let (Some(lw), Some(rw)) = (width_of(l), width_of(r)) {
            if is_zero(r) {
                return Err(loc(16608, "can't $divide by zero"));
            }
            if lw == Width::Decimal || rw == Width::Decimal {
                return Ok(dec_bson(dec_div(&to_dec(l), &to_dec(r))));
            }
            return Ok(Bson::Double(to_f64(l) / to_f64(r)));
        }
    }
    if is_nullish(left) || is_nullish(right) {
        return Ok(Bson::Null);
    }
    Err(loc(
        16609,
        format!(
            "$divide only supports numeric types, not {} and {}",
            type_name(left),
            type_name(right)
        ),
    ))
}

pub(crate) fn modulo(left: Option<&Bson>, right: Option<&Bson>) -> CmdResult<Bson> {
    if let (Some(l), Some(r)) = (left, right) {
        if let (Some(lw), Some(rw)) = (width_of(l), width_of(r)) {
            if is_zero(r) {
                return Err(loc(16610, "can't $mod by zero"));
            }
            return Ok(match lw.max(rw) {
                Width::Decimal => dec_bson(dec_rem(&to_dec(l), &to_dec(r))?),
                Width::Double => Bson::Double(to_f64(l) % to_f64(r)),
                Width::Long => Bson::Int64(integer(l).wrapping_rem(integer(r))),
                Width::Int => Bson::Int32((integer(l) as i32).wrapping_rem(integer(r) as i32)),
            });
        }
    }
    if is_nullish(left) || is_nullish(right) {
        return Ok(Bson::Null);
    }
    Err(loc(
        16611,
        format!(
            "$mod only supports numeric types, not {} and {}",
            type_name(left),
            type_name(right)
        ),
    ))
}

pub(crate) fn abs(value: Option<&Bson>) -> CmdResult<Bson> {
    match value {
        v if is_nullish(v) => Ok(Bson::Null),
        Some(Bson::Int32(v)) => Ok(int_or_long(i64::from(*v).abs())),
        Some(Bson::Int64(v)) => v
            .checked_abs()
            .map(Bson::Int64)
            .ok_or_else(|| loc(28680, "can't take $abs of long long min")),
        Some(Bson::Double(v)) => Ok(Bson::Double(v.abs())),
        Some(Bson::Decimal128(d)) => {
            let dec = Dec::from_decimal128(d);
            Ok(dec_bson(Dec {
                negative: false,
                ..dec
            }))
        }
        other => Err(loc(
            28765,
            format!("$abs only supports numeric types, not {}", type_name(other)),
        )),
    }
}
