//! Idempotent CreateToken (AIP-155 `request_id`): a retry creates nothing more; on the
//! same server it returns the first response, secret included; after a restart it names
//! the token made; another request under the same key, or a malformed key, is refused.

use crate::common::{Backend, TestApp, bad_fields, reason, spawn_app};
use api_tokens::grpc::pb;
use tonic::{Code, Status};

fn create(request_id: &str, description: &str) -> pb::CreateTokenRequest {
    pb::CreateTokenRequest {
        r#type: pb::TokenType::User.into(),
        privilege: pb::Privilege::ReadOnly.into(),
        default_app_state: pb::AppState::Allow.into(),
        description: description.into(),
        request_id: request_id.into(),
        ..Default::default()
    }
}

async fn call(app: &TestApp, req: pb::CreateTokenRequest) -> Result<(String, String), Status> {
    let reply = app
        .tokens
        .clone()
        .create_token(app.admin.req(req))
        .await?
        .into_inner();
    Ok((reply.token.expect("token").id, reply.secret))
}

async fn token_count(app: &TestApp) -> usize {
    app.token_ids(pb::ListTokensRequest {
        page_size: 1000,
        ..Default::default()
    })
    .await
    .len()
}

on_both_backends!(
    a_retry_returns_the_first_token_and_its_secret,
    a_reused_key_with_another_request_is_invalid,
    a_malformed_key_is_invalid_and_names_the_field,
    concurrent_retries_create_one_token,
    a_retry_after_a_restart_names_the_token_and_creates_none,
);

async fn a_retry_returns_the_first_token_and_its_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = token_count(&app).await;
    let key = uuid::Uuid::new_v4().to_string();
    let first = call(&app, create(&key, "ci")).await.expect("first");
    let again = call(&app, create(&key, "ci")).await.expect("retry");
    assert_eq!(again, first, "the same token and the same secret");
    assert_eq!(token_count(&app).await, before + 1, "one token made");
    // The secret returned twice works.
    assert_eq!(
        app.authorize(&first.1, "x", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow
    );
    // Without a key, every call creates.
    let a = call(&app, create("", "ci")).await.expect("no key");
    let b = call(&app, create("", "ci")).await.expect("no key");
    assert_ne!(a.0, b.0);
    app.stop().await;
}

async fn a_reused_key_with_another_request_is_invalid(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = uuid::Uuid::new_v4().to_string();
    call(&app, create(&key, "first")).await.expect("first");
    let refused = call(&app, create(&key, "second"))
        .await
        .expect_err("reused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(bad_fields(&refused), ["request_id"]);
    // After a restart (or on another replica) too.
    let app = app.restart().await;
    let refused = call(&app, create(&key, "second"))
        .await
        .expect_err("reused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(bad_fields(&refused), ["request_id"]);
    app.stop().await;
}

async fn a_malformed_key_is_invalid_and_names_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = token_count(&app).await;
    for key in ["not-a-uuid", "12345", " "] {
        let refused = call(&app, create(key, "")).await.expect_err(key);
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(bad_fields(&refused), ["request_id"], "{key:?}");
    }
    assert_eq!(token_count(&app).await, before);
    app.stop().await;
}

async fn concurrent_retries_create_one_token(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..20 {
        let before = token_count(&app).await;
        let key = uuid::Uuid::new_v4().to_string();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (mut tokens, req) = (
                app.tokens.clone(),
                app.admin.req(create(&key, "concurrent")),
            );
            calls.spawn(async move {
                let reply = tokens.create_token(req).await?.into_inner();
                Ok::<_, Status>((reply.token.expect("token").id, reply.secret))
            });
        }
        let mut answers = Vec::new();
        while let Some(answer) = calls.join_next().await {
            answers.push(answer.expect("task").expect("every retry succeeds"));
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "round {round}: every retry gets the first response"
        );
        assert_eq!(
            token_count(&app).await,
            before + 1,
            "round {round}: one token"
        );
    }
    app.stop().await;
}

async fn a_retry_after_a_restart_names_the_token_and_creates_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = uuid::Uuid::new_v4().to_string();
    let (id, _) = call(&app, create(&key, "ci")).await.expect("first");
    let app = app.restart().await;
    let before = token_count(&app).await;
    let refused = call(&app, create(&key, "ci"))
        .await
        .expect_err("done already");
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    assert_eq!(reason(&refused), "REQUEST_ALREADY_DONE");
    assert!(refused.message().contains(&id), "{}", refused.message());
    assert_eq!(token_count(&app).await, before, "nothing more is made");
    app.stop().await;
}
