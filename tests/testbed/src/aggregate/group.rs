//! `$group` (`document_source_group.cpp`): documents are grouped by the value of the `_id`
//! expression under canonical equality (so `1`, `1.0` and `NumberLong(1)` share a group and
//! the first one seen is the output `_id`); a missing `_id` groups as null. Output documents
//! are `_id` then the accumulators in spec order; an accumulator whose value is missing
//! (`$first` of a missing field) outputs null, as mongod does.
//!
//! Groups come out in first-seen order. mongod uses a hash table, so its order is
//! unspecified; callers that depend on an order must `$sort`.

use std::collections::BTreeMap;

use bson::{Bson, Document};

use crate::bson_cmp::Key;
use crate::error::{CmdResult, CommandError};
use crate::query::expr::arith::NumSum;
use crate::query::expr::{is_nullish, loc, Expr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccKind {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    Count,
}

/// Accumulators mongod has that the testbed does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "$mergeObjects",
    "$stdDevPop",
    "$stdDevSamp",
    "$top",
    "$topN",
    "$bottom",
    "$bottomN",
    "$firstN",
    "$lastN",
    "$maxN",
    "$minN",
    "$accumulator",
    "$median",
    "$percentile",
    "$concatArrays",
    "$setUnion",
];

#[derive(Debug, Clone)]
struct Accumulator {
    name: String,
    kind: AccKind,
    arg: Expr,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    id: Expr,
    accumulators: Vec<Accumulator>,
}

#[derive(Debug, Clone)]
enum State {
    Sum(NumSum),
    Extreme(Option<Bson>),
    First(Option<Option<Bson>>),
    Last(Option<Bson>),
    Push(Vec<Bson>),
    Set(Vec<Bson>, BTreeMap<Key, ()>),
}

impl Group {
    pub(crate) fn parse(spec: &Bson) -> CmdResult<Group> {
        let Bson::Document(spec) = spec else {
            return Err(loc(
                15947,
                "a group's fields must be specified in an object",
            ));
        };
        let mut id = None;
        let mut accumulators = Vec::new();
        for (name, value) in spec {
            if name == "_id" {
                id = Some(Expr::parse(value)?);
                continue;
            }
            accumulators.push(parse_accumulator(name, value)?);
        }
        let id = id.ok_or_else(|| loc(15955, "a group specification must include an _id"))?;
        Ok(Group { id, accumulators })
    }

    pub(crate) fn run(&self, input: Vec<Document>) -> CmdResult<Vec<Document>> {
        let mut index: BTreeMap<Key, usize> = BTreeMap::new();
        let mut groups: Vec<(Bson, Vec<State>)> = Vec::new();
        for doc in &input {
            let id = self.id.eval(doc)?.unwrap_or(Bson::Null);
            let slot = match index.get(&Key(id.clone())) {
                Some(slot) => *slot,
                None => {
                    index.insert(Key(id.clone()), groups.len());
                    groups.push((
                        id,
                        self.accumulators
                            .iter()
                            .map(|acc| initial(acc.kind))
                            .collect(),
                    ));
                    groups.len() - 1
                }
            };
            let states = &mut groups[slot].1;
            for (acc, state) in self.accumulators.iter().zip(states.iter_mut()) {
                let value = acc.arg.eval(doc)?;
                accumulate(state, acc.kind, value);
            }
        }
        Ok(groups
            .into_iter()
            .map(|(id, states)| {
                let mut out = Document::new();
                out.insert("_id", id);
                for (acc, state) in self.accumulators.iter().zip(states) {
                    out.insert(acc.name.clone(), finish(state, acc.kind));
                }
                out
            })
            .collect())
    }
}

fn parse_accumulator(name: &str, value: &Bson) -> CmdResult<Accumulator> {
    if name.starts_with('$') {
        return Err(loc(
            40236,
            format!("The field name '{name}' cannot be an operator name"),
        ));
    }
    if name.contains('.') {
        return Err(loc(
            40235,
            format!("The field name '{name}' cannot contain '.'"),
        ));
    }
    let Bson::Document(spec) = value else {
        return Err(loc(
            40234,
            format!("The field '{name}' must be an accumulator object"),
        ));
    };
    if spec.len() != 1 {
        return Err(loc(
            40238,
            format!("The field '{name}' must specify one accumulator"),
        ));
    }
    let Some((operator, argument)) = spec.iter().next() else {
        return Err(loc(
            40238,
            format!("The field '{name}' must specify one accumulator"),
        ));
    };
    let kind = match operator.as_str() {
        "$sum" => AccKind::Sum,
        "$avg" => AccKind::Avg,
        "$min" => AccKind::Min,
        "$max" => AccKind::Max,
        "$first" => AccKind::First,
        "$last" => AccKind::Last,
        "$push" => AccKind::Push,
        "$addToSet" => AccKind::AddToSet,
        "$count" => AccKind::Count,
        other if NOT_IMPLEMENTED.contains(&other) => {
            return Err(CommandError::not_implemented(format!(
                "the $group accumulator {other}"
            )));
        }
        other => return Err(loc(15952, format!("unknown group operator '{other}'"))),
    };
    if kind == AccKind::Count {
        // `{$count: {}}` is `{$sum: 1}`.
        if !matches!(argument, Bson::Document(d) if d.is_empty()) {
            return Err(loc(40273, "$count takes no arguments, i.e. $count:{}"));
        }
        return Ok(Accumulator {
            name: name.to_owned(),
            kind: AccKind::Sum,
            arg: Expr::parse(&Bson::Int32(1))?,
        });
    }
    if matches!(argument, Bson::Array(_)) {
        return Err(loc(
            40237,
            format!("The {operator} accumulator is a unary operator"),
        ));
    }
    Ok(Accumulator {
        name: name.to_owned(),
        kind,
        arg: Expr::parse(argument)?,
    })
}

fn initial(kind: AccKind) -> State {
    match kind {
        AccKind::Sum | AccKind::Avg | AccKind::Count => State::Sum(NumSum::new()),
        AccKind::Min | AccKind::Max => State::Extreme(None),
        AccKind::First => State::First(None),
        AccKind::Last => State::Last(None),
        AccKind::Push => State::Push(Vec::new()),
        AccKind::AddToSet => State::Set(Vec::new(), BTreeMap::new()),
    }
}

fn accumulate(state: &mut State, kind: AccKind, value: Option<Bson>) {
    match state {
        State::Sum(sum) => {
            // Non-numeric values are ignored by $sum and $avg.
            if let Some(value) = &value {
                sum.add(value);
            }
        }
        State::Extreme(best) => {
            let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
                return;
            };
            let replace = match best {
                None => true,
                Some(current) => {
                    let order = crate::bson_cmp::compare(&value, current);
                    if kind == AccKind::Max {
                        order == std::cmp::Ordering::Greater
                    } else {
                        order == std::cmp::Ordering::Less
                    }
                }
            };
            if replace {
                *best = Some(value);
            }
        }
        State::First(first) => {
            if first.is_none() {
                *first = Some(value);
            }
        }
        State::Last(last) => *last = value,
        State::Push(items) => items.extend(value),
        State::Set(items, seen) => {
            if let Some(value) = value {
                if seen.insert(Key(value.clone()), ()).is_none() {
                    items.push(value);
                }
            }
        }
    }
}

fn finish(state: State, kind: AccKind) -> Bson {
    match state {
        State::Sum(sum) if kind == AccKind::Avg => sum.average(),
        State::Sum(sum) => sum.result(),
        State::Extreme(best) => best.unwrap_or(Bson::Null),
        State::First(first) => first.flatten().unwrap_or(Bson::Null),
        State::Last(last) => last.unwrap_or(Bson::Null),
        State::Push(items) | State::Set(items, _) => Bson::Array(items),
    }
}
