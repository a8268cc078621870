//! Measures WatchApplications: event delivery latency (first Authorize of a new name →
//! RECORDED event at a watcher) on one replica and across two PostgreSQL replicas, how soon
//! a retire on one replica is refused on another, and the server's memory with many idle
//! subscribers. Runs the release binary on loopback; bounded in time and count.
//!
//! cargo build --release && cargo run --release --example watch_bench -- [--postgres URL] [--events N] [--subscribers N]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use tokio_stream::StreamExt;
use tonic::Request;
use tonic::transport::Channel;

struct Args {
    postgres: Option<String>,
    events: usize,
    subscribers: usize,
}

fn args() -> Args {
    let mut out = Args {
        postgres: None,
        events: 200,
        subscribers: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--postgres" => out.postgres = Some(value()),
            "--events" => out.events = value().parse().expect("--events N"),
            "--subscribers" => out.subscribers = value().parse().expect("--subscribers N"),
            other => panic!("unknown flag {other}"),
        }
    }
    out
}

fn binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/api-tokens");
    assert!(bin.exists(), "build it first: cargo build --release");
    bin
}

struct Server {
    child: Child,
    channel: Channel,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(dir: &Path, database: &str, extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(binary())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database,
            ])
            .args(extra)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await {
                return Server {
                    child,
                    channel,
                    port,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not start");
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

fn req<T>(secret: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-circonus-auth-token", secret.parse().unwrap());
    request
        .metadata_mut()
        .insert("x-circonus-app-name", "watch-bench".parse().unwrap());
    request
}

fn bootstrap(dir: &Path, database: &str) -> String {
    let out = Command::new(binary())
        .args([
            "bootstrap",
            "--account",
            "bench",
            "--admin",
            "bench@example.com",
            "--output",
            "json",
        ])
        .args(["--database-url", database])
        .current_dir(dir)
        .output()
        .expect("bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    made["secret"].as_str().unwrap().to_owned()
}

async fn pending_token(server: &Server, admin: &str) -> (String, String) {
    let created = TokenServiceClient::new(server.channel.clone())
        .create_token(req(
            admin,
            pb::CreateTokenRequest {
                r#type: pb::TokenType::User.into(),
                privilege: pb::Privilege::Normal.into(),
                default_app_state: pb::AppState::Pending.into(),
                description: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (created.token.unwrap().id, created.secret)
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "{name:<44} n={:<5} p50={:>9.2?} p99={:>9.2?} max={:>9.2?}",
        samples.len(),
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
}

/// First Authorize of a new name on `writer` → RECORDED at a watcher on `reader`.
async fn delivery(name: &str, writer: &Server, reader: &Server, admin: &str, events: usize) {
    let (_, secret) = pending_token(writer, admin).await;
    let mut stream = TokenServiceClient::new(reader.channel.clone())
        .watch_applications(req(admin, pb::WatchApplicationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    while stream.next().await.unwrap().unwrap().r#type() != pb::WatchEventType::SnapshotEnd {}
    let mut authorize = AuthorizeServiceClient::new(writer.channel.clone());
    let mut samples = Vec::with_capacity(events);
    for i in 0..events {
        let app = format!("delivery-{i}");
        let start = Instant::now();
        authorize
            .authorize(pb::AuthorizeRequest {
                token: secret.clone(),
                app_name: app.clone(),
                required_privilege: 0,
            })
            .await
            .unwrap();
        loop {
            let item = stream.next().await.unwrap().unwrap();
            if item.application.is_some_and(|a| a.name == app) {
                break;
            }
        }
        samples.push(start.elapsed());
    }
    summary(name, samples);
}

/// Warm a token on `reader`, retire it on `writer`, poll `reader` until it refuses.
async fn retire_across(writer: &Server, reader: &Server, admin: &str, rounds: usize) {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let (id, secret) = pending_token(writer, admin).await;
        let mut tokens = TokenServiceClient::new(writer.channel.clone());
        tokens
            .set_application_state(req(
                admin,
                pb::SetApplicationStateRequest {
                    token_id: id.clone(),
                    name: "warm".into(),
                    state: pb::AppState::Allow.into(),
                },
            ))
            .await
            .unwrap();
        let mut on_reader = AuthorizeServiceClient::new(reader.channel.clone());
        let check = |client: &mut AuthorizeServiceClient<Channel>| {
            let mut client = client.clone();
            let secret = secret.clone();
            async move {
                client
                    .authorize(pb::AuthorizeRequest {
                        token: secret,
                        app_name: "warm".into(),
                        required_privilege: 0,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .decision()
            }
        };
        while check(&mut on_reader).await != pb::Decision::Allow {}
        tokens
            .retire_token(req(admin, pb::RetireTokenRequest { id }))
            .await
            .unwrap();
        let start = Instant::now();
        while check(&mut on_reader).await != pb::Decision::Retired {
            assert!(start.elapsed() < Duration::from_secs(10), "never refused");
        }
        samples.push(start.elapsed());
    }
    summary("retire on A -> refused on B", samples);
}

async fn idle_subscribers(server: &Server, admin: &str, count: usize) {
    let before = server.rss_kib();
    // Separate HTTP/2 connections: a server allows only so many streams on one.
    let connections = count.div_ceil(100);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let url = format!("http://127.0.0.1:{}", server.port);
        channels.push(Channel::from_shared(url).unwrap().connect().await.unwrap());
    }
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = TokenServiceClient::new(channels[i % connections].clone());
        let request = req(admin, pb::WatchApplicationsRequest::default());
        let mut stream = client
            .watch_applications(request)
            .await
            .unwrap()
            .into_inner();
        while stream.next().await.unwrap().unwrap().r#type() != pb::WatchEventType::SnapshotEnd {}
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "{count} idle subscribers over {connections} connections (opened in {:.1?}): server RSS {} MiB -> {} MiB",
        started.elapsed(),
        before / 1024,
        server.rss_kib() / 1024
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let admin = bootstrap(dir.path(), &sqlite);
    let one = Server::start(dir.path(), &sqlite, &[]).await;
    println!("== one replica, SQLite");
    delivery(
        "new app -> RECORDED at a watcher",
        &one,
        &one,
        &admin,
        args.events,
    )
    .await;
    idle_subscribers(&one, &admin, args.subscribers).await;
    drop(one);

    if let Some(server_url) = args.postgres {
        println!(
            "== two replicas, one PostgreSQL ({})",
            api_tokens::startup::redact_url(&server_url)
        );
        let database = ScratchDatabase::create(&server_url).await;
        let url = database.url.clone();
        let admin = bootstrap(dir.path(), &url);
        let a = Server::start(dir.path(), &url, &[]).await;
        let b = Server::start(dir.path(), &url, &[]).await;
        delivery(
            "new app on A -> RECORDED at a watcher on B",
            &a,
            &b,
            &admin,
            args.events,
        )
        .await;
        retire_across(&a, &b, &admin, 50).await;
        drop((a, b));
        database.drop().await;
    }
}

/// A database of the bench's own on the given server, so nothing lands in a shared one.
struct ScratchDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn create(server_url: &str) -> ScratchDatabase {
        use sea_orm::ConnectionTrait;
        let name = format!("apitokens_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(server_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let _ = admin.close().await;
        let (base, query) = server_url
            .split_once('?')
            .map_or((server_url, None), |(b, q)| (b, Some(q)));
        let cut = base
            .rfind('/')
            .filter(|i| *i > base.find("://").map_or(0, |s| s + 2))
            .unwrap_or(base.len());
        let url = format!(
            "{}/{name}{}",
            &base[..cut],
            query.map(|q| format!("?{q}")).unwrap_or_default()
        );
        ScratchDatabase {
            server_url: server_url.to_owned(),
            name,
            url,
        }
    }

    async fn drop(self) {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(self.server_url.as_str())
            .await
            .expect("PostgreSQL reachable");
        let _ = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
        let _ = admin.close().await;
    }
}
