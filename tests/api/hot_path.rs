//! The hot path over a real socket: changes take effect on the very next call, first uses are
//! recorded exactly once, the flood cap, and last-used written behind (the query counts of a
//! warm Authorize are in warm_authorize.rs).

use std::time::Duration;

use crate::common::local::local_service;
use crate::common::{Backend, Spawn, spawn_app};
use api_tokens::domain::{AppName, Privilege, Secret};
use api_tokens::grpc::pb;
use api_tokens::service::ServiceSettings;
use tonic::Code;

async fn changes_take_effect_on_the_very_next_authorize(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    // Warm the cache, then deny the application: the next call is refused.
    assert_eq!(
        app.authorize(&secret, "deployer", pb::Privilege::Normal)
            .await
            .decision(),
        pb::Decision::Allow
    );
    app.set_state(&token.id, "deployer", pb::AppState::Deny)
        .await;
    assert_eq!(
        app.authorize(&secret, "deployer", pb::Privilege::Normal)
            .await
            .decision(),
        pb::Decision::Denied
    );
    // Warm again on another application, then retire: refused at once.
    assert_eq!(
        app.authorize(&secret, "other", pb::Privilege::Normal)
            .await
            .decision(),
        pb::Decision::Allow
    );
    app.retire(&token.id).await;
    assert_eq!(
        app.authorize(&secret, "other", pb::Privilege::Normal)
            .await
            .decision(),
        pb::Decision::Retired
    );
    // A member's removal kills their warm token at once.
    let (user_id, member, _) = app
        .member_with_token("dave@example.com", pb::Privilege::Normal)
        .await;
    assert_eq!(
        app.authorize(&member.secret, "x", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow
    );
    app.remove_member(&user_id).await;
    assert_eq!(
        app.authorize(&member.secret, "x", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::OwnerRemoved
    );
    app.stop().await;
}

async fn a_thousand_concurrent_first_uses_record_one_row_and_one_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let channels: Vec<_> = futures_channels(&app, 8).await;
    let calls = (0..1000).map(|i| {
        let mut client = pb::authorize_service_client::AuthorizeServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let secret = secret.clone();
        tokio::spawn(async move {
            client
                .authorize(pb::AuthorizeRequest {
                    token: secret,
                    app_name: "stampede".into(),
                    required_privilege: 0,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().decision())
        })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(
            call.await.expect("task").expect("authorize"),
            pb::Decision::Pending
        );
    }
    let rows = app
        .database
        .count("SELECT COUNT(*) FROM applications WHERE name = 'stampede'")
        .await;
    let events = app
        .database
        .count("SELECT COUNT(*) FROM app_events WHERE app_name = 'stampede'")
        .await;
    assert_eq!((rows, events), (1, 1));

    // The same below the cache: concurrent recordings through the repository.
    let repo = app.local.repository().clone();
    let grant = repo
        .find_grant(
            &Secret::parse(&secret).unwrap().digest(),
            &AppName::parse("below-cache").unwrap(),
        )
        .await
        .expect("lookup")
        .expect("grant")
        .grant;
    let records = (0..100).map(|_| {
        let (repo, grant) = (repo.clone(), grant.clone());
        tokio::spawn(async move {
            repo.record_application(&grant, &AppName::parse("below-cache").unwrap(), Some(1000))
                .await
        })
    });
    let mut recorded = 0;
    for record in records.collect::<Vec<_>>() {
        if matches!(
            record.await.expect("task").expect("record"),
            api_tokens::storage::RecordOutcome::Recorded(_)
        ) {
            recorded += 1;
        }
    }
    let events = app
        .database
        .count("SELECT COUNT(*) FROM app_events WHERE app_name = 'below-cache'")
        .await;
    assert_eq!((recorded, events), (1, 1));
    app.stop().await;
}

async fn futures_channels(
    app: &crate::common::TestApp,
    n: usize,
) -> Vec<tonic::transport::Channel> {
    let mut channels = Vec::new();
    for _ in 0..n {
        channels.push(crate::common::connect(app.addr).await);
    }
    channels
}

async fn the_flood_cap_refuses_new_names_and_writes_nothing(backend: Backend) {
    let settings = ServiceSettings {
        max_apps_per_token: Some(3),
        ..ServiceSettings::default()
    };
    let app = Spawn::new(backend).service(settings).start().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    for name in ["one", "two", "three"] {
        assert_eq!(
            app.authorize(&secret, name, pb::Privilege::ReadOnly)
                .await
                .decision(),
            pb::Decision::Pending
        );
    }
    let refused = app
        .authorize(&secret, "four", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(
        (refused.decision(), refused.http_status),
        (pb::Decision::AppLimitReached, 403)
    );
    assert_eq!(
        app.authorize(&secret, "two", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Pending
    );
    let listed = app.applications(&token.id).await;
    assert_eq!(listed.len(), 3);
    assert_eq!(
        app.database
            .count("SELECT COUNT(*) FROM app_events WHERE app_name = 'four'")
            .await,
        0
    );
    // Approvers are not capped: an Admin may still record a name by hand.
    app.set_state(&token.id, "four", pb::AppState::Allow).await;
    assert_eq!(
        app.authorize(&secret, "four", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow
    );
    app.stop().await;
}

async fn last_used_is_written_behind_and_flushed_on_shutdown(backend: Backend) {
    // An interval far longer than the test: only the shutdown flush can write it.
    let settings = ServiceSettings {
        last_used_interval: Duration::from_secs(3600),
        ..ServiceSettings::default()
    };
    let app = Spawn::new(backend).service(settings).start().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    assert!(token.last_used_time.is_none());
    for _ in 0..50 {
        app.authorize(&secret, "poller", pb::Privilege::ReadOnly)
            .await;
    }
    let app = app.restart().await;
    let shown = app.token(&token.id).await;
    assert!(
        shown.last_used_time.is_some(),
        "last used survives a graceful restart"
    );
    let apps = app.applications(&token.id).await;
    let micros = |t: &Option<prost_types::Timestamp>| {
        t.as_ref().map(|t| (t.seconds, t.nanos)).expect("time")
    };
    assert!(
        micros(&apps[0].last_seen_time) > micros(&apps[0].first_seen_time),
        "the application's last use moved on"
    );
    app.stop().await;
}

async fn a_flush_sends_the_same_few_statements_whatever_the_number_of_keys(backend: Backend) {
    let (_db, service, secret) = local_service(backend).await;
    let repo = service.repository();
    let counted = |before: u64| repo.query_count() - before;

    // Through the service: one token used under 20 names, then one flush.
    for i in 0..20 {
        let app = AppName::parse(&format!("poller-{i}")).unwrap();
        service
            .authorize(&secret, &app, Privilege::ReadOnly)
            .await
            .expect("authorize");
    }
    let before = repo.query_count();
    service.flush_last_used().await.expect("flush");
    let twenty_apps = counted(before);

    // Straight to the repository: one key each, then 4,000 of each (ids no row has, so only
    // the statements are measured).
    let now = chrono::Utc::now();
    let keys = |n: usize| {
        let ids: Vec<_> = (0..n).map(|_| (uuid::Uuid::new_v4(), now)).collect();
        let apps: Vec<_> = ids
            .iter()
            .map(|(id, at)| api_tokens::storage::AppUse {
                token_id: *id,
                name: "poller".to_owned(),
                at: *at,
                refused: 1,
                allowed: 2,
                client: Some("10.0.0.1".parse().unwrap()),
            })
            .collect();
        (ids, apps)
    };
    let (one, one_app) = keys(1);
    let before = repo.query_count();
    repo.write_last_used(&one, &one_app)
        .await
        .expect("write one");
    let single = counted(before);
    let (many, many_apps) = keys(4_000);
    let before = repo.query_count();
    repo.write_last_used(&many, &many_apps)
        .await
        .expect("write many");
    let thousands = counted(before);

    assert!(single <= 4, "one token and one app: {single} statements");
    assert_eq!(
        thousands, single,
        "4,000 tokens and apps cost what one does"
    );
    assert!(
        twenty_apps <= single,
        "20 names of one token: {twenty_apps} statements"
    );
}

async fn malformed_authorize_requests_are_invalid_argument_with_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut client = app.authorize.clone();
    let err = client
        .authorize(pb::AuthorizeRequest {
            token: "abc-123".into(),
            app_name: "tab\there".into(),
            required_privilege: 42,
            ..Default::default()
        })
        .await
        .expect_err("malformed");
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&err);
    let fields: Vec<_> = details
        .bad_request()
        .expect("BadRequest")
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["token", "app_name", "required_privilege"]);
    assert!(
        !err.message().contains("abc-123"),
        "the presented token is not echoed"
    );
    app.stop().await;
}

on_both_backends!(
    changes_take_effect_on_the_very_next_authorize,
    a_thousand_concurrent_first_uses_record_one_row_and_one_event,
    the_flood_cap_refuses_new_names_and_writes_nothing,
    last_used_is_written_behind_and_flushed_on_shutdown,
    a_flush_sends_the_same_few_statements_whatever_the_number_of_keys,
    malformed_authorize_requests_are_invalid_argument_with_fields,
);
