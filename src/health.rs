//! grpc.health.v1 as this server reports it: NOT_SERVING while it waits for its database
//! at start-up, SERVING once ready; TokenService and
//! AccountService NOT_SERVING while the database cannot be reached, and while it cannot
//! store changes (disk full, I/O error, read-only: their writes answer UNAVAILABLE with
//! STORAGE_UNWRITABLE, their reads go on); everything NOT_SERVING once draining starts.
//!
//! AuthorizeService and Envoy's Check stay SERVING through a database outage on purpose:
//! they never give a wrong decision (warm tokens from memory for `--max-staleness-secs`
//! after the last good read of the change log, UNAVAILABLE for everything else and after
//! that), and since every replica shares one database, failing their readiness would take
//! every replica out of the load balancer at once.
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::service::Service;

/// The fully qualified names of the services this server offers, as health reports them.
pub const SERVICE_NAMES: [&str; 4] = [
    "apitokens.v1.TokenService",
    "apitokens.v1.AccountService",
    "apitokens.v1.AuthorizeService",
    "envoy.service.auth.v3.Authorization",
];

/// The services that cannot answer at all without the database.
const DATABASE_SERVICES: [&str; 2] = ["apitokens.v1.TokenService", "apitokens.v1.AccountService"];

#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
}

impl Health {
    pub fn new(reporter: HealthReporter) -> Self {
        Health { reporter }
    }

    async fn set(&self, names: &[&str], status: ServingStatus) {
        for name in names {
            self.reporter.set_service_status(*name, status).await;
        }
    }

    /// Started without its database: nothing is ready, the server as a whole ("") included,
    /// so readiness probes keep the pod out of the load balancer until it is.
    pub async fn starting(&self) {
        self.set(&[""], ServingStatus::NotServing).await;
        self.set(&SERVICE_NAMES, ServingStatus::NotServing).await;
    }

    pub async fn serving(&self) {
        self.set(&SERVICE_NAMES, ServingStatus::Serving).await;
        self.set(&[""], ServingStatus::Serving).await;
    }

    /// Draining: every service, and the server as a whole ("").
    pub async fn draining(&self) {
        self.set(&[""], ServingStatus::NotServing).await;
        self.set(&SERVICE_NAMES, ServingStatus::NotServing).await;
    }

    /// Looks at the replica's view of the database every `interval` and reports the database-backed services
    /// accordingly, until the task is aborted (the server does so when draining starts).
    pub async fn track_database(self, service: Service, interval: Duration) {
        let mut shown = DatabaseSide::Ready;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let side = DatabaseSide::now(&service, interval).await;
            if side == shown {
                continue;
            }
            shown = side;
            match side {
                DatabaseSide::Ready => {
                    tracing::info!(
                        "database reachable and storing changes again: TokenService and AccountService SERVING"
                    );
                    self.set(&DATABASE_SERVICES, ServingStatus::Serving).await;
                }
                DatabaseSide::Unreachable => {
                    tracing::warn!(
                        "database unreachable: TokenService and AccountService NOT_SERVING"
                    );
                    self.set(&DATABASE_SERVICES, ServingStatus::NotServing)
                        .await;
                }
                DatabaseSide::Unwritable => {
                    tracing::warn!(
                        "the database cannot store changes (disk full, I/O error or read-only): TokenService and AccountService NOT_SERVING; reads and Authorize of known names go on"
                    );
                    self.set(&DATABASE_SERVICES, ServingStatus::NotServing)
                        .await;
                }
            }
        }
    }
}

/// What the database-backed services can do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatabaseSide {
    Ready,
    Unreachable,
    /// Reachable, but the last change it was asked to store failed for want of space (or
    /// an I/O error, or a read-only database), and none has committed since.
    Unwritable,
}

impl DatabaseSide {
    async fn now(service: &Service, probe_within: Duration) -> Self {
        // The replica's log follower reads the database every poll: it is the probe, and
        // the same breaker fails cold calls fast, so health and answers agree.
        if !service.lag().database_reachable {
            return DatabaseSide::Unreachable;
        }
        let repo = service.repository();
        if !repo.writable() {
            // Space may have come back with no write tried since: on SQLite one write
            // that changes nothing says, and marks the database writable if it commits
            // (PostgreSQL's side is writable again when a write commits: `probe_writes`).
            if let Ok(Err(e)) = tokio::time::timeout(probe_within, repo.probe_writes()).await {
                tracing::debug!(error = %crate::telemetry::chain(&e), "the write probe failed");
            }
            if !repo.writable() {
                return DatabaseSide::Unwritable;
            }
        }
        DatabaseSide::Ready
    }
}
