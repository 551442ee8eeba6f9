//! Secondary indexes: stored specs, key extraction (compound, multikey, sparse,
//! partial) and uniqueness exactly as mongod enforces it (reference §5.3, §7.3 items 3-5).

use std::collections::BTreeSet;

use bson::{doc, Bson, Document};

use crate::bson_cmp::{Key, KeyTuple};
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::query::matcher::Matcher;

/// One field of an index key pattern.
#[derive(Debug, Clone)]
pub struct KeyField {
    pub path: String,
    /// 1 or -1 for ordinary fields; special kinds (text, hashed, 2dsphere…) are stored and
    /// listed but never used for ordering or uniqueness.
    pub direction: i32,
    pub special: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    /// The spec as listIndexes returns it.
    pub spec: Document,
    pub fields: Vec<KeyField>,
    pub unique: bool,
    pub prepare_unique: bool,
    pub sparse: bool,
    pub partial: Option<std::sync::Arc<Matcher>>,
    /// (key tuple, _id) for every indexed document.
    pub entries: BTreeSet<(KeyTuple, Key)>,
}

/// Option names createIndexes accepts (mongod's list, minus the deprecated ones).
const KNOWN_OPTIONS: &[&str] = &[
    "key",
    "name",
    "v",
    "unique",
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "hidden",
    "prepareUnique",
    "collation",
    "background",
    "storageEngine",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "wildcardProjection",
    "clustered",
    "ns",
];

impl Index {
    /// The `_id_` index every collection has.
    pub fn id_index() -> Index {
        Index {
            name: "_id_".into(),
            spec: doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            fields: vec![KeyField {
                path: "_id".into(),
                direction: 1,
                special: None,
            }],
            unique: true,
            prepare_unique: false,
            sparse: false,
            partial: None,
            entries: BTreeSet::new(),
        }
    }

    pub fn is_id(&self) -> bool {
        self.name == "_id_"
    }

    /// Validates a createIndexes entry and normalises it as mongod stores it.
    pub fn from_spec(raw: &Document) -> CmdResult<Index> {
        for key in raw.keys() {
            if !KNOWN_OPTIONS.contains(&key.as_str()) {
                return Err(CommandError::new(
                    ErrorCode::InvalidOptions,
                    format!("The field '{key}' is not valid for an index specification. Specification: {raw}"),
                ));
            }
        }
        let key = raw.get_document("key").map_err(|_| {
            CommandError::new(
                ErrorCode::Location(9),
                "The 'key' field is a required property of an index specification",
            )
        })?;
        if key.is_empty() {
            return Err(CommandError::new(
                ErrorCode::CannotCreateIndex,
                "Index keys cannot be empty.",
            ));
        }
        let name = match raw.get("name") {
            Some(Bson::String(name)) if !name.is_empty() => name.clone(),
            Some(_) => {
                return Err(CommandError::type_mismatch(
                    "The 'name' field must be a non-empty string",
                ))
            }
            None => {
                return Err(CommandError::new(
                    ErrorCode::Location(9),
                    "The 'name' field is a required property of an index specification",
                ))
            }
        };
        let fields = parse_key_pattern(key)?;
        if let Some(collation) = raw.get("collation") {
            if !is_simple_collation(collation) {
                return Err(CommandError::not_implemented(
                    "index collations other than simple",
                ));
            }
        }
        let flag = |name: &str| matches!(raw.get(name), Some(Bson::Boolean(true)));
        let unique = flag("unique");
        let prepare_unique = flag("prepareUnique");
        let sparse = flag("sparse");
        let hidden = flag("hidden");
        let is_id = name == "_id_";
        if is_id && hidden {
            return Err(CommandError::bad_value("can't hide _id index"));
        }
        if fields
            .iter()
            .any(|f| f.special.as_deref() == Some("hashed"))
            && unique
        {
            return Err(CommandError::new(
                ErrorCode::CannotCreateIndex,
                "Currently hashed indexes cannot guarantee uniqueness. Use a regular index.",
            ));
        }
        let partial = match raw.get("partialFilterExpression") {
            Some(Bson::Document(filter)) => Some(std::sync::Arc::new(Matcher::parse(filter)?)),
            Some(_) => {
                return Err(CommandError::type_mismatch(
                    "partialFilterExpression must be an object",
                ))
            }
            None => None,
        };
        if partial.is_some() && sparse {
            return Err(CommandError::new(
                ErrorCode::CannotCreateIndex,
                "cannot mix \"partialFilterExpression\" and \"sparse\" options",
            ));
        }
        if let Some(expire) = raw.get("expireAfterSeconds") {
            let valid = match expire {
                Bson::Int32(v) => *v >= 0,
                Bson::Int64(v) => *v >= 0 && *v <= i64::from(i32::MAX),
                Bson::Double(v) => *v >= 0.0 && v.fract() == 0.0,
                _ => false,
            };
            if !valid {
                return Err(CommandError::new(
                    ErrorCode::CannotCreateIndex,
                    format!("TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number: {expire}"),
                ));
            }
        }
        // Stored form: v, key, name first, then the options in the order given, with the
        // booleans that mongod only shows when true dropped when false.
        let mut spec = doc! {"v": 2, "key": key.clone(), "name": name.clone()};
        for (option, value) in raw {
            match option.as_str() {
                "key" | "name" | "v" | "ns" | "background" => {}
                "unique" | "sparse" | "hidden" | "prepareUnique" => {
                    if matches!(value, Bson::Boolean(true)) {
                        spec.insert(option.clone(), true);
                    }
                }
                "expireAfterSeconds" => {
                    spec.insert(option.clone(), normalise_int(value));
                }
                "collation" => {}
                _ => {
                    spec.insert(option.clone(), value.clone());
                }
            }
        }
        Ok(Index {
            name,
            spec,
            fields,
            unique: unique || is_id,
            prepare_unique,
            sparse,
            partial,
            entries: BTreeSet::new(),
        })
    }

    pub fn key_pattern(&self) -> Document {
        self.spec.get_document("key").cloned().unwrap_or_default()
    }

    pub fn hidden(&self) -> bool {
        matches!(self.spec.get("hidden"), Some(Bson::Boolean(true)))
    }

    pub fn is_special(&self) -> bool {
        self.fields.iter().any(|f| f.special.is_some())
    }

    /// Whether this index rejects a second document with an equal key.
    pub fn enforces_uniqueness(&self) -> bool {
        (self.unique || self.prepare_unique) && !self.is_special()
    }

    /// The keys `document` contributes, deduplicated (multikey indexes give one per element).
    pub fn keys_for(&self, document: &Document) -> CmdResult<Vec<KeyTuple>> {
        if self.is_special() {
            return Ok(Vec::new());
        }
        if let Some(filter) = &self.partial {
            if !filter.matches(document) {
                return Ok(Vec::new());
            }
        }
        let mut per_field: Vec<Vec<Bson>> = Vec::with_capacity(self.fields.len());
        let mut array_fields = 0;
        let mut any_present = false;
        for field in &self.fields {
            let (values, from_array, present) = key_values(document, &field.path);
            if from_array {
                array_fields += 1;
            }
            any_present |= present;
            per_field.push(values);
        }
        if self.sparse && !any_present {
            return Ok(Vec::new());
        }
        if array_fields > 1 {
            return Err(CommandError::from_code(
                171,
                format!("cannot index parallel arrays of index {}", self.name),
            ));
        }
        let mut tuples: Vec<Vec<Key>> = vec![Vec::new()];
        for values in per_field {
            let mut next = Vec::with_capacity(tuples.len() * values.len());
            for prefix in &tuples {
                for value in &values {
                    let mut tuple = prefix.clone();
                    tuple.push(Key(value.clone()));
                    next.push(tuple);
                }
            }
            tuples = next;
        }
        let unique: BTreeSet<KeyTuple> = tuples.into_iter().map(KeyTuple).collect();
        Ok(unique.into_iter().collect())
    }

    /// The mongod duplicate-key error for `key` on this index.
    pub fn duplicate_error(&self, ns: &str, key: &KeyTuple) -> CommandError {
        let mut key_value = Document::new();
        for (field, value) in self.fields.iter().zip(key.0.iter()) {
            key_value.insert(field.path.clone(), value.0.clone());
        }
        let shown: Vec<String> = self
            .fields
            .iter()
            .zip(key.0.iter())
            .map(|(field, value)| {
                format!("{}: {}", field.path, crate::shell::format_value(&value.0))
            })
            .collect();
        CommandError::new(
            ErrorCode::DuplicateKey,
            format!(
                "E11000 duplicate key error collection: {ns} index: {} dup key: {{ {} }}",
                self.name,
                shown.join(", ")
            ),
        )
        .with_extra(doc! {"keyPattern": self.key_pattern(), "keyValue": key_value})
    }
}

fn normalise_int(value: &Bson) -> Bson {
    match value {
        Bson::Double(v) if v.fract() == 0.0 && v.abs() < 2_147_483_648.0 => Bson::Int32(*v as i32),
        Bson::Int64(v) if i32::try_from(*v).is_ok() => Bson::Int32(*v as i32),
        other => other.clone(),
    }
}

pub fn is_simple_collation(collation: &Bson) -> bool {
    match collation {
        Bson::Document(spec) => {
            spec.len() == 1
                && matches!(spec.get("locale"), Some(Bson::String(locale)) if locale == "simple")
        }
        _ => false,
    }
}

/// Parses a key pattern: numbers give a direction, strings name a special index type.
pub fn parse_key_pattern(key: &Document) -> CmdResult<Vec<KeyField>> {
    let mut fields = Vec::with_capacity(key.len());
    for (path, value) in key {
        if path.is_empty() {
            return Err(CommandError::new(
                ErrorCode::CannotCreateIndex,
                "Index key contains an illegal field name: field name is empty",
            ));
        }
        let (direction, special) = match value {
            Bson::Int32(v) => (if *v < 0 { -1 } else { 1 }, None),
            Bson::Int64(v) => (if *v < 0 { -1 } else { 1 }, None),
            Bson::Double(v) if *v != 0.0 && !v.is_nan() => (if *v < 0.0 { -1 } else { 1 }, None),
            Bson::Decimal128(_) => (1, None),
            Bson::String(kind) => match kind.as_str() {
                "text" | "hashed" | "2dsphere" | "2d" | "geoHaystack" => (1, Some(kind.clone())),
                other => {
                    return Err(CommandError::new(
                        ErrorCode::CannotCreateIndex,
                        format!("Unknown index plugin '{other}'"),
                    ))
                }
            },
            other => {
                return Err(CommandError::new(
                    ErrorCode::CannotCreateIndex,
                    format!("Values in the index key pattern can only be numbers or strings: {path}: {other}"),
                ))
            }
        };
        let special = if path.contains("$**") {
            Some("wildcard".to_string())
        } else {
            special
        };
        fields.push(KeyField {
            path: path.clone(),
            direction,
            special,
        });
    }
    Ok(fields)
}

/// Values of `path` for indexing: missing → null; an array at the end of the path gives
/// one key per element (an empty array gives `undefined`), as mongod's key generator.
/// Returns (values, came from an array, the path was present).
fn key_values(document: &Document, path: &str) -> (Vec<Bson>, bool, bool) {
    let mut out = Vec::new();
    let mut from_array = false;
    collect(
        &Bson::Document(document.clone()),
        path,
        &mut out,
        &mut from_array,
    );
    let present = !out.is_empty();
    if out.is_empty() {
        out.push(Bson::Null);
    }
    let mut deduped: Vec<Bson> = Vec::with_capacity(out.len());
    for value in out {
        if !deduped
            .iter()
            .any(|seen| crate::bson_cmp::values_equal(seen, &value))
        {
            deduped.push(value);
        }
    }
    (deduped, from_array, present)
}

fn collect(value: &Bson, path: &str, out: &mut Vec<Bson>, from_array: &mut bool) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    match value {
        Bson::Document(document) => match document.get(head) {
            None => {}
            Some(child) => match rest {
                Some(rest) => collect(child, rest, out, from_array),
                None => push_leaf(child, out, from_array),
            },
        },
        Bson::Array(elements) => {
            // A numeric component indexes the array; otherwise traverse every element.
            if let Ok(position) = head.parse::<usize>() {
                if let Some(child) = elements.get(position) {
                    match rest {
                        Some(rest) => collect(child, rest, out, from_array),
                        None => push_leaf(child, out, from_array),
                    }
                    return;
                }
            }
            *from_array = true;
            for element in elements {
                if let Bson::Document(_) = element {
                    collect(element, path, out, from_array);
                }
            }
        }
        _ => {}
    }
}

fn push_leaf(value: &Bson, out: &mut Vec<Bson>, from_array: &mut bool) {
    match value {
        Bson::Array(elements) => {
            *from_array = true;
            if elements.is_empty() {
                out.push(Bson::Undefined);
            }
            out.extend(elements.iter().cloned());
        }
        other => out.push(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(spec: Document) -> Index {
        Index::from_spec(&spec).unwrap()
    }

    #[test]
    fn missing_fields_index_as_null_unless_sparse() {
        let plain = index(doc! {"key": {"a": 1}, "name": "a_1", "unique": true});
        assert_eq!(
            plain.keys_for(&doc! {"_id": 1}).unwrap(),
            vec![KeyTuple(vec![Key(Bson::Null)])]
        );
        let sparse = index(doc! {"key": {"a": 1}, "name": "a_1", "unique": true, "sparse": true});
        assert!(sparse.keys_for(&doc! {"_id": 1}).unwrap().is_empty());
        let compound_sparse = index(doc! {"key": {"a": 1, "b": 1}, "name": "ab", "sparse": true});
        assert_eq!(compound_sparse.keys_for(&doc! {"b": 2}).unwrap().len(), 1);
    }

    #[test]
    fn multikey_gives_one_key_per_distinct_element() {
        let idx = index(doc! {"key": {"a": 1}, "name": "a_1"});
        let keys = idx.keys_for(&doc! {"a": [1, 1.0, 2]}).unwrap();
        assert_eq!(keys.len(), 2);
        let nested = index(doc! {"key": {"a.b": 1}, "name": "ab"});
        assert_eq!(
            nested
                .keys_for(&doc! {"a": [{"b": 1}, {"b": 2}]})
                .unwrap()
                .len(),
            2
        );
        let empty = idx.keys_for(&doc! {"a": []}).unwrap();
        assert_eq!(empty, vec![KeyTuple(vec![Key(Bson::Undefined)])]);
    }

    #[test]
    fn parallel_arrays_are_refused() {
        let idx = index(doc! {"key": {"a": 1, "b": 1}, "name": "ab"});
        assert!(idx.keys_for(&doc! {"a": [1], "b": [2]}).is_err());
    }

    #[test]
    fn stored_spec_drops_false_flags_and_unknown_options_are_refused() {
        let idx = index(
            doc! {"key": {"a": 1}, "name": "a_1", "unique": false, "hidden": false, "expireAfterSeconds": 3600.0},
        );
        assert_eq!(
            idx.spec,
            doc! {"v": 2, "key": {"a": 1}, "name": "a_1", "expireAfterSeconds": 3600}
        );
        assert!(Index::from_spec(&doc! {"key": {"a": 1}, "name": "x", "bogus": 1}).is_err());
    }
}
