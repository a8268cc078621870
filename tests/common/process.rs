//! The real `api-tokens` binary as a child process: start, wait for SERVING, SIGTERM, read its log.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_api-tokens");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs a one-shot subcommand (bootstrap, issue-token) in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("API_TOKENS_DATABASE_URL")
        .output()
        .expect("run binary")
}

/// Runs a one-shot subcommand in `dir` with `RUST_LOG` set.
pub fn run_logging(dir: &Path, args: &[&str], rust_log: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("API_TOKENS_DATABASE_URL")
        .env("RUST_LOG", rust_log)
        .output()
        .expect("run binary")
}

/// `bootstrap` of account "acme" with Admin ops@example.com, its answer in JSON; a database
/// flag may follow.
pub const BOOTSTRAP_ACME: [&str; 7] = [
    "bootstrap",
    "--account",
    "acme",
    "--admin",
    "ops@example.com",
    "--output",
    "json",
];

/// The JSON a one-shot command printed, which must have succeeded.
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Runs `bootstrap` on the given database and returns the Admin's credentials.
pub fn bootstrap(dir: &Path, database_url: &str, app: &str) -> super::As {
    let out = run(
        dir,
        &[&BOOTSTRAP_ACME[..], &["--database-url", database_url]].concat(),
    );
    let made = json_of(&out);
    super::As::new(made["secret"].as_str().expect("secret"), app)
}

/// A running `api-tokens serve`, killed if dropped while still running.
pub struct ServerProcess {
    child: Option<Child>,
    pub port: u16,
    pub channel: Channel,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `serve` in `dir` on a free port with extra flags, and waits until it is SERVING.
    pub async fn start(dir: &Path, extra: &[&str], rust_log: &str) -> ServerProcess {
        Self::start_binary(Path::new(BIN), dir, extra, rust_log).await
    }

    /// `start`, with another build of the binary (the previous release's, say).
    pub async fn start_binary(
        binary: &Path,
        dir: &Path,
        extra: &[&str],
        rust_log: &str,
    ) -> ServerProcess {
        let port = free_port();
        let log = dir.join(format!("serve-{port}.log"));
        let child = Command::new(binary)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .current_dir(dir)
            .env_remove("API_TOKENS_DATABASE_URL")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            // A file, not a pipe: nobody reads a pipe while the server runs, and a full one would block it.
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn serve");
        let channel = wait_serving(port).await;
        ServerProcess {
            child: Some(child),
            port,
            channel,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no drain, no flush, as in a crash or an OOM kill.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the whole log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let status = child.wait().expect("wait");
        (
            status,
            std::fs::read_to_string(&self.log).expect("read log"),
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wait_serving(port: u16) -> Channel {
    for _ in 0..400 {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect()
            .await
        {
            let status = HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32) {
                return channel;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on port {port} never became SERVING");
}
