//! collMod (reference §3.1): index `hidden`, `expireAfterSeconds`, `prepareUnique`,
//! the `unique` conversion with `dryRun` and `CannotConvertIndexToUnique` violations,
//! `forceNonUnique` (6.0+: a unique index back to non-unique),
//! and the collection options a tool may change. Emits the `modify` event.

use bson::{doc, Bson, Document};

use crate::commands::authz::check_writes_allowed;
use crate::commands::{check_fields, collection_arg, GENERIC_ARGS};
use crate::conn::ConnCtx;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::oplog::Op;
use crate::server::Server;

const FIELDS: &[&str] = &[
    "index",
    "dryRun",
    "validator",
    "validationLevel",
    "validationAction",
    "changeStreamPreAndPostImages",
    "expireAfterSeconds",
    "viewOn",
    "pipeline",
    "timeseries",
    "collectionUUID",
    "cappedSize",
    "cappedMax",
];

/// What an `index` sub-document asks for.
#[derive(Default)]
struct IndexChange {
    hidden: Option<bool>,
    expire: Option<i64>,
    prepare_unique: Option<bool>,
    unique: Option<bool>,
    force_non_unique: bool,
}

fn bool_field(spec: &Document, name: &str) -> CmdResult<Option<bool>> {
    match spec.get(name) {
        None => Ok(None),
        Some(Bson::Boolean(value)) => Ok(Some(*value)),
        Some(_) => Err(CommandError::type_mismatch(format!(
            "BSON field 'collMod.index.{name}' is the wrong type, expected type 'bool'"
        ))),
    }
}

fn parse_index_change(spec: &Document) -> CmdResult<IndexChange> {
    for key in spec.keys() {
        if !matches!(
            key.as_str(),
            "name"
                | "keyPattern"
                | "hidden"
                | "expireAfterSeconds"
                | "prepareUnique"
                | "unique"
                | "forceNonUnique"
        ) {
            return Err(CommandError::new(
                ErrorCode::IdlUnknownField,
                format!("BSON field 'collMod.index.{key}' is an unknown field."),
            ));
        }
    }
    let force_non_unique = match bool_field(spec, "forceNonUnique")? {
        Some(false) => {
            return Err(CommandError::bad_value(
                "collMod forceNonUnique can only be true",
            ))
        }
        Some(true) => true,
        None => false,
    };
    let change = IndexChange {
        hidden: bool_field(spec, "hidden")?,
        expire: match spec.get("expireAfterSeconds") {
            None => None,
            Some(value) => Some(crate::commands::as_count("expireAfterSeconds", value)? as i64),
        },
        prepare_unique: bool_field(spec, "prepareUnique")?,
        unique: bool_field(spec, "unique")?,
        force_non_unique,
    };
    if change.force_non_unique && (change.unique.is_some() || change.prepare_unique.is_some()) {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "collMod forceNonUnique cannot be combined with unique or prepareUnique",
        ));
    }
    if change.hidden.is_none()
        && change.expire.is_none()
        && change.prepare_unique.is_none()
        && change.unique.is_none()
        && !change.force_non_unique
    {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "no expireAfterSeconds, hidden, prepareUnique, unique or forceNonUnique field",
        ));
    }
    if change.unique == Some(false) {
        return Err(CommandError::bad_value("Cannot make index non-unique"));
    }
    let others = change.hidden.is_some() || change.expire.is_some() || change.unique.is_some();
    if change.prepare_unique.is_some() && others {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "prepareUnique cannot be combined with other modifications",
        ));
    }
    Ok(change)
}

pub fn run(server: &Server, ctx: &ConnCtx, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields("collMod", body, FIELDS)?;
    let coll = collection_arg("collMod", body)?;
    for refused in [
        "viewOn",
        "pipeline",
        "timeseries",
        "cappedSize",
        "cappedMax",
        "expireAfterSeconds",
    ] {
        if body.contains_key(refused) {
            return Err(CommandError::not_implemented(format!(
                "collMod option '{refused}'"
            )));
        }
    }
    let dry_run = matches!(body.get("dryRun"), Some(Bson::Boolean(true)));
    let index_change = match body.get("index") {
        Some(Bson::Document(spec)) => Some((spec.clone(), parse_index_change(spec)?)),
        Some(_) => {
            return Err(CommandError::type_mismatch(
                "BSON field 'collMod.index' is the wrong type, expected type 'object'",
            ))
        }
        None => None,
    };
    let collection_changes: Vec<(String, Bson)> = body
        .iter()
        .skip(1)
        .filter(|(key, _)| {
            !GENERIC_ARGS.contains(&key.as_str())
                && !matches!(key.as_str(), "index" | "dryRun" | "collectionUUID")
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if dry_run {
        let only_unique = matches!(&index_change, Some((_, change)) if change.unique == Some(true) && change.hidden.is_none() && change.expire.is_none())
            && collection_changes.is_empty();
        if !only_unique {
            return Err(CommandError::new(
                ErrorCode::InvalidOptions,
                "dryRun requires exactly one index modification: unique: true",
            ));
        }
    }
    if !dry_run {
        check_writes_allowed(server, ctx, db)?;
    }
    let ns = format!("{db}.{coll}");
    let mut store = server.store.write();
    let collection = store.catalog.collection(db, &coll).ok_or_else(|| {
        CommandError::new(
            ErrorCode::NamespaceNotFound,
            format!("ns does not exist: {ns}"),
        )
    })?;
    let options_before = collection.options.clone();
    let mut reply = Document::new();
    let mut index_options_before = Document::new();
    let mut new_options = options_before.clone();
    for (key, value) in &collection_changes {
        if key == "validator" && !matches!(value, Bson::Document(_)) {
            return Err(CommandError::type_mismatch("'validator' must be an object"));
        }
        new_options.insert(key.clone(), value.clone());
    }
    let mut index_update: Option<(usize, Document, bool, bool)> = None;
    if let Some((spec, change)) = &index_change {
        let position = find_index(collection, spec, &ns)?;
        let index = &collection.indexes[position];
        let mut new_spec = index.spec.clone();
        let (mut unique, mut prepare_unique) = (index.unique, index.prepare_unique);
        if let Some(hidden) = change.hidden {
            if index.is_id() {
                return Err(CommandError::bad_value("can't hide _id index"));
            }
            let old = index.hidden();
            index_options_before.insert("hidden", old);
            if old != hidden {
                reply.insert("hidden_old", old);
                reply.insert("hidden_new", hidden);
                if hidden {
                    new_spec.insert("hidden", true);
                } else {
                    new_spec.remove("hidden");
                }
            }
        }
        if let Some(expire) = change.expire {
            let old = match new_spec.get("expireAfterSeconds") {
                Some(Bson::Int32(v)) => Some(i64::from(*v)),
                Some(Bson::Int64(v)) => Some(*v),
                Some(Bson::Double(v)) => Some(*v as i64),
                _ => None,
            };
            if old.is_none() && index.fields.len() != 1 {
                return Err(CommandError::new(
                    ErrorCode::InvalidOptions,
                    "no expireAfterSeconds field to update",
                ));
            }
            if let Some(old) = old {
                index_options_before.insert("expireAfterSeconds", old);
            }
            if old != Some(expire) {
                if let Some(old) = old {
                    reply.insert("expireAfterSeconds_old", old);
                }
                reply.insert("expireAfterSeconds_new", expire);
                new_spec.insert("expireAfterSeconds", expire);
            }
        }
        if let Some(wanted) = change.prepare_unique {
            index_options_before.insert("prepareUnique", prepare_unique);
            if wanted != prepare_unique && !unique {
                reply.insert("prepareUnique_old", prepare_unique);
                reply.insert("prepareUnique_new", wanted);
                prepare_unique = wanted;
                if wanted {
                    new_spec.insert("prepareUnique", true);
                } else {
                    new_spec.remove("prepareUnique");
                }
            }
        }
        if change.force_non_unique {
            if index.is_id() {
                return Err(CommandError::bad_value(
                    "The _id index cannot be made non-unique",
                ));
            }
            if unique {
                unique = false;
                prepare_unique = false;
                new_spec.remove("unique");
                new_spec.remove("prepareUnique");
                reply.insert("unique_old", true);
                reply.insert("unique_new", false);
            }
        }
        if change.unique == Some(true) && !unique {
            if !prepare_unique {
                return Err(CommandError::new(
                    ErrorCode::InvalidOptions,
                    "Cannot make index unique with 'prepareUnique=false'. Run collMod to set it first.",
                ));
            }
            let groups = collection.duplicate_groups(position);
            if !groups.is_empty() {
                let violations: Vec<Bson> = groups
                    .into_iter()
                    .map(|ids| Bson::Document(doc! {"ids": ids}))
                    .collect();
                return Err(CommandError::new(
                    ErrorCode::CannotConvertIndexToUnique,
                    "Cannot convert the index to unique. Please resolve conflicting documents before running collMod again.",
                )
                .with_extra(doc! {"violations": violations}));
            }
            if dry_run {
                return Ok(Document::new());
            }
            unique = true;
            prepare_unique = false;
            new_spec.remove("prepareUnique");
            new_spec.insert("unique", true);
            reply.insert("unique_new", true);
        }
        index_update = Some((position, new_spec, unique, prepare_unique));
    }
    if dry_run {
        return Ok(reply);
    }
    let mut description = Document::new();
    for (key, value) in body.iter().skip(1) {
        if !GENERIC_ARGS.contains(&key.as_str()) && key != "collectionUUID" && key != "dryRun" {
            description.insert(key.clone(), value.clone());
        }
    }
    let mut state_before = doc! {"collectionOptions": options_before};
    if index_change.is_some() {
        state_before.insert("indexOptions", index_options_before);
    }
    if let Some(collection) = store.catalog.collection_mut(db, &coll) {
        collection.options = new_options;
        if let Some((position, spec, unique, prepare_unique)) = index_update {
            let index = &mut collection.indexes[position];
            index.spec = spec;
            index.unique = unique;
            index.prepare_unique = prepare_unique;
        }
    }
    let ts = store.tick();
    store.log(
        ts,
        db,
        Some(&coll),
        Op::Modify {
            description,
            state_before,
        },
    );
    server.notify_oplog(&store);
    Ok(reply)
}

fn find_index(
    collection: &crate::catalog::Collection,
    spec: &Document,
    ns: &str,
) -> CmdResult<usize> {
    match (spec.get("name"), spec.get("keyPattern")) {
        (Some(_), Some(_)) => Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "Cannot specify both key pattern and name.",
        )),
        (Some(Bson::String(name)), None) => collection.find_index(name).ok_or_else(|| {
            CommandError::new(
                ErrorCode::IndexNotFound,
                format!("cannot find index {name} for ns {ns}"),
            )
        }),
        (None, Some(Bson::Document(pattern))) => {
            let matching: Vec<usize> = collection
                .indexes
                .iter()
                .enumerate()
                .filter(|(_, index)| index.key_pattern() == *pattern)
                .map(|(position, _)| position)
                .collect();
            match matching.as_slice() {
                [] => Err(CommandError::new(
                    ErrorCode::IndexNotFound,
                    format!("cannot find index {pattern} for ns {ns}"),
                )),
                [position] => Ok(*position),
                _ => Err(CommandError::new(
                    ErrorCode::AmbiguousIndexKeyPattern,
                    format!("index keyPattern {pattern} matches more than one index"),
                )),
            }
        }
        _ => Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "must specify either index name or key pattern",
        )),
    }
}
