//! A bounded soak: mixed Authorize, management and watch traffic against the release server
//! on loopback for a fixed time, sampling the server's RSS, counting every unexpected error.
//! Exits non-zero if any call failed or memory kept growing.
//!
//! cargo build --release && cargo run --release --example soak -- [--seconds 600] [--postgres URL]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use tokio_stream::StreamExt;

mod support;
use support::{Server, TestDatabase, backend_name, bootstrap, req, user_token};

#[derive(Default)]
struct Counts {
    authorize: AtomicU64,
    management: AtomicU64,
    events: AtomicU64,
    errors: AtomicU64,
}

fn parse_args() -> (u64, Option<String>) {
    let (mut seconds, mut postgres) = (600, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => seconds = value.parse().expect("--seconds N"),
            "--postgres" => postgres = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    (seconds.clamp(10, 3600), postgres)
}

fn failed(counts: &Counts, what: &str, status: &tonic::Status) {
    counts.errors.fetch_add(1, Ordering::Relaxed);
    eprintln!(
        "unexpected error in {what}: {:?} {}",
        status.code(),
        status.message()
    );
}

async fn authorize_worker(
    server: Arc<Server>,
    warm: String,
    pending: String,
    counts: Arc<Counts>,
    until: Instant,
) {
    let mut client = AuthorizeServiceClient::new(server.channel.clone());
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        // Mostly warm calls; now and then a new name (recorded, evented) or an unknown secret.
        let (token, app) = match i % 50 {
            0 => (pending.clone(), format!("soak-{}", i % 5000)),
            1 => (uuid::Uuid::new_v4().to_string(), "guess".to_owned()),
            _ => (warm.clone(), "soak".to_owned()),
        };
        match client
            .authorize(pb::AuthorizeRequest {
                token,
                app_name: app,
                required_privilege: 0,
                ..Default::default()
            })
            .await
        {
            Ok(_) => counts.authorize.fetch_add(1, Ordering::Relaxed),
            Err(status) => {
                failed(&counts, "Authorize", &status);
                0
            }
        };
    }
}

async fn management_worker(
    server: Arc<Server>,
    admin: String,
    counts: Arc<Counts>,
    until: Instant,
) {
    let mut tokens = TokenServiceClient::new(server.channel.clone());
    while Instant::now() < until {
        let create = pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            ..Default::default()
        };
        let id = match tokens.create_token(req(&admin, create)).await {
            Ok(r) => r.into_inner().token.map(|t| t.id).unwrap_or_default(),
            Err(status) => return failed(&counts, "CreateToken", &status),
        };
        let allow = pb::SetApplicationStateRequest {
            token_id: id.clone(),
            name: "app".into(),
            state: pb::AppState::Allow.into(),
            ..Default::default()
        };
        let results = [
            tokens
                .set_application_state(req(&admin, allow))
                .await
                .map(drop),
            tokens
                .list_tokens(req(
                    &admin,
                    pb::ListTokensRequest {
                        page_size: 20,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            tokens
                .retire_token(req(
                    &admin,
                    pb::RetireTokenRequest {
                        id,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
        ];
        for result in results {
            match result {
                Ok(()) => counts.management.fetch_add(1, Ordering::Relaxed),
                Err(status) => {
                    failed(&counts, "management", &status);
                    0
                }
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn watcher(server: Arc<Server>, admin: String, counts: Arc<Counts>, until: Instant) {
    let mut tokens = TokenServiceClient::new(server.channel.clone());
    let all = vec![
        pb::AppState::Pending as i32,
        pb::AppState::Allow as i32,
        pb::AppState::Deny as i32,
    ];
    let request = pb::WatchApplicationsRequest {
        states: all,
        ..Default::default()
    };
    let mut stream = match tokens.watch_applications(req(&admin, request)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return failed(&counts, "WatchApplications", &status),
    };
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            Ok(Some(Ok(_))) => {
                counts.events.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(Err(status))) => return failed(&counts, "watch stream", &status),
            Ok(None) => return failed(&counts, "watch stream", &tonic::Status::unknown("ended")),
            Err(_) => {}
        }
    }
}

async fn create_token(server: &Server, admin: &str, state: pb::AppState) -> String {
    let request = pb::CreateTokenRequest {
        description: "soak".into(),
        ..user_token(pb::Privilege::Normal, state)
    };
    support::create_token(&server.channel, admin, request)
        .await
        .1
}

#[tokio::main]
async fn main() {
    let (seconds, postgres) = parse_args();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::on(postgres.as_deref()).await;
    let admin = bootstrap(dir.path(), &database.url);
    let flags = ["--max-apps-per-token", "100000"];
    let server = Arc::new(Server::start(dir.path(), &database.url, &flags).await);
    let warm = create_token(&server, &admin, pb::AppState::Allow).await;
    let pending = create_token(&server, &admin, pb::AppState::Pending).await;

    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(authorize_worker(
            server.clone(),
            warm.clone(),
            pending.clone(),
            counts.clone(),
            until,
        )));
    }
    tasks.push(tokio::spawn(management_worker(
        server.clone(),
        admin.clone(),
        counts.clone(),
        until,
    )));
    for _ in 0..4 {
        tasks.push(tokio::spawn(watcher(
            server.clone(),
            admin.clone(),
            counts.clone(),
            until,
        )));
    }
    println!("soak: {seconds} s on {}", backend_name(&database));
    println!(
        "{:>6} {:>10} {:>12} {:>11} {:>9} {:>7}",
        "t (s)", "RSS MiB", "Authorize", "management", "events", "errors"
    );
    let started = Instant::now();
    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(
            Duration::from_secs(10).min(until.saturating_duration_since(Instant::now())),
        )
        .await;
        let rss = server.rss_kib() / 1024;
        samples.push(rss);
        println!(
            "{:>6} {:>10} {:>12} {:>11} {:>9} {:>7}",
            started.elapsed().as_secs(),
            rss,
            counts.authorize.load(Ordering::Relaxed),
            counts.management.load(Ordering::Relaxed),
            counts.events.load(Ordering::Relaxed),
            counts.errors.load(Ordering::Relaxed)
        );
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(server);
    drop(database);
    // Flat memory: the second half's peak is no more than 10 % above the first half's.
    let half = samples.len() / 2;
    let first = samples[..half.max(1)].iter().max().copied().unwrap_or(0);
    let second = samples[half..].iter().max().copied().unwrap_or(0);
    let errors = counts.errors.load(Ordering::Relaxed);
    println!("RSS peak first half {first} MiB, second half {second} MiB; errors {errors}");
    if errors > 0 || second > first + first / 10 + 1 {
        std::process::exit(1);
    }
}
