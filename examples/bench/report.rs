//! What the load benchmark measures and prints: the RPCs of its phases, what one phase counted
//! (client side, and the server's own counters scraped from its metrics port), and a row of
//! the report.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// Authorize with one token.
    Authorize,
    /// Authorize with each of `--tokens` tokens in turn.
    AuthorizeMany,
    Health,
    /// No calls: what the replica does on its own.
    Idle,
}

impl Rpc {
    pub fn name(self) -> &'static str {
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
pub struct ServerCounts {
    pub token_hits: u64,
    pub token_misses: u64,
    /// Statements the replica sent (`api_tokens_database_queries_total`).
    pub queries: u64,
}

impl ServerCounts {
    pub fn since(self, before: ServerCounts) -> ServerCounts {
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

    pub fn add(&mut self, other: ServerCounts) {
        self.token_hits += other.token_hits;
        self.token_misses += other.token_misses;
        self.queries += other.queries;
    }
}

/// What one phase (or the sum of phases) measured.
pub struct Tally {
    /// Latencies of successful calls, in nanoseconds.
    pub latency: Histogram<u64>,
    pub ok: u64,
    /// Calls by gRPC status code, successes included.
    pub codes: BTreeMap<String, u64>,
    /// Authorize answers by decision.
    pub decisions: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Server CPU time (user + system) spent during the phase.
    pub server_cpu: Duration,
    pub server: ServerCounts,
}

impl Tally {
    pub fn new() -> Self {
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

    pub fn add(&mut self, other: &Tally) {
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

    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn micros(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }

    pub fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Token-cache misses as a percentage of token-cache lookups.
    pub fn miss_percent(&self) -> f64 {
        let lookups = self.server.token_hits + self.server.token_misses;
        100.0 * self.server.token_misses as f64 / (lookups.max(1) as f64)
    }

    pub fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / (self.ok.max(1) as f64)
    }
}

/// The server's counters, from one scrape of its metrics port.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<ServerCounts> {
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

pub fn print_row(round: &str, rpc: Rpc, t: &Tally) {
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
