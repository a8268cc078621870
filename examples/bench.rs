//! Load benchmark: Authorize against grpc.health.v1.Health/Check on one server, one client,
//! one run. It starts the release server (SQLite, or a fresh PostgreSQL database with
//! `--postgres`), bootstraps a token with the real CLI, then alternates fixed-duration
//! Authorize and Health phases over the same connections and prints throughput,
//! latency percentiles, server CPU per request, the ratios, and the server's RSS. With
//! `--tokens N` it creates N more tokens (all warmed first) and adds a phase that calls them
//! round robin. Each phase also reports the server's token-cache misses and database
//! statements per second (its `api_tokens_*` metrics; on PostgreSQL also the database's
//! committed transactions from `pg_stat_database`), and an idle phase measures the
//! replica's own queries with no load.
//!
//! ```sh
//! cargo run --release --example bench -- [--postgres URL] [--seconds N] [--connections C] \
//!     [--in-flight M] [--rounds R] [--client-threads T] [--tokens N] [--idle-seconds S]
//! ```
//!
//! Why the server runs as its own process (`target/<profile>/api-tokens`, built first with
//! `cargo build --bin api-tokens`, since examples do not build binaries): it is then the
//! binary that ships, with its own runtime, allocator and scheduler, not a runtime that
//! shares worker threads and a tokio budget with the load generator. Its RSS and CPU time
//! are its own, read from /proc/PID. On a 2-core machine the client still competes with
//! the server for CPU; both phases pay the same client cost, which is why the ratios and
//! the server CPU per request (immune to that sharing) are the figures to compare.
#[path = "bench/load.rs"]
mod load;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/server.rs"]
mod server;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_tokens::grpc::pb;
use clap::Parser;

use load::{Load, connect_all, create_tokens, wait_serving, warm};
use report::{Rpc, Tally, print_row};
use server::{ServerProcess, build_server, describe, rss, transactions};
use support::{TestDatabase, bootstrap_with, free_addr};

/// Bounds that keep a run finite whatever the flags say.
const MAX_SECONDS: u64 = 120;
const MAX_ROUNDS: u32 = 20;
const MAX_IN_FLIGHT: usize = 4096;
const MAX_TOKENS: usize = 100_000;

#[derive(Debug, Parser)]
#[command(about = "Authorize vs Health/Check load benchmark against a local api-tokens server")]
struct Args {
    /// PostgreSQL server URL (e.g. postgres://postgres@127.0.0.1:5432/postgres). A fresh
    /// database with a random name is created on it and dropped afterwards. Default: SQLite.
    #[arg(long)]
    postgres: Option<String>,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests kept in flight at all times, over all connections.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Rounds of (Authorize phase, Health phase).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds of unmeasured load per RPC before the first round.
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Distinct tokens called round robin in the many-token phase (1: no such phase). They
    /// are created through TokenService and each is used once before the measurement.
    #[arg(long, default_value_t = 1)]
    tokens: usize,
    /// Seconds of no load at the end, to count an idle replica's queries (0: skip).
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Use this server binary instead of building target/<profile>/api-tokens.
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.seconds == 0 || args.seconds > MAX_SECONDS {
        bail!("--seconds must be 1..={MAX_SECONDS}");
    }
    if args.rounds == 0 || args.rounds > MAX_ROUNDS {
        bail!("--rounds must be 1..={MAX_ROUNDS}");
    }
    if args.warmup_seconds > MAX_SECONDS {
        bail!("--warmup-seconds must be at most {MAX_SECONDS}");
    }
    if args.connections == 0 || args.in_flight < args.connections || args.in_flight > MAX_IN_FLIGHT
    {
        bail!("need 1 <= --connections <= --in-flight <= {MAX_IN_FLIGHT}");
    }
    if args.tokens == 0 || args.tokens > MAX_TOKENS {
        bail!("--tokens must be 1..={MAX_TOKENS}");
    }
    if args.idle_seconds > MAX_SECONDS {
        bail!("--idle-seconds must be at most {MAX_SECONDS}");
    }
    if args.client_threads == 0 {
        bail!("--client-threads must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; figures are meaningless. Use cargo run --release --example bench"
        );
    }
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => build_server()?,
    };
    let database = TestDatabase::on(args.postgres.as_deref()).await;
    measure(&args, &binary, &database).await
}

/// How long `pg_stat_database` may lag behind an idle backend (PostgreSQL 15), plus a margin.
const PG_STATS_LAG: Duration = Duration::from_secs(11);

async fn measure(args: &Args, binary: &Path, database: &TestDatabase) -> anyhow::Result<()> {
    let secret = bootstrap_with(binary, Path::new("."), &database.url);
    let addr = free_addr();
    let metrics_addr = free_addr();
    let log = tempfile::NamedTempFile::new()?;
    let child = Command::new(binary)
        .args(["serve", "--listen", &addr.to_string(), "--metrics-listen"])
        .arg(metrics_addr.to_string())
        .arg("--database-url")
        .arg(&database.url)
        .stdout(Stdio::null())
        .stderr(log.reopen()?)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let server = ServerProcess { child };
    let pid = server.child.id();

    let channels = connect_all(addr, args.connections).await?;
    wait_serving(&channels[0]).await.with_context(|| {
        let tail = std::fs::read_to_string(log.path()).unwrap_or_default();
        format!("the server did not become ready; its log:\n{tail}")
    })?;
    let request = |token: String| pb::AuthorizeRequest {
        token,
        app_name: "bench".into(),
        required_privilege: pb::Privilege::ReadOnly.into(),
        ..Default::default()
    };
    // The first call records the app name; then the token is warm.
    let one = vec![request(secret.clone())];
    warm(&channels, &one).await?;
    let many = if args.tokens > 1 {
        let setup = Instant::now();
        let secrets = create_tokens(&channels, &secret, args.tokens).await?;
        let many: Vec<_> = secrets.into_iter().map(request).collect();
        warm(&channels, &many).await?;
        eprintln!(
            "created and warmed {} tokens in {:.1} s",
            many.len(),
            setup.elapsed().as_secs_f64()
        );
        Some(many)
    } else {
        None
    };

    let load = Load {
        channels,
        one: Arc::new(one),
        many: many.map(Arc::new),
        in_flight: args.in_flight,
        pid,
        metrics: metrics_addr,
    };
    let mut rpcs = vec![Rpc::Authorize];
    if load.many.is_some() {
        rpcs.push(Rpc::AuthorizeMany);
    }
    rpcs.push(Rpc::Health);
    let warmup = Duration::from_secs(args.warmup_seconds);
    if !warmup.is_zero() {
        for &rpc in &rpcs {
            load.phase(rpc, warmup).await?;
        }
    }
    if database.postgres().is_some() {
        tokio::time::sleep(PG_STATS_LAG).await;
    }
    let run_started = Instant::now();
    let transactions_before = transactions(database).await;

    println!(
        "api-tokens load benchmark, {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "server {} (pid {pid}) on {}; {} cores; load average before start: {}",
        binary.display(),
        describe(database),
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "client: {} connections, {} requests in flight, {} client thread(s); {} rounds of {} s per phase: {}; {} token(s) in the round robin",
        args.connections,
        args.in_flight,
        args.client_threads,
        args.rounds,
        args.seconds,
        rpcs.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "),
        args.tokens
    );
    println!(
        "tok miss %: token-cache misses / token-cache lookups on the server; q/s: statements the server sent per second (api_tokens_database_queries_total)"
    );
    println!();
    println!(
        "{:<6} {:<13} {:>10} {:>9} {:>9} {:>9} {:>12} {:>10} {:>8}",
        "round", "rpc", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "srv CPU µs", "tok miss %", "q/s"
    );
    let phase = Duration::from_secs(args.seconds);
    let mut totals: Vec<(Rpc, Tally)> = rpcs.iter().map(|&rpc| (rpc, Tally::new())).collect();
    for round in 1..=args.rounds {
        for (rpc, total) in &mut totals {
            let tally = load.phase(*rpc, phase).await?;
            print_row(&round.to_string(), *rpc, &tally);
            total.add(&tally);
        }
    }
    let idle = if args.idle_seconds > 0 {
        let tally = load
            .phase(Rpc::Idle, Duration::from_secs(args.idle_seconds))
            .await?;
        print_row("-", Rpc::Idle, &tally);
        Some(tally)
    } else {
        None
    };
    let run_time = run_started.elapsed();
    println!();
    for (rpc, total) in &totals {
        print_row("all", *rpc, total);
    }
    println!();
    let total = |rpc: Rpc| totals.iter().find(|(r, _)| *r == rpc).map(|(_, t)| t);
    if let (Some(authorize), Some(health)) = (total(Rpc::Authorize), total(Rpc::Health)) {
        println!(
            "Authorize / Health: throughput {:.2}, p50 {:.2}, p99 {:.2}, server CPU per request {:.2}",
            authorize.rate() / health.rate(),
            authorize.micros(0.5) / health.micros(0.5),
            authorize.micros(0.99) / health.micros(0.99),
            authorize.cpu_per_request_us() / health.cpu_per_request_us()
        );
        if let Some(many) = total(Rpc::AuthorizeMany) {
            println!(
                "Authorize {} tokens / Authorize 1 token: throughput {:.2}, p50 {:.2}, p99 {:.2}, server CPU per request {:.2}; {} tokens / Health throughput {:.2}",
                args.tokens,
                many.rate() / authorize.rate(),
                many.micros(0.5) / authorize.micros(0.5),
                many.micros(0.99) / authorize.micros(0.99),
                many.cpu_per_request_us() / authorize.cpu_per_request_us(),
                args.tokens,
                many.rate() / health.rate()
            );
            println!(
                "Authorize {} tokens: {} token-cache misses in {} lookups ({:.3} %), {:.1} queries/s",
                args.tokens,
                many.server.token_misses,
                many.server.token_hits + many.server.token_misses,
                many.miss_percent(),
                many.per_second(many.server.queries)
            );
        }
        println!(
            "Authorize 1 token gRPC codes: {:?}; decisions: {:?}",
            authorize.codes, authorize.decisions
        );
        if let Some(many) = total(Rpc::AuthorizeMany) {
            println!(
                "Authorize {} tokens gRPC codes: {:?}; decisions: {:?}",
                args.tokens, many.codes, many.decisions
            );
        }
        println!("gRPC codes, Health/Check: {:?}", health.codes);
    }
    if let Some(idle) = &idle {
        println!(
            "idle replica: {} statements in {:.1} s = {:.2} queries/s",
            idle.server.queries,
            idle.elapsed.as_secs_f64(),
            idle.per_second(idle.server.queries)
        );
    }
    if database.postgres().is_some() {
        tokio::time::sleep(PG_STATS_LAG).await;
        let window = run_started.elapsed();
        if let (Some(before), Some(after)) = (transactions_before, transactions(database).await) {
            println!(
                "pg_stat_database: {} transactions in {:.1} s (the rounds, the idle phase and {:.0} s of waiting for the statistics, all without the bench's own) = {:.1} transactions/s",
                after.saturating_sub(before),
                window.as_secs_f64(),
                (window - run_time).as_secs_f64(),
                after.saturating_sub(before) as f64 / window.as_secs_f64()
            );
        }
    }
    println!("server memory: {}", rss(pid));
    Ok(())
}
