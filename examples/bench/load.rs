//! The load benchmark's client: connections, the set-up (tokens created and warmed, retried
//! while the server sheds), and the phases that keep calls in flight until a deadline.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::report::{Rpc, Tally, scrape};
use super::server::server_cpu;

/// Token creations and first uses kept in flight while setting up `--tokens`.
const SETUP_IN_FLIGHT: usize = 16;

pub async fn connect_all(addr: SocketAddr, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        // The server may still be starting: bounded retries, 10 s at most.
        let mut attempt = 0;
        let channel = loop {
            match endpoint.connect().await {
                Ok(channel) => break channel,
                Err(_) if attempt < 100 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("cannot connect to the server"),
            }
        };
        channels.push(channel);
    }
    Ok(channels)
}

pub async fn wait_serving(channel: &Channel) -> anyhow::Result<()> {
    let mut health = HealthClient::new(channel.clone());
    for _ in 0..100 {
        let reply = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if let Ok(reply) = reply
            && reply.into_inner().status == ServingStatus::Serving as i32
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("health did not report SERVING within 10 s")
}

/// Uses each request once, SETUP_IN_FLIGHT at a time, and fails unless each is allowed:
/// the first use records the application name, and the token is then in the cache.
pub async fn warm(channels: &[Channel], requests: &[pb::AuthorizeRequest]) -> anyhow::Result<()> {
    let mut calls = JoinSet::new();
    for (i, request) in requests.iter().enumerate() {
        if calls.len() >= SETUP_IN_FLIGHT
            && let Some(done) = calls.join_next().await
        {
            done??;
        }
        let client = AuthorizeServiceClient::new(channels[i % channels.len()].clone());
        let request = request.clone();
        calls.spawn(async move {
            let decision = retry_unavailable(|| {
                let (mut client, request) = (client.clone(), request.clone());
                async move { client.authorize(request).await }
            })
            .await?
            .into_inner()
            .decision();
            if decision != pb::Decision::Allow {
                bail!("a bench token is not allowed: {decision:?}");
            }
            Ok(())
        });
    }
    while let Some(done) = calls.join_next().await {
        done??;
    }
    Ok(())
}

/// Calls again after UNAVAILABLE (SQLite's one connection under the set-up's burst of
/// writes can shed calls), at most 50 times, 200 ms apart.
pub async fn retry_unavailable<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < 50 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Creates `n` Read-Only user tokens whose new applications are allowed, as the bootstrap
/// Admin, and returns their secrets.
pub async fn create_tokens(
    channels: &[Channel],
    admin_secret: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut calls = JoinSet::new();
    let mut secrets = Vec::with_capacity(n);
    for i in 0..n {
        if calls.len() >= SETUP_IN_FLIGHT
            && let Some(done) = calls.join_next().await
        {
            secrets.push(done??);
        }
        let client = TokenServiceClient::new(channels[i % channels.len()].clone());
        let message = pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            privilege: pb::Privilege::ReadOnly.into(),
            default_app_state: pb::AppState::Allow.into(),
            description: format!("bench token {i}"),
            // No idempotency key: the server would keep each first response (the secret
            // included) in memory for 24 h, and the memory figure is about cached tokens.
            // A retry after UNAVAILABLE may make a spare token, which is harmless here.
            request_id: String::new(),
            ..Default::default()
        };
        let secret: tonic::metadata::MetadataValue<_> = admin_secret.parse()?;
        calls.spawn(async move {
            let call = || {
                let mut request = tonic::Request::new(message.clone());
                let metadata = request.metadata_mut();
                metadata.insert("x-circonus-auth-token", secret.clone());
                metadata.insert(
                    "x-circonus-app-name",
                    tonic::metadata::MetadataValue::from_static("bench"),
                );
                let mut client = client.clone();
                async move { client.create_token(request).await }
            };
            anyhow::Ok(retry_unavailable(call).await?.into_inner().secret)
        });
    }
    while let Some(done) = calls.join_next().await {
        secrets.push(done??);
    }
    Ok(secrets)
}

pub struct Load {
    pub channels: Vec<Channel>,
    pub one: Arc<Vec<pb::AuthorizeRequest>>,
    pub many: Option<Arc<Vec<pb::AuthorizeRequest>>>,
    pub in_flight: usize,
    pub pid: u32,
    pub metrics: SocketAddr,
}

impl Load {
    /// Keeps `in_flight` calls of one RPC running for `duration`, spread over the connections.
    pub async fn phase(&self, rpc: Rpc, duration: Duration) -> anyhow::Result<Tally> {
        let requests = match rpc {
            Rpc::AuthorizeMany => self.many.clone().unwrap_or_else(|| self.one.clone()),
            _ => self.one.clone(),
        };
        // One counter for all callers: the tokens are called strictly in turn.
        let next = Arc::new(AtomicUsize::new(0));
        let counts_before = scrape(self.metrics).await?;
        let cpu_before = server_cpu(self.pid);
        let start = Instant::now();
        let deadline = start + duration;
        let mut total = Tally::new();
        if rpc == Rpc::Idle {
            tokio::time::sleep(duration).await;
        } else {
            let mut workers = JoinSet::new();
            for i in 0..self.in_flight {
                let channel = self.channels[i % self.channels.len()].clone();
                workers.spawn(worker(
                    rpc,
                    channel,
                    requests.clone(),
                    next.clone(),
                    deadline,
                ));
            }
            while let Some(done) = workers.join_next().await {
                if let Ok(tally) = done {
                    total.add(&tally);
                }
            }
        }
        total.elapsed = start.elapsed();
        total.server_cpu = server_cpu(self.pid).saturating_sub(cpu_before);
        total.server = scrape(self.metrics).await?.since(counts_before);
        Ok(total)
    }
}

/// One in-flight slot: call, record, call again, until the deadline.
pub async fn worker(
    rpc: Rpc,
    channel: Channel,
    requests: Arc<Vec<pb::AuthorizeRequest>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::new();
    let mut authorize = AuthorizeServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let outcome = match rpc {
            Rpc::Authorize | Rpc::AuthorizeMany => {
                let i = next.fetch_add(1, Ordering::Relaxed) % requests.len();
                authorize
                    .authorize(requests[i].clone())
                    .await
                    .map(|reply| Some(reply.into_inner().decision().as_str_name()))
            }
            Rpc::Health | Rpc::Idle => health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| None),
        };
        let took = sent.elapsed();
        match outcome {
            Ok(decision) => {
                tally
                    .latency
                    .saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
                tally.ok += 1;
                *tally.codes.entry("Ok".into()).or_default() += 1;
                if let Some(decision) = decision {
                    *tally.decisions.entry(decision.into()).or_default() += 1;
                }
            }
            Err(status) => {
                *tally
                    .codes
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
            }
        }
    }
    tally
}
