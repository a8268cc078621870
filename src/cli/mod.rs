//! The command line: `serve`; the operator's commands straight on the database (`bootstrap`,
//! `issue-token`, `migrate`, `backup`); `approve-bot`; and the admin commands (`src/admin`)
//! against a running server.
//! `serve`'s flags in `serve`; the commands on the database in `local`.
mod local;
mod serve;

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::admin::{AdminCommand, ConnectionArgs, TOKEN_VAR};
use crate::bot::{BotSettings, Rules, run_bot};
use crate::startup::{Server, shutdown_signal};
use crate::telemetry::{self, LogFormat};
pub use local::{BootstrapArgs, IssueTokenArgs, OutputFormat};
pub use serve::ServeArgs;

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
    #[arg(long, env = "API_TOKENS_APP", default_value = "api-tokens-approve-bot", value_parser = crate::flags::app_name)]
    pub app: String,
    /// A TOML file of [[rule]] entries: pattern, action (allow or deny), optional token_id,
    /// and for an allow optional conditions: for ("30d"), max_privilege, cidrs.
    #[arg(long)]
    pub rules: std::path::PathBuf,
    /// Where the bot keeps its cursor, to resume after a restart.
    #[arg(long, default_value = "approve-bot.cursor", value_parser = crate::flags::state_file)]
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
    #[arg(long, env = "API_TOKENS_APP", default_value = "api-tokens-notify", value_parser = crate::flags::app_name)]
    pub app: String,
    /// The http:// URL each event is POSTed to, as JSON signed in X-Api-Tokens-Signature-256.
    #[arg(long, env = "API_TOKENS_WEBHOOK_URL")]
    pub url: String,
    /// Where the notifier keeps both streams' cursors, to resume after a restart.
    #[arg(long, default_value = "notify.cursor", value_parser = crate::flags::state_file)]
    pub state_file: std::path::PathBuf,
    /// Longest wait between two attempts to deliver one event (the waits double from 200 ms).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_backoff_secs: u64,
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
        Command::Serve(args) => match args.settings() {
            Ok(settings) => match Server::build(settings).await {
                Ok(server) => server.run_until(shutdown_signal()).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        Command::Bootstrap(args) => local::bootstrap(args).await,
        Command::IssueToken(args) => local::issue_token(args).await,
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
