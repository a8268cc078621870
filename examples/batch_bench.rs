//! A batch of 100 decisions against one decision, side by side on one release server: each
//! round makes one SetApplicationState and one BatchSetApplicationStates of 100 (new names,
//! each of them a write with its change-log and audit entries), alternating which goes first,
//! and reports both latencies' percentiles and their ratio (issue 15's target: at most 20).
//!
//! cargo build --release
//! cargo run --release --example batch_bench -- [--rounds 50] [--postgres URL]
mod support;

use std::time::{Duration, Instant};

use api_tokens::grpc::pb::{self, token_service_client::TokenServiceClient};
use support::{
    Server, TestDatabase, backend_name, bootstrap, create_token, percentile, req, user_token,
};

#[tokio::main]
async fn main() {
    let mut rounds = 50usize;
    let mut postgres: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => rounds = value.parse().expect("--rounds N"),
            "--postgres" => postgres = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let database = TestDatabase::on(postgres.as_deref()).await;
    let admin = bootstrap(dir.path(), &database.url);
    // Room for every name the rounds record.
    let server = Server::start(dir.path(), &database.url, &["--max-apps-per-token", "0"]).await;
    let mut tokens = TokenServiceClient::new(server.channel.clone());
    let unspecified = user_token(pb::Privilege::Unspecified, pb::AppState::Unspecified);
    let (token_id, _) = create_token(&server.channel, &admin, unspecified).await;

    let mut single = Vec::with_capacity(rounds);
    let mut batch = Vec::with_capacity(rounds);
    // Two warm-up rounds, not counted.
    for round in 0..rounds + 2 {
        let one = pb::SetApplicationStateRequest {
            token_id: token_id.clone(),
            name: format!("single-{round}"),
            state: pb::AppState::Allow.into(),
            reason: "bench".into(),
            ..Default::default()
        };
        let many = pb::BatchSetApplicationStatesRequest {
            decisions: (0..100)
                .map(|i| pb::ApplicationDecision {
                    token_id: token_id.clone(),
                    name: format!("batch-{round}-{i}"),
                    state: pb::AppState::Allow.into(),
                    conditions: None,
                })
                .collect(),
            reason: "bench".into(),
            validate_only: false,
        };
        let mut time_one = Duration::ZERO;
        let mut time_many = Duration::ZERO;
        for first in [round % 2 == 0, round % 2 != 0] {
            if first {
                let started = Instant::now();
                tokens
                    .set_application_state(req(&admin, one.clone()))
                    .await
                    .expect("one decision");
                time_one = started.elapsed();
            } else {
                let started = Instant::now();
                let results = tokens
                    .batch_set_application_states(req(&admin, many.clone()))
                    .await
                    .expect("a batch")
                    .into_inner()
                    .results;
                time_many = started.elapsed();
                assert!(results.iter().all(|r| r.code == 0 && r.changed));
            }
        }
        if round >= 2 {
            single.push(time_one);
            batch.push(time_many);
        }
    }
    single.sort();
    batch.sort();
    let backend = backend_name(&database);
    let (p50_one, p50_many) = (percentile(&single, 0.5), percentile(&batch, 0.5));
    println!(
        "{backend}, {rounds} rounds: one decision p50 {:?} p90 {:?}; a batch of 100 p50 {:?} p90 {:?}; ratio of p50s {:.1} (target <= 20)",
        p50_one,
        percentile(&single, 0.9),
        p50_many,
        percentile(&batch, 0.9),
        p50_many.as_secs_f64() / p50_one.as_secs_f64(),
    );
    drop(server);
}
