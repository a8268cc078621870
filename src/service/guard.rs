//! What a write judges again inside its transaction: the caller and the target token as
//! they stand under the write's locks, so a retire, a promotion or a role change that
//! committed first decides, and the loser gets what a new call would get now.
use uuid::Uuid;

use crate::domain::{Caller, Decision, OwnerStatus, Token};
use crate::storage::Locked;

use super::ServiceError;

/// `caller` as its token, its owner and its application's approval stand now, by the same
/// decision as Authorize (an approval's cap included); refused as a new call would be if it
/// cannot act.
pub(crate) fn caller_now(caller: &Caller, locked: &Locked) -> Result<Caller, ServiceError> {
    let refused = |refusal| ServiceError::refused(refusal, caller.app.as_str());
    let Some(grant) = locked.caller.as_ref() else {
        return Err(refused(Decision::UnknownToken));
    };
    caller
        .judged_again(grant, locked.caller_app.as_ref(), locked.now)
        .map_err(refused)
}

/// The caller now and the target token with its owner's standing, if that caller may see
/// it now; NOT_FOUND otherwise, whether or not it exists.
pub(crate) fn visible_now<'a>(
    caller: &Caller,
    locked: &'a Locked,
    id: Uuid,
) -> Result<(Caller, &'a Token, OwnerStatus), ServiceError> {
    let caller = caller_now(caller, locked)?;
    match &locked.target {
        Some((token, owner)) if caller.can_see(token) => Ok((caller, token, *owner)),
        _ => Err(ServiceError::not_found("token", id)),
    }
}
