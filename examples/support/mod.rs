//! What the examples share: the release server as a child process, bootstrap, request
//! metadata, a scratch PostgreSQL database of their own, and (from the tests' harness, not
//! copied) a private PostgreSQL server and a TCP proxy that can be cut.
#![allow(dead_code)]

#[path = "../../tests/common/cluster.rs"]
pub mod cluster;
#[path = "../../tests/common/proxy.rs"]
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic::Request;
use tonic::transport::Channel;

pub fn binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/api-tokens");
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

/// A database of the bench's own on the given server, so nothing lands in a shared one.
pub struct ScratchDatabase {
    server_url: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create(server_url: &str) -> ScratchDatabase {
        use sea_orm::ConnectionTrait;
        let name = format!("apitokens_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(server_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let _ = admin.close().await;
        let url = api_tokens::storage::url_with_database(server_url, &name);
        ScratchDatabase {
            server_url: server_url.to_owned(),
            name,
            url,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    pub async fn drop(self) {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(self.server_url.as_str())
            .await
            .expect("PostgreSQL reachable");
        let _ = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
        let _ = admin.close().await;
    }
}
