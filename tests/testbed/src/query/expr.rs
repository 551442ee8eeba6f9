//! Aggregation expressions, parsed and evaluated the way mongod's `Expression` tree does
//! (`src/mongo/db/pipeline/expression.cpp`).
//!
//! What matters for a sync tool's tests, and is easy to get subtly wrong:
//! - comparisons (`$eq`, `$lt`, `$cmp`, ...) use the canonical BSON order across types,
//!   with **no** type bracketing (`$lt: ["a", 1]` is false because strings rank above
//!   numbers), NaN equal to NaN and below every number, and "missing" ranked with
//!   `undefined`, below `null`;
//! - field paths traverse arrays (`"$a.b"` over `a: [{b: 1}, {b: 2}]` is `[1, 2]`);
//! - arithmetic keeps mongod's result types (int overflow widens to long, long overflow to
//!   double, any decimal makes the result decimal).
//!
//! Operators mongod has but the testbed does not implement are refused with
//! NotImplemented naming them; unknown names fail as mongod fails (168).
//!
//! Layout: this file holds the tree, field paths, variables and the error helpers;
//! `ops` parses operators and dispatches them; `arith`, `convert` and `arrays` hold the
//! operator bodies.

pub(crate) mod arith;
mod arrays;
mod convert;
mod dec_math;
mod named_args;
mod ops;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::bson_cmp::{canonical_rank, compare, Number};
use crate::error::{CmdResult, CommandError};

pub(crate) use convert::type_name;

/// A parsed aggregation expression.
#[derive(Debug, Clone)]
pub struct Expr {
    node: Node,
}

impl Expr {
    pub fn parse(value: &Bson) -> CmdResult<Expr> {
        let mut scope = Vec::new();
        Ok(Expr {
            node: parse_node(value, &mut scope)?,
        })
    }

    /// Evaluate with `$$ROOT`/`$$CURRENT` = root. `None` = missing.
    pub fn eval(&self, root: &Document) -> CmdResult<Option<Bson>> {
        let mut ctx = Ctx {
            root,
            vars: Vec::new(),
        };
        eval_node(&self.node, &mut ctx)
    }

    /// True when the expression is a constant (its value does not depend on the document).
    pub fn constant(&self) -> Option<&Bson> {
        match &self.node {
            Node::Const(value) => Some(value),
            _ => None,
        }
    }
}

/// mongod's `Value::coerceToBool`: false, null, undefined, missing and numeric zero are
/// false; everything else (NaN, "", [], {}) is true.
pub fn is_truthy(value: Option<&Bson>) -> bool {
    match value {
        None | Some(Bson::Null) | Some(Bson::Undefined) => false,
        Some(Bson::Boolean(flag)) => *flag,
        Some(other) => match Number::from_bson(other) {
            Some(Number::Long(v)) => v != 0,
            Some(Number::Double(v)) => v != 0.0,
            Some(Number::Decimal(d)) => !d.is_zero(),
            None => true,
        },
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(Bson),
    /// `"$a.b"`: a path from `$$CURRENT`.
    Path(Vec<String>),
    /// `"$$name.a.b"`.
    Var(Var, Vec<String>),
    /// `{a: <expr>, b: <expr>}`: fields that evaluate to missing are left out.
    Object(Vec<(String, Node)>),
    /// `[<expr>, ...]`: elements that evaluate to missing become null.
    Array(Vec<Node>),
    Op(Box<ops::OpExpr>),
}

#[derive(Debug, Clone)]
pub(crate) enum Var {
    Root,
    Remove,
    User(String),
}

/// Evaluation state: the document and the `$let` bindings in scope (innermost last).
pub(crate) struct Ctx<'a> {
    root: &'a Document,
    vars: Vec<(String, Option<Bson>)>,
}

pub(crate) fn parse_node(value: &Bson, scope: &mut Vec<String>) -> CmdResult<Node> {
    match value {
        Bson::String(text) if text.starts_with('$') => parse_path(text, scope),
        Bson::Document(doc) => parse_object(doc, scope),
        Bson::Array(items) => {
            let nodes = items
                .iter()
                .map(|item| parse_node(item, scope))
                .collect::<CmdResult<_>>()?;
            Ok(Node::Array(nodes))
        }
        other => Ok(Node::Const(other.clone())),
    }
}

fn parse_object(doc: &Document, scope: &mut Vec<String>) -> CmdResult<Node> {
    let Some((first, argument)) = doc.iter().next() else {
        return Ok(Node::Const(Bson::Document(Document::new())));
    };
    if first.starts_with('$') {
        if doc.len() != 1 {
            return Err(loc(
                15983,
                format!(
                    "an expression specification must contain exactly one field, the name of the \
                     expression. Found {} fields in {doc}",
                    doc.len()
                ),
            ));
        }
        return ops::parse_op(first, argument, scope);
    }
    let mut fields: Vec<(String, Node)> = Vec::with_capacity(doc.len());
    for (name, value) in doc {
        validate_field_name(name)?;
        if name.contains('.') {
            return Err(loc(16412, "FieldPath field names may not contain '.'."));
        }
        if fields.iter().any(|(existing, _)| existing == name) {
            return Err(loc(
                16406,
                format!("duplicate field name specified in object literal: {doc}"),
            ));
        }
        fields.push((name.clone(), parse_node(value, scope)?));
    }
    Ok(Node::Object(fields))
}

/// One component of a field path or of an output field name.
pub(crate) fn validate_field_name(name: &str) -> CmdResult<()> {
    if name.is_empty() {
        return Err(loc(
            15998,
            "FieldPath field names may not be empty strings.",
        ));
    }
    if name.starts_with('$') {
        return Err(loc(
            16410,
            format!("FieldPath field names may not start with '$'. Consider using $getField or $setField. ('{name}')"),
        ));
    }
    Ok(())
}

fn split_path(text: &str) -> CmdResult<Vec<String>> {
    let parts: Vec<String> = text.split('.').map(str::to_owned).collect();
    for part in &parts {
        validate_field_name(part)?;
    }
    Ok(parts)
}

fn parse_path(text: &str, scope: &[String]) -> CmdResult<Node> {
    let Some(variable) = text.strip_prefix("$$") else {
        let rest = &text[1..];
        if rest.is_empty() {
            return Err(loc(16872, "'$' by itself is not a valid FieldPath"));
        }
        return Ok(Node::Path(split_path(rest)?));
    };
    let (name, rest) = match variable.split_once('.') {
        Some((name, rest)) => (name, Some(rest)),
        None => (variable, None),
    };
    let path = match rest {
        Some(rest) => split_path(rest)?,
        None => Vec::new(),
    };
    if name.is_empty() {
        return Err(loc(16869, "empty variable names are not allowed"));
    }
    let var = match name {
        // $$CURRENT can only be rebound through $let in mongod, which the testbed refuses
        // (see `ops::validate_variable_name`), so it is always the root document here.
        "ROOT" | "CURRENT" => Var::Root,
        "REMOVE" => Var::Remove,
        "NOW" | "CLUSTER_TIME" | "USER_ROLES" | "SEARCH_META" | "IS_MR" | "DESCEND" | "PRUNE"
        | "KEEP" => {
            return Err(CommandError::not_implemented(format!(
                "the system variable $${name}"
            )));
        }
        _ if scope.iter().any(|bound| bound == name) => Var::User(name.to_owned()),
        _ => return Err(loc(17276, format!("Use of undefined variable: {name}"))),
    };
    Ok(Node::Var(var, path))
}

pub(crate) fn eval_node(node: &Node, ctx: &mut Ctx<'_>) -> CmdResult<Option<Bson>> {
    match node {
        Node::Const(value) => Ok(Some(value.clone())),
        Node::Path(path) => Ok(traverse_document(ctx.root, path)),
        Node::Var(Var::Root, path) => {
            if path.is_empty() {
                Ok(Some(Bson::Document(ctx.root.clone())))
            } else {
                Ok(traverse_document(ctx.root, path))
            }
        }
        Node::Var(Var::Remove, _) => Ok(None),
        Node::Var(Var::User(name), path) => {
            let bound = ctx.vars.iter().rev().find(|(bound, _)| bound == name);
            Ok(bound
                .and_then(|(_, value)| value.as_ref())
                .and_then(|value| traverse(value, path)))
        }
        Node::Object(fields) => {
            let mut out = Document::new();
            for (name, child) in fields {
                if let Some(value) = eval_node(child, ctx)? {
                    out.insert(name.clone(), value);
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(eval_node(item, ctx)?.unwrap_or(Bson::Null));
            }
            Ok(Some(Bson::Array(out)))
        }
        Node::Op(op) => ops::eval_op(op, ctx),
    }
}

/// `ExpressionFieldPath::evaluatePath` from a document.
fn traverse_document(doc: &Document, path: &[String]) -> Option<Bson> {
    let (head, tail) = path.split_first()?;
    doc.get(head).and_then(|child| traverse(child, tail))
}

/// Arrays met before the end of the path map over their elements: documents are followed,
/// nested arrays stay nested, scalars (and elements missing the field) are dropped.
fn traverse(value: &Bson, path: &[String]) -> Option<Bson> {
    if path.is_empty() {
        return Some(value.clone());
    }
    match value {
        Bson::Document(doc) => traverse_document(doc, path),
        Bson::Array(items) => Some(Bson::Array(traverse_array(items, path))),
        _ => None,
    }
}

fn traverse_array(items: &[Bson], path: &[String]) -> Vec<Bson> {
    items
        .iter()
        .filter_map(|item| match item {
            Bson::Document(doc) => traverse_document(doc, path),
            Bson::Array(inner) => Some(Bson::Array(traverse_array(inner, path))),
            _ => None,
        })
        .collect()
}

/// Aggregation comparison (`Value::compare`): canonical order, missing ranked with
/// undefined (both below null).
pub(crate) fn compare_values(a: Option<&Bson>, b: Option<&Bson>) -> Ordering {
    const MISSING_RANK: i32 = 0;
    match (a, b) {
        (Some(x), Some(y)) => compare(x, y),
        (None, None) => Ordering::Equal,
        (None, Some(y)) => MISSING_RANK.cmp(&canonical_rank(y)),
        (Some(x), None) => canonical_rank(x).cmp(&MISSING_RANK),
    }
}

/// `Value::nullish`: missing, null or undefined.
pub(crate) fn is_nullish(value: Option<&Bson>) -> bool {
    matches!(value, None | Some(Bson::Null) | Some(Bson::Undefined))
}

/// Location-coded errors carry the codeName `Location<code>` in mongod; the names are
/// spelled out here because `CommandError` holds a `&'static str`.
macro_rules! location_names {
    ($($code:literal),* $(,)?) => {
        fn location_name(code: i32) -> &'static str {
            match code {
                $($code => concat!("Location", stringify!($code)),)*
                _ => crate::error::name_for_code(code),
            }
        }
    };
}

location_names!(
    10065, 15952, 15955, 15956, 15957, 15958, 15959, 15972, 15976, 15983, 15998, 16020, 16021,
    16406, 16410, 16411, 16412, 16554, 16555, 16556, 16608, 16609, 16610, 16611, 16612, 16702,
    16867, 16868, 16869, 16870, 16872, 16874, 16875, 16876, 17080, 17081, 17082, 17083, 17124,
    17276, 28664, 28680, 28689, 28690, 28691, 28745, 28746, 28747, 28748, 28749, 28765, 28808,
    28809, 28810, 28811, 28812, 28818, 28822, 31002, 31119, 31120, 31249, 31250, 31252, 31253,
    31254, 31393, 40060, 40061, 40062, 40063, 40064, 40065, 40066, 40067, 40068, 40081, 40156,
    40157, 40158, 40160, 40228, 40231, 40234, 40235, 40236, 40237, 40238, 40272, 40323, 40324,
    40386, 40390, 40392, 40393, 40394, 40395, 40396, 40397, 40398, 40400, 40602, 51270, 51272,
    3041701, 3041702, 3041703, 3041704, 3041705, 4161101, 4161102, 4161103, 4161104, 4161105,
    4161106, 1257300, 4940400, 16871, 16877, 4161100, 4161109, 15947, 40273, 15981, 15969, 15973,
    4940401, 5654601, 5654602,
);

/// An error with mongod's numeric code (and matching codeName).
pub(crate) fn loc(code: i32, message: impl Into<String>) -> CommandError {
    let name = match code {
        15 => "Overflow",
        168 => "InvalidPipelineOperator",
        241 => "ConversionFailure",
        other => location_name(other),
    };
    let mut error = CommandError::from_code(code, message);
    error.code_name = name;
    error
}
