//! The limit layers over a real socket: a call past the concurrency limit is shed, probes
//! never are, a unary call past the timeout ends DEADLINE_EXCEEDED, and a watch stream
//! outlives that timeout without holding a slot.
use std::time::Duration;

use crate::common::{Backend, Spawn, TestApp, TestDatabase};
use api_tokens::grpc::pb;
use api_tokens::layers::LimitSettings;
use api_tokens::operations::OperationsSettings;
use sea_orm::sqlx::{Connection, Executor, SqliteConnection};
use tokio::task::JoinHandle;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

use super::operations::{AUTHORIZE, sample, scrape, with_metrics};

/// Holds SQLite's write lock from another connection, so the server's next write waits
/// (up to its 5 s busy timeout): a slow request on demand.
async fn hold_write_lock(database: &TestDatabase) -> SqliteConnection {
    let mut conn = SqliteConnection::connect(&database.url)
        .await
        .expect("second connection");
    conn.execute("BEGIN IMMEDIATE").await.expect("write lock");
    conn
}

fn create_request(app: &TestApp) -> tonic::Request<pb::CreateTokenRequest> {
    app.admin.req(pb::CreateTokenRequest {
        r#type: pb::TokenType::User.into(),
        privilege: pb::Privilege::ReadOnly.into(),
        default_app_state: pb::AppState::Allow.into(),
        description: String::new(),
        request_id: String::new(),
        ..Default::default()
    })
}

/// A server on SQLite with metrics and these limits.
async fn limited(
    max_concurrent_requests: Option<usize>,
    request_timeout: Option<Duration>,
) -> TestApp {
    let operations = OperationsSettings {
        limits: LimitSettings {
            max_concurrent_requests,
            request_timeout,
        },
        ..with_metrics()
    };
    Spawn::new(Backend::Sqlite)
        .operations(operations)
        .start()
        .await
}

/// A CreateToken held up by SQLite's write lock, in flight until `release`.
struct SlowCall {
    lock: SqliteConnection,
    call: JoinHandle<Result<tonic::Response<pb::CreateTokenResponse>, tonic::Status>>,
}

impl SlowCall {
    /// Starts the call and waits (bounded) until the metrics count it in flight.
    async fn start(app: &TestApp) -> SlowCall {
        let lock = hold_write_lock(&app.database).await;
        let mut tokens = app.tokens.clone();
        let request = create_request(app);
        let call = tokio::spawn(async move { tokens.create_token(request).await });
        let mut waited = 0;
        while sample(&scrape(app).await, "api_tokens_rpc_in_flight") < 1.0 {
            waited += 1;
            assert!(waited < 500, "the slow call never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        SlowCall { lock, call }
    }

    /// Lets go of the lock; the call's own outcome.
    async fn release(mut self) -> Result<tonic::Response<pb::CreateTokenResponse>, tonic::Status> {
        self.lock
            .execute("ROLLBACK")
            .await
            .expect("release the lock");
        self.call.await.expect("slow call task")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_concurrency_limit_is_shed_as_unavailable() {
    let app = limited(Some(1), None).await;
    // Under the limit the stack serves as usual.
    let (_, secret) = app
        .create_token(
            &app.admin,
            pb::TokenType::User,
            pb::Privilege::ReadOnly,
            pb::AppState::Allow,
        )
        .await;
    assert_eq!(
        app.authorize(&secret, "x", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow
    );

    let slow = SlowCall::start(&app).await;
    let shed = app
        .authorize
        .clone()
        .authorize(pb::AuthorizeRequest {
            token: secret.clone(),
            app_name: "x".into(),
            required_privilege: 0,
            ..Default::default()
        })
        .await
        .expect_err("shed");
    assert_eq!(shed.code(), Code::Unavailable, "{shed:?}");
    assert_eq!(
        shed.get_details_error_info().map(|i| i.reason),
        Some("OVERLOADED".to_owned())
    );

    slow.release()
        .await
        .expect("the slow call completes once the lock is gone");
    // The slot is free again.
    assert_eq!(
        app.authorize(&secret, "x", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow
    );
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            &format!(r#"api_tokens_rpc_requests_total{{method="{AUTHORIZE}",code="UNAVAILABLE"}}"#)
        ),
        1.0,
        "shed calls are counted: {text}"
    );
    app.stop().await;
}

/// Readiness and liveness probes must not fail because the pod is busy: with the only slot
/// held by a slow call, a burst of Health checks (and a Health watch) all answer SERVING
/// while API calls are shed, and the metrics port answers too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_never_shed() {
    let app = limited(Some(1), None).await;
    let slow = SlowCall::start(&app).await;
    // The limit is in force: an API call is shed.
    let shed = app
        .tokens
        .clone()
        .list_tokens(app.admin.req(pb::ListTokensRequest::default()))
        .await
        .expect_err("shed");
    assert_eq!(shed.code(), Code::Unavailable, "{shed:?}");

    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a health watch is not shed")
        .into_inner();
    let first = watch.message().await.expect("watch").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let mut checks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let mut health = HealthClient::new(app.channel.clone());
        let service = [
            "",
            "apitokens.v1.AuthorizeService",
            "apitokens.v1.TokenService",
        ][i % 3];
        checks.spawn(async move {
            health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status)
        });
    }
    while let Some(result) = checks.join_next().await {
        assert_eq!(
            result.expect("task").expect("health is never shed"),
            ServingStatus::Serving as i32
        );
    }
    assert!(scrape(&app).await.contains("api_tokens_rpc_in_flight"));

    slow.release().await.expect("the slow call completes");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_past_the_timeout_is_deadline_exceeded() {
    let app = limited(Some(64), Some(Duration::from_millis(300))).await;
    // Warm the caller's grant, so the call below blocks on its write, not on a read.
    app.create_token(
        &app.admin,
        pb::TokenType::User,
        pb::Privilege::ReadOnly,
        pb::AppState::Allow,
    )
    .await;
    let mut lock = hold_write_lock(&app.database).await;
    let timed_out = app
        .tokens
        .clone()
        .create_token(create_request(&app))
        .await
        .expect_err("times out");
    assert_eq!(timed_out.code(), Code::DeadlineExceeded, "{timed_out:?}");
    assert_eq!(
        timed_out.get_details_error_info().map(|i| i.reason),
        Some("REQUEST_TIMEOUT".to_owned())
    );
    lock.execute("ROLLBACK").await.expect("release the lock");
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"api_tokens_rpc_requests_total{method="apitokens.v1.TokenService/CreateToken",code="DEADLINE_EXCEEDED"}"#
        ),
        1.0,
        "{text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_outlives_the_unary_timeout_and_is_counted() {
    use tokio_stream::StreamExt;
    let timeout = Duration::from_millis(200);
    let app = limited(Some(1), Some(timeout)).await;
    let secret = app.pending_read_only_token().await;
    let mut events = app
        .tokens
        .clone()
        .watch_applications(app.admin.req(pb::WatchApplicationsRequest::default()))
        .await
        .expect("watch starts")
        .into_inner();
    let mut next = async || loop {
        let item = events.next().await.expect("stream open").expect("no error");
        if item.r#type() != pb::WatchEventType::Heartbeat {
            return item;
        }
    };
    assert_eq!(next().await.r#type(), pb::WatchEventType::SnapshotEnd);
    assert_eq!(sample(&scrape(&app).await, "api_tokens_watch_streams"), 1.0);
    // Past the unary timeout the stream still delivers, and, holding no concurrency slot
    // once started, it leaves the single slot to other calls.
    tokio::time::sleep(timeout * 2).await;
    let pending = app
        .authorize(&secret, "late-app", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(pending.decision(), pb::Decision::Pending);
    let live = next().await;
    assert_eq!(live.r#type(), pb::WatchEventType::Recorded);
    assert_eq!(live.application.expect("app").name, "late-app");
    drop(events);
    app.stop().await;
}
