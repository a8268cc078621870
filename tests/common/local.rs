//! The service in process, without a server, on a test database with account "acme" and its
//! Admin bootstrapped: for the tests and examples that measure what the service does per
//! call. Needs nothing else of the tests' harness (`examples/support` includes it).
use api_tokens::domain::UserName;
use api_tokens::service::{Bootstrapped, Service, ServiceSettings};
use api_tokens::storage::{DatabaseSettings, Repository};

/// Account "acme" and its Admin admin@example.com, as every test and example makes them.
pub async fn bootstrap_acme(service: &Service) -> Bootstrapped {
    let admin = UserName::parse("admin@example.com").expect("name");
    service.bootstrap("acme", admin).await.expect("bootstrap")
}

/// The service on `database` with the default settings, and account "acme" bootstrapped.
pub async fn local_service(database: &DatabaseSettings) -> (Service, Bootstrapped) {
    let repo = Repository::connect(database).await.expect("connect");
    let service = Service::open(repo, ServiceSettings::default())
        .await
        .expect("service");
    let made = bootstrap_acme(&service).await;
    (service, made)
}
