//! The query filter language, matched the way mongod matches it.
//!
//! Parsing follows `expression_parser.cpp`; matching follows the `matchesSingleElement`
//! implementations in `expression_leaf.cpp` / `expression_array.cpp` over the values
//! produced by [`path::iterate`]. The details that matter for a sync tool:
//! - comparison predicates bracket by canonical type (`$gt: 5` never matches a string), with
//!   mongod's exceptions for null/undefined/missing and MinKey/MaxKey operands, and NaN rules;
//! - a predicate on an array field matches when any element or the array itself matches;
//! - `$ne`/`$nin`/`$not`/`$exists: false` negate the whole traversal.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::expr::{is_truthy, Expr};
use super::path::{self, LeafArray, PathValue};
use crate::bson_cmp::{canonical_rank, compare, values_equal, Number};
use crate::decimal::Dec;
use crate::error::{CmdResult, CommandError};

/// A parsed filter.
pub struct Matcher {
    root: Node,
    empty: bool,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("empty", &self.empty)
            .finish_non_exhaustive()
    }
}

enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    Not(Box<Node>),
    AlwaysTrue,
    AlwaysFalse,
    Expr(Box<Expr>),
    Leaf { path: String, pred: Pred },
}

enum Pred {
    Cmp(CmpOp, Bson),
    Regex(Rx),
    In(InSet),
    Exists,
    Type(TypeSet),
    Mod(i64, i64),
    Size(i64),
    ElemMatchObject(Box<Node>),
    ElemMatchValue(Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

struct InSet {
    has_null: bool,
    equalities: Vec<Bson>,
    regexes: Vec<Rx>,
}

/// A compiled regex plus its source, because a BSON regex value matches only an identical
/// pattern and flags.
struct Rx {
    pattern: String,
    options: String,
    compiled: regex::Regex,
}

struct TypeSet {
    all_numbers: bool,
    codes: Vec<i32>,
}

/// What a match reports: `None` no match, `Some(pos)` matched with an optional array position.
type MatchResult = Option<Option<usize>>;

impl Matcher {
    pub fn parse(filter: &Document) -> CmdResult<Matcher> {
        let root = parse_document(filter, Level::Top)?;
        Ok(Matcher {
            root,
            empty: filter.is_empty(),
        })
    }

    pub fn matches(&self, doc: &Document) -> bool {
        self.try_matches(doc).unwrap_or(false)
    }

    /// Like [`Matcher::matches`] but surfaces `$expr` evaluation errors, which abort the whole
    /// query on mongod.
    pub fn try_matches(&self, doc: &Document) -> CmdResult<bool> {
        Ok(self.root.matches_doc(doc)?.is_some())
    }

    /// For the positional `$` operator: mongod's "elemMatchKey". `$and` children record in
    /// order and the last one to record wins (`MatchDetails::setElemMatchKey` overwrites);
    /// `$or`/`$nor`/`$not` record nothing (they pass no details down).
    pub fn match_position(&self, doc: &Document) -> Option<Option<usize>> {
        self.root.matches_doc(doc).unwrap_or(None)
    }

    /// Top-level equalities for upsert seeding (mongod's `extractEqualityMatches`).
    pub fn equality_fields(&self) -> Vec<(String, Bson)> {
        let mut out = Vec::new();
        self.root.collect_equalities(&mut out);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The paths named by leaf predicates (used to validate positional projections).
    pub fn top_level_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.root.collect_paths(&mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The filter itself or a `$and/$or/$nor` branch of it.
    Top,
    /// Inside `$elemMatch` (object form): `$expr`/`$text`/`$where` are not allowed.
    Sub,
}

fn parse_document(filter: &Document, level: Level) -> CmdResult<Node> {
    let mut children = Vec::new();
    for (key, value) in filter {
        if let Some(op) = key.strip_prefix('$') {
            if let Some(node) = parse_top_level_operator(op, key, value, level)? {
                children.push(node);
            }
        } else if is_expression_document(value, false) {
            let Bson::Document(ops) = value else { continue };
            parse_field_operators(key, ops, &mut children, level)?;
        } else if let Bson::RegularExpression(re) = value {
            let pred = Pred::Regex(Rx::new(&re.pattern, &re.options)?);
            children.push(Node::Leaf {
                path: key.clone(),
                pred,
            });
        } else {
            children.push(Node::Leaf {
                path: key.clone(),
                pred: comparison(CmpOp::Eq, key, value)?,
            });
        }
    }
    Ok(collapse_and(children))
}

/// mongod returns the single child instead of a one-element `$and`, and flattens nested ones.
fn collapse_and(children: Vec<Node>) -> Node {
    let mut flat = Vec::new();
    for child in children {
        match child {
            Node::And(grand) => flat.extend(grand),
            other => flat.push(other),
        }
    }
    if flat.len() == 1 {
        flat.pop().unwrap_or(Node::AlwaysTrue)
    } else {
        Node::And(flat)
    }
}

/// `{$lt: 5}` is an operator document; `{}` , `{a: 5}` and DBRef-like `{$ref, $id}` are values.
fn is_expression_document(value: &Bson, allow_incomplete_dbref: bool) -> bool {
    let Bson::Document(d) = value else {
        return false;
    };
    let Some((first, _)) = d.iter().next() else {
        return false;
    };
    if !first.starts_with('$') {
        return false;
    }
    !is_dbref(d, allow_incomplete_dbref)
}

fn is_dbref(d: &Document, allow_incomplete: bool) -> bool {
    let has = |k: &str| d.contains_key(k);
    if allow_incomplete {
        has("$ref") || has("$id") || has("$db")
    } else {
        has("$ref") && has("$id")
    }
}

/// Operators without a path: `$and`, `$or`, `$expr`, ... `Ok(None)` for `$comment`.
fn parse_top_level_operator(
    op: &str,
    key: &str,
    value: &Bson,
    level: Level,
) -> CmdResult<Option<Node>> {
    let node = match op {
        "and" => collapse_and(parse_branches(value, "$and", level)?),
        "or" => Node::Or(parse_branches(value, "$or", level)?),
        "nor" => Node::Nor(parse_branches(value, "$nor", level)?),
        "comment" => return Ok(None),
        "alwaysTrue" => parse_always(value, "$alwaysTrue", Node::AlwaysTrue)?,
        "alwaysFalse" => parse_always(value, "$alwaysFalse", Node::AlwaysFalse)?,
        "expr" => {
            if level == Level::Sub {
                return Err(CommandError::bad_value(
                    "$expr can only be applied to the top-level document",
                ));
            }
            Node::Expr(Box::new(Expr::parse(value)?))
        }
        "where" | "text" | "jsonSchema" | "sampleRate" => {
            return Err(CommandError::not_implemented(key))
        }
        _ if op.starts_with("_internal") => return Err(CommandError::not_implemented(key)),
        _ => {
            return Err(CommandError::bad_value(format!(
                "unknown top level operator: {key}"
            )))
        }
    };
    Ok(Some(node))
}

fn parse_branches(value: &Bson, name: &str, level: Level) -> CmdResult<Vec<Node>> {
    let Bson::Array(items) = value else {
        return Err(CommandError::bad_value(format!("{name} must be an array")));
    };
    if items.is_empty() {
        return Err(CommandError::bad_value(
            "$and/$or/$nor must be a nonempty array",
        ));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => parse_document(d, level),
            _ => Err(CommandError::bad_value(
                "$or/$and/$nor entries need to be full objects",
            )),
        })
        .collect()
}

fn parse_always(value: &Bson, name: &str, node: Node) -> CmdResult<Node> {
    let n = integer_argument(value)?;
    if n != 1 {
        return Err(CommandError::failed_to_parse(format!(
            "{name} must be an integer value of 1"
        )));
    }
    Ok(node)
}

/// 2^63, exactly representable as a double.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// Truncation toward zero when the result fits in 64 bits (mongod's `representAs<long long>`
/// after `trunc`); `None` for NaN, infinities and out-of-range values.
fn truncate_to_i64(value: f64) -> Option<i64> {
    let truncated = value.trunc();
    (-TWO_63..TWO_63)
        .contains(&truncated)
        .then_some(truncated as i64)
}

/// mongod's `parseIntegerElementToLong`.
fn integer_argument(value: &Bson) -> CmdResult<i64> {
    let bad = |what: &str| CommandError::failed_to_parse(format!("{what} in: {value}"));
    match value {
        Bson::Int32(v) => Ok(i64::from(*v)),
        Bson::Int64(v) => Ok(*v),
        Bson::Double(d) if d.is_nan() => Err(bad("Expected an integer, but found NaN")),
        Bson::Double(d) if !(-TWO_63..TWO_63).contains(d) => {
            Err(bad("Cannot represent as a 64-bit integer"))
        }
        Bson::Double(d) if d.fract() != 0.0 => Err(bad("Expected an integer")),
        Bson::Double(d) => Ok(*d as i64),
        Bson::Decimal128(d) => {
            decimal_to_i64_exact(d).ok_or_else(|| bad("Cannot represent as a 64-bit integer"))
        }
        _ => Err(bad("Expected a number")),
    }
}

fn decimal_to_i64_exact(d: &bson::Decimal128) -> Option<i64> {
    let dec = Dec::from_decimal128(d);
    if dec.is_nan() {
        return None;
    }
    let as_f64 = dec.to_f64();
    if !as_f64.is_finite() || as_f64.fract() != 0.0 || as_f64.abs() >= 9.2e18 {
        return None;
    }
    let candidate = as_f64 as i64;
    (dec.cmp_value(&Dec::from_i64(candidate)) == Ordering::Equal).then_some(candidate)
}

/// `{path: {$op: ..., $op2: ...}}`: every operator becomes one conjunct.
fn parse_field_operators(
    path: &str,
    ops: &Document,
    out: &mut Vec<Node>,
    level: Level,
) -> CmdResult<()> {
    for (op, value) in ops {
        if let Some(node) = parse_field_operator(path, op, value, ops, level)? {
            out.push(node);
        }
    }
    Ok(())
}

fn leaf(path: &str, pred: Pred) -> Node {
    Node::Leaf {
        path: path.to_string(),
        pred,
    }
}

fn parse_field_operator(
    path: &str,
    op: &str,
    value: &Bson,
    context: &Document,
    level: Level,
) -> CmdResult<Option<Node>> {
    let node = match op {
        "$eq" => leaf(path, comparison(CmpOp::Eq, path, value)?),
        "$lt" => leaf(path, comparison(CmpOp::Lt, path, value)?),
        "$lte" => leaf(path, comparison(CmpOp::Lte, path, value)?),
        "$gt" => leaf(path, comparison(CmpOp::Gt, path, value)?),
        "$gte" => leaf(path, comparison(CmpOp::Gte, path, value)?),
        "$ne" => {
            if matches!(value, Bson::RegularExpression(_)) {
                return Err(CommandError::bad_value("Can't have regex as arg to $ne."));
            }
            Node::Not(Box::new(leaf(path, comparison(CmpOp::Eq, path, value)?)))
        }
        "$in" => leaf(path, Pred::In(parse_in(value, "$in")?)),
        "$nin" => Node::Not(Box::new(leaf(path, Pred::In(parse_in(value, "$nin")?)))),
        "$exists" => {
            let exists = leaf(path, Pred::Exists);
            if true_value(value) {
                exists
            } else {
                Node::Not(Box::new(exists))
            }
        }
        "$type" => leaf(path, Pred::Type(parse_type_set(value)?)),
        "$mod" => leaf(path, parse_mod(value)?),
        "$size" => leaf(path, Pred::Size(parse_size(value)?)),
        "$regex" => leaf(path, Pred::Regex(parse_regex_document(context)?)),
        "$options" => {
            if context.contains_key("$regex") {
                return Ok(None);
            }
            return Err(CommandError::bad_value("$options needs a $regex"));
        }
        "$not" => Node::Not(Box::new(parse_not(path, value, level)?)),
        "$elemMatch" => parse_elem_match(path, value)?,
        "$all" => parse_all(path, value)?,
        "$comment" => return Ok(None),
        "$where" => {
            return Err(CommandError::bad_value(
                "$where cannot be applied to a field",
            ))
        }
        "$bitsAllSet" | "$bitsAllClear" | "$bitsAnySet" | "$bitsAnyClear" | "$geoWithin"
        | "$within" | "$geoIntersects" | "$near" | "$nearSphere" | "$geoNear" | "$text"
        | "$jsonSchema" => return Err(CommandError::not_implemented(op)),
        _ if op.starts_with("$_internal") => return Err(CommandError::not_implemented(op)),
        _ => return Err(CommandError::bad_value(format!("unknown operator: {op}"))),
    };
    Ok(Some(node))
}

fn comparison(op: CmpOp, path: &str, value: &Bson) -> CmdResult<Pred> {
    if matches!(value, Bson::Undefined) {
        return Err(CommandError::bad_value("cannot compare to undefined"));
    }
    if op != CmpOp::Eq && matches!(value, Bson::RegularExpression(_)) {
        return Err(CommandError::bad_value(format!(
            "Can't have RegEx as arg to predicate over field '{path}'."
        )));
    }
    // {a: {$eq: /x/}} compares regex values; only the implicit form {a: /x/} pattern-matches.
    Ok(Pred::Cmp(op, value.clone()))
}

/// BSON `trueValue`: false for false, 0, null, undefined; true for everything else.
fn true_value(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Int32(v) => *v != 0,
        Bson::Int64(v) => *v != 0,
        Bson::Double(v) => *v != 0.0,
        Bson::Decimal128(d) => !Dec::from_decimal128(d).is_zero(),
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

fn parse_in(value: &Bson, name: &str) -> CmdResult<InSet> {
    let Bson::Array(items) = value else {
        return Err(CommandError::bad_value(format!("{name} needs an array")));
    };
    let mut set = InSet {
        has_null: false,
        equalities: Vec::new(),
        regexes: Vec::new(),
    };
    for item in items {
        if is_expression_document(item, false) {
            return Err(CommandError::bad_value("cannot nest $ under $in"));
        }
        match item {
            Bson::RegularExpression(re) => set.regexes.push(Rx::new(&re.pattern, &re.options)?),
            Bson::Undefined => {
                return Err(CommandError::bad_value(
                    "InMatchExpression equality cannot be undefined",
                ))
            }
            Bson::Null => {
                set.has_null = true;
                set.equalities.push(Bson::Null);
            }
            other => set.equalities.push(other.clone()),
        }
    }
    Ok(set)
}

fn parse_type_set(value: &Bson) -> CmdResult<TypeSet> {
    let mut set = TypeSet {
        all_numbers: false,
        codes: Vec::new(),
    };
    match value {
        Bson::Array(items) => {
            for item in items {
                add_type(item, &mut set)?;
            }
        }
        other => add_type(other, &mut set)?,
    }
    if !set.all_numbers && set.codes.is_empty() {
        return Err(CommandError::failed_to_parse(
            "$type must match at least one type",
        ));
    }
    Ok(set)
}

fn add_type(value: &Bson, set: &mut TypeSet) -> CmdResult<()> {
    if let Bson::String(alias) = value {
        if alias == "number" {
            set.all_numbers = true;
            return Ok(());
        }
        let code = type_alias_code(alias).ok_or_else(|| {
            if alias == "missing" {
                CommandError::bad_value(
                    "'missing' is not a legal type name. To query for non-existence of a field, use {$exists:false}.",
                )
            } else {
                CommandError::bad_value(format!("Unknown type name alias: {alias}"))
            }
        })?;
        set.codes.push(code);
        return Ok(());
    }
    if Number::from_bson(value).is_none() {
        return Err(CommandError::type_mismatch(
            "type must be represented as a number or a string",
        ));
    }
    let shown = display_number(value);
    let code = integer_argument(value)
        .ok()
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| CommandError::bad_value(format!("Invalid numerical type code: {shown}")))?;
    if code == 0 {
        return Err(CommandError::bad_value(format!(
            "Invalid numerical type code: {shown}. Instead use {{$exists:false}}."
        )));
    }
    if !is_valid_type_code(code) {
        return Err(CommandError::bad_value(format!(
            "Invalid numerical type code: {shown}"
        )));
    }
    set.codes.push(code);
    Ok(())
}

fn display_number(value: &Bson) -> String {
    match value {
        Bson::Int32(v) => v.to_string(),
        Bson::Int64(v) => v.to_string(),
        Bson::Double(v) => v.to_string(),
        other => other.to_string(),
    }
}

fn is_valid_type_code(code: i32) -> bool {
    matches!(code, -1 | 127 | 1..=19)
}

/// mongod's `kTypeAliasMap`.
fn type_alias_code(alias: &str) -> Option<i32> {
    Some(match alias {
        "double" => 1,
        "string" => 2,
        "object" => 3,
        "array" => 4,
        "binData" => 5,
        "undefined" => 6,
        "objectId" => 7,
        "bool" => 8,
        "date" => 9,
        "null" => 10,
        "regex" => 11,
        "dbPointer" => 12,
        "javascript" => 13,
        "symbol" => 14,
        "javascriptWithScope" => 15,
        "int" => 16,
        "timestamp" => 17,
        "long" => 18,
        "decimal" => 19,
        "minKey" => -1,
        "maxKey" => 127,
        _ => return None,
    })
}

/// The BSON type byte of a value, as `$type` numbers it (MinKey is -1).
pub fn type_code(value: &Bson) -> i32 {
    match value {
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
        other => i32::from(other.element_type() as u8),
    }
}

fn parse_mod(value: &Bson) -> CmdResult<Pred> {
    let Bson::Array(items) = value else {
        return Err(CommandError::bad_value(
            "malformed mod, needs to be an array",
        ));
    };
    if items.len() < 2 {
        return Err(CommandError::bad_value(
            "malformed mod, not enough elements",
        ));
    }
    if items.len() > 2 {
        return Err(CommandError::bad_value("malformed mod, too many elements"));
    }
    let divisor = mod_operand(&items[0], "divisor")?;
    let remainder = mod_operand(&items[1], "remainder")?;
    if divisor == 0 {
        return Err(CommandError::bad_value("divisor cannot be 0"));
    }
    Ok(Pred::Mod(divisor, remainder))
}

/// 5.0+: any finite number, truncated toward zero to a 64-bit integer.
fn mod_operand(value: &Bson, what: &str) -> CmdResult<i64> {
    let invalid = || CommandError::bad_value(format!("malformed mod, {what} value is invalid"));
    match Number::from_bson(value) {
        None => Err(CommandError::bad_value(format!(
            "malformed mod, {what} not a number"
        ))),
        Some(Number::Long(v)) => Ok(v),
        Some(other) => truncate_to_i64(other.to_f64()).ok_or_else(invalid),
    }
}

fn parse_size(value: &Bson) -> CmdResult<i64> {
    let size = match value {
        Bson::Int32(v) => i64::from(*v),
        Bson::Int64(v) => i64::from(i32::try_from(*v).map_err(|_| {
            CommandError::bad_value("$size must be representable as a 32-bit integer")
        })?),
        Bson::Double(d) => {
            if d.fract() != 0.0 || !d.is_finite() {
                return Err(CommandError::bad_value("$size must be a whole number"));
            }
            *d as i64
        }
        Bson::Decimal128(d) => decimal_to_i64_exact(d)
            .ok_or_else(|| CommandError::bad_value("$size must be a whole number"))?,
        _ => return Err(CommandError::bad_value("$size needs a number")),
    };
    if size < 0 {
        return Err(CommandError::bad_value("$size may not be negative"));
    }
    Ok(size)
}

fn parse_regex_document(context: &Document) -> CmdResult<Rx> {
    let mut pattern = String::new();
    let mut options = String::new();
    for (key, value) in context {
        match key.as_str() {
            "$regex" => match value {
                Bson::String(s) => pattern = s.clone(),
                Bson::RegularExpression(re) => {
                    pattern = re.pattern.clone();
                    if !re.options.is_empty() {
                        if !options.is_empty() {
                            return Err(CommandError::from_code(
                                51074,
                                "options set in both $regex and $options",
                            ));
                        }
                        options = re.options.clone();
                    }
                }
                _ => return Err(CommandError::bad_value("$regex has to be a string")),
            },
            "$options" => {
                let Bson::String(s) = value else {
                    return Err(CommandError::bad_value("$options has to be a string"));
                };
                if !options.is_empty() {
                    return Err(CommandError::from_code(
                        51075,
                        "options set in both $regex and $options",
                    ));
                }
                options = s.clone();
            }
            _ => {}
        }
    }
    Rx::new(&pattern, &options)
}

fn parse_not(path: &str, value: &Bson, level: Level) -> CmdResult<Node> {
    match value {
        Bson::RegularExpression(re) => {
            Ok(leaf(path, Pred::Regex(Rx::new(&re.pattern, &re.options)?)))
        }
        Bson::Document(d) => {
            if d.is_empty() {
                return Err(CommandError::bad_value("$not cannot be empty"));
            }
            if d.keys().any(|k| !k.starts_with('$')) {
                return Err(CommandError::bad_value(format!(
                    "unknown operator: {}",
                    first_non_operator(d)
                )));
            }
            let mut children = Vec::new();
            parse_field_operators(path, d, &mut children, level)?;
            Ok(Node::And(children))
        }
        _ => Err(CommandError::bad_value("$not needs a regex or a document")),
    }
}

fn first_non_operator(d: &Document) -> String {
    d.keys()
        .find(|k| !k.starts_with('$'))
        .cloned()
        .unwrap_or_default()
}

fn parse_elem_match(path: &str, value: &Bson) -> CmdResult<Node> {
    let Bson::Document(spec) = value else {
        return Err(CommandError::bad_value("$elemMatch needs an Object"));
    };
    // Value form when the first key is an operator that needs a path ($gt, $in, ...); object
    // form otherwise (field names, or $and/$or/$nor/$expr which apply to whole elements).
    let value_form = is_expression_document(value, true)
        && spec
            .keys()
            .next()
            .is_some_and(|k| !is_path_less_operator(&k[1..]));
    if value_form {
        let mut children = Vec::new();
        for (op, operand) in spec {
            if !op.starts_with('$') {
                return Err(CommandError::bad_value(format!("unknown operator: {op}")));
            }
            if let Some(node) = parse_field_operator("", op, operand, spec, Level::Sub)? {
                children.push(node);
            }
        }
        return Ok(leaf(path, Pred::ElemMatchValue(children)));
    }
    let sub = parse_document(spec, Level::Sub)?;
    Ok(leaf(path, Pred::ElemMatchObject(Box::new(sub))))
}

fn is_path_less_operator(name: &str) -> bool {
    matches!(
        name,
        "and"
            | "or"
            | "nor"
            | "comment"
            | "alwaysTrue"
            | "alwaysFalse"
            | "expr"
            | "where"
            | "text"
            | "jsonSchema"
            | "sampleRate"
    ) || name.starts_with("_internal")
}

fn parse_all(path: &str, value: &Bson) -> CmdResult<Node> {
    let Bson::Array(items) = value else {
        return Err(CommandError::bad_value("$all needs an array"));
    };
    let first_is_elem_match = matches!(items.first(), Some(Bson::Document(d))
        if d.keys().next().map(String::as_str) == Some("$elemMatch"));
    let mut children = Vec::new();
    if first_is_elem_match {
        for item in items {
            let Some(inner) = elem_match_operand(item) else {
                return Err(CommandError::bad_value(
                    "$all/$elemMatch has to be consistent",
                ));
            };
            children.push(parse_elem_match(path, inner)?);
        }
        return Ok(Node::And(children));
    }
    for item in items {
        match item {
            Bson::RegularExpression(re) => {
                children.push(leaf(path, Pred::Regex(Rx::new(&re.pattern, &re.options)?)))
            }
            Bson::Document(d)
                if d.keys()
                    .next()
                    .is_some_and(|k| k.starts_with('$') && !is_dbref(d, false)) =>
            {
                return Err(CommandError::bad_value("no $ expressions in $all"))
            }
            other => children.push(leaf(path, comparison(CmpOp::Eq, path, other)?)),
        }
    }
    if children.is_empty() {
        return Ok(Node::AlwaysFalse);
    }
    Ok(Node::And(children))
}

fn elem_match_operand(item: &Bson) -> Option<&Bson> {
    let Bson::Document(d) = item else { return None };
    let (key, value) = d.iter().next()?;
    (key == "$elemMatch").then_some(value)
}

// ---------------------------------------------------------------------------------------------
// Regular expressions

impl Rx {
    fn new(pattern: &str, options: &str) -> CmdResult<Rx> {
        if pattern.contains('\0') {
            return Err(CommandError::bad_value(
                "Regular expression cannot contain an embedded null byte",
            ));
        }
        let compiled = compile_pcre(pattern, options)?;
        Ok(Rx {
            pattern: pattern.to_string(),
            options: options.to_string(),
            compiled,
        })
    }

    fn matches(&self, value: &Bson) -> bool {
        match value {
            Bson::String(s) | Bson::Symbol(s) => self.compiled.is_match(s),
            Bson::RegularExpression(re) => re.pattern == self.pattern && re.options == self.options,
            _ => false,
        }
    }
}

/// Translates a PCRE pattern with mongod's flags to the `regex` crate, refusing what the crate
/// cannot express rather than silently matching differently.
fn compile_pcre(pattern: &str, options: &str) -> CmdResult<regex::Regex> {
    let mut builder_flags = String::new();
    let mut multiline = false;
    for flag in options.chars() {
        match flag {
            'i' | 's' | 'x' => builder_flags.push(flag),
            'm' => {
                multiline = true;
                builder_flags.push('m');
            }
            // PCRE's UTF mode: the regex crate is always Unicode-aware.
            'u' => {}
            other => {
                return Err(CommandError::from_code(
                    51108,
                    format!("invalid flag in regex options: {other}"),
                ))
            }
        }
    }
    reject_unsupported_constructs(pattern)?;
    let translated = translate_dollar(pattern, multiline);
    let full = if builder_flags.is_empty() {
        translated
    } else {
        format!("(?{builder_flags}){translated}")
    };
    regex::Regex::new(&full)
        .map_err(|e| CommandError::from_code(51091, format!("Regular expression is invalid: {e}")))
}

fn reject_unsupported_constructs(pattern: &str) -> CmdResult<()> {
    const UNSUPPORTED: [&str; 8] = ["(?=", "(?!", "(?<=", "(?<!", "(?>", "*+", "++", "?+"];
    for construct in UNSUPPORTED {
        if pattern.contains(construct) {
            return Err(CommandError::bad_value(format!(
                "the testbed cannot evaluate the regular expression construct '{construct}' in /{pattern}/"
            )));
        }
    }
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\\' {
            let next = bytes[i + 1];
            if next.is_ascii_digit() && next != b'0'
                || matches!(next, b'Z' | b'G' | b'k' | b'g' | b'R' | b'X' | b'K')
            {
                return Err(CommandError::bad_value(format!(
                    "the testbed cannot evaluate the regular expression construct '\\{}' in /{pattern}/",
                    next as char
                )));
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    Ok(())
}

/// PCRE's `$` without the `m` flag also matches before a final newline; the regex crate's does
/// not. Only `is_match` is used, so consuming that newline is harmless.
fn translate_dollar(pattern: &str, multiline: bool) -> String {
    if multiline {
        return pattern.to_string();
    }
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    let mut in_class = false;
    for c in pattern.chars() {
        if escaped {
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                out.push(c);
            }
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            '$' if !in_class => out.push_str("(?:\\n?\\z)"),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Matching

impl Node {
    /// Matching against a whole document.
    fn matches_doc(&self, doc: &Document) -> CmdResult<MatchResult> {
        match self {
            Node::And(children) => {
                let mut position = None;
                for child in children {
                    match child.matches_doc(doc)? {
                        None => return Ok(None),
                        Some(Some(p)) => position = Some(p),
                        Some(None) => {}
                    }
                }
                Ok(Some(position))
            }
            Node::Or(children) if children.len() == 1 => children[0].matches_doc(doc),
            Node::Or(children) => {
                for child in children {
                    if child.matches_doc(doc)?.is_some() {
                        return Ok(Some(None));
                    }
                }
                Ok(None)
            }
            Node::Nor(children) => {
                for child in children {
                    if child.matches_doc(doc)?.is_some() {
                        return Ok(None);
                    }
                }
                Ok(Some(None))
            }
            Node::Not(child) => Ok(if child.matches_doc(doc)?.is_some() {
                None
            } else {
                Some(None)
            }),
            Node::AlwaysTrue => Ok(Some(None)),
            Node::AlwaysFalse => Ok(None),
            Node::Expr(expr) => {
                let value = expr.eval(doc)?;
                Ok(is_truthy(value.as_ref()).then_some(None))
            }
            Node::Leaf { path, pred } => pred.matches_path(doc, path),
        }
    }

    /// mongod's `matchesSingleElement`: used under `$elemMatch` (value form), where the
    /// children apply to one array element rather than a document.
    fn matches_single(&self, value: Option<&Bson>) -> bool {
        match self {
            Node::And(children) => children.iter().all(|c| c.matches_single(value)),
            Node::Or(children) => children.iter().any(|c| c.matches_single(value)),
            Node::Nor(children) => !children.iter().any(|c| c.matches_single(value)),
            Node::Not(child) => !child.matches_single(value),
            Node::AlwaysTrue => true,
            Node::AlwaysFalse | Node::Expr(_) => false,
            Node::Leaf { pred, .. } => pred.matches_single(value).is_some(),
        }
    }

    fn collect_equalities(&self, out: &mut Vec<(String, Bson)>) {
        match self {
            Node::And(children) => children.iter().for_each(|c| c.collect_equalities(out)),
            Node::Or(children) if children.len() == 1 => children[0].collect_equalities(out),
            Node::Leaf {
                path,
                pred: Pred::Cmp(CmpOp::Eq, value),
            } => out.push((path.clone(), value.clone())),
            // A one-element $in is rewritten to an equality by mongod's optimizer.
            Node::Leaf {
                path,
                pred: Pred::In(set),
            } if set.regexes.is_empty() && set.equalities.len() == 1 => {
                out.push((path.clone(), set.equalities[0].clone()));
            }
            _ => {}
        }
    }

    fn collect_paths(&self, out: &mut Vec<String>) {
        match self {
            Node::And(children) | Node::Or(children) | Node::Nor(children) => {
                children.iter().for_each(|c| c.collect_paths(out))
            }
            Node::Not(child) => child.collect_paths(out),
            Node::Leaf { path, .. } => out.push(path.clone()),
            _ => {}
        }
    }
}

impl Pred {
    fn leaf_behaviour(&self) -> LeafArray {
        match self {
            Pred::Size(_) | Pred::ElemMatchObject(_) | Pred::ElemMatchValue(_) => {
                LeafArray::NoTraversal
            }
            _ => LeafArray::Traverse,
        }
    }

    /// `PathMatchExpression::matches`: the first traversed value that matches decides; its
    /// implicit array offset wins over a position recorded by `$elemMatch`.
    fn matches_path(&self, doc: &Document, path: &str) -> CmdResult<MatchResult> {
        for PathValue {
            value,
            array_offset,
        } in path::iterate(doc, path, self.leaf_behaviour())
        {
            if let Some(inner) = self.matches_single(value) {
                return Ok(Some(array_offset.or(inner)));
            }
        }
        Ok(None)
    }

    /// One value (None = missing). `Some(pos)` on match, where `pos` is the `$elemMatch`
    /// element index when there is one.
    fn matches_single(&self, value: Option<&Bson>) -> MatchResult {
        let hit = match self {
            Pred::Cmp(op, rhs) => compare_single(*op, rhs, value),
            Pred::Regex(rx) => value.is_some_and(|v| rx.matches(v)),
            Pred::In(set) => set.matches(value),
            Pred::Exists => value.is_some(),
            Pred::Type(types) => value.is_some_and(|v| types.matches(v)),
            Pred::Mod(divisor, remainder) => {
                value.is_some_and(|v| mod_matches(v, *divisor, *remainder))
            }
            Pred::Size(n) => matches!(value, Some(Bson::Array(items)) if items.len() as i64 == *n),
            Pred::ElemMatchObject(sub) => return elem_match_object(sub, value),
            Pred::ElemMatchValue(subs) => return elem_match_value(subs, value),
        };
        hit.then_some(None)
    }
}

/// `ComparisonMatchExpression::matchesSingleElement`.
fn compare_single(op: CmpOp, rhs: &Bson, value: Option<&Bson>) -> bool {
    // Missing (EOO) has canonical rank 0, like undefined.
    let lhs_rank = value.map_or(0, canonical_rank);
    let rhs_rank = canonical_rank(rhs);
    let Some(lhs) = value.filter(|_| lhs_rank == rhs_rank) else {
        return cross_bracket(op, rhs, lhs_rank + rhs_rank);
    };
    if op != CmpOp::Eq {
        let lhs_nan = is_nan(lhs);
        let rhs_nan = is_nan(rhs);
        if lhs_nan || rhs_nan {
            return matches!(op, CmpOp::Lte | CmpOp::Gte) && lhs_nan && rhs_nan;
        }
    }
    let order = compare(lhs, rhs);
    match op {
        CmpOp::Eq => order == Ordering::Equal,
        CmpOp::Lt => order == Ordering::Less,
        CmpOp::Lte => order != Ordering::Greater,
        CmpOp::Gt => order == Ordering::Greater,
        CmpOp::Gte => order != Ordering::Less,
    }
}

/// Values of different canonical types: only null-vs-undefined/missing and MinKey/MaxKey
/// operands can match.
fn cross_bracket(op: CmpOp, rhs: &Bson, rank_sum: i32) -> bool {
    if rank_sum == 5 {
        return matches!(op, CmpOp::Eq | CmpOp::Lte | CmpOp::Gte);
    }
    matches!(
        (rhs, op),
        (Bson::MaxKey, CmpOp::Lt | CmpOp::Lte) | (Bson::MinKey, CmpOp::Gt | CmpOp::Gte)
    )
}

fn is_nan(value: &Bson) -> bool {
    match value {
        Bson::Double(d) => d.is_nan(),
        Bson::Decimal128(d) => Dec::from_decimal128(d).is_nan(),
        _ => false,
    }
}

impl InSet {
    fn matches(&self, value: Option<&Bson>) -> bool {
        if self.has_null && matches!(value, None | Some(Bson::Undefined)) {
            return true;
        }
        let Some(v) = value else { return false };
        self.equalities.iter().any(|e| values_equal(e, v))
            || self.regexes.iter().any(|rx| rx.matches(v))
    }
}

impl TypeSet {
    fn matches(&self, value: &Bson) -> bool {
        if self.all_numbers && Number::from_bson(value).is_some() {
            return true;
        }
        self.codes.contains(&type_code(value))
    }
}

/// `ModMatchExpression::matchesSingleElement`: doubles/decimals truncate toward zero and
/// must fit in 64 bits.
fn mod_matches(value: &Bson, divisor: i64, remainder: i64) -> bool {
    let dividend = match Number::from_bson(value) {
        None => return false,
        Some(Number::Long(v)) => v,
        Some(other) => {
            let Some(truncated) = truncate_to_i64(other.to_f64()) else {
                return false;
            };
            truncated
        }
    };
    // safeMod: i64::MIN % -1 overflows in Rust; the mathematical answer is 0.
    dividend.checked_rem(divisor).unwrap_or(0) == remainder
}

/// Object form: elements that are documents (or arrays, seen as documents keyed "0", "1", ...)
/// matched as whole documents.
fn elem_match_object(sub: &Node, value: Option<&Bson>) -> MatchResult {
    let Some(Bson::Array(items)) = value else {
        return None;
    };
    for (i, item) in items.iter().enumerate() {
        let as_doc = match item {
            Bson::Document(d) => d.clone(),
            Bson::Array(inner) => array_as_document(inner),
            _ => continue,
        };
        // $expr is rejected under $elemMatch at parse time, so evaluation cannot fail here.
        if matches!(sub.matches_doc(&as_doc), Ok(Some(_))) {
            return Some(Some(i));
        }
    }
    None
}

fn elem_match_value(subs: &[Node], value: Option<&Bson>) -> MatchResult {
    let Some(Bson::Array(items)) = value else {
        return None;
    };
    items
        .iter()
        .position(|item| subs.iter().all(|s| s.matches_single(Some(item))))
        .map(Some)
}

pub(crate) fn array_as_document(items: &[Bson]) -> Document {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| (i.to_string(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, Decimal128};
    use std::str::FromStr;

    fn m(filter: Document) -> Matcher {
        Matcher::parse(&filter).expect("filter parses")
    }

    fn hit(filter: Document, d: Document) -> bool {
        m(filter).matches(&d)
    }

    fn err(filter: Document) -> CommandError {
        Matcher::parse(&filter).expect_err("filter must be rejected")
    }

    fn dec(s: &str) -> Bson {
        Bson::Decimal128(Decimal128::from_str(s).expect("decimal literal"))
    }

    #[test]
    fn empty_filter_matches_everything() {
        let matcher = m(doc! {});
        assert!(matcher.is_empty());
        assert!(matcher.matches(&doc! {"a": 1}));
        assert!(!m(doc! {"a": 1}).is_empty());
    }

    #[test]
    fn numeric_equality_across_widths() {
        for v in [
            Bson::Int32(1),
            Bson::Int64(1),
            Bson::Double(1.0),
            dec("1.0"),
        ] {
            assert!(hit(doc! {"a": 1}, doc! {"a": v.clone()}), "{v:?}");
            assert!(hit(doc! {"a": {"$eq": dec("1")}}, doc! {"a": v}));
        }
        assert!(!hit(doc! {"a": 1}, doc! {"a": "1"}));
    }

    #[test]
    fn embedded_documents_equal_only_in_same_order() {
        assert!(hit(
            doc! {"a": {"x": 1, "y": 2}},
            doc! {"a": {"x": 1, "y": 2}}
        ));
        assert!(!hit(
            doc! {"a": {"x": 1, "y": 2}},
            doc! {"a": {"y": 2, "x": 1}}
        ));
    }

    #[test]
    fn type_bracketing_on_comparisons() {
        let gt5 = m(doc! {"_id": {"$gt": 5}});
        assert!(gt5.matches(&doc! {"_id": 6}));
        assert!(gt5.matches(&doc! {"_id": 5.5}));
        assert!(gt5.matches(&doc! {"_id": dec("7")}));
        assert!(!gt5.matches(&doc! {"_id": "10"}));
        assert!(!gt5.matches(&doc! {"_id": ObjectId::new()}));
        assert!(!gt5.matches(&doc! {"_id": {"a": 1}}));
        assert!(!gt5.matches(&doc! {"_id": true}));
        let lt_str = m(doc! {"a": {"$lt": "b"}});
        assert!(lt_str.matches(&doc! {"a": "a"}));
        assert!(!lt_str.matches(&doc! {"a": 1}));
        assert!(!lt_str.matches(&doc! {"a": Bson::Null}));
        // Symbol brackets with String.
        assert!(lt_str.matches(&doc! {"a": Bson::Symbol("a".into())}));
    }

    #[test]
    fn range_scan_per_type_overlaps_numeric_widths() {
        let range = m(doc! {"_id": {"$gte": Bson::Int64(1), "$lte": Bson::Int64(3)}});
        assert!(range.matches(&doc! {"_id": 2.5}));
        assert!(range.matches(&doc! {"_id": dec("3")}));
        assert!(!range.matches(&doc! {"_id": "2"}));
    }

    #[test]
    fn minkey_maxkey_operands_cross_brackets() {
        let values = [
            Bson::Int32(1),
            Bson::String("x".into()),
            Bson::Null,
            Bson::Document(doc! {}),
        ];
        for v in &values {
            let d = doc! {"a": v.clone()};
            assert!(hit(doc! {"a": {"$gt": Bson::MinKey}}, d.clone()));
            assert!(hit(doc! {"a": {"$gte": Bson::MinKey}}, d.clone()));
            assert!(hit(doc! {"a": {"$lt": Bson::MaxKey}}, d.clone()));
            assert!(hit(doc! {"a": {"$lte": Bson::MaxKey}}, d.clone()));
            assert!(!hit(doc! {"a": {"$lt": Bson::MinKey}}, d.clone()));
            assert!(!hit(doc! {"a": {"$lte": Bson::MinKey}}, d.clone()));
            assert!(!hit(doc! {"a": {"$gt": Bson::MaxKey}}, d.clone()));
            assert!(!hit(doc! {"a": Bson::MinKey}, d));
        }
        let min = doc! {"a": Bson::MinKey};
        assert!(hit(doc! {"a": {"$lte": Bson::MinKey}}, min.clone()));
        assert!(!hit(doc! {"a": {"$lt": Bson::MinKey}}, min.clone()));
        assert!(
            !hit(doc! {"a": {"$gt": Bson::MinKey}}, min.clone()),
            "MinKey is not > MinKey"
        );
        assert!(hit(doc! {"a": {"$gte": Bson::MinKey}}, min));
        let max = doc! {"a": Bson::MaxKey};
        assert!(!hit(doc! {"a": {"$lt": Bson::MaxKey}}, max.clone()));
        assert!(hit(doc! {"a": {"$lte": Bson::MaxKey}}, max));
        // Missing fields too: whole-range scans must not lose documents.
        assert!(hit(doc! {"a": {"$gte": Bson::MinKey}}, doc! {}));
        assert!(hit(doc! {"a": {"$lte": Bson::MaxKey}}, doc! {}));
    }

    #[test]
    fn null_matches_null_missing_and_undefined() {
        for d in [doc! {"a": Bson::Null}, doc! {}, doc! {"a": Bson::Undefined}] {
            assert!(hit(doc! {"a": Bson::Null}, d.clone()), "{d:?}");
            assert!(hit(doc! {"a": {"$gte": Bson::Null}}, d.clone()));
            assert!(hit(doc! {"a": {"$lte": Bson::Null}}, d.clone()));
            assert!(!hit(doc! {"a": {"$gt": Bson::Null}}, d.clone()));
            assert!(!hit(doc! {"a": {"$lt": Bson::Null}}, d.clone()));
            assert!(hit(doc! {"a": {"$in": [Bson::Null]}}, d));
        }
        assert!(!hit(doc! {"a": Bson::Null}, doc! {"a": 0}));
        assert!(!hit(doc! {"a": {"$ne": Bson::Null}}, doc! {}));
        assert!(hit(doc! {"a": {"$ne": Bson::Null}}, doc! {"a": 1}));
        // Arrays of documents: an element lacking the field counts as null.
        assert!(hit(
            doc! {"a.b": Bson::Null},
            doc! {"a": [{"b": 1}, {"c": 1}]}
        ));
        assert!(!hit(doc! {"a.b": Bson::Null}, doc! {"a": [{"b": 1}]}));
        assert!(!hit(doc! {"a.b": Bson::Null}, doc! {"a": [1, 2]}));
        assert!(err(doc! {"a": Bson::Undefined})
            .message
            .contains("undefined"));
    }

    #[test]
    fn nan_rules() {
        let nan = doc! {"a": f64::NAN};
        assert!(hit(doc! {"a": f64::NAN}, nan.clone()));
        assert!(hit(doc! {"a": dec("NaN")}, nan.clone()));
        assert!(!hit(doc! {"a": {"$lt": f64::NAN}}, nan.clone()));
        assert!(!hit(doc! {"a": {"$gt": f64::NAN}}, nan.clone()));
        assert!(hit(doc! {"a": {"$lte": f64::NAN}}, nan.clone()));
        assert!(hit(doc! {"a": {"$gte": f64::NAN}}, nan.clone()));
        assert!(!hit(doc! {"a": {"$gt": 0}}, nan.clone()));
        assert!(!hit(doc! {"a": {"$lt": 0}}, nan.clone()));
        assert!(!hit(doc! {"a": {"$lte": 0}}, nan.clone()));
        assert!(!hit(doc! {"a": {"$gte": f64::NAN}}, doc! {"a": 1}));
        assert!(!hit(
            doc! {"a": {"$lte": f64::NAN}},
            doc! {"a": f64::NEG_INFINITY}
        ));
        assert!(!hit(doc! {"a": 1}, nan));
    }

    #[test]
    fn arrays_match_by_element_or_whole() {
        let d = doc! {"a": [1, 2, [3]]};
        assert!(hit(doc! {"a": 2}, d.clone()));
        assert!(hit(doc! {"a": [3]}, d.clone()));
        assert!(hit(doc! {"a": [1, 2, [3]]}, d.clone()));
        assert!(
            !hit(doc! {"a": 3}, d.clone()),
            "no recursion into nested arrays"
        );
        assert!(hit(doc! {"a": {"$gt": 1, "$lt": 2.5}}, d.clone()));
        assert!(
            hit(doc! {"a": {"$gt": 5, "$lt": 2}}, doc! {"a": [1, 6]}),
            "different elements may satisfy each"
        );
        assert!(hit(doc! {"a": [1, 2]}, doc! {"a": [[1, 2], 5]}));
        assert!(!hit(doc! {"a": [2, 1]}, doc! {"a": [1, 2]}));
    }

    #[test]
    fn negations_cover_whole_traversal() {
        assert!(!hit(doc! {"a": {"$ne": 1}}, doc! {"a": [1, 2]}));
        assert!(hit(doc! {"a": {"$ne": 3}}, doc! {"a": [1, 2]}));
        assert!(hit(doc! {"a": {"$ne": 1}}, doc! {}));
        assert!(
            hit(doc! {"a": {"$ne": 1}}, doc! {"a": "1"}),
            "$ne matches every type"
        );
        assert!(!hit(doc! {"a": {"$nin": [2, 5]}}, doc! {"a": [1, 2]}));
        assert!(hit(doc! {"a": {"$nin": [7]}}, doc! {"a": [1, 2]}));
        assert!(hit(doc! {"a": {"$nin": [7]}}, doc! {}));
        assert!(hit(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": "x"}));
        assert!(!hit(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": [1, 9]}));
        assert!(hit(
            doc! {"a": {"$not": bson::Regex { pattern: "^x".into(), options: String::new() }}},
            doc! {"a": "y"}
        ));
        assert!(err(doc! {"a": {"$not": {}}})
            .message
            .contains("$not cannot be empty"));
        assert!(err(doc! {"a": {"$not": 5}})
            .message
            .contains("$not needs a regex"));
    }

    #[test]
    fn exists() {
        assert!(hit(doc! {"a": {"$exists": true}}, doc! {"a": Bson::Null}));
        assert!(hit(doc! {"a": {"$exists": 1}}, doc! {"a": []}));
        assert!(!hit(doc! {"a": {"$exists": true}}, doc! {}));
        assert!(hit(doc! {"a": {"$exists": false}}, doc! {}));
        assert!(hit(doc! {"a": {"$exists": 0}}, doc! {"b": 1}));
        assert!(!hit(doc! {"a": {"$exists": false}}, doc! {"a": 1}));
        assert!(hit(doc! {"a.b": {"$exists": false}}, doc! {"a": []}));
        assert!(hit(
            doc! {"a.b": {"$exists": true}},
            doc! {"a": [{"c": 1}, {"b": 1}]}
        ));
        assert!(!hit(
            doc! {"a.b": {"$exists": false}},
            doc! {"a": [{"c": 1}, {"b": 1}]}
        ));
    }

    #[test]
    fn dotted_paths_through_arrays() {
        let d = doc! {"a": [{"b": 1}, {"b": [2, 3]}], "c": {"d": {"e": 5}}};
        assert!(hit(doc! {"a.b": 1}, d.clone()));
        assert!(hit(doc! {"a.b": 3}, d.clone()));
        assert!(hit(doc! {"a.b": [2, 3]}, d.clone()));
        assert!(hit(doc! {"c.d.e": 5}, d.clone()));
        assert!(!hit(doc! {"c.d.e.f": 5}, d.clone()));
        assert!(hit(doc! {"a.1.b": 2}, d.clone()));
        assert!(!hit(doc! {"a.0.b": 2}, d.clone()));
        assert!(hit(doc! {"a.b.1": 3}, d.clone()));
        assert!(
            hit(doc! {"x.0": 9}, doc! {"x": {"0": 9}}),
            "numeric component names a field"
        );
        assert!(hit(doc! {"x.0": 9}, doc! {"x": [9]}));
        assert!(hit(doc! {"x.0.0": 9}, doc! {"x": [[9]]}));
    }

    #[test]
    fn in_with_regex_and_arrays() {
        let re = bson::Regex {
            pattern: "^ab".into(),
            options: "i".into(),
        };
        let f = doc! {"a": {"$in": [1, Bson::RegularExpression(re.clone())]}};
        assert!(hit(f.clone(), doc! {"a": "ABc"}));
        assert!(hit(f.clone(), doc! {"a": 1.0}));
        assert!(hit(f.clone(), doc! {"a": ["zz", "abz"]}));
        assert!(!hit(f.clone(), doc! {"a": "zab"}));
        assert!(hit(f, doc! {"a": Bson::RegularExpression(re)}));
        assert!(hit(doc! {"a": {"$in": [[1, 2]]}}, doc! {"a": [1, 2]}));
        assert!(!hit(doc! {"a": {"$in": []}}, doc! {"a": 1}));
        assert_eq!(err(doc! {"a": {"$in": 1}}).message, "$in needs an array");
        assert_eq!(
            err(doc! {"a": {"$in": [{"$gt": 1}]}}).message,
            "cannot nest $ under $in"
        );
    }

    #[test]
    fn all_operator() {
        let d = doc! {"a": [1, 2, 3]};
        assert!(hit(doc! {"a": {"$all": [1, 3]}}, d.clone()));
        assert!(!hit(doc! {"a": {"$all": [1, 4]}}, d.clone()));
        assert!(!hit(doc! {"a": {"$all": []}}, d.clone()));
        assert!(hit(doc! {"a": {"$all": [5]}}, doc! {"a": 5}));
        assert!(hit(doc! {"a": {"$all": [[1, 2]]}}, doc! {"a": [[1, 2], 3]}));
        assert!(hit(doc! {"a": {"$all": [[1, 2]]}}, doc! {"a": [1, 2]}));
        let em =
            doc! {"a": {"$all": [{"$elemMatch": {"x": 1}}, {"$elemMatch": {"y": {"$gt": 1}}}]}};
        assert!(hit(em.clone(), doc! {"a": [{"x": 1}, {"y": 2}]}));
        assert!(!hit(em, doc! {"a": [{"x": 1}, {"y": 1}]}));
        assert!(err(doc! {"a": {"$all": [{"$elemMatch": {"x": 1}}, 5]}})
            .message
            .contains("consistent"));
        assert!(err(doc! {"a": {"$all": [{"$gt": 1}]}})
            .message
            .contains("no $ expressions"));
    }

    #[test]
    fn elem_match_forms() {
        let d = doc! {"a": [{"x": 1, "y": 5}, {"x": 2, "y": 1}]};
        assert!(hit(doc! {"a": {"$elemMatch": {"x": 2, "y": 1}}}, d.clone()));
        assert!(!hit(
            doc! {"a": {"$elemMatch": {"x": 2, "y": 5}}},
            d.clone()
        ));
        assert!(hit(doc! {"a": {"x": 2, "y": 1}}, d.clone()));
        let v = doc! {"a": [1, 5, 10]};
        assert!(hit(
            doc! {"a": {"$elemMatch": {"$gt": 4, "$lt": 6}}},
            v.clone()
        ));
        assert!(!hit(
            doc! {"a": {"$elemMatch": {"$gt": 6, "$lt": 9}}},
            v.clone()
        ));
        assert!(
            hit(doc! {"a": {"$gt": 6, "$lt": 9}}, v.clone()),
            "without $elemMatch any element per clause"
        );
        assert!(
            !hit(doc! {"a": {"$elemMatch": {"$gt": 0}}}, doc! {"a": 5}),
            "only arrays"
        );
        assert!(hit(doc! {"a": {"$elemMatch": {"$ne": 1}}}, v.clone()));
        assert!(hit(
            doc! {"a": {"$elemMatch": {"$or": [{"x": 9}, {"y": 1}]}}},
            d
        ));
        assert!(hit(
            doc! {"a": {"$elemMatch": {"0": 1}}},
            doc! {"a": [[1, 2]]}
        ));
        assert!(err(doc! {"a": {"$elemMatch": 1}})
            .message
            .contains("$elemMatch needs an Object"));
    }

    #[test]
    fn size() {
        assert!(hit(doc! {"a": {"$size": 2}}, doc! {"a": [1, [2, 3]]}));
        assert!(!hit(doc! {"a": {"$size": 3}}, doc! {"a": [1, [2, 3]]}));
        assert!(hit(doc! {"a": {"$size": 0}}, doc! {"a": []}));
        assert!(!hit(doc! {"a": {"$size": 1}}, doc! {"a": 1}));
        assert!(hit(doc! {"a.b": {"$size": 2}}, doc! {"a": [{"b": [1, 2]}]}));
        assert!(hit(doc! {"a": {"$size": 2.0}}, doc! {"a": [1, 2]}));
        assert_eq!(
            err(doc! {"a": {"$size": -1}}).message,
            "$size may not be negative"
        );
        assert_eq!(
            err(doc! {"a": {"$size": 1.5}}).message,
            "$size must be a whole number"
        );
        assert_eq!(
            err(doc! {"a": {"$size": "1"}}).message,
            "$size needs a number"
        );
    }

    #[test]
    fn type_operator() {
        let f = m(doc! {"a": {"$type": "number"}});
        for v in [Bson::Int32(1), Bson::Int64(1), Bson::Double(1.0), dec("1")] {
            assert!(f.matches(&doc! {"a": v}));
        }
        assert!(!f.matches(&doc! {"a": "1"}));
        assert!(!f.matches(&doc! {}));
        assert!(hit(doc! {"a": {"$type": 16}}, doc! {"a": 1}));
        assert!(!hit(doc! {"a": {"$type": 18}}, doc! {"a": 1}));
        assert!(hit(
            doc! {"a": {"$type": "long"}},
            doc! {"a": Bson::Int64(1)}
        ));
        assert!(hit(doc! {"a": {"$type": ["string", 1.0]}}, doc! {"a": 2.5}));
        assert!(hit(doc! {"a": {"$type": "array"}}, doc! {"a": [1]}));
        assert!(
            hit(doc! {"a": {"$type": "int"}}, doc! {"a": [1]}),
            "elements are checked too"
        );
        assert!(hit(
            doc! {"a": {"$type": "minKey"}},
            doc! {"a": Bson::MinKey}
        ));
        assert!(hit(doc! {"a": {"$type": -1}}, doc! {"a": Bson::MinKey}));
        assert!(hit(doc! {"a": {"$type": 127}}, doc! {"a": Bson::MaxKey}));
        assert!(hit(doc! {"a": {"$type": "null"}}, doc! {"a": Bson::Null}));
        assert!(err(doc! {"a": {"$type": "missing"}})
            .message
            .contains("'missing' is not a legal type name"));
        assert_eq!(
            err(doc! {"a": {"$type": "foo"}}).message,
            "Unknown type name alias: foo"
        );
        assert_eq!(
            err(doc! {"a": {"$type": 99}}).message,
            "Invalid numerical type code: 99"
        );
        assert!(err(doc! {"a": {"$type": 0}})
            .message
            .contains("$exists:false"));
        assert_eq!(err(doc! {"a": {"$type": []}}).code, 9);
        assert_eq!(err(doc! {"a": {"$type": true}}).code, 14);
    }

    #[test]
    fn regex_operator() {
        assert!(hit(doc! {"a": {"$regex": "^a.c$"}}, doc! {"a": "abc"}));
        assert!(hit(
            doc! {"a": {"$regex": "^ABC", "$options": "i"}},
            doc! {"a": "abcd"}
        ));
        assert!(hit(
            doc! {"a": {"$options": "i", "$regex": "^ABC"}},
            doc! {"a": "abcd"}
        ));
        assert!(hit(
            doc! {"a": {"$regex": "^b", "$options": "m"}},
            doc! {"a": "a\nb"}
        ));
        assert!(!hit(doc! {"a": {"$regex": "^b"}}, doc! {"a": "a\nb"}));
        assert!(hit(
            doc! {"a": {"$regex": "a.b", "$options": "s"}},
            doc! {"a": "a\nb"}
        ));
        assert!(hit(
            doc! {"a": {"$regex": "a b # comment", "$options": "x"}},
            doc! {"a": "ab"}
        ));
        assert!(
            hit(doc! {"a": {"$regex": "c$"}}, doc! {"a": "abc\n"}),
            "PCRE $ before final newline"
        );
        assert!(hit(
            doc! {"a": bson::Regex { pattern: "b".into(), options: String::new() }},
            doc! {"a": ["x", "abc"]}
        ));
        assert!(
            !hit(doc! {"a": {"$regex": "1"}}, doc! {"a": 1}),
            "regex never matches numbers"
        );
        assert!(hit(
            doc! {"a": {"$regex": "x"}},
            doc! {"a": Bson::Symbol("x".into())}
        ));
        assert_eq!(
            err(doc! {"a": {"$options": "i"}}).message,
            "$options needs a $regex"
        );
        assert_eq!(
            err(doc! {"a": {"$regex": "a", "$options": "q"}}).code,
            51108
        );
        assert_eq!(err(doc! {"a": {"$regex": "(?=a)"}}).code, 2);
        assert_eq!(err(doc! {"a": {"$regex": "(a)\\1"}}).code, 2);
        assert_eq!(err(doc! {"a": {"$regex": "(unclosed"}}).code, 51091);
        assert_eq!(
            err(doc! {"a": {"$regex": 5}}).message,
            "$regex has to be a string"
        );
        assert!(err(
            doc! {"a": {"$gt": bson::Regex { pattern: "a".into(), options: String::new() }}}
        )
        .message
        .contains("Can't have RegEx"));
        assert!(err(
            doc! {"a": {"$ne": bson::Regex { pattern: "a".into(), options: String::new() }}}
        )
        .message
        .contains("$ne"));
    }

    #[test]
    fn eq_with_regex_operand_compares_regex_values() {
        let re = bson::Regex {
            pattern: "a".into(),
            options: String::new(),
        };
        assert!(!hit(doc! {"a": {"$eq": re.clone()}}, doc! {"a": "a"}));
        assert!(hit(doc! {"a": {"$eq": re.clone()}}, doc! {"a": re}));
    }

    #[test]
    fn mod_operator() {
        assert!(hit(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5}));
        assert!(hit(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5.9}));
        assert!(hit(doc! {"a": {"$mod": [4, -1]}}, doc! {"a": -5}));
        assert!(!hit(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": "5"}));
        assert!(!hit(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": f64::NAN}));
        assert!(hit(doc! {"a": {"$mod": [-1, 0]}}, doc! {"a": i64::MIN}));
        assert_eq!(
            err(doc! {"a": {"$mod": [0, 1]}}).message,
            "divisor cannot be 0"
        );
        assert!(err(doc! {"a": {"$mod": [4]}})
            .message
            .contains("not enough elements"));
        assert!(err(doc! {"a": {"$mod": [4, 1, 2]}})
            .message
            .contains("too many elements"));
        assert!(err(doc! {"a": {"$mod": 4}})
            .message
            .contains("needs to be an array"));
    }

    #[test]
    fn logical_operators() {
        let d = doc! {"a": 1, "b": 2};
        assert!(hit(doc! {"$and": [{"a": 1}, {"b": 2}]}, d.clone()));
        assert!(!hit(doc! {"$and": [{"a": 1}, {"b": 3}]}, d.clone()));
        assert!(hit(doc! {"$or": [{"a": 5}, {"b": 2}]}, d.clone()));
        assert!(!hit(doc! {"$nor": [{"a": 5}, {"b": 2}]}, d.clone()));
        assert!(hit(doc! {"$nor": [{"a": 5}, {"b": 3}]}, d.clone()));
        assert!(hit(doc! {"$alwaysTrue": 1}, d.clone()));
        assert!(!hit(doc! {"$alwaysFalse": 1}, d.clone()));
        assert!(hit(doc! {"a": 1, "$comment": "why"}, d.clone()));
        assert_eq!(
            err(doc! {"$and": []}).message,
            "$and/$or/$nor must be a nonempty array"
        );
        assert_eq!(
            err(doc! {"$or": [1]}).message,
            "$or/$and/$nor entries need to be full objects"
        );
        assert_eq!(err(doc! {"$or": 1}).message, "$or must be an array");
        assert_eq!(err(doc! {"$alwaysTrue": 2}).code, 9);
    }

    #[test]
    fn unknown_and_unsupported_operators() {
        let e = err(doc! {"$foo": 1});
        assert_eq!(
            (e.code, e.message.as_str()),
            (2, "unknown top level operator: $foo")
        );
        let e = err(doc! {"a": {"$foo": 1}});
        assert_eq!((e.code, e.message.as_str()), (2, "unknown operator: $foo"));
        for f in [
            doc! {"$where": "true"},
            doc! {"$text": {"$search": "x"}},
            doc! {"$jsonSchema": {}},
            doc! {"a": {"$bitsAllSet": 1}},
            doc! {"a": {"$geoWithin": {}}},
            doc! {"a": {"$near": [0, 0]}},
        ] {
            let e = err(f.clone());
            assert_eq!(e.code, 238, "{f:?}");
        }
        assert!(err(doc! {"$where": "x"}).message.contains("$where"));
        assert!(err(doc! {"a": {"$gt": 1, "b": 1}})
            .message
            .contains("unknown operator: b"));
    }

    #[test]
    fn non_operator_documents_are_values() {
        assert!(hit(doc! {"a": {}}, doc! {"a": {}}));
        assert!(!hit(doc! {"a": {}}, doc! {"a": {"x": 1}}));
        let dbref = doc! {"$ref": "c", "$id": 1};
        assert!(hit(doc! {"a": dbref.clone()}, doc! {"a": dbref}));
    }

    #[test]
    fn match_position_reports_first_array_index() {
        let d = doc! {"a": [{"b": 1}, {"b": 2}, {"b": 3}]};
        assert_eq!(m(doc! {"a.b": 2}).match_position(&d), Some(Some(1)));
        assert_eq!(
            m(doc! {"a.b": {"$gt": 1}}).match_position(&d),
            Some(Some(1))
        );
        assert_eq!(
            m(doc! {"a": {"$elemMatch": {"b": 3}}}).match_position(&d),
            Some(Some(2))
        );
        assert_eq!(m(doc! {"a.b": 9}).match_position(&d), None);
        assert_eq!(m(doc! {"x": 1}).match_position(&doc! {"x": 1}), Some(None));
        assert_eq!(
            m(doc! {"x": 1}).match_position(&doc! {"x": [0, 1]}),
            Some(Some(1))
        );
        // Explicit index: no implicit traversal.
        assert_eq!(m(doc! {"a.1.b": 2}).match_position(&d), Some(None));
        // Nested arrays: the outermost array's index.
        let nested = doc! {"a": [{"b": [5]}, {"b": [6, 7]}]};
        assert_eq!(m(doc! {"a.b": 7}).match_position(&nested), Some(Some(1)));
        // $and: last child to record wins.
        let two = doc! {"x": [1, 2], "y": [3, 4]};
        assert_eq!(m(doc! {"x": 2, "y": 3}).match_position(&two), Some(Some(0)));
        // $or records nothing unless it has a single branch.
        assert_eq!(
            m(doc! {"$or": [{"x": 2}, {"y": 9}]}).match_position(&two),
            Some(None)
        );
        assert_eq!(
            m(doc! {"$or": [{"x": 2}]}).match_position(&two),
            Some(Some(1))
        );
    }

    #[test]
    fn equality_fields_for_upsert_seeding() {
        let f = m(doc! {
            "a": 1,
            "b.c": "x",
            "d": {"$eq": 5},
            "e": {"$gt": 1},
            "$and": [{"f": 2}, {"$and": [{"g": 3}]}],
            "$or": [{"h": 4}, {"i": 5}],
            "j": {"$in": [7]},
            "k": {"$in": [7, 8]},
        });
        let fields: Vec<String> = f.equality_fields().into_iter().map(|(k, _)| k).collect();
        assert_eq!(fields, vec!["a", "b.c", "d", "f", "g", "j"]);
        assert_eq!(f.equality_fields()[0].1, Bson::Int32(1));
    }

    #[test]
    fn more_array_and_negation_edges() {
        assert!(hit(doc! {"a": {"$gt": 5}}, doc! {"a": [1, "x", 10]}));
        assert!(!hit(
            doc! {"a": {"$gt": 5}},
            doc! {"a": [1, "x", {"b": 10}]}
        ));
        assert!(!hit(doc! {"a": {"$in": [Bson::Null]}}, doc! {"a": [1]}));
        assert!(hit(doc! {"a": Bson::Null}, doc! {"a": [1, Bson::Null]}));
        assert!(!hit(doc! {"a": Bson::Null}, doc! {"a": []}));
        let not_re = bson::Regex {
            pattern: "x".into(),
            options: String::new(),
        };
        assert!(hit(doc! {"a": {"$not": not_re.clone()}}, doc! {"a": 1}));
        assert!(hit(doc! {"a": {"$not": not_re}}, doc! {}));
        assert!(hit(doc! {"a": {"$not": {"$size": 2}}}, doc! {"a": [1]}));
        assert!(hit(
            doc! {"a": {"$elemMatch": {"$elemMatch": {"$gt": 1}}}},
            doc! {"a": [[0], [2]]}
        ));
        assert!(hit(
            doc! {"a": {"$elemMatch": {"$not": {"$gt": 5}}}},
            doc! {"a": [9, 3]}
        ));
        // mongod's iterator yields "missing" for the implicit traversal of {b: 1} by "0.b".
        assert!(hit(doc! {"a.0.b": Bson::Null}, doc! {"a": [{"b": 1}]}));
        // $exists on an indexed element.
        assert!(hit(doc! {"a.1": {"$exists": true}}, doc! {"a": [1, 2]}));
        assert!(!hit(doc! {"a.2": {"$exists": true}}, doc! {"a": [1, 2]}));
        // Undefined stored values equal null, and compare like it for $lte/$gte.
        assert!(!hit(
            doc! {"a": {"$gt": Bson::Null}},
            doc! {"a": Bson::Undefined}
        ));
    }

    #[test]
    fn mixed_type_id_scan_is_partitioned_by_bracket() {
        let docs = [
            doc! {"_id": 9},
            doc! {"_id": "10"},
            doc! {"_id": ObjectId::from_bytes([1; 12])},
            doc! {"_id": {"a": 1}},
            doc! {"_id": f64::NAN},
            doc! {"_id": Bson::Int64((1 << 53) + 1)},
        ];
        let count = |f: Document| docs.iter().filter(|d| m(f.clone()).matches(d)).count();
        assert_eq!(
            count(doc! {"_id": {"$gt": 0}}),
            2,
            "only numbers, NaN excluded"
        );
        assert_eq!(
            count(doc! {"_id": {"$gt": (1_i64 << 53) as f64}}),
            1,
            "exact long vs double"
        );
        assert_eq!(count(doc! {"_id": {"$gte": ""}}), 1);
        assert_eq!(count(doc! {"_id": {"$gte": Bson::MinKey}}), 6);
        assert_eq!(count(doc! {"_id": {"$lte": Bson::MaxKey}}), 6);
        assert_eq!(count(doc! {"_id": {"$ne": 9}}), 5);
    }

    #[test]
    fn expr_does_not_bracket() {
        let f = m(doc! {"$expr": {"$gt": ["$a", 5]}});
        assert!(f.matches(&doc! {"a": 6}));
        assert!(
            f.matches(&doc! {"a": "abc"}),
            "strings sort above numbers in $expr"
        );
        assert!(!f.matches(&doc! {"a": 4}));
        assert!(err(doc! {"a": {"$elemMatch": {"$expr": {"$eq": [1, 1]}}}})
            .message
            .contains("$expr"));
    }
}
