//! The server's background work, started together and stopped in the order shutdown needs:
//! database health first (so it cannot undo NOT_SERVING), then, after the drain, the change
//! log follower (with its listener) and compaction, then metrics (so the last calls are scraped), and
//! last the last-used writer (its final batch before the database closes).
//!
//! The metrics port starts first and on its own: it serves while the server waits for its
//! database; the rest starts once the database is there.
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::health::Health;
use crate::metrics::MetricsServer;
use crate::service::Service;

/// How often the change log is compacted (changes older than the retention age are deleted).
const COMPACTION_INTERVAL: Duration = Duration::from_secs(600);

pub struct Background {
    database_health: JoinHandle<()>,
    stop_workers: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    stop_last_used: oneshot::Sender<()>,
    last_used: JoinHandle<()>,
}

/// The metrics port's task.
pub struct MetricsTask {
    stop: oneshot::Sender<()>,
    task: Option<JoinHandle<()>>,
}

impl MetricsTask {
    pub fn start(service: &Service, metrics: Option<MetricsServer>) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = metrics.map(|server| {
            let (registry, repo) = (service.metrics().clone(), service.repository().clone());
            tokio::spawn(async move {
                // The metrics port logs its own failures; there is nothing more to do with them here.
                let _ = server.run(registry, repo, on_signal(stopped)).await;
            })
        });
        MetricsTask { stop, task }
    }

    pub async fn finish(self) {
        let _ = self.stop.send(());
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

async fn on_signal(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

impl Background {
    pub fn start(service: &Service, health: &Health, check_every: Duration) -> Self {
        let (stop_workers, workers_stopped) = watch::channel(false);
        let stopped = || {
            let mut rx = workers_stopped.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let workers = vec![
            tokio::spawn(service.clone().run_replica(stopped())),
            tokio::spawn(
                service
                    .clone()
                    .run_event_compaction(COMPACTION_INTERVAL, stopped()),
            ),
            tokio::spawn(service.clone().run_approval_sweeper(stopped())),
            tokio::spawn(service.clone().run_notice_sweeper(stopped())),
        ];
        let (stop_last_used, last_used_stopped) = oneshot::channel();
        Background {
            database_health: tokio::spawn(
                health.clone().track_database(service.clone(), check_every),
            ),
            stop_workers,
            workers,
            stop_last_used,
            last_used: tokio::spawn(
                service
                    .clone()
                    .run_last_used_writer(on_signal(last_used_stopped)),
            ),
        }
    }

    /// Stops the database health check; call before reporting NOT_SERVING for the drain.
    pub async fn stop_health(&mut self) {
        self.database_health.abort();
        let _ = (&mut self.database_health).await;
    }

    /// Stops everything else, in order, once the drain is over.
    pub async fn finish(self, metrics: MetricsTask) {
        let _ = self.stop_workers.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        metrics.finish().await;
        let _ = self.stop_last_used.send(());
        let _ = self.last_used.await;
    }
}
