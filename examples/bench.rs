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
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use clap::Parser;
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use support::{ScratchDatabase, bootstrap_with, free_addr, status_field};

/// Bounds that keep a run finite whatever the flags say.
const MAX_SECONDS: u64 = 120;
const MAX_ROUNDS: u32 = 20;
const MAX_IN_FLIGHT: usize = 4096;
const MAX_TOKENS: usize = 100_000;
/// Token creations and first uses kept in flight while setting up `--tokens`.
const SETUP_IN_FLIGHT: usize = 16;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    /// Authorize with one token.
    Authorize,
    /// Authorize with each of `--tokens` tokens in turn.
    AuthorizeMany,
    Health,
    /// No calls: what the replica does on its own.
    Idle,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Authorize => "Authorize",
            Rpc::AuthorizeMany => "Authorize N",
            Rpc::Health => "Health/Check",
            Rpc::Idle => "idle",
        }
    }
}

/// What the server counted during a phase.
#[derive(Debug, Clone, Copy, Default)]
struct ServerCounts {
    token_hits: u64,
    token_misses: u64,
    /// Statements the replica sent (`api_tokens_database_queries_total`).
    queries: u64,
}

impl ServerCounts {
    fn since(self, before: ServerCounts) -> ServerCounts {
        ServerCounts {
            token_hits: self.token_hits.saturating_sub(before.token_hits),
            token_misses: self.token_misses.saturating_sub(before.token_misses),
            // The closing scrape counts pending applications: one statement of the bench's own.
            queries: self
                .queries
                .saturating_sub(before.queries)
                .saturating_sub(1),
        }
    }

    fn add(&mut self, other: ServerCounts) {
        self.token_hits += other.token_hits;
        self.token_misses += other.token_misses;
        self.queries += other.queries;
    }
}

/// What one phase (or the sum of phases) measured.
struct Tally {
    /// Latencies of successful calls, in nanoseconds.
    latency: Histogram<u64>,
    ok: u64,
    /// Calls by gRPC status code, successes included.
    codes: BTreeMap<String, u64>,
    /// Authorize answers by decision.
    decisions: BTreeMap<String, u64>,
    elapsed: Duration,
    /// Server CPU time (user + system) spent during the phase.
    server_cpu: Duration,
    server: ServerCounts,
}

impl Tally {
    fn new() -> Self {
        Tally {
            // 1 µs to 60 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1_000, 60_000_000_000, 3)
                .expect("static histogram bounds are valid"),
            ok: 0,
            codes: BTreeMap::new(),
            decisions: BTreeMap::new(),
            elapsed: Duration::ZERO,
            server_cpu: Duration::ZERO,
            server: ServerCounts::default(),
        }
    }

    fn add(&mut self, other: &Tally) {
        // Both histograms share bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        for (k, v) in &other.codes {
            *self.codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.decisions {
            *self.decisions.entry(k.clone()).or_default() += v;
        }
        self.elapsed += other.elapsed;
        self.server_cpu += other.server_cpu;
        self.server.add(other.server);
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn micros(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Token-cache misses as a percentage of token-cache lookups.
    fn miss_percent(&self) -> f64 {
        let lookups = self.server.token_hits + self.server.token_misses;
        100.0 * self.server.token_misses as f64 / (lookups.max(1) as f64)
    }

    fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / (self.ok.max(1) as f64)
    }
}

/// The server process; killed when dropped so an error path leaves nothing running.
struct ServerProcess {
    child: Child,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database for the run: an SQLite file in a temporary folder, or a PostgreSQL database
/// with a random name, dropped at the end.
struct BenchDatabase {
    url: String,
    postgres: Option<ScratchDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDatabase {
    async fn create(postgres: Option<&str>) -> anyhow::Result<Self> {
        match postgres {
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                Ok(BenchDatabase {
                    url,
                    postgres: None,
                    _dir: Some(dir),
                })
            }
            Some(admin_url) => {
                let scratch = ScratchDatabase::create(admin_url).await;
                Ok(BenchDatabase {
                    url: scratch.url.clone(),
                    postgres: Some(scratch),
                    _dir: None,
                })
            }
        }
    }

    async fn drop_postgres(&mut self) {
        if let Some(scratch) = self.postgres.take() {
            scratch.drop().await;
        }
    }

    /// Transactions committed and rolled back in the bench database so far (PostgreSQL).
    /// An idle backend sends its statistics up to 10 s late (PostgreSQL 15), so callers wait
    /// that long, with no load, before reading.
    async fn transactions(&self) -> Option<u64> {
        let scratch = self.postgres.as_ref()?;
        let admin = Database::connect(scratch.server_url()).await.ok()?;
        let row = admin
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database WHERE datname = $1",
                [scratch.name().into()],
            ))
            .await
            .ok()??;
        let _ = admin.close().await;
        row.try_get::<i64>("", "n")
            .ok()
            .and_then(|n| u64::try_from(n).ok())
    }

    fn describe(&self) -> String {
        match &self.postgres {
            Some(scratch) => format!("PostgreSQL (fresh database {})", scratch.name()),
            None => "SQLite (temporary file)".into(),
        }
    }
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
    let mut database = BenchDatabase::create(args.postgres.as_deref()).await?;
    let result = measure(&args, &binary, &database).await;
    database.drop_postgres().await;
    result
}

/// Builds the server binary with the profile this example was built with.
fn build_server() -> anyhow::Result<PathBuf> {
    let release = !cfg!(debug_assertions);
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/bench -> target/<profile>/api-tokens
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .arg("--bin")
        .arg("api-tokens")
        .arg("--manifest-path")
        .arg(&manifest);
    if release {
        build.arg("--release");
    }
    // `cargo run` gives this process the package's CARGO_PKG_*, CARGO_MANIFEST_* (and so
    // on) variables. Some build scripts (ring's) rerun when those change, so passing them
    // on would rebuild half the dependency tree on every switch between `cargo run` and
    // running this binary directly.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*name)
        {
            build.env_remove(&*name);
        }
    }
    eprintln!("building the server: {build:?}");
    let status = build.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building the server failed");
    }
    Ok(profile_dir.join("api-tokens"))
}

/// How long `pg_stat_database` may lag behind an idle backend (PostgreSQL 15), plus a margin.
const PG_STATS_LAG: Duration = Duration::from_secs(11);

async fn measure(args: &Args, binary: &Path, database: &BenchDatabase) -> anyhow::Result<()> {
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
    if database.postgres.is_some() {
        tokio::time::sleep(PG_STATS_LAG).await;
    }
    let run_started = Instant::now();
    let transactions_before = database.transactions().await;

    println!(
        "api-tokens load benchmark, {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "server {} (pid {pid}) on {}; {} cores; load average before start: {}",
        binary.display(),
        database.describe(),
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
    if database.postgres.is_some() {
        tokio::time::sleep(PG_STATS_LAG).await;
        let window = run_started.elapsed();
        if let (Some(before), Some(after)) = (transactions_before, database.transactions().await) {
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

/// Uses each request once, SETUP_IN_FLIGHT at a time, and fails unless each is allowed:
/// the first use records the application name, and the token is then in the cache.
async fn warm(channels: &[Channel], requests: &[pb::AuthorizeRequest]) -> anyhow::Result<()> {
    let mut calls = JoinSet::new();
    for (i, request) in requests.iter().enumerate() {
        if calls.len() >= SETUP_IN_FLIGHT
            && let Some(done) = calls.join_next().await
        {
            done??;
        }
        let client = AuthorizeServiceClient::new(channels[i % channels.len()].clone());
        let request = request.clone();
        calls.spawn(async move {
            let decision = retry_unavailable(|| {
                let (mut client, request) = (client.clone(), request.clone());
                async move { client.authorize(request).await }
            })
            .await?
            .into_inner()
            .decision();
            if decision != pb::Decision::Allow {
                bail!("a bench token is not allowed: {decision:?}");
            }
            Ok(())
        });
    }
    while let Some(done) = calls.join_next().await {
        done??;
    }
    Ok(())
}

/// Calls again after UNAVAILABLE (SQLite's one connection under the set-up's burst of
/// writes can shed calls), at most 50 times, 200 ms apart.
async fn retry_unavailable<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < 50 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Creates `n` Read-Only user tokens whose new applications are allowed, as the bootstrap
/// Admin, and returns their secrets.
async fn create_tokens(
    channels: &[Channel],
    admin_secret: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut calls = JoinSet::new();
    let mut secrets = Vec::with_capacity(n);
    for i in 0..n {
        if calls.len() >= SETUP_IN_FLIGHT
            && let Some(done) = calls.join_next().await
        {
            secrets.push(done??);
        }
        let client = TokenServiceClient::new(channels[i % channels.len()].clone());
        let message = pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            privilege: pb::Privilege::ReadOnly.into(),
            default_app_state: pb::AppState::Allow.into(),
            description: format!("bench token {i}"),
            // No idempotency key: the server would keep each first response (the secret
            // included) in memory for 24 h, and the memory figure is about cached tokens.
            // A retry after UNAVAILABLE may make a spare token, which is harmless here.
            request_id: String::new(),
            ..Default::default()
        };
        let secret: tonic::metadata::MetadataValue<_> = admin_secret.parse()?;
        calls.spawn(async move {
            let call = || {
                let mut request = tonic::Request::new(message.clone());
                let metadata = request.metadata_mut();
                metadata.insert("x-circonus-auth-token", secret.clone());
                metadata.insert(
                    "x-circonus-app-name",
                    tonic::metadata::MetadataValue::from_static("bench"),
                );
                let mut client = client.clone();
                async move { client.create_token(request).await }
            };
            anyhow::Ok(retry_unavailable(call).await?.into_inner().secret)
        });
    }
    while let Some(done) = calls.join_next().await {
        secrets.push(done??);
    }
    Ok(secrets)
}

/// The server's counters, from one scrape of its metrics port.
async fn scrape(addr: SocketAddr) -> anyhow::Result<ServerCounts> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(ServerCounts {
        token_hits: value(r#"api_tokens_cache_hits_total{cache="tokens"} "#),
        token_misses: value(r#"api_tokens_cache_misses_total{cache="tokens"} "#),
        queries: value("api_tokens_database_queries_total "),
    })
}

fn print_row(round: &str, rpc: Rpc, t: &Tally) {
    let lookups = t.server.token_hits + t.server.token_misses;
    let misses = if lookups == 0 {
        "-".to_owned()
    } else {
        format!("{:.3}", t.miss_percent())
    };
    // An idle phase has no requests to divide its CPU time by.
    let cpu = if t.ok == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}", t.cpu_per_request_us())
    };
    println!(
        "{:<6} {:<13} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>12} {:>10} {:>8.1}",
        round,
        rpc.name(),
        t.rate(),
        t.micros(0.5),
        t.micros(0.99),
        t.micros(0.999),
        cpu,
        misses,
        t.per_second(t.server.queries)
    );
}

async fn connect_all(addr: SocketAddr, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        // The server may still be starting: bounded retries, 10 s at most.
        let mut attempt = 0;
        let channel = loop {
            match endpoint.connect().await {
                Ok(channel) => break channel,
                Err(_) if attempt < 100 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("cannot connect to the server"),
            }
        };
        channels.push(channel);
    }
    Ok(channels)
}

async fn wait_serving(channel: &Channel) -> anyhow::Result<()> {
    let mut health = HealthClient::new(channel.clone());
    for _ in 0..100 {
        let reply = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if let Ok(reply) = reply
            && reply.into_inner().status == ServingStatus::Serving as i32
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("health did not report SERVING within 10 s")
}

struct Load {
    channels: Vec<Channel>,
    one: Arc<Vec<pb::AuthorizeRequest>>,
    many: Option<Arc<Vec<pb::AuthorizeRequest>>>,
    in_flight: usize,
    pid: u32,
    metrics: SocketAddr,
}

impl Load {
    /// Keeps `in_flight` calls of one RPC running for `duration`, spread over the connections.
    async fn phase(&self, rpc: Rpc, duration: Duration) -> anyhow::Result<Tally> {
        let requests = match rpc {
            Rpc::AuthorizeMany => self.many.clone().unwrap_or_else(|| self.one.clone()),
            _ => self.one.clone(),
        };
        // One counter for all callers: the tokens are called strictly in turn.
        let next = Arc::new(AtomicUsize::new(0));
        let counts_before = scrape(self.metrics).await?;
        let cpu_before = server_cpu(self.pid);
        let start = Instant::now();
        let deadline = start + duration;
        let mut total = Tally::new();
        if rpc == Rpc::Idle {
            tokio::time::sleep(duration).await;
        } else {
            let mut workers = JoinSet::new();
            for i in 0..self.in_flight {
                let channel = self.channels[i % self.channels.len()].clone();
                workers.spawn(worker(
                    rpc,
                    channel,
                    requests.clone(),
                    next.clone(),
                    deadline,
                ));
            }
            while let Some(done) = workers.join_next().await {
                if let Ok(tally) = done {
                    total.add(&tally);
                }
            }
        }
        total.elapsed = start.elapsed();
        total.server_cpu = server_cpu(self.pid).saturating_sub(cpu_before);
        total.server = scrape(self.metrics).await?.since(counts_before);
        Ok(total)
    }
}

/// One in-flight slot: call, record, call again, until the deadline.
async fn worker(
    rpc: Rpc,
    channel: Channel,
    requests: Arc<Vec<pb::AuthorizeRequest>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::new();
    let mut authorize = AuthorizeServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let outcome = match rpc {
            Rpc::Authorize | Rpc::AuthorizeMany => {
                let i = next.fetch_add(1, Ordering::Relaxed) % requests.len();
                authorize
                    .authorize(requests[i].clone())
                    .await
                    .map(|reply| Some(reply.into_inner().decision().as_str_name()))
            }
            Rpc::Health | Rpc::Idle => health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| None),
        };
        let took = sent.elapsed();
        match outcome {
            Ok(decision) => {
                tally
                    .latency
                    .saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
                tally.ok += 1;
                *tally.codes.entry("Ok".into()).or_default() += 1;
                if let Some(decision) = decision {
                    *tally.decisions.entry(decision.into()).or_default() += 1;
                }
            }
            Err(status) => {
                *tally
                    .codes
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
            }
        }
    }
    tally
}

/// User plus system CPU time of a process so far, from /proc/PID/stat.
fn server_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = ticks(11) + ticks(12);
    Duration::from_secs_f64(total as f64 / clock_ticks_per_second())
}

/// Asked once: a subprocess per phase would be client work inside the measurement.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// VmRSS (now) and VmHWM (peak) from /proc/PID/status.
fn rss(pid: u32) -> String {
    let field = |name| status_field(pid, name).unwrap_or_else(|| "?".into());
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}
