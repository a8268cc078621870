//! Unit tests of the caller rules: visibility, promotion, creation, approval caps and own approvals.
use super::*;
use chrono::Utc;

fn caller(privilege: Privilege, member: Option<Uuid>) -> Caller {
    Caller {
        account_id: Uuid::nil(),
        token_id: Uuid::new_v4(),
        token_type: TokenType::User,
        member_id: member,
        privilege,
        app: AppName::parse("test-app").unwrap(),
        client: None,
        secret: SecretUse::Current,
    }
}

fn grant_of(caller: &Caller, privilege: Privilege) -> TokenGrant {
    TokenGrant {
        token_id: caller.token_id,
        account_id: caller.account_id,
        token_type: caller.token_type,
        owner_id: caller.member_id,
        privilege,
        default_app_state: AppState::Pending,
        retired: false,
        owner: OwnerStatus::Member(Privilege::Admin),
        bound_ranges: Default::default(),
        expires_at: None,
        secret: SecretUse::Current,
    }
}

fn allowed_with(conditions: Option<Conditions>) -> AppStanding {
    AppStanding {
        state: AppState::Allow,
        conditions: conditions.map(std::sync::Arc::new),
    }
}

#[test]
fn a_caller_acts_with_its_approvals_cap_and_is_refused_once_it_lapses() {
    let now = Utc::now();
    let admin = caller(Privilege::Admin, Some(Uuid::new_v4()));
    let grant = grant_of(&admin, Privilege::Admin);
    let capped = allowed_with(Some(Conditions {
        max_privilege: Some(Privilege::ReadOnly),
        until: Some(now + chrono::TimeDelta::seconds(10)),
        ..Default::default()
    }));
    let judged = admin.judged_again(&grant, Some(&capped), now).unwrap();
    assert_eq!(judged.privilege, Privilege::ReadOnly);
    assert_eq!(judged.require_write(), Err(PolicyDenial::ReadOnly));
    let later = now + chrono::TimeDelta::seconds(10);
    assert_eq!(
        admin.judged_again(&grant, Some(&capped), later),
        Err(Decision::Pending)
    );
    assert_eq!(
        admin.judged_again(&grant, None, now),
        Err(Decision::Pending)
    );
    let denied = AppStanding::plain(AppState::Deny);
    assert_eq!(
        admin.judged_again(&grant, Some(&denied), now),
        Err(Decision::Denied)
    );
}

#[test]
fn nobody_widens_their_own_approval() {
    let now = Utc::now();
    let me = caller(Privilege::Normal, Some(Uuid::new_v4()));
    let own = me.app.clone();
    let other = AppName::parse("other-app").unwrap();
    let bound = Conditions {
        max_privilege: Some(Privilege::Normal),
        until: Some(now + chrono::TimeDelta::hours(1)),
        ..Default::default()
    };
    let current = allowed_with(Some(bound.clone()));
    let allow = AppState::Allow;
    // Lifting the conditions, or any one of them, widens it.
    assert_eq!(
        me.may_change_own_approval(me.token_id, &own, Some(&current), allow, None),
        Err(PolicyDenial::OwnApproval)
    );
    let later = Conditions {
        until: Some(now + chrono::TimeDelta::hours(2)),
        ..bound.clone()
    };
    assert_eq!(
        me.may_change_own_approval(me.token_id, &own, Some(&current), allow, Some(&later)),
        Err(PolicyDenial::OwnApproval)
    );
    // The same or narrower is allowed; so is Deny or Pending.
    let sooner = Conditions {
        until: Some(now + chrono::TimeDelta::minutes(5)),
        max_privilege: Some(Privilege::ReadOnly),
        ..Default::default()
    };
    for ok in [&bound, &sooner] {
        assert_eq!(
            me.may_change_own_approval(me.token_id, &own, Some(&current), allow, Some(ok)),
            Ok(())
        );
    }
    assert_eq!(
        me.may_change_own_approval(me.token_id, &own, Some(&current), AppState::Deny, None),
        Ok(())
    );
    // A plain approval is the widest: nothing widens it. Other names and tokens are
    // not this rule's concern.
    let plain = allowed_with(None);
    assert_eq!(
        me.may_change_own_approval(me.token_id, &own, Some(&plain), allow, None),
        Ok(())
    );
    assert_eq!(
        me.may_change_own_approval(me.token_id, &other, Some(&current), allow, None),
        Ok(())
    );
    assert_eq!(
        me.may_change_own_approval(Uuid::new_v4(), &own, Some(&current), allow, None),
        Ok(())
    );
}

fn token(token_type: TokenType, owner: Option<Uuid>) -> Token {
    let now = Utc::now();
    Token {
        id: Uuid::new_v4(),
        account_id: Uuid::nil(),
        token_type,
        owner_id: owner,
        privilege: Privilege::ReadOnly,
        default_app_state: AppState::Allow,
        description: Description::default(),
        creator_id: owner,
        created_at: now,
        updated_at: now,
        retired_at: None,
        promoted_at: None,
        last_used_at: None,
        bound_ranges: Default::default(),
        expires_at: None,
        rotated_at: None,
        previous_secret: None,
    }
}

#[test]
fn visibility_follows_the_circonus_page() {
    let me = Uuid::new_v4();
    let other = Uuid::new_v4();
    let normal = caller(Privilege::Normal, Some(me));
    assert!(normal.can_see(&token(TokenType::User, Some(me))));
    assert!(!normal.can_see(&token(TokenType::User, Some(other))));
    assert!(!normal.can_see(&token(TokenType::Account, None)));
    let admin = caller(Privilege::Admin, Some(me));
    assert!(admin.can_see(&token(TokenType::Account, None)));
    assert!(admin.can_see(&token(TokenType::User, Some(other))));
    let mut foreign = token(TokenType::User, Some(me));
    foreign.account_id = Uuid::new_v4();
    assert!(!admin.can_see(&foreign));
}

#[test]
fn promotion_never_raises_privilege() {
    let admin = caller(Privilege::Admin, Some(Uuid::new_v4()));
    let demoted = OwnerStatus::Member(Privilege::Normal);
    assert_eq!(
        admin.promoted_privilege(Privilege::Admin, demoted, None),
        Ok(Privilege::Normal)
    );
    assert_eq!(
        admin.promoted_privilege(Privilege::Admin, OwnerStatus::Removed, None),
        Ok(Privilege::ReadOnly)
    );
    assert_eq!(
        admin.promoted_privilege(Privilege::ReadOnly, demoted, Some(Privilege::Admin)),
        Ok(Privilege::Admin)
    );
    let capped = Caller {
        privilege: Privilege::Normal,
        ..admin
    };
    assert!(matches!(
        capped.promoted_privilege(Privilege::Normal, demoted, Some(Privilege::Admin)),
        Err(PolicyDenial::AboveOwnPrivilege { .. })
    ));
}

#[test]
fn creation_rules() {
    let me = Some(Uuid::new_v4());
    assert_eq!(
        caller(Privilege::ReadOnly, me).may_create(TokenType::User, Privilege::ReadOnly),
        Err(PolicyDenial::ReadOnly)
    );
    assert_eq!(
        caller(Privilege::Normal, me).may_create(TokenType::Account, Privilege::ReadOnly),
        Err(PolicyDenial::AdminRequired)
    );
    assert!(matches!(
        caller(Privilege::Normal, me).may_create(TokenType::User, Privilege::Admin),
        Err(PolicyDenial::AboveOwnPrivilege { .. })
    ));
    assert_eq!(
        caller(Privilege::Normal, me).may_create(TokenType::User, Privilege::Normal),
        Ok(())
    );
    assert_eq!(
        caller(Privilege::Admin, None).may_create(TokenType::User, Privilege::Normal),
        Err(PolicyDenial::NoUserToOwn)
    );
    assert_eq!(
        caller(Privilege::Admin, None).may_create(TokenType::Account, Privilege::Admin),
        Ok(())
    );
}
