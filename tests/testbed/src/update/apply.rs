//! Applying an update tree to a document (`UpdateObjectNode::apply` and friends), recording
//! the `$v: 2` log as mongod's `V2LogBuilder` would see it.
//!
//! The element being worked on is always addressed by its path from the root (`taken`), and
//! the components still missing below it by `to_create`, exactly the two `FieldRef`s mongod
//! threads through its nodes; a leaf that creates `to_create` moves it into `taken` so later
//! siblings find the new sub-document.

use std::borrow::Cow;

use bson::Bson;

use super::diff::{binary_eq, LogEntry};
use super::ops::{self, Modify, Op};
use super::path::{self, dotted, last_name, resolve, resolve_mut, Part};
use super::tree::{merge_nodes, ArrayFilters, Leaf, Node, ObjectNode};
use super::{fmt, UpdateContext};
use crate::error::{CmdResult, CommandError, ErrorCode};

pub(crate) struct Engine<'a> {
    pub ctx: &'a UpdateContext,
    /// True while producing an upsert's document (`$setOnInsert` applies).
    pub insert: bool,
    pub filters: &'a ArrayFilters,
    pub log: Vec<LogEntry>,
    /// The document's `_id` element rendered for messages ("_id: 1").
    pub id_str: String,
}

fn internal() -> CommandError {
    CommandError::new(
        ErrorCode::InternalError,
        "update engine lost its place in the document",
    )
}

impl Engine<'_> {
    pub(crate) fn apply_root(&mut self, node: &ObjectNode, root: &mut Bson) -> CmdResult<()> {
        let (mut taken, mut to_create) = (Vec::new(), Vec::new());
        self.object(node, root, &mut taken, &mut to_create, true)
    }

    fn node(
        &mut self,
        node: &Node,
        root: &mut Bson,
        taken: &mut Vec<Part>,
        to_create: &mut Vec<String>,
        log: bool,
    ) -> CmdResult<()> {
        match node {
            Node::Object(o) => self.object(o, root, taken, to_create, log),
            Node::Array(children) => self.array(children, root, taken, to_create, log),
            Node::Leaf(leaf) => self.leaf(leaf, root, taken, to_create, log),
        }
    }

    fn object(
        &mut self,
        node: &ObjectNode,
        root: &mut Bson,
        taken: &mut Vec<Part>,
        to_create: &mut Vec<String>,
        log: bool,
    ) -> CmdResult<()> {
        let mut pending = match &node.positional {
            Some(p) => match self.ctx.matched_position {
                Some(pos) => Some((pos.to_string(), p.as_ref())),
                None => {
                    return Err(CommandError::bad_value(
                        "The positional operator did not find the match needed from the query.",
                    ))
                }
            },
            None => None,
        };
        // mongod slots the `$` child in by plain string order among the sorted children, and
        // merges it with a literal child of the same name.
        let mut items: Vec<(String, Cow<'_, Node>)> = Vec::new();
        for (name, child) in &node.children {
            if let Some((matched, positional)) = &pending {
                if matched == name {
                    let mut full: Vec<String> = taken.iter().map(|p| p.name.clone()).collect();
                    full.extend(to_create.iter().cloned());
                    full.push(matched.clone());
                    items.push((
                        name.clone(),
                        Cow::Owned(merge_nodes(positional, child, &full.join("."))?),
                    ));
                    pending = None;
                    continue;
                }
                if matched.as_str() < name.as_str() {
                    items.push((matched.clone(), Cow::Borrowed(*positional)));
                    pending = None;
                }
            }
            items.push((name.clone(), Cow::Borrowed(child)));
        }
        if let Some((matched, positional)) = pending {
            items.push((matched, Cow::Borrowed(positional)));
        }
        for (name, child) in &items {
            self.child(child, name, root, taken, to_create, log)?;
        }
        Ok(())
    }

    /// `applyChild`: descend into `field` if it exists, else extend `to_create`.
    fn child(
        &mut self,
        child: &Node,
        field: &str,
        root: &mut Bson,
        taken: &mut Vec<Part>,
        to_create: &mut Vec<String>,
        log: bool,
    ) -> CmdResult<()> {
        let before = taken.len();
        let mut descended = false;
        if to_create.is_empty() {
            if let Some(parent) = resolve(root, taken) {
                if path::child(parent, field).is_some() {
                    taken.push(Part {
                        name: field.to_string(),
                        index: matches!(parent, Bson::Array(_)),
                    });
                    descended = true;
                }
            }
        }
        if !descended {
            to_create.push(field.to_string());
        }
        self.node(child, root, taken, to_create, log)?;
        if !to_create.is_empty() {
            to_create.pop();
        } else {
            taken.pop();
        }
        if taken.len() <= before && !to_create.is_empty() {
            // A leaf may have created the pending path: continue below it.
            let exists = resolve(root, taken)
                .and_then(|p| path::child(p, &to_create[0]))
                .is_some();
            if exists {
                for name in std::mem::take(to_create) {
                    let index = matches!(resolve(root, taken), Some(Bson::Array(_)));
                    taken.push(Part { name, index });
                }
            }
        }
        Ok(())
    }

    fn array(
        &mut self,
        children: &[(String, Node)],
        root: &mut Bson,
        taken: &mut Vec<Part>,
        to_create: &mut [String],
        log: bool,
    ) -> CmdResult<()> {
        if !to_create.is_empty() {
            let mut full: Vec<String> = taken.iter().map(|p| p.name.clone()).collect();
            full.extend(to_create.iter().cloned());
            return Err(CommandError::bad_value(format!(
                "The path '{}' must exist in the document in order to apply array updates.",
                full.join(".")
            )));
        }
        let elem = resolve(root, taken).ok_or_else(internal)?;
        let Bson::Array(arr) = elem else {
            return Err(CommandError::bad_value(format!(
                "Cannot apply array updates to non-array element {}",
                fmt::element(last_name(taken), elem)
            )));
        };
        let mut matching: Vec<(usize, Vec<&Node>)> = Vec::new();
        for (i, e) in arr.iter().enumerate() {
            let nodes: Vec<&Node> = children
                .iter()
                .filter(|(ident, _)| ident.is_empty() || self.filter_matches(ident, e))
                .map(|(_, n)| n)
                .collect();
            if !nodes.is_empty() {
                matching.push((i, nodes));
            }
        }
        // With several matching elements the children do not log; the array node logs instead.
        let children_log = log && matching.len() <= 1;
        let mut modified = Vec::new();
        for (i, nodes) in matching {
            let here = format!("{}.{i}", dotted(taken));
            let mut merged = nodes[0].clone();
            for n in &nodes[1..] {
                merged = merge_nodes(&merged, n, &here)?;
            }
            taken.push(Part {
                name: i.to_string(),
                index: true,
            });
            let snapshot = resolve(root, taken).cloned();
            let mut no_create = Vec::new();
            self.node(&merged, root, taken, &mut no_create, children_log)?;
            let changed = match (&snapshot, resolve(root, taken)) {
                (Some(a), Some(b)) => !binary_eq(a, b),
                _ => true,
            };
            if changed {
                modified.push(taken.clone());
            }
            taken.pop();
        }
        if log && !children_log {
            match modified.len() {
                0 => {}
                1 => self.log.extend(modified.pop().map(LogEntry::Updated)),
                _ => self.log.push(LogEntry::Updated(taken.clone())),
            }
        }
        Ok(())
    }

    fn filter_matches(&self, ident: &str, elem: &Bson) -> bool {
        let Some(matcher) = self.filters.get(ident) else {
            return false;
        };
        let mut d = bson::Document::new();
        d.insert(ident, elem.clone());
        matcher.matches(&d)
    }

    fn leaf(
        &mut self,
        leaf: &Leaf,
        root: &mut Bson,
        taken: &mut [Part],
        to_create: &mut [String],
        log: bool,
    ) -> CmdResult<()> {
        match &leaf.op {
            Op::SetOnInsert(_) if !self.insert => Ok(()),
            Op::Placeholder => Ok(()),
            Op::Rename { from } => self.rename(from, &leaf.path, root, taken, to_create, log),
            Op::Unset => self.unset(root, taken, to_create, log),
            op => self.modify(op, root, taken, to_create, log),
        }
    }

    fn modify(
        &mut self,
        op: &Op,
        root: &mut Bson,
        taken: &[Part],
        to_create: &[String],
        log: bool,
    ) -> CmdResult<()> {
        if to_create.is_empty() {
            let field = last_name(taken).to_string();
            let elem = resolve_mut(root, taken).ok_or_else(internal)?;
            let result = ops::update_existing(op, elem, &field, &self.id_str, self.ctx)?;
            if result == Modify::NoOp {
                return Ok(());
            }
            self.check_immutable(taken)?;
            if log {
                match result {
                    Modify::Appended(from) => {
                        let len = match resolve(root, taken) {
                            Some(Bson::Array(a)) => a.len(),
                            _ => from,
                        };
                        for i in from..len {
                            let mut p = taken.to_vec();
                            p.push(Part {
                                name: i.to_string(),
                                index: true,
                            });
                            self.log.push(LogEntry::Created(p, taken.len()));
                        }
                    }
                    _ => self.log.push(LogEntry::Updated(taken.to_vec())),
                }
            }
            return Ok(());
        }
        let Some(value) = ops::new_value(op, self.ctx) else {
            return Ok(());
        };
        let parent_name = last_name(taken).to_string();
        let parent = resolve_mut(root, taken).ok_or_else(internal)?;
        let parent_is_array = matches!(parent, Bson::Array(_));
        path::create_path(parent, &parent_name, to_create, value)?;
        if taken.first().is_some_and(|p| p.name == "_id") {
            let elem = resolve(root, taken)
                .map(|e| fmt::element(&parent_name, e))
                .unwrap_or_default();
            return Err(CommandError::new(
                ErrorCode::ImmutableField,
                format!(
                    "Updating the path '{}' to {elem} would modify the immutable field '_id'",
                    dotted(taken)
                ),
            ));
        }
        if log {
            let mut full = taken.to_vec();
            for (i, name) in to_create.iter().enumerate() {
                full.push(Part {
                    name: name.clone(),
                    index: i == 0 && parent_is_array,
                });
            }
            self.log.push(LogEntry::Created(full, taken.len()));
        }
        Ok(())
    }

    /// `checkImmutablePathsNotModified` for `_id`, the only immutable path outside sharding.
    fn check_immutable(&self, taken: &[Part]) -> CmdResult<()> {
        if taken.first().is_some_and(|p| p.name == "_id") {
            return Err(CommandError::new(
                ErrorCode::ImmutableField,
                format!(
                    "Performing an update on the path '{}' would modify the immutable field '_id'",
                    dotted(taken)
                ),
            ));
        }
        Ok(())
    }

    /// `$unset`: removes a field, nulls an array element, ignores a missing path.
    fn unset(
        &mut self,
        root: &mut Bson,
        taken: &[Part],
        to_create: &[String],
        log: bool,
    ) -> CmdResult<()> {
        let Some((last, parent_path)) = taken.split_last() else {
            return Ok(());
        };
        if !to_create.is_empty() {
            return Ok(());
        }
        self.check_immutable(taken)?;
        let parent = resolve_mut(root, parent_path).ok_or_else(internal)?;
        match parent {
            Bson::Array(a) => {
                let idx = path::parse_index(&last.name).ok_or_else(internal)?;
                if let Some(slot) = a.get_mut(idx) {
                    *slot = Bson::Null;
                }
                if log {
                    self.log.push(LogEntry::Updated(taken.to_vec()));
                }
            }
            Bson::Document(d) => {
                d.remove(&last.name);
                if log {
                    self.log.push(LogEntry::Deleted(taken.to_vec()));
                }
            }
            _ => return Err(internal()),
        }
        Ok(())
    }

    /// `RenameNode::apply`: `$set` the source's value at the destination, then `$unset` the
    /// source. Neither path may go through an array.
    fn rename(
        &mut self,
        from: &str,
        to: &str,
        root: &mut Bson,
        taken: &[Part],
        to_create: &[String],
        log: bool,
    ) -> CmdResult<()> {
        let mut cur: &Bson = root;
        let mut source = Vec::new();
        for part in from.split('.') {
            match cur {
                Bson::Document(d) => match d.get(part) {
                    Some(v) => {
                        source.push(Part {
                            name: part.to_string(),
                            index: false,
                        });
                        cur = v;
                    }
                    None => return Ok(()),
                },
                Bson::Array(_) => {
                    let name = last_name(&source).to_string();
                    return Err(CommandError::bad_value(format!(
                        "The source field cannot be an array element, '{from}' in doc with {} has an array field called '{name}'",
                        fmt::element(&name, cur)
                    )));
                }
                _ => return Ok(()),
            }
        }
        let value = cur.clone();
        let dest_parents = if to_create.is_empty() {
            taken.len().saturating_sub(1)
        } else {
            taken.len()
        };
        for n in 1..=dest_parents {
            if let Some(e @ Bson::Array(_)) = resolve(root, &taken[..n]) {
                let name = taken[n - 1].name.clone();
                return Err(CommandError::bad_value(format!(
                    "The destination field cannot be an array element, '{to}' in doc with {} has an array field called '{name}'",
                    fmt::element(&name, e)
                )));
            }
        }
        self.modify(&Op::Set(value), root, taken, to_create, log)?;
        self.check_immutable(&source)?;
        self.unset(root, &source, &[], log)
    }
}
