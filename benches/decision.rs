//! Microbenchmarks of the decision: the pure rule (`domain::decide`), secret parsing and
//! digest, and `Service::authorize` in process on a temporary SQLite database for a known
//! token and app (the warm path every Authorize and ext_authz Check takes).
//!
//! `cargo bench --bench decision`; docs/BENCHMARKS.md has the figures.
use std::hint::black_box;
use std::time::Duration;

use api_tokens::domain::{
    AppName, AppState, OwnerStatus, Privilege, Secret, TokenGrant, TokenType, UserName, decide,
};
use api_tokens::service::{Service, ServiceSettings};
use api_tokens::storage::{DatabaseSettings, Repository};
use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;

fn pure_rules(c: &mut Criterion) {
    let grant = TokenGrant {
        token_id: Uuid::new_v4(),
        account_id: Uuid::new_v4(),
        token_type: TokenType::User,
        owner_id: Some(Uuid::new_v4()),
        privilege: Privilege::Admin,
        default_app_state: AppState::Allow,
        retired: false,
        owner: OwnerStatus::Member(Privilege::Normal),
    };
    c.bench_function("domain::decide", |b| {
        b.iter(|| {
            decide(
                black_box(&grant),
                black_box(AppState::Allow),
                black_box(Privilege::ReadOnly),
            )
        })
    });

    let presented = Secret::generate().expose().to_ascii_uppercase();
    c.bench_function("Secret::parse + digest", |b| {
        b.iter(|| Secret::parse(black_box(&presented)).map(|secret| secret.digest()))
    });
}

fn service_authorize(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let settings = DatabaseSettings {
        url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        max_connections: 1,
        connect_timeout: Duration::from_secs(5),
    };
    let (service, secret, app) = runtime.block_on(async {
        let repo = Repository::connect(&settings).await.expect("database");
        let service = Service::open(repo, ServiceSettings::default())
            .await
            .expect("service");
        let made = service
            .bootstrap(
                "bench",
                UserName::parse("bench@example.com").expect("user name"),
            )
            .await
            .expect("bootstrap");
        let app = AppName::parse("bench").expect("app name");
        // The first call records the app name; every measured call finds it.
        let first = service
            .authorize(&made.secret, &app, Privilege::ReadOnly)
            .await
            .expect("authorize");
        assert!(first.decision.is_allow());
        (service, made.secret, app)
    });

    c.bench_function("Service::authorize (warm, SQLite)", |b| {
        b.to_async(&runtime).iter(|| async {
            service
                .authorize(black_box(&secret), black_box(&app), Privilege::ReadOnly)
                .await
                .map(|outcome| outcome.decision)
        })
    });

    runtime.block_on(service.repository().clone().close());
}

criterion_group!(benches, pure_rules, service_authorize);
criterion_main!(benches);
