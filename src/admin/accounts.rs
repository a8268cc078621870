//! `accounts`: the account's token policy (lifetimes, expiry notices, dormancy, reuse).
use clap::{Args, Subcommand};

use super::apps::parse_span;
use super::client::{Answer, Client, ClientArgs};
use super::output::{Output, policy_fields, policy_json, print_fields, print_json};
use crate::grpc::pb;

#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: AccountsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// The account's token policy: show it, or (Admins) set it.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the policy, defaults filled in.
    Show,
    /// Set the fields given; the others stay as they are.
    Set(PolicySetArgs),
}

/// A span, or `none` to clear it.
#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// The longest a token may live (e.g. 90d), or `none`. Any limit means every token expires.
    #[arg(long, value_name = "DURATION|none")]
    max_lifetime: Option<String>,
    /// Whether every new token must expire.
    #[arg(long, value_name = "BOOL")]
    require_expiry: Option<bool>,
    /// The lifetime a token gets when none is asked (e.g. 30d), or `none`.
    #[arg(long, value_name = "DURATION|none")]
    default_lifetime: Option<String>,
    /// When "expiring" notices go before expiry (repeatable, e.g. 30d 7d 1d).
    #[arg(long = "notice-lead", value_name = "DURATION")]
    notice_leads: Vec<String>,
    /// A token unused this long is dormant (e.g. 90d), or `none`.
    #[arg(long, value_name = "DURATION|none")]
    dormant_after: Option<String>,
    /// Retire a token when a rotated-out secret of it is used after its overlap.
    #[arg(long, value_name = "BOOL")]
    retire_on_reuse: Option<bool>,
}

/// `none`, or a span as `parse_span` reads it.
fn optional_span(text: &str) -> anyhow::Result<Option<prost_types::Duration>> {
    if text == "none" {
        return Ok(None);
    }
    Ok(Some(crate::grpc::duration(parse_span(text)?)))
}

impl PolicySetArgs {
    /// The policy and the mask naming the fields given.
    fn request(&self) -> anyhow::Result<pb::SetAccountPolicyRequest> {
        let mut policy = pb::AccountPolicy::default();
        let mut paths = Vec::new();
        let mut field = |name: &str| paths.push(name.to_owned());
        if let Some(text) = &self.max_lifetime {
            policy.max_token_lifetime = optional_span(text)?;
            field("max_token_lifetime");
        }
        if let Some(required) = self.require_expiry {
            policy.require_expiry = required;
            field("require_expiry");
        }
        if let Some(text) = &self.default_lifetime {
            policy.default_token_lifetime = optional_span(text)?;
            field("default_token_lifetime");
        }
        if !self.notice_leads.is_empty() {
            policy.expiry_notice_lead_times = self
                .notice_leads
                .iter()
                .map(|lead| parse_span(lead).map(crate::grpc::duration))
                .collect::<anyhow::Result<_>>()?;
            field("expiry_notice_lead_times");
        }
        if let Some(text) = &self.dormant_after {
            policy.dormant_after = optional_span(text)?;
            field("dormant_after");
        }
        if let Some(retire) = self.retire_on_reuse {
            policy.retire_on_reuse = retire;
            field("retire_on_reuse");
        }
        if paths.is_empty() {
            anyhow::bail!(
                "nothing to set: give --max-lifetime, --require-expiry, --default-lifetime, --notice-lead, --dormant-after or --retire-on-reuse"
            );
        }
        Ok(pb::SetAccountPolicyRequest {
            policy: Some(policy),
            update_mask: Some(prost_types::FieldMask { paths }),
        })
    }
}

pub(super) async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let AccountsCommand::Policy(command) = args.command;
    let request = match &command {
        PolicyCommand::Set(set) => Some(set.request()?),
        PolicyCommand::Show => None,
    };
    let mut client = Client::connect(&args.client).await?.accounts();
    let policy = match request {
        Some(request) => client.set_account_policy(request).await.changed()?.policy,
        None => {
            client
                .get_account(pb::GetAccountRequest {})
                .await
                .read()?
                .policy
        }
    };
    let policy = policy.ok_or_else(|| anyhow::anyhow!("the server answered without a policy"))?;
    match output {
        Output::Json => print_json(&policy_json(&policy)),
        Output::Table => print_fields(&policy_fields(&policy)),
    }
    Ok(())
}
