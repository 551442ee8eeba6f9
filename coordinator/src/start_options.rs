//! Validation of mongosync's `/start` body (spec §3.1) into the engine's canonical
//! `StartRequest` (persisted, compared after a restart) and `SyncOptions`.
//!
//! The body is walked by hand rather than through serde so every error names the field
//! and the expected type in words a curl user understands.

use c2c_engine::filter::{FilterSpec, NamespaceFilter};
use c2c_engine::options::{BuildIndexes, LoadLevel, StartRequest, SyncOptions, WriteBlocking};
use serde_json::{Map, Value};

/// Fields c2c accepts.
const KNOWN_FIELDS: &[&str] = &[
    "source",
    "destination",
    "includeNamespaces",
    "excludeNamespaces",
    "buildIndexes",
    "reversible",
    "enableUserWriteBlocking",
    "verification",
    "detectRandomId",
    "preExistingDestinationData",
];

/// mongosync fields whose feature c2c does not have yet, with why.
const UNSUPPORTED_FIELDS: &[(&str, &str)] = &[
    ("sharding", "it configures replica set → sharded cluster migrations, and c2c syncs replica set → replica set only"),
    ("copyInNaturalOrder", "c2c copies every collection in _id order"),
    ("namespaceRemap", "c2c writes every namespace under its source name"),
    ("documentFilter", "c2c copies whole collections"),
    ("destinationDataHandling", "use preExistingDestinationData with a namespace filter instead"),
    ("skipDiskSpaceCheck", "c2c does not run a destination disk-space check, so there is nothing to skip"),
];

const CLUSTER_NAMES: &[&str] = &["cluster0", "cluster1"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// Missing, mistyped, unknown or contradictory fields.
    #[error("{0}")]
    InvalidRequest(String),
    /// `includeNamespaces` / `excludeNamespaces` do not compile.
    #[error("{0}")]
    InvalidNamespaceFilter(String),
    /// A mongosync option whose feature c2c does not have yet.
    #[error("{0}")]
    UnsupportedOption(String),
}

fn invalid(message: impl Into<String>) -> StartError {
    StartError::InvalidRequest(message.into())
}

/// A validated `/start`: what is persisted and what the engine runs with.
#[derive(Debug, Clone)]
pub struct ValidatedStart {
    pub request: StartRequest,
    pub options: SyncOptions,
}

/// Validates a `/start` body. `configured_load_level` is `--loadLevel` when the user set
/// it; otherwise the default depends on `preExistingDestinationData` (3, or 2 with it).
pub fn validate_start(
    body: &Map<String, Value>,
    configured_load_level: Option<LoadLevel>,
) -> Result<ValidatedStart, StartError> {
    reject_unknown_fields(body)?;

    let source = cluster_name(body, "source")?;
    let destination = cluster_name(body, "destination")?;
    if source == destination {
        return Err(invalid(format!(
            "'source' and 'destination' must name different clusters, but both are \"{source}\""
        )));
    }

    let include_namespaces = filter_specs(body, "includeNamespaces")?;
    let exclude_namespaces = filter_specs(body, "excludeNamespaces")?;
    // Compiled here to refuse a bad filter before anything else; the engine compiles
    // the same specs again from the request.
    NamespaceFilter::compile(&include_namespaces, &exclude_namespaces)
        .map_err(|error| StartError::InvalidNamespaceFilter(error.to_string()))?;
    let filtered = !include_namespaces.is_empty() || !exclude_namespaces.is_empty();

    let build_indexes = build_indexes(body)?;
    let reversible = optional_bool(body, "reversible")?.unwrap_or(false);
    let pre_existing_destination_data =
        optional_bool(body, "preExistingDestinationData")?.unwrap_or(false);
    let detect_random_id = optional_bool(body, "detectRandomId")?.unwrap_or(true);
    let verification_enabled = verification(body)?;
    let write_blocking = write_blocking(body, reversible, pre_existing_destination_data, filtered)?;

    if reversible && pre_existing_destination_data {
        return Err(invalid(
            "'reversible': true cannot be combined with 'preExistingDestinationData': true",
        ));
    }
    if reversible && filtered {
        return Err(invalid("'reversible': true cannot be combined with includeNamespaces/excludeNamespaces: a filtered sync cannot be reversed"));
    }
    if reversible && build_indexes == BuildIndexes::Never {
        return Err(invalid("'reversible': true cannot be combined with 'buildIndexes': \"never\": reversing needs the indexes on the destination"));
    }
    if pre_existing_destination_data && !filtered {
        return Err(invalid(
            "'preExistingDestinationData': true requires a namespace filter (includeNamespaces and/or excludeNamespaces) naming what c2c may write",
        ));
    }

    let request = StartRequest {
        source: source.to_string(),
        destination: destination.to_string(),
        include_namespaces,
        exclude_namespaces,
        build_indexes,
        reversible,
        enable_user_write_blocking: write_blocking,
        verification_enabled,
        detect_random_id,
        pre_existing_destination_data,
    };
    let options = options_from_request(&request, configured_load_level)?;
    Ok(ValidatedStart { request, options })
}

/// The engine's options for a request persisted by a previous process, which continues
/// a cutover step after a restart without a new `/start`. Built by the same rules as
/// `validate_start`, so a continued migration runs exactly as the original `/start` did.
pub fn options_from_request(
    request: &StartRequest,
    configured_load_level: Option<LoadLevel>,
) -> Result<SyncOptions, StartError> {
    SyncOptions::from_request(request, configured_load_level)
        .map_err(|error| StartError::InvalidNamespaceFilter(error.to_string()))
}

fn reject_unknown_fields(body: &Map<String, Value>) -> Result<(), StartError> {
    for (field, why) in UNSUPPORTED_FIELDS {
        if body.contains_key(*field) {
            return Err(StartError::UnsupportedOption(format!(
                "'{field}' is not supported by c2c yet: {why}"
            )));
        }
    }
    let unknown: Vec<String> = body
        .keys()
        .filter(|key| !KNOWN_FIELDS.contains(&key.as_str()))
        .map(|key| format!("'{key}'"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!(
            "unknown field(s) {}; /start accepts {}",
            unknown.join(", "),
            KNOWN_FIELDS.join(", ")
        )))
    }
}

/// The JSON type of `value`, as error messages name it.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(field: &str, expected: &str, value: &Value) -> StartError {
    invalid(format!(
        "'{field}' must be {expected}, got {}",
        json_type(value)
    ))
}

/// An optional field; `null` counts as absent, as in mongosync's Go decoder.
fn optional<'a>(body: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    body.get(field).filter(|value| !value.is_null())
}

fn cluster_name<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, StartError> {
    let value = optional(body, field).ok_or_else(|| {
        invalid(format!(
            "'{field}' is required: \"cluster0\" or \"cluster1\""
        ))
    })?;
    let name = value
        .as_str()
        .ok_or_else(|| wrong_type(field, "a string (\"cluster0\" or \"cluster1\")", value))?;
    if CLUSTER_NAMES.contains(&name) {
        Ok(name)
    } else {
        Err(invalid(format!(
            "'{field}' must be \"cluster0\" or \"cluster1\", got {name:?}"
        )))
    }
}

fn optional_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, StartError> {
    optional(body, field)
        .map(|value| {
            value
                .as_bool()
                .ok_or_else(|| wrong_type(field, "a boolean", value))
        })
        .transpose()
}

fn filter_specs(body: &Map<String, Value>, field: &str) -> Result<Vec<FilterSpec>, StartError> {
    let Some(value) = optional(body, field) else {
        return Ok(Vec::new());
    };
    let entries = value
        .as_array()
        .ok_or_else(|| wrong_type(field, "an array of filter documents", value))?;
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            if !entry.is_object() {
                return Err(StartError::InvalidNamespaceFilter(format!(
                    "{field}[{index}] must be a filter document like {{\"database\": \"sales\"}}, got {}",
                    json_type(entry)
                )));
            }
            serde_json::from_value(entry.clone()).map_err(|error| StartError::InvalidNamespaceFilter(format!("{field}[{index}]: {error}")))
        })
        .collect()
}

fn build_indexes(body: &Map<String, Value>) -> Result<BuildIndexes, StartError> {
    const VALUES: &str = "\"afterDataCopy\", \"beforeDataCopy\", \"excludeHashed\", \"excludeHashedAfterCopy\" or \"never\"";
    let Some(value) = optional(body, "buildIndexes") else {
        // mongosync's default for 6.0+ sources, the only ones c2c supports.
        return Ok(BuildIndexes::AfterDataCopy);
    };
    match value.as_str() {
        Some("afterDataCopy") => Ok(BuildIndexes::AfterDataCopy),
        Some("beforeDataCopy") => Ok(BuildIndexes::BeforeDataCopy),
        Some("excludeHashed") => Ok(BuildIndexes::ExcludeHashed),
        Some("excludeHashedAfterCopy") => Ok(BuildIndexes::ExcludeHashedAfterCopy),
        Some("never") => Ok(BuildIndexes::Never),
        Some(other) => Err(invalid(format!(
            "'buildIndexes' must be one of {VALUES}, got {other:?}"
        ))),
        None => Err(wrong_type(
            "buildIndexes",
            &format!("a string ({VALUES})"),
            value,
        )),
    }
}

/// `verification.enabled`: on unless turned off, as mongosync 1.9+.
fn verification(body: &Map<String, Value>) -> Result<bool, StartError> {
    let Some(value) = optional(body, "verification") else {
        return Ok(true);
    };
    let object = value
        .as_object()
        .ok_or_else(|| wrong_type("verification", "an object like {\"enabled\": false}", value))?;
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "enabled") {
        return Err(invalid(format!(
            "unknown field 'verification.{unknown}'; 'verification' accepts only 'enabled'"
        )));
    }
    match optional(object, "enabled") {
        Some(value) => value
            .as_bool()
            .ok_or_else(|| wrong_type("verification.enabled", "a boolean", value)),
        None => Ok(true),
    }
}

fn write_blocking(
    body: &Map<String, Value>,
    reversible: bool,
    pre_existing: bool,
    filtered: bool,
) -> Result<WriteBlocking, StartError> {
    const FIELD: &str = "enableUserWriteBlocking";
    let explicit = match optional(body, FIELD) {
        None => None,
        Some(Value::Bool(true)) => Some(WriteBlocking::SourceAndDestination),
        Some(Value::Bool(false)) => Some(WriteBlocking::None),
        Some(Value::String(text)) => Some(match text.as_str() {
            "sourceAndDestination" => WriteBlocking::SourceAndDestination,
            "destinationOnly" => WriteBlocking::DestinationOnly,
            "none" => WriteBlocking::None,
            other => {
                return Err(invalid(format!(
                    "'{FIELD}' must be \"sourceAndDestination\", \"destinationOnly\", \"none\", true or false, got {other:?}"
                )))
            }
        }),
        Some(value) => return Err(wrong_type(FIELD, "a boolean or one of \"sourceAndDestination\", \"destinationOnly\", \"none\"", value)),
    };
    if explicit == Some(WriteBlocking::SourceAndDestination) && filtered {
        return Err(invalid(format!(
            "'{FIELD}': \"sourceAndDestination\" cannot be combined with includeNamespaces/excludeNamespaces: a filtered sync blocks the destination only"
        )));
    }
    if reversible
        && explicit.is_some_and(|blocking| blocking != WriteBlocking::SourceAndDestination)
    {
        return Err(invalid(format!("'reversible': true requires '{FIELD}': \"sourceAndDestination\" (or leave '{FIELD}' out)")));
    }
    if pre_existing && explicit.is_some_and(|blocking| blocking != WriteBlocking::None) {
        return Err(invalid(format!(
            "'preExistingDestinationData': true means c2c blocks writes on neither cluster; remove '{FIELD}' or set it to \"none\""
        )));
    }
    // mongosync 1.20+ picks blocking from the rest of the configuration: a reversible
    // migration blocks the source at commit, a shared destination is never blocked.
    Ok(explicit.unwrap_or(if reversible {
        WriteBlocking::SourceAndDestination
    } else if pre_existing {
        WriteBlocking::None
    } else {
        WriteBlocking::DestinationOnly
    }))
}

#[cfg(test)]
#[path = "start_options_tests.rs"]
mod tests;
