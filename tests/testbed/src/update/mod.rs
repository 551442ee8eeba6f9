//! Update documents: operators, replacements and pipelines, applied as mongod 5.0+ does.
//!
//! - Operators become a path tree (`tree.rs`) applied in mongod's field order (`apply.rs`):
//!   lexicographic, numeric components numerically, new fields appended in that order,
//!   existing fields kept in place, `_id` moved first afterwards (`ensureIdFieldIsFirst`).
//! - A no-op leaves the document byte-identical, so the caller's byte comparison detects it.
//! - Upserts never generate `_id`: the caller adds one when the result lacks it (mongod adds
//!   an ObjectId first in `ensureIdFieldIsFirst(doc, true)`).
//! - `$setOnInsert` only acts in [`UpdateSpec::apply_upsert`].
//!
//! Not reproduced: collation-aware comparisons, storage validation of `$`-prefixed names
//! inside values, `bypassEmptyTsReplacement` (replacements always fill `Timestamp(0, 0)` with
//! `now_ts`), and the non-viable-path errors of `$pull`/`$pop` on missing paths (no-ops here).

pub mod diff;

mod apply;
mod fmt;
mod num;
mod ops;
mod path;
mod push;
mod tree;

#[cfg(test)]
mod tests;

use std::rc::Rc;

use bson::{Bson, Document};

use self::apply::Engine;
use self::diff::{DocNode, UpdateDescription};
use self::tree::{ArrayFilters, Leaf, ObjectNode};
use crate::aggregate::Pipeline;
use crate::bson_cmp::values_equal;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::query::matcher::Matcher;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Replacement,
    Operators,
    Pipeline,
}

pub struct UpdateSpec {
    inner: Inner,
    positional: bool,
}

enum Inner {
    Replacement(Document),
    Operators {
        tree: ObjectNode,
        filters: ArrayFilters,
    },
    Pipeline(Vec<Bson>),
}

pub struct UpdateContext {
    /// For `$currentDate: {$type: "date"}`.
    pub now: bson::DateTime,
    /// For `$currentDate: {$type: "timestamp"}` and `Timestamp(0, 0)` in replacements.
    pub now_ts: bson::Timestamp,
    /// From the matcher, for positional `$`.
    pub matched_position: Option<usize>,
}

const OPERATORS: [&str; 15] = [
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$rename",
    "$setOnInsert",
    "$push",
    "$addToSet",
    "$pull",
    "$pullAll",
    "$pop",
    "$currentDate",
    "$bit",
];

impl UpdateSpec {
    /// `u` from an update statement: a document (operators or replacement) or an array (pipeline).
    pub fn parse(u: &Bson, array_filters: Option<&[Document]>) -> CmdResult<UpdateSpec> {
        match u {
            Bson::Array(stages) => {
                if array_filters.is_some_and(|f| !f.is_empty()) {
                    return Err(CommandError::failed_to_parse(
                        "arrayFilters may not be specified for pipeline-style updates",
                    ));
                }
                let pipeline = Pipeline::parse(stages)?;
                if !pipeline.is_update_pipeline() {
                    const ALLOWED: [&str; 6] = [
                        "$addFields",
                        "$set",
                        "$project",
                        "$unset",
                        "$replaceRoot",
                        "$replaceWith",
                    ];
                    let name = stages
                        .iter()
                        .filter_map(|s| s.as_document().and_then(|d| d.keys().next().cloned()))
                        .find(|k| !ALLOWED.contains(&k.as_str()))
                        .unwrap_or_default();
                    return Err(CommandError::new(
                        ErrorCode::InvalidOptions,
                        format!("{name} is not allowed to be used within an update"),
                    ));
                }
                Ok(UpdateSpec {
                    inner: Inner::Pipeline(stages.clone()),
                    positional: false,
                })
            }
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                parse_operators(d, array_filters.unwrap_or(&[]))
            }
            Bson::Document(d) => {
                if array_filters.is_some_and(|f| !f.is_empty()) {
                    return Err(CommandError::failed_to_parse(
                        "arrayFilters may not be specified for replacement-style updates",
                    ));
                }
                if let Some(k) = d.keys().find(|k| k.starts_with('$')) {
                    return Err(CommandError::new(
                        ErrorCode::DollarPrefixedFieldName,
                        format!(
                            "The dollar ($) prefixed field '{k}' in '{k}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
                        ),
                    ));
                }
                Ok(UpdateSpec {
                    inner: Inner::Replacement(d.clone()),
                    positional: false,
                })
            }
            other => Err(CommandError::failed_to_parse(format!(
                "Update argument must be either an object or an array, not {}",
                fmt::type_name(other)
            ))),
        }
    }

    pub fn kind(&self) -> UpdateKind {
        match self.inner {
            Inner::Replacement(_) => UpdateKind::Replacement,
            Inner::Operators { .. } => UpdateKind::Operators,
            Inner::Pipeline(_) => UpdateKind::Pipeline,
        }
    }

    pub fn uses_positional(&self) -> bool {
        self.positional
    }

    /// The new document for an existing one. `_id` may not change (ImmutableField 66).
    pub fn apply(&self, doc: &Document, ctx: &UpdateContext) -> CmdResult<Document> {
        self.apply_described(doc, ctx).map(|(d, _)| d)
    }

    /// [`apply`](Self::apply) plus the `updateDescription` mongod's change stream reports for
    /// it: from the operator log for operator updates (not a pre/post diff: `$set` of a whole
    /// sub-document is reported whole), from the document diff for pipelines; `None` when the
    /// event is a `replace`.
    pub fn apply_described(
        &self,
        doc: &Document,
        ctx: &UpdateContext,
    ) -> CmdResult<(Document, Option<UpdateDescription>)> {
        match &self.inner {
            Inner::Operators { tree, filters } => {
                let (out, log) = run_operators(tree, filters, doc.clone(), ctx, false)?;
                let description = DocNode::from_log(&log, &out).describe();
                Ok((out, Some(description)))
            }
            Inner::Replacement(r) => Ok((replace(doc, r, ctx)?, None)),
            Inner::Pipeline(stages) => {
                let out = run_pipeline(stages, doc)?;
                let out = replace(doc, &out, ctx)?;
                let description = diff::describe_transform(doc, &out);
                Ok((out, description))
            }
        }
    }

    /// The document an upsert inserts: seeded from the query's equality fields, then the
    /// update with `$setOnInsert`; for a replacement, the replacement plus the seed's `_id`.
    /// `_id` is left missing when neither provides one: the caller generates it.
    pub fn apply_upsert(
        &self,
        seed: &[(String, Bson)],
        ctx: &UpdateContext,
    ) -> CmdResult<Document> {
        let mut base = Bson::Document(Document::new());
        for (p, value) in seed {
            let parts: Vec<String> = p.split('.').map(str::to_string).collect();
            set_seed(&mut base, &parts, value.clone())?;
        }
        let Bson::Document(mut base) = base else {
            return Err(CommandError::new(ErrorCode::InternalError, "seed"));
        };
        ensure_id_first(&mut base);
        let mut out = match &self.inner {
            Inner::Operators { tree, filters } => run_operators(tree, filters, base, ctx, true)?.0,
            Inner::Replacement(r) => {
                let mut out = Document::new();
                if let (false, Some(id)) = (r.contains_key("_id"), base.get("_id")) {
                    out.insert("_id", id.clone());
                }
                out.extend(fill_zero_timestamps(r, ctx));
                out
            }
            Inner::Pipeline(stages) => run_pipeline(stages, &base)?,
        };
        ensure_id_first(&mut out);
        check_id_value(&out)?;
        Ok(out)
    }
}

fn parse_operators(d: &Document, filter_docs: &[Document]) -> CmdResult<UpdateSpec> {
    let filters = parse_array_filters(filter_docs)?;
    let mut tree = ObjectNode::default();
    let mut used = Vec::new();
    let mut positional = false;
    for (op, arg) in d {
        if !OPERATORS.contains(&op.as_str()) {
            return Err(CommandError::failed_to_parse(format!(
                "Unknown modifier: {op}. Expected a valid update modifier or pipeline-style update specified as an array"
            )));
        }
        let Bson::Document(fields) = arg else {
            return Err(CommandError::failed_to_parse(format!(
                "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{op}: {}}}",
                fmt::type_name(arg),
                fmt::value_str(arg)
            )));
        };
        for (field, value) in fields {
            if op == "$rename" {
                positional |= parse_rename(&mut tree, field, value, &filters, &mut used)?;
                continue;
            }
            let leaf = Leaf {
                op: ops::parse(op, field, value)?,
                path: field.clone(),
            };
            positional |= tree::merge_path(&mut tree, field, leaf, &filters, &mut used)?;
        }
    }
    for ident in filters.keys() {
        if !used.iter().any(|u| u == ident) {
            return Err(CommandError::failed_to_parse(format!(
                "The array filter for identifier '{ident}' was not used in the update {}",
                fmt::document(d)
            )));
        }
    }
    Ok(UpdateSpec {
        inner: Inner::Operators { tree, filters },
        positional,
    })
}

/// `$rename`: a marker node at the source (for conflict detection) and the rename node at the
/// destination, which decides when it runs in the field order.
fn parse_rename(
    tree: &mut ObjectNode,
    from: &str,
    to: &Bson,
    filters: &ArrayFilters,
    used: &mut Vec<String>,
) -> CmdResult<bool> {
    let Bson::String(to) = to else {
        return Err(CommandError::bad_value(format!(
            "The 'to' field for $rename must be a string: {}",
            fmt::element(from, to)
        )));
    };
    let elem = fmt::element(from, &Bson::String(to.clone()));
    let dynamic = |p: &str| {
        p.split('.')
            .any(|c| c == "$" || (c.starts_with("$[") && c.ends_with(']')))
    };
    if dynamic(from) {
        return Err(CommandError::bad_value(format!(
            "The source field for $rename may not be dynamic: {from}"
        )));
    }
    if dynamic(to) {
        return Err(CommandError::bad_value(format!(
            "The destination field for $rename may not be dynamic: {to}"
        )));
    }
    if from == to {
        return Err(CommandError::bad_value(format!(
            "The source and target field for $rename must differ: {elem}"
        )));
    }
    let prefix = |a: &str, b: &str| b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'.');
    if prefix(from, to) || prefix(to, from) {
        return Err(CommandError::bad_value(format!(
            "The source and target field for $rename must not be on the same path: {elem}"
        )));
    }
    tree::merge_path(
        tree,
        from,
        Leaf {
            op: ops::Op::Placeholder,
            path: from.to_string(),
        },
        filters,
        used,
    )?;
    tree::merge_path(
        tree,
        to,
        Leaf {
            op: ops::Op::Rename {
                from: from.to_string(),
            },
            path: to.clone(),
        },
        filters,
        used,
    )
}

/// Parses arrayFilters: each filter names exactly one identifier (its top-level field's first
/// component), a lowercase-led alphanumeric string, used by no other filter.
fn parse_array_filters(docs: &[Document]) -> CmdResult<ArrayFilters> {
    let mut filters = ArrayFilters::new();
    for f in docs {
        let mut found: Option<String> = None;
        filter_ident(f, &mut found)?;
        let Some(ident) = found else {
            return Err(CommandError::failed_to_parse(
                "Cannot use an expression without a top-level field name in arrayFilters",
            ));
        };
        let mut chars = ident.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(CommandError::bad_value(format!(
                "Error parsing array filter :: caused by :: The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '{ident}'"
            )));
        }
        if filters.contains_key(&ident) {
            return Err(CommandError::failed_to_parse(format!(
                "Found multiple array filters with the same top-level field name {ident}"
            )));
        }
        filters.insert(ident, Rc::new(Matcher::parse(f)?));
    }
    Ok(filters)
}

fn filter_ident(f: &Document, found: &mut Option<String>) -> CmdResult<()> {
    for (k, v) in f {
        if matches!(k.as_str(), "$and" | "$or" | "$nor") {
            if let Bson::Array(items) = v {
                for item in items {
                    if let Bson::Document(sub) = item {
                        filter_ident(sub, found)?;
                    }
                }
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let ident = k.split('.').next().unwrap_or_default().to_string();
        match found {
            Some(existing) if *existing != ident => {
                return Err(CommandError::failed_to_parse(format!(
                    "Error parsing array filter :: caused by :: Expected a single top-level field name, found '{existing}' and '{ident}'"
                )))
            }
            _ => *found = Some(ident),
        }
    }
    Ok(())
}

fn run_operators(
    tree: &ObjectNode,
    filters: &ArrayFilters,
    doc: Document,
    ctx: &UpdateContext,
    insert: bool,
) -> CmdResult<(Document, Vec<diff::LogEntry>)> {
    let id_str = doc
        .get("_id")
        .map(|id| fmt::element("_id", id))
        .unwrap_or_default();
    let mut engine = Engine {
        ctx,
        insert,
        filters,
        log: Vec::new(),
        id_str,
    };
    let mut root = Bson::Document(doc);
    engine.apply_root(tree, &mut root)?;
    let Bson::Document(mut out) = root else {
        return Err(CommandError::new(
            ErrorCode::InternalError,
            "update produced a non-document",
        ));
    };
    ensure_id_first(&mut out);
    check_id_value(&out)?;
    Ok((out, engine.log))
}

fn run_pipeline(stages: &[Bson], doc: &Document) -> CmdResult<Document> {
    let pipeline = Pipeline::parse(stages)?;
    let mut out = pipeline.run(vec![doc.clone()])?;
    match (out.pop(), out.is_empty()) {
        (Some(d), true) => Ok(d),
        _ => Err(CommandError::new(
            ErrorCode::InternalError,
            "an update pipeline must produce exactly one document",
        )),
    }
}

/// `ObjectReplaceExecutor`: keeps the old `_id` when the replacement has none; a different
/// `_id` (by value: 1 and 1.0 are the same) is ImmutableField.
fn replace(old: &Document, replacement: &Document, ctx: &UpdateContext) -> CmdResult<Document> {
    let mut out = Document::new();
    match (old.get("_id"), replacement.get("_id")) {
        (Some(old_id), Some(new_id)) if !values_equal(old_id, new_id) => {
            return Err(CommandError::new(
                ErrorCode::ImmutableField,
                format!(
                    "After applying the update, the (immutable) field '_id' was found to have been altered to {}",
                    fmt::element("_id", new_id)
                ),
            ))
        }
        (Some(old_id), None) => {
            out.insert("_id", old_id.clone());
        }
        _ => {}
    }
    out.extend(fill_zero_timestamps(replacement, ctx));
    ensure_id_first(&mut out);
    check_id_value(&out)?;
    Ok(out)
}

/// Top-level `Timestamp(0, 0)` values (other than `_id`) become the current timestamp.
fn fill_zero_timestamps(doc: &Document, ctx: &UpdateContext) -> Document {
    doc.iter()
        .map(|(k, v)| match v {
            Bson::Timestamp(ts) if k != "_id" && ts.time == 0 && ts.increment == 0 => {
                (k.clone(), Bson::Timestamp(ctx.now_ts))
            }
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

fn ensure_id_first(doc: &mut Document) {
    if doc.keys().next().is_some_and(|k| k != "_id") {
        if let Some(id) = doc.remove("_id") {
            let mut out = Document::new();
            out.insert("_id", id);
            out.extend(std::mem::take(doc));
            *doc = out;
        }
    }
}

fn check_id_value(doc: &Document) -> CmdResult<()> {
    match doc.get("_id") {
        Some(Bson::Array(_)) => Err(CommandError::new(
            ErrorCode::InvalidIdField,
            "The '_id' value cannot be of type array",
        )),
        Some(Bson::RegularExpression(_)) => Err(CommandError::new(
            ErrorCode::InvalidIdField,
            "The '_id' value cannot be of type regex",
        )),
        Some(Bson::Undefined) => Err(CommandError::new(
            ErrorCode::InvalidIdField,
            "The '_id' value cannot be of type undefined",
        )),
        _ => Ok(()),
    }
}

/// Writes one equality from the query into the upsert seed, creating sub-documents.
fn set_seed(root: &mut Bson, parts: &[String], value: Bson) -> CmdResult<()> {
    let Some((first, rest)) = parts.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        return path::create_path(root, "", std::slice::from_ref(first), value);
    }
    let exists = matches!(path::child(root, first), Some(Bson::Document(_)));
    if !exists {
        if path::child(root, first).is_some() {
            return Err(CommandError::new(
                ErrorCode::PathNotViable,
                format!(
                    "cannot infer query fields to set, path '{}' is matched twice",
                    parts.join(".")
                ),
            ));
        }
        path::create_path(
            root,
            "",
            std::slice::from_ref(first),
            Bson::Document(Document::new()),
        )?;
    }
    match path::child_mut(root, first) {
        Some(next) => set_seed(next, rest, value),
        None => Err(CommandError::new(
            ErrorCode::InternalError,
            "seed path vanished",
        )),
    }
}
