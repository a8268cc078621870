//! `watch`: follow application events (WatchApplications) until interrupted.
use clap::Args;
use serde_json::json;
use tokio_stream::StreamExt;

use super::client::{Answer, Client, ClientArgs, status_error};
use super::output::{self, Output, application_json, emit};
use super::wire;
use crate::domain::AppState;
use crate::flags::named;
use crate::grpc::pb;

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

pub(super) async fn run(args: WatchArgs) -> anyhow::Result<()> {
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
        .read()?;
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
