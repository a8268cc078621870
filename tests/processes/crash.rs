//! Crash safety: the real binary is killed with SIGKILL while clients create tokens, retire
//! them and approve applications; after a restart every acknowledged write is there, and
//! every acknowledged approval has its event in the log.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::process::{ServerProcess, bootstrap};
use crate::common::{As, Backend, TestDatabase};
use api_tokens::grpc::pb::{self, token_service_client::TokenServiceClient};
use tonic::transport::Channel;

#[derive(Default)]
struct Acknowledged {
    created: Vec<String>,
    retired: HashSet<String>,
    approved: Vec<(String, String)>,
}

/// One client's loop: create a token, approve an application on it, retire every other one.
/// Only answers that came back count as acknowledged; the loop ends when the server dies.
async fn client(channel: Channel, admin: As, worker: usize, acked: Arc<Mutex<Acknowledged>>) {
    let mut tokens = TokenServiceClient::new(channel);
    for i in 0.. {
        let request = pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            default_app_state: pb::AppState::Pending.into(),
            description: format!("w{worker}-{i}"),
            ..Default::default()
        };
        let Ok(created) = tokens.create_token(admin.req(request)).await else {
            return;
        };
        let id = created.into_inner().token.expect("token").id;
        acked.lock().unwrap().created.push(id.clone());
        let name = format!("app-{worker}-{i}");
        let approve = pb::SetApplicationStateRequest {
            token_id: id.clone(),
            name: name.clone(),
            state: pb::AppState::Allow.into(),
            ..Default::default()
        };
        if tokens
            .set_application_state(admin.req(approve))
            .await
            .is_err()
        {
            return;
        }
        acked.lock().unwrap().approved.push((id.clone(), name));
        if i % 2 == 0 {
            if tokens
                .retire_token(admin.req(pb::RetireTokenRequest {
                    id: id.clone(),
                    ..Default::default()
                }))
                .await
                .is_err()
            {
                return;
            }
            acked.lock().unwrap().retired.insert(id);
        }
    }
}

async fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = database.url.clone();
    let admin = bootstrap(dir.path(), &url, "crash-test");
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let flags = ["--database-url", url.as_str()];
    // Kill points spread over each round, different every round.
    for (round, kill_after_ms) in [120u64, 260, 75, 190, 330].into_iter().enumerate() {
        let server = ServerProcess::start(dir.path(), &flags, "warn").await;
        let created_before = acked.lock().unwrap().created.len();
        let workers: Vec<_> = (0..4)
            .map(|w| {
                tokio::spawn(client(
                    server.channel.clone(),
                    admin.clone(),
                    round * 10 + w,
                    acked.clone(),
                ))
            })
            .collect();
        // Real work in every round, however slow the machine: a few acknowledged creates
        // first, then the kill point of this round.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().created.len() < created_before + 4
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        server.kill();
        for worker in workers {
            worker.await.expect("client task");
        }
    }

    let server = ServerProcess::start(dir.path(), &flags, "warn").await;
    let mut tokens = TokenServiceClient::new(server.channel.clone());
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.created.len() >= 20,
        "the rounds did real work ({} creates)",
        acked.created.len()
    );
    for id in &acked.created {
        let token = tokens
            .get_token(admin.req(pb::GetTokenRequest { id: id.clone() }))
            .await
            .unwrap_or_else(|e| panic!("acknowledged token {id} lost: {e}"))
            .into_inner()
            .token
            .expect("token");
        if acked.retired.contains(id) {
            assert_eq!(
                token.state(),
                pb::TokenState::Retired,
                "acknowledged retire of {id} lost"
            );
        }
    }
    for (id, name) in &acked.approved {
        let apps = tokens
            .list_applications(admin.req(pb::ListApplicationsRequest {
                token_id: id.clone(),
                ..Default::default()
            }))
            .await
            .expect("list")
            .into_inner()
            .applications;
        assert!(
            apps.iter()
                .any(|a| &a.name == name && a.state() == pb::AppState::Allow),
            "acknowledged approval of {name} lost"
        );
        let events = database
            .count(&format!("SELECT COUNT(*) FROM app_events WHERE app_name = '{name}' AND kind = 'state_changed'"))
            .await;
        assert_eq!(events, 1, "the approval of {name} has exactly one event");
    }
    println!(
        "{} creates, {} approvals, {} retires acknowledged across 5 SIGKILLs: none lost",
        acked.created.len(),
        acked.approved.len(),
        acked.retired.len()
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}

on_both_backends!(acknowledged_writes_survive_sigkill);
