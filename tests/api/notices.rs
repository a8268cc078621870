//! Lifecycle notices over real sockets: a token expiring within a lead time of its account's
//! policy is noticed once per lead time, by one of two replicas sweeping the same database
//! (and two more sweeping beside them, all at once); an expired token once; a dormant token
//! once per period of disuse. Each notice is an event on WatchTokenEvents.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::token_events::{Events, watch};
use crate::common::{Backend, Spawn, TestApp};
use api_tokens::grpc::pb;
use api_tokens::service::{Service, ServiceSettings};
use api_tokens::storage::Repository;
use chrono::Utc;
use tokio_stream::StreamExt;

fn sweeping_often() -> ServiceSettings {
    ServiceSettings {
        notice_sweep: Duration::from_millis(100),
        ..ServiceSettings::default()
    }
}

/// The next notice (EXPIRING, EXPIRED, DORMANT) about one of `tokens`, within 20 s.
async fn next_notice(events: &mut Events, tokens: &[&str]) -> pb::WatchTokenEventsResponse {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("a notice within 20 s")
            .expect("open")
            .expect("no error");
        let notice = matches!(
            item.r#type(),
            pb::TokenEventType::Expiring
                | pb::TokenEventType::Expired
                | pb::TokenEventType::Dormant
        );
        if notice && tokens.contains(&item.token_id.as_str()) {
            return item;
        }
    }
}

async fn token_expiring_in(app: &TestApp, after: chrono::TimeDelta) -> String {
    let at = Utc::now() + after;
    app.tokens
        .clone()
        .create_token(app.admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            privilege: pb::Privilege::Normal.into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner()
        .token
        .expect("token")
        .id
}

/// Another service on the same database: one more sweeper racing the servers'.
async fn sweeper(app: &TestApp) -> Service {
    let repo = Repository::connect(&app.database.settings())
        .await
        .expect("connect");
    Service::open(repo, ServiceSettings::default())
        .await
        .expect("service")
}

/// Notices recorded per (token, kind, lead), as the database holds them.
async fn notices_in(app: &TestApp, kind: &str) -> i64 {
    app.database
        .count(&format!(
            "SELECT COUNT(*) FROM lifecycle_notices WHERE kind = '{kind}'"
        ))
        .await
}

async fn expiring_tokens_are_noticed_once_per_lead_time_by_one_replica(backend: Backend) {
    let app = Spawn::new(backend).service(sweeping_often()).start().await;
    let _second = app.second_replica().await;
    let (third, fourth) = (sweeper(&app).await, sweeper(&app).await);
    let mut events = watch(&app, &app.admin).await;
    let in_three_days = token_expiring_in(&app, chrono::TimeDelta::days(3)).await;
    let in_twelve_hours = token_expiring_in(&app, chrono::TimeDelta::hours(12)).await;
    let far_off = token_expiring_in(&app, chrono::TimeDelta::days(90)).await;
    // Two more sweepers at once, beside the two servers' own.
    for _ in 0..5 {
        let (a, b) = tokio::join!(third.send_notices_now(), fourth.send_notices_now());
        a.expect("sweep");
        b.expect("sweep");
    }
    let tokens = [
        in_three_days.as_str(),
        in_twelve_hours.as_str(),
        far_off.as_str(),
    ];
    let mut heard = HashMap::new();
    for _ in 0..2 {
        let notice = next_notice(&mut events, &tokens).await;
        assert_eq!(notice.r#type(), pb::TokenEventType::Expiring);
        let lead = notice.lead_time.expect("a lead time").seconds;
        assert!(
            heard.insert(notice.token_id.clone(), lead).is_none(),
            "one notice per token: {notice:?}"
        );
    }
    assert_eq!(
        heard,
        HashMap::from([
            (in_three_days.clone(), 7 * 86_400),
            (in_twelve_hours.clone(), 86_400),
        ]),
        "the shortest lead time due, and nothing for a token 90 days off"
    );
    // Sweeping on changes nothing: each notice was sent once, whoever swept.
    let (a, b) = tokio::join!(third.send_notices_now(), fourth.send_notices_now());
    assert_eq!((a.expect("sweep"), b.expect("sweep")), (0, 0));
    assert_eq!(notices_in(&app, "expiring").await, 2);
    assert_eq!(
        app.database
            .count("SELECT COUNT(*) FROM audit_events WHERE action = 'token.notice_expiring'")
            .await,
        2,
        "each notice audited once"
    );
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        next_notice(&mut events, &tokens),
    )
    .await;
    assert!(quiet.is_err(), "no second notice: {quiet:?}");
    app.stop().await;
}

async fn an_expired_token_is_noticed_once(backend: Backend) {
    let app = Spawn::new(backend).service(sweeping_often()).start().await;
    let _second = app.second_replica().await;
    let mut events = watch(&app, &app.admin).await;
    let soon = token_expiring_in(&app, chrono::TimeDelta::seconds(2)).await;
    let first = next_notice(&mut events, &[&soon]).await;
    assert_eq!(
        first.r#type(),
        pb::TokenEventType::Expiring,
        "within a day of its end at once"
    );
    let expired = next_notice(&mut events, &[&soon]).await;
    assert_eq!(expired.r#type(), pb::TokenEventType::Expired);
    assert!(expired.reference_time.is_some(), "it says when it expired");
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        next_notice(&mut events, &[&soon]),
    )
    .await;
    assert!(quiet.is_err(), "no second notice: {quiet:?}");
    assert_eq!(notices_in(&app, "expired").await, 1);
    app.stop().await;
}

async fn a_dormant_token_is_noticed(backend: Backend) {
    let app = Spawn::new(backend).service(sweeping_often()).start().await;
    app.accounts
        .clone()
        .set_account_policy(app.admin.req(pb::SetAccountPolicyRequest {
            policy: Some(pb::AccountPolicy {
                dormant_after: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["dormant_after".into()],
            }),
        }))
        .await
        .expect("policy");
    let mut events = watch(&app, &app.admin).await;
    let (idle, _) = app.admin_user_token(pb::AppState::Allow).await;
    let dormant = next_notice(&mut events, &[&idle.id]).await;
    assert_eq!(dormant.r#type(), pb::TokenEventType::Dormant);
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        next_notice(&mut events, &[&idle.id]),
    )
    .await;
    assert!(quiet.is_err(), "once per period of disuse: {quiet:?}");
    app.stop().await;
}

on_both_backends!(
    expiring_tokens_are_noticed_once_per_lead_time_by_one_replica,
    an_expired_token_is_noticed_once,
    a_dormant_token_is_noticed,
);
