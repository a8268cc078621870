//! The one mapping from `ServiceError` to `tonic::Status`, with rich error details.
use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::service::ServiceError;

/// The `domain` of every `google.rpc.ErrorInfo` this service sends.
pub const ERROR_DOMAIN: &str = "apitokens.v1";

fn with_reason(code: Code, reason: &str, message: String) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
    )
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let message = err.to_string();
        match err {
            ServiceError::InvalidArgument(violations) => {
                let violations: Vec<_> = violations
                    .into_iter()
                    .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request(violations),
                )
            }
            ServiceError::Unauthenticated { reason, message } => {
                with_reason(Code::Unauthenticated, reason, message)
            }
            ServiceError::PermissionDenied { reason, message } => {
                with_reason(Code::PermissionDenied, reason, message)
            }
            ServiceError::NotFound { resource, id } => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info(
                    resource,
                    id,
                    "",
                    "not found, or not visible to the caller",
                ),
            ),
            ServiceError::AlreadyExists { reason, message } => {
                with_reason(Code::AlreadyExists, reason, message)
            }
            ServiceError::FailedPrecondition { reason, message } => {
                with_reason(Code::FailedPrecondition, reason, message)
            }
            ServiceError::OutOfRange { reason, message } => {
                with_reason(Code::OutOfRange, reason, message)
            }
            ServiceError::Aborted(detail) => {
                tracing::warn!(error = %detail, "transaction aborted by a concurrent one");
                let mut details = ErrorDetails::with_error_info(
                    "CONCURRENT_CHANGE",
                    ERROR_DOMAIN,
                    HashMap::new(),
                );
                details.set_retry_info(Some(std::time::Duration::from_millis(100)));
                Status::with_error_details(
                    Code::Aborted,
                    "a concurrent change aborted this one; nothing was written, retry",
                    details,
                )
            }
            ServiceError::ShuttingDown(message) => {
                with_reason(Code::Unavailable, "SHUTTING_DOWN", message)
            }
            ServiceError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Status::with_error_details(
                    Code::Unavailable,
                    "the token database is unavailable; retry with backoff",
                    ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
                )
            }
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error; the server log has the details")
            }
        }
    }
}

/// The status for an error raised by the tower layers around the handlers (`layers.rs`):
/// load shedding, the request timeout. Handlers' own errors never get here; they are
/// `ServiceError`s mapped above.
pub fn layer_error_status(err: &(dyn std::error::Error + Send + Sync + 'static)) -> Status {
    if err.is::<tower::load_shed::error::Overloaded>() {
        // UNAVAILABLE, not RESOURCE_EXHAUSTED: the call is safe to retry at once on another
        // replica, and gRPC clients' retry policies retry UNAVAILABLE by default.
        let mut details = ErrorDetails::with_error_info("OVERLOADED", ERROR_DOMAIN, HashMap::new());
        details.set_retry_info(Some(std::time::Duration::from_millis(100)));
        return Status::with_error_details(
            Code::Unavailable,
            "the server is at its concurrent-request limit; retry with backoff",
            details,
        );
    }
    if err.is::<crate::layers::NotReady>() {
        return with_reason(Code::Unavailable, "STARTING", err.to_string());
    }
    if let Some(timeout) = err.downcast_ref::<crate::layers::RequestTimedOut>() {
        return with_reason(
            Code::DeadlineExceeded,
            "REQUEST_TIMEOUT",
            timeout.to_string(),
        );
    }
    if let Some(status) = err.downcast_ref::<Status>() {
        return Status::new(status.code(), status.message());
    }
    tracing::error!(error = %err, "unexpected error in the server's layers");
    Status::internal("internal error; the server log has the details")
}
