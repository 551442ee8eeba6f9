//! Namespaces (`db.coll`) and the ones c2c never syncs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// c2c's metadata database on the destination; never synced, never shown to users.
pub const METADATA_DB: &str = "__c2c_internal";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Namespace {
    pub db: String,
    pub coll: String,
}

impl Namespace {
    pub fn new(db: impl Into<String>, coll: impl Into<String>) -> Namespace {
        Namespace {
            db: db.into(),
            coll: coll.into(),
        }
    }

    /// Parses `db.coll` (the collection part may itself contain dots).
    pub fn parse(text: &str) -> Option<Namespace> {
        let (db, coll) = text.split_once('.')?;
        if db.is_empty() || coll.is_empty() {
            return None;
        }
        Some(Namespace::new(db, coll))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.coll)
    }
}

/// Databases that are never synced: the server's own and c2c's metadata. mongosync
/// also ignores `__mdb_internal*` (Atlas-internal) databases.
pub fn is_excluded_database(db: &str) -> bool {
    matches!(db, "admin" | "local" | "config")
        || db == METADATA_DB
        || db.starts_with("__mdb_internal")
}

/// Collections that are never synced: `system.*` (views are synced through their
/// definitions, not through `system.views`).
pub fn is_excluded_collection(coll: &str) -> bool {
    coll.starts_with("system.")
}

pub fn is_excluded(ns: &Namespace) -> bool {
    is_excluded_database(&ns.db) || is_excluded_collection(&ns.coll)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_namespaces_are_excluded() {
        assert!(is_excluded(&Namespace::new("admin", "x")));
        assert!(is_excluded(&Namespace::new("app", "system.views")));
        assert!(is_excluded(&Namespace::new(METADATA_DB, "partitions")));
        assert!(!is_excluded(&Namespace::new("app", "orders")));
        assert_eq!(Namespace::parse("a.b.c"), Some(Namespace::new("a", "b.c")));
        assert_eq!(Namespace::parse("nodot"), None);
    }
}
