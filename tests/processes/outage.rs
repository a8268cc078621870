//! A database outage under a running server and under load (PostgreSQL), twice: its connections
//! cut on the shared server, and a private server crashed and restarted. Warm decisions stay
//! right, cold ones are UNAVAILABLE (never a wrong decision), health reports the outage, nothing
//! acknowledged is lost, and the server and its watch streams recover without a restart.
//! And a server started while its database is unreachable: it serves NOT_SERVING, refuses
//! calls with UNAVAILABLE, and becomes SERVING when the database comes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::cluster::PrivateCluster;
use crate::common::{Backend, Spawn, TestApp, TestDatabase};
use api_tokens::grpc::pb;
use api_tokens::operations::OperationsSettings;
use api_tokens::service::ServiceSettings;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

async fn status(app: &TestApp, service: &str) -> ServingStatus {
    let reply = app
        .health
        .clone()
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers");
    ServingStatus::try_from(reply.into_inner().status).expect("known status")
}

async fn wait_status(app: &TestApp, service: &str, wanted: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(app, service).await != wanted {
        assert!(
            Instant::now() < deadline,
            "{service} never became {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, Default)]
struct LoadCounts {
    warm_allowed: u64,
    /// The warm token refused as UNAVAILABLE: within the maximum staleness, never.
    warm_unavailable: u64,
    unknown_refused: u64,
    unavailable: u64,
    /// How long each UNAVAILABLE answer took, in microseconds (printed, never asserted).
    unavailable_us: Vec<u64>,
    /// Anything else: a wrong decision or an error other than UNAVAILABLE.
    wrong: u64,
}

impl LoadCounts {
    fn add(&mut self, other: LoadCounts) {
        self.warm_allowed += other.warm_allowed;
        self.warm_unavailable += other.warm_unavailable;
        self.unknown_refused += other.unknown_refused;
        self.unavailable += other.unavailable;
        self.unavailable_us.extend(other.unavailable_us);
        self.wrong += other.wrong;
    }
}

/// Alternates a warm token and a fresh unknown secret until told to stop. The warm one must
/// be allowed (from memory) and the unknown one refused, or UNAVAILABLE while it cannot be looked up.
async fn authorize_load(
    mut client: pb::authorize_service_client::AuthorizeServiceClient<tonic::transport::Channel>,
    warm: String,
    worker: u64,
    stop: Arc<AtomicBool>,
) -> LoadCounts {
    let mut counts = LoadCounts::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let unknown = format!("0badc0de-0000-4000-8000-{:012x}", (worker << 32) | i);
        for (secret, is_warm) in [(warm.clone(), true), (unknown, false)] {
            let asked = Instant::now();
            let reply = client
                .authorize(pb::AuthorizeRequest {
                    token: secret,
                    app_name: "deployer".into(),
                    required_privilege: 0,
                    ..Default::default()
                })
                .await;
            let took = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
            match (reply.map(|r| r.into_inner().decision()), is_warm) {
                (Ok(pb::Decision::Allow), true) => counts.warm_allowed += 1,
                (Ok(pb::Decision::UnknownToken), false) => counts.unknown_refused += 1,
                (Err(status), true) if status.code() == Code::Unavailable => {
                    counts.warm_unavailable += 1
                }
                (Err(status), _) if status.code() == Code::Unavailable => {
                    counts.unavailable += 1;
                    counts.unavailable_us.push(took);
                }
                _ => counts.wrong += 1,
            }
        }
    }
    counts
}

/// Four workers of `authorize_load` against one server, until `finish`.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<LoadCounts>>,
}

impl Load {
    fn start(app: &TestApp, warm: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..4)
            .map(|worker| {
                tokio::spawn(authorize_load(
                    app.authorize.clone(),
                    warm.to_owned(),
                    worker,
                    stop.clone(),
                ))
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops the workers and checks their answers: none wrong, and both sides of the outage seen.
    async fn finish(self) -> LoadCounts {
        self.stop.store(true, Ordering::Relaxed);
        let mut totals = LoadCounts::default();
        for worker in self.workers {
            totals.add(worker.await.expect("load task"));
        }
        let mut took = std::mem::take(&mut totals.unavailable_us);
        took.sort_unstable();
        let at = |p: f64| took.get(((took.len() as f64 - 1.0) * p) as usize).copied();
        println!(
            "under the outage: {totals:?}; UNAVAILABLE answered in p50 {:?} µs, p99 {:?} µs, max {:?} µs",
            at(0.5),
            at(0.99),
            took.last()
        );
        assert_eq!(totals.wrong, 0, "no wrong decision under load: {totals:?}");
        assert_eq!(
            totals.warm_unavailable, 0,
            "a warm token keeps its exact decision through the outage (max staleness 60 s): {totals:?}"
        );
        assert!(
            totals.warm_allowed > 0 && totals.unavailable > 0,
            "the load saw both sides of the outage: {totals:?}"
        );
        totals
    }
}

/// A server ready for an outage, with what the test watches through it.
struct Before {
    app: TestApp,
    /// Allowed and used once: warm in the cache.
    warm: String,
    /// New applications of this token wait as Pending, so each first use is a watch event.
    pending: String,
    /// An Admin's stream, past its snapshot.
    events: Events,
    /// The cursor the snapshot ended at.
    opened: String,
}

/// Starts a server on `database` with a quick database check and a 1 s connect timeout.
/// Cached decisions no longer expire by time, and the default maximum staleness (60 s)
/// outlasts every outage these tests make, so "warm" is warm whatever the machine's speed.
async fn before_the_outage(mut database: TestDatabase) -> Before {
    database.connect_timeout = Duration::from_secs(1);
    let service = ServiceSettings::default();
    let operations = OperationsSettings {
        database_check_interval: Duration::from_millis(200),
        ..OperationsSettings::default()
    };
    let app = Spawn::on(database)
        .service(service)
        .operations(operations)
        .start()
        .await;
    let (_, warm) = app.admin_user_token(pb::AppState::Allow).await;
    let (_, pending) = app.admin_user_token(pb::AppState::Pending).await;
    assert_eq!(
        app.authorize(&warm, "deployer", pb::Privilege::Normal)
            .await
            .decision(),
        pb::Decision::Allow
    );
    let mut events = watch(&app, String::new()).await;
    let snapshot_end = next_event(&mut events).await;
    assert_eq!(snapshot_end.r#type(), pb::WatchEventType::SnapshotEnd);
    Before {
        app,
        warm,
        pending,
        events,
        opened: snapshot_end.cursor,
    }
}

/// While the database is away: once the replica has noticed (health says so for the
/// management services only), a warm token is still allowed from memory, within the maximum
/// staleness; a cold lookup and a management call are UNAVAILABLE.
async fn answers_during_the_outage(app: &TestApp, warm: &str) {
    wait_status(app, "apitokens.v1.TokenService", ServingStatus::NotServing).await;
    let still = app
        .authorize
        .clone()
        .authorize(pb::AuthorizeRequest {
            token: warm.into(),
            app_name: "deployer".into(),
            required_privilege: pb::Privilege::Normal.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        still
            .expect("a warm token is decided from memory")
            .into_inner()
            .decision(),
        pb::Decision::Allow
    );
    let cold = app
        .authorize
        .clone()
        .authorize(pb::AuthorizeRequest {
            token: "0badc0de-0000-4000-8000-00000000beef".into(),
            app_name: "x".into(),
            required_privilege: 0,
            ..Default::default()
        })
        .await
        .expect_err("a cold lookup cannot be decided");
    assert_eq!(
        cold.code(),
        Code::Unavailable,
        "never UNKNOWN_TOKEN while the database is away: {cold:?}"
    );
    let listing = app
        .tokens
        .clone()
        .list_tokens(app.admin.req(pb::ListTokensRequest::default()))
        .await;
    assert_eq!(
        listing.expect_err("management needs the database").code(),
        Code::Unavailable
    );
    assert_eq!(
        status(app, "apitokens.v1.AuthorizeService").await,
        ServingStatus::Serving
    );
}

/// Once the database is back: health SERVING and management calls answered, no restart.
async fn recovered(app: &TestApp) {
    wait_status(app, "apitokens.v1.TokenService", ServingStatus::Serving).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match app
            .tokens
            .clone()
            .list_tokens(app.admin.req(pb::ListTokensRequest::default()))
            .await
        {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline && e.code() == Code::Unavailable,
                "not recovered: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Events = tonic::Streaming<pb::WatchApplicationsResponse>;

async fn watch(app: &TestApp, cursor: String) -> Events {
    app.tokens
        .clone()
        .watch_applications(app.admin.req(pb::WatchApplicationsRequest {
            cursor,
            ..Default::default()
        }))
        .await
        .expect("watch")
        .into_inner()
}

/// The next message that is not a heartbeat.
async fn next_event(events: &mut Events) -> pb::WatchApplicationsResponse {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let item = events.next().await.expect("open").expect("ok");
            if item.r#type() != pb::WatchEventType::Heartbeat {
                return item;
            }
        }
    })
    .await
    .expect("an event within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn a_database_outage_is_unavailable_then_recovered_without_a_restart() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let name = database.postgres_name().to_owned();
    let Before {
        app,
        warm,
        pending,
        mut events,
        ..
    } = before_the_outage(database).await;

    // Load through the whole outage: no new connections, and every open one cut.
    let load = Load::start(&app, &warm);
    app.database
        .admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    app.database
        .admin_sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await;
    answers_during_the_outage(&app, &warm).await;

    // The database returns: the server recovers without a restart.
    app.database
        .admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    recovered(&app).await;
    load.finish().await;

    // The watch stream opened before the outage delivers what happens after it.
    assert_eq!(
        app.authorize(&pending, "after the outage", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Pending
    );
    let event = next_event(&mut events).await;
    assert_eq!(event.application.expect("app").name, "after the outage");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn a_postgresql_crash_and_restart_under_load_loses_nothing() {
    // A server of this test's own: crashing the shared one would fail every other test.
    let cluster = PrivateCluster::start();
    let database = TestDatabase::create_on_postgres(&cluster.admin_url()).await;
    let Before {
        app,
        warm,
        pending,
        mut events,
        opened,
    } = before_the_outage(database).await;

    // Acknowledged just before the crash: a new token, and an application's first use.
    let (kept, _) = app.admin_user_token(pb::AppState::Allow).await;
    assert_eq!(
        app.authorize(&pending, "before the crash", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Pending
    );
    let before = next_event(&mut events).await;
    assert_eq!(before.application.expect("app").name, "before the crash");

    let load = Load::start(&app, &warm);
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.crash();
    answers_during_the_outage(&app, &warm).await;
    cluster.start_again();
    recovered(&app).await;
    load.finish().await;

    let found = app
        .tokens
        .clone()
        .get_token(app.admin.req(pb::GetTokenRequest {
            id: kept.id.clone(),
        }))
        .await;
    assert!(
        found.is_ok(),
        "the token acknowledged before the crash: {found:?}"
    );

    // The stream opened before the crash hears what comes after the restart...
    assert_eq!(
        app.authorize(&pending, "after the restart", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Pending
    );
    let after = next_event(&mut events).await;
    assert_eq!(after.application.expect("app").name, "after the restart");
    // ...and a watcher resuming from before the crash gets both, in order, nothing in between.
    let mut resumed = watch(&app, opened).await;
    let mut names = Vec::new();
    for _ in 0..2 {
        names.push(
            next_event(&mut resumed)
                .await
                .application
                .expect("app")
                .name,
        );
    }
    assert_eq!(names, ["before the crash", "after the restart"]);
    app.stop().await;
}

/// A server built on a PostgreSQL URL nothing answers at, with short waits.
fn settings_unreachable_at(url: String) -> api_tokens::startup::ServerSettings {
    api_tokens::startup::ServerSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: api_tokens::storage::DatabaseSettings {
            url,
            max_connections: 4,
            connect_timeout: Duration::from_secs(1),
        },
        service: ServiceSettings::default(),
        ext_authz: api_tokens::grpc::ExtAuthzSettings::default(),
        drain_timeout: Duration::from_secs(5),
        operations: OperationsSettings {
            database_check_interval: Duration::from_secs(1),
            ..OperationsSettings::default()
        },
    }
}

type Health = tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>;

async fn check(health: &mut Health, service: &str) -> ServingStatus {
    let reply = health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers while the database is away");
    ServingStatus::try_from(reply.into_inner().status).expect("known status")
}

/// Every service, and the server as a whole, is NOT_SERVING; an API call is UNAVAILABLE
/// with reason STARTING, at once.
async fn assert_starting(channel: &tonic::transport::Channel) {
    let mut health = Health::new(channel.clone());
    for service in [
        "",
        "apitokens.v1.TokenService",
        "apitokens.v1.AuthorizeService",
    ] {
        assert_eq!(
            check(&mut health, service).await,
            ServingStatus::NotServing,
            "{service:?} while the database is away"
        );
    }
    let refused = pb::authorize_service_client::AuthorizeServiceClient::new(channel.clone())
        .authorize(pb::AuthorizeRequest {
            token: "0badc0de-0000-4000-8000-000000000001".into(),
            app_name: "x".into(),
            required_privilege: 0,
            ..Default::default()
        })
        .await
        .expect_err("no database yet");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    use tonic_types::StatusExt;
    assert_eq!(
        refused.get_details_error_info().map(|i| i.reason),
        Some("STARTING".to_owned())
    );
}

/// The metrics port's exposition text.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// Nothing listens on port 1: the server must start anyway, report NOT_SERVING, and stop
/// cleanly on shutdown while still waiting. Its metrics have no pending-applications count
/// to give, and give none rather than 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_without_its_database_waits_not_serving() {
    let mut settings = settings_unreachable_at("postgres://nobody:hunter2@127.0.0.1:1/none".into());
    settings.operations.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let server = api_tokens::startup::Server::build(settings)
        .await
        .expect("an unreachable database does not stop start-up");
    let addr = server.local_addr().expect("bound");
    let metrics = server.metrics_addr().expect("metrics served");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let channel = crate::common::connect(addr).await;
    assert_starting(&channel).await;
    let text = scrape(metrics).await;
    assert!(
        text.contains("# TYPE api_tokens_pending_applications gauge"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("api_tokens_pending_applications")),
        "no count yet, so no sample (0 would be a wrong number):\n{text}"
    );
    let _ = stop.send(());
    running
        .await
        .expect("server task")
        .expect("stops cleanly while waiting");
}

/// A pod started during an outage: its private PostgreSQL is down when the server starts,
/// comes up later, and the server becomes SERVING and answers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn a_server_started_during_an_outage_serves_when_the_database_comes() {
    let cluster = PrivateCluster::start();
    let database = TestDatabase::create_on_postgres(&cluster.admin_url()).await;
    cluster.crash();
    let server = api_tokens::startup::Server::build(settings_unreachable_at(database.url.clone()))
        .await
        .expect("an unreachable database does not stop start-up");
    let addr = server.local_addr().expect("bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let channel = crate::common::connect(addr).await;
    assert_starting(&channel).await;

    cluster.start_again();
    let mut health = Health::new(channel.clone());
    let mut attempts = 0;
    while check(&mut health, "").await != ServingStatus::Serving {
        attempts += 1;
        assert!(attempts < 600, "never SERVING after the database came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for service in api_tokens::health::SERVICE_NAMES {
        assert_eq!(check(&mut health, service).await, ServingStatus::Serving);
    }
    // Migrated and answering: an account made beside it, then a call through the server.
    let local = api_tokens::service::Service::new(
        api_tokens::storage::Repository::connect(&database.settings())
            .await
            .expect("the database is there now"),
        ServiceSettings::default(),
    );
    let made = crate::common::local::bootstrap_acme(&local).await;
    let admin = crate::common::As::new(made.secret.expose(), "after-the-outage");
    pb::token_service_client::TokenServiceClient::new(channel.clone())
        .create_token(admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            ..Default::default()
        }))
        .await
        .expect("calls work once the database is there");
    let _ = stop.send(());
    running.await.expect("server task").expect("stops cleanly");
}
