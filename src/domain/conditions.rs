//! Conditions an approval may carry: until when, at most which privilege, from which addresses.
use chrono::{DateTime, Utc};

use super::{AddressRanges, AppState, Privilege};

/// The conditions of an allowed application. Each is optional; none at all is a plain Allow.
///
/// Past `until` the approval no longer counts: the application is decided as Pending at once,
/// from memory, with no write needed at the deadline; a sweeper then writes it back to
/// Pending with an event, so people and bots see it waiting again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Conditions {
    /// The approval lapses at this time.
    pub until: Option<DateTime<Utc>>,
    /// The application acts with at most this privilege, whatever the token's.
    pub max_privilege: Option<Privilege>,
    /// The application may use the token only from these ranges (empty: anywhere the token may).
    pub client_ranges: AddressRanges,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.until.is_none() && self.max_privilege.is_none() && self.client_ranges.is_empty()
    }

    /// Whether the approval has lapsed at `now`.
    pub fn lapsed(&self, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|until| until <= now)
    }

    /// Whether an approval with these conditions allows nothing that one with `bound` does
    /// not: an end no later, a cap no higher, ranges inside the bound's.
    pub fn within(&self, bound: &Conditions) -> bool {
        let until_within = match (self.until, bound.until) {
            (_, None) => true,
            (Some(mine), Some(theirs)) => mine <= theirs,
            (None, Some(_)) => false,
        };
        let cap_within = match (self.max_privilege, bound.max_privilege) {
            (_, None) => true,
            (Some(mine), Some(theirs)) => mine <= theirs,
            (None, Some(_)) => false,
        };
        let ranges_within = bound.client_ranges.is_empty()
            || (!self.client_ranges.is_empty() && self.client_ranges.within(&bound.client_ranges));
        until_within && cap_within && ranges_within
    }

    /// Checks conditions asked for with a state at `now`: only an Allow carries them, and an
    /// approval that would lapse before it starts is a mistake. `None` for no conditions.
    pub fn for_state(
        self,
        state: AppState,
        now: DateTime<Utc>,
    ) -> Result<Option<Conditions>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        if state != AppState::Allow {
            return Err("only an Allow may carry conditions".into());
        }
        if self.lapsed(now) {
            return Err("the approval's end (until) must be in the future".into());
        }
        Ok(Some(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn only_allow_carries_conditions_and_they_must_not_have_lapsed() {
        let now = Utc::now();
        let capped = Conditions {
            max_privilege: Some(Privilege::ReadOnly),
            ..Default::default()
        };
        assert!(capped.clone().for_state(AppState::Deny, now).is_err());
        assert_eq!(
            capped.clone().for_state(AppState::Allow, now),
            Ok(Some(capped))
        );
        assert_eq!(
            Conditions::default().for_state(AppState::Deny, now),
            Ok(None)
        );
        let lapsed = Conditions {
            until: Some(now - TimeDelta::seconds(1)),
            ..Default::default()
        };
        assert!(lapsed.clone().lapsed(now));
        assert!(lapsed.for_state(AppState::Allow, now).is_err());
    }
}
