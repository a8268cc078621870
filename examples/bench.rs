//! Load benchmark: Authorize against grpc.health.v1.Health/Check on one server, one client,
//! one run. It starts the release server (SQLite, or a fresh PostgreSQL database with
//! `--postgres`), bootstraps a token with the real CLI, then alternates fixed-duration
//! Authorize and Health phases over the same connections and prints throughput,
//! latency percentiles, server CPU per request, the ratios, and the server's RSS.
//!
//! ```sh
//! cargo run --release --example bench -- [--postgres URL] [--seconds N] [--connections C] \
//!     [--in-flight M] [--rounds R] [--client-threads T]
//! ```
//!
//! Why the server runs as its own process (`target/<profile>/api-tokens`, built first with
//! `cargo build --bin api-tokens`, since examples do not build binaries): it is then the
//! binary that ships, with its own runtime, allocator and scheduler, not a runtime that
//! shares worker threads and a tokio budget with the load generator. Its RSS and CPU time
//! are its own, read from /proc/PID. On a 2-core machine the client still competes with
//! the server for CPU; both phases pay the same client cost, which is why the ratios and
//! the server CPU per request (immune to that sharing) are the figures to compare.
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_tokens::grpc::pb::{self, authorize_service_client::AuthorizeServiceClient};
use clap::Parser;
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, Database};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Bounds that keep a run finite whatever the flags say.
const MAX_SECONDS: u64 = 120;
const MAX_ROUNDS: u32 = 20;
const MAX_IN_FLIGHT: usize = 4096;

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
    /// Use this server binary instead of building target/<profile>/api-tokens.
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Authorize,
    Health,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Authorize => "Authorize",
            Rpc::Health => "Health/Check",
        }
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
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn micros(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
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
    postgres: Option<(String, String)>,
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
                let name = format!("apitokens_bench_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(admin_url)
                    .await
                    .context("cannot reach PostgreSQL")?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                let _ = admin.close().await;
                Ok(BenchDatabase {
                    url: api_tokens::storage::url_with_database(admin_url, &name),
                    postgres: Some((admin_url.to_owned(), name)),
                    _dir: None,
                })
            }
        }
    }

    async fn drop_postgres(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take()
            && let Ok(admin) = Database::connect(admin_url.as_str()).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
    }

    fn describe(&self) -> String {
        match &self.postgres {
            Some((_, name)) => format!("PostgreSQL (fresh database {name})"),
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

fn free_port() -> anyhow::Result<SocketAddr> {
    // Bound then released: a tiny race with other processes, acceptable on a bench machine.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

async fn measure(args: &Args, binary: &Path, database: &BenchDatabase) -> anyhow::Result<()> {
    let secret = bootstrap(binary, &database.url)?;
    let addr = free_port()?;
    let log = tempfile::NamedTempFile::new()?;
    let child = Command::new(binary)
        .args(["serve", "--listen", &addr.to_string(), "--database-url"])
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
    let request = pb::AuthorizeRequest {
        token: secret,
        app_name: "bench".into(),
        required_privilege: pb::Privilege::ReadOnly.into(),
        ..Default::default()
    };
    // The first call records the app name; then the token is warm.
    let first = AuthorizeServiceClient::new(channels[0].clone())
        .authorize(request.clone())
        .await?
        .into_inner();
    if first.decision() != pb::Decision::Allow {
        bail!("the bootstrap token is not allowed: {:?}", first.decision());
    }

    let load = Load {
        channels,
        request,
        in_flight: args.in_flight,
        pid,
    };
    let warmup = Duration::from_secs(args.warmup_seconds);
    if !warmup.is_zero() {
        load.phase(Rpc::Authorize, warmup).await;
        load.phase(Rpc::Health, warmup).await;
    }

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
        "client: {} connections, {} requests in flight, {} client thread(s); {} rounds of {} s Authorize then {} s Health/Check",
        args.connections,
        args.in_flight,
        args.client_threads,
        args.rounds,
        args.seconds,
        args.seconds
    );
    println!();
    println!(
        "{:<6} {:<13} {:>10} {:>9} {:>9} {:>9} {:>12}",
        "round", "rpc", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "srv CPU µs"
    );
    let phase = Duration::from_secs(args.seconds);
    let (mut authorize, mut health) = (Tally::new(), Tally::new());
    for round in 1..=args.rounds {
        for (rpc, total) in [(Rpc::Authorize, &mut authorize), (Rpc::Health, &mut health)] {
            let tally = load.phase(rpc, phase).await;
            print_row(&round.to_string(), rpc, &tally);
            total.add(&tally);
        }
    }
    println!();
    print_row("all", Rpc::Authorize, &authorize);
    print_row("all", Rpc::Health, &health);
    println!();
    println!(
        "Authorize / Health: throughput {:.2}, p50 {:.2}, p99 {:.2}, server CPU per request {:.2}",
        authorize.rate() / health.rate(),
        authorize.micros(0.5) / health.micros(0.5),
        authorize.micros(0.99) / health.micros(0.99),
        authorize.cpu_per_request_us() / health.cpu_per_request_us()
    );
    println!("gRPC codes, Authorize: {:?}", authorize.codes);
    println!("gRPC codes, Health/Check: {:?}", health.codes);
    println!("Authorize decisions: {:?}", authorize.decisions);
    println!("server memory: {}", rss(pid));
    Ok(())
}

fn print_row(round: &str, rpc: Rpc, t: &Tally) {
    println!(
        "{:<6} {:<13} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>12.1}",
        round,
        rpc.name(),
        t.rate(),
        t.micros(0.5),
        t.micros(0.99),
        t.micros(0.999),
        t.cpu_per_request_us()
    );
}

/// Runs `api-tokens bootstrap --output json` and returns the secret it prints once.
fn bootstrap(binary: &Path, database_url: &str) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .args([
            "bootstrap",
            "--account",
            "bench",
            "--admin",
            "bench@example.com",
            "--output",
            "json",
            "--database-url",
        ])
        .arg(database_url)
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "bootstrap failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let made: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    made["secret"]
        .as_str()
        .map(str::to_owned)
        .context("bootstrap printed no secret")
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
    request: pb::AuthorizeRequest,
    in_flight: usize,
    pid: u32,
}

impl Load {
    /// Keeps `in_flight` calls of one RPC running for `duration`, spread over the connections.
    async fn phase(&self, rpc: Rpc, duration: Duration) -> Tally {
        let cpu_before = server_cpu(self.pid);
        let start = Instant::now();
        let deadline = start + duration;
        let mut workers = JoinSet::new();
        for i in 0..self.in_flight {
            let channel = self.channels[i % self.channels.len()].clone();
            let request = self.request.clone();
            workers.spawn(worker(rpc, channel, request, deadline));
        }
        let mut total = Tally::new();
        while let Some(done) = workers.join_next().await {
            if let Ok(tally) = done {
                total.add(&tally);
            }
        }
        total.elapsed = start.elapsed();
        total.server_cpu = server_cpu(self.pid).saturating_sub(cpu_before);
        total
    }
}

/// One in-flight slot: call, record, call again, until the deadline.
async fn worker(
    rpc: Rpc,
    channel: Channel,
    request: pb::AuthorizeRequest,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::new();
    let mut authorize = AuthorizeServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let outcome = match rpc {
            Rpc::Authorize => authorize
                .authorize(request.clone())
                .await
                .map(|reply| Some(reply.into_inner().decision().as_str_name())),
            Rpc::Health => health
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}
