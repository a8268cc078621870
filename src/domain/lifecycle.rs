//! A token's lifetime and secrets: the account's token policy (lifetimes, notices, reuse),
//! the expiry it sets, and rotation with an overlap.
use chrono::{DateTime, TimeDelta, Utc};

use super::time::{later_by, latest, truncate_span_to_micros};
use super::{FieldViolation, Precondition};

/// The account's rules for token lifetimes and lifecycle notices, set by Admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    /// The longest a token may live from the moment its expiry is set; `None`: no limit.
    /// A limit also means every token must expire.
    pub max_token_lifetime: Option<TimeDelta>,
    /// Every new token must have an expiry.
    pub require_expiry: bool,
    /// The lifetime a new token gets when its maker gives no expiry.
    pub default_token_lifetime: Option<TimeDelta>,
    /// How long before expiry each "expiring" notice goes, longest first.
    pub expiry_notice_lead_times: Vec<TimeDelta>,
    /// A token unused this long is dormant; `None`: never.
    pub dormant_after: Option<TimeDelta>,
    /// Retire a token when a rotated-out secret of it is used after its overlap.
    pub retire_on_reuse: bool,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        AccountPolicy {
            max_token_lifetime: None,
            require_expiry: false,
            default_token_lifetime: None,
            expiry_notice_lead_times: Self::default_notice_lead_times(),
            dormant_after: None,
            retire_on_reuse: false,
        }
    }
}

/// Why an asked expiry is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryRefusal {
    /// An expiry must be in the future: a token is never made (or revived) expired.
    NotInFuture,
    /// The policy's rules for lifetimes refuse it.
    Policy(Precondition),
    /// None was asked, and the default lifetime from now ends past 9999-12-31 (which
    /// `LONGEST` keeps from happening for centuries).
    DefaultPastLatest,
}

impl AccountPolicy {
    /// The most expiry notices a policy may ask for.
    pub const MAX_NOTICES: usize = 10;
    /// The longest span a policy may set: 100 years of 365.25 days.
    pub const LONGEST: TimeDelta = TimeDelta::days(36_525);

    /// 30, 7 and 1 days, as GitLab warns.
    pub fn default_notice_lead_times() -> Vec<TimeDelta> {
        vec![TimeDelta::days(30), TimeDelta::days(7), TimeDelta::days(1)]
    }

    /// Checks a policy an Admin asks for, naming every bad field; sorts the lead times
    /// (longest first, each once) and fills in the default for none.
    pub fn validated(mut self) -> Result<AccountPolicy, Vec<FieldViolation>> {
        let mut bad = Vec::new();
        let mut check = |field: &str, value: Option<TimeDelta>| {
            if let Some(Err(e)) = value.map(Self::span) {
                bad.push(FieldViolation::new(field, e));
            }
        };
        check("policy.max_token_lifetime", self.max_token_lifetime);
        check("policy.default_token_lifetime", self.default_token_lifetime);
        check("policy.dormant_after", self.dormant_after);
        for (i, lead) in self.expiry_notice_lead_times.iter().enumerate() {
            check(
                &format!("policy.expiry_notice_lead_times[{i}]"),
                Some(*lead),
            );
        }
        if let (Some(default), Some(max)) = (self.default_token_lifetime, self.max_token_lifetime)
            && default > max
        {
            bad.push(FieldViolation::new(
                "policy.default_token_lifetime",
                "must be at most max_token_lifetime",
            ));
        }
        if self.expiry_notice_lead_times.len() > Self::MAX_NOTICES {
            bad.push(FieldViolation::new(
                "policy.expiry_notice_lead_times",
                format!("at most {} lead times", Self::MAX_NOTICES),
            ));
        }
        if !bad.is_empty() {
            return Err(bad);
        }
        if self.expiry_notice_lead_times.is_empty() {
            self.expiry_notice_lead_times = Self::default_notice_lead_times();
        }
        self.expiry_notice_lead_times.sort_by(|a, b| b.cmp(a));
        self.expiry_notice_lead_times.dedup();
        Ok(self)
    }

    /// Checks one of a policy's spans: positive, whole seconds (what is stored), at most
    /// `LONGEST` (so now plus it is a time every client can read, for centuries to come).
    fn span(value: TimeDelta) -> Result<(), String> {
        if value <= TimeDelta::zero() {
            return Err("must be positive when set".into());
        }
        if value.subsec_nanos() != 0 {
            return Err("must be a whole number of seconds".into());
        }
        if value > Self::LONGEST {
            return Err("must be at most 36,525 days (100 years)".into());
        }
        Ok(())
    }

    /// Whether every token must expire: asked for, or implied by a maximum lifetime.
    pub fn requires_expiry(&self) -> bool {
        self.require_expiry || self.max_token_lifetime.is_some()
    }

    /// The expiry of a new token whose maker asked for `asked`, at `now`: the asked one if
    /// the policy allows it, else the policy's default lifetime, else none if allowed.
    pub fn expiry_for_new(
        &self,
        asked: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ExpiryRefusal> {
        match (asked, self.default_token_lifetime) {
            (None, Some(lifetime)) => later_by(now, lifetime)
                .map(Some)
                .ok_or(ExpiryRefusal::DefaultPastLatest),
            (asked, _) => self.expiry_set(asked, now),
        }
    }

    /// An expiry set on an existing token at `now` (by UpdateToken or RotateToken): `None`
    /// removes it, which the policy may refuse; a new one is judged as a new token's.
    pub fn expiry_set(
        &self,
        asked: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ExpiryRefusal> {
        let Some(at) = asked else {
            return if self.requires_expiry() {
                Err(ExpiryRefusal::Policy(Precondition::ExpiryRequired))
            } else {
                Ok(None)
            };
        };
        if at <= now {
            return Err(ExpiryRefusal::NotInFuture);
        }
        if self.max_token_lifetime.is_some_and(|max| at - now > max) {
            return Err(ExpiryRefusal::Policy(Precondition::LifetimeAbovePolicy));
        }
        Ok(Some(at))
    }
}

/// What RotateToken asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// How long the old secret keeps working; zero stops it at once.
    pub overlap: TimeDelta,
    /// The overlap starts at the new secret's first use instead of now.
    pub from_first_use: bool,
}

impl Rotation {
    /// The longest overlap: two secrets working at once is a window to keep short.
    pub const MAX_OVERLAP: TimeDelta = TimeDelta::days(30);

    pub fn new(overlap: TimeDelta, from_first_use: bool) -> Result<Rotation, String> {
        if overlap < TimeDelta::zero() {
            return Err("must not be negative".into());
        }
        if overlap > Self::MAX_OVERLAP {
            return Err("must be at most 30 days".into());
        }
        Ok(Rotation {
            // The database keeps microseconds: what is answered is what is kept.
            overlap: truncate_span_to_micros(overlap),
            from_first_use,
        })
    }

    /// The secret this rotation puts out, as of `now`.
    pub fn rotated_out(&self, now: DateTime<Utc>) -> PreviousSecret {
        PreviousSecret {
            rotated_at: now,
            overlap: self.overlap,
            // Past the last representable time, it ends there: no secret outlives time.
            ends_at: (!self.from_first_use)
                .then(|| later_by(now, self.overlap).unwrap_or_else(latest)),
        }
    }
}

/// The secret a token rotated out last, while its overlap lasts or waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousSecret {
    pub rotated_at: DateTime<Utc>,
    pub overlap: TimeDelta,
    /// When it stops working; `None` while the overlap waits for the new secret's first use.
    pub ends_at: Option<DateTime<Utc>>,
}

/// Which of a token's secrets a call presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    /// The token's secret now.
    Current,
    /// A secret rotated out, working until `ends_at` (`None`: its overlap has not started).
    RotatedOut { ends_at: Option<DateTime<Utc>> },
}

impl SecretUse {
    /// A rotated-out secret whose overlap is over at `now`: refused, and its use recorded.
    pub fn is_reuse(self, now: DateTime<Utc>) -> bool {
        matches!(self, SecretUse::RotatedOut { ends_at: Some(end) } if end <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_default_lifetime_applies_only_when_none_is_asked() {
        let policy = AccountPolicy {
            default_token_lifetime: Some(TimeDelta::days(90)),
            ..Default::default()
        };
        assert_eq!(
            policy.expiry_for_new(None, now()),
            Ok(Some(now() + TimeDelta::days(90)))
        );
        let asked = now() + TimeDelta::days(400);
        assert_eq!(policy.expiry_for_new(Some(asked), now()), Ok(Some(asked)));
    }

    #[test]
    fn a_maximum_refuses_longer_and_no_expiry() {
        let policy = AccountPolicy {
            max_token_lifetime: Some(TimeDelta::days(30)),
            ..Default::default()
        };
        assert_eq!(
            policy.expiry_for_new(Some(now() + TimeDelta::days(31)), now()),
            Err(ExpiryRefusal::Policy(Precondition::LifetimeAbovePolicy))
        );
        assert_eq!(
            policy.expiry_for_new(None, now()),
            Err(ExpiryRefusal::Policy(Precondition::ExpiryRequired))
        );
        assert_eq!(
            policy.expiry_set(Some(now()), now()),
            Err(ExpiryRefusal::NotInFuture)
        );
        assert_eq!(
            AccountPolicy::default().expiry_for_new(None, now()),
            Ok(None)
        );
    }

    #[test]
    fn policies_are_checked_and_lead_times_sorted() {
        let policy = AccountPolicy {
            expiry_notice_lead_times: vec![TimeDelta::days(1), TimeDelta::days(14)],
            ..Default::default()
        }
        .validated()
        .unwrap();
        assert_eq!(
            policy.expiry_notice_lead_times,
            [TimeDelta::days(14), TimeDelta::days(1)]
        );
        let bad = AccountPolicy {
            max_token_lifetime: Some(TimeDelta::days(1)),
            default_token_lifetime: Some(TimeDelta::days(2)),
            dormant_after: Some(TimeDelta::zero()),
            ..Default::default()
        }
        .validated()
        .unwrap_err();
        let fields: Vec<_> = bad.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["policy.dormant_after", "policy.default_token_lifetime"]
        );
    }

    #[test]
    fn policy_spans_are_whole_seconds_up_to_a_century() {
        let with = |span: TimeDelta| AccountPolicy {
            max_token_lifetime: Some(span),
            default_token_lifetime: Some(span),
            dormant_after: Some(span),
            expiry_notice_lead_times: vec![TimeDelta::days(1), span],
            ..Default::default()
        };
        let fields = |policy: AccountPolicy| -> Vec<String> {
            policy
                .validated()
                .unwrap_err()
                .into_iter()
                .map(|v| v.field)
                .collect()
        };
        let all = [
            "policy.max_token_lifetime",
            "policy.default_token_lifetime",
            "policy.dormant_after",
            "policy.expiry_notice_lead_times[1]",
        ];
        for bad in [
            TimeDelta::milliseconds(86_400_500),
            TimeDelta::milliseconds(500),
            TimeDelta::nanoseconds(1),
            AccountPolicy::LONGEST + TimeDelta::seconds(1),
            TimeDelta::seconds(9_000_000_000_000),
            TimeDelta::MAX,
            TimeDelta::zero(),
        ] {
            assert_eq!(fields(with(bad)), all, "{bad:?}");
        }
        let longest = with(AccountPolicy::LONGEST).validated().unwrap();
        assert_eq!(longest.max_token_lifetime, Some(AccountPolicy::LONGEST));
    }

    #[test]
    fn a_default_lifetime_past_the_last_time_is_refused_not_a_panic() {
        let policy = AccountPolicy {
            default_token_lifetime: Some(TimeDelta::MAX),
            ..Default::default()
        };
        assert_eq!(
            policy.expiry_for_new(None, now()),
            Err(ExpiryRefusal::DefaultPastLatest)
        );
        let century = AccountPolicy {
            default_token_lifetime: Some(AccountPolicy::LONGEST),
            ..Default::default()
        };
        assert_eq!(
            century.expiry_for_new(None, now()),
            Ok(Some(now() + AccountPolicy::LONGEST))
        );
        assert_eq!(
            century.expiry_for_new(None, latest()),
            Err(ExpiryRefusal::DefaultPastLatest)
        );
    }

    #[test]
    fn an_overlap_is_kept_to_the_microsecond_and_ends_by_the_last_time() {
        let rotation = Rotation::new(TimeDelta::new(1, 1_500).unwrap(), false).unwrap();
        assert_eq!(rotation.overlap, TimeDelta::new(1, 1_000).unwrap());
        let last = rotation.rotated_out(latest());
        assert_eq!(last.ends_at, Some(latest()));
    }

    #[test]
    fn a_rotated_out_secret_is_reused_only_after_its_overlap() {
        let rotation = Rotation::new(TimeDelta::seconds(10), false).unwrap();
        let out = rotation.rotated_out(now());
        let used = SecretUse::RotatedOut {
            ends_at: out.ends_at,
        };
        assert!(!used.is_reuse(now() + TimeDelta::seconds(9)));
        assert!(used.is_reuse(now() + TimeDelta::seconds(10)));
        let waiting = Rotation::new(TimeDelta::seconds(10), true)
            .unwrap()
            .rotated_out(now());
        assert_eq!(waiting.ends_at, None);
        assert!(!SecretUse::RotatedOut { ends_at: None }.is_reuse(now()));
        assert!(Rotation::new(TimeDelta::days(31), false).is_err());
    }
}
