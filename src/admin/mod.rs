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
    /// Allow an application name on a token (recording it if new), perhaps with conditions.
    Allow {
        token_id: String,
        name: String,
        #[command(flatten)]
        conditions: ConditionArgs,
        /// Why; kept in the audit log and carried on the watch event.
        #[arg(long, default_value = "")]
        reason: String,
        /// Only show what the decision would do; change nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Deny an application name on a token (recording it if new).
    Deny {
        token_id: String,
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Only show what the decision would do; change nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Decide many (token, name) pairs at once, with one reason, in one transaction (at most
    /// 100). Each pair is TOKEN_ID:NAME (names may hold colons; ids never do).
    Batch {
        /// Allow this pair, with the conditions given (repeatable).
        #[arg(long = "allow", value_name = "TOKEN_ID:NAME")]
        allow: Vec<String>,
        /// Deny this pair (repeatable).
        #[arg(long = "deny", value_name = "TOKEN_ID:NAME")]
        deny: Vec<String>,
        /// Set this pair back to pending (repeatable).
        #[arg(long = "pending", value_name = "TOKEN_ID:NAME")]
        pending: Vec<String>,
        #[command(flatten)]
        conditions: ConditionArgs,
        /// Why, for all of them.
        #[arg(long, default_value = "")]
        reason: String,
        /// Only show what the decisions would do; change nothing.
        #[arg(long)]
        validate_only: bool,
    },
}

/// The conditions an Allow may carry.
#[derive(Debug, Clone, Default, Args)]
pub struct ConditionArgs {
    /// The approval ends at this time (RFC 3339, e.g. 2026-12-31T23:59:59Z).
    #[arg(long, conflicts_with = "for_")]
    pub until: Option<String>,
    /// The approval ends after this long: 90s, 45m, 12h, 30d.
    #[arg(long = "for", id = "for_", value_name = "DURATION")]
    pub for_: Option<String>,
    /// The application acts with at most this privilege.
    #[arg(long, value_parser = named::<Privilege>())]
    pub max_privilege: Option<Privilege>,
    /// The application may use the token only from this range (repeatable).
    #[arg(long = "cidr")]
    pub cidrs: Vec<String>,
}

impl ConditionArgs {
    /// The conditions asked for; `None` when none is.
    fn pb(&self) -> anyhow::Result<Option<pb::ApprovalConditions>> {
        let until = match (&self.until, &self.for_) {
            (Some(at), _) => Some(
                chrono::DateTime::parse_from_rfc3339(at)
                    .map_err(|e| anyhow::anyhow!("--until {at:?}: {e}"))?
                    .with_timezone(&chrono::Utc),
            ),
            (None, Some(span)) => Some(chrono::Utc::now() + parse_span(span)?),
            (None, None) => None,
        };
        if until.is_none() && self.max_privilege.is_none() && self.cidrs.is_empty() {
            return Ok(None);
        }
        Ok(Some(pb::ApprovalConditions {
            expire_time: until.map(crate::grpc::timestamp),
            max_privilege: wire::<pb::Privilege, _>(self.max_privilege),
            client_cidrs: self.cidrs.clone(),
        }))
    }
}

/// `90s`, `45m`, `12h`, `30d`.
pub fn parse_span(text: &str) -> anyhow::Result<chrono::TimeDelta> {
    let bad = || anyhow::anyhow!("{text:?} is not a duration: write 90s, 45m, 12h or 30d");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let span = match unit {
        "s" => chrono::TimeDelta::try_seconds(n),
        "m" => chrono::TimeDelta::try_minutes(n),
        "h" => chrono::TimeDelta::try_hours(n),
        "d" => chrono::TimeDelta::try_days(n),
        _ => None,
    };
    span.filter(|s| *s > chrono::TimeDelta::zero())
        .ok_or_else(bad)
}

/// `TOKEN_ID:NAME`, split at the first colon.
fn pair(text: &str) -> anyhow::Result<(String, String)> {
    text.split_once(':')
        .map(|(id, name)| (id.to_owned(), name.to_owned()))
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not TOKEN_ID:NAME"))
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
        /// Only show what the change would do (tokens whose privilege drops); change nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Remove a member: their user tokens stop working.
    Remove {
        user_id: String,
        /// Only show what removing would do; change nothing.
        #[arg(long)]
        validate_only: bool,
    },
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
                        expire_before: None,
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
    }
    Ok(())
}

async fn apps(args: AppsArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let mut client = Client::connect(&args.client).await?.tokens();
    let (token_id, name, state, conditions, reason, validate_only) = match args.command {
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
        AppsCommand::Allow {
            token_id,
            name,
            conditions,
            reason,
            validate_only,
        } => (
            token_id,
            name,
            pb::AppState::Allow,
            conditions.pb()?,
            reason,
            validate_only,
        ),
        AppsCommand::Deny {
            token_id,
            name,
            reason,
            validate_only,
        } => (
            token_id,
            name,
            pb::AppState::Deny,
            None,
            reason,
            validate_only,
        ),
        AppsCommand::Batch {
            allow,
            deny,
            pending,
            conditions,
            reason,
            validate_only,
        } => {
            let conditions = conditions.pb()?;
            let mut decisions = Vec::new();
            for (pairs, state) in [
                (allow, pb::AppState::Allow),
                (deny, pb::AppState::Deny),
                (pending, pb::AppState::Pending),
            ] {
                for text in pairs {
                    let (token_id, name) = pair(&text)?;
                    decisions.push(pb::ApplicationDecision {
                        token_id,
                        name,
                        state: state.into(),
                        conditions: (state == pb::AppState::Allow)
                            .then(|| conditions.clone())
                            .flatten(),
                    });
                }
            }
            if decisions.is_empty() {
                anyhow::bail!("nothing to decide: give --allow, --deny or --pending");
            }
            let reply = client
                .batch_set_application_states(pb::BatchSetApplicationStatesRequest {
                    decisions: decisions.clone(),
                    reason,
                    validate_only,
                })
                .await
                .map_err(status_error)
                .map(note_revision)?
                .into_inner();
            output::print_results(output, &decisions, &reply.results);
            if let Some(preview) = &reply.preview {
                output::print_preview(output, preview);
            }
            return Ok(());
        }
    };
    let reply = client
        .set_application_state(pb::SetApplicationStateRequest {
            token_id,
            name,
            state: state.into(),
            conditions,
            reason,
            validate_only,
        })
        .await
        .map_err(status_error)
        .map(note_revision)?
        .into_inner();
    if let Some(preview) = &reply.preview {
        output::print_preview(output, preview);
        return Ok(());
    }
    let app = reply
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
        MembersCommand::Update {
            user_id,
            role,
            validate_only,
        } => {
            let reply = client
                .update_member(pb::UpdateMemberRequest {
                    user_id,
                    role: wire::<pb::Privilege, _>(Some(role)),
                    validate_only,
                })
                .await
                .map_err(status_error)
                .map(note_revision)?
                .into_inner();
            if let Some(preview) = &reply.preview {
                output::print_preview(output, preview);
                return Ok(());
            }
            reply.member
        }
        MembersCommand::Remove {
            user_id,
            validate_only,
        } => {
            let reply = client
                .remove_member(pb::RemoveMemberRequest {
                    user_id: user_id.clone(),
                    validate_only,
                })
                .await
                .map_err(status_error)
                .map(note_revision)?
                .into_inner();
            if let Some(preview) = &reply.preview {
                output::print_preview(output, preview);
                return Ok(());
            }
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
                "reason": event.reason,
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
