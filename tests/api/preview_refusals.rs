//! Every impact preview (validate_only) against retired, expired and promoted tokens and a
//! demoted caller answers as the change itself would: where a rule refuses the change, a
//! preview with `permitted: false` and the change's reason; where the change would be an error
//! for any other cause (a target the caller cannot see), the same error; where it would
//! succeed, a permitted preview. Each preview is asked first, then the change itself, and the
//! two answers compared.

use chrono::{TimeDelta, Utc};
use tonic::{Code, Status};

use crate::common::clock::{sleep_past, timestamp};
use crate::common::{As, Backend, TestApp, reason, spawn_app};
use api_tokens::grpc::pb;

/// The codes with which the rules refuse a change: a preview answers those as `permitted: false`.
fn is_rule(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::PermissionDenied | Code::FailedPrecondition
    )
}

/// The preview says what the change answered.
fn judge(what: &str, preview: Result<pb::ImpactPreview, Status>, change: Result<(), Status>) {
    match (preview, change) {
        (Ok(preview), Ok(())) => assert!(
            preview.permitted,
            "{what}: the change succeeded but its preview said {preview:?}"
        ),
        (Ok(preview), Err(refused)) if is_rule(&refused) => {
            assert!(
                !preview.permitted,
                "{what}: the change was refused ({refused:?}) but its preview permitted it"
            );
            assert_eq!(preview.denied_reason, reason(&refused), "{what}");
            assert!(!preview.denied_message.is_empty(), "{what}");
            assert!(preview.recently_used.is_empty(), "{what}");
            assert!(preview.privilege_drops.is_empty(), "{what}");
        }
        (Err(error), Err(refused)) if !is_rule(&refused) => {
            assert_eq!(error.code(), refused.code(), "{what}: {error:?}");
            assert_eq!(reason(&error), reason(&refused), "{what}");
        }
        (preview, change) => {
            panic!("{what}: the preview answered {preview:?} where the change answered {change:?}")
        }
    }
}

fn set_state_request(token_id: &str, validate_only: bool) -> pb::SetApplicationStateRequest {
    pb::SetApplicationStateRequest {
        token_id: token_id.into(),
        name: "ci-runner".into(),
        state: pb::AppState::Deny.into(),
        validate_only,
        ..Default::default()
    }
}

/// SetApplicationState's preview, then the change itself, as `who` on `token_id`.
async fn set_state(app: &TestApp, who: &As, token_id: &str, what: &str) {
    let mut tokens = app.tokens.clone();
    let preview = tokens
        .set_application_state(who.req(set_state_request(token_id, true)))
        .await
        .map(|r| r.into_inner().preview.expect("a preview"));
    let change = tokens
        .set_application_state(who.req(set_state_request(token_id, false)))
        .await
        .map(drop);
    judge(&format!("SetApplicationState {what}"), preview, change);
}

/// BatchSetApplicationStates' preview, then the batch itself: the same result for each decision.
async fn batch(app: &TestApp, who: &As, token_ids: &[&str], what: &str) {
    let request = |validate_only| pb::BatchSetApplicationStatesRequest {
        decisions: token_ids
            .iter()
            .map(|id| pb::ApplicationDecision {
                token_id: id.to_string(),
                name: "batch-runner".into(),
                state: pb::AppState::Deny.into(),
                conditions: None,
            })
            .collect(),
        reason: String::new(),
        validate_only,
    };
    let mut tokens = app.tokens.clone();
    let outcome = |r: &pb::ApplicationDecisionResult| (r.code, r.reason.clone());
    let preview = tokens
        .batch_set_application_states(who.req(request(true)))
        .await
        .map(|r| r.into_inner());
    let change = tokens
        .batch_set_application_states(who.req(request(false)))
        .await
        .map(|r| r.into_inner());
    match (preview, change) {
        (Ok(preview), Ok(change)) => {
            let previewed: Vec<_> = preview.results.iter().map(outcome).collect();
            let decided: Vec<_> = change.results.iter().map(outcome).collect();
            assert_eq!(previewed, decided, "BatchSetApplicationStates {what}");
            assert!(preview.preview.expect("a preview").permitted, "{what}");
        }
        (preview, change) => judge(
            &format!("BatchSetApplicationStates {what}"),
            preview.map(|r| r.preview.expect("a preview")),
            change.map(drop),
        ),
    }
}

/// RetireToken's preview, then the change itself.
async fn retire(app: &TestApp, who: &As, token_id: &str, what: &str) {
    let request = |validate_only| pb::RetireTokenRequest {
        id: token_id.into(),
        validate_only,
    };
    let mut tokens = app.tokens.clone();
    let preview = tokens
        .retire_token(who.req(request(true)))
        .await
        .map(|r| r.into_inner().preview.expect("a preview"));
    let change = tokens.retire_token(who.req(request(false))).await.map(drop);
    judge(&format!("RetireToken {what}"), preview, change);
}

/// UpdateMember's preview, then the change itself.
async fn update_member(app: &TestApp, who: &As, user_id: &str, role: pb::Privilege, what: &str) {
    let request = |validate_only| pb::UpdateMemberRequest {
        user_id: user_id.into(),
        role: role.into(),
        validate_only,
    };
    let mut accounts = app.accounts.clone();
    let preview = accounts
        .update_member(who.req(request(true)))
        .await
        .map(|r| r.into_inner().preview.expect("a preview"));
    let change = accounts
        .update_member(who.req(request(false)))
        .await
        .map(drop);
    judge(&format!("UpdateMember {what}"), preview, change);
}

/// RemoveMember's preview, then the change itself.
async fn remove_member(app: &TestApp, who: &As, user_id: &str, what: &str) {
    let request = |validate_only| pb::RemoveMemberRequest {
        user_id: user_id.into(),
        validate_only,
    };
    let mut accounts = app.accounts.clone();
    let preview = accounts
        .remove_member(who.req(request(true)))
        .await
        .map(|r| r.into_inner().preview.expect("a preview"));
    let change = accounts
        .remove_member(who.req(request(false)))
        .await
        .map(drop);
    judge(&format!("RemoveMember {what}"), preview, change);
}

async fn previews_answer_what_the_change_would_refuse(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin.clone();

    // A retired token: decisions on it are refused (TOKEN_RETIRED); retiring it again is fine.
    let (retired, _) = app.admin_user_token(pb::AppState::Allow).await;
    app.retire(&retired.id).await;
    set_state(&app, &admin, &retired.id, "on a retired token").await;
    batch(&app, &admin, &[&retired.id], "on a retired token").await;
    retire(&app, &admin, &retired.id, "of a retired token").await;

    // An expired token: decisions on it are refused (TOKEN_EXPIRED); it may still be retired.
    let deadline = Utc::now() + TimeDelta::seconds(2);
    let expiring = app
        .try_create_allowing_token(
            &admin,
            pb::CreateTokenRequest {
                expire_time: Some(timestamp(deadline)),
                ..Default::default()
            },
        )
        .await
        .expect("create an expiring token")
        .0;
    // A promoted token, and members to demote: an Admin made Read-Only, an Admin made Normal.
    let (_, owner, own) = app
        .member_with_token("owner@example.com", pb::Privilege::Normal)
        .await;
    app.promote(&own.id, pb::Privilege::Unspecified).await;
    let (read_only_id, read_only, read_only_token) = app
        .member_with_token("was-admin-ro@example.com", pb::Privilege::Admin)
        .await;
    let (normal_id, normal, _) = app
        .member_with_token("was-admin-n@example.com", pb::Privilege::Admin)
        .await;
    app.set_role(&admin, &read_only_id, pb::Privilege::ReadOnly)
        .await
        .expect("demote to Read-Only");
    app.set_role(&admin, &normal_id, pb::Privilege::Normal)
        .await
        .expect("demote to Normal");

    sleep_past(deadline).await;
    set_state(&app, &admin, &expiring.id, "on an expired token").await;
    batch(&app, &admin, &[&expiring.id], "on an expired token").await;
    batch(
        &app,
        &admin,
        &[&expiring.id, &retired.id, &own.id],
        "on expired, retired and promoted tokens",
    )
    .await;

    // The promoted token: an Admin may decide on it; its former owner no longer sees it.
    set_state(&app, &admin, &own.id, "on a promoted token, by an Admin").await;
    set_state(
        &app,
        &owner,
        &own.id,
        "on a promoted token, by its former owner",
    )
    .await;
    batch(
        &app,
        &owner,
        &[&own.id],
        "on a promoted token, by its former owner",
    )
    .await;
    retire(
        &app,
        &owner,
        &own.id,
        "of a promoted token, by its former owner",
    )
    .await;

    // The demoted callers: Read-Only changes nothing, Normal manages no members.
    let own_ro = read_only_token.id.as_str();
    set_state(&app, &read_only, own_ro, "by a caller demoted to Read-Only").await;
    batch(
        &app,
        &read_only,
        &[own_ro],
        "by a caller demoted to Read-Only",
    )
    .await;
    retire(&app, &read_only, own_ro, "by a caller demoted to Read-Only").await;
    let demoted = "by a caller demoted to Normal";
    update_member(&app, &normal, &read_only_id, pb::Privilege::Normal, demoted).await;
    remove_member(&app, &normal, &read_only_id, demoted).await;
    update_member(
        &app,
        &read_only,
        &normal_id,
        pb::Privilege::Admin,
        "by Read-Only",
    )
    .await;
    // The last Admin may not step down (LAST_ADMIN).
    let last = "of the last Admin";
    update_member(
        &app,
        &admin,
        &app.admin_user_id,
        pb::Privilege::Normal,
        last,
    )
    .await;
    remove_member(&app, &admin, &app.admin_user_id, last).await;

    // Last, as its change retires it: an expired token may be retired.
    retire(&app, &admin, &expiring.id, "of an expired token").await;
}

on_both_backends!(previews_answer_what_the_change_would_refuse);
