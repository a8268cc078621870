//! The service straight on a fresh database, with no server: for counting the queries a
//! call sends, which a socket in between would only blur. Needs only `db` of the tests'
//! harness, so the examples include it too (`examples/support`).
use api_tokens::domain::{AppName, Caller, Secret, UserName};
use api_tokens::service::{Bootstrapped, Credentials, Service, ServiceSettings};
use api_tokens::storage::{DatabaseSettings, Repository};

use super::db::{Backend, TestDatabase};

/// The service on a fresh database with account "acme" bootstrapped; its Admin's secret.
pub async fn local_service(backend: Backend) -> (TestDatabase, Service, Secret) {
    let database = TestDatabase::create(backend).await;
    let (service, made) = service_on(&database.settings()).await;
    (database, service, made.secret)
}

/// The service on the database `settings` name, with the default service settings, and
/// account "acme" bootstrapped.
pub async fn service_on(settings: &DatabaseSettings) -> (Service, Bootstrapped) {
    let repo = Repository::connect(settings).await.expect("connect");
    let service = Service::open(repo, ServiceSettings::default())
        .await
        .expect("service");
    let made = bootstrap_acme(&service).await;
    (service, made)
}

/// Account "acme" and its Admin admin@example.com, as every test and example makes them.
pub async fn bootstrap_acme(service: &Service) -> Bootstrapped {
    let admin = UserName::parse("admin@example.com").expect("name");
    service.bootstrap("acme", admin).await.expect("bootstrap")
}

/// The bootstrap Admin as the service sees them, calling from app "admin".
pub async fn admin_caller(service: &Service, secret: Secret) -> Caller {
    service
        .authenticate(&Credentials {
            secret,
            app: AppName::parse("admin").expect("name"),
            client: None,
        })
        .await
        .expect("caller")
}
