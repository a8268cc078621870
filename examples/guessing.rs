//! Guessing, measured: the latency of Authorize in process for a known secret (warm and cold),
//! an unknown secret repeated (the negative cache answers) and distinct unknown secrets (one
//! query each), with the database queries each kind costs. Prints figures; asserts nothing
//! about time (tests/api/guessing.rs asserts the query counts).
//!
//! ```sh
//! cargo run --release --example guessing -- [--postgres URL] [--calls N]
//! ```
//!
//! In process, not over gRPC: the point is what the service does per guess, without the
//! network's and the client's noise. SQLite by default in a temporary folder; with
//! `--postgres`, a fresh database with a random name, dropped afterwards.
mod support;

use std::time::{Duration, Instant};

use api_tokens::domain::{AppName, Privilege, Secret};
use api_tokens::service::Service;
use api_tokens::storage::DatabaseSettings;
use clap::Parser;
use hdrhistogram::Histogram;
use support::local::service_on;
use support::{TestDatabase, backend_name};

/// Bound on calls per kind, whatever the flag says.
const MAX_CALLS: u64 = 100_000;

#[derive(Debug, Parser)]
#[command(about = "Authorize latency and query cost: known vs unknown secrets, in process")]
struct Args {
    /// PostgreSQL server URL (e.g. postgres://postgres@127.0.0.1:5432/postgres). Default: SQLite.
    #[arg(long)]
    postgres: Option<String>,
    /// Calls per kind.
    #[arg(long, default_value_t = 10_000)]
    calls: u64,
}

struct Row {
    kind: &'static str,
    histogram: Histogram<u64>,
    queries: u64,
}

/// Times `calls` Authorize calls; `secret(i)` picks the secret of call `i`, `before` runs untimed.
async fn measure(
    service: &Service,
    kind: &'static str,
    calls: u64,
    app: &AppName,
    mut secret: impl FnMut(u64) -> Secret,
    before: impl Fn(),
) -> anyhow::Result<Row> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let start_queries = service.repository().query_count();
    for i in 0..calls {
        let secret = secret(i);
        before();
        let started = Instant::now();
        let outcome = service.authorize(&secret, app, Privilege::ReadOnly).await?;
        let elapsed = started.elapsed();
        std::hint::black_box(outcome);
        histogram.record(elapsed.as_nanos().try_into().unwrap_or(u64::MAX))?;
    }
    Ok(Row {
        kind,
        histogram,
        queries: service.repository().query_count() - start_queries,
    })
}

fn micros(nanos: u64) -> String {
    format!("{:.1}", Duration::from_nanos(nanos).as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let calls = args.calls.clamp(1, MAX_CALLS);
    let database = TestDatabase::on(args.postgres.as_deref()).await;
    let settings = DatabaseSettings {
        max_connections: 4,
        ..database.settings()
    };
    let (service, made) = service_on(&settings).await;
    let known = made.secret;
    let app = AppName::parse("guesser").map_err(anyhow::Error::msg)?;
    // Record the application once, so every known call below is a plain lookup.
    service.authorize(&known, &app, Privilege::ReadOnly).await?;

    let repeated = Secret::generate();
    let rows = [
        measure(
            &service,
            "known, warm",
            calls,
            &app,
            |_| known.clone(),
            || {},
        )
        .await?,
        measure(
            &service,
            "known, cold (cache cleared before each)",
            calls,
            &app,
            |_| known.clone(),
            || service.forget_cached(),
        )
        .await?,
        measure(
            &service,
            "one unknown secret, repeated",
            calls,
            &app,
            |_| repeated.clone(),
            || {},
        )
        .await?,
        measure(
            &service,
            "distinct unknown secrets",
            calls,
            &app,
            |_| Secret::generate(),
            || {},
        )
        .await?,
    ];
    println!(
        "backend: {}, {calls} calls per kind, release: {}",
        backend_name(&database),
        !cfg!(debug_assertions)
    );
    println!(
        "{:<42} {:>10} {:>10} {:>10} {:>8}",
        "kind", "p50 µs", "p99 µs", "max µs", "queries"
    );
    for row in &rows {
        println!(
            "{:<42} {:>10} {:>10} {:>10} {:>8}",
            row.kind,
            micros(row.histogram.value_at_quantile(0.5)),
            micros(row.histogram.value_at_quantile(0.99)),
            micros(row.histogram.max()),
            row.queries
        );
    }
    service.repository().clone().close().await;
    drop(database);
    Ok(())
}
