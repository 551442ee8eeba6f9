//! `$push` with `$each`, `$position`, `$sort` and `$slice` (`push_node.cpp`).

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::fmt;
use super::ops::{integral, is_number, Modify};
use crate::bson_cmp::compare;
use crate::error::{CmdResult, CommandError};

fn bad(msg: String) -> CommandError {
    CommandError::bad_value(msg)
}

#[derive(Clone)]
pub(crate) struct Push {
    values: Vec<Bson>,
    slice: Option<i64>,
    sort: Option<SortSpec>,
    position: Option<i64>,
}

#[derive(Clone)]
enum SortSpec {
    Whole(bool),
    Pattern(Vec<(String, bool)>),
}

pub(crate) fn parse_push(arg: &Bson) -> CmdResult<Push> {
    let plain = Push {
        values: vec![arg.clone()],
        slice: None,
        sort: None,
        position: None,
    };
    let Bson::Document(d) = arg else {
        return Ok(plain);
    };
    if !d.contains_key("$each") {
        return Ok(plain);
    }
    let mut push = Push {
        values: Vec::new(),
        slice: None,
        sort: None,
        position: None,
    };
    for (k, v) in d {
        match k.as_str() {
            "$each" => match v {
                Bson::Array(a) => push.values = a.clone(),
                other => {
                    return Err(bad(format!(
                        "The argument to $each in $push must be an array but it was of type: {}",
                        fmt::type_name(other)
                    )))
                }
            },
            "$slice" => {
                push.slice = Some(integral(v).ok_or_else(|| {
                    bad(format!(
                        "The value for $slice must be an integer value but was given type: {}",
                        fmt::type_name(v)
                    ))
                })?)
            }
            "$position" => {
                push.position = Some(integral(v).ok_or_else(|| {
                    bad(format!(
                        "The value for $position must be an integer value, not of type: {}",
                        fmt::type_name(v)
                    ))
                })?)
            }
            "$sort" => push.sort = Some(parse_sort(v)?),
            other => return Err(bad(format!("Unrecognized clause in $push: {other}"))),
        }
    }
    Ok(push)
}

fn parse_sort(v: &Bson) -> CmdResult<SortSpec> {
    let invalid = || {
        bad("The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields".to_string())
    };
    let dir = |v: &Bson| match integral(v) {
        Some(1) => Ok(true),
        Some(-1) => Ok(false),
        _ => Err(invalid()),
    };
    match v {
        Bson::Document(d) => {
            if d.is_empty() {
                return Err(invalid());
            }
            let mut fields = Vec::new();
            for (k, v) in d {
                if k.is_empty()
                    || k.starts_with('.')
                    || k.ends_with('.')
                    || k.contains("..")
                    || k.contains('$')
                {
                    return Err(bad(
                        "The $sort field is a dotted field but has an empty part: ".to_string() + k,
                    ));
                }
                fields.push((k.clone(), dir(v)?));
            }
            Ok(SortSpec::Pattern(fields))
        }
        other if is_number(other) => Ok(SortSpec::Whole(dir(other)?)),
        _ => Err(invalid()),
    }
}

impl Push {
    /// `PushNode::performPush`: insert at `$position`, then `$sort`, then `$slice`.
    pub(crate) fn apply(&self, arr: &mut Vec<Bson>) -> Modify {
        let before = arr.clone();
        let len = arr.len() as i64;
        let mut appended_only = len > 0;
        let at = match self.position {
            None => len,
            Some(p) if p >= len => len,
            Some(p) if p >= 0 => {
                appended_only = false;
                p
            }
            Some(p) => {
                appended_only = false;
                (len + p).max(0)
            }
        } as usize;
        for (i, v) in self.values.iter().enumerate() {
            arr.insert(at + i, v.clone());
        }
        if let Some(sort) = &self.sort {
            appended_only = false;
            arr.sort_by(|a, b| sort_cmp(sort, a, b));
        }
        if let Some(slice) = self.slice {
            appended_only = false;
            let n = arr.len() as i64;
            if slice >= 0 {
                arr.truncate(slice.min(n) as usize);
            } else if -slice < n {
                arr.drain(..(n + slice) as usize);
            }
        }
        if super::diff::binary_eq(&Bson::Array(before.clone()), &Bson::Array(arr.clone())) {
            return Modify::NoOp;
        }
        if appended_only {
            Modify::Appended(before.len())
        } else {
            Modify::Updated
        }
    }
}

fn sort_cmp(spec: &SortSpec, a: &Bson, b: &Bson) -> Ordering {
    match spec {
        SortSpec::Whole(asc) => {
            let o = compare(a, b);
            if *asc {
                o
            } else {
                o.reverse()
            }
        }
        SortSpec::Pattern(fields) => match (a, b) {
            (Bson::Document(x), Bson::Document(y)) => {
                for (path, asc) in fields {
                    let get = |d: &Document| extract(d, path).unwrap_or(Bson::Null);
                    let o = compare(&get(x), &get(y));
                    let o = if *asc { o } else { o.reverse() };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }
            // Non-documents compare whole, in the pattern's first direction.
            _ => {
                let o = compare(a, b);
                if fields.first().is_none_or(|(_, asc)| *asc) {
                    o
                } else {
                    o.reverse()
                }
            }
        },
    }
}

fn extract(d: &Document, path: &str) -> Option<Bson> {
    let mut cur = Bson::Document(d.clone());
    for part in path.split('.') {
        cur = match &cur {
            Bson::Document(d) => d.get(part)?.clone(),
            _ => return None,
        };
    }
    Some(cur)
}
