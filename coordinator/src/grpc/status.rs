//! REST errors as gRPC statuses, so both APIs refuse the same calls the same way: the
//! code follows the HTTP status, the message is the `errorDescription`, and the
//! `c2c-error` metadata carries the `error` name for clients that branch on it.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tracing::{error, info};

use crate::api::error::ApiError;

/// Metadata key carrying the REST API's `error` name (`InvalidState`, …).
pub const ERROR_METADATA_KEY: &str = "c2c-error";

/// The gRPC code for a REST status: 400 → INVALID_ARGUMENT, 409 → FAILED_PRECONDITION,
/// 422 → UNIMPLEMENTED (a feature c2c does not have yet), 503 → UNAVAILABLE (no
/// leader to forward to, retry), other 5xx → INTERNAL.
pub fn code_for(error: &ApiError) -> Code {
    match error.status().as_u16() {
        409 => Code::FailedPrecondition,
        422 => Code::Unimplemented,
        404 => Code::NotFound,
        401 => Code::Unauthenticated,
        413 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        status if status >= 500 => Code::Internal,
        // 400 and any other client error: the request itself is wrong.
        _ => Code::InvalidArgument,
    }
}

/// Converts and logs an API error the way the REST layer does (refusals at info,
/// engine failures at error).
pub fn api_status(error: ApiError) -> Status {
    let code = code_for(&error);
    if code == Code::Internal {
        error!(error = error.name(), description = %error, "request failed");
    } else {
        info!(error = error.name(), description = %error, "request refused");
    }
    let mut status = Status::new(code, error.to_string());
    // Error names are ASCII identifiers, so this never fails; skip the key if it did.
    if let Ok(value) = MetadataValue::try_from(error.name()) {
        status.metadata_mut().insert(ERROR_METADATA_KEY, value);
    }
    status
}

/// The `c2c-error` name a status carries, if it came from c2c's API.
pub fn error_name(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get(ERROR_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
}
