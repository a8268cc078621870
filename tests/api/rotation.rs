//! Rotation with an overlap, through the real server with two replicas on both backends: the
//! old secret stops at once (overlap 0), at the overlap's end, or at the end of an overlap
//! started by the new secret's first use, on every replica; a rotated-out secret used after
//! its overlap is refused as unknown and recorded once (and may retire the token); two
//! rotations racing leave one secret; a stream opened with the old secret ends with it.

use std::time::Duration;

use crate::common::calls::{authorize_on, authorize_request, rotate, set_retire_on_reuse};
use crate::common::clock::sleep_past;
use crate::common::{As, Backend, TestApp, spawn_app};
use api_tokens::grpc::pb;
use api_tokens::grpc::pb::authorize_service_client::AuthorizeServiceClient;
use chrono::DateTime;
use tonic::Code;
use tonic::transport::Channel;

type Decider = AuthorizeServiceClient<Channel>;

/// The decision for `secret` once the replica has applied `revision` (empty: now).
async fn decide(client: &Decider, secret: &str, revision: &str) -> pb::Decision {
    let request = pb::AuthorizeRequest {
        min_revision: revision.into(),
        ..authorize_request(secret, "deploys", pb::Privilege::Unspecified, "")
    };
    authorize_on(client, request).await.decision()
}

/// Waits (bounded) until `secret` is decided `expected` on `client`: for what no write
/// announces (an overlap's end) or what a follower applies behind.
async fn until_decided(client: &Decider, secret: &str, expected: pb::Decision) {
    for _ in 0..200 {
        if decide(client, secret, "").await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never decided {expected:?}");
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.database.count(sql).await
}

async fn overlap_zero_stops_the_old_secret_at_once_on_every_replica(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
    for client in [&app.authorize, &other.authorize] {
        assert_eq!(decide(client, &old, "").await, pb::Decision::Allow);
    }
    let audited = count(
        &app,
        "SELECT COUNT(*) FROM audit_events WHERE action = 'token.rotate'",
    )
    .await;
    let (rotated, new, revision) = rotate(&app, &app.admin, &token.id, 0, false)
        .await
        .expect("rotate");
    assert_eq!(rotated.id, token.id, "same token");
    assert_ne!(new, old);
    assert!(rotated.rotate_time.is_some());
    for client in [&app.authorize, &other.authorize] {
        assert_eq!(
            decide(client, &old, &revision).await,
            pb::Decision::UnknownToken
        );
        assert_eq!(decide(client, &new, &revision).await, pb::Decision::Allow);
    }
    // Same applications and states, and the rotation is audited.
    let apps = app.applications(&token.id).await;
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].state(), pb::AppState::Allow);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'token.rotate'"
        )
        .await,
        audited + 1
    );
}

async fn the_old_secret_works_on_every_replica_until_the_overlap_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
    for client in [&app.authorize, &other.authorize] {
        assert_eq!(decide(client, &old, "").await, pb::Decision::Allow);
    }
    let (rotated, new, revision) = rotate(&app, &app.admin, &token.id, 2, false)
        .await
        .expect("rotate");
    let previous = rotated.previous_secret.expect("the old secret overlaps");
    let end = previous.end_time.expect("an end");
    assert_eq!(
        end.seconds - previous.rotate_time.expect("rotated").seconds,
        2
    );
    for client in [&app.authorize, &other.authorize] {
        assert_eq!(decide(client, &old, &revision).await, pb::Decision::Allow);
        assert_eq!(decide(client, &new, &revision).await, pb::Decision::Allow);
    }
    let logged = count(&app, "SELECT COUNT(*) FROM change_log").await;
    sleep_past(DateTime::from_timestamp(end.seconds, end.nanos as u32).expect("end")).await;
    for client in [&app.authorize, &other.authorize] {
        assert_eq!(decide(client, &old, "").await, pb::Decision::UnknownToken);
        assert_eq!(decide(client, &new, "").await, pb::Decision::Allow);
    }
    // The overlap's end needed no write; the reuse after it is recorded once, behind.
    until_recorded(&app, &token.id).await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM change_log").await,
        logged + 1
    );
}

/// Waits (bounded) until a rotated-out secret's reuse is recorded for the token.
async fn until_recorded(app: &TestApp, token_id: &str) {
    let sql = "SELECT COUNT(*) FROM audit_events WHERE action = 'token.secret_reused'";
    for _ in 0..200 {
        if count(app, sql).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reuse of a secret of {token_id} was never recorded");
}

async fn the_overlap_may_start_at_the_new_secrets_first_use(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
    let (rotated, new, revision) = rotate(&app, &app.admin, &token.id, 1, true)
        .await
        .expect("rotate");
    let waiting = rotated.previous_secret.expect("the old secret waits");
    assert!(waiting.end_time.is_none());
    // Past what the overlap would have been, the old secret still works: nothing used the new one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for client in [&app.authorize, &other.authorize] {
        assert_eq!(decide(client, &old, &revision).await, pb::Decision::Allow);
    }
    assert!(
        app.token(&token.id)
            .await
            .previous_secret
            .expect("waits")
            .end_time
            .is_none()
    );
    // The new secret's first use, on the other replica, starts the overlap for every replica.
    assert_eq!(
        decide(&other.authorize, &new, "").await,
        pb::Decision::Allow
    );
    let started = app
        .token(&token.id)
        .await
        .previous_secret
        .expect("overlapping")
        .end_time
        .expect("the overlap started");
    sleep_past(DateTime::from_timestamp(started.seconds, started.nanos as u32).expect("end")).await;
    for client in [&app.authorize, &other.authorize] {
        until_decided(client, &old, pb::Decision::UnknownToken).await;
        assert_eq!(decide(client, &new, "").await, pb::Decision::Allow);
    }
}

async fn a_reused_secret_is_recorded_once_and_may_retire_the_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    // Without retire_on_reuse: refused and recorded, the token lives on.
    let (kept, old) = app.admin_user_token(pb::AppState::Allow).await;
    let (_, new, revision) = rotate(&app, &app.admin, &kept.id, 0, false)
        .await
        .expect("rotate");
    let flood: Vec<_> = (0..50)
        .map(|i| {
            let client = if i % 2 == 0 {
                app.authorize.clone()
            } else {
                other.authorize.clone()
            };
            let (old, revision) = (old.clone(), revision.clone());
            tokio::spawn(async move { decide(&client, &old, &revision).await })
        })
        .collect();
    for call in flood {
        assert_eq!(call.await.expect("call"), pb::Decision::UnknownToken);
    }
    until_recorded(&app, &kept.id).await;
    // Give both replicas' background writers time to try: still one record.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reused = "SELECT COUNT(*) FROM audit_events WHERE action = 'token.secret_reused'";
    assert_eq!(
        count(&app, reused).await,
        1,
        "one record for a flood of reuses"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM change_log WHERE detail LIKE '%secret_reused%'"
        )
        .await,
        1
    );
    assert_eq!(app.token(&kept.id).await.state(), pb::TokenState::Active);
    assert_eq!(decide(&app.authorize, &new, "").await, pb::Decision::Allow);

    // With retire_on_reuse: the token is retired, audited with the reason, on every replica.
    set_retire_on_reuse(&app, true).await;
    let (doomed, old) = app.admin_user_token(pb::AppState::Allow).await;
    let (_, new, revision) = rotate(&app, &app.admin, &doomed.id, 0, false)
        .await
        .expect("rotate");
    assert_eq!(
        decide(&other.authorize, &new, &revision).await,
        pb::Decision::Allow
    );
    assert_eq!(
        decide(&app.authorize, &old, &revision).await,
        pb::Decision::UnknownToken
    );
    for _ in 0..200 {
        if app.token(&doomed.id).await.state() == pb::TokenState::Retired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.token(&doomed.id).await.state(), pb::TokenState::Retired);
    for client in [&app.authorize, &other.authorize] {
        until_decided(client, &new, pb::Decision::Retired).await;
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'token.retire' AND reason LIKE '%retire_on_reuse%'").await,
        1
    );
}

async fn two_rotations_racing_leave_exactly_one_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
    let (a, b) = tokio::join!(
        rotate(&app, &app.admin, &token.id, 0, false),
        rotate(&app, &app.admin, &token.id, 0, false)
    );
    let (_, first, rev_a) = a.expect("both rotations are served, one after the other");
    let (_, second, rev_b) = b.expect("both rotations are served, one after the other");
    let revision = rev_a.max(rev_b);
    for client in [&app.authorize, &other.authorize] {
        let decisions = [
            decide(client, &old, &revision).await,
            decide(client, &first, &revision).await,
            decide(client, &second, &revision).await,
        ];
        assert_eq!(decisions[0], pb::Decision::UnknownToken);
        let allowed = decisions
            .iter()
            .filter(|d| **d == pb::Decision::Allow)
            .count();
        assert_eq!(allowed, 1, "exactly one secret works: {decisions:?}");
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'token.rotate'"
        )
        .await,
        2
    );
}

async fn a_stream_opened_with_the_old_secret_ends_with_its_overlap(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
    let caller = As::new(old.clone(), "deploys");
    // The caller's own application is allowed on its token: the stream may open.
    assert_eq!(decide(&app.authorize, &old, "").await, pb::Decision::Allow);
    let mut stream = app
        .tokens
        .clone()
        .watch_applications(caller.req(pb::WatchApplicationsRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("snapshot end")
        .expect("an item");
    assert_eq!(first.r#type(), pb::WatchEventType::SnapshotEnd);
    let (_, new, _) = rotate(&app, &app.admin, &token.id, 1, false)
        .await
        .expect("rotate");
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends once the old secret stops");
    assert_eq!(ended.code(), Code::Unauthenticated);
    // The new secret opens a stream as before.
    app.tokens
        .clone()
        .watch_applications(As::new(new, "deploys").req(pb::WatchApplicationsRequest::default()))
        .await
        .expect("watch with the new secret");
}

async fn rotation_follows_the_rules_of_who_may_change_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, normal, normal_token) = app
        .member_with_token("n@example.com", pb::Privilege::Normal)
        .await;
    let (_, other, _) = app
        .member_with_token("o@example.com", pb::Privilege::Normal)
        .await;
    let (_, read_only, read_only_token) = app
        .member_with_token("r@example.com", pb::Privilege::ReadOnly)
        .await;
    // Another member's token is not found; a Read-Only owner changes nothing.
    let err = rotate(&app, &other, &normal_token.id, 0, false)
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), Code::NotFound);
    let err = rotate(&app, &read_only, &read_only_token.id, 0, false)
        .await
        .expect_err("read-only");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = rotate(&app, &app.admin, &normal_token.id, 31 * 86_400, false)
        .await
        .expect_err("an overlap above 30 days");
    assert_eq!(err.code(), Code::InvalidArgument);
    // The owner rotates their own token; so may an Admin, who sees it.
    rotate(&app, &normal, &normal_token.id, 60, false)
        .await
        .expect("the owner");
    rotate(&app, &app.admin, &normal_token.id, 0, false)
        .await
        .expect("an Admin");
}

on_both_backends!(
    overlap_zero_stops_the_old_secret_at_once_on_every_replica,
    the_old_secret_works_on_every_replica_until_the_overlap_ends,
    the_overlap_may_start_at_the_new_secrets_first_use,
    a_reused_secret_is_recorded_once_and_may_retire_the_token,
    two_rotations_racing_leave_exactly_one_secret,
    a_stream_opened_with_the_old_secret_ends_with_its_overlap,
    rotation_follows_the_rules_of_who_may_change_a_token,
);
