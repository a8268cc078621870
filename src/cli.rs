//! The command line: `serve`; the operator's commands straight on the database (`bootstrap`,
//! `issue-token`, `migrate`, `backup`); `approve-bot`; and the admin commands (`src/admin`)
//! against a running server.
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::admin::{AdminCommand, ConnectionArgs, TOKEN_VAR};
use crate::bot::{BotSettings, Rules, run_bot};
use crate::domain::{AddressRanges, AppState, Named, Privilege, UnknownName, UserName};
use crate::grpc::ExtAuthzSettings;
use crate::operations::OperationsArgs;
use crate::service::{
    CacheSettings, FollowSettings, InstallSettings, Service, ServiceError, ServiceSettings,
};
use crate::startup::{Server, ServerSettings, redact_url, shutdown_signal};
use crate::storage::{DatabaseSettings, Repository};
use crate::telemetry::{self, LogFormat};

const SECONDS_PER_HOUR: u64 = 3600;

#[derive(Debug, Parser)]
#[command(
    name = "api-tokens",
    version,
    about = "API tokens with per-application approval, as a gRPC service"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "API_TOKENS_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(ServeArgs),
    /// Create an account, its first Admin and that Admin's first token; print the secret once.
    Bootstrap(BootstrapArgs),
    /// Issue a member their first user token (what a sign-in front end would do); print the secret once.
    IssueToken(IssueTokenArgs),
    /// Run the reference approval bot: allow or deny newly pending applications by rules.
    ApproveBot(ApproveBotArgs),
    /// Run the reference notifier: post every token event and application event, signed, to a webhook URL.
    Notify(NotifyArgs),
    /// Apply pending database migrations and exit (e.g. from a Helm hook before `serve --migrate=check`).
    Migrate(crate::maintenance::MigrateArgs),
    /// Copy an SQLite database to a new file while servers keep serving from it (VACUUM INTO).
    Backup(crate::maintenance::BackupArgs),
    #[command(flatten)]
    Admin(AdminCommand),
}

/// The bot authenticates with the token in `API_TOKENS_TOKEN`, never a flag, so the secret
/// stays out of `ps` and shell history.
#[derive(Debug, Args)]
pub struct ApproveBotArgs {
    /// The server to watch, and the TLS files to reach it (as the admin commands take them).
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The application name the bot presents (it must be allowed on its token).
    #[arg(long, env = "API_TOKENS_APP", default_value = "api-tokens-approve-bot")]
    pub app: String,
    /// A TOML file of [[rule]] entries: pattern, action (allow or deny), optional token_id,
    /// and for an allow optional conditions: for ("30d"), max_privilege, cidrs.
    #[arg(long)]
    pub rules: std::path::PathBuf,
    /// Where the bot keeps its cursor, to resume after a restart.
    #[arg(long, default_value = "approve-bot.cursor")]
    pub state_file: std::path::PathBuf,
    /// Print what the rules would decide for the names pending now, one line each; change
    /// nothing, save no cursor, and exit.
    #[arg(long)]
    pub dry_run: bool,
}

/// The notifier authenticates with the token in `API_TOKENS_TOKEN` and signs with the key in
/// `API_TOKENS_WEBHOOK_SECRET`, never flags, so neither shows in `ps` or shell history.
#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// The server to watch, and the TLS files to reach it (as the admin commands take them).
    #[command(flatten)]
    pub connection: crate::admin::ConnectionArgs,
    /// The application name the notifier presents (it must be allowed on its token).
    #[arg(long, env = "API_TOKENS_APP", default_value = "api-tokens-notify")]
    pub app: String,
    /// The http:// URL each event is POSTed to, as JSON signed in X-Api-Tokens-Signature-256.
    #[arg(long, env = "API_TOKENS_WEBHOOK_URL")]
    pub url: String,
    /// Where the notifier keeps both streams' cursors, to resume after a restart.
    #[arg(long, default_value = "notify.cursor")]
    pub state_file: std::path::PathBuf,
    /// Longest wait between two attempts to deliver one event (the waits double from 200 ms).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_backoff_secs: u64,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, env = "API_TOKENS_DATABASE_URL", default_value = DatabaseSettings::DEFAULT_URL, hide_env_values = true)]
    pub database_url: String,
    /// PostgreSQL pool size (SQLite always uses one connection).
    #[arg(long, env = "API_TOKENS_DB_MAX_CONNECTIONS", default_value_t = DatabaseSettings::DEFAULT_MAX_CONNECTIONS)]
    pub db_max_connections: u32,
    /// Seconds to wait for a database connection before giving up.
    #[arg(long, env = "API_TOKENS_DB_CONNECT_TIMEOUT_SECS", default_value_t = DatabaseSettings::DEFAULT_CONNECT_TIMEOUT.as_secs())]
    pub db_connect_timeout_secs: u64,
}

impl DatabaseArgs {
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            connect_timeout: Duration::from_secs(self.db_connect_timeout_secs),
        }
    }
}

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
        value_parser = parse_http_url
    )]
    pub install_api_url: String,
    /// One-Step-Install URL.
    #[arg(
        long,
        env = "API_TOKENS_INSTALL_COSI_URL",
        default_value = InstallSettings::DEFAULT_COSI_URL,
        value_parser = parse_http_url
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
    /// Milliseconds an unknown secret is remembered as unknown.
    #[arg(long, env = "API_TOKENS_NEGATIVE_CACHE_TTL_MS", default_value_t = CacheSettings::DEFAULT_NEGATIVE_TTL.as_millis() as u64)]
    pub negative_cache_ttl_ms: u64,
    /// Most tokens held in memory.
    #[arg(long, env = "API_TOKENS_CACHE_MAX_TOKENS", default_value_t = CacheSettings::DEFAULT_MAX_TOKENS)]
    pub cache_max_tokens: u64,
    /// Seconds between writes of last-used times (at most one write per token per interval).
    #[arg(long, env = "API_TOKENS_LAST_USED_INTERVAL_SECS", default_value_t = ServiceSettings::DEFAULT_LAST_USED_INTERVAL.as_secs())]
    pub last_used_interval_secs: u64,
    /// Seconds between heartbeats on an idle WatchApplications stream.
    #[arg(long, env = "API_TOKENS_WATCH_HEARTBEAT_SECS", default_value_t = ServiceSettings::DEFAULT_WATCH_HEARTBEAT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_heartbeat_secs: u64,
    /// Hours the change log (application events included) is kept; a watcher's cursor older
    /// than that must re-list, and a replica further behind forgets its whole cache.
    #[arg(long, env = "API_TOKENS_EVENT_RETENTION_HOURS", default_value_t = ServiceSettings::DEFAULT_EVENT_RETENTION.as_secs() / SECONDS_PER_HOUR)]
    pub event_retention_hours: u64,
    /// Privilege an Envoy ext_authz Check requires for methods other than GET, HEAD and
    /// OPTIONS (which need read_only): read_only, normal or admin.
    #[arg(long, env = "API_TOKENS_EXT_AUTHZ_WRITE_PRIVILEGE", value_parser = named::<Privilege>(), default_value = ExtAuthzSettings::DEFAULT_WRITE_PRIVILEGE.as_str())]
    pub ext_authz_write_privilege: Privilege,
    /// Proxies (comma-separated CIDRs or addresses) whose `x-forwarded-for` header names the
    /// client of a management call; from anyone else the header is ignored and the
    /// connection's peer is the client.
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
    pub fn settings(&self) -> ServerSettings {
        ServerSettings {
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
                last_used_interval: Duration::from_secs(self.last_used_interval_secs.max(1)),
                watch_heartbeat: Duration::from_secs(self.watch_heartbeat_secs),
                event_retention: Duration::from_secs(
                    self.event_retention_hours.saturating_mul(SECONDS_PER_HOUR),
                ),
                // Each entry was checked by `parse_range`.
                trusted_proxies: AddressRanges::parse(&self.trusted_proxies).unwrap_or_default(),
                approval_sweep: Duration::from_millis(self.approval_sweep_ms),
                usage_window: Duration::from_secs(u64::from(self.preview_usage_days) * 86_400),
                leak_reports: crate::service::RateLimit {
                    per_minute: self.leak_reports_per_minute,
                    burst: self.leak_reports_per_minute,
                },
                notice_sweep: Duration::from_millis(self.notice_sweep_ms),
            },
            ext_authz: ExtAuthzSettings {
                write_privilege: self.ext_authz_write_privilege,
            },
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
            operations: self.operations.settings(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Name of the account to create.
    #[arg(long)]
    pub account: String,
    /// User name of its first Admin (e.g. an email).
    #[arg(long)]
    pub admin: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct IssueTokenArgs {
    /// Name of the member's account.
    #[arg(long)]
    pub account: String,
    /// The member's user name.
    #[arg(long)]
    pub user: String,
    /// The token's privilege (default: the member's role).
    #[arg(long, value_parser = named::<Privilege>())]
    pub privilege: Option<Privilege>,
    /// The state new application names get: allow, pending or deny. Allow by default, as for
    /// bootstrap: this token is the member's way in, and with pending its first call (the
    /// one that would allow an application) would wait for someone else's approval.
    #[arg(long, value_parser = named::<AppState>(), default_value = AppState::Allow.as_str())]
    pub default_app_state: AppState,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// An absolute http(s) URL with a host: what hosts running the install command can reach.
fn parse_http_url(s: &str) -> Result<String, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| "expected an http:// or https:// URL")?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(s.to_owned()),
        _ => Err("expected an http:// or https:// URL with a host".into()),
    }
}

/// A flag taking one of a domain enum's names (`--help` lists them); aliases are accepted too.
pub fn named<T>() -> impl TypedValueParser<Value = T>
where
    T: Named + FromStr<Err = UnknownName> + Clone + Send + Sync,
{
    let names = T::ALL
        .iter()
        .map(|value| PossibleValue::new(value.name()).aliases(value.aliases().iter().copied()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<T>())
}

fn parse_range(text: &str) -> Result<String, String> {
    AddressRanges::parse(&[text])?;
    Ok(text.trim().to_owned())
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The one-shot commands print results on stdout; their logs only matter when something is wrong.
    let default_level = if matches!(
        cli.command,
        Command::Serve(_) | Command::ApproveBot(_) | Command::Notify(_)
    ) {
        "info"
    } else {
        "warn"
    };
    let otlp = match &cli.command {
        Command::Serve(args) => args.operations.otlp(),
        _ => None,
    };
    let telemetry = telemetry::init(cli.log_format, default_level, otlp.as_ref())?;
    let result = match cli.command {
        Command::Serve(args) => match Server::build(args.settings()).await {
            Ok(server) => server.run_until(shutdown_signal()).await,
            Err(e) => Err(e),
        },
        Command::Bootstrap(args) => bootstrap(args).await,
        Command::IssueToken(args) => issue_token(args).await,
        Command::ApproveBot(args) => approve_bot(args).await,
        Command::Notify(args) => notify(args).await,
        Command::Migrate(args) => crate::maintenance::migrate(args).await,
        Command::Backup(args) => crate::maintenance::backup(args).await,
        Command::Admin(command) => crate::admin::run(command).await,
    };
    // The last spans go out before the process exits.
    telemetry.shutdown().await;
    result
}

async fn approve_bot(args: ApproveBotArgs) -> anyhow::Result<()> {
    let secret = std::env::var(TOKEN_VAR).map_err(|_| {
        anyhow::anyhow!("set {TOKEN_VAR} to the bot's token (an Admin's, or the owner's)")
    })?;
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("cannot read {}", args.rules.display()))?;
    let rules =
        Rules::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.rules.display()))?;
    let settings = BotSettings {
        connection: args.connection,
        app_name: args.app,
        rules,
        state_file: args.state_file,
        dry_run: args.dry_run,
    };
    run_bot(settings, &secret, shutdown_signal()).await
}

async fn notify(args: NotifyArgs) -> anyhow::Result<()> {
    let secret = std::env::var("API_TOKENS_TOKEN").map_err(|_| {
        anyhow::anyhow!(
            "set API_TOKENS_TOKEN to the notifier's token (an Admin's hears of every token)"
        )
    })?;
    let key = std::env::var("API_TOKENS_WEBHOOK_SECRET").map_err(|_| {
        anyhow::anyhow!(
            "set API_TOKENS_WEBHOOK_SECRET to the key the receiver checks signatures with"
        )
    })?;
    let mut webhook = crate::notify::Webhook::new(&args.url, key.as_bytes())?;
    webhook.max_backoff = Duration::from_secs(args.max_backoff_secs);
    let settings = crate::notify::NotifySettings {
        connection: args.connection,
        app_name: args.app,
        webhook,
        state_file: args.state_file,
    };
    crate::notify::run_notifier(settings, &secret, shutdown_signal()).await
}

/// A service straight on the database, for the commands an operator runs beside the server.
async fn local_service(database: &DatabaseArgs) -> anyhow::Result<Service> {
    let settings = database.settings();
    let repo = Repository::connect(&settings)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&settings.url)))?;
    Ok(Service::open(repo, ServiceSettings::default()).await?)
}

async fn issue_token(args: IssueTokenArgs) -> anyhow::Result<()> {
    let service = local_service(&args.database).await?;
    let issued = service
        .issue_member_token(
            &args.account,
            &args.user,
            args.privilege,
            args.default_app_state,
        )
        .await;
    service.repository().clone().close().await;
    let (token, secret) = issued?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "token_id": token.id, "user_id": token.owner_id, "privilege": token.privilege.as_str(), "secret": secret.expose() })
        ),
        OutputFormat::Text => {
            println!(
                "token     {} (user token of {}, {} privilege)",
                token.id, args.user, token.privilege
            );
            println!("secret    {}", secret.expose());
            println!();
            println!(
                "The secret is shown only this once: hand it to {} now.",
                args.user
            );
        }
    }
    Ok(())
}

async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
    let user_name = UserName::parse(&args.admin).map_err(|e| anyhow::anyhow!("--admin {e}"))?;
    let service = local_service(&args.database).await?;
    let repo = service.repository().clone();
    let made = match service.bootstrap(&args.account, user_name).await {
        Ok(made) => made,
        Err(ServiceError::InvalidArgument(v)) => anyhow::bail!("--account {}", v[0].description),
        Err(e) => return Err(e.into()),
    };
    repo.close().await;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "account_id": made.account.id,
                "account_name": made.account.name,
                "user_id": made.admin.id,
                "user_name": made.admin.user_name.as_str(),
                "token_id": made.token.id,
                "secret": made.secret.expose(),
            })
        ),
        OutputFormat::Text => {
            println!("account   {} ({})", made.account.name, made.account.id);
            println!(
                "admin     {} ({})",
                made.admin.user_name.as_str(),
                made.admin.id
            );
            println!(
                "token     {} (user token, Admin privilege, default app state Allow)",
                made.token.id
            );
            println!("secret    {}", made.secret.expose());
            println!();
            println!("The secret is shown only this once: store it now.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary and the tests (which build settings with `Default`) run the same defaults.
    #[test]
    fn serve_without_flags_runs_the_settings_defaults() {
        let cli = Cli::try_parse_from(["api-tokens", "serve"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.settings(), ServerSettings::default());
    }
}
