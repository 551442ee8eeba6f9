//! What changed between two versions of a document, in the shape a change stream reports it.
//!
//! mongod has two producers of the `$v: 2` oplog delta a change stream reads:
//! - operator updates log each modification while applying (`v2_log_builder.cpp`); the engine
//!   in `apply.rs` records the same log and [`DiffTree::from_log`] turns it into a tree here;
//! - replacements and pipeline updates diff the pre- and post-image
//!   (`document_diff_calculator.cpp`), reproduced by [`diff`] including its size bail-outs.
//!
//! Both end in a [`DiffTree`], which [`UpdateDescription`] flattens exactly as
//! `change_stream_document_diff_parser.cpp` does (ordering, `truncatedArrays`,
//! `disambiguatedPaths`).

use std::collections::BTreeMap;

use bson::{doc, Bson, Document};

use super::path::Part;
use super::UpdateKind;

/// `updateDescription` of an `update` change event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateDescription {
    pub updated_fields: Document,
    pub removed_fields: Vec<String>,
    pub truncated_arrays: Vec<(String, i32)>,
    pub disambiguated_paths: Document,
}

impl UpdateDescription {
    /// The `updateDescription` sub-document. mongod (`DocumentSourceChangeStreamTransform`,
    /// 6.1+) adds `disambiguatedPaths` whenever `showExpandedEvents` is set, as `{}` when no
    /// path is ambiguous, and never without it.
    pub fn to_document(&self, show_expanded_events: bool) -> Document {
        let truncated: Vec<Bson> = self
            .truncated_arrays
            .iter()
            .map(|(field, size)| Bson::Document(doc! { "field": field.clone(), "newSize": *size }))
            .collect();
        let mut out = doc! {
            "updatedFields": self.updated_fields.clone(),
            "removedFields": self.removed_fields.iter().cloned().map(Bson::String).collect::<Vec<_>>(),
            "truncatedArrays": truncated,
        };
        if show_expanded_events {
            out.insert("disambiguatedPaths", self.disambiguated_paths.clone());
        }
        out
    }

    fn from_tree(tree: &DocNode) -> UpdateDescription {
        let mut builder = Builder::default();
        builder.doc(tree);
        builder.out
    }
}

/// mongod's document diff between `pre` and `post` (`computeDocDiff` without the size limit at
/// the top level, as the change stream sees it once an oplog delta exists).
pub fn diff(pre: &Document, post: &Document) -> UpdateDescription {
    let tree = compute_doc(pre, post, false).unwrap_or_else(|| whole_replacement(post));
    UpdateDescription::from_tree(&tree)
}

/// The event mongod emits for this update. Operator updates always log a delta; replacements
/// log the whole document; pipeline updates log a delta only when `computeOplogDiff` finds one
/// smaller than the post-image (with the 15-byte `$v`/`diff` wrapper counted in).
pub fn event_type(kind: UpdateKind, pre: &Document, post: &Document) -> &'static str {
    match kind {
        UpdateKind::Operators => "update",
        UpdateKind::Replacement => "replace",
        UpdateKind::Pipeline => {
            if oplog_diff(pre, post).is_some() {
                "update"
            } else {
                "replace"
            }
        }
    }
}

/// `computeOplogDiff`: the delta, or None when mongod would log a replacement instead.
fn oplog_diff(pre: &Document, post: &Document) -> Option<DocNode> {
    const DELTA_METADATA_SIZE: usize = 15;
    let mut node = compute_doc_padded(pre, post, false, DELTA_METADATA_SIZE)?;
    node.approx = 0;
    (doc_size(&node.serialize()) < doc_size(post)).then_some(node)
}

/// A description for a pipeline/replacement update, as the change stream would report it.
pub(crate) fn describe_transform(pre: &Document, post: &Document) -> Option<UpdateDescription> {
    oplog_diff(pre, post).map(|t| UpdateDescription::from_tree(&t))
}

// ---------------------------------------------------------------------------------------------
// The diff tree (`diff_tree::*` in mongod).

#[derive(Debug, Clone)]
pub(crate) enum DNode {
    Doc(DocNode),
    Arr(ArrNode),
    Update(Bson),
    Insert(Bson),
    Delete,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DocNode {
    children: Vec<(String, DNode)>,
    /// The approximate serialized size mongod tracks (`ApproxBSONSizeTracker`).
    approx: usize,
    has_updates: bool,
    has_inserts: bool,
    has_deletes: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ArrNode {
    children: BTreeMap<usize, DNode>,
    resize: Option<usize>,
    approx: usize,
}

const EMPTY_DOC_DIFF: usize = 5;
const EMPTY_ARRAY_DIFF: usize = 9;

impl DNode {
    fn approx_value_size(&self) -> usize {
        match self {
            DNode::Doc(d) => d.approx,
            DNode::Arr(a) => a.approx,
            DNode::Update(v) | DNode::Insert(v) => value_size(v),
            DNode::Delete => 1,
        }
    }
}

impl DocNode {
    fn new(padding: usize) -> DocNode {
        DocNode {
            approx: padding + EMPTY_DOC_DIFF,
            ..DocNode::default()
        }
    }

    fn add(&mut self, field: &str, node: DNode) {
        self.approx += field.len() + 2 + node.approx_value_size();
        // Each section ("u", "i", "d") costs a wrapper the first time it is used.
        let wrap = |flag: &mut bool, size: &mut usize| {
            if !*flag {
                *flag = true;
                *size += 8;
            }
        };
        match &node {
            DNode::Doc(_) | DNode::Arr(_) => self.approx += 1,
            DNode::Update(_) => wrap(&mut self.has_updates, &mut self.approx),
            DNode::Insert(_) => wrap(&mut self.has_inserts, &mut self.approx),
            DNode::Delete => wrap(&mut self.has_deletes, &mut self.approx),
        }
        self.children.push((field.to_string(), node));
    }

    fn get_mut(&mut self, field: &str) -> Option<&mut DNode> {
        self.children
            .iter_mut()
            .find(|(f, _)| f == field)
            .map(|(_, n)| n)
    }

    /// The `$v: 2` diff object: `d`, `u`, `i`, then `s<field>` sub-diffs.
    fn serialize(&self) -> Document {
        let mut out = Document::new();
        let section = |pick: fn(&DNode) -> Option<Bson>| {
            let mut d = Document::new();
            for (f, n) in &self.children {
                if let Some(v) = pick(n) {
                    d.insert(f.clone(), v);
                }
            }
            d
        };
        let deletes = section(|n| matches!(n, DNode::Delete).then_some(Bson::Boolean(false)));
        let updates = section(|n| {
            if let DNode::Update(v) = n {
                Some(v.clone())
            } else {
                None
            }
        });
        let inserts = section(|n| {
            if let DNode::Insert(v) = n {
                Some(v.clone())
            } else {
                None
            }
        });
        for (name, d) in [("d", deletes), ("u", updates), ("i", inserts)] {
            if !d.is_empty() {
                out.insert(name, d);
            }
        }
        for (f, n) in &self.children {
            match n {
                DNode::Doc(d) => {
                    out.insert(format!("s{f}"), d.serialize());
                }
                DNode::Arr(a) => {
                    out.insert(format!("s{f}"), a.serialize());
                }
                _ => {}
            }
        }
        out
    }
}

impl ArrNode {
    fn new() -> ArrNode {
        ArrNode {
            children: BTreeMap::new(),
            resize: None,
            approx: EMPTY_ARRAY_DIFF,
        }
    }

    fn add(&mut self, idx: usize, node: DNode) {
        self.approx += 1 + idx.to_string().len() + 2 + node.approx_value_size();
        self.children.insert(idx, node);
    }

    fn set_resize(&mut self, size: usize) {
        self.resize = Some(size);
        self.approx += 1 + 4 + 2;
    }

    fn serialize(&self) -> Document {
        let mut out = doc! { "a": true };
        if let Some(size) = self.resize {
            out.insert("l", size as i32);
        }
        for (idx, n) in &self.children {
            match n {
                DNode::Update(v) | DNode::Insert(v) => {
                    out.insert(format!("u{idx}"), v.clone());
                }
                DNode::Doc(d) => {
                    out.insert(format!("s{idx}"), d.serialize());
                }
                DNode::Arr(a) => {
                    out.insert(format!("s{idx}"), a.serialize());
                }
                DNode::Delete => {}
            }
        }
        out
    }
}

fn doc_size(d: &Document) -> usize {
    bson::to_vec(d).map(|v| v.len()).unwrap_or(usize::MAX)
}

/// `BSONElement::valuesize()`: the encoded value without type byte and field name.
fn value_size(v: &Bson) -> usize {
    let mut d = Document::new();
    d.insert("", v.clone());
    // 4 (length) + 1 (type) + 1 (empty name terminator) + 1 (document terminator).
    doc_size(&d).saturating_sub(7)
}

/// Byte-level equality (`binaryEqual`): same types, same bits, same field names and order.
pub(crate) fn binary_eq(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => docs_binary_eq(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| binary_eq(p, q))
        }
        _ => a == b,
    }
}

pub(crate) fn docs_binary_eq(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && binary_eq(va, vb))
}

fn whole_replacement(post: &Document) -> DocNode {
    let mut node = DocNode::new(0);
    for (k, v) in post {
        node.add(k, DNode::Update(v.clone()));
    }
    node
}

fn compute_doc(pre: &Document, post: &Document, limit: bool) -> Option<DocNode> {
    compute_doc_padded(pre, post, limit, 0)
}

/// `computeDocDiff`: walks both documents in order; a field whose name differs at the same
/// position is deleted (and re-inserted at the end if it still exists), so reordering shows
/// up as inserts. With `limit`, gives up (None) once the diff is not smaller than `post`.
fn compute_doc_padded(
    pre: &Document,
    post: &Document,
    limit: bool,
    padding: usize,
) -> Option<DocNode> {
    let mut node = DocNode::new(padding);
    let post_size = if limit { doc_size(post) } else { 0 };
    let pre_items: Vec<(&String, &Bson)> = pre.iter().collect();
    let post_items: Vec<(&String, &Bson)> = post.iter().collect();
    let (mut i, mut j) = (0, 0);
    let mut deletes: Vec<&String> = Vec::new();
    while i < pre_items.len() && j < post_items.len() {
        let (pk, pv) = pre_items[i];
        let (qk, qv) = post_items[j];
        if pk == qk && binary_eq(pv, qv) {
            i += 1;
            j += 1;
            continue;
        }
        if pk == qk {
            sub_diff(pv, qv, |n| node.add(pk, n));
            i += 1;
            j += 1;
        } else {
            deletes.push(pk);
            i += 1;
        }
    }
    for (pk, _) in &pre_items[i..] {
        node.add(pk, DNode::Delete);
    }
    for (qk, qv) in &post_items[j..] {
        node.add(qk, DNode::Insert((*qv).clone()));
        deletes.retain(|d| d != qk);
    }
    // mongod keeps the pending deletes in a std::set, so they come out sorted.
    deletes.sort();
    for d in deletes {
        node.add(d, DNode::Delete);
    }
    (!limit || post_size > node.approx).then_some(node)
}

/// `calculateSubDiffHelper`: recurse into two objects or two arrays, or log the new value.
fn sub_diff(pre: &Bson, post: &Bson, mut add: impl FnMut(DNode)) {
    let sub = match (pre, post) {
        (Bson::Document(a), Bson::Document(b)) => compute_doc(a, b, true).map(DNode::Doc),
        (Bson::Array(a), Bson::Array(b)) => compute_array(a, b).map(DNode::Arr),
        _ => {
            add(DNode::Update(post.clone()));
            return;
        }
    };
    add(sub.unwrap_or_else(|| DNode::Update(post.clone())));
}

/// `computeArrayDiff`: element-wise, appended elements as updates at new indexes, shrinking as
/// a resize; gives up when the diff would not be smaller than the post-image array.
fn compute_array(pre: &[Bson], post: &[Bson]) -> Option<ArrNode> {
    let mut node = ArrNode::new();
    let post_size = value_size(&Bson::Array(post.to_vec()));
    let common = pre.len().min(post.len());
    for idx in 0..common {
        if !binary_eq(&pre[idx], &post[idx]) {
            sub_diff(&pre[idx], &post[idx], |n| node.add(idx, n));
        }
    }
    for (idx, v) in post.iter().enumerate().skip(common) {
        node.add(idx, DNode::Update(v.clone()));
    }
    if pre.len() > post.len() {
        node.set_resize(post.len());
    }
    (post_size > node.approx).then_some(node)
}

// ---------------------------------------------------------------------------------------------
// Building the tree from an operator update's log (`V2LogBuilder`).

/// One modification recorded while applying operators.
#[derive(Debug, Clone)]
pub(crate) enum LogEntry {
    Updated(Vec<Part>),
    /// A created path; components from `first_new` on did not exist before.
    Created(Vec<Part>, usize),
    Deleted(Vec<Part>),
}

impl DocNode {
    /// `V2LogBuilder::addNodeAtPath` for each entry; values come from the final document, as
    /// the log builder holds references into the document it serializes at the end.
    pub(crate) fn from_log(log: &[LogEntry], post: &Document) -> DocNode {
        let mut root = DocNode::new(0);
        let post = Bson::Document(post.clone());
        for entry in log {
            let (path, first_new, kind) = match entry {
                LogEntry::Updated(p) => (p, None, 0),
                LogEntry::Created(p, n) => (p, Some(*n), 1),
                LogEntry::Deleted(p) => (p, None, 2),
            };
            // A newly created sub-path is logged whole at its first new component.
            let cut = first_new
                .map(|n| n + 1)
                .unwrap_or(path.len())
                .min(path.len());
            let path = &path[..cut];
            let value = super::path::resolve(&post, path)
                .cloned()
                .unwrap_or(Bson::Null);
            let leaf = match kind {
                0 => DNode::Update(value),
                1 => DNode::Insert(value),
                _ => DNode::Delete,
            };
            add_at_path(&mut root, path, leaf);
        }
        root
    }

    pub(crate) fn describe(&self) -> UpdateDescription {
        UpdateDescription::from_tree(self)
    }
}

fn add_at_path(root: &mut DocNode, path: &[Part], leaf: DNode) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        root.add(&first.name, leaf);
        return;
    }
    if root.get_mut(&first.name).is_none() {
        let fresh = if rest[0].index {
            DNode::Arr(ArrNode::new())
        } else {
            DNode::Doc(DocNode::new(0))
        };
        root.children.push((first.name.clone(), fresh));
    }
    if let Some(child) = root.get_mut(&first.name) {
        add_in_node(child, rest, leaf);
    }
}

fn add_in_node(node: &mut DNode, path: &[Part], leaf: DNode) {
    match node {
        DNode::Doc(d) => add_at_path(d, path, leaf),
        DNode::Arr(a) => {
            let Some((first, rest)) = path.split_first() else {
                return;
            };
            let idx = first.name.parse::<usize>().unwrap_or(0);
            if rest.is_empty() {
                a.children.insert(idx, leaf);
                return;
            }
            let fresh = if rest[0].index {
                DNode::Arr(ArrNode::new())
            } else {
                DNode::Doc(DocNode::new(0))
            };
            let child = a.children.entry(idx).or_insert(fresh);
            add_in_node(child, rest, leaf);
        }
        // A path below an already-logged value is covered by that value.
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Flattening (`change_stream_document_diff_parser.cpp`).

#[derive(Default)]
struct Builder {
    out: UpdateDescription,
    path: Vec<(String, bool)>,
    /// Per component: is the path ambiguous from here on.
    ambiguous: Vec<bool>,
}

impl Builder {
    fn push(&mut self, name: &str, index: bool) {
        self.path.push((name.to_string(), index));
        if self.ambiguous.last().copied().unwrap_or(false) {
            self.ambiguous.push(true);
            return;
        }
        // Numeric-string object keys (not at the top level) and dotted keys are ambiguous.
        let numeric = !index && self.path.len() > 1 && super::path::is_numeric_strict(name);
        let dotted = !index && !numeric && name.contains('.');
        self.ambiguous.push(numeric || dotted);
    }

    fn pop(&mut self) {
        self.path.pop();
        self.ambiguous.pop();
    }

    fn dotted(&self) -> String {
        self.path
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }

    fn disambiguate(&mut self) {
        if self.ambiguous.last().copied().unwrap_or(false) {
            let parts: Vec<Bson> = self
                .path
                .iter()
                .map(|(n, index)| match (index, n.parse::<i32>()) {
                    (true, Ok(i)) => Bson::Int32(i),
                    _ => Bson::String(n.clone()),
                })
                .collect();
            let key = self.dotted();
            self.out.disambiguated_paths.insert(key, parts);
        }
    }

    fn updated(&mut self, name: &str, index: bool, value: &Bson) {
        self.push(name, index);
        let key = self.dotted();
        self.out.updated_fields.insert(key, value.clone());
        self.disambiguate();
        self.pop();
    }

    fn doc(&mut self, node: &DocNode) {
        for (f, n) in &node.children {
            if let DNode::Update(v) = n {
                self.updated(f, false, v);
            }
        }
        for (f, n) in &node.children {
            if let DNode::Insert(v) = n {
                self.updated(f, false, v);
            }
        }
        for (f, n) in &node.children {
            if let DNode::Delete = n {
                self.push(f, false);
                let key = self.dotted();
                self.out.removed_fields.push(key);
                self.disambiguate();
                self.pop();
            }
        }
        for (f, n) in &node.children {
            match n {
                DNode::Doc(d) => {
                    self.push(f, false);
                    self.doc(d);
                    self.pop();
                }
                DNode::Arr(a) => {
                    self.push(f, false);
                    self.array(a);
                    self.pop();
                }
                _ => {}
            }
        }
    }

    fn array(&mut self, node: &ArrNode) {
        if let Some(size) = node.resize {
            let key = self.dotted();
            self.out.truncated_arrays.push((key, size as i32));
            self.disambiguate();
        }
        for (idx, n) in &node.children {
            let name = idx.to_string();
            match n {
                DNode::Update(v) | DNode::Insert(v) => self.updated(&name, true, v),
                DNode::Doc(d) => {
                    self.push(&name, true);
                    self.doc(d);
                    self.pop();
                }
                DNode::Arr(a) => {
                    self.push(&name, true);
                    self.array(a);
                    self.pop();
                }
                DNode::Delete => {}
            }
        }
    }
}
