//! `--include` / `--exclude DB[.COLL]` into mongosync filter entries: one entry per
//! database, collections merged, and a bare `DB` meaning the whole database.

use c2c_api::v1::NamespaceFilter;

/// Splits at the first dot: database names cannot contain one, collection names can.
pub fn filters(namespaces: &[String]) -> Result<Vec<NamespaceFilter>, String> {
    let mut entries: Vec<(NamespaceFilter, bool)> = Vec::new();
    for namespace in namespaces {
        let (database, collection) = match namespace.split_once('.') {
            Some((database, collection)) => (database, Some(collection)),
            None => (namespace.as_str(), None),
        };
        if database.is_empty() || collection == Some("") {
            return Err(format!(
                "invalid namespace {namespace:?}: expected DB or DB.COLLECTION"
            ));
        }
        let index = match entries
            .iter()
            .position(|(entry, _)| entry.database == database)
        {
            Some(index) => index,
            None => {
                let entry = NamespaceFilter {
                    database: database.to_string(),
                    ..NamespaceFilter::default()
                };
                entries.push((entry, false));
                entries.len() - 1
            }
        };
        let (entry, whole_database) = &mut entries[index];
        match collection {
            None => *whole_database = true,
            Some(collection) if !entry.collections.iter().any(|c| c == collection) => {
                entry.collections.push(collection.to_string());
            }
            Some(_) => {}
        }
    }
    Ok(entries
        .into_iter()
        .map(|(mut entry, whole_database)| {
            // The whole database covers any collection also named for it.
            if whole_database {
                entry.collections.clear();
            }
            entry
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_collections_per_database() {
        let parsed = filters(&[
            "sales.orders".into(),
            "hr".into(),
            "sales.customers.eu".into(),
            "hr.people".into(),
        ])
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].database, "sales");
        assert_eq!(parsed[0].collections, ["orders", "customers.eu"]);
        assert_eq!(parsed[1].database, "hr");
        assert!(parsed[1].collections.is_empty());
        assert!(filters(&[".x".into()]).is_err());
        assert!(filters(&["db.".into()]).is_err());
    }
}
