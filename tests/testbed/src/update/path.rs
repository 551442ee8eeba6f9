//! Path helpers shared by the update engine: mongod's field ordering, numeric path components,
//! navigation by a taken path, and `createPathAt` (padding arrays with nulls).

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::fmt;
use crate::error::{CmdResult, CommandError, ErrorCode};

/// mongod refuses to pad an array by more than this many nulls (`kMaxPaddingAllowed`).
const MAX_PADDING: usize = 1_500_000;

/// One component of a path actually taken through the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub name: String,
    /// True when the component indexes an array (it became an int in `disambiguatedPaths`).
    pub index: bool,
}

/// `pathsupport::cmpPathsAndArrayIndexes`: the 5.0+ order in which sibling update paths are
/// applied. Digit-leading names without zero padding compare by length first (so "9" < "10").
pub(crate) fn cmp_fields(a: &str, b: &str) -> Ordering {
    let numeric_like = |s: &str| {
        let bytes = s.as_bytes();
        !bytes.is_empty() && bytes[0].is_ascii_digit() && !(bytes[0] == b'0' && bytes.len() > 1)
    };
    if !numeric_like(a) || !numeric_like(b) {
        return a.cmp(b);
    }
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `FieldRef::isNumericPathComponentStrict`: digits only, no leading zero (except "0").
pub(crate) fn is_numeric_strict(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && !(s.len() > 1 && s.starts_with('0'))
        && s.parse::<usize>().is_ok()
}

/// `str::parseUnsignedBase10Integer`, used when looking up an existing array element.
pub(crate) fn parse_index(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The child of a container named `field` (array children by index), if present.
pub(crate) fn child<'a>(value: &'a Bson, field: &str) -> Option<&'a Bson> {
    match value {
        Bson::Document(d) => d.get(field),
        Bson::Array(a) => parse_index(field).and_then(|i| a.get(i)),
        _ => None,
    }
}

pub(crate) fn child_mut<'a>(value: &'a mut Bson, field: &str) -> Option<&'a mut Bson> {
    match value {
        Bson::Document(d) => d.get_mut(field),
        Bson::Array(a) => parse_index(field).and_then(move |i| a.get_mut(i)),
        _ => None,
    }
}

pub(crate) fn resolve<'a>(root: &'a Bson, path: &[Part]) -> Option<&'a Bson> {
    path.iter()
        .try_fold(root, |cur, part| child(cur, &part.name))
}

pub(crate) fn resolve_mut<'a>(root: &'a mut Bson, path: &[Part]) -> Option<&'a mut Bson> {
    let mut cur = root;
    for part in path {
        cur = child_mut(cur, &part.name)?;
    }
    Some(cur)
}

pub(crate) fn dotted(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// The element's own field name: the last taken component, or "" at the root.
pub(crate) fn last_name(path: &[Part]) -> &str {
    path.last().map(|p| p.name.as_str()).unwrap_or("")
}

fn not_viable(field: &str, parent_name: &str, parent: &Bson) -> CommandError {
    CommandError::new(
        ErrorCode::PathNotViable,
        format!(
            "Cannot create field '{field}' in element {{{}}}",
            fmt::element(parent_name, parent)
        ),
    )
}

/// `pathsupport::createPathAt`: creates `to_create` under `parent` (objects for the inner
/// components) and stores `value` at its end. Array parents need a strict numeric first
/// component and are padded with nulls up to it.
pub(crate) fn create_path(
    parent: &mut Bson,
    parent_name: &str,
    to_create: &[String],
    value: Bson,
) -> CmdResult<()> {
    let Some((first, rest)) = to_create.split_first() else {
        return Ok(());
    };
    let mut leaf = value;
    for name in rest.iter().rev() {
        let mut d = Document::new();
        d.insert(name.clone(), leaf);
        leaf = Bson::Document(d);
    }
    match parent {
        Bson::Document(d) => {
            d.insert(first.clone(), leaf);
            Ok(())
        }
        Bson::Array(a) if is_numeric_strict(first) => {
            let idx = parse_index(first).unwrap_or(usize::MAX);
            if idx > a.len() && idx - a.len() > MAX_PADDING {
                return Err(CommandError::new(
                    ErrorCode::PathNotViable,
                    format!(
                        "can't backfill array to larger than 1500000 elements: cannot create field '{first}' in element {{{}}}",
                        fmt::element(parent_name, parent)
                    ),
                ));
            }
            while a.len() < idx {
                a.push(Bson::Null);
            }
            if idx < a.len() {
                a[idx] = leaf;
            } else {
                a.push(leaf);
            }
            Ok(())
        }
        _ => Err(not_viable(first, parent_name, parent)),
    }
}
