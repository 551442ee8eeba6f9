//! The update tree (`UpdateObjectNode` / `UpdateArrayNode` / leaves) and how mongod builds it:
//! one node per path component, children kept in `cmpPathsAndArrayIndexes` order, so that
//! applying the tree walks fields in the 5.0+ order; conflicting paths are caught here.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::ops::Op;
use super::path::cmp_fields;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::query::matcher::Matcher;

#[derive(Clone)]
pub(crate) enum Node {
    Object(ObjectNode),
    /// Children keyed by array-filter identifier; "" is `$[]`.
    Array(Vec<(String, Node)>),
    Leaf(Leaf),
}

#[derive(Clone, Default)]
pub(crate) struct ObjectNode {
    pub children: Vec<(String, Node)>,
    pub positional: Option<Box<Node>>,
}

#[derive(Clone)]
pub(crate) struct Leaf {
    pub op: Op,
    /// The path as written, for messages.
    pub path: String,
}

/// Parsed arrayFilters: identifier → (filter over `{identifier: element}`).
pub(crate) type ArrayFilters = BTreeMap<String, Rc<Matcher>>;

fn is_filter_ident(part: &str) -> bool {
    part.starts_with("$[") && part.ends_with(']')
}

fn conflict(path: &str, at: &str) -> CommandError {
    CommandError::new(
        ErrorCode::ConflictingUpdateOperators,
        format!("Updating the path '{path}' would create a conflict at '{at}'"),
    )
}

/// Checks a path is updatable (`fieldchecker::isUpdatable` and the positional rules).
pub(crate) fn check_path(path: &str, parts: &[&str]) -> CmdResult<()> {
    if path.is_empty() {
        return Err(CommandError::new(
            ErrorCode::EmptyFieldName,
            "An empty update path is not valid.",
        ));
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err(CommandError::new(
            ErrorCode::EmptyFieldName,
            format!("The update path '{path}' contains an empty field name, which is not allowed."),
        ));
    }
    let positional: Vec<usize> = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| **p == "$")
        .map(|(i, _)| i)
        .collect();
    if positional.len() > 1 {
        return Err(CommandError::bad_value(format!(
            "Too many positional (i.e. '$') elements found in path '{path}'"
        )));
    }
    if positional.first() == Some(&0) {
        return Err(CommandError::bad_value(format!(
            "Cannot have positional (i.e. '$') element in the first position in path '{path}'"
        )));
    }
    if parts.first().is_some_and(|p| is_filter_ident(p)) {
        return Err(CommandError::bad_value(format!(
            "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '{path}'"
        )));
    }
    Ok(())
}

/// `UpdateObjectNode::parseAndMerge`: adds the leaf for `path` to the tree.
pub(crate) fn merge_path(
    root: &mut ObjectNode,
    path: &str,
    leaf: Leaf,
    filters: &ArrayFilters,
    used: &mut Vec<String>,
) -> CmdResult<bool> {
    let parts: Vec<&str> = path.split('.').collect();
    check_path(path, &parts)?;
    let mut names = Vec::with_capacity(parts.len());
    for part in &parts {
        if is_filter_ident(part) {
            let ident = &part[2..part.len() - 1];
            if !ident.is_empty() && !filters.contains_key(ident) {
                return Err(CommandError::bad_value(format!(
                    "No array filter found for identifier '{ident}' in path '{path}'"
                )));
            }
            if !ident.is_empty() && !used.iter().any(|u| u == ident) {
                used.push(ident.to_string());
            }
            names.push(ident.to_string());
        } else {
            names.push((*part).to_string());
        }
    }
    let positional = parts.contains(&"$");
    let mut tree = Node::Object(std::mem::take(root));
    let result = walk(&mut tree, &parts, &names, path, leaf);
    if let Node::Object(o) = tree {
        *root = o;
    }
    result.map(|_| positional)
}

#[derive(PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    Leaf,
}

fn child_kind(node: &Node, part: &str, name: &str) -> Option<Kind> {
    let kind = |n: &Node| match n {
        Node::Object(_) => Kind::Object,
        Node::Array(_) => Kind::Array,
        Node::Leaf(_) => Kind::Leaf,
    };
    match node {
        Node::Object(o) if part == "$" => o.positional.as_deref().map(kind),
        Node::Object(o) => o
            .children
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, n)| kind(n)),
        Node::Array(children) => children
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, n)| kind(n)),
        Node::Leaf(_) => None,
    }
}

fn walk(
    root: &mut Node,
    parts: &[&str],
    names: &[String],
    path: &str,
    leaf: Leaf,
) -> CmdResult<()> {
    let mut cur = root;
    let last = parts.len() - 1;
    for i in 0..last {
        let want = if is_filter_ident(parts[i + 1]) {
            Kind::Array
        } else {
            Kind::Object
        };
        match child_kind(cur, parts[i], &names[i]) {
            Some(kind) if kind != want => return Err(conflict(path, &parts[..=i].join("."))),
            Some(_) => {}
            None => {
                let fresh = if want == Kind::Array {
                    Node::Array(Vec::new())
                } else {
                    Node::Object(ObjectNode::default())
                };
                insert_child(cur, parts[i], &names[i], fresh);
            }
        }
        cur = match child_slot(cur, parts[i], &names[i]) {
            Some(next) => next,
            None => {
                return Err(CommandError::new(
                    ErrorCode::InternalError,
                    "update tree walk failed",
                ))
            }
        };
    }
    if child_kind(cur, parts[last], &names[last]).is_some() {
        return Err(conflict(path, path));
    }
    insert_child(cur, parts[last], &names[last], Node::Leaf(leaf));
    Ok(())
}

fn child_slot<'a>(node: &'a mut Node, part: &str, name: &str) -> Option<&'a mut Node> {
    match node {
        Node::Object(o) => {
            if part == "$" {
                o.positional.as_deref_mut()
            } else {
                o.children
                    .iter_mut()
                    .find(|(k, _)| k == name)
                    .map(|(_, n)| n)
            }
        }
        Node::Array(children) => children.iter_mut().find(|(k, _)| k == name).map(|(_, n)| n),
        Node::Leaf(_) => None,
    }
}

fn insert_child(node: &mut Node, part: &str, name: &str, child: Node) {
    match node {
        Node::Object(o) if part == "$" => o.positional = Some(Box::new(child)),
        Node::Object(o) => insert_sorted(&mut o.children, name, child),
        Node::Array(children) => insert_sorted(children, name, child),
        Node::Leaf(_) => {}
    }
}

fn insert_sorted(children: &mut Vec<(String, Node)>, name: &str, child: Node) {
    let at = children.partition_point(|(k, _)| cmp_fields(k, name) == std::cmp::Ordering::Less);
    children.insert(at, (name.to_string(), child));
}

/// `UpdateNode::createUpdateNodeByMerging`: combines two nodes that land on the same element
/// (the `$` child and a literal index, or several array filters matching one element).
pub(crate) fn merge_nodes(a: &Node, b: &Node, path: &str) -> CmdResult<Node> {
    let conflict = || {
        CommandError::new(
            ErrorCode::ConflictingUpdateOperators,
            format!("Update created a conflict at '{path}'"),
        )
    };
    match (a, b) {
        (Node::Object(x), Node::Object(y)) => {
            let mut out = x.clone();
            for (k, n) in &y.children {
                match out.children.iter().position(|(ok, _)| ok == k) {
                    Some(i) => {
                        let merged = merge_nodes(&out.children[i].1, n, &format!("{path}.{k}"))?;
                        out.children[i].1 = merged;
                    }
                    None => insert_sorted(&mut out.children, k, n.clone()),
                }
            }
            out.positional = match (&x.positional, &y.positional) {
                (Some(p), Some(q)) => Some(Box::new(merge_nodes(p, q, &format!("{path}.$"))?)),
                (p, q) => p.clone().or_else(|| q.clone()),
            };
            Ok(Node::Object(out))
        }
        (Node::Array(x), Node::Array(y)) => {
            let mut out = x.clone();
            for (k, n) in y {
                match out.iter().position(|(ok, _)| ok == k) {
                    Some(i) => {
                        let merged = merge_nodes(&out[i].1, n, &format!("{path}.$[{k}]"))?;
                        out[i].1 = merged;
                    }
                    None => insert_sorted(&mut out, k, n.clone()),
                }
            }
            Ok(Node::Array(out))
        }
        _ => Err(conflict()),
    }
}
