//! `$type` names and the `$toX` conversions, following `ExpressionConvert`'s table
//! (`expression_convert.cpp`): failures are ConversionFailure (241) with mongod's wording.

use bson::Bson;

use super::dec_math::{dec_bson, dec_from_f64};
use super::{is_nullish, loc};
use crate::decimal::{Dec, DecKind};
use crate::error::{CmdResult, CommandError};

/// `typeName(BSONType)`, as `$type` returns it; missing is "missing".
pub(crate) fn type_name(value: Option<&Bson>) -> &'static str {
    let Some(value) = value else {
        return "missing";
    };
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::DbPointer(_) => "dbPointer",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    String,
    Int,
    Long,
    Double,
    Decimal,
    Bool,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::String => "string",
            Target::Int => "int",
            Target::Long => "long",
            Target::Double => "double",
            Target::Decimal => "decimal",
            Target::Bool => "bool",
        }
    }
}

fn failure(message: impl Into<String>) -> CommandError {
    loc(241, message)
}

fn unsupported(value: &Bson, target: Target) -> CommandError {
    failure(format!(
        "Unsupported conversion from {} to {} in $convert with no onError value",
        type_name(Some(value)),
        target.name()
    ))
}

fn overflow(shown: impl std::fmt::Display) -> CommandError {
    failure(format!(
        "Conversion would overflow target type in $convert with no onError value: {shown}"
    ))
}

fn parse_failure(text: &str) -> CommandError {
    failure(format!(
        "Failed to parse number '{text}' in $convert with no onError value"
    ))
}

/// `$toString` etc.: null, undefined and missing convert to null.
pub(crate) fn convert(value: Option<Bson>, target: Target) -> CmdResult<Option<Bson>> {
    let value = match value {
        v if is_nullish(v.as_ref()) => return Ok(Some(Bson::Null)),
        Some(value) => value,
        None => return Ok(Some(Bson::Null)),
    };
    let converted = match target {
        Target::Int => to_integer(&value, target)?,
        Target::Long => to_integer(&value, target)?,
        Target::Double => to_double(&value)?,
        Target::Decimal => to_decimal(&value)?,
        Target::String => to_string(&value)?,
        Target::Bool => to_bool(&value)?,
    };
    Ok(Some(converted))
}

/// The integer part of a decimal, exactly; `None` when it does not fit in an i128.
fn dec_trunc(value: &Dec) -> Option<i128> {
    let magnitude = if value.exponent >= 0 {
        value
            .coefficient
            .checked_mul(10u128.checked_pow(value.exponent as u32)?)?
    } else {
        let divisor = 10u128.checked_pow(value.exponent.unsigned_abs());
        divisor.map_or(0, |d| value.coefficient / d)
    };
    let signed = i128::try_from(magnitude).ok()?;
    Some(if value.negative { -signed } else { signed })
}

fn to_integer(value: &Bson, target: Target) -> CmdResult<Bson> {
    let (min, max) = match target {
        Target::Int => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    let make = |v: i128| match target {
        Target::Int => Bson::Int32(v as i32),
        _ => Bson::Int64(v as i64),
    };
    let whole: i128 = match value {
        Bson::Boolean(flag) => i128::from(*flag),
        Bson::Int32(v) => i128::from(*v),
        Bson::Int64(v) => i128::from(*v),
        Bson::Double(v) => {
            if v.is_nan() {
                return Err(failure("Attempt to convert NaN value to integer type in $convert with no onError value"));
            }
            if v.is_infinite() {
                return Err(failure("Attempt to convert infinity value to integer type in $convert with no onError value"));
            }
            // 2^63 is exactly representable; the long range is [-2^63, 2^63).
            let in_range = match target {
                Target::Int => *v >= f64::from(i32::MIN) && *v <= f64::from(i32::MAX),
                _ => *v >= -9_223_372_036_854_775_808.0 && *v < 9_223_372_036_854_775_808.0,
            };
            if !in_range {
                return Err(overflow(format_double(*v)));
            }
            v.trunc() as i128
        }
        Bson::Decimal128(d) => {
            let dec = Dec::from_decimal128(d);
            match dec.kind {
                DecKind::NaN => {
                    return Err(failure("Attempt to convert NaN value to integer type in $convert with no onError value"))
                }
                DecKind::Infinite => {
                    return Err(failure(
                        "Attempt to convert infinity value to integer type in $convert with no onError value",
                    ))
                }
                DecKind::Finite => dec_trunc(&dec).ok_or_else(|| overflow(d))?,
            }
        }
        Bson::String(text) => {
            let parsed = if target == Target::Int {
                text.parse::<i32>().map(i128::from)
            } else {
                text.parse::<i64>().map(i128::from)
            };
            parsed.map_err(|_| parse_failure(text))?
        }
        Bson::DateTime(when) if target == Target::Long => i128::from(when.timestamp_millis()),
        other => return Err(unsupported(other, target)),
    };
    if whole < min || whole > max {
        return Err(overflow(value_display(value)));
    }
    Ok(make(whole))
}

fn value_display(value: &Bson) -> String {
    match value {
        Bson::Int64(v) => v.to_string(),
        Bson::Decimal128(d) => d.to_string(),
        other => other.to_string(),
    }
}

fn to_double(value: &Bson) -> CmdResult<Bson> {
    Ok(Bson::Double(match value {
        Bson::Boolean(flag) => f64::from(u8::from(*flag)),
        Bson::Int32(v) => f64::from(*v),
        Bson::Int64(v) => *v as f64,
        Bson::Double(v) => *v,
        Bson::Decimal128(d) => {
            let dec = Dec::from_decimal128(d);
            let converted = dec.to_f64();
            if dec.kind == DecKind::Finite && converted.is_infinite() {
                return Err(overflow(d));
            }
            converted
        }
        Bson::String(text) => {
            // strtod also reads hex floats; mongod accepts them, the testbed does not.
            if text.starts_with("0x") || text.starts_with("-0x") || text.starts_with("0X") {
                return Err(CommandError::not_implemented(
                    "hexadecimal strings in $toDouble",
                ));
            }
            text.parse::<f64>().map_err(|_| parse_failure(text))?
        }
        Bson::DateTime(when) => when.timestamp_millis() as f64,
        other => return Err(unsupported(other, Target::Double)),
    }))
}

fn to_decimal(value: &Bson) -> CmdResult<Bson> {
    Ok(match value {
        Bson::Boolean(flag) => dec_bson(Dec::from_i64(i64::from(*flag))),
        Bson::Int32(v) => dec_bson(Dec::from_i64(i64::from(*v))),
        Bson::Int64(v) => dec_bson(Dec::from_i64(*v)),
        Bson::Double(v) => dec_bson(dec_from_f64(*v)),
        Bson::Decimal128(d) => Bson::Decimal128(*d),
        Bson::String(text) => {
            let parsed: bson::Decimal128 = text.parse().map_err(|_| parse_failure(text))?;
            Bson::Decimal128(parsed)
        }
        Bson::DateTime(when) => dec_bson(Dec::from_i64(when.timestamp_millis())),
        other => return Err(unsupported(other, Target::Decimal)),
    })
}

fn to_string(value: &Bson) -> CmdResult<Bson> {
    let text = match value {
        Bson::String(text) => text.clone(),
        Bson::Boolean(flag) => flag.to_string(),
        Bson::Int32(v) => v.to_string(),
        Bson::Int64(v) => v.to_string(),
        Bson::Double(v) => format_double(*v),
        Bson::Decimal128(d) => d.to_string(),
        Bson::ObjectId(oid) => oid.to_hex(),
        Bson::DateTime(when) => {
            let chrono = when.to_chrono();
            chrono.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
        other => return Err(unsupported(other, Target::String)),
    };
    Ok(Bson::String(text))
}

fn to_bool(value: &Bson) -> CmdResult<Bson> {
    Ok(Bson::Boolean(match value {
        Bson::MinKey | Bson::MaxKey => return Err(unsupported(value, Target::Bool)),
        other => super::is_truthy(Some(other)),
    }))
}

/// mongod formats a double for `$toString` with a C stream (`%g`: six significant digits,
/// trailing zeros dropped, exponent form below 1e-4 or from 1e6), special-casing the
/// non-finite values and negative zero.
pub(crate) fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value < 0.0 {
            "-Infinity".to_owned()
        } else {
            "Infinity".to_owned()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0".to_owned()
        } else {
            "0".to_owned()
        };
    }
    const PRECISION: i32 = 6;
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..PRECISION).contains(&exponent) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let decimals = (PRECISION - 1 - exponent) as usize;
        trim_fraction(&format!("{value:.decimals$}")).to_owned()
    }
}

fn trim_fraction(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}
