//! Times and durations at and past what the protos can hold, through the real server on both
//! backends: policy durations too long for a `google.protobuf.Duration` (or for the service's
//! cap) are refused naming the field, and every CreateToken after a refused one still works;
//! sub-second policy durations are refused, not stored truncated; timestamps outside
//! 0001-01-01…9999-12-31, or with nanos outside 0…999,999,999, are refused naming the field;
//! and what is accepted reads back exactly as answered.

use crate::common::clock::seconds;
use crate::common::token_events::{next_item, watch};
use crate::common::{Backend, Spawn, TestApp, TestDatabase, bad_fields, spawn_app};
use api_tokens::grpc::pb;
use api_tokens::service::ServiceSettings;
use prost_types::{Duration, FieldMask, Timestamp};
use tonic::Code;

const DAY: i64 = 86_400;
/// The service's cap on a policy duration: 100 years of 365.25 days.
const MOST_POLICY_SECONDS: i64 = 36_525 * DAY;
/// 9999-12-31T23:59:59Z, the last second a `google.protobuf.Timestamp` may hold.
const LAST_SECOND: i64 = 253_402_300_799;
/// 0001-01-01T00:00:00Z, the first.
const FIRST_SECOND: i64 = -62_135_596_800;

async fn set_policy(
    app: &TestApp,
    policy: pb::AccountPolicy,
) -> Result<pb::AccountPolicy, tonic::Status> {
    app.accounts
        .clone()
        .set_account_policy(app.admin.req(pb::SetAccountPolicyRequest {
            policy: Some(policy),
            update_mask: Some(FieldMask {
                paths: vec!["*".into()],
            }),
        }))
        .await
        .map(|r| r.into_inner().policy.expect("policy"))
}

async fn stored_policy(app: &TestApp) -> pb::AccountPolicy {
    app.accounts
        .clone()
        .get_account(app.admin.req(pb::GetAccountRequest {}))
        .await
        .expect("get account")
        .into_inner()
        .policy
        .expect("policy")
}

/// INVALID_ARGUMENT naming exactly `field`.
fn assert_names(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert_eq!(bad_fields(&status), [field], "{what}: {status:?}");
}

async fn create_without_expiry(app: &TestApp) -> pb::Token {
    let reply = app
        .tokens
        .clone()
        .create_token(app.admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            ..Default::default()
        }))
        .await
        .expect("CreateToken without an expire_time");
    reply.into_inner().token.expect("token")
}

fn with(field: &str, d: Duration) -> pb::AccountPolicy {
    let mut policy = pb::AccountPolicy::default();
    match field {
        "policy.max_token_lifetime" => policy.max_token_lifetime = Some(d),
        "policy.default_token_lifetime" => policy.default_token_lifetime = Some(d),
        "policy.dormant_after" => policy.dormant_after = Some(d),
        "policy.expiry_notice_lead_times[0]" => policy.expiry_notice_lead_times = vec![d],
        other => panic!("no policy field {other}"),
    }
    policy
}

const POLICY_DURATIONS: [&str; 4] = [
    "policy.max_token_lifetime",
    "policy.default_token_lifetime",
    "policy.dormant_after",
    "policy.expiry_notice_lead_times[0]",
];

async fn policy_durations_past_the_limits_are_refused_and_creates_keep_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let too_long = [
        // Past what a google.protobuf.Duration may hold (315,576,000,000 s).
        seconds(9_000_000_000_000),
        seconds(315_576_000_001),
        seconds(i64::MAX),
        // A Duration, but past the service's cap: now plus it could leave the Timestamp range.
        seconds(MOST_POLICY_SECONDS + 1),
        Duration {
            seconds: MOST_POLICY_SECONDS,
            nanos: 0,
        },
    ];
    for field in POLICY_DURATIONS {
        for d in &too_long[..4] {
            assert_names(
                set_policy(&app, with(field, *d)).await,
                field,
                &format!("{field} of {d:?}"),
            );
        }
    }
    // Nothing refused was stored: a create without an expiry works, and has none.
    assert_eq!(create_without_expiry(&app).await.expire_time, None);

    // The cap itself is accepted, and a default lifetime of it gives a representable expiry.
    let policy = set_policy(
        &app,
        pb::AccountPolicy {
            max_token_lifetime: Some(too_long[4]),
            default_token_lifetime: Some(too_long[4]),
            dormant_after: Some(too_long[4]),
            expiry_notice_lead_times: vec![too_long[4]],
            ..Default::default()
        },
    )
    .await
    .expect("100 years is accepted");
    assert_eq!(policy, stored_policy(&app).await);
    let expire = create_without_expiry(&app)
        .await
        .expire_time
        .expect("the default lifetime gives an expiry");
    assert!(expire.seconds <= LAST_SECOND, "{expire:?}");
}

async fn sub_second_policy_durations_are_refused_not_truncated(backend: Backend) {
    let app = spawn_app(backend).await;
    let half = |seconds| Duration {
        seconds,
        nanos: 500_000_000,
    };
    for field in POLICY_DURATIONS {
        for d in [
            half(DAY),
            half(0),
            Duration {
                seconds: 1,
                nanos: 1,
            },
        ] {
            assert_names(
                set_policy(&app, with(field, d)).await,
                field,
                &format!("{field} of {d:?}"),
            );
        }
    }
    // Nothing refused was stored: the default policy still stands, and creates work.
    assert_eq!(stored_policy(&app).await.default_token_lifetime, None);
    assert_eq!(create_without_expiry(&app).await.expire_time, None);

    // Whole seconds are stored exactly: the answer, GetAccount (from the database) and a
    // restarted server read the same.
    let asked = pb::AccountPolicy {
        max_token_lifetime: Some(seconds(30 * DAY + 1)),
        default_token_lifetime: Some(seconds(DAY + 1)),
        expiry_notice_lead_times: vec![seconds(7 * DAY + 3), seconds(1)],
        dormant_after: Some(seconds(90 * DAY + 7)),
        require_expiry: true,
        retire_on_reuse: true,
    };
    let answered = set_policy(&app, asked.clone())
        .await
        .expect("whole seconds");
    assert_eq!(answered, asked);
    assert_eq!(stored_policy(&app).await, asked);
    let app = app.restart().await;
    assert_eq!(stored_policy(&app).await, asked);
}

async fn a_rotation_overlap_reads_back_as_answered(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = create_without_expiry(&app).await;
    // Half a microsecond more than a second: the database keeps microseconds.
    let overlap = Duration {
        seconds: 1,
        nanos: 500,
    };
    let rotated = app
        .tokens
        .clone()
        .rotate_token(app.admin.req(pb::RotateTokenRequest {
            id: token.id.clone(),
            overlap: Some(overlap),
            ..Default::default()
        }))
        .await
        .expect("rotate")
        .into_inner()
        .token
        .expect("token");
    let read = app
        .tokens
        .clone()
        .get_token(app.admin.req(pb::GetTokenRequest { id: token.id }))
        .await
        .expect("get")
        .into_inner()
        .token
        .expect("token");
    assert_eq!(rotated.previous_secret, read.previous_secret);
}

async fn timestamps_outside_what_a_timestamp_holds_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let bad = [
        // Year 10000.
        Timestamp {
            seconds: LAST_SECOND + 1,
            nanos: 0,
        },
        Timestamp {
            seconds: 1_000_000_000_000,
            nanos: 0,
        },
        Timestamp {
            seconds: 2_000_000_000,
            nanos: 1_000_000_000,
        },
        Timestamp {
            seconds: 2_000_000_000,
            nanos: -1,
        },
        Timestamp {
            seconds: i64::MAX,
            nanos: i32::MAX,
        },
        // Before year 1 (and in the past, which is refused too: the range is checked first).
        Timestamp {
            seconds: FIRST_SECOND - 1,
            nanos: 0,
        },
    ];
    let token = create_without_expiry(&app).await;
    let mut tokens = app.tokens.clone();
    let admin = &app.admin;
    for t in bad {
        let what = format!("{t:?}");
        assert_names(
            tokens
                .create_token(admin.req(pb::CreateTokenRequest {
                    r#type: pb::TokenType::User.into(),
                    expire_time: Some(t),
                    ..Default::default()
                }))
                .await,
            "expire_time",
            &what,
        );
        assert_names(
            tokens
                .update_token(admin.req(pb::UpdateTokenRequest {
                    token: Some(pb::Token {
                        id: token.id.clone(),
                        expire_time: Some(t),
                        ..Default::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec!["expire_time".into()],
                    }),
                }))
                .await,
            "token.expire_time",
            &what,
        );
        assert_names(
            tokens
                .rotate_token(admin.req(pb::RotateTokenRequest {
                    id: token.id.clone(),
                    expire_time: Some(t),
                    ..Default::default()
                }))
                .await,
            "expire_time",
            &what,
        );
        assert_names(
            tokens
                .list_tokens(admin.req(pb::ListTokensRequest {
                    expire_before: Some(t),
                    ..Default::default()
                }))
                .await,
            "expire_before",
            &what,
        );
        let conditions = pb::ApprovalConditions {
            expire_time: Some(t),
            ..Default::default()
        };
        assert_names(
            tokens
                .set_application_state(admin.req(pb::SetApplicationStateRequest {
                    token_id: token.id.clone(),
                    name: "cron".into(),
                    state: pb::AppState::Allow.into(),
                    conditions: Some(conditions.clone()),
                    ..Default::default()
                }))
                .await,
            "conditions.expire_time",
            &what,
        );
        assert_names(
            tokens
                .batch_set_application_states(admin.req(pb::BatchSetApplicationStatesRequest {
                    decisions: vec![pb::ApplicationDecision {
                        token_id: token.id.clone(),
                        name: "cron".into(),
                        state: pb::AppState::Allow.into(),
                        conditions: Some(conditions),
                    }],
                    ..Default::default()
                }))
                .await,
            "decisions[0].conditions.expire_time",
            &what,
        );
    }

    // The last microsecond of 9999 is accepted and reads back as answered.
    let last = Timestamp {
        seconds: LAST_SECOND,
        nanos: 999_999_000,
    };
    let created = tokens
        .create_token(admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            expire_time: Some(last),
            ..Default::default()
        }))
        .await
        .expect("9999-12-31T23:59:59.999999Z")
        .into_inner()
        .token
        .expect("token");
    assert_eq!(created.expire_time, Some(last));
    let read = tokens
        .get_token(admin.req(pb::GetTokenRequest {
            id: created.id.clone(),
        }))
        .await
        .expect("get")
        .into_inner()
        .token
        .expect("token");
    assert_eq!(read.expire_time, Some(last));
    let listed = tokens
        .list_tokens(admin.req(pb::ListTokensRequest {
            expire_before: Some(last),
            ..Default::default()
        }))
        .await
        .expect("the last time is a valid bound");
    assert!(
        listed
            .into_inner()
            .tokens
            .iter()
            .all(|t| t.id != created.id)
    );
}

/// A heartbeat interval no clock can add (`--watch-heartbeat-secs 18446744073709551615`)
/// means no heartbeats, not a stream that dies on its first wait.
async fn a_huge_heartbeat_interval_is_no_panic(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let settings = ServiceSettings {
        watch_heartbeat: std::time::Duration::MAX,
        ..ServiceSettings::default()
    };
    let app = Spawn::on(database).service(settings).start().await;
    let mut events = watch(&app, &app.admin).await;
    let token = create_without_expiry(&app).await;
    let event = next_item(&mut events).await.expect("the stream goes on");
    assert_eq!(event.r#type(), pb::TokenEventType::Created);
    assert_eq!(event.token_id, token.id);
}

on_both_backends!(
    a_huge_heartbeat_interval_is_no_panic,
    policy_durations_past_the_limits_are_refused_and_creates_keep_working,
    sub_second_policy_durations_are_refused_not_truncated,
    a_rotation_overlap_reads_back_as_answered,
    timestamps_outside_what_a_timestamp_holds_are_refused,
);
