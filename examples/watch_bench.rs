//! Measures WatchApplications: event delivery latency (first Authorize of a new name →
//! RECORDED event at a watcher) on one replica and across two PostgreSQL replicas, how soon
//! a retire on one replica is refused on another, and the server's memory with many idle
//! subscribers. Runs the release binary on loopback; bounded in time and count.
//!
//! cargo build --release && cargo run --release --example watch_bench -- [--postgres URL] [--events N] [--subscribers N]
use std::time::{Duration, Instant};

use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use tokio_stream::StreamExt;

mod support;
use support::{Server, TestDatabase, bootstrap, create_token, decide, req, retire, user_token};
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

async fn pending_token(server: &Server, admin: &str) -> (String, String) {
    let pending = user_token(pb::Privilege::Normal, pb::AppState::Pending);
    create_token(&server.channel, admin, pending).await
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
                ..Default::default()
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
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let mut on_reader = AuthorizeServiceClient::new(reader.channel.clone());
        while decide(&mut on_reader, &secret, "warm", "").await != pb::Decision::Allow {}
        retire(&writer.channel, admin, &id).await;
        let start = Instant::now();
        while decide(&mut on_reader, &secret, "warm", "").await != pb::Decision::Retired {
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
    let sqlite = TestDatabase::on(None).await;
    let admin = bootstrap(dir.path(), &sqlite.url);
    let one = Server::start(dir.path(), &sqlite.url, &[]).await;
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
        let database = TestDatabase::on(Some(&server_url)).await;
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
        drop(database);
    }
}
