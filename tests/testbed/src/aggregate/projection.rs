//! `$project`, `$addFields`/`$set` and `$unset` as one projection tree, applied the way
//! mongod's `ProjectionNode` does (`projection_node.cpp`), with the aggregation policy of
//! recursing into nested arrays:
//! - inclusion builds a new document from the input's fields in input order, then sets
//!   computed fields in spec order (replacing in place or appending);
//! - exclusion copies the input and removes fields;
//! - `$addFields` copies the input and sets computed fields.
//!
//! Through arrays, sub-projections apply to each element: inclusion drops scalars, exclusion
//! keeps them, and a computed sub-field replaces a scalar by a document holding it.

use bson::{Bson, Document};

use crate::error::CmdResult;
use crate::query::expr::{loc, validate_field_name, Expr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Inclusion,
    Exclusion,
    AddFields,
}

#[derive(Debug, Clone)]
enum Field {
    Include,
    Exclude,
    Computed(Expr),
    Child(Node),
}

#[derive(Debug, Clone, Default)]
struct Node {
    fields: Vec<(String, Field)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Projection {
    mode: Mode,
    root: Node,
}

enum Leaf {
    Include,
    Exclude,
    Computed(Expr),
}

fn project_error(message: impl Into<String>, code: i32) -> crate::error::CommandError {
    loc(
        code,
        format!("Invalid $project :: caused by :: {}", message.into()),
    )
}

impl Projection {
    /// `$project`: inclusion, exclusion or computed fields; `_id` is kept unless excluded.
    pub(crate) fn parse_project(spec: &Document) -> CmdResult<Projection> {
        if spec.is_empty() {
            return Err(project_error(
                "projection specification must have at least one field",
                51272,
            ));
        }
        let mut leaves = Vec::new();
        collect_project(spec, "", &mut leaves)?;
        let mode = projection_mode(&leaves)?;
        let mut root = Node::default();
        if mode == Mode::Inclusion
            && !leaves
                .iter()
                .any(|(path, _)| path == "_id" || path.starts_with("_id."))
        {
            root.fields.push(("_id".to_owned(), Field::Include));
        }
        for (path, leaf) in leaves {
            let field = match leaf {
                // `{_id: 1}` in an exclusion projection just keeps `_id`, which exclusion does anyway.
                Leaf::Include if mode == Mode::Exclusion => continue,
                Leaf::Include => Field::Include,
                Leaf::Exclude => Field::Exclude,
                Leaf::Computed(_) if mode == Mode::Exclusion => {
                    return Err(project_error(
                        "Cannot use expression other than $meta in exclusion projection",
                        31252,
                    ));
                }
                Leaf::Computed(expr) => Field::Computed(expr),
            };
            insert(&mut root, &path, field)?;
        }
        Ok(Projection { mode, root })
    }

    /// `$addFields`/`$set`: every value is an expression; nested plain objects are paths.
    pub(crate) fn parse_add_fields(spec: &Document) -> CmdResult<Projection> {
        let mut root = Node::default();
        add_fields_into(&mut root, spec, "")?;
        Ok(Projection {
            mode: Mode::AddFields,
            root,
        })
    }

    /// `$unset`: an exclusion of the listed paths.
    pub(crate) fn parse_unset(paths: &[String]) -> CmdResult<Projection> {
        let mut root = Node::default();
        for path in paths {
            insert(&mut root, path, Field::Exclude)?;
        }
        Ok(Projection {
            mode: Mode::Exclusion,
            root,
        })
    }

    pub(crate) fn apply(&self, doc: &Document) -> CmdResult<Document> {
        let mut out = self.root.apply_projections(doc, self.mode);
        self.root.apply_expressions(&mut out, doc)?;
        Ok(out)
    }
}

/// The mode is set by the first non-`_id` leaf (only `_id`: `{_id: 0}` excludes, anything
/// else includes); the first leaf that disagrees is reported, as mongod reports it.
fn projection_mode(leaves: &[(String, Leaf)]) -> CmdResult<Mode> {
    let mut mode = None;
    for (path, leaf) in leaves.iter().filter(|(path, _)| path != "_id") {
        let wanted = match leaf {
            Leaf::Exclude => Mode::Exclusion,
            Leaf::Include | Leaf::Computed(_) => Mode::Inclusion,
        };
        match mode {
            None => mode = Some(wanted),
            Some(current) if current == wanted => {}
            Some(Mode::Exclusion) if matches!(leaf, Leaf::Computed(_)) => {
                return Err(project_error(
                    "Cannot use expression other than $meta in exclusion projection",
                    31252,
                ));
            }
            Some(Mode::Exclusion) => {
                return Err(project_error(
                    format!("Cannot do inclusion on field {path} in exclusion projection"),
                    31253,
                ));
            }
            Some(_) => {
                return Err(project_error(
                    format!("Cannot do exclusion on field {path} in inclusion projection"),
                    31254,
                ));
            }
        }
    }
    Ok(mode.unwrap_or_else(|| {
        if leaves.iter().any(|(_, leaf)| matches!(leaf, Leaf::Exclude)) {
            Mode::Exclusion
        } else {
            Mode::Inclusion
        }
    }))
}

fn split(path: &str) -> CmdResult<Vec<&str>> {
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts {
        validate_field_name(part)?;
    }
    Ok(parts)
}

fn collect_project(
    spec: &Document,
    prefix: &str,
    leaves: &mut Vec<(String, Leaf)>,
) -> CmdResult<()> {
    for (key, value) in spec {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        split(key)?;
        let leaf = match value {
            Bson::Boolean(flag) => {
                if *flag {
                    Leaf::Include
                } else {
                    Leaf::Exclude
                }
            }
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
                if crate::query::expr::is_truthy(Some(value)) {
                    Leaf::Include
                } else {
                    Leaf::Exclude
                }
            }
            Bson::Document(sub) if sub.keys().next().is_some_and(|k| !k.starts_with('$')) => {
                collect_project(sub, &path, leaves)?;
                continue;
            }
            Bson::Document(sub) if sub.is_empty() => {
                return Err(project_error(format!("An empty sub-projection is not a valid value. Found empty object at path {path}"), 51270));
            }
            other => Leaf::Computed(Expr::parse(other)?),
        };
        leaves.push((path, leaf));
    }
    Ok(())
}

fn add_fields_into(root: &mut Node, spec: &Document, prefix: &str) -> CmdResult<()> {
    for (key, value) in spec {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        split(key)?;
        match value {
            Bson::Document(sub) if sub.keys().next().is_some_and(|k| !k.starts_with('$')) => {
                add_fields_into(root, sub, &path)?;
            }
            other => insert(root, &path, Field::Computed(Expr::parse(other)?))?,
        }
    }
    Ok(())
}

fn insert(root: &mut Node, path: &str, field: Field) -> CmdResult<()> {
    let parts = split(path)?;
    let collision = || {
        loc(
            31249,
            format!("Invalid $project :: caused by :: Path collision at {path}"),
        )
    };
    let mut node = root;
    let (last, parents) = parts.split_last().ok_or_else(collision)?;
    for part in parents {
        let position = match node.fields.iter().position(|(name, _)| name == part) {
            Some(position) => position,
            None => {
                node.fields
                    .push(((*part).to_owned(), Field::Child(Node::default())));
                node.fields.len() - 1
            }
        };
        node = match &mut node.fields[position].1 {
            Field::Child(child) => child,
            _ => return Err(collision()),
        };
    }
    if let Some((_, existing)) = node.fields.iter_mut().find(|(name, _)| name == last) {
        // The implicit `_id` inclusion yields to an explicit `_id` spec; anything else collides.
        if *last == "_id" && matches!(existing, Field::Include) {
            *existing = field;
            return Ok(());
        }
        return Err(collision());
    }
    node.fields.push(((*last).to_owned(), field));
    Ok(())
}

impl Node {
    fn get(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, field)| field)
    }

    fn has_computed(&self) -> bool {
        self.fields.iter().any(|(_, field)| match field {
            Field::Computed(_) => true,
            Field::Child(child) => child.has_computed(),
            _ => false,
        })
    }

    fn apply_projections(&self, input: &Document, mode: Mode) -> Document {
        match mode {
            Mode::Inclusion => {
                let mut out = Document::new();
                for (key, value) in input {
                    match self.get(key) {
                        Some(Field::Include) => {
                            out.insert(key.clone(), value.clone());
                        }
                        Some(Field::Child(child)) => {
                            if let Some(projected) = child.projections_to_value(value, mode) {
                                out.insert(key.clone(), projected);
                            }
                        }
                        _ => {}
                    }
                }
                out
            }
            Mode::Exclusion => {
                let mut out = input.clone();
                for (key, field) in &self.fields {
                    match field {
                        Field::Exclude => {
                            out.remove(key);
                        }
                        Field::Child(child) => {
                            if let Some(value) = input.get(key) {
                                match child.projections_to_value(value, mode) {
                                    Some(projected) => out.insert(key.clone(), projected),
                                    None => out.remove(key),
                                };
                            }
                        }
                        _ => {}
                    }
                }
                out
            }
            Mode::AddFields => input.clone(),
        }
    }

    fn projections_to_value(&self, value: &Bson, mode: Mode) -> Option<Bson> {
        match value {
            Bson::Document(doc) => Some(Bson::Document(self.apply_projections(doc, mode))),
            Bson::Array(items) => Some(Bson::Array(
                items
                    .iter()
                    .filter_map(|item| self.projections_to_value(item, mode))
                    .collect(),
            )),
            // A scalar where the projection expects sub-fields: inclusion drops it.
            other => (mode != Mode::Inclusion).then(|| other.clone()),
        }
    }

    fn apply_expressions(&self, out: &mut Document, root: &Document) -> CmdResult<()> {
        for (key, field) in &self.fields {
            let value = match field {
                Field::Computed(expr) => expr.eval(root)?,
                Field::Child(child) if child.has_computed() => {
                    let current = out.get(key).cloned();
                    child.expressions_to_value(current, root)?
                }
                _ => continue,
            };
            match value {
                Some(value) => {
                    out.insert(key.clone(), value);
                }
                // `$$REMOVE` (or any missing result) leaves the field out.
                None => {
                    out.remove(key);
                }
            }
        }
        Ok(())
    }

    fn expressions_to_value(
        &self,
        value: Option<Bson>,
        root: &Document,
    ) -> CmdResult<Option<Bson>> {
        match value {
            Some(Bson::Document(mut doc)) => {
                self.apply_expressions(&mut doc, root)?;
                Ok(Some(Bson::Document(doc)))
            }
            Some(Bson::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(value) = self.expressions_to_value(Some(item), root)? {
                        out.push(value);
                    }
                }
                Ok(Some(Bson::Array(out)))
            }
            _ => {
                let mut doc = Document::new();
                self.apply_expressions(&mut doc, root)?;
                Ok(Some(Bson::Document(doc)))
            }
        }
    }
}
