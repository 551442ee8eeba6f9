//! The leaf update operators (`*_node.cpp` in mongod): argument parsing and what each does to
//! an existing element or to a missing one.

use std::cmp::Ordering;
use std::rc::Rc;

use bson::{Bson, Document};

use super::fmt;
use super::push::{parse_push, Push};
use crate::bson_cmp::{compare, values_equal};
use crate::decimal::Dec;
use crate::error::{CmdResult, CommandError};
use crate::query::matcher::Matcher;

#[derive(Clone)]
pub(crate) enum Op {
    Set(Bson),
    SetOnInsert(Bson),
    Unset,
    Inc(Bson),
    Mul(Bson),
    Min(Bson),
    Max(Bson),
    CurrentDate {
        timestamp: bool,
    },
    Bit(Vec<(BitOp, Bson)>),
    Push(Push),
    AddToSet(Vec<Bson>),
    Pull(PullCond),
    PullAll(Vec<Bson>),
    Pop {
        first: bool,
    },
    /// Lives at the destination path; `from` is the source path.
    Rename {
        from: String,
    },
    /// Occupies a `$rename` source path so conflicting updates are detected.
    Placeholder,
}

#[derive(Clone, Copy)]
pub(crate) enum BitOp {
    And,
    Or,
    Xor,
}

#[derive(Clone)]
pub(crate) enum PullCond {
    Equal(Bson),
    /// `{$gte: 5}`-style: an operator expression applied to each element.
    Value(Rc<Matcher>),
    /// `{name: "x"}`-style: a query each document element must match.
    Object(Rc<Matcher>),
}

/// What an operator did to an existing element (`ModifierNode::ModifyResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Modify {
    NoOp,
    Updated,
    /// Only appended to a non-empty array of this former length: logged element by element.
    Appended(usize),
}

fn bad(msg: String) -> CommandError {
    CommandError::bad_value(msg)
}

pub(crate) fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

/// Parses the argument of `op` for `field` (`UpdateLeafNode::init`).
pub(crate) fn parse(op: &str, field: &str, arg: &Bson) -> CmdResult<Op> {
    let elem = || fmt::element(field, arg);
    Ok(match op {
        "$set" => Op::Set(arg.clone()),
        "$setOnInsert" => Op::SetOnInsert(arg.clone()),
        "$unset" => Op::Unset,
        "$inc" | "$mul" => {
            if !is_number(arg) {
                let verb = if op == "$inc" {
                    "increment"
                } else {
                    "multiply"
                };
                return Err(CommandError::type_mismatch(format!(
                    "Cannot {verb} with non-numeric argument: {{{}}}",
                    elem()
                )));
            }
            if op == "$inc" {
                Op::Inc(arg.clone())
            } else {
                Op::Mul(arg.clone())
            }
        }
        "$min" => Op::Min(arg.clone()),
        "$max" => Op::Max(arg.clone()),
        "$currentDate" => parse_current_date(arg, &elem)?,
        "$bit" => parse_bit(arg, &elem)?,
        "$push" => Op::Push(parse_push(arg)?),
        "$addToSet" => Op::AddToSet(parse_add_to_set(arg)?),
        "$pull" => Op::Pull(parse_pull(arg)?),
        "$pullAll" => match arg {
            Bson::Array(values) => Op::PullAll(values.clone()),
            other => {
                return Err(bad(format!(
                    "$pullAll requires an array argument but was given a {}",
                    fmt::type_name(other)
                )))
            }
        },
        "$pop" => {
            let n = match arg {
                Bson::Int32(i) => f64::from(*i),
                Bson::Int64(i) => *i as f64,
                Bson::Double(d) => *d,
                Bson::Decimal128(d) => Dec::from_decimal128(d).to_f64(),
                _ => {
                    return Err(CommandError::failed_to_parse(format!(
                        "Expected a number in: {}",
                        elem()
                    )))
                }
            };
            if n != 1.0 && n != -1.0 {
                return Err(CommandError::failed_to_parse(format!(
                    "$pop expects 1 or -1, found: {}",
                    fmt::value_str(arg)
                )));
            }
            Op::Pop { first: n < 0.0 }
        }
        _ => {
            return Err(CommandError::failed_to_parse(format!(
                "Unknown modifier: {op}"
            )))
        }
    })
}

fn parse_current_date(arg: &Bson, elem: &dyn Fn() -> String) -> CmdResult<Op> {
    match arg {
        Bson::Boolean(_) => Ok(Op::CurrentDate { timestamp: false }),
        Bson::Document(d) => {
            let type_str = d.get("$type");
            let valid = d.len() == 1 && matches!(type_str, Some(Bson::String(s)) if s == "date" || s == "timestamp");
            if !valid {
                if d.keys().any(|k| k != "$type") || d.is_empty() {
                    let key = d.keys().next().cloned().unwrap_or_default();
                    return Err(bad(format!("Unrecognized $currentDate option: {key}")));
                }
                return Err(bad(
                    "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}"
                        .to_string(),
                ));
            }
            Ok(Op::CurrentDate { timestamp: matches!(type_str, Some(Bson::String(s)) if s == "timestamp") })
        }
        _ => Err(bad(format!(
            "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({{$type: 'timestamp/date'}}).",
            elem()
        ))),
    }
}

fn parse_bit(arg: &Bson, elem: &dyn Fn() -> String) -> CmdResult<Op> {
    let Bson::Document(d) = arg else {
        return Err(bad(format!(
            "The $bit modifier is not compatible with a {}. You must pass in an embedded document: {{$bit: {{field: {{and/or/xor: #}}}}",
            fmt::type_name(arg)
        )));
    };
    if d.is_empty() {
        return Err(bad(format!(
            "You must pass in at least one bitwise operation. The format is: {{$bit: {{field: {{and/or/xor: #}}}}, {}",
            elem()
        )));
    }
    let mut ops = Vec::new();
    for (k, v) in d {
        let op = match k.as_str() {
            "and" => BitOp::And,
            "or" => BitOp::Or,
            "xor" => BitOp::Xor,
            _ => {
                return Err(bad(format!(
                    "The $bit modifier only supports 'and', 'or', and 'xor', not '{k}' which is an unknown operator: {{{}}}",
                    fmt::element(k, v)
                )))
            }
        };
        if !matches!(v, Bson::Int32(_) | Bson::Int64(_)) {
            return Err(bad(format!(
                "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported here: {{{}}}",
                fmt::type_name(v),
                fmt::element(k, v)
            )));
        }
        ops.push((op, v.clone()));
    }
    Ok(Op::Bit(ops))
}

pub(crate) fn integral(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Some(*d as i64),
        Bson::Decimal128(d) => {
            let f = Dec::from_decimal128(d).to_f64();
            (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
        }
        _ => None,
    }
}

fn parse_add_to_set(arg: &Bson) -> CmdResult<Vec<Bson>> {
    let values = match arg {
        Bson::Document(d) if d.keys().next().map(String::as_str) == Some("$each") => {
            match d.get("$each") {
                Some(Bson::Array(a)) => a.clone(),
                other => {
                    return Err(CommandError::type_mismatch(format!(
                        "The argument to $each in $addToSet must be an array but it was of type {}",
                        other.map(fmt::type_name).unwrap_or("missing")
                    )))
                }
            }
        }
        other => vec![other.clone()],
    };
    // mongod de-duplicates the values to add up front (AddToSetNode::init).
    let mut unique: Vec<Bson> = Vec::new();
    for v in values {
        if !unique.iter().any(|u| values_equal(u, &v)) {
            unique.push(v);
        }
    }
    Ok(unique)
}

fn parse_pull(arg: &Bson) -> CmdResult<PullCond> {
    match arg {
        Bson::Document(d) => {
            let first_is_operator = d.keys().next().is_some_and(|k| k.starts_with('$'));
            if first_is_operator
                && !matches!(
                    d.keys().next().map(String::as_str),
                    Some("$and" | "$or" | "$nor" | "$expr" | "$where" | "$comment")
                )
            {
                let mut filter = Document::new();
                filter.insert("v", Bson::Document(d.clone()));
                Ok(PullCond::Value(Rc::new(Matcher::parse(&filter)?)))
            } else {
                Ok(PullCond::Object(Rc::new(Matcher::parse(d)?)))
            }
        }
        other => Ok(PullCond::Equal(other.clone())),
    }
}

impl PullCond {
    fn matches(&self, elem: &Bson) -> bool {
        match self {
            PullCond::Equal(v) => values_equal(v, elem),
            PullCond::Value(m) => {
                let mut d = Document::new();
                d.insert("v", elem.clone());
                m.matches(&d)
            }
            PullCond::Object(m) => matches!(elem, Bson::Document(d) if m.matches(d)),
        }
    }
}

/// The value a creating operator stores at a missing path, or None for operators that do
/// nothing on a missing path (`allowCreation() == false`).
pub(crate) fn new_value(op: &Op, now: &super::UpdateContext) -> Option<Bson> {
    match op {
        Op::Set(v) | Op::SetOnInsert(v) | Op::Inc(v) | Op::Min(v) | Op::Max(v) => Some(v.clone()),
        // `$mul` on a missing field stores 0 of the operand's type (SafeNum v * int32 0).
        Op::Mul(v) => Some(super::num::mul(v, &Bson::Int32(0))),
        Op::CurrentDate { timestamp } => Some(current_date(*timestamp, now)),
        Op::Bit(ops) => Some(
            ops.iter()
                .fold(Bson::Int32(0), |acc, (op, v)| super::num::bit(*op, &acc, v)),
        ),
        Op::Push(p) => {
            let mut arr = Vec::new();
            p.apply(&mut arr);
            Some(Bson::Array(arr))
        }
        Op::AddToSet(values) => Some(Bson::Array(values.clone())),
        Op::Unset
        | Op::Pull(_)
        | Op::PullAll(_)
        | Op::Pop { .. }
        | Op::Rename { .. }
        | Op::Placeholder => None,
    }
}

fn current_date(timestamp: bool, ctx: &super::UpdateContext) -> Bson {
    if timestamp {
        Bson::Timestamp(ctx.now_ts)
    } else {
        Bson::DateTime(ctx.now)
    }
}

/// Applies `op` to an existing element. `field` is the element's name, `id` the rendered
/// `_id` element, both for mongod's error messages.
pub(crate) fn update_existing(
    op: &Op,
    elem: &mut Bson,
    field: &str,
    id: &str,
    ctx: &super::UpdateContext,
) -> CmdResult<Modify> {
    let replace = |elem: &mut Bson, new: Bson| {
        if super::diff::binary_eq(elem, &new) {
            Modify::NoOp
        } else {
            *elem = new;
            Modify::Updated
        }
    };
    match op {
        Op::Set(v) | Op::SetOnInsert(v) => Ok(replace(elem, v.clone())),
        Op::CurrentDate { timestamp } => Ok(replace(elem, current_date(*timestamp, ctx))),
        Op::Inc(v) | Op::Mul(v) => {
            if !is_number(elem) {
                let name = if matches!(op, Op::Inc(_)) {
                    "$inc"
                } else {
                    "$mul"
                };
                return Err(CommandError::type_mismatch(format!(
                    "Cannot apply {name} to a value of non-numeric type. {{{id}}} has the field '{field}' of non-numeric type {}",
                    fmt::type_name(elem)
                )));
            }
            let new = if matches!(op, Op::Inc(_)) {
                super::num::add(elem, v)
            } else {
                super::num::mul(elem, v)
            };
            Ok(replace(elem, new))
        }
        Op::Min(v) | Op::Max(v) => {
            let ord = compare(v, elem);
            let wins = if matches!(op, Op::Min(_)) {
                ord == Ordering::Less
            } else {
                ord == Ordering::Greater
            };
            Ok(if wins {
                replace(elem, v.clone())
            } else {
                Modify::NoOp
            })
        }
        Op::Bit(ops) => {
            if !matches!(elem, Bson::Int32(_) | Bson::Int64(_)) {
                return Err(bad(format!(
                    "Cannot apply $bit to a value of non-integral type.{{{id}}} has the field {field} of non-integer type {}",
                    fmt::type_name(elem)
                )));
            }
            let new = ops
                .iter()
                .fold(elem.clone(), |acc, (op, v)| super::num::bit(*op, &acc, v));
            Ok(replace(elem, new))
        }
        Op::Push(p) => {
            let Bson::Array(arr) = elem else {
                return Err(bad(format!(
                    "The field '{field}' must be an array but is of type {} in document {{{id}}}",
                    fmt::type_name(elem)
                )));
            };
            Ok(p.apply(arr))
        }
        Op::AddToSet(values) => {
            let Bson::Array(arr) = elem else {
                return Err(bad(format!(
                    "Cannot apply $addToSet to non-array field. Field named '{field}' has non-array type {}",
                    fmt::type_name(elem)
                )));
            };
            let before = arr.len();
            for v in values {
                if !arr.iter().any(|e| values_equal(e, v)) {
                    arr.push(v.clone());
                }
            }
            Ok(match arr.len() {
                n if n == before => Modify::NoOp,
                _ if before == 0 => Modify::Updated,
                _ => Modify::Appended(before),
            })
        }
        Op::Pull(_) | Op::PullAll(_) => {
            let Bson::Array(arr) = elem else {
                return Err(bad("Cannot apply $pull to a non-array value".to_string()));
            };
            let before = arr.len();
            arr.retain(|e| match op {
                Op::Pull(cond) => !cond.matches(e),
                Op::PullAll(values) => !values.iter().any(|v| values_equal(v, e)),
                _ => true,
            });
            Ok(if arr.len() == before {
                Modify::NoOp
            } else {
                Modify::Updated
            })
        }
        Op::Pop { first } => {
            let Bson::Array(arr) = elem else {
                return Err(CommandError::type_mismatch(format!(
                    "Path '{field}' contains an element of non-array type '{}'",
                    fmt::type_name(elem)
                )));
            };
            if arr.is_empty() {
                return Ok(Modify::NoOp);
            }
            if *first {
                arr.remove(0);
            } else {
                arr.pop();
            }
            Ok(Modify::Updated)
        }
        Op::Unset | Op::Rename { .. } | Op::Placeholder => Ok(Modify::NoOp),
    }
}
