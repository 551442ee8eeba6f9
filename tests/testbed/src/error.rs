//! Server errors as mongod reports them: a numeric code, its name, a message, optional
//! extra-info fields at the top level of the reply, and error labels computed as
//! `error_labels.cpp` does (testbed reference §6).

use bson::{doc, Document};

/// The error codes the testbed uses, with mongod's names (`error_codes.yml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InternalError,
    BadValue,
    FailedToParse,
    Unauthorized,
    TypeMismatch,
    AuthenticationFailed,
    IllegalOperation,
    NamespaceNotFound,
    IndexNotFound,
    ConflictingUpdateOperators,
    CursorNotFound,
    NoMatchingDocument,
    NamespaceExists,
    MaxTimeMSExpired,
    DollarPrefixedFieldName,
    InvalidIdField,
    EmptyFieldName,
    DottedFieldName,
    CommandNotFound,
    ImmutableField,
    CannotCreateIndex,
    InvalidOptions,
    InvalidNamespace,
    IndexOptionsConflict,
    IndexKeySpecsConflict,
    NetworkTimeout,
    ShutdownInProgress,
    OperationFailed,
    WriteConflict,
    DocumentValidationFailure,
    NotAReplicaSet,
    CappedPositionLost,
    CommandNotSupportedOnView,
    QueryPlanKilled,
    AmbiguousIndexKeyPattern,
    NoSuchSession,
    CursorKilled,
    NotImplemented,
    InvalidResumeToken,
    OperationNotSupportedInTransaction,
    ChangeStreamFatalError,
    ChangeStreamHistoryLost,
    UnsupportedOpQueryCommand,
    CannotConvertIndexToUnique,
    CollectionUuidMismatch,
    UserWritesBlocked,
    NotWritablePrimary,
    DuplicateKey,
    IdlFailedToParse,
    IdlUnknownField,
    IdlDuplicateField,
    BsonObjectTooLarge,
    PathNotViable,
    BadResumeTokenData,
    Location(i32),
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        use ErrorCode::*;
        match self {
            InternalError => 1,
            BadValue => 2,
            FailedToParse => 9,
            Unauthorized => 13,
            TypeMismatch => 14,
            AuthenticationFailed => 18,
            IllegalOperation => 20,
            NamespaceNotFound => 26,
            IndexNotFound => 27,
            PathNotViable => 28,
            ConflictingUpdateOperators => 40,
            CursorNotFound => 43,
            NoMatchingDocument => 47,
            NamespaceExists => 48,
            MaxTimeMSExpired => 50,
            DollarPrefixedFieldName => 52,
            InvalidIdField => 53,
            EmptyFieldName => 56,
            DottedFieldName => 57,
            CommandNotFound => 59,
            ImmutableField => 66,
            CannotCreateIndex => 67,
            InvalidOptions => 72,
            InvalidNamespace => 73,
            IndexOptionsConflict => 85,
            IndexKeySpecsConflict => 86,
            NetworkTimeout => 89,
            ShutdownInProgress => 91,
            OperationFailed => 96,
            WriteConflict => 112,
            DocumentValidationFailure => 121,
            NotAReplicaSet => 123,
            CappedPositionLost => 136,
            CommandNotSupportedOnView => 166,
            QueryPlanKilled => 175,
            AmbiguousIndexKeyPattern => 181,
            NoSuchSession => 206,
            CursorKilled => 237,
            NotImplemented => 238,
            InvalidResumeToken => 260,
            OperationNotSupportedInTransaction => 263,
            ChangeStreamFatalError => 280,
            ChangeStreamHistoryLost => 286,
            UnsupportedOpQueryCommand => 352,
            CannotConvertIndexToUnique => 359,
            CollectionUuidMismatch => 361,
            UserWritesBlocked => 371,
            NotWritablePrimary => 10107,
            BsonObjectTooLarge => 10334,
            DuplicateKey => 11000,
            IdlDuplicateField => 40413,
            IdlFailedToParse => 40414,
            IdlUnknownField => 40415,
            BadResumeTokenData => 40647,
            Location(code) => code,
        }
    }

    pub fn name(self) -> &'static str {
        name_for_code(self.code())
    }
}

/// mongod's codeName for a numeric code (the ones the testbed can produce, plus the
/// retriable ones a failpoint may inject).
pub fn name_for_code(code: i32) -> &'static str {
    match code {
        1 => "InternalError",
        2 => "BadValue",
        6 => "HostUnreachable",
        7 => "HostNotFound",
        9 => "FailedToParse",
        11 => "UserNotFound",
        13 => "Unauthorized",
        14 => "TypeMismatch",
        18 => "AuthenticationFailed",
        20 => "IllegalOperation",
        26 => "NamespaceNotFound",
        27 => "IndexNotFound",
        28 => "PathNotViable",
        40 => "ConflictingUpdateOperators",
        43 => "CursorNotFound",
        47 => "NoMatchingDocument",
        48 => "NamespaceExists",
        50 => "MaxTimeMSExpired",
        52 => "DollarPrefixedFieldName",
        53 => "InvalidIdField",
        56 => "EmptyFieldName",
        57 => "DottedFieldName",
        59 => "CommandNotFound",
        66 => "ImmutableField",
        67 => "CannotCreateIndex",
        72 => "InvalidOptions",
        73 => "InvalidNamespace",
        85 => "IndexOptionsConflict",
        86 => "IndexKeySpecsConflict",
        89 => "NetworkTimeout",
        91 => "ShutdownInProgress",
        96 => "OperationFailed",
        112 => "WriteConflict",
        121 => "DocumentValidationFailure",
        123 => "NotAReplicaSet",
        133 => "FailedToSatisfyReadPreference",
        134 => "ReadConcernMajorityNotAvailableYet",
        136 => "CappedPositionLost",
        143 => "CursorInUse",
        168 => "InvalidPipelineOperator",
        171 => "CannotIndexParallelArrays",
        225 => "TransactionTooOld",
        150 => "StaleEpoch",
        166 => "CommandNotSupportedOnView",
        175 => "QueryPlanKilled",
        181 => "AmbiguousIndexKeyPattern",
        189 => "PrimarySteppedDown",
        206 => "NoSuchSession",
        234 => "RetryChangeStream",
        237 => "CursorKilled",
        238 => "NotImplemented",
        251 => "NoSuchTransaction",
        260 => "InvalidResumeToken",
        262 => "ExceededTimeLimit",
        263 => "OperationNotSupportedInTransaction",
        280 => "ChangeStreamFatalError",
        286 => "ChangeStreamHistoryLost",
        352 => "UnsupportedOpQueryCommand",
        359 => "CannotConvertIndexToUnique",
        361 => "CollectionUUIDMismatch",
        371 => "UserWritesBlocked",
        9001 => "SocketException",
        10107 => "NotWritablePrimary",
        10334 => "BSONObjectTooLarge",
        11000 => "DuplicateKey",
        11600 => "InterruptedAtShutdown",
        11601 => "Interrupted",
        11602 => "InterruptedDueToReplStateChange",
        13388 => "StaleConfig",
        13435 => "NotPrimaryNoSecondaryOk",
        13436 => "NotPrimaryOrSecondary",
        40413 => "IDLDuplicateField",
        40414 => "IDLFailedToParse",
        40415 => "IDLUnknownField",
        _ => "Location",
    }
}

/// `RetriableError` category of `error_codes.yml`.
pub fn is_retriable_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7
            | 89
            | 91
            | 134
            | 189
            | 262
            | 358
            | 402
            | 406
            | 407
            | 412
            | 453
            | 462
            | 9001
            | 10107
            | 11600
            | 11602
            | 13435
            | 13436
            | 50915
            | 91331
            | 10045600
    )
}

/// Codes a change stream may resume from (`isResumableChangeStreamError`).
pub fn is_resumable_change_stream_code(code: i32) -> bool {
    is_retriable_code(code) || matches!(code, 150 | 13388 | 234 | 133)
}

pub fn is_non_resumable_change_stream_code(code: i32) -> bool {
    matches!(code, 280 | 286)
}

/// A command failure: becomes `{ok: 0, errmsg, code, codeName, ...extra}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code_name} ({code}): {message}")]
pub struct CommandError {
    pub code: i32,
    pub code_name: &'static str,
    pub message: String,
    /// Extra-info fields placed at the top level of the error reply (or of the write error).
    pub extra: Document,
    /// Labels fixed by the producer (a failpoint's `errorLabels`); `None` means "compute".
    pub labels_override: Option<Vec<String>>,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CommandError {
        CommandError {
            code: code.code(),
            code_name: code.name(),
            message: message.into(),
            extra: Document::new(),
            labels_override: None,
        }
    }

    pub fn from_code(code: i32, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            code_name: name_for_code(code),
            message: message.into(),
            extra: Document::new(),
            labels_override: None,
        }
    }

    pub fn with_extra(mut self, extra: Document) -> CommandError {
        self.extra.extend(extra);
        self
    }

    pub fn bad_value(message: impl Into<String>) -> CommandError {
        CommandError::new(ErrorCode::BadValue, message)
    }

    pub fn type_mismatch(message: impl Into<String>) -> CommandError {
        CommandError::new(ErrorCode::TypeMismatch, message)
    }

    pub fn not_implemented(what: impl Into<String>) -> CommandError {
        CommandError::new(
            ErrorCode::NotImplemented,
            format!("the testbed does not implement {}", what.into()),
        )
    }

    pub fn failed_to_parse(message: impl Into<String>) -> CommandError {
        CommandError::new(ErrorCode::FailedToParse, message)
    }

    /// The body of an `ok: 0` reply, without labels or cluster time.
    pub fn to_reply_body(&self) -> Document {
        let mut reply = doc! {
            "ok": 0.0,
            "errmsg": self.message.clone(),
            "code": self.code,
            "codeName": self.code_name,
        };
        for (key, value) in &self.extra {
            reply.insert(key.clone(), value.clone());
        }
        reply
    }

    /// A `writeErrors` entry for statement `index`.
    pub fn to_write_error(&self, index: usize) -> Document {
        let mut entry = doc! {
            "index": index as i32,
            "code": self.code,
            "codeName": self.code_name,
            "errmsg": self.message.clone(),
        };
        for (key, value) in &self.extra {
            entry.insert(key.clone(), value.clone());
        }
        entry
    }
}

pub type CmdResult<T> = Result<T, CommandError>;
