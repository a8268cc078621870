//! `serve`: the server's flags, each defaulting to the settings' own default, read into its
//! settings. A value the server cannot honour is refused (by its range here, or by `settings`)
//! in one line before anything is written; none is quietly replaced.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::domain::{AddressRanges, Privilege};
use crate::flags::{DatabaseArgs, http_url, named};
use crate::grpc::ExtAuthzSettings;
use crate::operations::OperationsArgs;
use crate::service::{CacheSettings, FollowSettings, InstallSettings, ServiceSettings};
use crate::startup::ServerSettings;

const SECONDS_PER_HOUR: u64 = 3600;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the gRPC port.
    #[arg(long, env = "API_TOKENS_LISTEN", default_value_t = ServerSettings::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Most application names one token may record; a new name past it is refused (0: no limit).
    #[arg(long, env = "API_TOKENS_MAX_APPS_PER_TOKEN", default_value_t = ServiceSettings::DEFAULT_MAX_APPS_PER_TOKEN)]
    pub max_apps_per_token: u64,
    /// API URL that One-Step-Install commands point hosts at.
    #[arg(
        long,
        env = "API_TOKENS_INSTALL_API_URL",
        default_value = InstallSettings::DEFAULT_API_URL,
        value_parser = http_url
    )]
    pub install_api_url: String,
    /// One-Step-Install URL.
    #[arg(
        long,
        env = "API_TOKENS_INSTALL_COSI_URL",
        default_value = InstallSettings::DEFAULT_COSI_URL,
        value_parser = http_url
    )]
    pub install_cosi_url: String,
    /// Milliseconds between reads of the change log when no notification woke the replica
    /// (the safety net for a lost NOTIFY; one indexed query, whatever the number of tokens).
    #[arg(long, env = "API_TOKENS_LOG_POLL_MS", default_value_t = FollowSettings::DEFAULT_POLL.as_millis() as u64, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub log_poll_ms: u64,
    /// Seconds a replica that cannot read the change log keeps deciding warm tokens from
    /// memory; after that every decision fails closed (UNAVAILABLE) until it reads the log again.
    #[arg(long, env = "API_TOKENS_MAX_STALENESS_SECS", default_value_t = FollowSettings::DEFAULT_MAX_STALENESS.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_staleness_secs: u64,
    /// Milliseconds an unknown secret is remembered as unknown, 0 (not at all) to 3600000.
    #[arg(long, env = "API_TOKENS_NEGATIVE_CACHE_TTL_MS", default_value_t = CacheSettings::DEFAULT_NEGATIVE_TTL.as_millis() as u64, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub negative_cache_ttl_ms: u64,
    /// Most tokens held in memory, at least 1.
    #[arg(long, env = "API_TOKENS_CACHE_MAX_TOKENS", default_value_t = CacheSettings::DEFAULT_MAX_TOKENS, value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_tokens: u64,
    /// Seconds between writes of last-used times (at most one write per token per
    /// interval), 1 to 86400.
    #[arg(long, env = "API_TOKENS_LAST_USED_INTERVAL_SECS", default_value_t = ServiceSettings::DEFAULT_LAST_USED_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub last_used_interval_secs: u64,
    /// Seconds between heartbeats on an idle WatchApplications stream, 1 to 3600.
    #[arg(long, env = "API_TOKENS_WATCH_HEARTBEAT_SECS", default_value_t = ServiceSettings::DEFAULT_WATCH_HEARTBEAT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub watch_heartbeat_secs: u64,
    /// Hours the change log (application events included) is kept; a watcher's cursor older
    /// than that must re-list, and a replica further behind forgets its whole cache. 1 to
    /// 87600 (ten years).
    #[arg(long, env = "API_TOKENS_EVENT_RETENTION_HOURS", default_value_t = ServiceSettings::DEFAULT_EVENT_RETENTION.as_secs() / SECONDS_PER_HOUR, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub event_retention_hours: u64,
    /// Privilege an Envoy ext_authz Check requires for methods other than GET, HEAD and
    /// OPTIONS (which need read_only): read_only, normal or admin.
    #[arg(long, env = "API_TOKENS_EXT_AUTHZ_WRITE_PRIVILEGE", value_parser = named::<Privilege>(), default_value = ExtAuthzSettings::DEFAULT_WRITE_PRIVILEGE.as_str())]
    pub ext_authz_write_privilege: Privilege,
    /// Proxies (comma-separated CIDRs or addresses) whose `x-forwarded-for` header names the
    /// client of a management call; from anyone else the header is ignored and the
    /// connection's peer is the client (at most 64).
    #[arg(long, env = "API_TOKENS_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_range)]
    pub trusted_proxies: Vec<String>,
    /// Milliseconds between sweeps that write lapsed conditional approvals back to Pending,
    /// each with its event (decisions do not wait for it).
    #[arg(long, env = "API_TOKENS_APPROVAL_SWEEP_MS", default_value_t = crate::service::DEFAULT_APPROVAL_SWEEP.as_millis() as u64, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub approval_sweep_ms: u64,
    /// Days an impact preview (validate_only) looks back for applications that used a token.
    #[arg(long, env = "API_TOKENS_PREVIEW_USAGE_DAYS", default_value_t = (crate::service::DEFAULT_USAGE_WINDOW.as_secs() / 86_400) as u32, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub preview_usage_days: u32,
    /// Leaked-secret reports (ReportLeakedSecret, which needs no credentials) one client
    /// address may make per minute, in bursts of as many; past it RESOURCE_EXHAUSTED.
    #[arg(long, env = "API_TOKENS_LEAK_REPORTS_PER_MINUTE", default_value_t = ServiceSettings::DEFAULT_LEAK_REPORTS.per_minute, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub leak_reports_per_minute: u32,
    /// Milliseconds between sweeps that send lifecycle notices (a token expiring at each of its
    /// account's lead times, expired, dormant), each once however many replicas sweep.
    #[arg(long, env = "API_TOKENS_NOTICE_SWEEP_MS", default_value_t = crate::service::DEFAULT_NOTICE_SWEEP.as_millis() as u64, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub notice_sweep_ms: u64,
    /// Seconds in-flight calls may take to finish after SIGTERM.
    #[arg(long, env = "API_TOKENS_DRAIN_TIMEOUT_SECS", default_value_t = ServerSettings::DEFAULT_DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout_secs: u64,
    #[command(flatten)]
    pub operations: OperationsArgs,
}

impl ServeArgs {
    /// The settings, or why the flags cannot be honoured (in one line, naming the flag).
    pub fn settings(&self) -> anyhow::Result<ServerSettings> {
        let trusted_proxies = AddressRanges::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("--trusted-proxies {e}"))?;
        Ok(ServerSettings {
            listen: self.listen,
            database: self.database.settings(),
            service: ServiceSettings {
                max_apps_per_token: (self.max_apps_per_token > 0)
                    .then_some(self.max_apps_per_token),
                install: InstallSettings {
                    api_url: self.install_api_url.clone(),
                    cosi_url: self.install_cosi_url.clone(),
                },
                cache: CacheSettings::for_tokens(
                    self.cache_max_tokens,
                    Duration::from_millis(self.negative_cache_ttl_ms),
                ),
                follow: FollowSettings {
                    poll: Duration::from_millis(self.log_poll_ms),
                    max_staleness: Duration::from_secs(self.max_staleness_secs),
                },
                last_used_interval: Duration::from_secs(self.last_used_interval_secs),
                watch_heartbeat: Duration::from_secs(self.watch_heartbeat_secs),
                event_retention: Duration::from_secs(self.event_retention_hours * SECONDS_PER_HOUR),
                trusted_proxies,
                approval_sweep: Duration::from_millis(self.approval_sweep_ms),
                usage_window: Duration::from_secs(u64::from(self.preview_usage_days) * 86_400),
                leak_reports: crate::service::RateLimit {
                    per_minute: self.leak_reports_per_minute,
                    burst: self.leak_reports_per_minute,
                },
                notice_sweep: Duration::from_millis(self.notice_sweep_ms),
                clock: crate::domain::Clock::system(),
            },
            ext_authz: ExtAuthzSettings {
                write_privilege: self.ext_authz_write_privilege,
            },
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
            operations: self.operations.settings(),
        })
    }
}

fn parse_range(text: &str) -> Result<String, String> {
    AddressRanges::parse(&[text])?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// The binary and the tests (which build settings with `Default`) run the same defaults.
    #[test]
    fn serve_without_flags_runs_the_settings_defaults() {
        let cli = Cli::try_parse_from(["api-tokens", "serve"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(
            args.settings().expect("settings"),
            ServerSettings::default()
        );
    }
}
