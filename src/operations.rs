//! The operational features of `serve` (metrics port, OTLP tracing, TLS/mTLS, limits,
//! connection age, health checks and the schema mode): their settings and their flags.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::console::ConsoleMode;
use crate::layers::LimitSettings;
use crate::storage::SchemaMode;
use crate::telemetry::OtlpSettings;

/// Metrics port, TLS, limits, health checks and the schema mode of `serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationsSettings {
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
    pub tls: Option<TlsSettings>,
    pub limits: LimitSettings,
    /// How often health checks the database.
    pub database_check_interval: Duration,
    /// Migrate at start (the default), or only check the schema (`api-tokens migrate` ran first).
    pub schema: SchemaMode,
    /// Connections older than this get a GOAWAY, so clients reconnect and rebalance over
    /// new replicas; `None`: connections live as long as the client keeps them.
    pub max_connection_age: Option<Duration>,
    /// How long calls and streams on a connection past its age may go on; `None`: no bound.
    pub max_connection_age_grace: Option<Duration>,
    /// Whether the gRPC port also serves the browser console and gRPC-Web.
    pub console: ConsoleMode,
}

impl OperationsSettings {
    pub const DEFAULT_DATABASE_CHECK_INTERVAL: Duration = Duration::from_secs(5);
    pub const DEFAULT_CONSOLE: ConsoleMode = ConsoleMode::On;
}

/// No metrics port, TLS or connection age; the default limits, checks and schema mode; the console on.
impl Default for OperationsSettings {
    fn default() -> Self {
        OperationsSettings {
            metrics_listen: None,
            tls: None,
            limits: LimitSettings::default(),
            database_check_interval: Self::DEFAULT_DATABASE_CHECK_INTERVAL,
            schema: SchemaMode::default(),
            max_connection_age: None,
            max_connection_age_grace: None,
            console: Self::DEFAULT_CONSOLE,
        }
    }
}

/// PEM files for TLS on the gRPC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<std::path::PathBuf>,
}

impl TlsSettings {
    /// Reads the files now, so a missing or malformed one stops start-up with its name.
    pub(crate) fn load(&self) -> anyhow::Result<ServerTlsConfig> {
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path)
                .with_context(|| format!("cannot read the TLS {what} {}", path.display()))
        };
        let identity =
            Identity::from_pem(read("certificate", &self.cert)?, read("key", &self.key)?);
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read("client CA", ca)?));
        }
        // tonic parses the PEM only when the config is applied: apply it once here.
        tonic::transport::Server::builder()
            .tls_config(config.clone())
            .with_context(|| {
                format!(
                    "invalid TLS configuration (certificate {}, key {}{})",
                    self.cert.display(),
                    self.key.display(),
                    self.client_ca
                        .as_ref()
                        .map(|ca| format!(", client CA {}", ca.display()))
                        .unwrap_or_default()
                )
            })?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct OperationsArgs {
    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g. 0.0.0.0:9090). Unset: not served.
    #[arg(long, env = "API_TOKENS_METRICS_LISTEN", value_name = "ADDRESS")]
    pub metrics_listen: Option<SocketAddr>,

    /// Export spans over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317). Unset: no export.
    #[arg(long, env = "API_TOKENS_OTLP_ENDPOINT", value_name = "URL", value_parser = crate::flags::http_url)]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces to sample, 0.0 to 1.0; a caller's sampled traceparent is always followed.
    #[arg(long, env = "API_TOKENS_OTLP_SAMPLE_RATIO", default_value_t = 1.0, value_parser = parse_ratio)]
    pub otlp_sample_ratio: f64,

    /// PEM certificate chain of the gRPC port: serve TLS (needs --tls-key).
    #[arg(
        long,
        env = "API_TOKENS_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "API_TOKENS_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mTLS; needs --tls-cert).
    #[arg(
        long,
        env = "API_TOKENS_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// Most calls served at once over all connections; more are refused at once with
    /// UNAVAILABLE (load shedding). 0: no limit.
    #[arg(long, env = "API_TOKENS_MAX_CONCURRENT_REQUESTS", default_value_t = 0)]
    pub max_concurrent_requests: usize,
    /// Milliseconds a unary call may take before it is answered DEADLINE_EXCEEDED; streams
    /// (WatchApplications) are exempt. 0: no limit.
    #[arg(long, env = "API_TOKENS_REQUEST_TIMEOUT_MS", default_value_t = LimitSettings::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)]
    pub request_timeout_ms: u64,

    /// Seconds between database checks, 1 to 3600; while it is unreachable, health reports
    /// TokenService and AccountService NOT_SERVING.
    #[arg(
        long,
        env = "API_TOKENS_DATABASE_CHECK_INTERVAL_SECS",
        default_value_t = OperationsSettings::DEFAULT_DATABASE_CHECK_INTERVAL.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub database_check_interval_secs: u64,

    /// At start, apply pending migrations (auto), or only check that this binary can run on
    /// the schema and exit otherwise (check: `api-tokens migrate` runs first, e.g. a Helm hook).
    #[arg(
        long,
        env = "API_TOKENS_MIGRATE",
        value_enum,
        default_value = "auto",
        value_name = "MODE"
    )]
    pub migrate: MigrateMode,

    /// Seconds after which a client connection is sent GOAWAY, so long-lived HTTP/2 clients
    /// reconnect and spread over new replicas. 0: never.
    #[arg(long, env = "API_TOKENS_MAX_CONNECTION_AGE_SECS", default_value_t = 0)]
    pub max_connection_age_secs: u64,
    /// Seconds calls and streams may go on over a connection sent GOAWAY for its age, before
    /// it is closed (open WatchApplications streams then resume elsewhere). 0: no bound.
    #[arg(
        long,
        env = "API_TOKENS_MAX_CONNECTION_AGE_GRACE_SECS",
        default_value_t = 0
    )]
    pub max_connection_age_grace_secs: u64,

    /// The admin console in a browser, and gRPC-Web, on the gRPC port (HTTP/1.1 accepted
    /// too): on, or off (the port then speaks gRPC over HTTP/2 only).
    #[arg(
        long,
        env = "API_TOKENS_CONSOLE",
        value_enum,
        default_value_t = OperationsSettings::DEFAULT_CONSOLE,
        value_name = "on|off"
    )]
    pub console: ConsoleMode,
}

/// `--migrate`: what `serve` does about the schema at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateMode {
    Auto,
    Check,
}

/// A share between 0.0 and 1.0: anything else cannot be a sampling ratio.
fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err("expected a number from 0.0 to 1.0".into()),
    }
}

impl OperationsArgs {
    pub fn settings(&self) -> OperationsSettings {
        OperationsSettings {
            database_check_interval: Duration::from_secs(self.database_check_interval_secs),
            metrics_listen: self.metrics_listen,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsSettings {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                }),
                // clap's `requires` makes the pair all or nothing.
                _ => None,
            },
            limits: LimitSettings {
                max_concurrent_requests: (self.max_concurrent_requests > 0)
                    .then_some(self.max_concurrent_requests),
                request_timeout: (self.request_timeout_ms > 0)
                    .then(|| Duration::from_millis(self.request_timeout_ms)),
            },
            schema: match self.migrate {
                MigrateMode::Auto => SchemaMode::Migrate,
                MigrateMode::Check => SchemaMode::Check,
            },
            max_connection_age: (self.max_connection_age_secs > 0)
                .then(|| Duration::from_secs(self.max_connection_age_secs)),
            max_connection_age_grace: (self.max_connection_age_grace_secs > 0)
                .then(|| Duration::from_secs(self.max_connection_age_grace_secs)),
            console: self.console,
        }
    }

    pub fn otlp(&self) -> Option<OtlpSettings> {
        self.otlp_endpoint.as_ref().map(|endpoint| OtlpSettings {
            endpoint: endpoint.clone(),
            sample_ratio: self.otlp_sample_ratio,
        })
    }
}
