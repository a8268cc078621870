//! What the examples share: the release server as a child process, bootstrap, request
//! metadata, the calls they all make, percentiles, and (from the tests' harness, not copied)
//! a fresh database (SQLite, or PostgreSQL with `--postgres`), a private PostgreSQL server and
//! a TCP proxy that can be cut.
#![allow(dead_code)]

#[path = "../../tests/common/cluster.rs"]
pub mod cluster;
#[path = "../../tests/common/db.rs"]
pub mod db;
#[path = "../../tests/common/local.rs"]
pub mod local;
#[path = "../../tests/common/proxy.rs"]
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use tonic::transport::Channel;
use tonic::{Request, Response};

pub use db::TestDatabase;

pub fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let bin = target.join("release/api-tokens");
    assert!(bin.exists(), "build it first: cargo build --release");
    bin
}

pub struct Server {
    pub child: Child,
    pub channel: Channel,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub async fn start(dir: &Path, database: &str, extra: &[&str]) -> Server {
        let port = free_addr().port();
        let mut child = Command::new(binary())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database,
            ])
            .args(extra)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await {
                return Server {
                    child,
                    channel,
                    port,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not start");
    }

    pub fn rss_kib(&self) -> u64 {
        status_field(self.child.id(), "VmRSS:")
            .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// A field of /proc/PID/status (`VmRSS:`, `VmHWM:`), as written there (`12345 kB`).
pub fn status_field(pid: u32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
}

/// A loopback address free a moment ago (bound, then released: a tiny race with other
/// processes, acceptable on a bench machine).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

pub fn req<T>(secret: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-circonus-auth-token", secret.parse().unwrap());
    request
        .metadata_mut()
        .insert("x-circonus-app-name", "watch-bench".parse().unwrap());
    request
}

pub fn bootstrap(dir: &Path, database: &str) -> String {
    bootstrap_with(&binary(), dir, database)
}

/// `api-tokens bootstrap --output json` with this binary; the Admin secret it prints once.
pub fn bootstrap_with(binary: &Path, dir: &Path, database: &str) -> String {
    let out = Command::new(binary)
        .args([
            "bootstrap",
            "--account",
            "bench",
            "--admin",
            "bench@example.com",
            "--output",
            "json",
        ])
        .args(["--database-url", database])
        .current_dir(dir)
        .output()
        .expect("bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    made["secret"].as_str().unwrap().to_owned()
}

/// Creates a token as `admin` on `channel`; returns its id and secret.
pub async fn create_token(
    channel: &Channel,
    admin: &str,
    message: pb::CreateTokenRequest,
) -> (String, String) {
    let made = TokenServiceClient::new(channel.clone())
        .create_token(req(admin, message))
        .await
        .expect("create token")
        .into_inner();
    (made.token.expect("token").id, made.secret)
}

/// A user token of `privilege` whose new applications get `default_app_state` (either
/// unspecified: the server's documented default).
pub fn user_token(
    privilege: pb::Privilege,
    default_app_state: pb::AppState,
) -> pb::CreateTokenRequest {
    pb::CreateTokenRequest {
        r#type: pb::TokenType::User.into(),
        privilege: privilege.into(),
        default_app_state: default_app_state.into(),
        ..Default::default()
    }
}

/// Authorize's decision for `secret` and `app_name` at Read-Only, at least as fresh as
/// `min_revision` ("" for any).
pub async fn decide(
    client: &mut AuthorizeServiceClient<Channel>,
    secret: &str,
    app_name: &str,
    min_revision: &str,
) -> pb::Decision {
    client
        .authorize(pb::AuthorizeRequest {
            token: secret.into(),
            app_name: app_name.into(),
            required_privilege: pb::Privilege::ReadOnly.into(),
            min_revision: min_revision.into(),
            ..Default::default()
        })
        .await
        .expect("authorize")
        .into_inner()
        .decision()
}

/// Retires token `id` as `admin`; the answer carries the retire's revision in its metadata.
pub async fn retire(channel: &Channel, admin: &str, id: &str) -> Response<pb::RetireTokenResponse> {
    TokenServiceClient::new(channel.clone())
        .retire_token(req(
            admin,
            pb::RetireTokenRequest {
                id: id.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("retire")
}

/// The sample at quantile `p` (0 to 1) of sorted samples, nearest rank; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What a report calls the database: "PostgreSQL" or "SQLite".
pub fn backend_name(database: &TestDatabase) -> &'static str {
    match database.postgres() {
        Some(_) => "PostgreSQL",
        None => "SQLite",
    }
}
