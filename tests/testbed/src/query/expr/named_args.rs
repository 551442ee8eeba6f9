//! Parsing of the operators that take named or lazily evaluated arguments: `$cond`,
//! `$switch`, `$let`, `$getField`, `$setField`, with mongod's error codes.

use bson::Bson;

use super::ops::{parse_args, OpExpr};
use super::{loc, parse_node, type_name, Node, Var};
use crate::error::{CmdResult, CommandError};

pub(super) fn parse_cond(argument: &Bson, scope: &mut Vec<String>) -> CmdResult<OpExpr> {
    let Bson::Document(spec) = argument else {
        let mut args = parse_args("$cond", argument, Some(3), scope)?.into_iter();
        return match (args.next(), args.next(), args.next()) {
            (Some(test), Some(then), Some(otherwise)) => Ok(OpExpr::Cond(test, then, otherwise)),
            _ => Err(CommandError::from_code(1, "$cond arity checked above")),
        };
    };
    let (mut test, mut then, mut otherwise) = (None, None, None);
    for (key, value) in spec {
        let node = parse_node(value, scope)?;
        match key.as_str() {
            "if" => test = Some(node),
            "then" => then = Some(node),
            "else" => otherwise = Some(node),
            other => {
                return Err(loc(
                    17083,
                    format!("Unrecognized parameter to $cond: {other}"),
                ))
            }
        }
    }
    let test = test.ok_or_else(|| loc(17080, "Missing 'if' parameter to $cond"))?;
    let then = then.ok_or_else(|| loc(17081, "Missing 'then' parameter to $cond"))?;
    let otherwise = otherwise.ok_or_else(|| loc(17082, "Missing 'else' parameter to $cond"))?;
    Ok(OpExpr::Cond(test, then, otherwise))
}

pub(super) fn parse_switch(argument: &Bson, scope: &mut Vec<String>) -> CmdResult<OpExpr> {
    let Bson::Document(spec) = argument else {
        return Err(loc(
            40060,
            format!(
                "$switch requires an object as an argument, found: {}",
                type_name(Some(argument))
            ),
        ));
    };
    let mut branches = Vec::new();
    let mut default = None;
    for (key, value) in spec {
        match key.as_str() {
            "branches" => {
                let Bson::Array(items) = value else {
                    return Err(loc(
                        40061,
                        format!(
                            "$switch expected an array for 'branches', found: {}",
                            type_name(Some(value))
                        ),
                    ));
                };
                for item in items {
                    branches.push(parse_branch(item, scope)?);
                }
            }
            "default" => default = Some(parse_node(value, scope)?),
            other => {
                return Err(loc(
                    40067,
                    format!("$switch found an unknown argument: {other}"),
                ))
            }
        }
    }
    if branches.is_empty() {
        return Err(loc(40068, "$switch requires at least one branch."));
    }
    Ok(OpExpr::Switch(branches, default))
}

fn parse_branch(item: &Bson, scope: &mut Vec<String>) -> CmdResult<(Node, Node)> {
    let Bson::Document(branch) = item else {
        return Err(loc(
            40062,
            format!(
                "$switch expected each branch to be an object, found: {}",
                type_name(Some(item))
            ),
        ));
    };
    let (mut case, mut then) = (None, None);
    for (key, value) in branch {
        match key.as_str() {
            "case" => case = Some(parse_node(value, scope)?),
            "then" => then = Some(parse_node(value, scope)?),
            other => {
                return Err(loc(
                    40063,
                    format!("$switch found an unknown argument to a branch: {other}"),
                ))
            }
        }
    }
    let case = case.ok_or_else(|| {
        loc(
            40064,
            "$switch requires each branch have a 'case' expression",
        )
    })?;
    let then = then.ok_or_else(|| {
        loc(
            40065,
            "$switch requires each branch have a 'then' expression.",
        )
    })?;
    Ok((case, then))
}

pub(super) fn parse_let(argument: &Bson, scope: &mut Vec<String>) -> CmdResult<OpExpr> {
    let Bson::Document(spec) = argument else {
        return Err(loc(16874, "$let only supports an object as its argument"));
    };
    let (mut vars, mut body) = (None, None);
    for (key, value) in spec {
        match key.as_str() {
            "vars" => vars = Some(value),
            "in" => body = Some(value),
            other => {
                return Err(loc(
                    16875,
                    format!("Unrecognized parameter to $let: {other}"),
                ))
            }
        }
    }
    let vars = vars.ok_or_else(|| loc(16876, "Missing 'vars' parameter to $let"))?;
    let body = body.ok_or_else(|| loc(16877, "Missing 'in' parameter to $let"))?;
    let Bson::Document(vars) = vars else {
        return Err(loc(
            10065,
            format!(
                "invalid parameter: expected an object (vars), found {}",
                type_name(Some(vars))
            ),
        ));
    };
    // Variable values are parsed (and later evaluated) in the enclosing scope.
    let mut bindings = Vec::with_capacity(vars.len());
    for (name, value) in vars {
        validate_variable_name(name)?;
        bindings.push((name.clone(), parse_node(value, scope)?));
    }
    let depth = scope.len();
    scope.extend(bindings.iter().map(|(name, _)| name.clone()));
    let body = parse_node(body, scope);
    scope.truncate(depth);
    Ok(OpExpr::Let(bindings, body?))
}

/// `Variables::validateNameForUserWrite`: a lowercase ASCII letter or a non-ASCII character
/// first, then letters, digits, `_` or non-ASCII.
fn validate_variable_name(name: &str) -> CmdResult<()> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(loc(16869, "empty variable names are not allowed"));
    };
    if name == "CURRENT" {
        return Err(CommandError::not_implemented("rebinding $$CURRENT in $let"));
    }
    if !first.is_ascii_lowercase() && first.is_ascii() {
        return Err(loc(
            16870,
            format!("'{name}' starts with an invalid character for a user variable name"),
        ));
    }
    if chars.any(|c| !(c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii())) {
        return Err(loc(
            16871,
            format!("'{name}' contains an invalid character for a variable name"),
        ));
    }
    Ok(())
}

fn constant_field_name(op: &str, value: &Bson) -> CmdResult<String> {
    match value {
        Bson::String(name) if !name.starts_with('$') => Ok(name.clone()),
        Bson::Document(doc) if doc.len() == 1 && doc.contains_key("$literal") => {
            match doc.get("$literal") {
                Some(Bson::String(name)) => Ok(name.clone()),
                Some(other) => Err(loc(
                    5654601,
                    format!(
                        "{op} requires 'field' to evaluate to type String, but got {}",
                        type_name(Some(other))
                    ),
                )),
                None => Err(loc(
                    5654601,
                    format!("{op} requires 'field' to evaluate to type String"),
                )),
            }
        }
        Bson::String(_) | Bson::Document(_) | Bson::Array(_) => Err(loc(
            5654602,
            format!(
                "{op} requires 'field' to evaluate to a constant, but got a non-constant argument"
            ),
        )),
        other => Err(loc(
            5654601,
            format!(
                "{op} requires 'field' to evaluate to type String, but got {}",
                type_name(Some(other))
            ),
        )),
    }
}

pub(super) fn parse_get_field(argument: &Bson, scope: &mut Vec<String>) -> CmdResult<OpExpr> {
    let spec = match argument {
        Bson::Document(doc)
            if doc.keys().all(|key| key == "field" || key == "input") && !doc.is_empty() =>
        {
            doc
        }
        Bson::Document(doc) if doc.keys().next().is_some_and(|key| !key.starts_with('$')) => {
            let unknown = doc
                .keys()
                .find(|key| *key != "field" && *key != "input")
                .cloned()
                .unwrap_or_default();
            return Err(loc(
                3041701,
                format!("$getField found an unknown argument: {unknown}"),
            ));
        }
        // Shorthand `{$getField: <field name>}` reads from $$CURRENT.
        other => {
            let field = constant_field_name("$getField", other)?;
            return Ok(OpExpr::GetField(field, Node::Var(Var::Root, Vec::new())));
        }
    };
    let field = spec
        .get("field")
        .ok_or_else(|| loc(3041702, "$getField requires 'field' to be specified"))?;
    let field = constant_field_name("$getField", field)?;
    let input = match spec.get("input") {
        Some(input) => parse_node(input, scope)?,
        None => Node::Var(Var::Root, Vec::new()),
    };
    Ok(OpExpr::GetField(field, input))
}

pub(super) fn parse_set_field(argument: &Bson, scope: &mut Vec<String>) -> CmdResult<OpExpr> {
    let Bson::Document(spec) = argument else {
        return Err(loc(
            4161100,
            format!(
                "$setField only supports an object as its argument, found: {}",
                type_name(Some(argument))
            ),
        ));
    };
    let (mut field, mut input, mut value) = (None, None, None);
    for (key, item) in spec {
        match key.as_str() {
            "field" => field = Some(constant_field_name("$setField", item)?),
            "input" => input = Some(parse_node(item, scope)?),
            "value" => value = Some(parse_node(item, scope)?),
            other => {
                return Err(loc(
                    4161101,
                    format!("$setField found an unknown argument: {other}"),
                ))
            }
        }
    }
    let field = field.ok_or_else(|| loc(4161102, "$setField requires 'field' to be specified"))?;
    let value = value.ok_or_else(|| loc(4161103, "$setField requires 'value' to be specified"))?;
    let input = input.ok_or_else(|| loc(4161109, "$setField requires 'input' to be specified"))?;
    Ok(OpExpr::SetField(field, input, value))
}
