//! An approval's cap binds management calls as it binds Authorize: the caller acts with exactly
//! what the decision grants, judged again under the write's locks, on every replica, and no
//! caller widens the approval it is calling with.

use crate::common::calls::{audit_log, authorize_on, authorize_request, revision_of};
use crate::common::{As, Backend, TestApp, reason, spawn_app};
use api_tokens::grpc::pb;
use tonic::{Code, Status};

/// An Admin user token of the bootstrap Admin, application `robot` allowed on it with
/// `conditions`: the capped caller the tests drive.
async fn capped_admin(app: &TestApp, conditions: pb::ApprovalConditions) -> (pb::Token, As) {
    let (token, secret) = app
        .create_token(
            &app.admin,
            pb::TokenType::User,
            pb::Privilege::Admin,
            pb::AppState::Pending,
        )
        .await;
    app.authorize(&secret, "robot", pb::Privilege::ReadOnly)
        .await;
    allow(app, &app.admin, &token.id, "robot", Some(conditions))
        .await
        .expect("conditional allow");
    (token, As::new(secret, "robot"))
}

fn cap(privilege: pb::Privilege) -> pb::ApprovalConditions {
    pb::ApprovalConditions {
        max_privilege: privilege.into(),
        ..Default::default()
    }
}

async fn allow(
    app: &TestApp,
    who: &As,
    token_id: &str,
    name: &str,
    conditions: Option<pb::ApprovalConditions>,
) -> Result<pb::Application, Status> {
    app.tokens
        .clone()
        .set_application_state(who.req(pb::SetApplicationStateRequest {
            token_id: token_id.into(),
            name: name.into(),
            state: pb::AppState::Allow.into(),
            conditions,
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner().application.expect("application"))
}

async fn create(
    app: &TestApp,
    who: &As,
    kind: pb::TokenType,
    privilege: pb::Privilege,
) -> Result<(), Status> {
    app.tokens
        .clone()
        .create_token(who.req(pb::CreateTokenRequest {
            r#type: kind.into(),
            privilege: privilege.into(),
            default_app_state: pb::AppState::Pending.into(),
            description: "made by a capped caller".into(),
            ..Default::default()
        }))
        .await
        .map(drop)
}

async fn add_admin(app: &TestApp, who: &As, user_name: &str) -> Result<(), Status> {
    app.accounts
        .clone()
        .add_member(who.req(pb::AddMemberRequest {
            user_name: user_name.into(),
            role: pb::Privilege::Admin.into(),
        }))
        .await
        .map(drop)
}

async fn set_policy(app: &TestApp, who: &As) -> Result<(), Status> {
    app.accounts
        .clone()
        .set_account_policy(who.req(pb::SetAccountPolicyRequest {
            policy: Some(pb::AccountPolicy {
                require_expiry: true,
                ..Default::default()
            }),
            update_mask: None,
        }))
        .await
        .map(drop)
}

fn refusal(result: Result<impl std::fmt::Debug, Status>) -> (Code, String) {
    let status = result.expect_err("refused");
    (status.code(), reason(&status))
}

fn denied(why: &str) -> (Code, String) {
    (Code::PermissionDenied, why.to_owned())
}

async fn a_read_only_cap_makes_an_admins_token_a_read_only_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, robot) = capped_admin(&app, cap(pb::Privilege::ReadOnly)).await;
    let read_only = denied("READ_ONLY_CALLER");
    assert_eq!(refusal(add_admin(&app, &robot, "mallory").await), read_only);
    let made = create(&app, &robot, pb::TokenType::Account, pb::Privilege::Admin).await;
    assert_eq!(refusal(made), read_only);
    assert_eq!(refusal(set_policy(&app, &robot).await), read_only);
    // Lifting its own cap would be a write too.
    let lifted = allow(&app, &robot, &token.id, "robot", None).await;
    assert_eq!(refusal(lifted), read_only);
    // The account sees the caller as what it is.
    let seen = app
        .accounts
        .clone()
        .get_account(robot.req(pb::GetAccountRequest::default()))
        .await
        .expect("a read")
        .into_inner();
    assert_eq!(seen.caller_privilege(), pb::Privilege::ReadOnly);
    // A Read-Only caller sees only its owner's user tokens, never an account token.
    let (account_token, _) = app.account_token(pb::Privilege::ReadOnly).await;
    let listed = app
        .tokens
        .clone()
        .list_tokens(robot.req(pb::ListTokensRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.tokens.iter().all(|t| t.id != account_token.id));
    // Nothing the refused calls asked for happened.
    let audit = audit_log(
        &app.tokens,
        &app.admin,
        pb::ListAuditEventsRequest::default(),
    )
    .await;
    assert!(
        audit.iter().all(|e| e.actor_token_id != token.id),
        "the capped caller changed something: {audit:?}"
    );
}

async fn a_normal_cap_refuses_admin_work_and_grants_above_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, robot) = capped_admin(&app, cap(pb::Privilege::Normal)).await;
    let made = create(
        &app,
        &robot,
        pb::TokenType::Account,
        pb::Privilege::ReadOnly,
    )
    .await;
    assert_eq!(refusal(made), denied("ADMIN_REQUIRED"));
    let made = create(&app, &robot, pb::TokenType::User, pb::Privilege::Admin).await;
    assert_eq!(refusal(made), denied("PRIVILEGE_ABOVE_CALLER"));
    assert_eq!(
        refusal(add_admin(&app, &robot, "mallory").await),
        denied("ADMIN_REQUIRED")
    );
    assert_eq!(
        refusal(set_policy(&app, &robot).await),
        denied("ADMIN_REQUIRED")
    );
    // What a Normal caller may do, it does.
    create(&app, &robot, pb::TokenType::User, pb::Privilege::Normal)
        .await
        .expect("a Normal caller makes a Normal token");
    let other = allow(&app, &robot, &token.id, "other-app", None).await;
    assert_eq!(
        other.expect("another name on its own token").state(),
        pb::AppState::Allow
    );
}

async fn no_caller_widens_its_own_approval(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, robot) = capped_admin(&app, cap(pb::Privilege::Normal)).await;
    let own_approval = denied("OWN_APPROVAL");
    assert_eq!(
        refusal(allow(&app, &robot, &token.id, "robot", None).await),
        own_approval
    );
    let raised = allow(
        &app,
        &robot,
        &token.id,
        "robot",
        Some(cap(pb::Privilege::Admin)),
    )
    .await;
    assert_eq!(refusal(raised), own_approval);
    // The same through the batch: that decision is refused, the call is not.
    let batch = app
        .tokens
        .clone()
        .batch_set_application_states(robot.req(pb::BatchSetApplicationStatesRequest {
            decisions: vec![pb::ApplicationDecision {
                token_id: token.id.clone(),
                name: "robot".into(),
                state: pb::AppState::Allow.into(),
                conditions: None,
            }],
            ..Default::default()
        }))
        .await
        .expect("the batch is answered")
        .into_inner();
    assert_eq!(batch.results[0].reason, "OWN_APPROVAL");
    assert_eq!(batch.results[0].code, Code::PermissionDenied as i32);
    // Narrowing is allowed; then the narrower cap holds at once.
    allow(
        &app,
        &robot,
        &token.id,
        "robot",
        Some(cap(pb::Privilege::ReadOnly)),
    )
    .await
    .expect("a caller narrows its own approval");
    let made = create(&app, &robot, pb::TokenType::User, pb::Privilege::ReadOnly).await;
    assert_eq!(refusal(made), denied("READ_ONLY_CALLER"));
    // Another caller (the Admin's own token) may lift it.
    allow(&app, &app.admin, &token.id, "robot", None)
        .await
        .expect("the Admin lifts the cap");
    add_admin(&app, &robot, "second-admin")
        .await
        .expect("uncapped, the Admin token acts as an Admin");
}

/// A cap set on one replica binds the caller's management calls on another, and a write
/// that raced the cap is judged under its locks with the cap as it stands.
async fn a_cap_set_later_binds_every_replica_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, robot) = capped_admin(&app, cap(pb::Privilege::Admin)).await;
    let second = app.second_replica().await;
    // Warm both replicas with the uncapped caller.
    create(&app, &robot, pb::TokenType::User, pb::Privilege::Admin)
        .await
        .expect("uncapped");
    let on_second = second
        .tokens
        .clone()
        .list_tokens(robot.req(pb::ListTokensRequest::default()))
        .await;
    on_second.expect("the second replica knows the caller");
    let capped = app
        .tokens
        .clone()
        .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: "robot".into(),
            state: pb::AppState::Allow.into(),
            conditions: Some(cap(pb::Privilege::ReadOnly)),
            ..Default::default()
        }))
        .await
        .expect("capped");
    let revision = revision_of(capped.metadata());
    // The next write anywhere is judged with the cap: the second replica may not have
    // applied the change yet when it authenticates, but the write's own check under its
    // locks reads the approval as it stands.
    let made = second
        .tokens
        .clone()
        .create_token(robot.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            privilege: pb::Privilege::ReadOnly.into(),
            default_app_state: pb::AppState::Pending.into(),
            ..Default::default()
        }))
        .await;
    assert_eq!(refusal(made), denied("READ_ONLY_CALLER"));
    let mut request = authorize_request(&robot.secret, "robot", pb::Privilege::Normal, "");
    request.min_revision = revision;
    let decided = authorize_on(&second.authorize, request).await;
    assert_eq!(decided.decision(), pb::Decision::InsufficientPrivilege);
}

/// Writes racing a cap: every write the capped caller made landed before the cap's change
/// committed; none after it.
async fn writes_racing_a_cap_never_land_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, robot) = capped_admin(&app, cap(pb::Privilege::Admin)).await;
    let writer = {
        let (app_tokens, robot) = (app.tokens.clone(), robot.clone());
        tokio::spawn(async move {
            let mut landed = 0;
            for _ in 0..40 {
                let made = app_tokens
                    .clone()
                    .create_token(robot.req(pb::CreateTokenRequest {
                        r#type: pb::TokenType::User.into(),
                        privilege: pb::Privilege::Normal.into(),
                        default_app_state: pb::AppState::Pending.into(),
                        ..Default::default()
                    }))
                    .await;
                match made {
                    Ok(_) => landed += 1,
                    Err(status) => assert_eq!(
                        (status.code(), reason(&status).as_str()),
                        (Code::PermissionDenied, "READ_ONLY_CALLER"),
                        "{status:?}"
                    ),
                }
            }
            landed
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    allow(
        &app,
        &app.admin,
        &token.id,
        "robot",
        Some(cap(pb::Privilege::ReadOnly)),
    )
    .await
    .expect("capped");
    let landed = writer.await.expect("writer");
    let everything = pb::ListAuditEventsRequest {
        page_size: 500,
        ..Default::default()
    };
    let audit = audit_log(&app.tokens, &app.admin, everything).await;
    // Newest first: nothing by the capped token comes before (after, in time) the cap.
    let cap_at = audit
        .iter()
        .position(|e| e.action == "application.set_state" && e.actor_token_id != token.id)
        .expect("the cap's audit entry");
    let after_cap = audit[..cap_at]
        .iter()
        .filter(|e| e.actor_token_id == token.id)
        .count();
    assert_eq!(
        after_cap,
        0,
        "writes landed after the cap: {:?}",
        &audit[..cap_at]
    );
    let before_cap = audit[cap_at..]
        .iter()
        .filter(|e| e.action == "token.create" && e.actor_token_id == token.id)
        .count();
    assert_eq!(
        before_cap, landed,
        "every acknowledged create is in the log"
    );
}

/// A second account's capped Admin is capped in its own account and sees nothing of ours.
async fn a_cap_in_one_account_leaves_the_other_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, robot) = capped_admin(&app, cap(pb::Privilege::ReadOnly)).await;
    let other_admin = app.second_account("globex").await;
    // The other account's Admin is unaffected by our cap...
    add_admin(&app, &other_admin, "someone@globex")
        .await
        .expect("an uncapped Admin of the other account");
    // ...and our capped caller cannot reach the other account's tokens at all.
    let (theirs, _) = crate::common::create_token_on(
        &app.channel,
        &other_admin,
        (
            pb::TokenType::User,
            pb::Privilege::Normal,
            pb::AppState::Allow,
        ),
    )
    .await;
    let touched = app
        .tokens
        .clone()
        .retire_token(robot.req(pb::RetireTokenRequest {
            id: theirs.id.clone(),
            ..Default::default()
        }))
        .await;
    assert_eq!(refusal(touched), denied("READ_ONLY_CALLER"));
}

on_both_backends!(
    a_read_only_cap_makes_an_admins_token_a_read_only_caller,
    a_normal_cap_refuses_admin_work_and_grants_above_it,
    no_caller_widens_its_own_approval,
    a_cap_set_later_binds_every_replica_at_once,
    writes_racing_a_cap_never_land_after_it,
    a_cap_in_one_account_leaves_the_other_alone,
);
