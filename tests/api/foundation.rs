//! The foundation over a real socket: health, reflection, bootstrap, migrations, start-up.

use crate::common::{Backend, TestDatabase, spawn_app};
use api_tokens::grpc::pb;
use api_tokens::storage::Repository;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

async fn health_reports_every_service_serving(backend: Backend) {
    let app = spawn_app(backend).await;
    for service in [
        "",
        "apitokens.v1.TokenService",
        "apitokens.v1.AccountService",
        "apitokens.v1.AuthorizeService",
    ] {
        let status = app
            .health
            .clone()
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    app.stop().await;
}

async fn bootstrap_token_authorizes_as_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .authorize(&app.admin.secret, "Terraform v0.12.x", pb::Privilege::Admin)
        .await;
    assert_eq!(reply.decision(), pb::Decision::Allow);
    assert_eq!(reply.http_status, 200);
    let principal = reply.principal.expect("principal on allow");
    assert_eq!(principal.token_id, app.admin_token_id);
    assert_eq!(principal.account_id, app.account_id);
    assert_eq!(principal.effective_privilege(), pb::Privilege::Admin);
    app.stop().await;
}

async fn bootstrap_refuses_an_existing_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let again = app
        .local
        .bootstrap(
            "acme",
            api_tokens::domain::UserName::parse("mallory@example.com").unwrap(),
        )
        .await
        .expect_err("second bootstrap of the same account");
    assert!(again.to_string().contains("already exists"), "{again}");
    app.stop().await;
}

async fn migrations_run_twice_without_harm(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let first = Repository::connect(&database.settings())
        .await
        .expect("first start migrates");
    first.migrate().await.expect("migrating again is a no-op");
    first.close().await;
    let second = Repository::connect(&database.settings())
        .await
        .expect("restart finds the schema current");
    second.close().await;
}

on_both_backends!(
    health_reports_every_service_serving,
    bootstrap_token_authorizes_as_admin,
    bootstrap_refuses_an_existing_account,
    migrations_run_twice_without_harm,
);

/// Two replicas starting at once on one PostgreSQL database: the advisory lock makes them take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn replicas_starting_together_on_postgres_both_migrate() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let settings = database.settings();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let settings = settings.clone();
            tokio::spawn(async move { Repository::connect(&settings).await })
        })
        .collect();
    for start in starts {
        let repo = start.await.expect("task").expect("every replica starts");
        repo.close().await;
    }
}

/// grpcurl 1.8 asks v1alpha, newer tools v1: both list our services and describe their types.
#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_services() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app(Backend::Sqlite).await;
    let expected = [
        "apitokens.v1.TokenService",
        "apitokens.v1.AccountService",
        "apitokens.v1.AuthorizeService",
    ];

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1")
        .into_inner();
    let reply = stream
        .message()
        .await
        .expect("v1 reply")
        .expect("one reply");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("v1 did not list services");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(
            names.iter().any(|n| n == name),
            "v1 lacks {name}: {names:?}"
        );
    }

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "apitokens.v1.AuthorizeService".into(),
            ),
        ),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha")
        .into_inner();
    let reply = stream
        .message()
        .await
        .expect("v1alpha reply")
        .expect("one reply");
    assert!(
        matches!(
            reply.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
        ),
        "v1alpha describes AuthorizeService"
    );
    app.stop().await;
}
