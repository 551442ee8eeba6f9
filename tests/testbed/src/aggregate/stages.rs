//! The small stages: `$skip`, `$limit`, `$count`, `$sample`, `$unwind`, `$replaceRoot` /
//! `$replaceWith`, parsed with mongod's error codes and run over in-memory documents.

use bson::{Bson, Document};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bson_cmp::Number;
use crate::error::CmdResult;
use crate::query::expr::{loc, type_name, validate_field_name, Expr};

/// A non-negative whole number given as any numeric type (`10`, `10.0`, `NumberLong(10)`).
fn whole_number(value: &Bson) -> Option<Result<i64, ()>> {
    match Number::from_bson(value)? {
        Number::Long(v) => Some(Ok(v)),
        Number::Double(v) => Some(if v.fract() == 0.0 && v.abs() < 9.2e18 {
            Ok(v as i64)
        } else {
            Err(())
        }),
        Number::Decimal(d) => Some(whole_number(&Bson::Double(d.to_f64())).unwrap_or(Err(()))),
    }
}

pub(crate) fn parse_skip(value: &Bson) -> CmdResult<u64> {
    match whole_number(value) {
        None => Err(loc(15972, "Argument to $skip must be a number")),
        Some(Err(())) => Err(loc(2, format!("invalid argument to $skip stage :: caused by :: Expected an integer: $skip: {value}"))),
        Some(Ok(v)) if v < 0 => Err(loc(15956, "Argument to $skip cannot be negative")),
        Some(Ok(v)) => Ok(v as u64),
    }
}

pub(crate) fn parse_limit(value: &Bson) -> CmdResult<u64> {
    match whole_number(value) {
        None => Err(loc(15957, "the limit must be specified as a number")),
        Some(Err(())) => Err(loc(2, format!("invalid argument to $limit stage :: caused by :: Expected an integer: $limit: {value}"))),
        Some(Ok(v)) if v <= 0 => Err(loc(15958, "the limit must be positive")),
        Some(Ok(v)) => Ok(v as u64),
    }
}

/// `$count: "<field>"`.
pub(crate) fn parse_count(value: &Bson) -> CmdResult<String> {
    let Bson::String(field) = value else {
        return Err(loc(40156, "the count field must be a non-empty string"));
    };
    if field.is_empty() {
        return Err(loc(40157, "the count field must be a non-empty string"));
    }
    if field.starts_with('$') {
        return Err(loc(40158, "the count field cannot be a $-prefixed path"));
    }
    if field.contains('.') {
        return Err(loc(40160, "the count field cannot contain '.'"));
    }
    Ok(field.clone())
}

/// `$count` is `$group: {_id: null, f: {$sum: 1}}` then `$project: {_id: 0}`: an int
/// (long past 2^31), and no document at all for empty input.
pub(crate) fn run_count(field: &str, input: Vec<Document>) -> Vec<Document> {
    if input.is_empty() {
        return Vec::new();
    }
    let count = i32::try_from(input.len()).map_or(Bson::Int64(input.len() as i64), Bson::Int32);
    let mut out = Document::new();
    out.insert(field, count);
    vec![out]
}

pub(crate) fn parse_sample(value: &Bson) -> CmdResult<u64> {
    let Bson::Document(spec) = value else {
        return Err(loc(
            28745,
            "the $sample stage specification must be an object",
        ));
    };
    let mut size = None;
    for (key, item) in spec {
        if key != "size" {
            return Err(loc(28748, format!("unrecognized option to $sample: {key}")));
        }
        let Some(number) = Number::from_bson(item) else {
            return Err(loc(28746, "size argument to $sample must be a number"));
        };
        let value = number.to_f64();
        if value < 0.0 {
            return Err(loc(28747, "size argument to $sample must not be negative"));
        }
        size = Some(if value >= 9.2e18 {
            u64::MAX
        } else {
            value as u64
        });
    }
    size.ok_or_else(|| loc(28749, "$sample stage must specify a size"))
}

/// Sampling without replacement (partial Fisher-Yates): keeps `size` of `items`, in
/// random order. Generic so a collection can sample references to its documents and
/// copy only the ones picked.
pub(crate) fn sample_in_place<T>(size: u64, items: &mut Vec<T>, seed: Option<u64>) {
    let mut rng = match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let take = usize::try_from(size).unwrap_or(usize::MAX).min(items.len());
    for i in 0..take {
        let j = rng.gen_range(i..items.len());
        items.swap(i, j);
    }
    items.truncate(take);
}

#[derive(Debug, Clone)]
pub(crate) struct Unwind {
    path: Vec<String>,
    include_array_index: Option<String>,
    preserve: bool,
}

fn unwind_path(value: &Bson) -> CmdResult<Vec<String>> {
    let Bson::String(path) = value else {
        return Err(loc(
            28808,
            format!(
                "expected a string as the path for $unwind stage, got {}",
                type_name(Some(value))
            ),
        ));
    };
    let Some(rest) = path.strip_prefix('$') else {
        return Err(loc(
            28818,
            format!("path option to $unwind stage should be prefixed with a '$': {path}"),
        ));
    };
    if rest.is_empty() {
        return Err(loc(28812, "No path specified to $unwind stage"));
    }
    rest.split('.')
        .map(|part| validate_field_name(part).map(|()| part.to_owned()))
        .collect()
}

impl Unwind {
    pub(crate) fn parse(value: &Bson) -> CmdResult<Unwind> {
        let spec = match value {
            Bson::String(_) => return Ok(Unwind { path: unwind_path(value)?, include_array_index: None, preserve: false }),
            Bson::Document(spec) => spec,
            other => {
                return Err(loc(
                    15981,
                    format!("expected either a string or an object as specification for $unwind stage, got {}", type_name(Some(other))),
                ))
            }
        };
        let (mut path, mut include_array_index, mut preserve) = (None, None, false);
        for (key, item) in spec {
            match key.as_str() {
                "path" => path = Some(unwind_path(item)?),
                "includeArrayIndex" => {
                    let Bson::String(name) = item else {
                        return Err(loc(28810, format!("expected a non-empty string for the includeArrayIndex option to $unwind stage, got {}", type_name(Some(item)))));
                    };
                    if name.is_empty() {
                        return Err(loc(28810, "expected a non-empty string for the includeArrayIndex option to $unwind stage"));
                    }
                    if name.starts_with('$') {
                        return Err(loc(28822, format!("includeArrayIndex option to $unwind stage should not be prefixed with a '$': {name}")));
                    }
                    include_array_index = Some(name.clone());
                }
                "preserveNullAndEmptyArrays" => {
                    let Bson::Boolean(flag) = item else {
                        return Err(loc(28809, format!("expected a boolean for the preserveNullAndEmptyArrays option to $unwind stage, got {}", type_name(Some(item)))));
                    };
                    preserve = *flag;
                }
                other => {
                    return Err(loc(
                        28811,
                        format!("unrecognized option to $unwind stage: {other}"),
                    ))
                }
            }
        }
        let path = path.ok_or_else(|| loc(28812, "No path specified to $unwind stage"))?;
        Ok(Unwind {
            path,
            include_array_index,
            preserve,
        })
    }

    pub(crate) fn run(&self, input: Vec<Document>) -> Vec<Document> {
        let mut out = Vec::new();
        for doc in input {
            // `Document::getNestedField`: no traversal through arrays on the way down.
            let value = nested_get(&doc, &self.path).cloned();
            match value {
                Some(Bson::Array(items)) if !items.is_empty() => {
                    for (index, item) in items.into_iter().enumerate() {
                        let mut copy = doc.clone();
                        nested_set(&mut copy, &self.path, item);
                        self.set_index(&mut copy, Bson::Int64(index as i64));
                        out.push(copy);
                    }
                }
                Some(Bson::Array(_)) | Some(Bson::Null) | None => {
                    if self.preserve {
                        let mut copy = doc;
                        self.set_index(&mut copy, Bson::Null);
                        out.push(copy);
                    }
                }
                Some(_) => {
                    let mut copy = doc;
                    self.set_index(&mut copy, Bson::Null);
                    out.push(copy);
                }
            }
        }
        out
    }

    fn set_index(&self, doc: &mut Document, index: Bson) {
        if let Some(name) = &self.include_array_index {
            let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
            nested_set(doc, &parts, index);
        }
    }
}

fn nested_get<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (head, tail) = path.split_first()?;
    let value = doc.get(head)?;
    if tail.is_empty() {
        return Some(value);
    }
    match value {
        Bson::Document(inner) => nested_get(inner, tail),
        _ => None,
    }
}

/// Sets a dotted path, creating (or replacing non-document values with) sub-documents.
fn nested_set(doc: &mut Document, path: &[String], value: Bson) {
    let Some((head, tail)) = path.split_first() else {
        return;
    };
    if tail.is_empty() {
        doc.insert(head.clone(), value);
        return;
    }
    if !matches!(doc.get(head), Some(Bson::Document(_))) {
        doc.insert(head.clone(), Bson::Document(Document::new()));
    }
    if let Some(Bson::Document(inner)) = doc.get_mut(head) {
        nested_set(inner, tail, value);
    }
}

/// `$replaceRoot: {newRoot: <expr>}` or `$replaceWith: <expr>`.
#[derive(Debug, Clone)]
pub(crate) struct ReplaceRoot {
    expr: Expr,
    with: bool,
}

impl ReplaceRoot {
    pub(crate) fn parse_replace_root(value: &Bson) -> CmdResult<ReplaceRoot> {
        let Bson::Document(spec) = value else {
            return Err(loc(
                40228,
                format!(
                    "expected an object as specification for $replaceRoot stage, got {}",
                    type_name(Some(value))
                ),
            ));
        };
        let mut expr = None;
        for (key, item) in spec {
            if key != "newRoot" {
                return Err(loc(
                    40415,
                    format!("BSON field '$replaceRoot.{key}' is an unknown field."),
                ));
            }
            expr = Some(Expr::parse(item)?);
        }
        let expr = expr.ok_or_else(|| {
            loc(
                40414,
                "BSON field '$replaceRoot.newRoot' is missing but a required field",
            )
        })?;
        Ok(ReplaceRoot { expr, with: false })
    }

    pub(crate) fn parse_replace_with(value: &Bson) -> CmdResult<ReplaceRoot> {
        Ok(ReplaceRoot {
            expr: Expr::parse(value)?,
            with: true,
        })
    }

    pub(crate) fn apply(&self, doc: &Document) -> CmdResult<Document> {
        match self.expr.eval(doc)? {
            Some(Bson::Document(root)) => Ok(root),
            other => {
                let what = if self.with {
                    "'replacement document'"
                } else {
                    "'newRoot' expression "
                };
                let shown = other
                    .as_ref()
                    .map_or_else(|| "MISSING".to_owned(), ToString::to_string);
                Err(loc(
                    40228,
                    format!(
                        "{what} must evaluate to an object, but resulting value was: {shown}. Type of resulting value: '{}'. Input document: {doc}",
                        type_name(other.as_ref())
                    ),
                ))
            }
        }
    }
}
