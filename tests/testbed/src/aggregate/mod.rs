//! Aggregation pipelines over in-memory documents (testbed reference §3.2, §7.1 item 9).
//!
//! The server handles `$changeStream` and `$collStats` itself (they must be first) and hands
//! the remaining stages here. Stages mongod has but the testbed lacks are refused with
//! NotImplemented naming them; unknown names and malformed stages fail with mongod's codes.
//!
//! `$match` uses the query matcher (type bracketing applies there, not in `$expr`), `$sort`
//! the find sort order; `$project`/`$addFields`/`$unset` share one projection tree
//! (`projection.rs`), since aggregation projections differ from find's (expressions,
//! no positional operators, nested arrays recursed).

mod group;
mod projection;
mod stages;
#[cfg(test)]
mod tests;

use bson::{Bson, Document};

use crate::error::{CmdResult, CommandError};
use crate::query::expr::{loc, type_name};
use crate::query::matcher::Matcher;
use crate::query::sort::SortSpec;
use group::Group;
use projection::Projection;
pub(crate) use stages::sample_in_place;
use stages::{ReplaceRoot, Unwind};

/// Options fixed when the testbed starts.
#[derive(Debug, Clone, Default)]
pub struct AggregateOptions {
    /// With a seed, `$sample` picks the same documents for the same input every run.
    pub sample_seed: Option<u64>,
}

#[derive(Debug)]
enum Stage {
    Match(Matcher),
    Project(Projection),
    AddFields(Projection, &'static str),
    Unset(Projection),
    Sort(SortSpec),
    Skip(u64),
    Limit(u64),
    Group(Group),
    Count(String),
    Sample(u64),
    ReplaceRoot(ReplaceRoot, &'static str),
    Unwind(Unwind),
}

#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<Stage>,
    options: AggregateOptions,
}

/// Stages mongod knows that the testbed does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "$lookup",
    "$graphLookup",
    "$facet",
    "$out",
    "$merge",
    "$geoNear",
    "$search",
    "$searchMeta",
    "$vectorSearch",
    "$unionWith",
    "$densify",
    "$fill",
    "$setWindowFields",
    "$bucket",
    "$bucketAuto",
    "$sortByCount",
    "$redact",
    "$documents",
    "$indexStats",
    "$listSessions",
    "$listLocalSessions",
    "$currentOp",
    "$planCacheStats",
    "$listSearchIndexes",
    "$changeStreamSplitLargeEvent",
    "$shardedDataDistribution",
    "$listSampledQueries",
    "$querySettings",
    "$listCatalog",
    "$listClusterCatalog",
    "$queryStats",
];

/// Stages mongod accepts only in the first position.
const FIRST_ONLY: &[&str] = &["$changeStream", "$collStats"];

impl Pipeline {
    /// Parse stages; `$changeStream` and `$collStats` are not handled here (the server strips
    /// them when they come first), so meeting them is mongod's "only valid as the first
    /// stage" error.
    pub fn parse(stages: &[Bson]) -> CmdResult<Pipeline> {
        Pipeline::parse_with(stages, &AggregateOptions::default())
    }

    pub fn parse_with(stages: &[Bson], options: &AggregateOptions) -> CmdResult<Pipeline> {
        let stages = stages
            .iter()
            .map(parse_stage)
            .collect::<CmdResult<Vec<_>>>()?;
        Ok(Pipeline {
            stages,
            options: options.clone(),
        })
    }

    pub fn run(&self, input: Vec<Document>) -> CmdResult<Vec<Document>> {
        self.run_from(0, input)
    }

    /// The size of a leading `$sample` and the seed it would use: a collection answers
    /// it by picking documents without reading the others, as mongod's random cursor does
    /// (see `sample_collection`); the caller then runs the rest with `run_after_sample`.
    pub fn leading_sample(&self) -> Option<(u64, Option<u64>)> {
        match self.stages.first() {
            Some(Stage::Sample(size)) => Some((*size, self.sample_seed(0))),
            _ => None,
        }
    }

    /// Runs the stages after a leading `$sample` over the documents it picked.
    pub fn run_after_sample(&self, sampled: Vec<Document>) -> CmdResult<Vec<Document>> {
        self.run_from(1, sampled)
    }

    /// Each `$sample` stage gets its own stream so two stages do not mirror each other.
    fn sample_seed(&self, position: usize) -> Option<u64> {
        self.options
            .sample_seed
            .map(|seed| seed ^ (position as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn run_from(&self, first: usize, input: Vec<Document>) -> CmdResult<Vec<Document>> {
        let mut docs = input;
        for (position, stage) in self.stages.iter().enumerate().skip(first) {
            docs = match stage {
                Stage::Match(matcher) => {
                    let mut kept = Vec::with_capacity(docs.len());
                    for doc in docs {
                        if matcher.try_matches(&doc)? {
                            kept.push(doc);
                        }
                    }
                    kept
                }
                Stage::Project(projection)
                | Stage::AddFields(projection, _)
                | Stage::Unset(projection) => docs
                    .iter()
                    .map(|doc| projection.apply(doc))
                    .collect::<CmdResult<_>>()?,
                Stage::Sort(spec) => {
                    let mut keyed: Vec<(Vec<Bson>, Document)> =
                        docs.into_iter().map(|doc| (spec.key(&doc), doc)).collect();
                    keyed.sort_by(|a, b| spec.compare_keys(&a.0, &b.0));
                    keyed.into_iter().map(|(_, doc)| doc).collect()
                }
                Stage::Skip(count) => docs
                    .into_iter()
                    .skip(usize::try_from(*count).unwrap_or(usize::MAX))
                    .collect(),
                Stage::Limit(count) => docs
                    .into_iter()
                    .take(usize::try_from(*count).unwrap_or(usize::MAX))
                    .collect(),
                Stage::Group(group) => group.run(docs)?,
                Stage::Count(field) => stages::run_count(field, docs),
                Stage::Sample(size) => {
                    stages::sample_in_place(*size, &mut docs, self.sample_seed(position));
                    docs
                }
                Stage::ReplaceRoot(replace, _) => docs
                    .iter()
                    .map(|doc| replace.apply(doc))
                    .collect::<CmdResult<_>>()?,
                Stage::Unwind(unwind) => unwind.run(docs),
            };
        }
        Ok(docs)
    }

    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages
            .iter()
            .map(|stage| match stage {
                Stage::Match(_) => "$match",
                Stage::Project(_) => "$project",
                Stage::AddFields(_, name) | Stage::ReplaceRoot(_, name) => name,
                Stage::Unset(_) => "$unset",
                Stage::Sort(_) => "$sort",
                Stage::Skip(_) => "$skip",
                Stage::Limit(_) => "$limit",
                Stage::Group(_) => "$group",
                Stage::Count(_) => "$count",
                Stage::Sample(_) => "$sample",
                Stage::Unwind(_) => "$unwind",
            })
            .collect()
    }

    /// True when only stages allowed in an update pipeline are present
    /// (`$addFields`/`$set`, `$project`, `$unset`, `$replaceRoot`, `$replaceWith`).
    pub fn is_update_pipeline(&self) -> bool {
        self.stages.iter().all(|stage| {
            matches!(
                stage,
                Stage::Project(_) | Stage::AddFields(..) | Stage::Unset(_) | Stage::ReplaceRoot(..)
            )
        })
    }
}

fn parse_stage(stage: &Bson) -> CmdResult<Stage> {
    let spec = match stage {
        Bson::Document(spec) if spec.len() == 1 => spec,
        Bson::Document(_) => {
            return Err(loc(
                40323,
                "A pipeline stage specification object must contain exactly one field.",
            ));
        }
        other => {
            return Err(loc(
                14,
                format!(
                    "Each element of the 'pipeline' array must be an object, found {}",
                    type_name(Some(other))
                ),
            ));
        }
    };
    let Some((name, value)) = spec.iter().next() else {
        return Err(loc(
            40323,
            "A pipeline stage specification object must contain exactly one field.",
        ));
    };
    let parsed = match name.as_str() {
        "$match" => {
            let Bson::Document(filter) = value else {
                return Err(loc(
                    15959,
                    "the match filter must be an expression in an object",
                ));
            };
            Stage::Match(Matcher::parse(filter)?)
        }
        "$project" => Stage::Project(Projection::parse_project(object(name, value, 15969)?)?),
        "$addFields" => Stage::AddFields(
            Projection::parse_add_fields(object(name, value, 40272)?)?,
            "$addFields",
        ),
        "$set" => Stage::AddFields(
            Projection::parse_add_fields(object(name, value, 40272)?)?,
            "$set",
        ),
        "$unset" => Stage::Unset(Projection::parse_unset(&unset_paths(value)?)?),
        "$sort" => {
            let Bson::Document(spec) = value else {
                return Err(loc(15973, "the $sort key specification must be an object"));
            };
            if spec.is_empty() {
                return Err(loc(15976, "$sort stage must have at least one sort key"));
            }
            Stage::Sort(SortSpec::parse(spec)?)
        }
        "$skip" => Stage::Skip(stages::parse_skip(value)?),
        "$limit" => Stage::Limit(stages::parse_limit(value)?),
        "$group" => Stage::Group(Group::parse(value)?),
        "$count" => Stage::Count(stages::parse_count(value)?),
        "$sample" => Stage::Sample(stages::parse_sample(value)?),
        "$replaceRoot" => {
            Stage::ReplaceRoot(ReplaceRoot::parse_replace_root(value)?, "$replaceRoot")
        }
        "$replaceWith" => {
            Stage::ReplaceRoot(ReplaceRoot::parse_replace_with(value)?, "$replaceWith")
        }
        "$unwind" => Stage::Unwind(Unwind::parse(value)?),
        other if FIRST_ONLY.contains(&other) => {
            return Err(loc(
                40602,
                format!("{other} is only valid as the first stage in a pipeline"),
            ));
        }
        other if NOT_IMPLEMENTED.contains(&other) => {
            return Err(CommandError::not_implemented(format!(
                "the aggregation stage {other}"
            )));
        }
        other => {
            return Err(loc(
                40324,
                format!("Unrecognized pipeline stage name: '{other}'"),
            ))
        }
    };
    Ok(parsed)
}

fn object<'a>(stage: &str, value: &'a Bson, code: i32) -> CmdResult<&'a Document> {
    match value {
        Bson::Document(spec) => Ok(spec),
        other => Err(loc(
            code,
            format!(
                "{stage} specification must be an object, got {}",
                type_name(Some(other))
            ),
        )),
    }
}

fn unset_paths(value: &Bson) -> CmdResult<Vec<String>> {
    match value {
        Bson::String(path) => Ok(vec![path.clone()]),
        Bson::Array(items) if items.is_empty() => {
            Err(loc(31119, "$unset specification must be a string or an array with at least one field"))
        }
        Bson::Array(items) => items
            .iter()
            .map(|item| match item {
                Bson::String(path) => Ok(path.clone()),
                _ => Err(loc(31120, "$unset specification must be a string or an array containing only string values")),
            })
            .collect(),
        _ => Err(loc(31002, "$unset specification must be a string or an array")),
    }
}
