//! The bot's loop: watch from the saved cursor, decide each pending name, save the cursor;
//! reconnect with backoff, and re-list when the cursor has expired. In a dry run it lists the
//! pending names, prints what it would decide, changes nothing and exits.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_stream::StreamExt;
use tonic::Code;
use uuid::Uuid;

use super::{Action, Rules};
use crate::admin::{Client, ConnectionArgs, Tokens};
use crate::grpc::pb;

#[derive(Debug, Clone)]
pub struct BotSettings {
    /// The server and its TLS files, as the admin commands take them.
    pub connection: ConnectionArgs,
    pub app_name: String,
    pub rules: Rules,
    /// Where the last processed cursor is kept across restarts.
    pub state_file: PathBuf,
    /// Print what would be decided for the names pending now, change nothing, and exit.
    pub dry_run: bool,
}

/// What the rules make of one pending application.
struct Verdict {
    state: pb::AppState,
    conditions: Option<pb::ApprovalConditions>,
    /// The rule's number and what it says, for the reason and the log.
    rule: String,
}

impl Verdict {
    fn of(rules: &super::Rules, app: &pb::Application) -> anyhow::Result<Option<Verdict>> {
        let token_id = Uuid::parse_str(&app.token_id).context("server sent a bad token id")?;
        let Some((number, rule)) = rules.matching(token_id, &app.name) else {
            return Ok(None);
        };
        // Checked when the rules were read.
        let conditions = rule.conditions().map_err(anyhow::Error::msg)?;
        let described = conditions.describe(rule.for_.as_deref());
        let state = match rule.action {
            Action::Allow => pb::AppState::Allow,
            Action::Deny => pb::AppState::Deny,
        };
        let conditions = (!conditions.is_empty()).then(|| pb::ApprovalConditions {
            expire_time: conditions
                .lasts
                .map(|span| crate::grpc::timestamp(chrono::Utc::now() + span)),
            max_privilege: conditions
                .max_privilege
                .map(|p| pb::Privilege::from(p).into())
                .unwrap_or_default(),
            client_cidrs: conditions.cidrs.clone(),
        });
        let mut rule_text = format!("approve-bot rule {number} ({:?})", rule.pattern);
        if !described.is_empty() {
            rule_text.push_str(&format!(": {described}"));
        }
        Ok(Some(Verdict {
            state,
            conditions,
            rule: rule_text,
        }))
    }
}

struct Bot {
    settings: BotSettings,
    client: Tokens,
}

impl Bot {
    fn load_cursor(&self) -> Option<String> {
        std::fs::read_to_string(&self.settings.state_file)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// Written to a temporary file and renamed, so a crash never leaves half a cursor.
    fn save_cursor(&self, cursor: &str) -> anyhow::Result<()> {
        let tmp = self.settings.state_file.with_extension("tmp");
        std::fs::write(&tmp, cursor).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.settings.state_file)
            .with_context(|| format!("cannot replace {}", self.settings.state_file.display()))
    }

    async fn decide(&mut self, app: &pb::Application) -> anyhow::Result<()> {
        let Some(verdict) = Verdict::of(&self.settings.rules, app)? else {
            tracing::info!(app = %app.name, token = %app.token_id, "no rule matches; left pending");
            return Ok(());
        };
        let request = pb::SetApplicationStateRequest {
            token_id: app.token_id.clone(),
            name: app.name.clone(),
            state: verdict.state.into(),
            conditions: verdict.conditions,
            reason: verdict.rule.clone(),
            validate_only: false,
        };
        self.client
            .set_application_state(request)
            .await
            .context("SetApplicationState")?;
        tracing::info!(app = %app.name, token = %app.token_id, state = ?verdict.state, rule = %verdict.rule, "decided");
        Ok(())
    }

    /// Lists what is pending now and prints, one line each, what the rules would decide.
    async fn dry_run(&mut self) -> anyhow::Result<()> {
        let request = pb::WatchApplicationsRequest::default();
        let mut stream = self.client.watch_applications(request).await?.into_inner();
        while let Some(item) = stream.next().await {
            let item = item?;
            match item.r#type() {
                pb::WatchEventType::Snapshot => {
                    let Some(app) = item.application.as_ref() else {
                        continue;
                    };
                    let line = match Verdict::of(&self.settings.rules, app)? {
                        None => format!(
                            "would leave pending {}/{}: no rule matches",
                            app.token_id, app.name
                        ),
                        Some(v) => format!(
                            "would {} {}/{}: {}",
                            if v.state == pb::AppState::Allow {
                                "allow"
                            } else {
                                "deny"
                            },
                            app.token_id,
                            app.name,
                            v.rule
                        ),
                    };
                    println!("{line}");
                }
                pb::WatchEventType::SnapshotEnd => return Ok(()),
                _ => {}
            }
        }
        Ok(())
    }

    /// One watch, until it ends or fails.
    async fn watch_once(&mut self) -> anyhow::Result<()> {
        let cursor = self.load_cursor().unwrap_or_default();
        if cursor.is_empty() {
            tracing::info!("no saved cursor: listing the pending applications");
        } else {
            tracing::info!("resuming from the saved cursor");
        }
        let request = pb::WatchApplicationsRequest {
            cursor,
            states: vec![],
            token_id: String::new(),
        };
        let mut stream = self.client.watch_applications(request).await?.into_inner();
        while let Some(item) = stream.next().await {
            let item = item?;
            match item.r#type() {
                pb::WatchEventType::Snapshot | pb::WatchEventType::Recorded => {
                    if let Some(app) = item
                        .application
                        .as_ref()
                        .filter(|a| a.state() == pb::AppState::Pending)
                    {
                        self.decide(app).await?;
                    }
                    // A snapshot item's cursor skips the rest of the snapshot: save only after its end.
                    if item.r#type() == pb::WatchEventType::Recorded {
                        self.save_cursor(&item.cursor)?;
                    }
                }
                _ => self.save_cursor(&item.cursor)?,
            }
        }
        Ok(())
    }
}

/// Runs the bot until `stop` resolves.
pub async fn run_bot(
    settings: BotSettings,
    secret: &str,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = Client::lazy(&settings.connection, secret, &settings.app_name)?.tokens();
    let mut bot = Bot { client, settings };
    if bot.settings.dry_run {
        return tokio::select! {
            outcome = bot.dry_run() => outcome.context("dry run"),
            () = stop => Ok(()),
        };
    }
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(200);
    loop {
        let outcome = tokio::select! {
            outcome = bot.watch_once() => outcome,
            () = &mut stop => return Ok(()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!("watch ended; reconnecting");
                backoff = Duration::from_millis(200);
            }
            Err(e) => match e.downcast_ref::<tonic::Status>() {
                Some(status) if status.code() == Code::OutOfRange => {
                    tracing::warn!("cursor expired; re-listing pending applications");
                    let _ = std::fs::remove_file(&bot.settings.state_file);
                    continue;
                }
                Some(status)
                    if matches!(
                        status.code(),
                        Code::Unauthenticated | Code::PermissionDenied
                    ) =>
                {
                    return Err(e).context("the bot's token was refused");
                }
                _ => {
                    if let Some(reason) = cannot_work(&e) {
                        return Err(e).context(format!(
                            "cannot talk to {}: {reason}",
                            bot.settings.connection.server
                        ));
                    }
                    tracing::warn!(error = format!("{e:#}"), ?backoff, "watch failed; retrying");
                }
            },
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut stop => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Why a failed call shows a set-up that no retry can mend, or `None` for what may pass (the
/// server down, restarting or overloaded).
fn cannot_work(error: &anyhow::Error) -> Option<&'static str> {
    let mut http2 = false;
    for cause in error.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            // rustls reports a failed handshake (unknown CA, wrong name, a plaintext peer) as InvalidData.
            if io.kind() == std::io::ErrorKind::InvalidData {
                return Some(
                    "the TLS handshake failed (check --ca-cert, the server's name, and that the port serves TLS)",
                );
            }
        }
        http2 |= cause.downcast_ref::<hyper::Error>().is_some();
    }
    // A plaintext HTTP/2 client at a TLS port reads the TLS alert as a malformed frame.
    let internal = error
        .downcast_ref::<tonic::Status>()
        .is_some_and(|s| s.code() == Code::Internal);
    (internal && http2).then_some(
        "the server broke the HTTP/2 protocol: a TLS port reached with http://? (use https:// and --ca-cert)",
    )
}
