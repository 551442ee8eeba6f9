//! `options_from_request` rebuilds exactly the options `/start` produced, so a cutover
//! continued after a restart runs with the original settings.

use c2c_engine::filter::FilterSpec;
use c2c_engine::options::{LoadLevel, StartRequest};
use serde_json::{json, Map, Value};

use super::{options_from_request, validate_start, StartError};

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn rebuilt_options_equal_the_validated_ones() {
    let bodies = [
        json!({"source": "cluster0", "destination": "cluster1"}),
        json!({"source": "cluster1", "destination": "cluster0", "reversible": true, "buildIndexes": "beforeDataCopy", "detectRandomId": false}),
        json!({"source": "cluster0", "destination": "cluster1", "enableUserWriteBlocking": false,
               "includeNamespaces": [{"database": "sales", "collectionsRegex": {"pattern": "^acc", "options": "i"}}],
               "excludeNamespaces": [{"database": "sales", "collections": ["secret"]}]}),
        json!({"source": "cluster0", "destination": "cluster1", "preExistingDestinationData": true,
               "includeNamespaces": [{"database": "app"}]}),
    ];
    for configured in [None, LoadLevel::new(4)] {
        for value in &bodies {
            let validated = validate_start(&body(value.clone()), configured).expect("valid");
            let rebuilt = options_from_request(&validated.request, configured).expect("rebuilt");
            // SyncOptions holds compiled regexes (no PartialEq); their Debug form shows
            // every field and pattern.
            assert_eq!(
                format!("{rebuilt:?}"),
                format!("{:?}", validated.options),
                "{value}"
            );
        }
    }
}

#[test]
fn the_default_load_level_follows_pre_existing_destination_data() {
    let value = json!({"source": "cluster0", "destination": "cluster1", "preExistingDestinationData": true,
                       "includeNamespaces": [{"database": "app"}]});
    let request = validate_start(&body(value), None).expect("valid").request;
    assert_eq!(
        options_from_request(&request, None)
            .expect("options")
            .load_level,
        LoadLevel::new(2).expect("level")
    );
    assert_eq!(
        options_from_request(&request, LoadLevel::new(1))
            .expect("options")
            .load_level,
        LoadLevel::new(1).expect("level")
    );
}

#[test]
fn a_persisted_filter_that_no_longer_compiles_is_named() {
    let valid = json!({"source": "cluster0", "destination": "cluster1"});
    let mut request: StartRequest = validate_start(&body(valid), None).expect("valid").request;
    let broken: FilterSpec = serde_json::from_value(
        json!({"database": "sales", "collectionsRegex": {"pattern": "(", "options": ""}}),
    )
    .expect("spec");
    request.include_namespaces.push(broken);
    match options_from_request(&request, None) {
        Err(StartError::InvalidNamespaceFilter(text)) => {
            assert!(text.contains("includeNamespaces"), "{text}")
        }
        other => panic!("expected InvalidNamespaceFilter, got {other:?}"),
    }
}
