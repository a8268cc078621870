//! Test harness: the real server on 127.0.0.1:0 with a fresh database, and typed tonic clients.
#![allow(dead_code)]

pub mod app_events;
pub mod calls;
pub mod clock;
pub mod cluster;
pub mod db;
pub mod heartbeats;
pub mod local;
pub mod process;
pub mod props;
pub mod proxy;
pub mod tls;
pub mod token_events;

use std::net::SocketAddr;
use std::time::Duration;

use api_tokens::domain::{AppState, Privilege};
use api_tokens::grpc::pb::{
    self, account_service_client::AccountServiceClient,
    authorize_service_client::AuthorizeServiceClient, token_service_client::TokenServiceClient,
};
use api_tokens::grpc::{APP_HEADER, ExtAuthzSettings, TOKEN_HEADER};
use api_tokens::operations::OperationsSettings;
use api_tokens::service::{Service, ServiceSettings};
use api_tokens::startup::{Server, ServerSettings};
use api_tokens::storage::Repository;
use tokio::sync::oneshot;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

pub use db::{Backend, TestDatabase};

/// Generates one test per backend from `async fn NAME(backend: Backend)`. The PostgreSQL
/// variant is `#[ignore]`d so `cargo test` needs no PostgreSQL; `.ci/run` runs it.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )+};
}

/// Credentials a test calls the management services with.
#[derive(Clone, Debug)]
pub struct As {
    pub secret: String,
    pub app: String,
}

impl As {
    pub fn new(secret: impl Into<String>, app: impl Into<String>) -> Self {
        As {
            secret: secret.into(),
            app: app.into(),
        }
    }

    /// Wraps a message with this caller's metadata.
    pub fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let md = request.metadata_mut();
        md.insert(
            TOKEN_HEADER,
            MetadataValue::try_from(self.secret.as_str()).expect("ascii secret"),
        );
        md.insert(
            APP_HEADER,
            MetadataValue::try_from(self.app.as_str()).expect("ascii app"),
        );
        request
    }
}

/// A running server with a database of its own.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The metrics port, when the operations settings ask for one.
    pub metrics_addr: Option<SocketAddr>,
    pub channel: Channel,
    pub tokens: TokenServiceClient<Channel>,
    pub accounts: AccountServiceClient<Channel>,
    pub authorize: AuthorizeServiceClient<Channel>,
    pub health: HealthClient<Channel>,
    /// The bootstrap Admin's token (user token, Admin, default app state Allow).
    pub admin: As,
    pub admin_token_id: String,
    pub admin_user_id: String,
    pub account_id: String,
    pub database: TestDatabase,
    /// The service straight on the test database, for what only operators do.
    pub local: Service,
    pub settings: ServerSettings,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A server on a fresh database with the default settings: the common case.
pub async fn spawn_app(backend: Backend) -> TestApp {
    Spawn::new(backend).start().await
}

/// The one way to start a test server: on a fresh database (`new`) or an existing one
/// (`on`), with whatever settings differ from the defaults; `start` bootstraps account
/// "acme" and serves on 127.0.0.1 (plaintext: the harness connects without TLS).
pub struct Spawn {
    database: Source,
    service: ServiceSettings,
    ext_authz: ExtAuthzSettings,
    operations: OperationsSettings,
}

enum Source {
    Fresh(Backend),
    Existing(TestDatabase),
}

impl Spawn {
    pub fn new(backend: Backend) -> Spawn {
        Spawn::from(Source::Fresh(backend))
    }

    pub fn on(database: TestDatabase) -> Spawn {
        Spawn::from(Source::Existing(database))
    }

    fn from(database: Source) -> Spawn {
        Spawn {
            database,
            service: ServiceSettings::default(),
            ext_authz: ExtAuthzSettings::default(),
            operations: OperationsSettings::default(),
        }
    }

    pub fn service(mut self, service: ServiceSettings) -> Spawn {
        self.service = service;
        self
    }

    pub fn ext_authz(mut self, ext_authz: ExtAuthzSettings) -> Spawn {
        self.ext_authz = ext_authz;
        self
    }

    /// The approval sweep set to an hour, so it never runs during a test: only a decision's
    /// own clock can end an approval.
    pub fn without_approval_sweep(mut self) -> Spawn {
        self.service.approval_sweep = Duration::from_secs(3600);
        self
    }

    /// A clock the test steps (`TestApp::advance`), shared by every replica it starts.
    pub fn steppable_clock(mut self) -> Spawn {
        self.service.clock = api_tokens::domain::Clock::steppable();
        self
    }

    /// A metrics port, limits and the like.
    pub fn operations(mut self, operations: OperationsSettings) -> Spawn {
        self.operations = operations;
        self
    }

    pub async fn start(self) -> TestApp {
        let database = match self.database {
            Source::Fresh(backend) => TestDatabase::create(backend).await,
            Source::Existing(database) => database,
        };
        start_app(database, self.service, self.ext_authz, self.operations).await
    }
}

async fn start_app(
    database: TestDatabase,
    service: ServiceSettings,
    ext_authz: ExtAuthzSettings,
    operations: OperationsSettings,
) -> TestApp {
    let db_settings = database.settings();
    // The set-up's own connection waits as long as a busy machine needs; the server under
    // test keeps the (perhaps short) timeout the test chose.
    let mut setup = db_settings.clone();
    setup.connect_timeout = setup.connect_timeout.max(Duration::from_secs(10));
    let repo = Repository::connect(&setup)
        .await
        .expect("connect for bootstrap");
    let local = Service::open(repo, service.clone()).await.expect("service");
    let made = local::bootstrap_acme(&local).await;
    let settings = ServerSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: db_settings,
        service,
        ext_authz,
        drain_timeout: Duration::from_secs(5),
        operations,
    };
    let running = start(settings.clone()).await;
    TestApp {
        addr: running.addr,
        metrics_addr: running.metrics_addr,
        tokens: TokenServiceClient::new(running.channel.clone()),
        accounts: AccountServiceClient::new(running.channel.clone()),
        authorize: AuthorizeServiceClient::new(running.channel.clone()),
        health: HealthClient::new(running.channel.clone()),
        channel: running.channel,
        admin: As::new(made.secret.expose(), "test-suite"),
        admin_token_id: made.token.id.to_string(),
        admin_user_id: made.admin.id.to_string(),
        account_id: made.account.id.to_string(),
        database,
        local,
        settings,
        stop: Some(running.stop),
        server: Some(running.handle),
    }
}

/// Another replica of a `TestApp`, stopped when dropped.
pub struct Replica {
    pub addr: SocketAddr,
    pub tokens: TokenServiceClient<Channel>,
    pub authorize: AuthorizeServiceClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    channel: Channel,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A server in this process on `settings`, serving until `stop` is sent (or dropped).
struct Serving {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn serve(settings: ServerSettings) -> Serving {
    let server = Server::build(settings).await.expect("server builds");
    let addr = server.local_addr().expect("bound");
    let metrics_addr = server.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Serving {
        addr,
        metrics_addr,
        stop,
        handle,
    }
}

async fn start(settings: ServerSettings) -> Running {
    let serving = serve(settings).await;
    Running {
        addr: serving.addr,
        metrics_addr: serving.metrics_addr,
        channel: connect(serving.addr).await,
        stop: serving.stop,
        handle: serving.handle,
    }
}

pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to test server")
}

impl TestApp {
    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.stop_server().await;
    }

    async fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Moves the servers' clock forward (a server started with `Spawn::steppable_clock`):
    /// expiry, overlaps and approval ends come by stepping time, not by sleeping.
    pub fn advance(&self, by: chrono::TimeDelta) {
        assert!(
            self.settings.service.clock.advance(by),
            "the server runs on the system's clock: start it with Spawn::steppable_clock"
        );
    }

    /// Now by the servers' clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.settings.service.clock.now()
    }

    /// A second server on the same database and settings: another replica, in process.
    pub async fn second_replica(&self) -> Replica {
        let running = start(self.settings.clone()).await;
        Replica {
            addr: running.addr,
            tokens: TokenServiceClient::new(running.channel.clone()),
            authorize: AuthorizeServiceClient::new(running.channel.clone()),
            stop: Some(running.stop),
        }
    }

    /// A second account on the same server: its bootstrap Admin's credentials.
    pub async fn second_account(&self, name: &str) -> As {
        let made = self
            .local
            .bootstrap(
                name,
                api_tokens::domain::UserName::parse("admin@example.com").expect("name"),
            )
            .await
            .expect("bootstrap a second account");
        As::new(made.secret.expose(), "test-suite")
    }

    /// Stops the server gracefully and starts a new one on the same database.
    pub async fn restart(mut self) -> TestApp {
        self.stop_server().await;
        let running = start(self.settings.clone()).await;
        self.addr = running.addr;
        self.metrics_addr = running.metrics_addr;
        self.tokens = TokenServiceClient::new(running.channel.clone());
        self.accounts = AccountServiceClient::new(running.channel.clone());
        self.authorize = AuthorizeServiceClient::new(running.channel.clone());
        self.health = HealthClient::new(running.channel.clone());
        self.channel = running.channel;
        self.stop = Some(running.stop);
        self.server = Some(running.handle);
        self
    }

    pub async fn authorize(
        &self,
        secret: &str,
        app: &str,
        required: pb::Privilege,
    ) -> pb::AuthorizeResponse {
        self.authorize_from(secret, app, required, "").await
    }

    /// Promotes a token to an account token as the bootstrap Admin, with `privilege`
    /// (unspecified: the server's rule).
    pub async fn promote(&self, id: &str, privilege: pb::Privilege) -> pb::Token {
        let request = pb::PromoteTokenRequest {
            id: id.into(),
            privilege: privilege.into(),
        };
        let reply = self
            .tokens
            .clone()
            .promote_token(self.admin.req(request))
            .await;
        reply.expect("promote").into_inner().token.expect("token")
    }

    /// `caller` sets a member's role.
    pub async fn set_role(
        &self,
        caller: &As,
        user_id: &str,
        role: pb::Privilege,
    ) -> Result<(), tonic::Status> {
        let request = pb::UpdateMemberRequest {
            user_id: user_id.into(),
            role: role.into(),
            ..Default::default()
        };
        let reply = self
            .accounts
            .clone()
            .update_member(caller.req(request))
            .await;
        reply.map(drop)
    }

    /// Adds a member and returns their user id.
    pub async fn add_member(&self, user_name: &str, role: pb::Privilege) -> String {
        self.accounts
            .clone()
            .add_member(self.admin.req(pb::AddMemberRequest {
                user_name: user_name.into(),
                role: role.into(),
            }))
            .await
            .expect("add member")
            .into_inner()
            .member
            .expect("member")
            .user_id
    }

    /// Creates a token as `caller`; returns (token, secret).
    pub async fn create_token(
        &self,
        caller: &As,
        token_type: pb::TokenType,
        privilege: pb::Privilege,
        default_app_state: pb::AppState,
    ) -> (pb::Token, String) {
        let kind = (token_type, privilege, default_app_state);
        create_token_on(&self.channel, caller, kind).await
    }

    /// A user token of the bootstrap Admin with Normal privilege: what most tests drive.
    pub async fn admin_user_token(&self, default_app_state: pb::AppState) -> (pb::Token, String) {
        self.create_token(
            &self.admin,
            pb::TokenType::User,
            pb::Privilege::Normal,
            default_app_state,
        )
        .await
    }

    /// An account token of `privilege` made by the bootstrap Admin, its applications allowed.
    pub async fn account_token(&self, privilege: pb::Privilege) -> (pb::Token, String) {
        let kind = (pb::TokenType::Account, privilege, pb::AppState::Allow);
        create_token_on(&self.channel, &self.admin, kind).await
    }

    /// A user token of `privilege` made by `who`, its applications allowed.
    pub async fn allowed_user_token(
        &self,
        who: &As,
        privilege: pb::Privilege,
    ) -> (pb::Token, String) {
        let kind = (pb::TokenType::User, privilege, pb::AppState::Allow);
        create_token_on(&self.channel, who, kind).await
    }

    /// The secret of a new Read-Only user token of the Admin whose new applications wait.
    pub async fn pending_read_only_token(&self) -> String {
        let kind = (
            pb::TokenType::User,
            pb::Privilege::ReadOnly,
            pb::AppState::Pending,
        );
        create_token_on(&self.channel, &self.admin, kind).await.1
    }

    /// GetInstallCommand for a token, as the bootstrap Admin.
    pub async fn install_command(&self, token_id: &str) -> pb::GetInstallCommandResponse {
        let request = pb::GetInstallCommandRequest {
            token_id: token_id.into(),
            broker_id: String::new(),
        };
        let reply = self
            .tokens
            .clone()
            .get_install_command(self.admin.req(request))
            .await;
        reply.expect("install command").into_inner()
    }

    /// A member of the given role with a user token of that privilege and default Allow,
    /// issued the way an operator (or a sign-in front end) would.
    pub async fn member_with_token(
        &self,
        user_name: &str,
        role: pb::Privilege,
    ) -> (String, As, pb::Token) {
        let user_id = self.add_member(user_name, role).await;
        let (token, secret) = self.issue_token(user_name, None).await;
        (user_id, As::new(secret, "test-suite"), token)
    }

    /// Issues a member a user token (default app state Allow) through the operator path.
    pub async fn issue_token(
        &self,
        user_name: &str,
        privilege: Option<Privilege>,
    ) -> (pb::Token, String) {
        let (token, secret) = self
            .local
            .issue_member_token("acme", user_name, privilege, AppState::Allow)
            .await
            .expect("issue member token");
        let token = self
            .tokens
            .clone()
            .get_token(self.admin.req(pb::GetTokenRequest {
                id: token.id.to_string(),
            }))
            .await
            .expect("admin sees the issued token")
            .into_inner()
            .token
            .expect("token");
        (token, secret.expose().to_owned())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Creates a token of this (type, privilege, default app state) as `caller` on the server at
/// `channel`; returns (token, secret).
pub async fn create_token_on(
    channel: &Channel,
    caller: &As,
    (token_type, privilege, default_app_state): (pb::TokenType, pb::Privilege, pb::AppState),
) -> (pb::Token, String) {
    let reply = TokenServiceClient::new(channel.clone())
        .create_token(caller.req(pb::CreateTokenRequest {
            r#type: token_type.into(),
            privilege: privilege.into(),
            default_app_state: default_app_state.into(),
            ..Default::default()
        }))
        .await
        .expect("create token")
        .into_inner();
    (reply.token.expect("token"), reply.secret)
}

/// The fields a refusal's BadRequest detail names, in its order.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    tonic_types::StatusExt::get_details_bad_request(status)
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The ErrorInfo reason of a refusal; "" when it has none.
pub fn reason(status: &tonic::Status) -> String {
    tonic_types::StatusExt::get_error_details(status)
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}
