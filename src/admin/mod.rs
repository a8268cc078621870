//! The admin command line: `tokens`, `apps`, `members`, `accounts`, `install-command` and `watch`, a
//! client of a running server that authenticates with the token in `API_TOKENS_TOKEN`. One
//! file per noun; the connection in `client`, the printing in `output`, paging in `paging`.
mod accounts;
mod apps;
mod client;
mod install;
mod members;
mod output;
mod paging;
mod token_events;
mod tokens;
mod watch;

use clap::Subcommand;

pub use accounts::{AccountsArgs, AccountsCommand, PolicyCommand, PolicySetArgs};
pub use apps::{AppsArgs, AppsCommand, ConditionArgs, parse_span};
pub use client::{Client, ClientArgs, ConnectionArgs, TOKEN_VAR, Tokens};
pub use install::InstallCommandArgs;
pub use members::{MembersArgs, MembersCommand};
pub use output::Output;
pub use tokens::{TokensArgs, TokensCommand};
pub use watch::WatchArgs;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tokens: create, list, get, update, rotate, retire, promote (a running server's TokenService).
    Tokens(TokensArgs),
    /// Application names recorded under a token: list, allow, deny.
    Apps(AppsArgs),
    /// Members of the account and their roles: list, add, update, remove.
    Members(MembersArgs),
    /// The account's token policy: show, set (Admins).
    Accounts(AccountsArgs),
    /// The One-Step-Install command line for a token.
    InstallCommand(InstallCommandArgs),
    /// Follow application events (WatchApplications) until interrupted.
    Watch(WatchArgs),
}

/// Runs one admin command against the server.
pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Tokens(args) => tokens::run(args).await,
        AdminCommand::Apps(args) => apps::run(args).await,
        AdminCommand::Members(args) => members::run(args).await,
        AdminCommand::Accounts(args) => accounts::run(args).await,
        AdminCommand::InstallCommand(args) => install::run(args).await,
        AdminCommand::Watch(args) => watch::run(args).await,
    }
}

/// The value of an enum field for an optional domain value: UNSPECIFIED for `None`.
fn wire<P, D>(value: Option<D>) -> i32
where
    P: From<D> + Default + Into<i32>,
{
    value.map(P::from).unwrap_or_default().into()
}
