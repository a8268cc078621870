//! How long a retire on replica A takes to be refused on replica B: two release servers on one
//! database, a token warm on B, retired on A, then B asked until it refuses. On PostgreSQL the
//! change log's NOTIFY wakes B; on SQLite (two processes on one file) only B's poll can, so
//! that run measures the bound without NOTIFY. Also checks that a check on B carrying the
//! retire's revision is refused at once, every round.
//!
//! cargo build --release
//! cargo run --release --example replica_lag -- [--rounds 200] [--postgres URL] [--log-poll-ms 250]
mod support;

use std::time::{Duration, Instant};

use api_tokens::grpc::pb::{self, authorize_service_client::AuthorizeServiceClient};
use support::{
    Server, TestDatabase, bootstrap, create_token, decide, percentile, retire, user_token,
};

struct Args {
    rounds: usize,
    postgres: Option<String>,
    log_poll_ms: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 200,
        postgres: None,
        log_poll_ms: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => args.rounds = value.parse().expect("--rounds N"),
            "--postgres" => args.postgres = Some(value),
            "--log-poll-ms" => args.log_poll_ms = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("dir");
    let database = TestDatabase::on(args.postgres.as_deref()).await;
    let admin = bootstrap(dir.path(), &database.url);
    let mut extra = Vec::new();
    if let Some(poll) = &args.log_poll_ms {
        extra.extend(["--log-poll-ms", poll.as_str()]);
    }
    let a = Server::start(dir.path(), &database.url, &extra).await;
    let b = Server::start(dir.path(), &database.url, &extra).await;
    let mut on_b = AuthorizeServiceClient::new(b.channel.clone());

    let mut lags = Vec::with_capacity(args.rounds);
    let mut asks = 0u64;
    for _ in 0..args.rounds {
        let allowed = user_token(pb::Privilege::Unspecified, pb::AppState::Allow);
        let (id, secret) = create_token(&a.channel, &admin, allowed).await;
        assert_eq!(
            decide(&mut on_b, &secret, "watch-bench", "").await,
            pb::Decision::Allow
        );
        let retired = retire(&a.channel, &admin, &id).await;
        let started = Instant::now();
        let revision = retired
            .metadata()
            .get(api_tokens::grpc::REVISION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        loop {
            asks += 1;
            if decide(&mut on_b, &secret, "watch-bench", "").await == pb::Decision::Retired {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "B never refused it"
            );
        }
        lags.push(started.elapsed());
        assert_eq!(
            decide(&mut on_b, &secret, "watch-bench", &revision).await,
            pb::Decision::Retired,
            "with the retire's revision, B is exact"
        );
    }
    lags.sort();
    let backend = if args.postgres.is_some() {
        "PostgreSQL (NOTIFY)"
    } else {
        "SQLite (poll only)"
    };
    println!(
        "{backend}, {} rounds: retire on A refused on B after p50 {:?}, p90 {:?}, p99 {:?}, max {:?} ({asks} checks on B)",
        args.rounds,
        percentile(&lags, 0.5),
        percentile(&lags, 0.9),
        percentile(&lags, 0.99),
        lags[lags.len() - 1],
    );
    drop((a, b));
}
