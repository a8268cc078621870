//! The reference notifier: follows the token-events and application streams and posts each
//! event, as signed JSON, to a webhook URL. At least once: an event's cursor is saved only
//! after the receiver took it, so a restart resends at most the event in flight, under the
//! same delivery id.
mod deliver;
mod payload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Mutex, watch};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::admin::{Client, ConnectionArgs, Tokens};
use crate::grpc::pb;

pub use deliver::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, Webhook, signature};
pub use payload::{APPLICATIONS, TOKEN_EVENTS};

#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// The server and its TLS files, as the admin commands take them.
    pub connection: ConnectionArgs,
    pub app_name: String,
    pub webhook: Webhook,
    /// Where both streams' cursors are kept across restarts.
    pub state_file: PathBuf,
}

/// Which stream a follower reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    TokenEvents,
    Applications,
}

impl Topic {
    fn name(self) -> &'static str {
        match self {
            Topic::TokenEvents => TOKEN_EVENTS,
            Topic::Applications => APPLICATIONS,
        }
    }
}

/// Both cursors, as the state file holds them.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Cursors {
    #[serde(default)]
    token_events: String,
    #[serde(default)]
    applications: String,
}

/// The state file, written by both followers one at a time.
struct State {
    path: PathBuf,
    cursors: Mutex<Cursors>,
}

impl State {
    fn load(path: PathBuf) -> anyhow::Result<State> {
        let cursors = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a notifier state file", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cursors::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(State {
            path,
            cursors: Mutex::new(cursors),
        })
    }

    async fn cursor(&self, topic: Topic) -> String {
        let cursors = self.cursors.lock().await;
        match topic {
            Topic::TokenEvents => cursors.token_events.clone(),
            Topic::Applications => cursors.applications.clone(),
        }
    }

    /// Written to a temporary file and renamed, so a crash never leaves half a state.
    async fn save(&self, topic: Topic, cursor: &str) -> anyhow::Result<()> {
        let mut cursors = self.cursors.lock().await;
        match topic {
            Topic::TokenEvents => cursors.token_events = cursor.to_owned(),
            Topic::Applications => cursors.applications = cursor.to_owned(),
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&*cursors)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }
}

struct Notifier {
    client: Tokens,
    webhook: Webhook,
    state: State,
    stop: watch::Receiver<bool>,
}

/// What one watch ended with: the stream closed (reconnect), or the notifier is stopping.
enum Ended {
    Closed,
    Stopping,
}

impl Notifier {
    /// Posts one event; `Stopping` if the notifier was stopped before the receiver took it.
    async fn post(&self, topic: Topic, payload: payload::Payload) -> anyhow::Result<Ended> {
        let mut stop = self.stop.clone();
        let delivered = self
            .webhook
            .deliver(topic.name(), &payload.delivery, &payload.body, &mut stop)
            .await?;
        if delivered {
            tracing::info!(stream = topic.name(), delivery = %payload.delivery, "delivered");
            Ok(Ended::Closed)
        } else {
            Ok(Ended::Stopping)
        }
    }

    async fn watch_token_events(&self) -> anyhow::Result<Ended> {
        let topic = Topic::TokenEvents;
        let request = pb::WatchTokenEventsRequest {
            cursor: self.state.cursor(topic).await,
            token_id: String::new(),
        };
        let mut stream = self
            .client
            .clone()
            .watch_token_events(request)
            .await?
            .into_inner();
        while let Some(item) = stream.next().await {
            let item = item?;
            if item.r#type() != pb::TokenEventType::Heartbeat
                && let Ended::Stopping = self.post(topic, payload::token_event(&item)).await?
            {
                return Ok(Ended::Stopping);
            }
            self.state.save(topic, &item.cursor).await?;
        }
        Ok(Ended::Closed)
    }

    async fn watch_applications(&self) -> anyhow::Result<Ended> {
        let topic = Topic::Applications;
        let request = pb::WatchApplicationsRequest {
            cursor: self.state.cursor(topic).await,
            states: [
                pb::AppState::Pending,
                pb::AppState::Allow,
                pb::AppState::Deny,
            ]
            .map(i32::from)
            .to_vec(),
            token_id: String::new(),
        };
        let mut stream = self
            .client
            .clone()
            .watch_applications(request)
            .await?
            .into_inner();
        while let Some(item) = stream.next().await {
            let item = item?;
            match item.r#type() {
                // What stands now is not news; its end is where the news starts.
                pb::WatchEventType::Snapshot => continue,
                pb::WatchEventType::Recorded | pb::WatchEventType::StateChanged => {
                    if let Ended::Stopping =
                        self.post(topic, payload::application_event(&item)).await?
                    {
                        return Ok(Ended::Stopping);
                    }
                }
                _ => {}
            }
            self.state.save(topic, &item.cursor).await?;
        }
        Ok(Ended::Closed)
    }

    /// Follows one stream until stopped: reconnects with backoff, starts again from the
    /// present when its cursor expired, and gives up only when its token is refused.
    async fn follow(&self, topic: Topic) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(200);
        let mut stop = self.stop.clone();
        loop {
            let watched = tokio::select! {
                watched = async {
                    match topic {
                        Topic::TokenEvents => self.watch_token_events().await,
                        Topic::Applications => self.watch_applications().await,
                    }
                } => watched,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            match watched {
                Ok(Ended::Stopping) => return Ok(()),
                Ok(Ended::Closed) => {
                    tracing::info!(stream = topic.name(), "stream ended; reconnecting");
                    backoff = Duration::from_millis(200);
                }
                Err(e) => match e.downcast_ref::<tonic::Status>().map(tonic::Status::code) {
                    Some(Code::OutOfRange) => {
                        tracing::error!(
                            stream = topic.name(),
                            "the saved cursor expired: events since then are lost; following from now"
                        );
                        self.state.save(topic, "").await?;
                        continue;
                    }
                    Some(Code::Unauthenticated | Code::PermissionDenied) => {
                        return Err(e).context("the notifier's token was refused");
                    }
                    _ => tracing::warn!(
                        stream = topic.name(),
                        error = format!("{e:#}"),
                        ?backoff,
                        "watch failed; retrying"
                    ),
                },
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// Runs the notifier until `stop` resolves.
pub async fn run_notifier(
    settings: NotifySettings,
    secret: &str,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = Client::lazy(&settings.connection, secret, &settings.app_name)?.tokens();
    let (stopping, stop_rx) = watch::channel(false);
    let notifier = Notifier {
        client,
        webhook: settings.webhook,
        state: State::load(settings.state_file)?,
        stop: stop_rx,
    };
    let both = async {
        tokio::try_join!(
            notifier.follow(Topic::TokenEvents),
            notifier.follow(Topic::Applications)
        )
    };
    tokio::pin!(both);
    tokio::select! {
        outcome = &mut both => return outcome.map(|_| ()),
        () = stop => {}
    }
    // Stopping: what is being delivered is abandoned, its cursor unsaved (sent again later).
    let _ = stopping.send(true);
    both.await.map(|_| ())
}
