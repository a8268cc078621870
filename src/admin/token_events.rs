//! `tokens events`: follow tokens' lifecycle events (WatchTokenEvents) until interrupted; and
//! `tokens report-leak`: report a secret found where it should not be (no credentials needed).
use std::io::BufRead;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_stream::StreamExt;

use super::client::{Answer, Client, ClientArgs, status_error};
use super::output::{self, Output, emit};
use crate::grpc::pb;

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Resume after this cursor (the last one printed; a `watch` cursor works too) instead of
    /// starting now.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Only the events of this token.
    #[arg(long)]
    pub token_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportLeakArgs {
    /// Where the secret was found (a URL, a file and line); kept in the audit log and told
    /// to the token's owner and the Admins.
    #[arg(long, default_value = "")]
    pub where_found: String,
}

/// The event's type as `watch` names its own: `leak_reported`, `expiring`.
fn kind(event: &pb::WatchTokenEventsResponse) -> String {
    let name = event.r#type().as_str_name();
    name.strip_prefix("TOKEN_EVENT_TYPE_")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// What an event says beyond its type and token, for people.
fn detail(event: &pb::WatchTokenEventsResponse) -> String {
    let mut parts = Vec::new();
    if let Some(lead) = &event.lead_time {
        parts.push(format!("within {}d", lead.seconds / 86_400));
    }
    if event.reference_time.is_some() {
        parts.push(format!(
            "at {}",
            output::time(event.reference_time.as_ref())
        ));
    }
    if !event.where_found.is_empty() {
        parts.push(format!("found at {}", event.where_found));
    }
    parts.join(", ")
}

pub(super) async fn events(client: &ClientArgs, args: EventsArgs) -> anyhow::Result<()> {
    let mut tokens = Client::connect(client).await?.tokens();
    let mut stream = tokens
        .watch_token_events(pb::WatchTokenEventsRequest {
            cursor: args.cursor.unwrap_or_default(),
            token_id: args.token_id.unwrap_or_default(),
        })
        .await
        .read()?;
    while let Some(event) = stream.next().await {
        let event = event.map_err(status_error)?;
        let written = match client.output {
            Output::Json => emit(json!({
                "type": kind(&event),
                "token_id": event.token_id,
                "event_time": output::time(event.event_time.as_ref()),
                "lead_time_secs": event.lead_time.as_ref().map(|d| d.seconds),
                "reference_time": output::time(event.reference_time.as_ref()),
                "where_found": event.where_found,
                "cursor": event.cursor,
            })),
            Output::Table => emit(format!(
                "{}  {:<27}  {:<36}  {}  cursor {}",
                output::time(event.event_time.as_ref()),
                kind(&event),
                event.token_id,
                detail(&event),
                event.cursor
            )),
        };
        // Whoever read the stream is gone: stop watching.
        if !written {
            break;
        }
    }
    Ok(())
}

/// Reads the secret from stdin (never a flag: it would show in `ps` and shell history), and
/// reports it with no credentials of the caller's own.
pub(super) async fn report_leak(client: &ClientArgs, args: ReportLeakArgs) -> anyhow::Result<()> {
    let mut secret = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut secret)
        .context("cannot read the secret from stdin")?;
    let channel = client
        .connection
        .endpoint()?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", client.connection.server))?;
    pb::token_service_client::TokenServiceClient::new(channel)
        .report_leaked_secret(pb::ReportLeakedSecretRequest {
            secret: secret.trim().to_owned(),
            where_found: args.where_found,
        })
        .await
        .read()?;
    match client.output {
        Output::Json => {
            emit(json!({ "reported": true }));
        }
        Output::Table => {
            emit(
                "reported: if a token has this secret, it is retired now and its owner and the Admins are told",
            );
        }
    }
    Ok(())
}
