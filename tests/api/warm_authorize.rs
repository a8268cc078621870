//! A warm Authorize sends no query, with address ranges, conditions, expiry and rotation
//! included; a cold one sends one, and a flood of one unknown secret one in all. Counted on
//! the service in process (no socket), so every query is the call's own.

use crate::common::Backend;
use crate::common::local::{admin_caller, local_service};
use api_tokens::domain::{AppName, Privilege, Secret};

async fn warm_authorize_sends_no_query_and_cold_sends_one(backend: Backend) {
    let (_db, service, secret) = local_service(backend).await;
    let app = AppName::parse("Terraform v0.12.x").unwrap();
    let queries = || service.repository().query_count();

    let before = queries();
    service
        .authorize(&secret, &app, Privilege::ReadOnly)
        .await
        .expect("first use");
    let first_use = queries() - before;
    // One lookup, then the recording transaction: count, insert, the change log's row and
    // the previous release's event row; on PostgreSQL the change also takes the log's
    // ordering lock and sends its NOTIFY.
    let recording = if backend == Backend::Postgres { 6 } else { 4 };
    assert_eq!(
        first_use,
        1 + recording,
        "first use of a new application name"
    );

    service.forget_cached();
    let before = queries();
    service
        .authorize(&secret, &app, Privilege::ReadOnly)
        .await
        .expect("cold");
    assert_eq!(
        queries() - before,
        1,
        "a cold Authorize of a known application is one query"
    );

    let before = queries();
    for _ in 0..100 {
        let outcome = service
            .authorize(&secret, &app, Privilege::ReadOnly)
            .await
            .expect("warm");
        assert!(outcome.decision.is_allow());
    }
    assert_eq!(
        queries() - before,
        0,
        "a warm Authorize touches no database"
    );

    let unknown = Secret::generate();
    let before = queries();
    for _ in 0..100 {
        service
            .authorize(&unknown, &app, Privilege::ReadOnly)
            .await
            .expect("unknown");
    }
    assert_eq!(
        queries() - before,
        1,
        "a flood of one unknown secret costs one query (negative cache)"
    );
}

/// Address ranges on the token and conditions on the approval live in the cached entries:
/// checking them costs no query.
async fn warm_authorize_with_ranges_and_conditions_sends_no_query(backend: Backend) {
    use api_tokens::domain::{AddressRanges, AppState, Conditions, TokenType};
    use api_tokens::service::NewTokenRequest;
    use api_tokens::storage::AppDecision;
    let (_db, service, secret) = local_service(backend).await;
    let caller = admin_caller(&service, secret).await;
    let sixteen: Vec<String> = (0..16).map(|i| format!("10.{i}.0.0/16")).collect();
    let ranges = AddressRanges::parse(&sixteen).unwrap();
    let (view, bound) = service
        .create_token(
            &caller,
            NewTokenRequest {
                token_type: TokenType::User,
                privilege: Privilege::Normal,
                default_app_state: AppState::Pending,
                description: Default::default(),
                request_id: None,
                bound_ranges: ranges.clone(),
                expire_time: None,
            },
        )
        .await
        .expect("bound token");
    let app = AppName::parse("terraform").unwrap();
    service
        .set_application_state(
            &caller,
            AppDecision {
                token_id: view.token.id,
                name: app.clone(),
                state: AppState::Allow,
                conditions: Some(Conditions {
                    until: Some(chrono::Utc::now() + chrono::TimeDelta::days(30)),
                    max_privilege: Some(Privilege::ReadOnly),
                    client_ranges: ranges,
                }),
            },
            None,
        )
        .await
        .expect("conditional approval");
    let inside = Some("10.15.0.9".parse().unwrap());
    let outside = Some("192.168.0.9".parse().unwrap());
    service
        .authorize_from(&bound, &app, Privilege::ReadOnly, inside)
        .await
        .expect("cold");
    let queries = || service.repository().query_count();
    let before = queries();
    for _ in 0..50 {
        let allowed = service
            .authorize_from(&bound, &app, Privilege::ReadOnly, inside)
            .await
            .expect("warm");
        assert!(allowed.decision.is_allow());
        let capped = service
            .authorize_from(&bound, &app, Privilege::Normal, inside)
            .await
            .expect("warm");
        assert_eq!(capped.decision.name(), "insufficient_privilege");
        let refused = service
            .authorize_from(&bound, &app, Privilege::ReadOnly, outside)
            .await
            .expect("warm");
        assert_eq!(refused.decision.name(), "address_not_allowed");
    }
    assert_eq!(
        queries() - before,
        0,
        "ranges and conditions add no query to a warm Authorize"
    );
}

/// A token's expiry and a rotated-out secret's overlap live in the cached grants: checking
/// them costs no query, for the old secret, the new one, and an expired token alike.
async fn warm_authorize_with_expiry_and_rotation_sends_no_query(backend: Backend) {
    use api_tokens::domain::{AppState, Rotation, TokenType};
    use api_tokens::service::{NewTokenRequest, RotateRequest};
    let (_db, service, secret) = local_service(backend).await;
    let caller = admin_caller(&service, secret).await;
    let new_token = |expire_time| NewTokenRequest {
        token_type: TokenType::User,
        privilege: Privilege::Normal,
        default_app_state: AppState::Allow,
        description: Default::default(),
        request_id: None,
        bound_ranges: Default::default(),
        expire_time: Some(expire_time),
    };
    let (view, old) = service
        .create_token(
            &caller,
            new_token(chrono::Utc::now() + chrono::TimeDelta::hours(1)),
        )
        .await
        .expect("an expiring token");
    let (_, new) = service
        .rotate_token(
            &caller,
            view.token.id,
            RotateRequest {
                rotation: Rotation::new(chrono::TimeDelta::hours(1), false).unwrap(),
                expire_time: None,
            },
        )
        .await
        .expect("rotated with an overlap");
    let deadline = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
    let (_, expiring) = service
        .create_token(&caller, new_token(deadline))
        .await
        .expect("a token about to expire");
    let app = AppName::parse("deploys").unwrap();
    for secret in [&old, &new, &expiring] {
        let cold = service
            .authorize(secret, &app, Privilege::ReadOnly)
            .await
            .expect("cold");
        assert!(cold.decision.is_allow());
    }
    tokio::time::sleep((deadline - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    let queries = || service.repository().query_count();
    let before = queries();
    for _ in 0..50 {
        for secret in [&old, &new] {
            let warm = service
                .authorize(secret, &app, Privilege::ReadOnly)
                .await
                .expect("warm");
            assert!(warm.decision.is_allow());
        }
        let expired = service
            .authorize(&expiring, &app, Privilege::ReadOnly)
            .await
            .expect("warm");
        assert_eq!(expired.decision.name(), "expired");
    }
    assert_eq!(
        queries() - before,
        0,
        "expiry and rotation add no query to a warm Authorize"
    );
}

on_both_backends!(
    warm_authorize_sends_no_query_and_cold_sends_one,
    warm_authorize_with_ranges_and_conditions_sends_no_query,
    warm_authorize_with_expiry_and_rotation_sends_no_query,
);
