//! What the examples share: the release server as a child process, bootstrap, request
//! metadata, and a scratch PostgreSQL database of their own.
#![allow(dead_code)]

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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
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
    let out = Command::new(binary())
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
