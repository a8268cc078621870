//! Security boundaries of issue 10: writes racing a retire, a promotion or a demotion; what a
//! promotion may grant; credentials that say two things; invisible characters in names; and
//! answers that equal what a later read returns. Races run both calls at once for many rounds.

use crate::common::{Backend, TestApp, bad_fields, reason, spawn_app};
use api_tokens::grpc::pb;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost_types::Timestamp;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Rounds per race: each round is one pair of concurrent calls on a fresh token.
const ROUNDS: usize = 100;

fn at(t: &Option<Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp");
    (t.seconds, t.nanos)
}

/// The newest audit entries of the account, newest first: (action, target id).
async fn recent_audit(app: &TestApp, n: i32) -> Vec<(String, String)> {
    app.tokens
        .clone()
        .list_audit_events(app.admin.req(pb::ListAuditEventsRequest {
            page_size: n,
            ..Default::default()
        }))
        .await
        .expect("audit log")
        .into_inner()
        .audit_events
        .into_iter()
        .map(|e| (e.action, e.target_id))
        .collect()
}

/// Asserts `earlier` was logged before `later` (the log lists newest first).
async fn assert_logged_before(app: &TestApp, earlier: (&str, &str), later: (&str, &str)) {
    let log = recent_audit(app, 20).await;
    let position = |(action, target): (&str, &str)| {
        log.iter()
            .position(|(a, t)| a == action && t == target)
            .unwrap_or_else(|| panic!("{action} {target} not in {log:?}"))
    };
    assert!(
        position(later) < position(earlier),
        "{} must be logged before {}: {log:?}",
        earlier.0,
        later.0
    );
}

/// Runs `race` and a RetireToken of `token_id` by the Admin at once; `race`'s outcome and
/// the retired token.
async fn while_retiring<F: Future>(
    app: &TestApp,
    token_id: &str,
    race: F,
) -> (F::Output, pb::Token) {
    let mut tokens = app.tokens.clone();
    let retire = tokens.retire_token(app.admin.req(pb::RetireTokenRequest {
        id: token_id.into(),
        ..Default::default()
    }));
    let (raced, retired) = tokio::join!(race, retire);
    (
        raced,
        retired.expect("retire").into_inner().token.expect("token"),
    )
}

/// A decision that lost to a retire: refused TOKEN_RETIRED.
fn assert_refused_as_retired(status: &Status) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(status), "TOKEN_RETIRED");
}

/// A decision on application `name` of `token_id` that won a race: audited before `later`
/// (the retire or the promotion of the token).
async fn assert_decision_logged_before(app: &TestApp, token_id: &str, name: &str, later: &str) {
    let target = format!("{token_id}/{name}");
    assert_logged_before(app, ("application.set_state", &target), (later, token_id)).await;
}

/// SetApplicationState racing RetireToken: the loser is refused TOKEN_RETIRED, and no
/// application changes after the retire.
async fn set_application_state_never_lands_after_a_retire(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut refused, mut landed) = (0, 0);
    for round in 0..ROUNDS {
        let (token, _) = app.admin_user_token(pb::AppState::Pending).await;
        let name = format!("race-{round}");
        let mut tokens = app.tokens.clone();
        let set = tokens.set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: name.clone(),
            state: pb::AppState::Allow.into(),
            ..Default::default()
        }));
        let (set, retired) = while_retiring(&app, &token.id, set).await;
        match set {
            Ok(_) => {
                landed += 1;
                assert_decision_logged_before(&app, &token.id, &name, "token.retire").await;
            }
            Err(status) => {
                refused += 1;
                assert_refused_as_retired(&status);
            }
        }
        for a in app.applications(&token.id).await {
            assert!(
                at(&a.update_time) <= at(&retired.retire_time),
                "round {round}: {} changed after the retire",
                a.name
            );
        }
    }
    eprintln!("set_application_state vs retire: {landed} landed first, {refused} refused");
    app.stop().await;
}

/// GetInstallCommand's pre-allow racing RetireToken.
async fn install_pre_allow_never_lands_after_a_retire(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..ROUNDS {
        let (token, _) = app.admin_user_token(pb::AppState::Pending).await;
        let mut tokens = app.tokens.clone();
        let install = tokens.get_install_command(app.admin.req(pb::GetInstallCommandRequest {
            token_id: token.id.clone(),
            broker_id: String::new(),
        }));
        let (install, retired) = while_retiring(&app, &token.id, install).await;
        match install {
            Ok(install) => {
                let name = install.into_inner().app_name;
                assert_decision_logged_before(&app, &token.id, &name, "token.retire").await;
            }
            Err(status) => assert_refused_as_retired(&status),
        }
        for a in app.applications(&token.id).await {
            assert!(
                at(&a.update_time) <= at(&retired.retire_time),
                "round {round}: the pre-allow landed after the retire"
            );
        }
    }
    app.stop().await;
}

/// Authorize's first use of a name racing RetireToken: a name is never recorded, nor a
/// request allowed, after the retire.
async fn first_use_never_lands_after_a_retire(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..ROUNDS {
        let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
        let name = format!("first-use-{round}");
        let mut authorize = app.authorize.clone();
        let first_use = authorize.authorize(pb::AuthorizeRequest {
            token: secret.clone(),
            app_name: name.clone(),
            required_privilege: pb::Privilege::ReadOnly.into(),
            ..Default::default()
        });
        let (decision, retired) = while_retiring(&app, &token.id, first_use).await;
        let decision = decision.expect("authorize").into_inner();
        let recorded = app.applications(&token.id).await;
        for a in &recorded {
            assert!(
                at(&a.first_seen_time) <= at(&retired.retire_time),
                "round {round}: {} recorded after the retire",
                a.name
            );
        }
        if decision.decision() == pb::Decision::Allow {
            assert!(
                recorded.iter().any(|a| a.name == name),
                "round {round}: allowed without the name recorded before the retire"
            );
        }
    }
    app.stop().await;
}

/// SetApplicationState by a token's Normal owner racing its promotion to an account token:
/// the owner either changed it while it was theirs, or gets NOT_FOUND.
async fn former_owner_cannot_write_after_a_promotion(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, bob, _) = app
        .member_with_token("bob@example.com", pb::Privilege::Normal)
        .await;
    let (mut refused, mut landed) = (0, 0);
    for round in 0..ROUNDS {
        let (target, _) = app.issue_token("bob@example.com", None).await;
        let name = format!("owner-race-{round}");
        let (mut first, mut second) = (app.tokens.clone(), app.tokens.clone());
        let (set, promote) = tokio::join!(
            first.set_application_state(bob.req(pb::SetApplicationStateRequest {
                token_id: target.id.clone(),
                name: name.clone(),
                state: pb::AppState::Allow.into(),
                ..Default::default()
            })),
            second.promote_token(app.admin.req(pb::PromoteTokenRequest {
                id: target.id.clone(),
                ..Default::default()
            })),
        );
        promote.expect("promote");
        match set {
            Ok(_) => {
                landed += 1;
                assert_decision_logged_before(&app, &target.id, &name, "token.promote").await;
            }
            Err(status) => {
                refused += 1;
                assert_eq!(status.code(), Code::NotFound, "round {round}: {status:?}");
            }
        }
    }
    eprintln!("owner's set_application_state vs promote: {landed} landed first, {refused} refused");
    app.stop().await;
}

/// Two Admins demoting each other at once: one wins, the other is no longer an Admin and
/// is refused as such. Never INTERNAL (a deadlock), never both.
async fn admins_demoting_each_other_take_turns(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana_id, ana, _) = app
        .member_with_token("ana@example.com", pb::Privilege::Admin)
        .await;
    let (ben_id, ben, _) = app
        .member_with_token("ben@example.com", pb::Privilege::Admin)
        .await;
    for round in 0..ROUNDS {
        let (by_ana, by_ben) = tokio::join!(
            app.set_role(&ana, &ben_id, pb::Privilege::Normal),
            app.set_role(&ben, &ana_id, pb::Privilege::Normal),
        );
        for status in [&by_ana, &by_ben]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
        {
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "round {round}: {status:?}"
            );
            assert_eq!(reason(status), "ADMIN_REQUIRED");
        }
        assert_eq!(
            usize::from(by_ana.is_ok()) + usize::from(by_ben.is_ok()),
            1,
            "round {round}: exactly one demotion lands: {by_ana:?} {by_ben:?}"
        );
        for id in [&ana_id, &ben_id] {
            app.set_role(&app.admin, id, pb::Privilege::Admin)
                .await
                .expect("make an Admin again");
        }
    }
    app.stop().await;
}

fn privilege_in(event: &Option<prost_types::Struct>) -> String {
    match event
        .as_ref()
        .and_then(|s| s.fields.get("privilege"))
        .and_then(|v| v.kind.as_ref())
    {
        Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("no privilege in the audit entry: {other:?}"),
    }
}

/// A demoted member's Admin token does not become an Admin account token by promotion,
/// unless the promoting Admin says so; the audit entry shows both privileges.
async fn promotion_never_raises_privilege(backend: Backend) {
    let app = spawn_app(backend).await;
    let (cat_id, cat, cat_token) = app
        .member_with_token("cat@example.com", pb::Privilege::Admin)
        .await;
    assert_eq!(cat_token.privilege(), pb::Privilege::Admin);
    app.set_role(&app.admin, &cat_id, pb::Privilege::Normal)
        .await
        .expect("demote");
    let promoted = app.promote(&cat_token.id, pb::Privilege::Unspecified).await;
    assert_eq!(promoted.privilege(), pb::Privilege::Normal);
    assert_eq!(promoted.effective_privilege(), pb::Privilege::Normal);
    let status = app
        .tokens
        .clone()
        .list_audit_events(cat.req(pb::ListAuditEventsRequest::default()))
        .await
        .expect_err("the demoted member's secret does not act as an Admin");
    assert_eq!(status.code(), Code::PermissionDenied);
    let entry = app
        .tokens
        .clone()
        .list_audit_events(app.admin.req(pb::ListAuditEventsRequest {
            target_id: cat_token.id.clone(),
            ..Default::default()
        }))
        .await
        .expect("audit")
        .into_inner()
        .audit_events
        .into_iter()
        .find(|e| e.action == "token.promote")
        .expect("the promotion is audited");
    assert_eq!(privilege_in(&entry.before), "admin");
    assert_eq!(privilege_in(&entry.after), "normal");

    // The promoting Admin may set it in the same call.
    let (dan_id, _, dan_token) = app
        .member_with_token("dan@example.com", pb::Privilege::Admin)
        .await;
    app.set_role(&app.admin, &dan_id, pb::Privilege::ReadOnly)
        .await
        .expect("demote");
    let promoted = app.promote(&dan_token.id, pb::Privilege::Admin).await;
    assert_eq!(promoted.privilege(), pb::Privilege::Admin);

    // A removed owner has no role: the token keeps Read-Only.
    let (eve_id, _, eve_token) = app
        .member_with_token("eve@example.com", pb::Privilege::Normal)
        .await;
    app.accounts
        .clone()
        .remove_member(app.admin.req(pb::RemoveMemberRequest {
            user_id: eve_id,
            ..Default::default()
        }))
        .await
        .expect("remove");
    let promoted = app.promote(&eve_token.id, pb::Privilege::Unspecified).await;
    assert_eq!(promoted.privilege(), pb::Privilege::ReadOnly);
    app.stop().await;
}

/// Every write's answer equals what a later read returns, to the microsecond.
async fn answers_equal_later_reads(backend: Backend) {
    let app = spawn_app(backend).await;
    let (created, _) = app.admin_user_token(pb::AppState::Pending).await;
    assert_eq!(created, app.token(&created.id).await);

    let updated = app
        .tokens
        .clone()
        .update_token(app.admin.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: created.id.clone(),
                description: "CI".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
        }))
        .await
        .expect("update")
        .into_inner()
        .token
        .expect("token");
    assert_eq!(updated, app.token(&created.id).await);

    let set = app
        .tokens
        .clone()
        .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: created.id.clone(),
            name: "Terraform v0.12.x".into(),
            state: pb::AppState::Allow.into(),
            ..Default::default()
        }))
        .await
        .expect("set state")
        .into_inner()
        .application
        .expect("application");
    assert_eq!(vec![set], app.applications(&created.id).await);

    let promoted = app.promote(&created.id, pb::Privilege::Unspecified).await;
    assert_eq!(promoted, app.token(&created.id).await);

    let retire = pb::RetireTokenRequest {
        id: created.id.clone(),
        ..Default::default()
    };
    let mut tokens = app.tokens.clone();
    let retired = tokens
        .retire_token(app.admin.req(retire.clone()))
        .await
        .expect("retire")
        .into_inner()
        .token;
    assert_eq!(retired.as_ref(), Some(&app.token(&created.id).await));
    let again = tokens
        .retire_token(app.admin.req(retire))
        .await
        .expect("retire again")
        .into_inner()
        .token;
    assert_eq!(again, retired, "retiring twice changes nothing");

    let added = app
        .accounts
        .clone()
        .add_member(app.admin.req(pb::AddMemberRequest {
            user_name: "fay@example.com".into(),
            role: pb::Privilege::Normal.into(),
        }))
        .await
        .expect("add member")
        .into_inner()
        .member
        .expect("member");
    let changed = app
        .accounts
        .clone()
        .update_member(app.admin.req(pb::UpdateMemberRequest {
            user_id: added.user_id.clone(),
            role: pb::Privilege::ReadOnly.into(),
            ..Default::default()
        }))
        .await
        .expect("update member")
        .into_inner()
        .member
        .expect("member");
    let listed = app
        .accounts
        .clone()
        .list_members(app.admin.req(pb::ListMembersRequest::default()))
        .await
        .expect("members")
        .into_inner()
        .members
        .into_iter()
        .find(|m| m.user_id == added.user_id)
        .expect("listed");
    assert_eq!(changed, listed);
    assert_eq!(added.create_time, listed.create_time);
    app.stop().await;
}

/// Bidirectional controls and zero-width characters make one name read as another.
async fn invisible_characters_are_refused_in_names(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in [
        "admin@example.com\u{202E}",
        "ad\u{200B}min@example.com",
        "\u{2066}admin@example.com",
        "admin\u{FEFF}@example.com",
    ] {
        let status = app
            .accounts
            .clone()
            .add_member(app.admin.req(pb::AddMemberRequest {
                user_name: name.into(),
                role: pb::Privilege::Normal.into(),
            }))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}");
        assert_eq!(bad_fields(&status), vec!["user_name".to_owned()]);
    }
    let status = app
        .tokens
        .clone()
        .create_token(app.admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            description: "deploys \u{202E}gnp.exe".into(),
            ..Default::default()
        }))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), vec!["description".to_owned()]);
    let refused = app
        .local
        .bootstrap(
            "ac\u{200D}me",
            api_tokens::domain::UserName::parse("x@example.com").expect("name"),
        )
        .await
        .expect_err("account names too");
    assert!(
        matches!(refused, api_tokens::service::ServiceError::InvalidArgument(ref v) if v[0].field == "account"),
        "{refused:?}"
    );
    app.stop().await;
}

/// Management calls: Basic credentials split at the last colon, and credentials that say
/// two things are refused.
async fn management_credentials_are_unambiguous(backend: Backend) {
    let app = spawn_app(backend).await;
    let install = app.install_command(&app.admin_token_id).await;
    assert!(
        !install.command.contains("--key") && !install.command.contains(&app.admin.secret),
        "{}",
        install.command
    );
    assert!(
        install
            .command
            .contains("COSI_KEY=\"$CIRCONUS_API_KEY\" bash -s --")
    );

    let mut request = tonic::Request::new(pb::GetTokenRequest {
        id: app.admin_token_id.clone(),
    });
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", install.app_name, app.admin.secret))
    );
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(basic.as_str()).expect("ascii"),
    );
    app.tokens
        .clone()
        .get_token(request)
        .await
        .expect("the installer's app name works in Basic credentials");

    let (_, other) = app.admin_user_token(pb::AppState::Allow).await;
    let mut request = app.admin.req(pb::GetTokenRequest {
        id: app.admin_token_id.clone(),
    });
    request.metadata_mut().append(
        "x-circonus-auth-token",
        MetadataValue::try_from(other.as_str()).expect("ascii"),
    );
    let status = app
        .tokens
        .clone()
        .get_token(request)
        .await
        .expect_err("two tokens");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "AMBIGUOUS_CREDENTIALS");
    app.stop().await;
}

on_both_backends!(
    set_application_state_never_lands_after_a_retire,
    install_pre_allow_never_lands_after_a_retire,
    first_use_never_lands_after_a_retire,
    former_owner_cannot_write_after_a_promotion,
    admins_demoting_each_other_take_turns,
    promotion_never_raises_privilege,
    answers_equal_later_reads,
    invisible_characters_are_refused_in_names,
    management_credentials_are_unambiguous,
);
