//! `tokens`: create, list, get, update, retire and promote tokens.
use clap::{Args, Subcommand};
use serde_json::json;

use super::client::{Client, ClientArgs, status_error};
use super::output::{
    self, Output, emit, print_fields, print_json, print_list, token_fields, token_json,
};
use super::paging::{PAGE_SIZE, every_page};
use super::token_events::{self, EventsArgs, ReportLeakArgs};
use super::{note_revision, wire};
use crate::cli::named;
use crate::domain::{AppState, Privilege, TokenState, TokenType};
use crate::grpc::pb;

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
        /// An address range (CIDR or address) the token may be used from; repeat for more.
        /// None: anywhere.
        #[arg(long = "bound-cidr")]
        bound_cidrs: Vec<String>,
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
        /// Replace the address ranges the token may be used from (repeatable).
        #[arg(long = "bound-cidr", conflicts_with = "anywhere")]
        bound_cidrs: Vec<String>,
        /// Drop the token's address ranges: usable from anywhere.
        #[arg(long)]
        anywhere: bool,
    },
    /// Retire a token for good: every later use is refused.
    Retire {
        id: String,
        /// Only show what retiring would do (who used the token lately); change nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Turn a user token into an account token (Admin only; cannot be undone).
    Promote { id: String },
    /// Follow tokens' lifecycle events (created, retired, promoted, rotated, leaked,
    /// expiring, expired, dormant) until interrupted.
    #[command(alias = "watch")]
    Events(EventsArgs),
    /// Report a leaked secret, read from stdin: its token, if any, is retired at once.
    /// Needs no API_TOKENS_TOKEN: holding the secret is the proof.
    ReportLeak(ReportLeakArgs),
}

fn show_token(output: Output, token: Option<pb::Token>) -> anyhow::Result<()> {
    let token = token.ok_or_else(|| anyhow::anyhow!("the server answered without a token"))?;
    match output {
        Output::Json => print_json(&token_json(&token)),
        Output::Table => print_fields(&token_fields(&token)),
    }
    Ok(())
}

pub(super) async fn run(args: TokensArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    // Neither connects as the other commands do: one streams, the other has no credentials.
    match args.command {
        TokensCommand::Events(events) => return token_events::events(&args.client, events).await,
        TokensCommand::ReportLeak(report) => {
            return token_events::report_leak(&args.client, report).await;
        }
        _ => {}
    }
    let mut client = Client::connect(&args.client).await?.tokens();
    match args.command {
        TokensCommand::Create {
            token_type,
            privilege,
            default_app_state,
            description,
            bound_cidrs,
        } => {
            let reply = client
                .create_token(pb::CreateTokenRequest {
                    r#type: wire::<pb::TokenType, _>(Some(token_type)),
                    privilege: wire::<pb::Privilege, _>(privilege),
                    default_app_state: wire::<pb::AppState, _>(default_app_state),
                    description,
                    // Safe to resend: should this call be retried, no second token is made.
                    request_id: uuid::Uuid::new_v4().to_string(),
                    bound_cidrs,
                    expire_time: None,
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
            let tokens = every_page(async |page_token| {
                client
                    .list_tokens(pb::ListTokensRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                        r#type: wire::<pb::TokenType, _>(token_type),
                        owner_user_id: owner.clone().unwrap_or_default(),
                        state: wire::<pb::TokenState, _>(state),
                        expire_before: None,
                    })
                    .await
            })
            .await?;
            print_list(output, &tokens);
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
            bound_cidrs,
            anywhere,
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
            if anywhere || !bound_cidrs.is_empty() {
                token.bound_cidrs = bound_cidrs;
                paths.push("bound_cidrs".to_owned());
            }
            if paths.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --privilege, --default-app-state, --description, --bound-cidr or --anywhere"
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
        TokensCommand::Retire { id, validate_only } => {
            let reply = client
                .retire_token(pb::RetireTokenRequest { id, validate_only })
                .await
                .map_err(status_error)
                .map(note_revision)?
                .into_inner();
            match reply.preview {
                Some(preview) => output::print_preview(output, &preview),
                None => show_token(output, reply.token)?,
            }
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
        TokensCommand::Events(_) | TokensCommand::ReportLeak(_) => {}
    }
    Ok(())
}
