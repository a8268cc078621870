//! The admin command line: `tokens`, `apps`, `members`, `install-command` and `watch`, a
//! client of a running server that authenticates with the token in `API_TOKENS_TOKEN`.
mod client;
mod output;

use clap::{Args, Subcommand};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::cli::named;
use crate::domain::{AppState, Privilege, TokenState, TokenType};
use crate::grpc::pb;
use client::status_error;
pub use client::{Client, ClientArgs, ConnectionArgs, TOKEN_VAR, Tokens};
pub use output::Output;
use output::{
    APPLICATION_HEADER, MEMBER_HEADER, TOKEN_HEADER, application_json, application_row, emit,
    member_json, member_row, print_fields, print_json, print_table, token_fields, token_json,
    token_row,
};

/// Page size the list commands ask for; they follow every page.
const PAGE_SIZE: i32 = 200;

/// The value of an enum field for an optional domain value: UNSPECIFIED for `None`.
fn wire<P, D>(value: Option<D>) -> i32
where
    P: From<D> + Default + Into<i32>,
{
    value.map(P::from).unwrap_or_default().into()
}

/// Prints the revision a change committed at (to stderr, so output stays parseable): given to
/// `--min-revision`, a later command reads it on whichever replica answers.
fn note_revision<T>(reply: tonic::Response<T>) -> tonic::Response<T> {
    if let Some(revision) = reply
        .metadata()
        .get(crate::grpc::REVISION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        eprintln!("revision: {revision}");
    }
    reply
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tokens: create, list, get, update, retire, promote (a running server's TokenService).
    Tokens(TokensArgs),
    /// Application names recorded under a token: list, allow, deny.
    Apps(AppsArgs),
    /// Members of the account and their roles: list, add, update, remove.
    Members(MembersArgs),
    /// The One-Step-Install command line for a token.
    InstallCommand(InstallCommandArgs),
    /// Follow application events (WatchApplications) until interrupted.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; its secret is printed this once.
    Create {
        #[arg(long = "type", value_parser = named::<TokenType>(), default_value = TokenType::User.as_str())]
        token_type: TokenType,
        /// Privilege (default: read_only); never above your own role.
        #[arg(long, value_parser = named::<Privilege>())]
        privilege: Option<Privilege>,
        /// State of application names the token has not seen (default: pending).
        #[arg(long, value_parser = named::<AppState>())]
        default_app_state: Option<AppState>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the tokens you may see (every page).
    List {
        #[arg(long = "type", value_parser = named::<TokenType>())]
        token_type: Option<TokenType>,
        /// Only the tokens of this user id.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, value_parser = named::<TokenState>())]
        state: Option<TokenState>,
    },
    /// Show one token.
    Get { id: String },
    /// Change a token's privilege, default app state or description.
    Update {
        id: String,
        #[arg(long, value_parser = named::<Privilege>())]
        privilege: Option<Privilege>,
        #[arg(long, value_parser = named::<AppState>())]
        default_app_state: Option<AppState>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Retire a token for good: every later use is refused.
    Retire { id: String },
    /// Turn a user token into an account token (Admin only; cannot be undone).
    Promote { id: String },
}

#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: AppsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List the application names recorded under a token.
    List {
        token_id: String,
        #[arg(long, value_parser = named::<AppState>())]
        state: Option<AppState>,
    },
    /// Allow an application name on a token (recording it if new).
    Allow { token_id: String, name: String },
    /// Deny an application name on a token (recording it if new).
    Deny { token_id: String, name: String },
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: MembersCommand,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List the account's members.
    List,
    /// Add a member with a role.
    Add {
        user_name: String,
        #[arg(long, value_parser = named::<Privilege>())]
        role: Privilege,
    },
    /// Change a member's role.
    Update {
        user_id: String,
        #[arg(long, value_parser = named::<Privilege>())]
        role: Privilege,
    },
    /// Remove a member: their user tokens stop working.
    Remove { user_id: String },
}

#[derive(Debug, Args)]
pub struct InstallCommandArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub token_id: String,
    /// Broker to put in the generated configuration.
    #[arg(long)]
    pub broker: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Resume after this cursor (the last one printed) instead of starting with a snapshot.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Only applications in these states (repeatable; default: pending only).
    #[arg(long = "state", value_parser = named::<AppState>())]
    pub states: Vec<AppState>,
    /// Only the applications of this token.
    #[arg(long)]
    pub token_id: Option<String>,
}

/// Runs one admin command against the server.
pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Tokens(args) => tokens(args).await,
        AdminCommand::Apps(args) => apps(args).await,
        AdminCommand::Members(args) => members(args).await,
        AdminCommand::InstallCommand(args) => install_command(args).await,
        AdminCommand::Watch(args) => watch(args).await,
    }
}

fn show_token(output: Output, token: Option<pb::Token>) -> anyhow::Result<()> {
    let token = token.ok_or_else(|| anyhow::anyhow!("the server answered without a token"))?;
    match output {
        Output::Json => print_json(&token_json(&token)),
        Output::Table => print_fields(&token_fields(&token)),
    }
    Ok(())
}

async fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let mut client = Client::connect(&args.client).await?.tokens();
    match args.command {
        TokensCommand::Create {
            token_type,
            privilege,
            default_app_state,
            description,
        } => {
            let reply = client
                .create_token(pb::CreateTokenRequest {
                    r#type: wire::<pb::TokenType, _>(Some(token_type)),
                    privilege: wire::<pb::Privilege, _>(privilege),
                    default_app_state: wire::<pb::AppState, _>(default_app_state),
                    description,
                    // Safe to resend: should this call be retried, no second token is made.
                    request_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .map_err(status_error)
                .map(note_revision)?
                .into_inner();
            let token = reply
                .token
                .ok_or_else(|| anyhow::anyhow!("the server answered without a token"))?;
            match output {
                Output::Json => {
                    let mut value = token_json(&token);
                    value["secret"] = json!(reply.secret);
                    print_json(&value);
                }
                Output::Table => {
                    let mut fields = token_fields(&token);
                    fields.push(("secret", reply.secret));
                    print_fields(&fields);
                    emit("\nThe secret is shown only this once: store it now.");
                }
            }
        }
        TokensCommand::List {
            token_type,
            owner,
            state,
        } => {
            let mut tokens = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_tokens(pb::ListTokensRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                        r#type: wire::<pb::TokenType, _>(token_type),
                        owner_user_id: owner.clone().unwrap_or_default(),
                        state: wire::<pb::TokenState, _>(state),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                tokens.extend(page.tokens);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            match output {
                Output::Json => {
                    print_json(&json!(tokens.iter().map(token_json).collect::<Vec<_>>()))
                }
                Output::Table => print_table(
                    &TOKEN_HEADER,
                    &tokens.iter().map(token_row).collect::<Vec<_>>(),
                ),
            }
        }
        TokensCommand::Get { id } => {
            let reply = client
                .get_token(pb::GetTokenRequest { id })
                .await
                .map_err(status_error)?;
            show_token(output, reply.into_inner().token)?;
        }
        TokensCommand::Update {
            id,
            privilege,
            default_app_state,
            description,
        } => {
            let mut paths = Vec::new();
            let mut token = pb::Token {
                id,
                ..Default::default()
            };
            if privilege.is_some() {
                token.privilege = wire::<pb::Privilege, _>(privilege);
                paths.push("privilege".to_owned());
            }
            if default_app_state.is_some() {
                token.default_app_state = wire::<pb::AppState, _>(default_app_state);
                paths.push("default_app_state".to_owned());
            }
            if let Some(d) = description {
                token.description = d;
                paths.push("description".to_owned());
            }
            if paths.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --privilege, --default-app-state or --description"
                );
            }
            let reply = client
                .update_token(pb::UpdateTokenRequest {
                    token: Some(token),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await
                .map_err(status_error)
                .map(note_revision)?;
            show_token(output, reply.into_inner().token)?;
        }
        TokensCommand::Retire { id } => {
            let reply = client
                .retire_token(pb::RetireTokenRequest { id })
                .await
                .map_err(status_error)
                .map(note_revision)?;
            show_token(output, reply.into_inner().token)?;
        }
        TokensCommand::Promote { id } => {
            let reply = client
                .promote_token(pb::PromoteTokenRequest {
                    id,
                    ..Default::default()
                })
                .await
                .map_err(status_error)
                .map(note_revision)?;
            show_token(output, reply.into_inner().token)?;
        }
    }
    Ok(())
}

async fn apps(args: AppsArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let mut client = Client::connect(&args.client).await?.tokens();
    let (token_id, name, state) = match args.command {
        AppsCommand::List { token_id, state } => {
            let mut apps = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_applications(pb::ListApplicationsRequest {
                        token_id: token_id.clone(),
                        page_size: PAGE_SIZE,
                        page_token,
                        state: wire::<pb::AppState, _>(state),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                apps.extend(page.applications);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            match output {
                Output::Json => print_json(&json!(
                    apps.iter().map(application_json).collect::<Vec<_>>()
                )),
                Output::Table => print_table(
                    &APPLICATION_HEADER,
                    &apps.iter().map(application_row).collect::<Vec<_>>(),
                ),
            }
            return Ok(());
        }
        AppsCommand::Allow { token_id, name } => (token_id, name, pb::AppState::Allow),
        AppsCommand::Deny { token_id, name } => (token_id, name, pb::AppState::Deny),
    };
    let app = client
        .set_application_state(pb::SetApplicationStateRequest {
            token_id,
            name,
            state: state.into(),
        })
        .await
        .map_err(status_error)
        .map(note_revision)?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("the server answered without an application"))?;
    match output {
        Output::Json => print_json(&application_json(&app)),
        Output::Table => print_table(&APPLICATION_HEADER, &[application_row(&app)]),
    }
    Ok(())
}

async fn members(args: MembersArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let mut client = Client::connect(&args.client).await?.accounts();
    let member = match args.command {
        MembersCommand::List => {
            let mut members = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_members(pb::ListMembersRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                members.extend(page.members);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            match output {
                Output::Json => {
                    print_json(&json!(members.iter().map(member_json).collect::<Vec<_>>()))
                }
                Output::Table => print_table(
                    &MEMBER_HEADER,
                    &members.iter().map(member_row).collect::<Vec<_>>(),
                ),
            }
            return Ok(());
        }
        MembersCommand::Add { user_name, role } => {
            client
                .add_member(pb::AddMemberRequest {
                    user_name,
                    role: wire::<pb::Privilege, _>(Some(role)),
                })
                .await
                .map_err(status_error)
                .map(note_revision)?
                .into_inner()
                .member
        }
        MembersCommand::Update { user_id, role } => {
            client
                .update_member(pb::UpdateMemberRequest {
                    user_id,
                    role: wire::<pb::Privilege, _>(Some(role)),
                })
                .await
                .map_err(status_error)
                .map(note_revision)?
                .into_inner()
                .member
        }
        MembersCommand::Remove { user_id } => {
            client
                .remove_member(pb::RemoveMemberRequest {
                    user_id: user_id.clone(),
                })
                .await
                .map_err(status_error)
                .map(note_revision)?;
            match output {
                Output::Json => print_json(&json!({ "removed_user_id": user_id })),
                Output::Table => {
                    emit(format!("removed {user_id}"));
                }
            }
            return Ok(());
        }
    };
    let member = member.ok_or_else(|| anyhow::anyhow!("the server answered without a member"))?;
    match output {
        Output::Json => print_json(&member_json(&member)),
        Output::Table => print_table(&MEMBER_HEADER, &[member_row(&member)]),
    }
    Ok(())
}

async fn install_command(args: InstallCommandArgs) -> anyhow::Result<()> {
    let mut client = Client::connect(&args.client).await?.tokens();
    let reply = client
        .get_install_command(pb::GetInstallCommandRequest {
            token_id: args.token_id,
            broker_id: args.broker.unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    match args.client.output {
        Output::Json => print_json(&json!({
            "command": reply.command,
            "app_name": reply.app_name,
            "api_url": reply.api_url,
            "cosi_url": reply.cosi_url,
            "config_json": reply.config_json,
            "key_env_var": reply.key_env_var,
        })),
        Output::Table => {
            print_fields(&[
                ("app name", reply.app_name),
                ("api url", reply.api_url),
                ("cosi url", reply.cosi_url),
                ("key variable", reply.key_env_var),
            ]);
            emit(format!("\n{}", reply.command));
        }
    }
    Ok(())
}

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let mut client = Client::connect(&args.client).await?.tokens();
    let mut stream = client
        .watch_applications(pb::WatchApplicationsRequest {
            cursor: args.cursor.unwrap_or_default(),
            states: args
                .states
                .iter()
                .map(|s| wire::<pb::AppState, _>(Some(*s)))
                .collect(),
            token_id: args.token_id.unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    // The table's header waits for the first event, whose cursor sets that column's width.
    let mut table: Option<output::WatchTable> = None;
    while let Some(event) = stream.next().await {
        let event = event.map_err(status_error)?;
        let written = match output {
            Output::Json => emit(json!({
                "type": output::watch_event(event.r#type),
                "application": event.application.as_ref().map(application_json),
                "cursor": event.cursor,
                "event_time": output::time(event.event_time.as_ref()),
            })),
            Output::Table => {
                let table = table.get_or_insert_with(|| {
                    let table = output::WatchTable::new(&event.cursor);
                    emit(table.header());
                    table
                });
                emit(table.row(&event))
            }
        };
        // Whoever read the stream is gone: stop watching.
        if !written {
            break;
        }
    }
    Ok(())
}
