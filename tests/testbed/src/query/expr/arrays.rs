//! Array, object and string operators: `$size`, `$bsonSize`, `$concat`, `$concatArrays`,
//! `$arrayElemAt`, `$in`, `$min`/`$max`, `$objectToArray`, `$arrayToObject`,
//! `$mergeObjects`.

use std::cmp::Ordering;

use bson::{doc, Bson, Document};

use super::{compare_values, is_nullish, loc, type_name};
use crate::bson_cmp::{compare, Number};
use crate::error::CmdResult;

pub(crate) fn size(value: Option<&Bson>) -> CmdResult<Bson> {
    match value {
        Some(Bson::Array(items)) => Ok(int_or_long(items.len())),
        other => Err(loc(
            17124,
            format!(
                "The argument to $size must be an array. Type of argument was: {}",
                type_name(other)
            ),
        )),
    }
}

fn int_or_long(count: usize) -> Bson {
    i32::try_from(count).map_or(Bson::Int64(count as i64), Bson::Int32)
}

pub(crate) fn bson_size(value: Option<&Bson>) -> CmdResult<Bson> {
    match value {
        Some(Bson::Document(doc)) => {
            let bytes = bson::to_vec(doc).map_err(|e| {
                loc(
                    31393,
                    format!("$bsonSize could not encode the document: {e}"),
                )
            })?;
            Ok(int_or_long(bytes.len()))
        }
        v if is_nullish(v) => Ok(Bson::Null),
        other => Err(loc(
            31393,
            format!(
                "$bsonSize requires a document input, found: {}",
                type_name(other)
            ),
        )),
    }
}

pub(crate) fn concat(values: &[Option<Bson>]) -> CmdResult<Bson> {
    let mut out = String::new();
    for value in values {
        match value {
            Some(Bson::String(text)) => out.push_str(text),
            v if is_nullish(v.as_ref()) => return Ok(Bson::Null),
            other => {
                return Err(loc(
                    16702,
                    format!(
                        "$concat only supports strings, not {}",
                        type_name(other.as_ref())
                    ),
                ))
            }
        }
    }
    Ok(Bson::String(out))
}

pub(crate) fn concat_arrays(values: &[Option<Bson>]) -> CmdResult<Bson> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Some(Bson::Array(items)) => out.extend(items.iter().cloned()),
            v if is_nullish(v.as_ref()) => return Ok(Bson::Null),
            other => {
                return Err(loc(
                    28664,
                    format!(
                        "$concatArrays only supports arrays, not {}",
                        type_name(other.as_ref())
                    ),
                ))
            }
        }
    }
    Ok(Bson::Array(out))
}

/// A numeric value that is exactly a 32-bit integer (`1.0` is, `1.5` is not).
fn exact_i32(value: &Bson) -> Option<i32> {
    match Number::from_bson(value)? {
        Number::Long(v) => i32::try_from(v).ok(),
        Number::Double(v) => {
            (v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX))
                .then_some(v as i32)
        }
        Number::Decimal(d) => {
            let as_double = d.to_f64();
            let exact = as_double.fract() == 0.0
                && as_double >= f64::from(i32::MIN)
                && as_double <= f64::from(i32::MAX)
                && compare(value, &Bson::Int32(as_double as i32)) == Ordering::Equal;
            exact.then_some(as_double as i32)
        }
    }
}

pub(crate) fn array_elem_at(array: Option<&Bson>, index: Option<&Bson>) -> CmdResult<Option<Bson>> {
    if is_nullish(array) || is_nullish(index) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = array else {
        return Err(loc(
            28689,
            format!(
                "$arrayElemAt's first argument must be an array, but is {}",
                type_name(array)
            ),
        ));
    };
    let Some(index_value) = index.filter(|v| Number::from_bson(v).is_some()) else {
        return Err(loc(
            28690,
            format!(
                "$arrayElemAt's second argument must be a numeric value, but is {}",
                type_name(index)
            ),
        ));
    };
    let Some(position) = exact_i32(index_value) else {
        return Err(loc(
            28691,
            format!("$arrayElemAt's second argument must be representable as a 32-bit integer: {index_value}"),
        ));
    };
    let resolved = if position < 0 {
        items.len() as i64 + i64::from(position)
    } else {
        i64::from(position)
    };
    if resolved < 0 {
        return Ok(None);
    }
    Ok(usize::try_from(resolved)
        .ok()
        .and_then(|i| items.get(i))
        .cloned())
}

pub(crate) fn is_in(value: Option<&Bson>, array: Option<&Bson>) -> CmdResult<Bson> {
    let Some(Bson::Array(items)) = array else {
        return Err(loc(
            40081,
            format!(
                "$in requires an array as a second argument, found: {}",
                type_name(array)
            ),
        ));
    };
    let found = items
        .iter()
        .any(|item| compare_values(value, Some(item)) == Ordering::Equal);
    Ok(Bson::Boolean(found))
}

/// `$min`/`$max` (expression and accumulator): nullish values are ignored; null when none
/// remain; canonical order across types.
pub(crate) fn min_max(values: &[Bson], max: bool) -> Bson {
    let mut best: Option<&Bson> = None;
    for value in values.iter().filter(|v| !is_nullish(Some(v))) {
        let better = match best {
            None => true,
            Some(current) => {
                let order = compare(value, current);
                if max {
                    order == Ordering::Greater
                } else {
                    order == Ordering::Less
                }
            }
        };
        if better {
            best = Some(value);
        }
    }
    best.cloned().unwrap_or(Bson::Null)
}

pub(crate) fn object_to_array(value: Option<&Bson>) -> CmdResult<Bson> {
    match value {
        Some(Bson::Document(doc)) => Ok(Bson::Array(
            doc.iter()
                .map(|(key, value)| Bson::Document(doc! {"k": key.clone(), "v": value.clone()}))
                .collect(),
        )),
        v if is_nullish(v) => Ok(Bson::Null),
        other => Err(loc(
            40390,
            format!(
                "$objectToArray requires a document input, found: {}",
                type_name(other)
            ),
        )),
    }
}

pub(crate) fn array_to_object(value: Option<&Bson>) -> CmdResult<Bson> {
    let items = match value {
        Some(Bson::Array(items)) => items,
        v if is_nullish(v) => return Ok(Bson::Null),
        other => {
            return Err(loc(
                40386,
                format!(
                    "$arrayToObject requires an array input, found: {}",
                    type_name(other)
                ),
            ))
        }
    };
    let mut out = Document::new();
    let pairs_form = matches!(items.first(), Some(Bson::Array(_)));
    for item in items {
        let (key, value) = match item {
            Bson::Array(pair) if pairs_form => {
                if pair.len() != 2 {
                    return Err(loc(
                        40396,
                        format!("$arrayToObject requires an array of size 2 arrays,found array of size: {}", pair.len()),
                    ));
                }
                let Bson::String(key) = &pair[0] else {
                    return Err(loc(
                        40395,
                        format!(
                            "$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found key type: {}",
                            type_name(Some(&pair[0]))
                        ),
                    ));
                };
                (key.clone(), pair[1].clone())
            }
            Bson::Document(entry) if !pairs_form => {
                if entry.len() != 2 {
                    return Err(loc(
                        40392,
                        format!(
                            "$arrayToObject requires an object keys of 'k' and 'v'. Found incorrect number of keys:{}",
                            entry.len()
                        ),
                    ));
                }
                let (Some(key), Some(value)) = (entry.get("k"), entry.get("v")) else {
                    return Err(loc(
                        40393,
                        format!("$arrayToObject requires an object with keys 'k' and 'v'. Missing either or both keys from: {entry}"),
                    ));
                };
                let Bson::String(key) = key else {
                    return Err(loc(
                        40394,
                        format!(
                            "$arrayToObject requires an object with keys 'k' and 'v', where the value of 'k' must be of type string. Found type: {}",
                            type_name(Some(key))
                        ),
                    ));
                };
                (key.clone(), value.clone())
            }
            Bson::Array(_) | Bson::Document(_) => {
                return Err(loc(
                    40397,
                    "$arrayToObject requires a consistent input format. Elements must all be arrays or all be objects.",
                ))
            }
            other => {
                return Err(loc(40398, format!("Unrecognised input type format for $arrayToObject: {}", type_name(Some(other)))))
            }
        };
        if key.contains('\0') {
            return Err(loc(
                4940400,
                "Key field cannot contain an embedded null byte",
            ));
        }
        // A repeated key keeps its first position and takes the last value.
        out.insert(key, value);
    }
    Ok(Bson::Document(out))
}

pub(crate) fn merge_objects(values: &[Option<Bson>]) -> CmdResult<Bson> {
    let mut out = Document::new();
    for value in values {
        match value {
            Some(Bson::Document(doc)) => super::ops::merge_into(&mut out, doc),
            v if is_nullish(v.as_ref()) => {}
            Some(other) => {
                return Err(loc(
                    40400,
                    format!(
                        "$mergeObjects requires object inputs, but input {other} is of type {}",
                        type_name(Some(other))
                    ),
                ))
            }
            None => {}
        }
    }
    Ok(Bson::Document(out))
}
