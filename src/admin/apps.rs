//! `apps`: list the application names recorded under a token; allow, deny, or decide many
//! at once, perhaps with conditions.
use clap::{Args, Subcommand};

use super::client::{Answer, Client, ClientArgs};
use super::output::{self, print_list, print_one};
use super::paging::{PAGE_SIZE, every_page};
use super::wire;
use crate::domain::{AppState, Privilege};
use crate::flags::named;
use crate::grpc::pb;

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

/// `90s`, `45m`, `12h`, `30d`; at most what a protobuf Duration holds (10,000 years), so
/// that now plus it is a time (the server refuses one past 9999-12-31), never a panic.
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
    let longest = chrono::TimeDelta::seconds(crate::domain::LONGEST_DURATION_SECONDS);
    span.filter(|s| *s > chrono::TimeDelta::zero() && *s <= longest)
        .ok_or_else(bad)
}

/// `TOKEN_ID:NAME`, split at the first colon.
fn pair(text: &str) -> anyhow::Result<(String, String)> {
    text.split_once(':')
        .map(|(id, name)| (id.to_owned(), name.to_owned()))
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not TOKEN_ID:NAME"))
}

pub(super) async fn run(args: AppsArgs) -> anyhow::Result<()> {
    let output = args.client.output;
    let mut client = Client::connect(&args.client).await?.tokens();
    let (token_id, name, state, conditions, reason, validate_only) = match args.command {
        AppsCommand::List { token_id, state } => {
            let apps = every_page(async |page_token| {
                client
                    .list_applications(pb::ListApplicationsRequest {
                        token_id: token_id.clone(),
                        page_size: PAGE_SIZE,
                        page_token,
                        state: wire::<pb::AppState, _>(state),
                    })
                    .await
            })
            .await?;
            print_list(output, &apps);
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
                .changed()?;
            output::print_results(output, &decisions, &reply.results);
            output::previewed(output, reply.preview.as_ref());
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
        .changed()?;
    if output::previewed(output, reply.preview.as_ref()) {
        return Ok(());
    }
    let app = reply
        .application
        .ok_or_else(|| anyhow::anyhow!("the server answered without an application"))?;
    print_one(output, &app);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_at_most_what_a_duration_holds() {
        assert_eq!(parse_span("30d").unwrap(), chrono::TimeDelta::days(30));
        let longest = parse_span("3652500d").unwrap();
        assert!(chrono::Utc::now().checked_add_signed(longest).is_some());
        for bad in [
            "3652501d",
            "100000000000d",
            "9223372036854775807s",
            "0s",
            "-1d",
            "d",
        ] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
    }
}
