//! The service's error type: what went wrong, in terms a handler maps to one gRPC status.
use crate::domain::{Decision, FieldViolation, PolicyDenial, Precondition, Reason};
use crate::storage::StorageError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{message}")]
    Unauthenticated { reason: Reason, message: String },
    #[error("{message}")]
    PermissionDenied { reason: Reason, message: String },
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    #[error("{message}")]
    AlreadyExists { reason: Reason, message: String },
    #[error("{message}")]
    FailedPrecondition { reason: Reason, message: String },
    #[error("{message}")]
    OutOfRange { reason: Reason, message: String },
    /// Too many calls of a kind from one client; the next is accepted after `retry_after`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The database failed or refused the write; the storage error is kept whole, its
    /// cause included, for the log. What the caller is told depends on its kind.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// This replica cannot answer now (it has not reached its database, or its memory is
    /// too old to decide from); another may.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    ShuttingDown(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The first violations, and how many more there are: the message stays a line.
fn describe(violations: &[FieldViolation]) -> String {
    let shown = violations
        .iter()
        .take(FieldViolation::MOST_IN_MESSAGE)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    match violations
        .len()
        .saturating_sub(FieldViolation::MOST_IN_MESSAGE)
    {
        0 => shown,
        more => format!("{shown}; and {more} more"),
    }
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
        let Some(reason) = decision.reason() else {
            return ServiceError::Internal("an allowed caller was refused".into());
        };
        if decision.http_status() == 401 {
            ServiceError::Unauthenticated { reason, message }
        } else {
            ServiceError::PermissionDenied { reason, message }
        }
    }

    /// Whether a uniqueness rule of the database refused the write.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ServiceError::Storage(StorageError::Conflict))
    }

    /// The reason a refusal carries, if it carries one.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            ServiceError::Unauthenticated { reason, .. }
            | ServiceError::PermissionDenied { reason, .. }
            | ServiceError::AlreadyExists { reason, .. }
            | ServiceError::FailedPrecondition { reason, .. }
            | ServiceError::OutOfRange { reason, .. } => Some(*reason),
            ServiceError::RateLimited { .. } => Some(Reason::RateLimited),
            _ => None,
        }
    }
}

impl From<PolicyDenial> for ServiceError {
    fn from(denial: PolicyDenial) -> Self {
        ServiceError::PermissionDenied {
            reason: denial.reason(),
            message: denial.message(),
        }
    }
}

impl From<Precondition> for ServiceError {
    fn from(unmet: Precondition) -> Self {
        ServiceError::FailedPrecondition {
            reason: unmet.reason(),
            message: unmet.message().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_of_many_fields_describes_the_first_and_counts_the_rest() {
        let many: Vec<_> = (0..1000)
            .map(|i| FieldViolation::new(format!("decisions[{i}].name"), "must not be empty"))
            .collect();
        let message = ServiceError::InvalidArgument(many).to_string();
        assert_eq!(
            message,
            "invalid argument: decisions[0].name: must not be empty; decisions[1].name: must not be empty; decisions[2].name: must not be empty; and 997 more"
        );
        let one = ServiceError::invalid("id", "must be a UUID").to_string();
        assert_eq!(one, "invalid argument: id: must be a UUID");
    }
}
