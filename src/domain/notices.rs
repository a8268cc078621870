//! Lifecycle notices: which "expiring", "expired" or "dormant" notice a token is due now,
//! by the account's policy. A notice is named by its kind, its lead time and the time it is
//! about (the expiry, or the last use): each name is sent once, so a changed expiry or a
//! new period of disuse earns notices of its own.
use chrono::{DateTime, TimeDelta, Utc};

use super::AccountPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// The token expires within `lead`.
    Expiring,
    /// The token reached its expiry.
    Expired,
    /// The token has not been used for the policy's dormant_after.
    Dormant,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Expiring => "expiring",
            NoticeKind::Expired => "expired",
            NoticeKind::Dormant => "dormant",
        }
    }
}

/// One notice due for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notice {
    pub kind: NoticeKind,
    /// For `Expiring`: the lead time it is for; zero otherwise.
    pub lead: TimeDelta,
    /// The time it is about: the expiry (expiring, expired), or the last use (dormant).
    pub about: DateTime<Utc>,
}

/// What the notices of a token are decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTimes {
    pub expires_at: Option<DateTime<Utc>>,
    /// Its last use, or its creation if never used.
    pub last_active: DateTime<Utc>,
}

impl AccountPolicy {
    /// The notices a token is due at `now` (at most one of each kind). Of the expiry lead
    /// times due, only the shortest: a token made to expire in five days hears of the
    /// seven-day lead time, and never of the thirty-day one it is already past. An expired
    /// token is not dormant; it is expired.
    pub fn notices_due(&self, token: TokenTimes, now: DateTime<Utc>) -> Vec<Notice> {
        let mut due = Vec::new();
        match token.expires_at {
            Some(at) if at <= now => due.push(Notice {
                kind: NoticeKind::Expired,
                lead: TimeDelta::zero(),
                about: at,
            }),
            Some(at) => {
                if let Some(lead) = self
                    .expiry_notice_lead_times
                    .iter()
                    .filter(|lead| at - now <= **lead)
                    .min()
                {
                    due.push(Notice {
                        kind: NoticeKind::Expiring,
                        lead: *lead,
                        about: at,
                    });
                }
            }
            None => {}
        }
        let expired = token.expires_at.is_some_and(|at| at <= now);
        if let Some(after) = self.dormant_after
            && !expired
            && now - token.last_active >= after
        {
            due.push(Notice {
                kind: NoticeKind::Dormant,
                lead: TimeDelta::zero(),
                about: token.last_active,
            });
        }
        due
    }

    /// The longest lead time: tokens expiring further off are due no notice yet.
    pub fn longest_notice_lead(&self) -> TimeDelta {
        self.expiry_notice_lead_times
            .iter()
            .max()
            .copied()
            .unwrap_or_else(TimeDelta::zero)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(1000 + days)
    }

    fn times(expires_in_days: Option<i64>, last_active_days_ago: i64) -> TokenTimes {
        TokenTimes {
            expires_at: expires_in_days.map(at),
            last_active: at(-last_active_days_ago),
        }
    }

    #[test]
    fn only_the_shortest_lead_time_due_is_sent() {
        let policy = AccountPolicy::default();
        let now = at(0);
        assert_eq!(policy.notices_due(times(Some(40), 0), now), vec![]);
        let kinds = |due: Vec<Notice>| due.iter().map(|n| (n.kind, n.lead)).collect::<Vec<_>>();
        assert_eq!(
            kinds(policy.notices_due(times(Some(30), 0), now)),
            [(NoticeKind::Expiring, TimeDelta::days(30))]
        );
        assert_eq!(
            kinds(policy.notices_due(times(Some(5), 0), now)),
            [(NoticeKind::Expiring, TimeDelta::days(7))]
        );
        assert_eq!(
            kinds(policy.notices_due(times(Some(0), 0), now)),
            [(NoticeKind::Expired, TimeDelta::zero())]
        );
    }

    #[test]
    fn dormant_after_the_policys_disuse_and_never_once_expired() {
        let policy = AccountPolicy {
            dormant_after: Some(TimeDelta::days(90)),
            ..AccountPolicy::default()
        };
        let now = at(0);
        assert_eq!(policy.notices_due(times(None, 89), now), vec![]);
        assert_eq!(
            policy.notices_due(times(None, 90), now),
            vec![Notice {
                kind: NoticeKind::Dormant,
                lead: TimeDelta::zero(),
                about: at(-90),
            }]
        );
        let expired = policy.notices_due(times(Some(-1), 200), now);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].kind, NoticeKind::Expired);
        assert_eq!(
            AccountPolicy::default().notices_due(times(None, 10_000), now),
            vec![],
            "no dormancy without a policy for it"
        );
    }
}
