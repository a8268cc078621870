//! What a write judges again inside its transaction: the caller and the target token as
//! they stand under the write's locks, so a retire, a promotion or a role change that
//! committed first decides, and the loser gets what a new call would get now.
use uuid::Uuid;

use crate::domain::{Caller, Decision, OwnerStatus, Token};
use crate::storage::Locked;

use super::ServiceError;

/// The caller as its token stands now; refused as a new call would be if it cannot act.
pub(crate) fn caller_now(locked: &Locked) -> Result<Caller, ServiceError> {
    // No refusal below names the application: "" stands in for it.
    let Some(grant) = locked.caller.as_ref() else {
        return Err(ServiceError::refused(Decision::UnknownToken, ""));
    };
    Caller::from_grant(grant, locked.now).map_err(|refusal| ServiceError::refused(refusal, ""))
}

/// The caller now and the target token with its owner's standing, if that caller may see
/// it now; NOT_FOUND otherwise, whether or not it exists.
pub(crate) fn visible_now(
    locked: &Locked,
    id: Uuid,
) -> Result<(Caller, &Token, OwnerStatus), ServiceError> {
    let caller = caller_now(locked)?;
    match &locked.target {
        Some((token, owner)) if caller.can_see(token) => Ok((caller, token, *owner)),
        _ => Err(ServiceError::not_found("token", id)),
    }
}
