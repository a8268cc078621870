//! The service's error type: what went wrong, in terms a handler maps to one gRPC status.
use crate::domain::{Decision, FieldViolation, PolicyDenial};
use crate::storage::StorageError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{message}")]
    Unauthenticated {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
    },
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    OutOfRange {
        reason: &'static str,
        message: String,
    },
    /// A concurrent change made the database abort this one; nothing was written.
    #[error("aborted by a concurrent change: {0}")]
    Aborted(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    ShuttingDown(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ServiceError {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ServiceError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        ServiceError::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    /// A management caller whose own credentials the Authorize decision refused.
    pub fn refused(decision: Decision, app: &str) -> Self {
        let message = decision.explanation(app);
        let reason = decision.reason_code();
        if decision.http_status() == 401 {
            ServiceError::Unauthenticated { reason, message }
        } else {
            ServiceError::PermissionDenied { reason, message }
        }
    }
}

impl From<PolicyDenial> for ServiceError {
    fn from(denial: PolicyDenial) -> Self {
        ServiceError::PermissionDenied {
            reason: denial.reason_code(),
            message: denial.message(),
        }
    }
}

impl From<StorageError> for ServiceError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Unavailable(msg) => ServiceError::Unavailable(msg),
            StorageError::Aborted(msg) => ServiceError::Aborted(msg),
            StorageError::Conflict => ServiceError::AlreadyExists {
                reason: "CONFLICT",
                message: "the change conflicts with an existing resource".into(),
            },
            StorageError::Corrupt(msg)
            | StorageError::Database(msg)
            | StorageError::Schema(msg)
            | StorageError::Config(msg) => ServiceError::Internal(msg),
        }
    }
}
