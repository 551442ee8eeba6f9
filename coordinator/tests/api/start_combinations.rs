//! `/start` option combinations, defaults and the canonical request the engine gets.

use c2c_engine::options::{BuildIndexes, StartRequest, WriteBlocking};

use crate::common::{assert_success, idle, MINIMAL_START};
use crate::start_fields::{accepted, refused, with, FILTER};

#[tokio::test]
async fn reversible_combinations() {
    refused(
        &with(&format!(r#""reversible":true,{FILTER}"#)),
        "InvalidRequest",
        &["'reversible'", "filtered"],
    )
    .await;
    refused(
        &with(r#""reversible":true,"buildIndexes":"never""#),
        "InvalidRequest",
        &["'reversible'", "\"never\""],
    )
    .await;
    refused(
        &with(&format!(
            r#""reversible":true,"preExistingDestinationData":true,{FILTER}"#
        )),
        "InvalidRequest",
        &["'reversible'", "'preExistingDestinationData'"],
    )
    .await;
    refused(
        &with(r#""reversible":true,"enableUserWriteBlocking":"destinationOnly""#),
        "InvalidRequest",
        &["'reversible'", "sourceAndDestination"],
    )
    .await;
    let (request, options) = accepted(&with(r#""reversible":true"#)).await;
    assert!(request.reversible && options.reversible);
    assert_eq!(
        request.enable_user_write_blocking,
        WriteBlocking::SourceAndDestination
    );
}

#[tokio::test]
async fn write_blocking_values() {
    refused(
        &with(r#""enableUserWriteBlocking":"always""#),
        "InvalidRequest",
        &["'enableUserWriteBlocking'", "\"always\""],
    )
    .await;
    refused(
        &with(r#""enableUserWriteBlocking":1"#),
        "InvalidRequest",
        &[
            "'enableUserWriteBlocking' must be a boolean or one of",
            "got number",
        ],
    )
    .await;
    refused(
        &with(&format!(
            r#""enableUserWriteBlocking":"sourceAndDestination",{FILTER}"#
        )),
        "InvalidRequest",
        &[
            "'enableUserWriteBlocking'",
            "sourceAndDestination",
            "filtered",
        ],
    )
    .await;
    refused(
        &with(&format!(r#""enableUserWriteBlocking":true,{FILTER}"#)),
        "InvalidRequest",
        &["'enableUserWriteBlocking'"],
    )
    .await;
    refused(
        &with(&format!(r#""enableUserWriteBlocking":"destinationOnly","preExistingDestinationData":true,{FILTER}"#)),
        "InvalidRequest",
        &["'preExistingDestinationData'", "'enableUserWriteBlocking'"],
    )
    .await;
    for (value, expected) in [
        ("true", WriteBlocking::SourceAndDestination),
        ("false", WriteBlocking::None),
        (
            "\"sourceAndDestination\"",
            WriteBlocking::SourceAndDestination,
        ),
        ("\"destinationOnly\"", WriteBlocking::DestinationOnly),
        ("\"none\"", WriteBlocking::None),
    ] {
        let (request, options) =
            accepted(&with(&format!(r#""enableUserWriteBlocking":{value}"#))).await;
        assert_eq!(request.enable_user_write_blocking, expected, "{value}");
        assert_eq!(options.write_blocking, expected, "{value}");
    }
}

#[tokio::test]
async fn verification_is_on_unless_turned_off() {
    let (request, options) = accepted(r#"{"source":"cluster0","destination":"cluster1"}"#).await;
    assert!(request.verification_enabled && options.verification);
    let (request, options) = accepted(&with(r#""verification":{"enabled":true}"#)).await;
    assert!(request.verification_enabled && options.verification);
    let (request, _) = accepted(&with(r#""verification":{}"#)).await;
    assert!(request.verification_enabled);
    refused(
        &with(r#""verification":true"#),
        "InvalidRequest",
        &["'verification' must be an object", "got boolean"],
    )
    .await;
    refused(
        &with(r#""verification":{"enabled":"no"}"#),
        "InvalidRequest",
        &["'verification.enabled' must be a boolean"],
    )
    .await;
    refused(
        &with(r#""verification":{"enabled":false,"mode":"full"}"#),
        "InvalidRequest",
        &["'verification.mode'"],
    )
    .await;
    let (request, options) = accepted(&with(r#""verification":{"enabled":false}"#)).await;
    assert!(!request.verification_enabled && !options.verification);
}

#[tokio::test]
async fn pre_existing_destination_data_requires_a_filter() {
    refused(
        &with(r#""preExistingDestinationData":true"#),
        "InvalidRequest",
        &["'preExistingDestinationData'", "namespace filter"],
    )
    .await;
    let (request, options) = accepted(&with(&format!(
        r#""preExistingDestinationData":true,{FILTER}"#
    )))
    .await;
    assert!(request.pre_existing_destination_data);
    assert_eq!(options.write_blocking, WriteBlocking::None);
    assert_eq!(
        options.load_level.get(),
        2,
        "mongosync lowers the default load level to 2"
    );
}

#[tokio::test]
async fn defaults_produce_the_canonical_request() {
    let (request, options) = accepted(MINIMAL_START).await;
    assert_eq!(
        request,
        StartRequest {
            source: "cluster0".into(),
            destination: "cluster1".into(),
            include_namespaces: vec![],
            exclude_namespaces: vec![],
            build_indexes: BuildIndexes::AfterDataCopy,
            reversible: false,
            enable_user_write_blocking: WriteBlocking::DestinationOnly,
            verification_enabled: true,
            detect_random_id: true,
            pre_existing_destination_data: false,
        }
    );
    assert!(options.filter.is_empty());
    assert_eq!(options.load_level.get(), 3);
    assert!(options.detect_random_id);
}

#[tokio::test]
async fn null_optional_fields_count_as_absent() {
    let (request, _) = accepted(&with(
        r#""buildIndexes":null,"reversible":null,"includeNamespaces":null"#,
    ))
    .await;
    assert_eq!(request.build_indexes, BuildIndexes::AfterDataCopy);
    assert!(!request.reversible);
}

#[tokio::test]
async fn filters_are_compiled_for_the_engine() {
    let (request, options) = accepted(&with(
        r#""includeNamespaces":[{"database":"sales","collectionsRegex":{"pattern":"^acc","options":"i"}}],"excludeNamespaces":[{"databaseRegex":{"pattern":"^tmp"}}]"#,
    ))
    .await;
    assert_eq!(request.include_namespaces.len(), 1);
    assert_eq!(request.exclude_namespaces.len(), 1);
    assert!(options
        .filter
        .matches(&c2c_engine::Namespace::new("sales", "ACCOUNTS")));
    assert!(!options
        .filter
        .matches(&c2c_engine::Namespace::new("sales", "orders")));
}

#[tokio::test]
async fn content_type_is_ignored() {
    let api = idle().await;
    let response = api
        .request(
            "POST",
            "/api/v1/start",
            Some(MINIMAL_START),
            Some("application/x-www-form-urlencoded"),
        )
        .await;
    assert_success(&response);
}
