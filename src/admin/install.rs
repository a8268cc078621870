//! `install-command`: the One-Step-Install command line for a token.
use clap::Args;
use serde_json::json;

use super::client::{Answer, Client, ClientArgs};
use super::output::{Output, emit, print_fields, print_json};
use crate::grpc::pb;

#[derive(Debug, Args)]
pub struct InstallCommandArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    pub token_id: String,
    /// Broker to put in the generated configuration.
    #[arg(long)]
    pub broker: Option<String>,
}

pub(super) async fn run(args: InstallCommandArgs) -> anyhow::Result<()> {
    let mut client = Client::connect(&args.client).await?.tokens();
    let reply = client
        .get_install_command(pb::GetInstallCommandRequest {
            token_id: args.token_id,
            broker_id: args.broker.unwrap_or_default(),
        })
        .await
        .read()?;
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
