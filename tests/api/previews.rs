//! Impact previews (AIP-163 validate_only) over a real socket: RetireToken,
//! SetApplicationState, BatchSetApplicationStates, UpdateMember and RemoveMember say what they
//! would do (who used the tokens lately, whose privilege drops, whether the caller may) and
//! change nothing: no write, no change-log entry, no audit entry, no cache forgotten.

use crate::common::{As, Backend, TestApp, spawn_app};
use api_tokens::grpc::pb;
use tonic::Code;

async fn log_and_audit(app: &TestApp) -> (i64, i64) {
    (
        app.database.count("SELECT COUNT(*) FROM change_log").await,
        app.database
            .count("SELECT COUNT(*) FROM audit_events")
            .await,
    )
}

async fn flush_evidence(app: TestApp) -> TestApp {
    // Evidence is written behind: a graceful restart writes it now.
    app.restart().await
}

/// RetireToken with validate_only, as `who`.
async fn retire_preview(
    app: &TestApp,
    who: &As,
    id: &str,
) -> Result<tonic::Response<pb::RetireTokenResponse>, tonic::Status> {
    app.tokens
        .clone()
        .retire_token(who.req(pb::RetireTokenRequest {
            id: id.into(),
            validate_only: true,
        }))
        .await
}

/// UpdateMember with validate_only, as `who`.
async fn role_change_preview(
    app: &TestApp,
    who: &As,
    user_id: &str,
    role: pb::Privilege,
) -> pb::UpdateMemberResponse {
    app.accounts
        .clone()
        .update_member(who.req(pb::UpdateMemberRequest {
            user_id: user_id.into(),
            role: role.into(),
            validate_only: true,
        }))
        .await
        .expect("preview")
        .into_inner()
}

/// RemoveMember with validate_only, as `who`: its preview.
async fn removal_preview(app: &TestApp, who: &As, user_id: &str) -> pb::ImpactPreview {
    app.accounts
        .clone()
        .remove_member(who.req(pb::RemoveMemberRequest {
            user_id: user_id.into(),
            validate_only: true,
        }))
        .await
        .expect("preview")
        .into_inner()
        .preview
        .expect("preview")
}

async fn retire_preview_lists_recent_users_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    for name in ["grafana", "grafana", "terraform"] {
        let reply = app.authorize(&secret, name, pb::Privilege::ReadOnly).await;
        assert_eq!(reply.decision(), pb::Decision::Allow);
    }
    let app = flush_evidence(app).await;
    let before = log_and_audit(&app).await;
    let reply = retire_preview(&app, &app.admin, &token.id)
        .await
        .expect("preview");
    assert!(
        reply
            .metadata()
            .get(api_tokens::grpc::REVISION_HEADER)
            .is_none(),
        "a preview commits nothing, so it has no revision"
    );
    let reply = reply.into_inner();
    let preview = reply.preview.expect("preview");
    assert!(preview.permitted);
    assert_eq!(preview.usage_window_days, 30);
    assert_eq!(
        reply.token.expect("token as it would be").state(),
        pb::TokenState::Retired
    );
    let mut names: Vec<_> = preview
        .recently_used
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.evidence.clone().unwrap_or_default().allowed_count,
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, [("grafana".into(), 2), ("terraform".into(), 1)]);
    assert_eq!(preview.privilege_drops.len(), 1);
    assert_eq!(
        preview.privilege_drops[0].after(),
        pb::Privilege::Unspecified
    );
    // Nothing changed: the token works, and nothing was logged or audited.
    assert_eq!(log_and_audit(&app).await, before);
    assert_eq!(
        app.authorize(&secret, "grafana", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow
    );
    // The caller may not: said in the preview, not as an error.
    let (_, read_only, own) = app
        .member_with_token("ro@example.com", pb::Privilege::ReadOnly)
        .await;
    let preview = retire_preview(&app, &read_only, &own.id)
        .await
        .expect("preview of a refused retire")
        .into_inner()
        .preview
        .expect("preview");
    assert!(!preview.permitted);
    assert_eq!(preview.denied_reason, "READ_ONLY_CALLER");
    assert!(preview.recently_used.is_empty());
    // A token the caller cannot see stays NOT_FOUND: a preview reveals no more than the change.
    let (_, normal, _) = app
        .member_with_token("normal@example.com", pb::Privilege::Normal)
        .await;
    let err = retire_preview(&app, &normal, &token.id)
        .await
        .expect_err("invisible");
    assert_eq!(err.code(), Code::NotFound);
}

async fn decision_previews_say_what_would_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    app.authorize(&secret, "busy", pb::Privilege::ReadOnly)
        .await;
    let app = flush_evidence(app).await;
    let before = log_and_audit(&app).await;
    let reply = app
        .tokens
        .clone()
        .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: "busy".into(),
            state: pb::AppState::Deny.into(),
            reason: "cleanup".into(),
            validate_only: true,
            ..Default::default()
        }))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(
        reply.application.expect("as it would be").state(),
        pb::AppState::Deny
    );
    let preview = reply.preview.expect("preview");
    assert!(preview.permitted);
    assert_eq!(preview.recently_used.len(), 1);
    assert_eq!(preview.recently_used[0].name, "busy");
    assert_eq!(log_and_audit(&app).await, before);
    assert_eq!(
        app.authorize(&secret, "busy", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow,
        "still allowed: the warm entry was not touched"
    );

    let reply = app
        .tokens
        .clone()
        .batch_set_application_states(app.admin.req(pb::BatchSetApplicationStatesRequest {
            decisions: vec![
                pb::ApplicationDecision {
                    token_id: token.id.clone(),
                    name: "busy".into(),
                    state: pb::AppState::Deny.into(),
                    conditions: None,
                },
                pb::ApplicationDecision {
                    token_id: token.id.clone(),
                    name: "never-seen".into(),
                    state: pb::AppState::Allow.into(),
                    conditions: None,
                },
            ],
            reason: "cleanup".into(),
            validate_only: true,
        }))
        .await
        .expect("batch preview")
        .into_inner();
    assert_eq!(reply.results.len(), 2);
    assert!(reply.results.iter().all(|r| r.code == 0 && r.changed));
    assert!(reply.preview.expect("preview").permitted);
    assert_eq!(log_and_audit(&app).await, before);
    let names = app.applications(&token.id).await;
    assert_eq!(names.len(), 1, "the preview recorded no new name");
}

async fn member_previews_name_the_tokens_whose_privilege_drops(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user_id, member, _) = app
        .member_with_token("dev@example.com", pb::Privilege::Admin)
        .await;
    let (admin_token, admin_secret) = app
        .issue_token(
            "dev@example.com",
            Some(api_tokens::domain::Privilege::Admin),
        )
        .await;
    let (read_token, _) = app
        .issue_token(
            "dev@example.com",
            Some(api_tokens::domain::Privilege::ReadOnly),
        )
        .await;
    app.authorize(&admin_secret, "deployer", pb::Privilege::Admin)
        .await;
    let app = flush_evidence(app).await;
    let before = log_and_audit(&app).await;
    let reply = role_change_preview(&app, &app.admin, &user_id, pb::Privilege::Normal).await;
    assert_eq!(
        reply.member.expect("as it would be").role(),
        pb::Privilege::Normal
    );
    let preview = reply.preview.expect("preview");
    assert!(preview.permitted);
    let dropped: Vec<_> = preview
        .privilege_drops
        .iter()
        .map(|d| d.token_id.clone())
        .collect();
    assert!(dropped.contains(&admin_token.id), "{dropped:?}");
    assert!(
        !dropped.contains(&read_token.id),
        "a Read-Only token loses nothing"
    );
    assert!(
        preview
            .privilege_drops
            .iter()
            .all(|d| d.before() == pb::Privilege::Admin && d.after() == pb::Privilege::Normal)
    );
    assert!(
        preview
            .recently_used
            .iter()
            .any(|a| a.name == "deployer" && a.token_id == admin_token.id)
    );
    assert_eq!(log_and_audit(&app).await, before);

    let preview = removal_preview(&app, &app.admin, &user_id).await;
    assert!(preview.permitted);
    assert!(
        preview.privilege_drops.len() >= 3,
        "every user token of theirs"
    );
    assert!(
        preview
            .privilege_drops
            .iter()
            .all(|d| d.after() == pb::Privilege::Unspecified)
    );
    assert_eq!(log_and_audit(&app).await, before);
    // The member still works.
    app.accounts
        .clone()
        .get_account(member.req(pb::GetAccountRequest {}))
        .await
        .expect("still a member");

    // Demoting the last Admin would be refused: the preview says so.
    let preview = role_change_preview(&app, &member, &app.admin_user_id, pb::Privilege::Normal)
        .await
        .preview
        .expect("preview");
    assert!(preview.permitted, "two Admins: one may be demoted");
    let (_, normal, _) = app
        .member_with_token("n@example.com", pb::Privilege::Normal)
        .await;
    let preview = removal_preview(&app, &normal, &user_id).await;
    assert!(!preview.permitted);
    assert_eq!(preview.denied_reason, "ADMIN_REQUIRED");
    assert!(preview.privilege_drops.is_empty());
}

on_both_backends!(
    retire_preview_lists_recent_users_and_changes_nothing,
    decision_previews_say_what_would_change,
    member_previews_name_the_tokens_whose_privilege_drops,
);
