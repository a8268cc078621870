//! The one mapping from `ServiceError` to `tonic::Status`, with rich error details.
//!
//! The mapping only maps: a server fault keeps its error as the status's source, and the
//! layer that observes every call (`layers/observe.rs`) logs it there, once, in the call's span.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::code_name::code_name;
use crate::domain::Reason;
use crate::service::ServiceError;
use crate::storage::StorageError;

/// The `domain` of every `google.rpc.ErrorInfo` this service sends.
pub const ERROR_DOMAIN: &str = "apitokens.v1";

/// A status with an `ErrorInfo` carrying `reason`.
pub fn with_reason(code: Code, reason: Reason, message: impl Into<String>) -> Status {
    Status::with_error_details(code, message, error_info(reason))
}

fn error_info(reason: Reason) -> ErrorDetails {
    ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, HashMap::new())
}

/// A refusal the client may retry after `after`, with `reason`.
pub fn retry_after(code: Code, reason: Reason, message: &str, after: Duration) -> Status {
    let mut details = error_info(reason);
    details.set_retry_info(Some(after));
    Status::with_error_details(code, message, details)
}

/// INTERNAL without the details, which go to the log only.
pub fn internal() -> Status {
    Status::internal("internal error; the server log has the details")
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let message = err.to_string();
        let mut status = match &err {
            ServiceError::InvalidArgument(violations) => {
                let violations: Vec<_> = violations
                    .iter()
                    .take(crate::domain::FieldViolation::MOST_IN_DETAILS)
                    .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
                    .collect();
                return Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request(violations),
                );
            }
            ServiceError::Unauthenticated { reason, message } => {
                return with_reason(Code::Unauthenticated, *reason, message);
            }
            ServiceError::PermissionDenied { reason, message } => {
                return with_reason(Code::PermissionDenied, *reason, message);
            }
            ServiceError::NotFound { resource, id } => {
                return Status::with_error_details(
                    Code::NotFound,
                    message,
                    ErrorDetails::with_resource_info(
                        *resource,
                        id,
                        "",
                        "not found, or not visible to the caller",
                    ),
                );
            }
            ServiceError::AlreadyExists { reason, message } => {
                return with_reason(Code::AlreadyExists, *reason, message);
            }
            ServiceError::FailedPrecondition { reason, message } => {
                return with_reason(Code::FailedPrecondition, *reason, message);
            }
            ServiceError::OutOfRange { reason, message } => {
                return with_reason(Code::OutOfRange, *reason, message);
            }
            ServiceError::RateLimited {
                message,
                retry_after: after,
            } => {
                return retry_after(
                    Code::ResourceExhausted,
                    Reason::RateLimited,
                    message,
                    *after,
                );
            }
            ServiceError::ShuttingDown(message) => {
                return with_reason(Code::Unavailable, Reason::ShuttingDown, message);
            }
            ServiceError::Storage(StorageError::Conflict) => {
                return with_reason(
                    Code::AlreadyExists,
                    Reason::Conflict,
                    "the change conflicts with an existing resource",
                );
            }
            ServiceError::Storage(StorageError::Aborted(_)) => retry_after(
                Code::Aborted,
                Reason::ConcurrentChange,
                "a concurrent change aborted this one; nothing was written, retry",
                Duration::from_millis(100),
            ),
            ServiceError::Storage(StorageError::Unwritable(_)) => retry_after(
                Code::Unavailable,
                Reason::StorageUnwritable,
                "the token database cannot store changes now (disk full, I/O error or read-only); nothing was stored, retry later",
                Duration::from_secs(1),
            ),
            ServiceError::Storage(StorageError::Unavailable(_)) | ServiceError::Unavailable(_) => {
                Status::with_error_details(
                    Code::Unavailable,
                    "the token database is unavailable; retry with backoff",
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                )
            }
            ServiceError::Storage(_) | ServiceError::Internal(_) => internal(),
        };
        // What went wrong on the server's side travels with the status to the log.
        status.set_source(Arc::new(err));
        status
    }
}

/// Logs the cause a server fault's status carries (see `From<ServiceError>`), in the span
/// of the call that failed: a warning for what retrying may mend, an error otherwise.
pub fn log_cause(status: &Status) {
    let Some(cause) = std::error::Error::source(status) else {
        return;
    };
    let error = crate::telemetry::chain(cause);
    let code = code_name(status.code());
    match status.code() {
        Code::Unavailable | Code::Aborted => tracing::warn!(%error, code, "call failed"),
        _ => tracing::error!(%error, code, "call failed"),
    }
}
