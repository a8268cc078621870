//! Durability when the database fails writes: the disk fills under SQLite, PostgreSQL's
//! backends are killed mid-transaction and its tablespace fills. Concurrent clients write
//! four kinds of writes through two server processes; every answer is counted; after a
//! restart every acknowledged write must be there. The ledger and the checks are here, the
//! scenarios in `full_disk` (SQLite) and `postgres`.
mod full_disk;
mod postgres;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{As, reason};
use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// What the clients were told: every acknowledged write, and every refusal by code and reason.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Tokens whose CreateToken answered OK: id and secret.
    pub created: Vec<(String, String)>,
    /// Tokens whose RetireToken answered OK.
    pub retired: HashSet<String>,
    /// Application states acknowledged: by SetApplicationState, or by Authorize answering
    /// ALLOW on a name's first use (the name is recorded under the token's default, Allow).
    pub apps: Vec<(String, String, pb::AppState)>,
    /// Refusals, "CODE reason", with how many.
    pub refused: BTreeMap<String, u64>,
    /// Answers that are neither an acknowledgement nor UNAVAILABLE: must stay empty.
    pub exceptions: Vec<String>,
}

impl Ledger {
    pub fn acknowledged(&self) -> usize {
        self.created.len() + self.retired.len() + self.apps.len()
    }

    pub fn refusals(&self) -> u64 {
        self.refused.values().sum()
    }

    fn refuse(&mut self, what: &str, status: &Status) {
        if status.code() == Code::Unavailable {
            let key = format!("{:?} {}", status.code(), reason(status));
            *self.refused.entry(key).or_default() += 1;
        } else {
            self.exceptions.push(format!(
                "{what}: {:?} {} {}",
                status.code(),
                reason(status),
                status.message()
            ));
        }
    }
}

pub type Shared = Arc<Mutex<Ledger>>;

/// One client writing `rounds` rounds, or until `stop`: create a token, use a new name on it
/// (Authorize), deny another name on it (SetApplicationState), retire every other token. A
/// refusal skips to the next step; a failed create skips the round.
pub async fn writer(
    channel: Channel,
    admin: As,
    name: String,
    ledger: Shared,
    rounds: u64,
    stop: Arc<AtomicBool>,
) {
    let mut tokens = TokenServiceClient::new(channel.clone());
    let mut authorize = AuthorizeServiceClient::new(channel);
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    let mut i = 0u64;
    while i < rounds && !stop.load(Ordering::Relaxed) {
        i += 1;
        let create = pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            default_app_state: pb::AppState::Allow.into(),
            description: format!("{name}-{i}"),
            ..Default::default()
        };
        let (id, secret) = match tokens.create_token(admin.req(create)).await {
            Ok(made) => {
                let made = made.into_inner();
                let id = made.token.expect("token").id;
                ledger
                    .lock()
                    .unwrap()
                    .created
                    .push((id.clone(), made.secret.clone()));
                (id, made.secret)
            }
            Err(status) => {
                ledger.lock().unwrap().refuse("CreateToken", &status);
                pause().await;
                continue;
            }
        };
        let first_use = format!("{name}-first-{i}");
        let decided = authorize
            .authorize(pb::AuthorizeRequest {
                token: secret.clone(),
                app_name: first_use.clone(),
                ..Default::default()
            })
            .await;
        match decided.map(|d| d.into_inner().decision()) {
            Ok(pb::Decision::Allow) => {
                ledger
                    .lock()
                    .unwrap()
                    .apps
                    .push((id.clone(), first_use, pb::AppState::Allow))
            }
            Ok(other) => ledger
                .lock()
                .unwrap()
                .exceptions
                .push(format!("Authorize of a new name on a new token: {other:?}")),
            Err(status) => ledger.lock().unwrap().refuse("Authorize", &status),
        }
        let denied = format!("{name}-denied-{i}");
        let set = pb::SetApplicationStateRequest {
            token_id: id.clone(),
            name: denied.clone(),
            state: pb::AppState::Deny.into(),
            ..Default::default()
        };
        match tokens.set_application_state(admin.req(set)).await {
            Ok(_) => ledger
                .lock()
                .unwrap()
                .apps
                .push((id.clone(), denied, pb::AppState::Deny)),
            Err(status) => ledger
                .lock()
                .unwrap()
                .refuse("SetApplicationState", &status),
        }
        if i.is_multiple_of(2) {
            let retire = pb::RetireTokenRequest {
                id: id.clone(),
                ..Default::default()
            };
            match tokens.retire_token(admin.req(retire)).await {
                Ok(_) => {
                    ledger.lock().unwrap().retired.insert(id);
                }
                Err(status) => ledger.lock().unwrap().refuse("RetireToken", &status),
            }
        }
    }
}

/// Writers on each server, `per_server` each, for `rounds` rounds or until `stop` is set;
/// `phase` tells their names apart.
pub fn start_writers(
    servers: &[Channel],
    per_server: usize,
    rounds: u64,
    phase: &str,
    admin: &As,
    ledger: &Shared,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut writers = Vec::new();
    for (s, channel) in servers.iter().enumerate() {
        for w in 0..per_server {
            writers.push(tokio::spawn(writer(
                channel.clone(),
                admin.clone(),
                format!("{phase}s{s}w{w}"),
                ledger.clone(),
                rounds,
                stop.clone(),
            )));
        }
    }
    writers
}

/// Waits until `done` holds of the ledger, for at most `within`; fails the test with `what`
/// and what the clients were told if it never does.
pub async fn wait_for(
    ledger: &Shared,
    within: Duration,
    what: &str,
    done: impl Fn(&Ledger) -> bool,
) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done(&ledger.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let told = {
        let l = ledger.lock().unwrap();
        format!(
            "{} acknowledged, refusals {:?}, exceptions {:?}",
            l.acknowledged(),
            l.refused,
            &l.exceptions[..l.exceptions.len().min(5)]
        )
    };
    panic!("{what}: {told}");
}

pub async fn health(channel: &Channel, service: &str) -> ServingStatus {
    let reply = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers");
    ServingStatus::try_from(reply.into_inner().status).expect("known status")
}

/// Waits until health reports `wanted` for `service`, for at most 30 s.
pub async fn wait_health(channel: &Channel, service: &str, wanted: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(channel, service).await != wanted {
        assert!(
            Instant::now() < deadline,
            "{service} never became {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While writes fail: the admin's own token (warm) is still ALLOW, and a token is still read.
pub async fn reads_still_work(channel: &Channel, admin: &As, admin_token_id: &str) {
    let decided = AuthorizeServiceClient::new(channel.clone())
        .authorize(pb::AuthorizeRequest {
            token: admin.secret.clone(),
            app_name: admin.app.clone(),
            ..Default::default()
        })
        .await
        .expect("a warm Authorize answers while writes fail")
        .into_inner();
    assert_eq!(decided.decision(), pb::Decision::Allow);
    TokenServiceClient::new(channel.clone())
        .get_token(admin.req(pb::GetTokenRequest {
            id: admin_token_id.into(),
        }))
        .await
        .expect("GetToken answers while writes fail");
}

/// After a restart: how many acknowledged writes are missing (each printed, the first few).
pub async fn missing_after_restart(channel: &Channel, admin: &As, ledger: &Ledger) -> usize {
    let mut tokens = TokenServiceClient::new(channel.clone());
    let mut authorize = AuthorizeServiceClient::new(channel.clone());
    let mut missing = Vec::new();
    for (id, secret) in &ledger.created {
        let token = match tokens
            .get_token(admin.req(pb::GetTokenRequest { id: id.clone() }))
            .await
        {
            Ok(t) => t.into_inner().token.expect("token"),
            Err(e) => {
                missing.push(format!(
                    "created token {id}: {:?} {}",
                    e.code(),
                    e.message()
                ));
                continue;
            }
        };
        if ledger.retired.contains(id) {
            let decided = authorize
                .authorize(pb::AuthorizeRequest {
                    token: secret.clone(),
                    app_name: "after-restart".into(),
                    ..Default::default()
                })
                .await
                .expect("authorize answers")
                .into_inner()
                .decision();
            if token.state() != pb::TokenState::Retired || decided != pb::Decision::Retired {
                missing.push(format!(
                    "retire of {id}: state {:?}, Authorize {decided:?}",
                    token.state()
                ));
            }
        }
    }
    for (id, name, state) in &ledger.apps {
        let apps = tokens
            .list_applications(admin.req(pb::ListApplicationsRequest {
                token_id: id.clone(),
                ..Default::default()
            }))
            .await
            .map(|r| r.into_inner().applications)
            .unwrap_or_default();
        if !apps.iter().any(|a| &a.name == name && a.state() == *state) {
            missing.push(format!("{state:?} of {name} on {id}"));
        }
    }
    for line in missing.iter().take(10) {
        println!("lost: {line}");
    }
    missing.len()
}

/// A tmpfs of its own, unmounted when dropped (also when the test fails). Mounting needs
/// root, which CI has: without it the test fails, it does not skip.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs of `size` (mount's syntax: "3m"), with `options` appended (e.g. "uid=..").
    pub fn mount(size: &str, options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let mut all = format!("size={size}");
        if !options.is_empty() {
            all.push(',');
            all.push_str(options);
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &all, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs failed (this test needs root, as CI has): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file of `bytes` taking space on the disk, returned; remove it to free the space.
    pub fn ballast(&self, bytes: usize) -> PathBuf {
        let path = self.path().join("ballast");
        std::fs::write(&path, vec![0x5au8; bytes]).expect("ballast");
        path
    }

    /// Fills what is left of the disk with a file, returning it; remove it to free the space.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(
                    e.raw_os_error(),
                    Some(28),
                    "the disk filled up (ENOSPC): {e}"
                );
                break;
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds a file open (a process the failed test left): detach now,
            // the kernel frees it when the last file closes.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Prints what the clients saw, one line.
pub fn print_counts(what: &str, ledger: &Ledger) {
    println!(
        "{what}: {} creates, {} retires, {} application states acknowledged; refusals {:?}; {} exceptions",
        ledger.created.len(),
        ledger.retired.len(),
        ledger.apps.len(),
        ledger.refused,
        ledger.exceptions.len(),
    );
}

/// Stops the writers and waits for them.
pub async fn stop_writers(writers: Vec<tokio::task::JoinHandle<()>>, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    stop.store(false, Ordering::Relaxed);
}
