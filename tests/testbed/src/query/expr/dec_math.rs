//! Decimal128 helpers for the expression operators: conversion from doubles the way
//! mongod's `Decimal128(double)` does, division and remainder (the shared `decimal` module
//! has only add and multiply), and an encoder that rounds to 34 digits half to even.

use bson::Bson;

use crate::bson_cmp::Number;
use crate::decimal::{Dec, DecKind};
use crate::error::{CmdResult, CommandError};

pub(crate) const DEC_NAN: Dec = Dec {
    negative: false,
    kind: DecKind::NaN,
    coefficient: 0,
    exponent: 0,
};
pub(crate) const DEC_ZERO: Dec = Dec {
    negative: false,
    kind: DecKind::Finite,
    coefficient: 0,
    exponent: 0,
};
pub(crate) const DEC_ONE: Dec = Dec {
    negative: false,
    kind: DecKind::Finite,
    coefficient: 1,
    exponent: 0,
};

/// mongod's `Decimal128(double)`: the double rounded to 15 significant digits, trailing
/// zeros kept (`$toDecimal: 2.5` is `2.50000000000000`).
pub(crate) fn dec_from_f64(value: f64) -> Dec {
    if value.is_nan() {
        return DEC_NAN;
    }
    if value.is_infinite() {
        return Dec {
            negative: value < 0.0,
            kind: DecKind::Infinite,
            coefficient: 0,
            exponent: 0,
        };
    }
    if value == 0.0 {
        return Dec {
            negative: value.is_sign_negative(),
            ..DEC_ZERO
        };
    }
    let text = format!("{:.14e}", value.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    Dec {
        negative: value < 0.0,
        kind: DecKind::Finite,
        coefficient: digits.parse().unwrap_or(0),
        exponent: exponent.parse::<i32>().unwrap_or(0) - 14,
    }
}

pub(crate) fn dec_from_i128(value: i128) -> Dec {
    Dec {
        negative: value < 0,
        kind: DecKind::Finite,
        coefficient: value.unsigned_abs(),
        exponent: 0,
    }
}

pub(crate) fn to_dec(value: &Bson) -> Dec {
    match Number::from_bson(value) {
        Some(Number::Long(v)) => Dec::from_i64(v),
        Some(Number::Double(v)) => dec_from_f64(v),
        Some(Number::Decimal(d)) => d,
        None => DEC_NAN,
    }
}

pub(crate) fn to_f64(value: &Bson) -> f64 {
    Number::from_bson(value).map_or(f64::NAN, |n| n.to_f64())
}

pub(crate) fn dec_bson(value: Dec) -> Bson {
    Bson::Decimal128(encode_decimal(value))
}

const MAX_DIGITS_COEFFICIENT: u128 = 9_999_999_999_999_999_999_999_999_999_999_999; // 10^34 - 1
const EXPONENT_BIAS: i32 = 6176;
const MAX_BIASED_EXPONENT: i32 = 12287;

/// IEEE 754-2008 BID encoding with the coefficient rounded to 34 digits half-to-even
/// (the decimal context mongod uses), clamping the exponent into range.
fn encode_decimal(value: Dec) -> bson::Decimal128 {
    let sign = if value.negative { 1u128 << 127 } else { 0 };
    let bits = match value.kind {
        DecKind::NaN => 0b1_1111u128 << 122,
        DecKind::Infinite => sign | (0b1_1110u128 << 122),
        DecKind::Finite => {
            let (mut coefficient, mut exponent) = (value.coefficient, value.exponent);
            // Digits to drop: beyond 34, or below the smallest exponent; rounded once, half to even.
            let digits = if coefficient == 0 {
                1
            } else {
                coefficient.ilog10() as i32 + 1
            };
            let drop = (digits - 34).max(-(exponent + EXPONENT_BIAS)).max(0);
            if drop > 38 {
                coefficient = 0;
                exponent += drop;
            } else if drop > 0 {
                let divisor = 10u128.pow(drop as u32);
                let (quotient, remainder) = (coefficient / divisor, coefficient % divisor);
                let half = divisor / 2;
                let round_up = remainder > half || (remainder == half && quotient % 2 == 1);
                coefficient = quotient + u128::from(round_up);
                exponent += drop;
                if coefficient > MAX_DIGITS_COEFFICIENT {
                    coefficient /= 10;
                    exponent += 1;
                }
            }
            if coefficient == 0 {
                exponent = exponent.clamp(-EXPONENT_BIAS, MAX_BIASED_EXPONENT - EXPONENT_BIAS);
            }
            // Too large an exponent: pad the coefficient with zeros if it has room, else infinity.
            while exponent + EXPONENT_BIAS > MAX_BIASED_EXPONENT
                && coefficient <= MAX_DIGITS_COEFFICIENT / 10
            {
                coefficient *= 10;
                exponent -= 1;
            }
            if exponent + EXPONENT_BIAS > MAX_BIASED_EXPONENT {
                sign | (0b1_1110u128 << 122)
            } else {
                sign | (((exponent + EXPONENT_BIAS) as u128) << 113) | coefficient
            }
        }
    };
    bson::Decimal128::from_bytes(bits.to_le_bytes())
}

/// Decimal division by long division, to 35 significant digits before the final
/// rounding to 34. Exact quotients keep the smallest exponent that represents them.
pub(crate) fn dec_div(a: &Dec, b: &Dec) -> Dec {
    let negative = a.negative != b.negative;
    if a.is_nan() || b.is_nan() {
        return DEC_NAN;
    }
    match (a.kind, b.kind) {
        (DecKind::Infinite, DecKind::Infinite) => return DEC_NAN,
        (DecKind::Infinite, _) => {
            return Dec {
                negative,
                kind: DecKind::Infinite,
                coefficient: 0,
                exponent: 0,
            }
        }
        (_, DecKind::Infinite) => {
            return Dec {
                negative,
                ..DEC_ZERO
            }
        }
        _ => {}
    }
    if b.coefficient == 0 {
        return if a.coefficient == 0 {
            DEC_NAN
        } else {
            Dec {
                negative,
                kind: DecKind::Infinite,
                coefficient: 0,
                exponent: 0,
            }
        };
    }
    const LIMIT: u128 = 10_000_000_000_000_000_000_000_000_000_000_000; // 10^34
    let mut quotient = a.coefficient / b.coefficient;
    let mut remainder = a.coefficient % b.coefficient;
    let mut exponent = a.exponent - b.exponent;
    while remainder != 0 && quotient < LIMIT {
        remainder *= 10;
        quotient = quotient * 10 + remainder / b.coefficient;
        remainder %= b.coefficient;
        exponent -= 1;
    }
    Dec {
        negative,
        kind: DecKind::Finite,
        coefficient: quotient,
        exponent,
    }
}

/// Decimal remainder with the dividend's sign, computed exactly on aligned coefficients.
pub(crate) fn dec_rem(a: &Dec, b: &Dec) -> CmdResult<Dec> {
    if a.is_nan() || b.is_nan() || a.kind == DecKind::Infinite {
        return Ok(DEC_NAN);
    }
    if b.kind == DecKind::Infinite {
        return Ok(*a);
    }
    let exponent = a.exponent.min(b.exponent);
    let scale = |d: &Dec| {
        10u128
            .checked_pow((d.exponent - exponent) as u32)
            .and_then(|factor| d.coefficient.checked_mul(factor))
    };
    match (scale(a), scale(b)) {
        (Some(x), Some(y)) if y != 0 => Ok(Dec {
            negative: a.negative,
            kind: DecKind::Finite,
            coefficient: x % y,
            exponent,
        }),
        _ => Err(CommandError::not_implemented(
            "$mod on decimals whose exponents differ this much",
        )),
    }
}
