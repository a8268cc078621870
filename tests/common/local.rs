//! The service straight on a fresh database, with no server: for counting the queries a
//! call sends, which a socket in between would only blur.
use api_tokens::domain::{AppName, Caller, Secret, UserName};
use api_tokens::service::{Credentials, Service, ServiceSettings};
use api_tokens::storage::Repository;

use super::{Backend, TestDatabase};

/// The service on a fresh database with account "acme" bootstrapped; its Admin's secret.
pub async fn local_service(backend: Backend) -> (TestDatabase, Service, Secret) {
    let database = TestDatabase::create(backend).await;
    let repo = Repository::connect(&database.settings())
        .await
        .expect("connect");
    let service = Service::open(repo, ServiceSettings::default())
        .await
        .expect("service");
    let made = service
        .bootstrap("acme", UserName::parse("admin@example.com").expect("name"))
        .await
        .expect("bootstrap");
    (database, service, made.secret)
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
