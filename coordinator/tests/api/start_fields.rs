//! `/start` field rules: JSON shape, required fields, types, values, filters.
//! (Combinations and defaults: `start_combinations`.) Each checks the HTTP status,
//! mongosync's error shape, and that the error names the field.

use axum::http::StatusCode;
use c2c_coordinator::testing::DriverCall;
use c2c_engine::options::{BuildIndexes, StartRequest, SyncOptions};

use crate::common::{assert_error, assert_success, idle};

const BAD: StatusCode = StatusCode::BAD_REQUEST;

/// Sends `body` to a fresh IDLE API and expects a 400 with `name` and `fragments`.
pub(crate) async fn refused(body: &str, name: &str, fragments: &[&str]) {
    let api = idle().await;
    let response = api.post("/api/v1/start", body).await;
    assert_error(&response, BAD, name, fragments);
    assert!(
        !api.driver
            .calls()
            .iter()
            .any(|call| matches!(call, DriverCall::Start { .. })),
        "the engine must not be started for {body}"
    );
    assert_eq!(api.progress().await["state"], "IDLE");
}

/// Sends `body` and returns what the engine was started with.
pub(crate) async fn accepted(body: &str) -> (StartRequest, SyncOptions) {
    let api = idle().await;
    assert_success(&api.post("/api/v1/start", body).await);
    api.driver
        .calls()
        .into_iter()
        .find_map(|call| match call {
            DriverCall::Start { request, options } => Some((request, options)),
            _ => None,
        })
        .expect("driver.start called")
}

pub(crate) fn with(extra: &str) -> String {
    format!(r#"{{"source":"cluster0","destination":"cluster1",{extra}}}"#)
}

pub(crate) const FILTER: &str = r#""includeNamespaces":[{"database":"sales"}]"#;

#[tokio::test]
async fn body_must_be_a_json_object() {
    refused("", "InvalidRequest", &["empty"]).await;
    refused("not json", "InvalidRequest", &["not valid JSON"]).await;
    refused("[1,2]", "InvalidRequest", &["JSON object", "array"]).await;
    refused("\"cluster0\"", "InvalidRequest", &["JSON object", "string"]).await;
}

#[tokio::test]
async fn source_and_destination_are_required() {
    refused("{}", "InvalidRequest", &["'source' is required"]).await;
    refused(
        r#"{"source":"cluster0"}"#,
        "InvalidRequest",
        &["'destination' is required"],
    )
    .await;
    refused(
        r#"{"destination":"cluster1"}"#,
        "InvalidRequest",
        &["'source' is required"],
    )
    .await;
    refused(
        r#"{"source":null,"destination":"cluster1"}"#,
        "InvalidRequest",
        &["'source' is required"],
    )
    .await;
}

#[tokio::test]
async fn cluster_names_are_checked() {
    refused(
        r#"{"source":"cluster2","destination":"cluster1"}"#,
        "InvalidRequest",
        &["'source'", "\"cluster2\""],
    )
    .await;
    refused(
        r#"{"source":"cluster0","destination":"Cluster1"}"#,
        "InvalidRequest",
        &["'destination'", "\"Cluster1\""],
    )
    .await;
    refused(
        r#"{"source":0,"destination":"cluster1"}"#,
        "InvalidRequest",
        &["'source' must be a string", "got number"],
    )
    .await;
    refused(
        r#"{"source":"cluster0","destination":["cluster1"]}"#,
        "InvalidRequest",
        &["'destination' must be a string", "got array"],
    )
    .await;
}

#[tokio::test]
async fn source_must_differ_from_destination() {
    refused(
        r#"{"source":"cluster1","destination":"cluster1"}"#,
        "InvalidRequest",
        &["different clusters", "cluster1"],
    )
    .await;
}

#[tokio::test]
async fn unknown_fields_are_named() {
    refused(
        &with(r#""bogus":1"#),
        "InvalidRequest",
        &["unknown field", "'bogus'"],
    )
    .await;
    refused(
        &with(r#""Source":"cluster0""#),
        "InvalidRequest",
        &["'Source'"],
    )
    .await;
}

#[tokio::test]
async fn unsupported_mongosync_options_are_named() {
    refused(
        &with(r#""sharding":{"shardingEntries":[]}"#),
        "UnsupportedOption",
        &["'sharding'", "not supported by c2c yet", "sharded"],
    )
    .await;
    refused(
        &with(r#""copyInNaturalOrder":[]"#),
        "UnsupportedOption",
        &["'copyInNaturalOrder'", "not supported by c2c yet"],
    )
    .await;
    refused(
        &with(r#""namespaceRemap":[]"#),
        "UnsupportedOption",
        &["'namespaceRemap'", "not supported by c2c yet"],
    )
    .await;
    refused(
        &with(r#""documentFilter":{}"#),
        "UnsupportedOption",
        &["'documentFilter'", "not supported by c2c yet"],
    )
    .await;
    refused(
        &with(r#""destinationDataHandling":"requireEmptyDestination""#),
        "UnsupportedOption",
        &["'destinationDataHandling'"],
    )
    .await;
    refused(
        &with(r#""skipDiskSpaceCheck":true"#),
        "UnsupportedOption",
        &["'skipDiskSpaceCheck'"],
    )
    .await;
}

#[tokio::test]
async fn namespace_filters_must_be_arrays_of_filter_documents() {
    refused(
        &with(r#""includeNamespaces":{"database":"a"}"#),
        "InvalidRequest",
        &["'includeNamespaces' must be an array", "got object"],
    )
    .await;
    refused(
        &with(r#""excludeNamespaces":"a""#),
        "InvalidRequest",
        &["'excludeNamespaces' must be an array", "got string"],
    )
    .await;
    refused(
        &with(r#""includeNamespaces":["sales"]"#),
        "InvalidNamespaceFilter",
        &["includeNamespaces[0]", "got string"],
    )
    .await;
    refused(
        &with(r#""includeNamespaces":[{"database":"a","colections":["x"]}]"#),
        "InvalidNamespaceFilter",
        &["includeNamespaces[0]", "colections"],
    )
    .await;
    refused(
        &with(r#""excludeNamespaces":[{"database":"a"},{"database":7}]"#),
        "InvalidNamespaceFilter",
        &["excludeNamespaces[1]"],
    )
    .await;
}

#[tokio::test]
async fn namespace_filter_entries_must_compile() {
    refused(
        &with(r#""includeNamespaces":[{"collections":["x"]}]"#),
        "InvalidNamespaceFilter",
        &["includeNamespaces", "'database'"],
    )
    .await;
    refused(
        &with(r#""includeNamespaces":[{"database":"a","databaseRegex":{"pattern":"a"}}]"#),
        "InvalidNamespaceFilter",
        &["exactly one of 'database' and 'databaseRegex'"],
    )
    .await;
    refused(
        &with(r#""excludeNamespaces":[{"databaseRegex":{"pattern":"(","options":""}}]"#),
        "InvalidNamespaceFilter",
        &["excludeNamespaces", "invalid regex"],
    )
    .await;
    refused(
        &with(r#""includeNamespaces":[{"database":"a","collectionsRegex":{"pattern":"x","options":"q"}}]"#),
        "InvalidNamespaceFilter",
        &["regex option 'q'"],
    )
    .await;
    refused(
        &with(r#""includeNamespaces":[{"database":"a.b"}]"#),
        "InvalidNamespaceFilter",
        &["invalid database name"],
    )
    .await;
    // A regex given as a plain string: the answer shows the form mongosync takes.
    refused(
        &with(r#""includeNamespaces":[{"database":"a","collectionsRegex":"^acc"}]"#),
        "InvalidNamespaceFilter",
        &["includeNamespaces[0]", r#"{"pattern": "<regex>""#],
    )
    .await;
    refused(
        &with(r#""excludeNamespaces":["sales"]"#),
        "InvalidNamespaceFilter",
        &["excludeNamespaces[0]", r#"{"database": "sales""#],
    )
    .await;
}

#[tokio::test]
async fn build_indexes_values() {
    refused(
        &with(r#""buildIndexes":"sometimes""#),
        "InvalidRequest",
        &["'buildIndexes'", "\"sometimes\"", "afterDataCopy"],
    )
    .await;
    refused(
        &with(r#""buildIndexes":true"#),
        "InvalidRequest",
        &["'buildIndexes' must be a string", "got boolean"],
    )
    .await;
    for (value, expected) in [
        ("afterDataCopy", BuildIndexes::AfterDataCopy),
        ("beforeDataCopy", BuildIndexes::BeforeDataCopy),
        ("excludeHashed", BuildIndexes::ExcludeHashed),
        (
            "excludeHashedAfterCopy",
            BuildIndexes::ExcludeHashedAfterCopy,
        ),
        ("never", BuildIndexes::Never),
    ] {
        let (request, options) = accepted(&with(&format!(r#""buildIndexes":"{value}""#))).await;
        assert_eq!(request.build_indexes, expected);
        assert_eq!(options.build_indexes, expected);
    }
}

#[tokio::test]
async fn boolean_fields_are_type_checked() {
    refused(
        &with(r#""reversible":"yes""#),
        "InvalidRequest",
        &["'reversible' must be a boolean", "got string"],
    )
    .await;
    refused(
        &with(r#""detectRandomId":1"#),
        "InvalidRequest",
        &["'detectRandomId' must be a boolean", "got number"],
    )
    .await;
    refused(
        &with(r#""preExistingDestinationData":"true""#),
        "InvalidRequest",
        &["'preExistingDestinationData' must be a boolean"],
    )
    .await;
}
