//! Microbenchmarks of the decision: the pure rule (`domain::decide`), the address check with
//! 16 ranges, the rule with a token's ranges and an approval's conditions, secret parsing and
//! digest, and `Service::authorize` in process on a temporary SQLite database for a known
//! token and app (the warm path every Authorize and ext_authz Check takes), plain, with
//! 16 token ranges and a conditional approval, and for an expiring token rotated with an
//! overlap (its new secret and its old one).
//!
//! `cargo bench --bench decision`; docs/BENCHMARKS.md has the figures.
use std::hint::black_box;
use std::time::Duration;

use std::net::IpAddr;

use api_tokens::domain::{
    AddressRanges, AppName, AppState, Call, Conditions, OwnerStatus, Privilege, Rotation, Secret,
    TokenGrant, TokenType, UserName, decide, decide_with,
};
use api_tokens::service::{Credentials, NewTokenRequest, RotateRequest, Service, ServiceSettings};
use api_tokens::storage::{AppDecision, DatabaseSettings, Repository};
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
        bound_ranges: AddressRanges::default(),
        expires_at: None,
        secret: api_tokens::domain::SecretUse::Current,
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

    // 16 ranges, the client in the last: the whole list is scanned.
    let ranges = sixteen_ranges();
    let client: IpAddr = "10.15.200.7".parse().expect("address");
    c.bench_function("address check, 16 ranges (match in the last)", |b| {
        b.iter(|| black_box(&ranges).contains(black_box(client)))
    });
    let outsider: IpAddr = "192.168.1.1".parse().expect("address");
    c.bench_function("address check, 16 ranges (no match)", |b| {
        b.iter(|| black_box(&ranges).contains(black_box(outsider)))
    });

    let bound = TokenGrant {
        bound_ranges: ranges.clone(),
        ..grant.clone()
    };
    let conditions = Conditions {
        until: Some(chrono::Utc::now() + chrono::TimeDelta::days(30)),
        max_privilege: Some(Privilege::ReadOnly),
        client_ranges: ranges.clone(),
    };
    let call = Call {
        required: Privilege::ReadOnly,
        client: Some(client),
        now: chrono::Utc::now(),
    };
    c.bench_function("domain::decide_with (16 token ranges + conditions)", |b| {
        b.iter(|| {
            decide_with(
                black_box(&bound),
                black_box(AppState::Allow),
                black_box(Some(&conditions)),
                black_box(&call),
            )
        })
    });

    let presented = Secret::generate().expose().to_ascii_uppercase();
    c.bench_function("Secret::parse + digest", |b| {
        b.iter(|| Secret::parse(black_box(&presented)).map(|secret| secret.digest()))
    });
    // What a warm Authorize hashes now (the cache's key) against what it hashed before
    // (SHA-256, with the CPU's SHA extensions when it has them): docs/BENCHMARKS.md.
    let secret = Secret::generate();
    c.bench_function("SHA-256 of a secret", |b| {
        b.iter(|| black_box(&secret).digest())
    });
    let keyed = siphasher::sip128::SipHasher24::new_with_key(&[7; 16]);
    c.bench_function("SipHash-2-4-128 of a secret (the cache's key)", |b| {
        b.iter(|| keyed.hash(black_box(&secret).as_bytes()))
    });
}

fn sixteen_ranges() -> AddressRanges {
    let ranges: Vec<String> = (0..16).map(|i| format!("10.{i}.0.0/16")).collect();
    AddressRanges::parse(&ranges).expect("ranges")
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
    let client: IpAddr = "10.15.200.7".parse().expect("address");
    let caller = runtime
        .block_on(service.authenticate(&Credentials {
            secret: secret.clone(),
            app: app.clone(),
            client: None,
        }))
        .expect("the bench's caller");
    let (bound_secret, bound_app) = runtime.block_on(async {
        let (view, bound_secret) = service
            .create_token(
                &caller,
                normal_user_token(AppState::Pending, sixteen_ranges(), None),
            )
            .await
            .expect("a bound token");
        let bound_app = AppName::parse("terraform").expect("app name");
        service
            .set_application_state(
                &caller,
                AppDecision {
                    token_id: view.token.id,
                    name: bound_app.clone(),
                    state: AppState::Allow,
                    conditions: Some(Conditions {
                        until: Some(chrono::Utc::now() + chrono::TimeDelta::days(30)),
                        max_privilege: Some(Privilege::ReadOnly),
                        client_ranges: sixteen_ranges(),
                    }),
                },
                None,
            )
            .await
            .expect("a conditional approval");
        let first = service
            .authorize_from(&bound_secret, &bound_app, Privilege::ReadOnly, Some(client))
            .await
            .expect("authorize");
        assert!(first.decision.is_allow());
        (bound_secret, bound_app)
    });

    c.bench_function("Service::authorize (warm, SQLite)", |b| {
        b.to_async(&runtime).iter(|| async {
            service
                .authorize(black_box(&secret), black_box(&app), Privilege::ReadOnly)
                .await
                .map(|outcome| outcome.decision)
        })
    });

    let queries_before = service.repository().query_count();
    c.bench_function(
        "Service::authorize_from (warm, 16 token ranges + conditional approval, SQLite)",
        |b| {
            b.to_async(&runtime).iter(|| async {
                service
                    .authorize_from(
                        black_box(&bound_secret),
                        black_box(&bound_app),
                        Privilege::ReadOnly,
                        Some(client),
                    )
                    .await
                    .map(|outcome| outcome.decision)
            })
        },
    );
    // The replica's follower is not running here: a warm decision with ranges and conditions
    // must have sent no statement at all.
    assert_eq!(
        service.repository().query_count(),
        queries_before,
        "a warm Authorize with ranges and conditions touches no database"
    );

    // A token with an expiry, rotated with an overlap: its old secret and its new one, each
    // judged against the clock on every call.
    let (old_secret, new_secret) = runtime.block_on(async {
        let (view, old) = service
            .create_token(
                &caller,
                normal_user_token(
                    AppState::Allow,
                    AddressRanges::default(),
                    Some(chrono::Utc::now() + chrono::TimeDelta::days(30)),
                ),
            )
            .await
            .expect("an expiring token");
        let (_, new) = service
            .rotate_token(
                &caller,
                view.token.id,
                RotateRequest {
                    rotation: Rotation::new(chrono::TimeDelta::days(1), false).expect("overlap"),
                    expire_time: None,
                },
            )
            .await
            .expect("rotated");
        for secret in [&old, &new] {
            let first = service
                .authorize(secret, &app, Privilege::ReadOnly)
                .await
                .expect("authorize");
            assert!(first.decision.is_allow());
        }
        (old, new)
    });
    let queries_before = service.repository().query_count();
    for (name, secret) in [
        (
            "Service::authorize (warm, expiring token, new secret, SQLite)",
            &new_secret,
        ),
        (
            "Service::authorize (warm, expiring token, rotated-out secret in its overlap, SQLite)",
            &old_secret,
        ),
    ] {
        c.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                service
                    .authorize(black_box(secret), black_box(&app), Privilege::ReadOnly)
                    .await
                    .map(|outcome| outcome.decision)
            })
        });
    }
    assert_eq!(
        service.repository().query_count(),
        queries_before,
        "a warm Authorize with expiry and rotation touches no database"
    );

    runtime.block_on(service.repository().clone().close());
}

/// A Normal user token of the bench's caller.
fn normal_user_token(
    default_app_state: AppState,
    bound_ranges: AddressRanges,
    expire_time: Option<chrono::DateTime<chrono::Utc>>,
) -> NewTokenRequest {
    NewTokenRequest {
        token_type: TokenType::User,
        privilege: Privilege::Normal,
        default_app_state,
        description: Default::default(),
        request_id: None,
        bound_ranges,
        expire_time,
    }
}

criterion_group!(benches, pure_rules, service_authorize);
criterion_main!(benches);
