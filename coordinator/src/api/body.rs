//! Request bodies. Content-Type is ignored on purpose: mongosync's documented curl
//! commands send JSON with `--data`, which labels it `application/x-www-form-urlencoded`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::start_options::json_type;

/// Maps a body that could not be read (too large, connection error) to the API's shape.
pub fn unreadable(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::RequestTooLarge(format!(
            "the request body is too large: {}",
            rejection.body_text()
        ))
    } else {
        ApiError::InvalidRequest(format!(
            "cannot read the request body: {}",
            rejection.body_text()
        ))
    }
}

/// The body as a JSON object. An empty body is `{}` when `empty_is_object`.
pub fn json_object(body: &Bytes, empty_is_object: bool) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if empty_is_object {
            Ok(Map::new())
        } else {
            Err(ApiError::InvalidRequest("the request body is empty; send a JSON object such as {\"source\":\"cluster0\",\"destination\":\"cluster1\"}".into()))
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ApiError::InvalidRequest(format!(
            "the request body must be a JSON object, got {}",
            json_type(&other)
        ))),
        Err(error) => Err(ApiError::InvalidRequest(format!(
            "the request body is not valid JSON: {error}"
        ))),
    }
}

/// For `/pause`, `/resume`, `/commit`, `/reverse`, which take no parameters: `{}` (as
/// mongosync's docs send) or an empty body.
pub fn no_parameters(body: &Bytes, endpoint: &str) -> Result<(), ApiError> {
    let object = json_object(body, true)?;
    match object.keys().next() {
        None => Ok(()),
        Some(field) => Err(ApiError::InvalidRequest(format!(
            "unknown field '{field}': {endpoint} takes no parameters; send {{}}"
        ))),
    }
}
