//! The operator's commands straight on the database, beside the server: `bootstrap` and
//! `issue-token`, and the database flags every such command takes.

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::domain::{AppState, Privilege, UserName};
use crate::flags::{DatabaseArgs, named};
use crate::service::{Service, ServiceError, ServiceSettings};
use crate::startup::redact_url;
use crate::storage::Repository;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Name of the account to create.
    #[arg(long, value_parser = crate::flags::account_name)]
    pub account: String,
    /// User name of its first Admin (e.g. an email).
    #[arg(long, value_parser = crate::flags::user_name)]
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
    #[arg(long, value_parser = crate::flags::account_name)]
    pub account: String,
    /// The member's user name.
    #[arg(long, value_parser = crate::flags::user_name)]
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

/// A service straight on the database, for the commands an operator runs beside the server.
async fn local_service(database: &DatabaseArgs) -> anyhow::Result<Service> {
    let settings = database.settings();
    let repo = Repository::connect(&settings)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&settings.url)))?;
    Ok(Service::open(repo, ServiceSettings::default()).await?)
}

pub(super) async fn issue_token(args: IssueTokenArgs) -> anyhow::Result<()> {
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

pub(super) async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
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
