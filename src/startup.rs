//! Assembles the server: database, services, health, reflection, layers, and graceful shutdown.
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::Context;
use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use tonic::transport::ServerTlsConfig;
use tonic::transport::server::TcpIncoming;

use crate::background::{Background, MetricsTask};
use crate::console::{ConsoleLayer, ConsoleMode};
use crate::grpc::authorize_server::authorize_service_server::AuthorizeServiceServer;
use crate::grpc::pb::{
    account_service_server::AccountServiceServer, token_service_server::TokenServiceServer,
};
use crate::grpc::{
    AccountHandler, AuthorizeHandler, ExtAuthzHandler, ExtAuthzSettings, TokenHandler, pb,
};
use crate::health::Health;
use crate::layers::{LimitSettings, Readiness, server_layers};
use crate::metrics::{MetricsServer, bind_metrics};
use crate::operations::{OperationsSettings, TlsSettings};
use crate::service::{Service, ServiceError, ServiceSettings};
use crate::storage::{
    Backend, Cause, DatabaseSettings, Repository, SchemaMode, StorageError, backend_of,
};
use crate::telemetry::chain;

/// Everything `serve` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub database: DatabaseSettings,
    pub service: ServiceSettings,
    /// How Envoy's HTTP requests map to required privileges.
    pub ext_authz: ExtAuthzSettings,
    /// How long in-flight calls may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    pub operations: OperationsSettings,
}

impl ServerSettings {
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50051));
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: Self::DEFAULT_LISTEN,
            database: DatabaseSettings::default(),
            service: ServiceSettings::default(),
            ext_authz: ExtAuthzSettings::default(),
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            operations: OperationsSettings::default(),
        }
    }
}

/// A server bound to its sockets, not yet serving; its database ready, or (PostgreSQL
/// unreachable at start-up) to be waited for while serving NOT_SERVING.
pub struct Server {
    /// Whether the database was reached and migrated while building.
    database_ready: bool,
    listener: TcpListener,
    service: Service,
    ext_authz: ExtAuthzSettings,
    drain_timeout: Duration,
    metrics: Option<MetricsServer>,
    tls: Option<ServerTlsConfig>,
    limits: LimitSettings,
    database_check_interval: Duration,
    max_connection_age: Option<Duration>,
    max_connection_age_grace: Option<Duration>,
    schema: SchemaMode,
    console: ConsoleMode,
}

impl Server {
    /// Checks the settings, binds the ports, then connects to the database and migrates (or checks the schema).
    ///
    /// A setting that cannot work (a bad URL, a busy port, an unreadable certificate, a
    /// database that refuses us) fails here, before anything is written. A PostgreSQL
    /// server that cannot be reached does not: the server starts NOT_SERVING and keeps
    /// trying (a pod started during an outage must not crash-loop).
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        let ops = &settings.operations;
        ops.limits.validate().map_err(anyhow::Error::msg)?;
        let tls = ops.tls.as_ref().map(TlsSettings::load).transpose()?;
        let url = &settings.database.url;
        let cannot_open = || format!("cannot open the database at {}", redact_url(url));
        let backend = backend_of(url)
            .map_err(anyhow::Error::msg)
            .with_context(cannot_open)?;
        // The ports first: a busy port must stop start-up before migrations run or an
        // SQLite file is created.
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let metrics = match ops.metrics_listen {
            Some(addr) => Some(bind_metrics(addr).await?),
            None => None,
        };
        let repo = Repository::open(&settings.database)
            .await
            .with_context(cannot_open)?;
        let service = Service::new(repo, settings.service);
        let database_ready = match prepare(&service, ops.schema)
            .await
            .map_err(|e| e.redacted(url))
        {
            Ok(()) => true,
            Err(e @ StorageError::Unavailable(_)) if backend == Backend::Postgres => {
                tracing::warn!(
                    error = %chain(&e),
                    "database unreachable: serving NOT_SERVING and retrying until it is"
                );
                false
            }
            Err(e) => return Err(anyhow::Error::new(e).context(cannot_open())),
        };
        Ok(Server {
            database_ready,
            listener,
            service,
            ext_authz: settings.ext_authz,
            drain_timeout: settings.drain_timeout,
            metrics,
            tls,
            limits: ops.limits,
            database_check_interval: ops.database_check_interval,
            max_connection_age: ops.max_connection_age,
            max_connection_age_grace: ops.max_connection_age_grace,
            schema: ops.schema,
            console: ops.console,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics port's address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then reports NOT_SERVING, stops accepting,
    /// and lets in-flight calls finish for at most the drain timeout.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health::new(reporter);
        let readiness = Readiness::new(self.database_ready);
        let service = self.service;
        let addr = self.listener.local_addr()?;
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let metrics = MetricsTask::start(&service, self.metrics);
        let workers = if self.database_ready {
            health.serving().await;
            Workers::Running(Background::start(
                &service,
                &health,
                self.database_check_interval,
            ))
        } else {
            health.starting().await;
            Workers::Waiting(tokio::spawn(wait_for_database(
                service.clone(),
                health.clone(),
                readiness.clone(),
                self.database_check_interval,
                self.schema,
            )))
        };

        let mut builder =
            tonic::transport::Server::builder().accept_http1(self.console.accepts_http1());
        if let Some(age) = self.max_connection_age {
            builder = builder.max_connection_age(age);
        }
        if let Some(grace) = self.max_connection_age_grace {
            builder = builder.max_connection_age_grace(grace);
        }
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .context("invalid TLS configuration")?;
        }
        let router = builder
            // Outermost: the console's files and gRPC-Web never reach the gRPC layers as
            // such; gRPC-Web calls go on below as the gRPC calls they translate to.
            .layer(ConsoleLayer::new(self.console))
            .layer(server_layers(
                service.metrics().clone(),
                self.limits,
                readiness,
            ))
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            // grpcurl 1.8 speaks only v1alpha.
            .add_service(reflection().build_v1alpha()?)
            .add_service(AuthorizeServiceServer::new(AuthorizeHandler::new(
                service.clone(),
            )))
            // Envoy ext_authz: the same decision as Authorize, for HTTP services behind a gateway.
            .add_service(AuthorizationServer::new(ExtAuthzHandler::new(
                service.clone(),
                self.ext_authz,
            )))
            .add_service(TokenServiceServer::new(TokenHandler::new(service.clone())))
            .add_service(AccountServiceServer::new(AccountHandler::new(
                service.clone(),
            )));
        let (stop_accepting, stopped_accepting) = tokio::sync::oneshot::channel::<()>();
        let mut serving = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped_accepting.await;
        }));
        tracing::info!(%addr, "serving");

        tokio::select! {
            result = &mut serving => {
                result.context("server task failed")?.context("server failed")?;
                return Ok(());
            }
            () = shutdown => {}
        }
        tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
        let mut background = match workers {
            Workers::Running(background) => Some(background),
            // Still waiting for the database: stop waiting (a finished wait hands its workers over).
            Workers::Waiting(waiting) => {
                waiting.abort();
                waiting.await.ok()
            }
        };
        if let Some(background) = &mut background {
            background.stop_health().await;
        }
        health.draining().await;
        // Watch streams never end by themselves: end them so the drain can finish.
        service.begin_shutdown();
        let _ = stop_accepting.send(());
        match tokio::time::timeout(self.drain_timeout, &mut serving).await {
            Ok(result) => result
                .context("server task failed")?
                .context("server failed")?,
            Err(_) => {
                tracing::warn!(timeout = ?self.drain_timeout, "drain timed out; closing remaining connections");
                serving.abort();
            }
        }
        match background {
            Some(background) => background.finish(metrics).await,
            None => metrics.finish().await,
        }
        service.repository().clone().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The background work: running, or waiting for the database to start it.
enum Workers {
    Running(Background),
    Waiting(tokio::task::JoinHandle<Background>),
}

/// Brings the schema up (or checks it), then reads what the service needs from the database.
async fn prepare(service: &Service, schema: SchemaMode) -> Result<(), StorageError> {
    service.repository().prepare_schema(schema).await?;
    service.prepare().await.map_err(|e| match e {
        ServiceError::Storage(e) => e,
        // Only the database can fail preparing; anything else is a bug worth stopping for.
        other => StorageError::Database(Cause::of(other)),
    })
}

/// Tries the database every `interval` until it answers and its schema is migrated, then
/// lets calls in, reports SERVING and starts the background work.
async fn wait_for_database(
    service: Service,
    health: Health,
    readiness: Readiness,
    interval: Duration,
    schema: SchemaMode,
) -> Background {
    loop {
        tokio::time::sleep(interval).await;
        match prepare(&service, schema).await {
            Ok(()) => break,
            Err(e) => tracing::warn!(error = %chain(&e), "database still unreachable; retrying"),
        }
    }
    readiness.set_ready();
    health.serving().await;
    tracing::info!("database reachable and migrated: SERVING");
    Background::start(&service, &health, interval)
}

/// Reflection over our services, the rich error details and health, so grpcurl can decode all of them.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    crate::storage::redact_url(url)
}
