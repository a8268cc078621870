//! The real servers a history runs on (one on SQLite; two replicas sharing one PostgreSQL), and
//! each step sent to them as a real gRPC call, its answer read back into the model's terms.
use std::collections::HashSet;
use std::sync::Mutex;

use api_tokens::grpc::pb::account_service_client::AccountServiceClient;
use api_tokens::grpc::pb::authorize_service_client::AuthorizeServiceClient;
use api_tokens::grpc::pb::token_service_client::TokenServiceClient;
use api_tokens::grpc::pb::{self, Privilege};
use api_tokens::grpc::{APP_HEADER, MIN_REVISION_HEADER, TOKEN_HEADER};
use api_tokens::service::{RateLimit, ServiceSettings};
use prost_types::{Duration, FieldMask, Timestamp};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::common::{Backend, Replica, Spawn, TestApp, bad_fields, connect, reason};
use crate::model::{
    Answer, AppDecision, AppView, Approval, Change, DAY, Model, PolicyChange, Presented, Refusal,
    TokenView, View,
};
use crate::steps::{APPS, Call, NAMES, Step};

/// The clients of one replica.
#[derive(Clone)]
struct Clients {
    tokens: TokenServiceClient<Channel>,
    accounts: AccountServiceClient<Channel>,
    authorize: AuthorizeServiceClient<Channel>,
}

/// One server (SQLite), or two replicas on one database (PostgreSQL).
pub struct Servers {
    pub app: TestApp,
    replicas: Vec<Clients>,
    _second: Option<Replica>,
}

impl Servers {
    pub async fn start(backend: Backend) -> Servers {
        // Histories report many leaks from one address: the limit per address is not the rule
        // under test here (tests/api/leaks.rs covers it).
        let settings = ServiceSettings {
            leak_reports: RateLimit {
                per_minute: 1_000_000,
                burst: 1_000_000,
            },
            ..ServiceSettings::default()
        };
        let app = Spawn::new(backend).service(settings).start().await;
        let first = Clients {
            tokens: app.tokens.clone(),
            accounts: app.accounts.clone(),
            authorize: app.authorize.clone(),
        };
        let mut replicas = vec![first];
        let mut second = None;
        if backend == Backend::Postgres {
            let replica = app.second_replica().await;
            let channel = connect(replica.addr).await;
            replicas.push(Clients {
                tokens: TokenServiceClient::new(channel.clone()),
                accounts: AccountServiceClient::new(channel.clone()),
                authorize: AuthorizeServiceClient::new(channel),
            });
            second = Some(replica);
        }
        Servers {
            app,
            replicas,
            _second: second,
        }
    }

    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// The change log's position now.
    pub async fn log_head(&self) -> i64 {
        self.app
            .local
            .repository()
            .log_head()
            .await
            .expect("the log's head")
    }

    /// Waits (at most 5 s) for a write behind a call to reach the change log.
    pub async fn wait_past(&self, head: i64) {
        for _ in 0..500 {
            if self.log_head().await > head {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The change log's head now: a revision that makes any replica answer exactly.
    pub async fn head(&self) -> Option<String> {
        if self.replicas.len() < 2 {
            return None;
        }
        Some(self.app.local.revision_after_write().await).filter(|r| !r.is_empty())
    }
}

/// The server's names for the model's accounts, members, tokens and secrets, by index.
#[derive(Default)]
pub struct Ids {
    pub accounts: Vec<String>,
    pub users: Vec<String>,
    pub tokens: Vec<String>,
    pub secrets: Vec<String>,
    pub page_token: String,
    pub unknown: String,
    /// A revision the next call must read at least at (after a write behind a call).
    pub revision: Option<String>,
    /// The replica the last call went to.
    pub replica: usize,
    /// The WatchTokenEvents streams opened, in the model's order.
    pub streams: Vec<Watching>,
}

/// A stream being read in the background until it ends.
pub struct Watching {
    end: oneshot::Receiver<tonic::Status>,
    task: tokio::task::JoinHandle<()>,
    /// How it ended, once seen; `None` while open.
    pub ended: Option<Refusal>,
    /// Its end (or its staying open to the history's end) was compared.
    pub compared: bool,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watching {
    /// How the stream ended, waiting for the end up to `wait` (zero: only looks).
    pub async fn end(&mut self, wait: std::time::Duration) -> Option<Refusal> {
        if self.ended.is_none() {
            let status = match tokio::time::timeout(wait, &mut self.end).await {
                Ok(Ok(status)) => Some(status),
                Ok(Err(_)) => Some(tonic::Status::ok("the stream's reader stopped")),
                Err(_) => None,
            };
            self.ended = status.map(|s| refusal(&s));
        }
        self.ended
    }
}

/// Reasons as `&'static str`, as the model has them.
fn intern(text: &str) -> &'static str {
    static SEEN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut seen = SEEN.lock().expect("interned reasons");
    let seen = seen.get_or_insert_with(HashSet::new);
    match seen.get(text) {
        Some(known) => known,
        None => {
            let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
            seen.insert(leaked);
            leaked
        }
    }
}

/// A refusal as the model states it: code and ErrorInfo reason, or the BadRequest's field.
fn refusal(status: &tonic::Status) -> Refusal {
    let mut why = reason(status);
    if why.is_empty() && status.code() == Code::InvalidArgument {
        why = bad_fields(status).join(",");
    }
    Refusal {
        code: status.code(),
        reason: intern(&why),
    }
}

fn index(ids: &[String], id: &str) -> Option<usize> {
    (!id.is_empty()).then(|| ids.iter().position(|i| i == id).unwrap_or(usize::MAX))
}

fn timestamp_in(seconds: i64) -> Timestamp {
    let t = chrono::Utc::now() + chrono::TimeDelta::seconds(seconds);
    Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

fn days(days: i64) -> Duration {
    Duration {
        seconds: days * DAY,
        nanos: 0,
    }
}

impl Ids {
    fn token_view(&self, token: &pb::Token) -> TokenView {
        TokenView {
            token: index(&self.tokens, &token.id).unwrap_or(usize::MAX),
            kind: token.r#type(),
            owner: index(&self.users, &token.owner_user_id),
            creator: index(&self.users, &token.creator_user_id),
            privilege: token.privilege(),
            effective: token.effective_privilege(),
            default_app_state: token.default_app_state(),
            description: token.description.clone(),
            retired: token.state() == pb::TokenState::Retired,
            promoted: token.promote_time.is_some(),
            rotated: token.rotate_time.is_some(),
            expires: token.expire_time.is_some(),
            overlap_running: token.previous_secret.is_some(),
        }
    }

    fn app_view(&self, app: &pb::Application) -> AppView {
        let cap = app
            .conditions
            .as_ref()
            .map(|c| c.max_privilege())
            .filter(|&p| p != Privilege::Unspecified);
        AppView {
            token: index(&self.tokens, &app.token_id).unwrap_or(usize::MAX),
            name: app.name.clone(),
            approval: Approval {
                state: app.state(),
                cap,
            },
        }
    }

    fn member(&self, member: &pb::Member) -> (usize, Privilege) {
        let m = index(&self.users, &member.user_id).unwrap_or(usize::MAX);
        (m, member.role())
    }

    fn token_id(&self, target: Option<usize>) -> String {
        target.map_or_else(|| uuid::Uuid::nil().to_string(), |t| self.tokens[t].clone())
    }

    fn user_id(&self, target: Option<usize>) -> String {
        target.map_or_else(|| uuid::Uuid::nil().to_string(), |m| self.users[m].clone())
    }

    fn secret(&self, who: Presented) -> String {
        match who {
            Presented::Secret(s) => self.secrets[s].clone(),
            Presented::Unknown => self.unknown.clone(),
            Presented::Malformed => "not-a-secret".into(),
            Presented::Nothing => String::new(),
        }
    }

    fn decision(&self, d: &AppDecision) -> pb::ApplicationDecision {
        pb::ApplicationDecision {
            token_id: self.token_id(d.token),
            name: d.name.clone(),
            state: d.state.into(),
            conditions: d.cap.map(|cap| pb::ApprovalConditions {
                max_privilege: cap.into(),
                ..Default::default()
            }),
        }
    }
}

/// The metadata of one call: credentials (unless none) and the revision to be at least at.
struct Meta<'a> {
    secret: Option<String>,
    app: &'static str,
    revision: Option<&'a str>,
}

impl Meta<'_> {
    fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let md = request.metadata_mut();
        if let Some(secret) = &self.secret {
            md.insert(
                TOKEN_HEADER,
                MetadataValue::try_from(secret.as_str()).expect("ascii"),
            );
            md.insert(APP_HEADER, MetadataValue::from_static(self.app));
        }
        if let Some(revision) = self.revision {
            md.insert(
                MIN_REVISION_HEADER,
                MetadataValue::try_from(revision).expect("ascii"),
            );
        }
        request
    }
}

fn policy_of(policy: Option<pb::AccountPolicy>) -> crate::model::Policy {
    let policy = policy.unwrap_or_default();
    crate::model::Policy {
        retire_on_reuse: policy.retire_on_reuse,
        require_expiry: policy.require_expiry,
        max_lifetime_days: policy.max_token_lifetime.map(|d| d.seconds / DAY),
    }
}

/// Runs one step on its replica and reads its answer into the model's terms, learning the ids
/// of what it made. `model` is the model before the step (for names the operator needs).
pub async fn call(
    servers: &Servers,
    ids: &mut Ids,
    model: &Model,
    step: &Step,
    revision: Option<&str>,
) -> Answer {
    let clients = &servers.replicas[step.replica % servers.replicas.len()];
    let app_name = APPS[step.app];
    let secret = ids.secret(step.who);
    let meta = Meta {
        secret: (step.who != Presented::Nothing).then(|| secret.clone()),
        app: app_name,
        revision,
    };
    let mut tokens = clients.tokens.clone();
    let mut accounts = clients.accounts.clone();
    let token_answer = |ids: &Ids, reply: Result<Option<pb::Token>, tonic::Status>| match reply {
        Ok(token) => Ok(View::Token(ids.token_view(&token.unwrap_or_default()))),
        Err(status) => Err(refusal(&status)),
    };
    match &step.call {
        Call::Authorize { required } => {
            let request = pb::AuthorizeRequest {
                token: secret.clone(),
                app_name: app_name.into(),
                required_privilege: (*required).into(),
                min_revision: revision.unwrap_or_default().into(),
                client_address: String::new(),
            };
            let reply = clients.authorize.clone().authorize(request).await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            let principal = reply.principal.as_ref().map(|p| {
                let t = index(&ids.tokens, &p.token_id).unwrap_or(usize::MAX);
                (t, p.effective_privilege())
            });
            Ok(View::Authorized(reply.decision(), principal))
        }
        Call::CreateToken {
            kind,
            privilege,
            default_app_state,
            expire_days,
        } => {
            let request = pb::CreateTokenRequest {
                r#type: (*kind).into(),
                privilege: (*privilege).into(),
                default_app_state: (*default_app_state).into(),
                expire_time: expire_days.map(|d| timestamp_in(d * DAY)),
                ..Default::default()
            };
            let reply = tokens.create_token(meta.req(request)).await;
            let reply = reply.map(|r| {
                let r = r.into_inner();
                let token = r.token.unwrap_or_default();
                ids.tokens.push(token.id.clone());
                ids.secrets.push(r.secret);
                Some(token)
            });
            token_answer(ids, reply)
        }
        Call::GetToken { target } => {
            let request = pb::GetTokenRequest {
                id: ids.token_id(*target),
            };
            let reply = tokens.get_token(meta.req(request)).await;
            token_answer(ids, reply.map(|r| r.into_inner().token))
        }
        Call::ListTokens {
            page_size,
            continued,
        } => {
            let request = pb::ListTokensRequest {
                page_size: *page_size as i32,
                page_token: if *continued {
                    ids.page_token.clone()
                } else {
                    String::new()
                },
                ..Default::default()
            };
            let reply = tokens.list_tokens(meta.req(request)).await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            if !reply.next_page_token.is_empty() {
                ids.page_token = reply.next_page_token.clone();
            }
            let views = reply.tokens.iter().map(|t| ids.token_view(t)).collect();
            Ok(View::Tokens(views, !reply.next_page_token.is_empty()))
        }
        Call::UpdateToken { target, change } => {
            let mut token = pb::Token {
                id: ids.token_id(*target),
                ..Default::default()
            };
            let field = match change {
                Change::Description(text) => {
                    token.description = text.clone();
                    "description"
                }
                Change::Privilege(p) => {
                    token.privilege = (*p).into();
                    "privilege"
                }
                Change::DefaultAppState(s) => {
                    token.default_app_state = (*s).into();
                    "default_app_state"
                }
                Change::Expiry(d) => {
                    token.expire_time = d.map(|d| timestamp_in(d * DAY));
                    "expire_time"
                }
            };
            let request = pb::UpdateTokenRequest {
                token: Some(token),
                update_mask: Some(FieldMask {
                    paths: vec![field.into()],
                }),
            };
            let reply = tokens.update_token(meta.req(request)).await;
            token_answer(ids, reply.map(|r| r.into_inner().token))
        }
        Call::RetireToken { target } => {
            let request = pb::RetireTokenRequest {
                id: ids.token_id(*target),
                validate_only: false,
            };
            let reply = tokens.retire_token(meta.req(request)).await;
            token_answer(ids, reply.map(|r| r.into_inner().token))
        }
        Call::RotateToken { target, overlap } => {
            let request = pb::RotateTokenRequest {
                id: ids.token_id(*target),
                overlap: Some(Duration {
                    seconds: *overlap,
                    nanos: 0,
                }),
                ..Default::default()
            };
            let reply = tokens.rotate_token(meta.req(request)).await;
            let reply = reply.map(|r| {
                let r = r.into_inner();
                ids.secrets.push(r.secret);
                r.token
            });
            token_answer(ids, reply)
        }
        Call::PromoteToken { target, privilege } => {
            let request = pb::PromoteTokenRequest {
                id: ids.token_id(*target),
                privilege: (*privilege).into(),
            };
            let reply = tokens.promote_token(meta.req(request)).await;
            token_answer(ids, reply.map(|r| r.into_inner().token))
        }
        Call::ListApplications { target } => {
            let request = pb::ListApplicationsRequest {
                token_id: ids.token_id(*target),
                ..Default::default()
            };
            let reply = tokens.list_applications(meta.req(request)).await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            Ok(View::Apps(
                reply.applications.iter().map(|a| ids.app_view(a)).collect(),
            ))
        }
        Call::SetApplicationState { decision } => {
            let d = ids.decision(decision);
            let request = pb::SetApplicationStateRequest {
                token_id: d.token_id,
                name: d.name,
                state: d.state,
                conditions: d.conditions,
                ..Default::default()
            };
            let reply = tokens.set_application_state(meta.req(request)).await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            Ok(View::App(
                ids.app_view(&reply.application.unwrap_or_default()),
            ))
        }
        Call::BatchSetApplicationStates { decisions } => {
            let request = pb::BatchSetApplicationStatesRequest {
                decisions: decisions.iter().map(|d| ids.decision(d)).collect(),
                ..Default::default()
            };
            let reply = tokens.batch_set_application_states(meta.req(request)).await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            let results = reply.results.iter().map(|r| match r.code {
                0 => Ok((
                    ids.app_view(&r.application.clone().unwrap_or_default()),
                    r.changed,
                )),
                code => Err(Refusal {
                    code: Code::from_i32(code),
                    reason: intern(&r.reason),
                }),
            });
            Ok(View::Batch(results.collect()))
        }
        Call::ReportLeakedSecret => {
            let request = pb::ReportLeakedSecretRequest {
                secret,
                where_found: "https://gist.example.com/model".into(),
            };
            let reply = tokens.report_leaked_secret(Request::new(request)).await;
            reply.map(|_| View::Empty).map_err(|s| refusal(&s))
        }
        Call::GetAccount => {
            let reply = accounts
                .get_account(meta.req(pb::GetAccountRequest {}))
                .await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            Ok(View::Account {
                member: reply.caller.as_ref().map(|m| ids.member(m).0),
                token: index(&ids.tokens, &reply.caller_token_id).unwrap_or(usize::MAX),
                privilege: reply.caller_privilege(),
                policy: policy_of(reply.policy),
            })
        }
        Call::ListMembers => {
            let reply = accounts
                .list_members(meta.req(pb::ListMembersRequest::default()))
                .await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            Ok(View::Members(
                reply.members.iter().map(|m| ids.member(m)).collect(),
            ))
        }
        Call::AddMember { name, role } => {
            let request = pb::AddMemberRequest {
                user_name: NAMES[*name].into(),
                role: (*role).into(),
            };
            let reply = accounts.add_member(meta.req(request)).await;
            let member = reply
                .map_err(|s| refusal(&s))?
                .into_inner()
                .member
                .unwrap_or_default();
            ids.users.push(member.user_id.clone());
            // A sign-in front end gives the new member a token: the operator's issue-token.
            let account = match step.who {
                Presented::Secret(s) => model.tokens[model.secrets[s].token].account,
                _ => 0,
            };
            issue(servers, ids, &ids.accounts[account].clone(), NAMES[*name]).await;
            let (m, role) = ids.member(&member);
            Ok(View::Member(m, role))
        }
        Call::UpdateMember { member, role } => {
            let request = pb::UpdateMemberRequest {
                user_id: ids.user_id(*member),
                role: (*role).into(),
                validate_only: false,
            };
            let reply = accounts.update_member(meta.req(request)).await;
            let member = reply
                .map_err(|s| refusal(&s))?
                .into_inner()
                .member
                .unwrap_or_default();
            let (m, role) = ids.member(&member);
            Ok(View::Member(m, role))
        }
        Call::RemoveMember { member } => {
            let request = pb::RemoveMemberRequest {
                user_id: ids.user_id(*member),
                validate_only: false,
            };
            let reply = accounts.remove_member(meta.req(request)).await;
            reply.map(|_| View::Empty).map_err(|s| refusal(&s))
        }
        Call::SetAccountPolicy { change } => {
            let mut policy = pb::AccountPolicy::default();
            let field = match change {
                PolicyChange::RetireOnReuse(on) => {
                    policy.retire_on_reuse = *on;
                    "retire_on_reuse"
                }
                PolicyChange::RequireExpiry(on) => {
                    policy.require_expiry = *on;
                    "require_expiry"
                }
                PolicyChange::MaxLifetimeDays(d) => {
                    policy.max_token_lifetime = d.map(days);
                    "max_token_lifetime"
                }
            };
            let request = pb::SetAccountPolicyRequest {
                policy: Some(policy),
                update_mask: Some(FieldMask {
                    paths: vec![field.into()],
                }),
            };
            let reply = accounts.set_account_policy(meta.req(request)).await;
            let reply = reply.map_err(|s| refusal(&s))?.into_inner();
            Ok(View::Policy(policy_of(reply.policy)))
        }
        Call::WatchTokenEvents => {
            let request = pb::WatchTokenEventsRequest::default();
            let reply = tokens.watch_token_events(meta.req(request)).await;
            let mut events = reply.map_err(|s| refusal(&s))?.into_inner();
            // Its first message, a heartbeat, says it opened; a refusal may come instead.
            let wait = std::time::Duration::from_secs(10);
            match tokio::time::timeout(wait, events.message()).await {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return Err(refusal(&tonic::Status::ok("closed at once"))),
                Ok(Err(status)) => return Err(refusal(&status)),
                Err(_) => panic!("WatchTokenEvents neither opened nor ended within 10 s"),
            }
            let (tx, end) = oneshot::channel();
            let task = tokio::spawn(async move {
                let status = loop {
                    match events.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break tonic::Status::ok("closed without a status"),
                        Err(status) => break status,
                    }
                };
                let _ = tx.send(status);
            });
            ids.streams.push(Watching {
                end,
                task,
                ended: None,
                compared: false,
            });
            Ok(View::Empty)
        }
        Call::Issue { member } => {
            let m = &model.members[*member];
            let account = ids.accounts[m.account].clone();
            issue(servers, ids, &account, &m.name).await;
            Ok(View::Empty)
        }
    }
}

/// The operator's `issue-token` for a current member: privilege their role, default Allow.
async fn issue(servers: &Servers, ids: &mut Ids, account: &str, user: &str) {
    let (token, secret) = servers
        .app
        .local
        .issue_member_token(account, user, None, api_tokens::domain::AppState::Allow)
        .await
        .expect("the operator issues a token to a current member");
    ids.tokens.push(token.id.to_string());
    ids.secrets.push(secret.expose().to_owned());
}

/// A fresh pair of accounts for one history: the model's and the server's, each with its
/// bootstrap Admin and token (tokens 0 and 1, secrets 0 and 1, members 0 and 1).
pub async fn bootstrap(servers: &Servers, model: &mut Model, ids: &mut Ids, tag: &str) {
    for side in ["a", "b"] {
        let name = format!("{tag}-{side}");
        let made = servers
            .app
            .local
            .bootstrap(
                &name,
                api_tokens::domain::UserName::parse(NAMES[0]).expect("name"),
            )
            .await
            .expect("bootstrap");
        model.bootstrap(NAMES[0]);
        ids.accounts.push(name);
        ids.users.push(made.admin.id.to_string());
        ids.tokens.push(made.token.id.to_string());
        ids.secrets.push(made.secret.expose().to_owned());
    }
    ids.unknown = uuid::Uuid::new_v4().to_string();
}
