//! `tokens`: create, list, get, update, rotate, retire and promote tokens.
use clap::{Args, Subcommand};
use serde_json::json;

use super::apps::parse_span;
use super::client::{Answer, Client, ClientArgs};
use super::output::{
    self, Output, emit, print_fields, print_json, print_list, token_fields, token_json,
};
use super::paging::{PAGE_SIZE, every_page};
use super::token_events::{self, EventsArgs, ReportLeakArgs};
use super::wire;
use crate::domain::{AppState, Privilege, TokenState, TokenType};
use crate::flags::named;
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
        #[command(flatten)]
        expiry: ExpiryArgs,
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
        /// Only tokens that expire before this time (RFC 3339).
        #[arg(long, conflicts_with = "expires_within")]
        expires_before: Option<String>,
        /// Only tokens that expire within this long from now: 12h, 7d.
        #[arg(long, value_name = "DURATION")]
        expires_within: Option<String>,
    },
    /// Show one token.
    Get { id: String },
    /// Change a token's privilege, default app state, description, ranges or expiry (an
    /// expired token cannot be changed: it is never revived).
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
        #[command(flatten)]
        expiry: ExpiryArgs,
        /// Remove the token's expiry, if the account policy allows it.
        #[arg(long, conflicts_with_all = ["expires_at", "expires_in"])]
        no_expiry: bool,
    },
    /// Replace a token's secret; the new one is printed this once. The old one keeps working
    /// for the overlap.
    Rotate {
        id: String,
        /// How long the old secret keeps working: 0 (stops at once), 90s, 45m, 12h, 30d.
        #[arg(long, default_value = "0", value_name = "DURATION")]
        overlap: String,
        /// Start the overlap at the new secret's first use instead of now.
        #[arg(long)]
        from_first_use: bool,
        #[command(flatten)]
        expiry: ExpiryArgs,
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

/// When a token stops working: a time, or a span from now.
#[derive(Debug, Clone, Default, Args)]
pub struct ExpiryArgs {
    /// The token stops working at this time (RFC 3339, e.g. 2027-01-31T00:00:00Z).
    #[arg(long, conflicts_with = "expires_in")]
    pub expires_at: Option<String>,
    /// The token stops working after this long: 12h, 30d.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
}

impl ExpiryArgs {
    /// The time asked for, on the wire; `None` when neither flag is given.
    fn pb(&self) -> anyhow::Result<Option<prost_types::Timestamp>> {
        Ok(match (&self.expires_at, &self.expires_in) {
            (Some(at), _) => Some(rfc3339("--expires-at", at)?),
            (None, Some(span)) => Some(chrono::Utc::now() + parse_span(span)?),
            (None, None) => None,
        }
        .map(crate::grpc::timestamp))
    }
}

fn rfc3339(flag: &str, text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))?
        .with_timezone(&chrono::Utc))
}

/// An overlap: `0`, or a span as `parse_span` reads it.
fn overlap(text: &str) -> anyhow::Result<prost_types::Duration> {
    let span = if text == "0" {
        chrono::TimeDelta::zero()
    } else {
        parse_span(text)?
    };
    Ok(crate::grpc::duration(span))
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
            expiry,
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
                    expire_time: expiry.pb()?,
                })
                .await
                .changed()?;
            show_secret(output, reply.token, reply.secret)?;
        }
        TokensCommand::List {
            token_type,
            owner,
            state,
            expires_before,
            expires_within,
        } => {
            let expire_before = match (expires_before, expires_within) {
                (Some(at), _) => Some(rfc3339("--expires-before", &at)?),
                (None, Some(span)) => Some(chrono::Utc::now() + parse_span(&span)?),
                (None, None) => None,
            }
            .map(crate::grpc::timestamp);
            let tokens = every_page(async |page_token| {
                client
                    .list_tokens(pb::ListTokensRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                        r#type: wire::<pb::TokenType, _>(token_type),
                        owner_user_id: owner.clone().unwrap_or_default(),
                        state: wire::<pb::TokenState, _>(state),
                        expire_before,
                    })
                    .await
            })
            .await?;
            print_list(output, &tokens);
        }
        TokensCommand::Get { id } => {
            let reply = client.get_token(pb::GetTokenRequest { id }).await.read()?;
            show_token(output, reply.token)?;
        }
        TokensCommand::Update {
            id,
            privilege,
            default_app_state,
            description,
            bound_cidrs,
            anywhere,
            expiry,
            no_expiry,
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
            let expire_time = expiry.pb()?;
            if no_expiry || expire_time.is_some() {
                token.expire_time = expire_time;
                paths.push("expire_time".to_owned());
            }
            if paths.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --privilege, --default-app-state, --description, --bound-cidr, --anywhere, --expires-at, --expires-in or --no-expiry"
                );
            }
            let reply = client
                .update_token(pb::UpdateTokenRequest {
                    token: Some(token),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await
                .changed()?;
            show_token(output, reply.token)?;
        }
        TokensCommand::Rotate {
            id,
            overlap: span,
            from_first_use,
            expiry,
        } => {
            let reply = client
                .rotate_token(pb::RotateTokenRequest {
                    id,
                    overlap: Some(overlap(&span)?),
                    overlap_from_first_use: from_first_use,
                    expire_time: expiry.pb()?,
                })
                .await
                .changed()?;
            show_secret(output, reply.token, reply.secret)?;
        }
        TokensCommand::Retire { id, validate_only } => {
            let reply = client
                .retire_token(pb::RetireTokenRequest { id, validate_only })
                .await
                .changed()?;
            if !output::previewed(output, reply.preview.as_ref()) {
                show_token(output, reply.token)?;
            }
        }
        TokensCommand::Promote { id } => {
            let reply = client
                .promote_token(pb::PromoteTokenRequest {
                    id,
                    ..Default::default()
                })
                .await
                .changed()?;
            show_token(output, reply.token)?;
        }
        TokensCommand::Events(_) | TokensCommand::ReportLeak(_) => {}
    }
    Ok(())
}

/// A token with its new secret, shown this once.
fn show_secret(output: Output, token: Option<pb::Token>, secret: String) -> anyhow::Result<()> {
    let token = token.ok_or_else(|| anyhow::anyhow!("the server answered without a token"))?;
    match output {
        Output::Json => {
            let mut value = token_json(&token);
            value["secret"] = json!(secret);
            print_json(&value);
        }
        Output::Table => {
            let mut fields = token_fields(&token);
            fields.push(("secret", secret));
            print_fields(&fields);
            emit("\nThe secret is shown only this once: store it now.");
        }
    }
    Ok(())
}
