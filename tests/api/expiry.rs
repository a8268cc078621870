//! Token expiry and the account policy, through the real server on both backends: a token
//! stops at its deadline on every replica with nothing written, the policy bounds lifetimes,
//! an expired token is never revived, and ListTokens finds what expires soon.

use std::time::Duration;

use crate::common::calls::{audit_log, authorize_on, authorize_request};
use crate::common::clock::{seconds, sleep_past, timestamp};
use crate::common::{As, Backend, TestApp, reason, spawn_app};
use api_tokens::grpc::pb;
use chrono::{DateTime, TimeDelta, Utc};
use prost_types::FieldMask;
use tonic::Code;

const DAY: i64 = 86_400;

async fn create(
    app: &TestApp,
    caller: &As,
    expire_time: Option<DateTime<Utc>>,
) -> Result<(pb::Token, String), tonic::Status> {
    let request = pb::CreateTokenRequest {
        expire_time: expire_time.map(timestamp),
        ..Default::default()
    };
    app.try_create_allowing_token(caller, request).await
}

async fn set_policy(
    app: &TestApp,
    caller: &As,
    policy: pb::AccountPolicy,
    paths: &[&str],
) -> Result<pb::AccountPolicy, tonic::Status> {
    app.accounts
        .clone()
        .set_account_policy(caller.req(pb::SetAccountPolicyRequest {
            policy: Some(policy),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        }))
        .await
        .map(|r| r.into_inner().policy.expect("policy"))
}

async fn update_expiry(
    app: &TestApp,
    caller: &As,
    id: &str,
    expire_time: Option<DateTime<Utc>>,
) -> Result<pb::Token, tonic::Status> {
    app.tokens
        .clone()
        .update_token(caller.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: id.into(),
                expire_time: expire_time.map(timestamp),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["expire_time".into()],
            }),
        }))
        .await
        .map(|r| r.into_inner().token.expect("token"))
}

async fn decide(
    client: &pb::authorize_service_client::AuthorizeServiceClient<tonic::transport::Channel>,
    secret: &str,
) -> pb::AuthorizeResponse {
    authorize_on(
        client,
        authorize_request(secret, "cron", pb::Privilege::Unspecified, ""),
    )
    .await
}

async fn an_expired_token_is_refused_at_its_deadline_on_every_replica_without_a_write(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let deadline = Utc::now() + TimeDelta::seconds(2);
    let (token, secret) = create(&app, &app.admin, Some(deadline))
        .await
        .expect("create");
    assert_eq!(
        token.expire_time,
        Some(timestamp(api_tokens::domain::truncate_to_micros(deadline)))
    );
    // Both replicas hold the grant warm before the deadline.
    for client in [&app.authorize, &other.authorize] {
        assert_eq!(
            decide(client, &secret).await.decision(),
            pb::Decision::Allow
        );
    }
    // Changes other than lifecycle notices (a sweeper may send the "expiring" one at any
    // moment: the token expires well within the shortest lead time).
    const CHANGES: &str =
        "SELECT (SELECT COUNT(*) FROM change_log) - (SELECT COUNT(*) FROM lifecycle_notices)";
    let logged = app.database.count(CHANGES).await;
    sleep_past(deadline).await;
    for client in [&app.authorize, &other.authorize] {
        let refused = decide(client, &secret).await;
        assert_eq!(refused.decision(), pb::Decision::Expired);
        assert_eq!(refused.http_status, 401);
        assert_eq!(refused.error_code, "Unauthorized.ExpiredToken");
        assert!(refused.reason.contains("expired"), "{}", refused.reason);
        assert!(refused.principal.is_none());
    }
    assert_eq!(
        app.database.count(CHANGES).await,
        logged,
        "expiry writes nothing but notices"
    );
    // As a credential, it is refused too.
    let err = app
        .tokens
        .clone()
        .list_tokens(As::new(secret.clone(), "cron").req(pb::ListTokensRequest::default()))
        .await
        .expect_err("an expired caller");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(reason(&err), "TOKEN_EXPIRED");
    let shown = app.token(&token.id).await;
    assert_eq!(shown.state(), pb::TokenState::Expired);
    assert_eq!(shown.effective_privilege(), pb::Privilege::Unspecified);
    let listed = |state: pb::TokenState| {
        app.token_ids(pb::ListTokensRequest {
            state: state.into(),
            ..Default::default()
        })
    };
    assert_eq!(
        listed(pb::TokenState::Expired).await,
        std::slice::from_ref(&token.id)
    );
    assert!(!listed(pb::TokenState::Active).await.contains(&token.id));
}

async fn the_account_policy_bounds_lifetimes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, normal, _) = app
        .member_with_token("n@example.com", pb::Privilege::Normal)
        .await;
    let shown = app
        .accounts
        .clone()
        .get_account(app.admin.req(pb::GetAccountRequest {}))
        .await
        .expect("get account")
        .into_inner()
        .policy
        .expect("policy");
    assert_eq!(
        shown.expiry_notice_lead_times,
        [seconds(30 * DAY), seconds(7 * DAY), seconds(DAY)],
        "the default lead times"
    );
    assert!(shown.max_token_lifetime.is_none() && !shown.require_expiry);
    // Without a policy a token may live without expiry.
    let (forever, _) = create(&app, &app.admin, None).await.expect("no expiry");
    assert!(forever.expire_time.is_none());

    let err = set_policy(&app, &normal, pb::AccountPolicy::default(), &[])
        .await
        .expect_err("Admins only");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "ADMIN_REQUIRED");
    let err = set_policy(
        &app,
        &app.admin,
        pb::AccountPolicy {
            max_token_lifetime: Some(seconds(DAY)),
            default_token_lifetime: Some(seconds(2 * DAY)),
            ..Default::default()
        },
        &[],
    )
    .await
    .expect_err("a default above the maximum");
    assert_eq!(err.code(), Code::InvalidArgument);

    let policy = set_policy(
        &app,
        &app.admin,
        pb::AccountPolicy {
            max_token_lifetime: Some(seconds(30 * DAY)),
            default_token_lifetime: Some(seconds(7 * DAY)),
            retire_on_reuse: true,
            ..Default::default()
        },
        &[
            "max_token_lifetime",
            "default_token_lifetime",
            "retire_on_reuse",
        ],
    )
    .await
    .expect("set policy");
    assert_eq!(policy.max_token_lifetime, Some(seconds(30 * DAY)));
    assert_eq!(
        policy.expiry_notice_lead_times.len(),
        3,
        "unnamed fields stay"
    );
    // The default lifetime applies when none is given.
    let (token, _) = create(&app, &normal, None).await.expect("default applied");
    let created = token.create_time.expect("created");
    assert_eq!(
        token.expire_time.expect("expiry").seconds - created.seconds,
        7 * DAY
    );
    let err = create(&app, &normal, Some(Utc::now() + TimeDelta::days(31)))
        .await
        .expect_err("above the maximum");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "LIFETIME_ABOVE_POLICY");
    let err = create(&app, &normal, Some(Utc::now() - TimeDelta::seconds(1)))
        .await
        .expect_err("in the past");
    assert_eq!(err.code(), Code::InvalidArgument);
    // No default and a maximum: every token must name its expiry, and may not drop it.
    set_policy(
        &app,
        &app.admin,
        pb::AccountPolicy::default(),
        &["default_token_lifetime"],
    )
    .await
    .expect("no default");
    let err = create(&app, &normal, None)
        .await
        .expect_err("expiry required");
    assert_eq!(reason(&err), "EXPIRY_REQUIRED");
    let err = update_expiry(&app, &normal, &token.id, None)
        .await
        .expect_err("an expiry may not be removed");
    assert_eq!(reason(&err), "EXPIRY_REQUIRED");
    let err = update_expiry(
        &app,
        &app.admin,
        &token.id,
        Some(Utc::now() + TimeDelta::days(60)),
    )
    .await
    .expect_err("nor pushed past the maximum");
    assert_eq!(reason(&err), "LIFETIME_ABOVE_POLICY");
    // require_expiry alone, without a maximum.
    set_policy(
        &app,
        &app.admin,
        pb::AccountPolicy {
            require_expiry: true,
            ..Default::default()
        },
        &["max_token_lifetime", "require_expiry"],
    )
    .await
    .expect("require expiry");
    assert_eq!(
        reason(&create(&app, &normal, None).await.expect_err("required")),
        "EXPIRY_REQUIRED"
    );
    let far = Utc::now() + TimeDelta::days(400);
    create(&app, &normal, Some(far))
        .await
        .expect("any future expiry");
    // The policy is audited.
    assert_eq!(
        app.database
            .count("SELECT COUNT(*) FROM audit_events WHERE action = 'account.set_policy'")
            .await,
        3
    );
}

async fn an_expired_token_is_never_revived_but_a_live_one_may_be_extended(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, normal, _) = app
        .member_with_token("n@example.com", pb::Privilege::Normal)
        .await;
    // Extended before its deadline, a token works on past it (the warm cache learns it).
    let soon = Utc::now() + TimeDelta::seconds(2);
    let (extended, extended_secret) = create(&app, &normal, Some(soon)).await.expect("create");
    assert_eq!(
        decide(&app.authorize, &extended_secret).await.decision(),
        pb::Decision::Allow
    );
    let later = Utc::now() + TimeDelta::hours(1);
    let updated = update_expiry(&app, &normal, &extended.id, Some(later))
        .await
        .expect("the owner extends it");
    assert_eq!(
        updated.expire_time,
        Some(timestamp(api_tokens::domain::truncate_to_micros(later)))
    );

    let (expiring, expiring_secret) = create(&app, &normal, Some(soon)).await.expect("create");
    sleep_past(soon).await;
    assert_eq!(
        decide(&app.authorize, &extended_secret).await.decision(),
        pb::Decision::Allow
    );
    assert_eq!(
        decide(&app.authorize, &expiring_secret).await.decision(),
        pb::Decision::Expired
    );
    // Neither its owner nor an Admin can revive it, nor change it otherwise, nor rotate it.
    for caller in [&normal, &app.admin] {
        let err = update_expiry(&app, caller, &expiring.id, Some(later))
            .await
            .expect_err("never revived");
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(reason(&err), "TOKEN_EXPIRED");
    }
    let err = app
        .tokens
        .clone()
        .rotate_token(app.admin.req(pb::RotateTokenRequest {
            id: expiring.id.clone(),
            ..Default::default()
        }))
        .await
        .expect_err("an expired token is not rotated");
    assert_eq!(reason(&err), "TOKEN_EXPIRED");
    assert_eq!(
        decide(&app.authorize, &expiring_secret).await.decision(),
        pb::Decision::Expired
    );
    // It may still be retired, for good.
    let retired = app
        .tokens
        .clone()
        .retire_token(normal.req(pb::RetireTokenRequest {
            id: expiring.id.clone(),
            validate_only: false,
        }))
        .await
        .expect("retire an expired token")
        .into_inner()
        .token
        .expect("token");
    assert_eq!(retired.state(), pb::TokenState::Retired);
}

async fn list_tokens_finds_what_expires_before_a_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let (hour, _) = create(&app, &app.admin, Some(Utc::now() + TimeDelta::hours(1)))
        .await
        .expect("create");
    create(&app, &app.admin, Some(Utc::now() + TimeDelta::days(10)))
        .await
        .expect("create");
    create(&app, &app.admin, None).await.expect("create");
    let listed = app
        .token_ids(pb::ListTokensRequest {
            expire_before: Some(timestamp(Utc::now() + TimeDelta::days(1))),
            ..Default::default()
        })
        .await;
    assert_eq!(listed, [hour.id]);
}

/// A policy change racing creates: the creates and the change are ordered one after the other
/// (the account row's lock), so no token made after the change (in the audit log's order)
/// breaks it. Each round in an account of its own; creates ask for 30 days, the policy allows 1.
async fn a_policy_change_racing_creates_binds_every_create_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut made, mut refused) = (0, 0);
    for round in 0..20 {
        let admin = app.second_account(&format!("race-{round}")).await;
        // Later each round, so some rounds land the change among the creates' transactions.
        let tighten = async {
            tokio::time::sleep(Duration::from_micros(round * 250)).await;
            set_policy(
                &app,
                &admin,
                pb::AccountPolicy {
                    max_token_lifetime: Some(seconds(DAY)),
                    ..Default::default()
                },
                &["max_token_lifetime"],
            )
            .await
        };
        let month = || Some(Utc::now() + TimeDelta::days(30));
        let (tightened, a, b, c, d) = tokio::join!(
            tighten,
            create(&app, &admin, month()),
            create(&app, &admin, month()),
            create(&app, &admin, month()),
            create(&app, &admin, month()),
        );
        tightened.expect("the policy is set");
        for result in [&a, &b, &c, &d] {
            match result {
                Ok(_) => made += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                    refused += 1;
                }
            }
        }
        let page = pb::ListAuditEventsRequest {
            page_size: 100,
            ..Default::default()
        };
        let mut log = audit_log(&app.tokens, &admin, page).await;
        log.reverse();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        let tightened_at = actions
            .iter()
            .position(|a| *a == "account.set_policy")
            .expect("the policy change is audited");
        assert!(
            !actions[tightened_at..].contains(&"token.create"),
            "round {round}: a token was made after the policy that forbids it: {actions:?}"
        );
    }
    println!("{made} creates landed before the policy change, {refused} after it");
}

on_both_backends!(
    an_expired_token_is_refused_at_its_deadline_on_every_replica_without_a_write,
    the_account_policy_bounds_lifetimes,
    an_expired_token_is_never_revived_but_a_live_one_may_be_extended,
    list_tokens_finds_what_expires_before_a_time,
    a_policy_change_racing_creates_binds_every_create_after_it,
);
