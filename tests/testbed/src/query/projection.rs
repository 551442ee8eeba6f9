//! `find` projections with 4.4+ semantics (SERVER `src/mongo/db/query/projection_parser.cpp`
//! and the projection executor):
//! - inclusion vs exclusion, with `_id` included by default and allowed in either kind;
//! - dotted paths and sub-objects, applied through arrays of documents;
//! - `$slice` (find form), `$elemMatch`, the positional `a.$`, and aggregation expressions
//!   (any value that is not a number or bool, including `$literal`);
//! - included fields keep the document's order; computed fields and `$elemMatch` results come
//!   after them, in projection order, as on mongod.

use bson::{Bson, Document};

use super::expr::Expr;
use super::matcher::Matcher;
use crate::error::{CmdResult, CommandError};

/// A parsed projection.
pub struct Projection {
    kind: Kind,
    root: Tree,
    /// Path (without `.$`) of the positional projection, if any.
    positional: Option<Vec<String>>,
    /// Top-level `$elemMatch` projections, in projection order.
    elem_matches: Vec<(String, Matcher)>,
}

impl std::fmt::Debug for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("kind", &self.kind)
            .field("positional", &self.positional)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inclusion,
    Exclusion,
}

#[derive(Default)]
struct Tree {
    children: Vec<(String, Node)>,
}

enum Node {
    Include,
    Exclude,
    Expr(Box<Expr>),
    Slice(Slice),
    /// Marker for an `$elemMatch` field; the matcher lives in `Projection::elem_matches`.
    ElemMatch,
    Sub(Tree),
}

#[derive(Debug, Clone, Copy)]
struct Slice {
    skip: Option<i64>,
    limit: i64,
}

impl Projection {
    /// Parse without a query: a positional projection then fails at apply time unless a
    /// matcher is supplied (mongod requires one: 51050).
    pub fn parse(spec: &Document) -> CmdResult<Projection> {
        Projection::parse_for_find(spec, None)
    }

    /// Parse as `find` does, validating a positional projection against the filter.
    pub fn parse_for_find(spec: &Document, filter: Option<&Matcher>) -> CmdResult<Projection> {
        let mut ctx = ParseContext::default();
        let mut root = Tree::default();
        for (key, value) in spec {
            ctx.id_specified |= key == "_id" || key.starts_with("_id.");
            parse_element(&mut ctx, &mut root, key, value, &[], filter)?;
        }
        let kind = ctx.kind.unwrap_or_else(|| ctx.default_kind());
        if !ctx.id_specified && kind == Kind::Inclusion {
            root.children.push(("_id".to_string(), Node::Include));
        }
        if kind == Kind::Exclusion && ctx.id_included {
            root.children.retain(|(k, _)| k != "_id");
        }
        Ok(Projection {
            kind,
            root,
            positional: ctx.positional,
            elem_matches: ctx.elem_matches,
        })
    }

    pub fn apply(&self, doc: &Document) -> CmdResult<Document> {
        self.apply_with_match(doc, None)
    }

    /// `matcher` is the query's filter, needed by a positional projection.
    pub fn apply_with_match(
        &self,
        doc: &Document,
        matcher: Option<&Matcher>,
    ) -> CmdResult<Document> {
        let mut out = match self.kind {
            Kind::Inclusion => include_document(&self.root, doc, doc)?,
            Kind::Exclusion => exclude_document(&self.root, doc),
        };
        if let Some(path) = &self.positional {
            apply_positional(&mut out, doc, path, matcher)?;
        }
        for (field, m) in &self.elem_matches {
            if let Some(value) = elem_match_value(doc, field, m) {
                out.insert(field.clone(), value);
            }
        }
        Ok(out)
    }

    pub fn is_inclusion(&self) -> bool {
        self.kind == Kind::Inclusion
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Default)]
struct ParseContext {
    kind: Option<Kind>,
    id_specified: bool,
    id_included: bool,
    has_slice: bool,
    positional: Option<Vec<String>>,
    elem_matches: Vec<(String, Matcher)>,
}

impl ParseContext {
    /// `computeProjectionType` for projections made only of `_id` and find-only operators.
    fn default_kind(&self) -> Kind {
        if self.has_slice {
            return if self.id_included {
                Kind::Inclusion
            } else {
                Kind::Exclusion
            };
        }
        if !self.elem_matches.is_empty() || self.id_included {
            return Kind::Inclusion;
        }
        Kind::Exclusion
    }

    fn require(&mut self, kind: Kind, error: impl FnOnce() -> CommandError) -> CmdResult<()> {
        match self.kind {
            Some(existing) if existing != kind => Err(error()),
            _ => {
                self.kind = Some(kind);
                Ok(())
            }
        }
    }
}

fn parse_element(
    ctx: &mut ParseContext,
    parent: &mut Tree,
    key: &str,
    value: &Bson,
    parent_path: &[String],
    filter: Option<&Matcher>,
) -> CmdResult<()> {
    let positional = positional_split(key);
    match value {
        Bson::Document(sub) => {
            if positional.is_some() {
                return Err(CommandError::from_code(
                    31271,
                    "positional projection cannot be used with an expression or sub object",
                ));
            }
            parse_sub_object(ctx, parent, key, sub, parent_path, filter)
        }
        Bson::Boolean(_)
        | Bson::Int32(_)
        | Bson::Int64(_)
        | Bson::Double(_)
        | Bson::Decimal128(_) => {
            if is_true(value) {
                parse_inclusion(ctx, parent, key, positional, parent_path, filter)
            } else {
                parse_exclusion(ctx, parent, key, parent_path)
            }
        }
        _ => {
            if positional.is_some() {
                return Err(CommandError::from_code(
                    31308,
                    "positional projection cannot be used with a literal",
                ));
            }
            let expr = Expr::parse(value)?;
            add_node(parent, key, Node::Expr(Box::new(expr)))?;
            ctx.require(Kind::Inclusion, || {
                CommandError::from_code(
                    31310,
                    format!("Cannot use an expression {key}: {value} in an exclusion projection"),
                )
            })
        }
    }
}

fn is_true(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Int32(v) => *v != 0,
        Bson::Int64(v) => *v != 0,
        Bson::Double(v) => *v != 0.0,
        Bson::Decimal128(d) => !crate::decimal::Dec::from_decimal128(d).is_zero(),
        _ => true,
    }
}

/// `findFirstPositionalOperator`: `Some(prefix)` when the key holds a positional `$`.
fn positional_split(key: &str) -> Option<&str> {
    if let Some(i) = key.find(".$.") {
        return Some(&key[..i]);
    }
    if let Some(prefix) = key.strip_suffix(".$") {
        return Some(prefix);
    }
    (key == "$").then_some("")
}

fn parse_inclusion(
    ctx: &mut ParseContext,
    parent: &mut Tree,
    key: &str,
    positional: Option<&str>,
    parent_path: &[String],
    filter: Option<&Matcher>,
) -> CmdResult<()> {
    let is_top_id = key == "_id" && parent_path.is_empty();
    match positional {
        None => {
            add_node(parent, key, Node::Include)?;
            if is_top_id {
                ctx.id_included = true;
            }
        }
        Some(prefix) => {
            validate_positional(ctx, key, prefix, parent_path, filter)?;
            add_node(parent, prefix, Node::Include)?;
            let mut full: Vec<String> = parent_path.to_vec();
            full.extend(prefix.split('.').map(str::to_string));
            ctx.positional = Some(full);
        }
    }
    if !is_top_id {
        ctx.require(Kind::Inclusion, || {
            CommandError::from_code(
                31253,
                format!("Cannot do inclusion on field {key} in exclusion projection"),
            )
        })?;
    }
    Ok(())
}

fn validate_positional(
    ctx: &ParseContext,
    key: &str,
    prefix: &str,
    parent_path: &[String],
    filter: Option<&Matcher>,
) -> CmdResult<()> {
    if ctx.positional.is_some() {
        return Err(CommandError::from_code(
            31276,
            "Cannot specify more than one positional projection per query.",
        ));
    }
    if !ctx.elem_matches.is_empty() {
        return Err(CommandError::from_code(
            31256,
            "Cannot specify positional operator and $elemMatch.",
        ));
    }
    if key.ends_with(".$.") {
        return Err(CommandError::from_code(31270, "Path cannot end with '.$.'"));
    }
    let after = &key[prefix.len() + 2..];
    let after = after.strip_prefix('.').unwrap_or(after);
    if positional_split(after).is_some() || after == "$" || after.split('.').any(|p| p == "$") {
        return Err(CommandError::from_code(
            31287,
            format!("Cannot use positional operator twice: {key}"),
        ));
    }
    if prefix.is_empty() {
        return Err(CommandError::from_code(
            16410,
            "FieldPath field names may not start with '$'.",
        ));
    }
    if let Some(m) = filter {
        let match_field = parent_path
            .first()
            .map_or_else(|| prefix.split('.').next().unwrap_or(""), String::as_str);
        let paths = m.top_level_paths();
        if !paths
            .iter()
            .any(|p| p.split('.').next() == Some(match_field))
        {
            return Err(CommandError::from_code(
                31277,
                format!("Positional projection '{key}' does not match the query document."),
            ));
        }
    }
    Ok(())
}

fn parse_exclusion(
    ctx: &mut ParseContext,
    parent: &mut Tree,
    key: &str,
    parent_path: &[String],
) -> CmdResult<()> {
    add_node(parent, key, Node::Exclude)?;
    if key == "_id" && parent_path.is_empty() {
        return Ok(());
    }
    ctx.require(Kind::Exclusion, || {
        CommandError::from_code(
            31254,
            format!("Cannot do exclusion on field {key} in inclusion projection"),
        )
    })
}

fn parse_sub_object(
    ctx: &mut ParseContext,
    parent: &mut Tree,
    key: &str,
    sub: &Document,
    parent_path: &[String],
    filter: Option<&Matcher>,
) -> CmdResult<()> {
    if sub.is_empty() {
        return Err(CommandError::from_code(
            51270,
            format!(
                "An empty sub-projection is not a valid value. Found empty object at path {key}"
            ),
        ));
    }
    if sub.len() == 1 {
        if let Some((op, operand)) = sub.iter().next().filter(|(k, _)| k.starts_with('$')) {
            return parse_operator(ctx, parent, key, op, operand, sub, parent_path);
        }
    }
    validate_field_path(key)?;
    let mut full = parent_path.to_vec();
    full.extend(key.split('.').map(str::to_string));
    let child = sub_tree(parent, key)?;
    for (k, v) in sub {
        parse_element(ctx, child, k, v, &full, filter)?;
    }
    Ok(())
}

fn parse_operator(
    ctx: &mut ParseContext,
    parent: &mut Tree,
    key: &str,
    op: &str,
    operand: &Bson,
    whole: &Document,
    parent_path: &[String],
) -> CmdResult<()> {
    match op {
        "$slice" => {
            if let Some(slice) = parse_find_slice(operand)? {
                add_node(parent, key, Node::Slice(slice))?;
                ctx.has_slice = true;
                return Ok(());
            }
        }
        "$elemMatch" => return parse_elem_match(ctx, parent, key, operand, parent_path),
        "$meta" => return Err(CommandError::not_implemented("$meta in a projection")),
        _ => {}
    }
    let expr = Expr::parse(&Bson::Document(whole.clone()))?;
    ctx.require(Kind::Inclusion, || {
        CommandError::from_code(
            31252,
            "Cannot use expression other than $meta in exclusion projection",
        )
    })?;
    add_node(parent, key, Node::Expr(Box::new(expr)))
}

/// The find form of `$slice`: `n` or `[skip, limit]`. `Ok(None)` when the operand has the
/// aggregation form instead (`{$slice: ["$arr", 2]}`), which is then parsed as an expression.
fn parse_find_slice(operand: &Bson) -> CmdResult<Option<Slice>> {
    if let Some(limit) = slice_number(operand) {
        return Ok(Some(Slice { skip: None, limit }));
    }
    let Bson::Array(items) = operand else {
        return Err(CommandError::from_code(
            31273,
            "$slice only supports numbers and [skip, limit] arrays",
        ));
    };
    if items.len() != 2 || slice_number(&items[0]).is_none() {
        return Ok(None);
    }
    let skip = slice_number(&items[0]).unwrap_or(0);
    let Some(limit) = slice_number(&items[1]) else {
        return Err(CommandError::from_code(
            31258,
            format!(
                "$slice expects the limit argument to be a number, got {}",
                type_name(&items[1])
            ),
        ));
    };
    if limit <= 0 {
        return Err(CommandError::from_code(
            31259,
            format!("$slice limit must be positive, got {limit}"),
        ));
    }
    Ok(Some(Slice {
        skip: Some(skip),
        limit,
    }))
}

/// `numberInt()`: numbers truncate toward zero and saturate to 32 bits.
fn slice_number(value: &Bson) -> Option<i64> {
    let n = crate::bson_cmp::Number::from_bson(value)?;
    let f = n.to_f64();
    if f.is_nan() {
        return Some(0);
    }
    Some(f.trunc().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i64)
}

fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Null => "null",
        Bson::Boolean(_) => "bool",
        _ => "non-number",
    }
}

fn parse_elem_match(
    ctx: &mut ParseContext,
    parent: &mut Tree,
    key: &str,
    operand: &Bson,
    parent_path: &[String],
) -> CmdResult<()> {
    if !matches!(operand, Bson::Document(_)) {
        return Err(CommandError::from_code(
            31274,
            format!(
                "elemMatch: Invalid argument, object required, but got {}",
                type_name(operand)
            ),
        ));
    }
    if ctx.positional.is_some() {
        return Err(CommandError::from_code(
            31255,
            "Cannot specify positional operator and $elemMatch.",
        ));
    }
    if key.contains('.') || !parent_path.is_empty() {
        return Err(CommandError::from_code(
            31275,
            "Cannot use $elemMatch projection on a nested field.",
        ));
    }
    let mut filter = Document::new();
    filter.insert(key, bson::doc! {"$elemMatch": operand.clone()});
    let matcher = Matcher::parse(&filter)?;
    add_node(parent, key, Node::ElemMatch)?;
    ctx.elem_matches.push((key.to_string(), matcher));
    Ok(())
}

fn validate_field_path(path: &str) -> CmdResult<()> {
    if path.is_empty() {
        return Err(CommandError::from_code(
            40352,
            "FieldPath cannot be constructed with empty string",
        ));
    }
    for part in path.split('.') {
        if part.is_empty() {
            return Err(CommandError::from_code(
                15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if part.starts_with('$') {
            return Err(CommandError::from_code(
                16410,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
    }
    Ok(())
}

/// `addNodeAtPath`, with mongod's path-collision errors.
fn add_node(tree: &mut Tree, path: &str, node: Node) -> CmdResult<()> {
    validate_field_path(path)?;
    let parts: Vec<&str> = path.split('.').collect();
    add_at(tree, &parts, node, path)
}

fn add_at(tree: &mut Tree, parts: &[&str], node: Node, full: &str) -> CmdResult<()> {
    let name = parts[0];
    let existing = tree.children.iter_mut().position(|(k, _)| k == name);
    if parts.len() == 1 {
        if existing.is_some() {
            return Err(CommandError::from_code(
                31250,
                format!("Path collision at {full}"),
            ));
        }
        tree.children.push((name.to_string(), node));
        return Ok(());
    }
    let index = match existing {
        Some(i) => i,
        None => {
            tree.children
                .push((name.to_string(), Node::Sub(Tree::default())));
            tree.children.len() - 1
        }
    };
    match &mut tree.children[index].1 {
        Node::Sub(child) => add_at(child, &parts[1..], node, full),
        _ => Err(CommandError::from_code(
            31249,
            format!(
                "Path collision at {full} remaining portion {}",
                parts[1..].join(".")
            ),
        )),
    }
}

/// The sub-tree at `path` (dotted), created when absent.
fn sub_tree<'t>(tree: &'t mut Tree, path: &str) -> CmdResult<&'t mut Tree> {
    let mut current = tree;
    for part in path.split('.') {
        let index = match current.children.iter().position(|(k, _)| k == part) {
            Some(i) => i,
            None => {
                current
                    .children
                    .push((part.to_string(), Node::Sub(Tree::default())));
                current.children.len() - 1
            }
        };
        current = match &mut current.children[index].1 {
            Node::Sub(child) => child,
            _ => {
                return Err(CommandError::from_code(
                    31250,
                    format!("Path collision at {path}"),
                ))
            }
        };
    }
    Ok(current)
}

// ---------------------------------------------------------------------------------------------
// Applying

impl Tree {
    fn get(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, n)| n)
    }

    fn has_computed(&self) -> bool {
        self.children.iter().any(|(_, n)| match n {
            Node::Expr(_) => true,
            Node::Sub(t) => t.has_computed(),
            _ => false,
        })
    }
}

/// Inclusion: pass 1 copies included fields in document order; pass 2 adds computed fields
/// (and sub-trees holding computed fields whose input was absent) in projection order.
fn include_document(tree: &Tree, doc: &Document, root: &Document) -> CmdResult<Document> {
    let mut out = Document::new();
    for (key, value) in doc {
        match tree.get(key) {
            Some(Node::Include) => {
                out.insert(key.clone(), value.clone());
            }
            Some(Node::Slice(slice)) => {
                out.insert(key.clone(), slice_value(value, *slice));
            }
            Some(Node::Sub(child)) => {
                if let Some(projected) = include_value(child, value, root)? {
                    out.insert(key.clone(), projected);
                }
            }
            _ => {}
        }
    }
    for (key, node) in &tree.children {
        match node {
            Node::Expr(expr) => {
                if let Some(value) = expr.eval(root)? {
                    out.insert(key.clone(), value);
                }
            }
            Node::Sub(child) if child.has_computed() && !out.contains_key(key) => {
                let built = include_document(child, &Document::new(), root)?;
                out.insert(key.clone(), built);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A sub-projection applied to one value: documents recurse, arrays apply to each element,
/// scalars disappear (unless the sub-tree computes fields, which then replace them).
fn include_value(tree: &Tree, value: &Bson, root: &Document) -> CmdResult<Option<Bson>> {
    match value {
        Bson::Document(d) => Ok(Some(Bson::Document(include_document(tree, d, root)?))),
        Bson::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(projected) = include_value(tree, item, root)? {
                    out.push(projected);
                } else if tree.has_computed() {
                    out.push(Bson::Document(include_document(
                        tree,
                        &Document::new(),
                        root,
                    )?));
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        _ => Ok(None),
    }
}

fn exclude_document(tree: &Tree, doc: &Document) -> Document {
    let mut out = Document::new();
    for (key, value) in doc {
        match tree.get(key) {
            Some(Node::Exclude) => {}
            Some(Node::Sub(child)) => {
                out.insert(key.clone(), exclude_value(child, value));
            }
            Some(Node::Slice(slice)) => {
                out.insert(key.clone(), slice_value(value, *slice));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

fn exclude_value(tree: &Tree, value: &Bson) -> Bson {
    match value {
        Bson::Document(d) => Bson::Document(exclude_document(tree, d)),
        Bson::Array(items) => {
            Bson::Array(items.iter().map(|item| exclude_value(tree, item)).collect())
        }
        other => other.clone(),
    }
}

/// Find `$slice`: `n` first / `-n` last elements; `[skip, limit]` with a negative skip counted
/// from the end. Non-arrays are left alone.
fn slice_value(value: &Bson, slice: Slice) -> Bson {
    let Bson::Array(items) = value else {
        return value.clone();
    };
    let len = items.len() as i64;
    let (start, count) = match slice.skip {
        None if slice.limit >= 0 => (0, slice.limit),
        None => ((len + slice.limit).max(0), len),
        Some(skip) if skip >= 0 => (skip.min(len), slice.limit),
        Some(skip) => ((len + skip).max(0), slice.limit),
    };
    let end = start.saturating_add(count).min(len);
    Bson::Array(items[start as usize..end.max(start) as usize].to_vec())
}

/// `$_internalFindPositional`: the first array on the path is cut down to the element at the
/// position the filter matched.
fn apply_positional(
    out: &mut Document,
    doc: &Document,
    path: &[String],
    matcher: Option<&Matcher>,
) -> CmdResult<()> {
    let Some(matcher) = matcher else {
        return Err(CommandError::from_code(
            51050,
            "Projections with a positional operator require a matcher",
        ));
    };
    let Some(position) = matcher.match_position(doc) else {
        return Ok(());
    };
    let Some(index) = position else {
        return Err(CommandError::from_code(
            51246,
            "positional operator '.$' couldn't find a matching element in the array",
        ));
    };
    replace_first_array(out, path, index)
}

fn replace_first_array(doc: &mut Document, path: &[String], index: usize) -> CmdResult<()> {
    let Some(value) = doc.get_mut(&path[0]) else {
        return Ok(());
    };
    match value {
        Bson::Array(items) => {
            let Some(element) = items.get(index).cloned() else {
                return Err(CommandError::from_code(
                    51247,
                    "positional operator '.$' element mismatch",
                ));
            };
            *value = Bson::Array(vec![element]);
            Ok(())
        }
        Bson::Document(sub) if path.len() > 1 => replace_first_array(sub, &path[1..], index),
        _ => Ok(()),
    }
}

/// `$_internalFindElemMatch`: the first element matching, as a one-element array; nothing when
/// the field is not an array or no element matches.
fn elem_match_value(doc: &Document, field: &str, matcher: &Matcher) -> Option<Bson> {
    let Some(Bson::Array(items)) = doc.get(field) else {
        return None;
    };
    let probe = bson::doc! {field: Bson::Array(items.clone())};
    let index = matcher.match_position(&probe)??;
    items.get(index).map(|e| Bson::Array(vec![e.clone()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn project(spec: Document, d: Document) -> Document {
        Projection::parse(&spec)
            .expect("valid projection")
            .apply(&d)
            .expect("applies")
    }

    fn parse_err(spec: Document) -> CommandError {
        Projection::parse(&spec).expect_err("projection must be rejected")
    }

    fn sample() -> Document {
        doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]}
    }

    #[test]
    fn empty_projection_is_identity() {
        assert_eq!(project(doc! {}, sample()), sample());
    }

    #[test]
    fn inclusion_keeps_document_order_and_id() {
        assert_eq!(
            project(doc! {"e": 1, "a": true}, sample()),
            doc! {"_id": 1, "a": 1, "e": [1, 2, 3, 4, 5]}
        );
        assert_eq!(project(doc! {"a": 1, "_id": 0}, sample()), doc! {"a": 1});
        assert_eq!(
            project(doc! {"a": 5}, sample()),
            doc! {"_id": 1, "a": 1},
            "non-zero numbers include"
        );
        assert_eq!(project(doc! {"_id": 1}, sample()), doc! {"_id": 1});
        assert_eq!(project(doc! {"missing": 1}, sample()), doc! {"_id": 1});
    }

    #[test]
    fn exclusion() {
        assert_eq!(
            project(doc! {"b": 0, "e": false}, sample()),
            doc! {"_id": 1, "a": 1}
        );
        assert_eq!(
            project(doc! {"_id": 0}, sample()),
            doc! {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]}
        );
        assert_eq!(
            project(doc! {"b.c": 0}, sample()),
            doc! {"_id": 1, "a": 1, "b": {"d": 3}, "e": [1, 2, 3, 4, 5]}
        );
        assert_eq!(
            project(doc! {"_id": 1, "a": 0}, sample()),
            doc! {"_id": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]}
        );
    }

    #[test]
    fn mixing_is_rejected_with_mongod_codes() {
        let e = parse_err(doc! {"a": 1, "b": 0});
        assert_eq!(e.code, 31254);
        assert_eq!(
            e.message,
            "Cannot do exclusion on field b in inclusion projection"
        );
        let e = parse_err(doc! {"a": 0, "b": 1});
        assert_eq!(e.code, 31253);
        assert_eq!(
            e.message,
            "Cannot do inclusion on field b in exclusion projection"
        );
        assert_eq!(parse_err(doc! {"a": 0, "b": "$x"}).code, 31310);
        assert_eq!(parse_err(doc! {"a": 0, "b": {"$literal": 1}}).code, 31252);
        assert_eq!(parse_err(doc! {"a": 1, "a.b": 1}).code, 31249);
        assert_eq!(parse_err(doc! {"a.b": 1, "a": 1}).code, 31250);
        assert_eq!(parse_err(doc! {"a": {}}).code, 51270);
        assert_eq!(parse_err(doc! {"a": {"$meta": "textScore"}}).code, 238);
    }

    #[test]
    fn dotted_paths_and_sub_objects_through_arrays() {
        let d = doc! {"_id": 1, "a": [{"b": 1, "c": 2}, 5, {"c": 3}, [{"b": 4}]], "x": {"y": 1, "z": 2}};
        assert_eq!(
            project(doc! {"a.b": 1, "_id": 0}, d.clone()),
            doc! {"a": [{"b": 1}, {}, [{"b": 4}]]}
        );
        assert_eq!(
            project(doc! {"x": {"z": 1}}, d.clone()),
            doc! {"_id": 1, "x": {"z": 2}}
        );
        assert_eq!(
            project(doc! {"x.z": 1}, d.clone()),
            doc! {"_id": 1, "x": {"z": 2}}
        );
        assert_eq!(
            project(doc! {"a.c": 0, "x": 0}, d),
            doc! {"_id": 1, "a": [{"b": 1}, 5, {}, [{"b": 4}]]}
        );
        // A scalar where a sub-document was expected disappears in an inclusion.
        assert_eq!(
            project(doc! {"a.b": 1}, doc! {"_id": 2, "a": 7}),
            doc! {"_id": 2}
        );
    }

    #[test]
    fn slice_forms() {
        let s = |spec: Bson| {
            project(
                doc! {"e": {"$slice": spec}, "_id": 0, "a": 0, "b": 0},
                sample(),
            )
        };
        assert_eq!(s(Bson::Int32(2)), doc! {"e": [1, 2]});
        assert_eq!(s(Bson::Int32(-2)), doc! {"e": [4, 5]});
        assert_eq!(s(Bson::Int32(0)), doc! {"e": []});
        assert_eq!(s(Bson::Int32(10)), doc! {"e": [1, 2, 3, 4, 5]});
        assert_eq!(s(Bson::Int32(-10)), doc! {"e": [1, 2, 3, 4, 5]});
        assert_eq!(s(bson::bson!([1, 2])), doc! {"e": [2, 3]});
        assert_eq!(s(bson::bson!([-2, 1])), doc! {"e": [4]});
        assert_eq!(s(bson::bson!([10, 1])), doc! {"e": []});
        assert_eq!(s(bson::bson!([-10, 2])), doc! {"e": [1, 2]});
        // $slice alone is an exclusion projection; with an inclusion it includes its field.
        assert_eq!(
            project(doc! {"e": {"$slice": 1}}, sample()),
            doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
        );
        assert_eq!(
            project(doc! {"e": {"$slice": 1}, "a": 1}, sample()),
            doc! {"_id": 1, "a": 1, "e": [1]}
        );
        assert_eq!(
            project(
                doc! {"a": {"$slice": 1}, "_id": 0, "b": 0, "e": 0},
                sample()
            ),
            doc! {"a": 1}
        );
        assert_eq!(parse_err(doc! {"e": {"$slice": [1, 0]}}).code, 31259);
        assert_eq!(parse_err(doc! {"e": {"$slice": "x"}}).code, 31273);
    }

    #[test]
    fn elem_match_projection() {
        let d = doc! {"_id": 1, "z": [{"k": 1}, {"k": 2}, {"k": 2, "w": 1}], "a": 1};
        assert_eq!(
            project(doc! {"z": {"$elemMatch": {"k": 2}}}, d.clone()),
            doc! {"_id": 1, "z": [{"k": 2}]}
        );
        // The $elemMatch field comes after the other inclusions.
        assert_eq!(
            project(doc! {"z": {"$elemMatch": {"k": 2}}, "a": 1}, d.clone()),
            doc! {"_id": 1, "a": 1, "z": [{"k": 2}]}
        );
        assert_eq!(
            project(doc! {"z": {"$elemMatch": {"k": 9}}}, d.clone()),
            doc! {"_id": 1}
        );
        assert_eq!(
            project(doc! {"a": {"$elemMatch": {"k": 1}}}, d),
            doc! {"_id": 1}
        );
        assert_eq!(
            parse_err(doc! {"a.b": {"$elemMatch": {"k": 1}}}).code,
            31275
        );
        assert_eq!(parse_err(doc! {"a": {"$elemMatch": 1}}).code, 31274);
    }

    #[test]
    fn positional_projection() {
        let d = doc! {"_id": 1, "a": [{"b": 1}, {"b": 2}, {"b": 3}], "c": 5};
        let filter = Matcher::parse(&doc! {"a.b": {"$gte": 2}}).expect("filter");
        let p = Projection::parse_for_find(&doc! {"a.$": 1}, Some(&filter)).expect("projection");
        assert_eq!(
            p.apply_with_match(&d, Some(&filter)).expect("applies"),
            doc! {"_id": 1, "a": [{"b": 2}]}
        );
        assert_eq!(p.apply(&d).expect_err("needs matcher").code, 51050);
        let other = Matcher::parse(&doc! {"c": 5}).expect("filter");
        assert_eq!(
            Projection::parse_for_find(&doc! {"a.$": 1}, Some(&other))
                .expect_err("no match")
                .code,
            31277
        );
        assert_eq!(
            p.apply_with_match(&d, Some(&other))
                .expect_err("no array")
                .code,
            51246
        );
        assert_eq!(parse_err(doc! {"a.$": 1, "b.$": 1}).code, 31276);
        assert_eq!(parse_err(doc! {"a.$.b.$": 1}).code, 31287);
        assert_eq!(parse_err(doc! {"a.$": {"x": 1}}).code, 31271);
        assert_eq!(parse_err(doc! {"a.$": "x"}).code, 31308);
        assert_eq!(
            parse_err(doc! {"z": {"$elemMatch": {"k": 1}}, "a.$": 1}).code,
            31256
        );
    }

    #[test]
    fn expressions_and_literals() {
        let d = doc! {"_id": 1, "a": 1, "b": {"c": 2}};
        assert_eq!(
            project(doc! {"x": "$a", "a": 1}, d.clone()),
            doc! {"_id": 1, "a": 1, "x": 1}
        );
        assert_eq!(
            project(doc! {"x": "lit", "_id": 0}, d.clone()),
            doc! {"x": "lit"}
        );
        assert_eq!(
            project(doc! {"x": {"$literal": 1}, "_id": 0}, d.clone()),
            doc! {"x": 1}
        );
        assert_eq!(
            project(doc! {"a": "$b.c", "_id": 0}, d.clone()),
            doc! {"a": 2}
        );
        assert_eq!(
            project(doc! {"x": "$missing", "_id": 0}, d.clone()),
            doc! {}
        );
        assert_eq!(
            project(doc! {"n.m": "$a", "_id": 0}, d.clone()),
            doc! {"n": {"m": 1}}
        );
        // Computed sub-fields replace the sub-document's other fields in an inclusion.
        assert_eq!(
            project(doc! {"b.z": "$a", "_id": 0}, d),
            doc! {"b": {"z": 1}}
        );
    }

    #[test]
    fn field_path_validation() {
        assert_eq!(parse_err(doc! {"$a": 1}).code, 16410);
        assert_eq!(parse_err(doc! {"a..b": 1}).code, 15998);
    }
}
