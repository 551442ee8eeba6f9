//! mongosync's namespace filters (`includeNamespaces` / `excludeNamespaces`): entries
//! naming a database or a database regex, optionally narrowed to collections or a
//! collection regex. Regexes use MongoDB `$regex` syntax with its option letters.

use std::collections::HashMap;
use std::sync::Arc;

use bson::{doc, Document};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::namespace::{is_excluded, Namespace};

/// A filter entry as the REST API receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "an object such as {\"database\": \"sales\", \"collections\": [\"orders\"]}"
)]
pub struct FilterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_regex: Option<RegexSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections_regex: Option<RegexSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object {\"pattern\": \"<regex>\", \"options\": \"<letters i, m, s, x>\"}"
)]
pub struct RegexSpec {
    pub pattern: String,
    #[serde(default)]
    pub options: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error(
        "filter entry {index} of {list}: exactly one of 'database' and 'databaseRegex' is required"
    )]
    DatabaseRequired { list: &'static str, index: usize },
    #[error("filter entry {index} of {list}: invalid regex {pattern:?}: {reason}")]
    InvalidRegex {
        list: &'static str,
        index: usize,
        pattern: String,
        reason: String,
    },
    #[error(
        "filter entry {index} of {list}: unsupported regex option '{option}' (use i, m, s or x)"
    )]
    InvalidRegexOption {
        list: &'static str,
        index: usize,
        option: char,
    },
    #[error("filter entry {index} of {list}: {reason}")]
    Invalid {
        list: &'static str,
        index: usize,
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    database: DbMatch,
    collections: Option<Vec<String>>,
    collections_regex: Option<Regex>,
}

#[derive(Debug, Clone)]
enum DbMatch {
    Name(String),
    Regex(Regex),
}

/// A compiled filter. An empty include list means "everything".
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter {
    include: Vec<Entry>,
    exclude: Vec<Entry>,
    /// Scale-out: only the databases of one stream shard.
    shard: Option<Arc<ShardSelector>>,
}

/// Which stream shard of a scaled-out migration applies a database's change events.
///
/// Shards split by database, not collection: renames (and `$out`, which renames) stay
/// within a database, so one owner sees both sides of every same-database rename.
/// Databases the plan assigned go to their shard; any other (created after planning)
/// to `fnv1a(db) % count`, so every database has exactly one owner on every worker
/// without asking anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSelector {
    pub id: u32,
    pub count: u32,
    pub assigned: HashMap<String, u32>,
}

impl ShardSelector {
    pub fn shard_of(&self, db: &str) -> u32 {
        shard_of_database(&self.assigned, self.count, db)
    }

    pub fn owns(&self, db: &str) -> bool {
        self.shard_of(db) == self.id
    }
}

/// The shard of `db`: its planned one, else a stable hash (FNV-1a, the same on every
/// build and host) modulo `count`.
pub fn shard_of_database(assigned: &HashMap<String, u32>, count: u32, db: &str) -> u32 {
    if let Some(shard) = assigned.get(db) {
        return *shard;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in db.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % count.max(1)
}

impl NamespaceFilter {
    pub fn compile(
        include: &[FilterSpec],
        exclude: &[FilterSpec],
    ) -> Result<NamespaceFilter, FilterError> {
        Ok(NamespaceFilter {
            include: include
                .iter()
                .enumerate()
                .map(|(i, s)| compile_entry("includeNamespaces", i, s))
                .collect::<Result<_, _>>()?,
            exclude: exclude
                .iter()
                .enumerate()
                .map(|(i, s)| compile_entry("excludeNamespaces", i, s))
                .collect::<Result<_, _>>()?,
            shard: None,
        })
    }

    /// The same filter narrowed to one stream shard's databases.
    pub fn with_shard(&self, selector: ShardSelector) -> NamespaceFilter {
        NamespaceFilter {
            shard: Some(Arc::new(selector)),
            ..self.clone()
        }
    }

    /// A change-stream `$match` that leaves other shards' planned databases out on the
    /// server, so a scaled-out worker reads its share of the events rather than all of
    /// them (mongod 5.1+ applies it inside the oplog scan). Databases created after
    /// planning still arrive: their owner follows from a hash `$match` cannot compute,
    /// and `matches` decides. None when there is no shard or nothing to leave out.
    pub fn stream_match(&self) -> Option<Document> {
        let shard = self.shard.as_ref()?;
        let mut others: Vec<&str> = shard
            .assigned
            .iter()
            .filter(|(_, owner)| **owner != shard.id)
            .map(|(db, _)| db.as_str())
            .collect();
        if others.is_empty() {
            return None;
        }
        others.sort_unstable();
        Some(doc! {"$match": {"ns.db": {"$nin": others}}})
    }

    /// The user's filter (without a shard restriction) is empty.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether `ns` is synced: never a system or metadata namespace; otherwise
    /// (no includes or some include matches) and no exclude matches.
    pub fn matches(&self, ns: &Namespace) -> bool {
        if is_excluded(ns) || !self.shard_owns(&ns.db) {
            return false;
        }
        let included = self.include.is_empty() || self.include.iter().any(|e| e.matches(ns));
        included && !self.exclude.iter().any(|e| e.matches(ns))
    }

    /// Whether every collection of `db`, including ones created later, is synced (the
    /// condition mongosync sets for renames into a database and for `$out`).
    pub fn includes_whole_database(&self, db: &str) -> bool {
        if !self.shard_owns(db) {
            return false;
        }
        let included = self.include.is_empty()
            || self.include.iter().any(|e| {
                e.database.matches(db) && e.collections.is_none() && e.collections_regex.is_none()
            });
        included && !self.exclude.iter().any(|e| e.database.matches(db))
    }
}

impl NamespaceFilter {
    fn shard_owns(&self, db: &str) -> bool {
        self.shard.as_ref().is_none_or(|shard| shard.owns(db))
    }
}

impl DbMatch {
    fn matches(&self, db: &str) -> bool {
        match self {
            DbMatch::Name(name) => name == db,
            DbMatch::Regex(regex) => regex.is_match(db),
        }
    }
}

impl Entry {
    fn matches(&self, ns: &Namespace) -> bool {
        if !self.database.matches(&ns.db) {
            return false;
        }
        match (&self.collections, &self.collections_regex) {
            (None, None) => true,
            (names, regex) => {
                names.as_ref().is_some_and(|n| n.contains(&ns.coll))
                    || regex.as_ref().is_some_and(|r| r.is_match(&ns.coll))
            }
        }
    }
}

fn compile_entry(
    list: &'static str,
    index: usize,
    spec: &FilterSpec,
) -> Result<Entry, FilterError> {
    let database = match (&spec.database, &spec.database_regex) {
        (Some(name), None) => {
            if name.is_empty() || name.contains('.') {
                return Err(FilterError::Invalid {
                    list,
                    index,
                    reason: format!("invalid database name {name:?}"),
                });
            }
            DbMatch::Name(name.clone())
        }
        (None, Some(regex)) => DbMatch::Regex(compile_regex(list, index, regex)?),
        _ => return Err(FilterError::DatabaseRequired { list, index }),
    };
    if let Some(collections) = &spec.collections {
        if collections.iter().any(|c| c.is_empty()) {
            return Err(FilterError::Invalid {
                list,
                index,
                reason: "collection names must not be empty".into(),
            });
        }
    }
    let collections_regex = spec
        .collections_regex
        .as_ref()
        .map(|r| compile_regex(list, index, r))
        .transpose()?;
    Ok(Entry {
        database,
        collections: spec.collections.clone(),
        collections_regex,
    })
}

fn compile_regex(list: &'static str, index: usize, spec: &RegexSpec) -> Result<Regex, FilterError> {
    let mut builder = RegexBuilder::new(&spec.pattern);
    for option in spec.options.chars() {
        match option {
            'i' => builder.case_insensitive(true),
            'm' => builder.multi_line(true),
            's' => builder.dot_matches_new_line(true),
            'x' => builder.ignore_whitespace(true),
            other => {
                return Err(FilterError::InvalidRegexOption {
                    list,
                    index,
                    option: other,
                })
            }
        };
    }
    builder.build().map_err(|error| FilterError::InvalidRegex {
        list,
        index,
        pattern: spec.pattern.clone(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shards_stream_match_leaves_out_only_other_shards_planned_databases() {
        let assigned: HashMap<String, u32> = [("a", 0), ("b", 1), ("c", 0), ("d", 2)]
            .into_iter()
            .map(|(db, shard)| (db.to_string(), shard))
            .collect();
        let filter = NamespaceFilter::default();
        assert_eq!(filter.stream_match(), None);
        let shard = |id| {
            filter.with_shard(ShardSelector {
                id,
                count: 3,
                assigned: assigned.clone(),
            })
        };
        assert_eq!(
            shard(0).stream_match(),
            Some(doc! {"$match": {"ns.db": {"$nin": ["b", "d"]}}})
        );
        assert_eq!(
            shard(1).stream_match(),
            Some(doc! {"$match": {"ns.db": {"$nin": ["a", "c", "d"]}}})
        );
        // One shard owning everything planned: nothing to leave out.
        let alone = filter.with_shard(ShardSelector {
            id: 0,
            count: 1,
            assigned: [("a".to_string(), 0)].into_iter().collect(),
        });
        assert_eq!(alone.stream_match(), None);
        // What the server lets through, `matches` still decides (unplanned databases).
        let unplanned = Namespace::new("new_db", "x");
        let owners: Vec<u32> = (0..3).filter(|id| shard(*id).matches(&unplanned)).collect();
        assert_eq!(owners.len(), 1);
    }

    fn spec(json: &str) -> FilterSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn include_then_exclude() {
        let filter = NamespaceFilter::compile(
            &[
                spec(r#"{"database":"sales","collectionsRegex":{"pattern":"^accounts_.+$","options":"i"}}"#),
                spec(r#"{"database":"marketing"}"#),
            ],
            &[spec(r#"{"database":"marketing","collections":["secret"]}"#)],
        )
        .unwrap();
        assert!(filter.matches(&Namespace::new("sales", "ACCOUNTS_eu")));
        assert!(!filter.matches(&Namespace::new("sales", "orders")));
        assert!(filter.matches(&Namespace::new("marketing", "leads")));
        assert!(!filter.matches(&Namespace::new("marketing", "secret")));
        assert!(!filter.matches(&Namespace::new("other", "x")));
        assert!(!filter.includes_whole_database("marketing"));
    }

    #[test]
    fn empty_filter_takes_everything_but_system_namespaces() {
        let filter = NamespaceFilter::default();
        assert!(filter.matches(&Namespace::new("app", "x")));
        assert!(!filter.matches(&Namespace::new("admin", "x")));
        assert!(!filter.matches(&Namespace::new("app", "system.views")));
        assert!(filter.includes_whole_database("app"));
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(matches!(
            NamespaceFilter::compile(&[spec(r#"{"collections":["a"]}"#)], &[]),
            Err(FilterError::DatabaseRequired { .. })
        ));
        assert!(matches!(
            NamespaceFilter::compile(
                &[spec(r#"{"databaseRegex":{"pattern":"(","options":""}}"#)],
                &[]
            ),
            Err(FilterError::InvalidRegex { .. })
        ));
        assert!(matches!(
            NamespaceFilter::compile(
                &[spec(r#"{"databaseRegex":{"pattern":"a","options":"q"}}"#)],
                &[]
            ),
            Err(FilterError::InvalidRegexOption { .. })
        ));
        assert!(serde_json::from_str::<FilterSpec>(r#"{"database":"a","bogus":1}"#).is_err());
    }
}
