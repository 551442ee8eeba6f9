//! The REST API's errors: mongosync's error body
//! `{"success":false,"error":NAME,"errorDescription":TEXT}` with an HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use c2c_engine::EngineError;
use serde_json::json;
use tracing::{error, info};

use crate::coordinator::CoordinatorError;
use crate::start_options::StartError;
use crate::state::Operation;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, a missing/unknown/mistyped field or a bad combination.
    #[error("{0}")]
    InvalidRequest(String),
    /// 400: `includeNamespaces` / `excludeNamespaces` entries that do not compile.
    #[error("{0}")]
    InvalidNamespaceFilter(String),
    /// 400: a mongosync option whose feature c2c does not have yet.
    #[error("{0}")]
    UnsupportedOption(String),
    /// 409: the call is not allowed in the current state (named in the text).
    #[error("{0}")]
    InvalidState(String),
    /// 409: another state-changing call is still being processed.
    #[error("{0}")]
    OperationInProgress(String),
    /// 409: `/start` after a restart differs from the persisted migration's.
    #[error("{0}")]
    OptionsMismatch(String),
    /// 409: the destination already holds namespaces the migration would write.
    #[error("{0}")]
    DestinationNotEmpty(String),
    /// 409: `/commit` in RUNNING while canCommit is false, or refused by the engine;
    /// the text says why. Nothing changed.
    #[error("{0}")]
    CommitNotAllowed(String),
    /// 409: `/reverse` in COMMITTED of a migration that cannot be reversed (not
    /// `reversible`, or refused by the engine); the text says why. Nothing changed.
    #[error("{0}")]
    ReverseNotAllowed(String),
    /// 409: the engine cannot honour the call in the clusters' current situation (e.g.
    /// c2c's user lacks a privilege `/start` needs); the text says why. Nothing changed.
    #[error("{0}")]
    Refused(String),
    /// 422: the source holds something c2c cannot sync (time-series collections, …).
    #[error("{0}")]
    Unsupported(String),
    /// 401: the API requires a bearer token (`--apiToken`) and the request has none,
    /// or a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such endpoint.
    #[error("{0}")]
    NotFound(String),
    /// 405: the endpoint exists with another method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 413: the body is larger than the API accepts.
    #[error("{0}")]
    RequestTooLarge(String),
    /// 500: the engine failed; the text is the engine's message.
    #[error("{0}")]
    EngineError(String),
    /// 503 (scale-out): this coordinator is a follower and no leader can answer now
    /// (an election is under way, or the leader is unreachable); retry shortly.
    #[error("{0}")]
    LeaderUnavailable(String),
}

impl ApiError {
    /// Every `error` name the API can return (the OpenAPI document lists them all).
    pub const NAMES: &'static [&'static str] = &[
        "InvalidRequest",
        "InvalidNamespaceFilter",
        "UnsupportedOption",
        "InvalidState",
        "OperationInProgress",
        "OptionsMismatch",
        "DestinationNotEmpty",
        "CommitNotAllowed",
        "ReverseNotAllowed",
        "Refused",
        "Unsupported",
        "Unauthorized",
        "NotFound",
        "MethodNotAllowed",
        "RequestTooLarge",
        "EngineError",
        "LeaderUnavailable",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "InvalidRequest",
            ApiError::InvalidNamespaceFilter(_) => "InvalidNamespaceFilter",
            ApiError::UnsupportedOption(_) => "UnsupportedOption",
            ApiError::InvalidState(_) => "InvalidState",
            ApiError::OperationInProgress(_) => "OperationInProgress",
            ApiError::OptionsMismatch(_) => "OptionsMismatch",
            ApiError::DestinationNotEmpty(_) => "DestinationNotEmpty",
            ApiError::CommitNotAllowed(_) => "CommitNotAllowed",
            ApiError::ReverseNotAllowed(_) => "ReverseNotAllowed",
            ApiError::Refused(_) => "Refused",
            ApiError::Unsupported(_) => "Unsupported",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::NotFound(_) => "NotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::RequestTooLarge(_) => "RequestTooLarge",
            ApiError::EngineError(_) => "EngineError",
            ApiError::LeaderUnavailable(_) => "LeaderUnavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidNamespaceFilter(_)
            | ApiError::UnsupportedOption(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidState(_)
            | ApiError::OperationInProgress(_)
            | ApiError::OptionsMismatch(_)
            | ApiError::DestinationNotEmpty(_)
            | ApiError::CommitNotAllowed(_)
            | ApiError::ReverseNotAllowed(_)
            | ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::Unsupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::EngineError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::LeaderUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            error!(error = self.name(), description = %self, "request failed");
        } else {
            info!(error = self.name(), description = %self, "request refused");
        }
        let body =
            json!({ "success": false, "error": self.name(), "errorDescription": self.to_string() });
        (status, Json(body)).into_response()
    }
}

impl From<StartError> for ApiError {
    fn from(error: StartError) -> ApiError {
        match error {
            StartError::InvalidRequest(text) => ApiError::InvalidRequest(text),
            StartError::InvalidNamespaceFilter(text) => ApiError::InvalidNamespaceFilter(text),
            StartError::UnsupportedOption(text) => ApiError::UnsupportedOption(text),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::Unsupported(_) => ApiError::Unsupported(error.to_string()),
            EngineError::DestinationNotEmpty(_) => ApiError::DestinationNotEmpty(error.to_string()),
            EngineError::OptionsMismatch(_) => ApiError::OptionsMismatch(error.to_string()),
            EngineError::Refused(text) => ApiError::Refused(text),
            other => ApiError::EngineError(other.to_string()),
        }
    }
}

impl From<CoordinatorError> for ApiError {
    fn from(error: CoordinatorError) -> ApiError {
        match error {
            CoordinatorError::WrongState(wrong) => ApiError::InvalidState(wrong.to_string()),
            CoordinatorError::Busy(_) => ApiError::OperationInProgress(error.to_string()),
            CoordinatorError::OptionsMismatch(text) => ApiError::OptionsMismatch(text),
            CoordinatorError::NotAllowed { operation, reason } => match operation {
                Operation::Reverse => ApiError::ReverseNotAllowed(reason),
                // Only /commit and /reverse have preconditions beyond the state.
                _ => ApiError::CommitNotAllowed(reason),
            },
            CoordinatorError::Engine(engine) => engine.into(),
            CoordinatorError::Unrecorded(_) => ApiError::LeaderUnavailable(error.to_string()),
        }
    }
}
