//! The Circonus API Tokens page (the behaviour this service re-implements), walked top to
//! bottom over a real socket.

use crate::common::{As, Backend, spawn_app};
use api_tokens::grpc::pb;
use prost_types::FieldMask;
use tonic::Code;

async fn the_api_tokens_page_top_to_bottom(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = &app.admin;
    let mut tokens = app.tokens.clone();

    // Create a user token; its defaults are the careful ones: Read-Only, Pending.
    let created = tokens
        .create_token(admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner();
    let token = created.token.expect("token");
    assert_eq!(token.privilege(), pb::Privilege::ReadOnly);
    assert_eq!(token.default_app_state(), pb::AppState::Pending);
    let secret = created.secret;

    // Raise it, then lower it back to the lowest that works, as the page advises.
    for privilege in [pb::Privilege::Admin, pb::Privilege::ReadOnly] {
        let updated = tokens
            .update_token(admin.req(pb::UpdateTokenRequest {
                token: Some(pb::Token {
                    id: token.id.clone(),
                    privilege: privilege.into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["privilege".into()],
                }),
            }))
            .await
            .expect("update privilege")
            .into_inner()
            .token
            .expect("token");
        assert_eq!(updated.privilege(), privilege);
    }

    // A new application gets 401 while Pending, and appears under the token.
    let pending = app
        .authorize(&secret, "Terraform v0.12.x", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(
        (pending.decision(), pending.http_status),
        (pb::Decision::Pending, 401)
    );
    let apps = app.applications(&token.id).await;
    assert_eq!(apps.len(), 1);
    assert_eq!(
        (apps[0].name.as_str(), apps[0].state()),
        ("Terraform v0.12.x", pb::AppState::Pending)
    );

    // Allow it: it passes, with the token's Read-Only privilege and no more.
    tokens
        .set_application_state(admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: "Terraform v0.12.x".into(),
            state: pb::AppState::Allow.into(),
            ..Default::default()
        }))
        .await
        .expect("allow app");
    let allowed = app
        .authorize(&secret, "Terraform v0.12.x", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(
        (allowed.decision(), allowed.http_status),
        (pb::Decision::Allow, 200)
    );
    assert_eq!(
        allowed.principal.expect("principal").effective_privilege(),
        pb::Privilege::ReadOnly
    );
    let write = app
        .authorize(&secret, "Terraform v0.12.x", pb::Privilege::Normal)
        .await;
    assert_eq!(
        (write.decision(), write.http_status),
        (pb::Decision::InsufficientPrivilege, 403)
    );

    // Default Deny: a new application gets 403 and is recorded.
    tokens
        .update_token(admin.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: token.id.clone(),
                default_app_state: pb::AppState::Deny.into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["default_app_state".into()],
            }),
        }))
        .await
        .expect("default deny");
    let denied = app
        .authorize(&secret, "Grafana Translator", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(
        (denied.decision(), denied.http_status),
        (pb::Decision::Denied, 403)
    );
    let denied_apps = tokens
        .list_applications(admin.req(pb::ListApplicationsRequest {
            token_id: token.id.clone(),
            state: pb::AppState::Deny.into(),
            ..Default::default()
        }))
        .await
        .expect("list denied")
        .into_inner()
        .applications;
    assert_eq!(
        denied_apps
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["Grafana Translator"]
    );

    // Retire: every later use is refused, even by an allowed application, and it stays retired.
    let retired = tokens
        .retire_token(admin.req(pb::RetireTokenRequest {
            id: token.id.clone(),
            ..Default::default()
        }))
        .await
        .expect("retire")
        .into_inner()
        .token
        .expect("token");
    assert_eq!(retired.state(), pb::TokenState::Retired);
    let refused = app
        .authorize(&secret, "Terraform v0.12.x", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(
        (refused.decision(), refused.http_status),
        (pb::Decision::Retired, 401)
    );
    let as_retired = As::new(secret.clone(), "Terraform v0.12.x");
    let err = tokens
        .list_tokens(as_retired.req(pb::ListTokensRequest::default()))
        .await
        .expect_err("retired caller");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = tokens
        .update_token(admin.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: token.id.clone(),
                description: "revive".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["description".into()],
            }),
        }))
        .await
        .expect_err("retire is final");
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Promote: a Normal member's user token becomes an account token, seen only by Admins,
    // and it outlives the member's removal while their user tokens die.
    let (bob_id, bob, _) = app
        .member_with_token("bob@example.com", pb::Privilege::Normal)
        .await;
    let (integration, integration_secret) =
        app.allowed_user_token(&bob, pb::Privilege::Normal).await;
    let promoted = tokens
        .promote_token(admin.req(pb::PromoteTokenRequest {
            id: integration.id.clone(),
            ..Default::default()
        }))
        .await
        .expect("promote")
        .into_inner()
        .token
        .expect("token");
    assert_eq!(promoted.r#type(), pb::TokenType::Account);
    let err = tokens
        .get_token(bob.req(pb::GetTokenRequest {
            id: integration.id.clone(),
        }))
        .await
        .expect_err("hidden");
    assert_eq!(
        err.code(),
        Code::NotFound,
        "an account token is invisible to a non-admin, even its creator"
    );
    let err = tokens
        .promote_token(admin.req(pb::PromoteTokenRequest {
            id: integration.id.clone(),
            ..Default::default()
        }))
        .await
        .expect_err("no demotion, no second promotion");
    assert_eq!(err.code(), Code::FailedPrecondition);

    app.accounts
        .clone()
        .remove_member(admin.req(pb::RemoveMemberRequest {
            user_id: bob_id,
            ..Default::default()
        }))
        .await
        .expect("remove bob");
    let orphan = app
        .authorize(&bob.secret, "test-suite", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(
        (orphan.decision(), orphan.http_status),
        (pb::Decision::OwnerRemoved, 401)
    );
    let survivor = app
        .authorize(&integration_secret, "CI deploys", pb::Privilege::Normal)
        .await;
    assert_eq!(
        survivor.decision(),
        pb::Decision::Allow,
        "the promoted token survives its creator's removal"
    );

    // The audit log saw every step.
    let actions: Vec<String> = tokens
        .list_audit_events(admin.req(pb::ListAuditEventsRequest {
            page_size: 100,
            ..Default::default()
        }))
        .await
        .expect("audit")
        .into_inner()
        .audit_events
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in [
        "token.create",
        "token.update",
        "application.set_state",
        "token.retire",
        "token.promote",
        "member.remove",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "audit log lacks {action}: {actions:?}"
        );
    }
    app.stop().await;
}

/// Lowering a member's role caps their tokens from the very next request.
async fn lowering_a_role_caps_the_members_tokens_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user_id, carol, token) = app
        .member_with_token("carol@example.com", pb::Privilege::Normal)
        .await;
    assert_eq!(token.effective_privilege(), pb::Privilege::Normal);
    let before = app
        .authorize(&carol.secret, "deployer", pb::Privilege::Normal)
        .await;
    assert_eq!(before.decision(), pb::Decision::Allow);
    app.set_role(&app.admin, &user_id, pb::Privilege::ReadOnly)
        .await
        .expect("demote carol");
    let after = app
        .authorize(&carol.secret, "deployer", pb::Privilege::Normal)
        .await;
    assert_eq!(after.decision(), pb::Decision::InsufficientPrivilege);
    let shown = app.token(&token.id).await;
    assert_eq!(
        (shown.privilege(), shown.effective_privilege()),
        (pb::Privilege::Normal, pb::Privilege::ReadOnly),
        "the grant is kept, the effect is capped"
    );
    app.stop().await;
}

/// The last Admin can be neither demoted nor removed.
async fn the_account_keeps_an_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut accounts = app.accounts.clone();
    for result in [
        app.set_role(&app.admin, &app.admin_user_id, pb::Privilege::Normal)
            .await,
        accounts
            .remove_member(app.admin.req(pb::RemoveMemberRequest {
                user_id: app.admin_user_id.clone(),
                ..Default::default()
            }))
            .await
            .map(drop),
    ] {
        assert_eq!(
            result.expect_err("last admin").code(),
            Code::FailedPrecondition
        );
    }
    app.stop().await;
}

on_both_backends!(
    the_api_tokens_page_top_to_bottom,
    lowering_a_role_caps_the_members_tokens_at_once,
    the_account_keeps_an_admin,
);
