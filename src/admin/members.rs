//! `members`: list the account's members; add, update and remove them.
use clap::{Args, Subcommand};
use serde_json::json;

use super::client::{Answer, Client, ClientArgs};
use super::output::{self, Output, emit, print_json, print_list, print_one};
use super::paging::{PAGE_SIZE, every_page};
use super::wire;
use crate::domain::Privilege;
use crate::flags::named;
use crate::grpc::pb;

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

pub(super) async fn run(args: MembersArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let mut client = Client::connect(&args.client).await?.accounts();
    let member = match args.command {
        MembersCommand::List => {
            let members = every_page(async |page_token| {
                client
                    .list_members(pb::ListMembersRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                    })
                    .await
            })
            .await?;
            print_list(output, &members);
            return Ok(());
        }
        MembersCommand::Add { user_name, role } => {
            client
                .add_member(pb::AddMemberRequest {
                    user_name,
                    role: wire::<pb::Privilege, _>(Some(role)),
                })
                .await
                .changed()?
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
                .changed()?;
            if output::previewed(output, reply.preview.as_ref()) {
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
                .changed()?;
            if output::previewed(output, reply.preview.as_ref()) {
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
    print_one(output, &member);
    Ok(())
}
