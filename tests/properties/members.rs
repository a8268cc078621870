//! Property-based tests against one real server: random sequences of member calls
//! (AccountService), Authorize calls and WatchApplications snapshots by random callers, checked
//! against a model of the account. Only Admins change members; a demoted or removed member's
//! token acts at once with what is left (no cached escalation); members and watchers see
//! exactly what the rules say, no more and no less.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::props::CodeTally;
use crate::common::{As, Backend, TestApp, spawn_app};
use api_tokens::grpc::pb;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokio_stream::StreamExt;
use tonic::Code;

/// One caller; never a target, so every caller stays usable through every sequence.
struct Caller {
    label: &'static str,
    creds: As,
    /// The member it acts as; `None` for an account token.
    member: Option<String>,
    admin: bool,
}

/// A member the sequences add, change and remove, with the user token it holds.
#[derive(Debug, Clone)]
struct Target {
    user_name: String,
    user_id: String,
    present: bool,
    role: i32,
    token_id: String,
    secret: String,
    token_privilege: i32,
    /// False once its member was removed: that token never works again.
    token_alive: bool,
    /// Whether its token has been used, so an Admin's snapshot must show its application.
    used: bool,
}

struct Model {
    targets: Vec<Target>,
    /// Every token in the database and its owner (`None` for an account token).
    owners: HashMap<String, Option<String>>,
}

struct World {
    app: TestApp,
    callers: Vec<Caller>,
    /// The members that are callers, with their fixed roles.
    fixed_members: BTreeSet<(String, i32)>,
    model: Mutex<Model>,
    codes: CodeTally,
}

#[derive(Debug, Clone)]
enum Op {
    Add {
        caller: usize,
        target: usize,
        role: i32,
    },
    Update {
        caller: usize,
        target: usize,
        role: i32,
    },
    Remove {
        caller: usize,
        target: usize,
    },
    ListMembers {
        caller: usize,
        page_size: i32,
    },
    Authorize {
        target: usize,
        required: i32,
    },
    Watch {
        caller: usize,
    },
}

const TARGETS: usize = 3;
const APP: &str = "props-app";

fn op(callers: usize) -> impl Strategy<Value = Op> {
    let (c, t, role) = (0..callers, 0..TARGETS, 1..=3i32);
    prop_oneof![
        2 => (c.clone(), t.clone(), role.clone())
            .prop_map(|(caller, target, role)| Op::Add { caller, target, role }),
        3 => (c.clone(), t.clone(), role.clone())
            .prop_map(|(caller, target, role)| Op::Update { caller, target, role }),
        1 => (c.clone(), t.clone()).prop_map(|(caller, target)| Op::Remove { caller, target }),
        1 => (c.clone(), 0..4i32)
            .prop_map(|(caller, page_size)| Op::ListMembers { caller, page_size }),
        4 => (t, role).prop_map(|(target, required)| Op::Authorize { target, required }),
        1 => c.prop_map(|caller| Op::Watch { caller }),
    ]
}

/// What UpdateMember and RemoveMember answer: Admins only, and only for a member who is there.
fn member_change_code(admin: bool, present: bool) -> Code {
    match (admin, present) {
        (false, _) => Code::PermissionDenied,
        (true, false) => Code::NotFound,
        (true, true) => Code::Ok,
    }
}

impl World {
    async fn new(backend: Backend) -> World {
        let app = spawn_app(backend).await;
        let mut owners = HashMap::new();
        owners.insert(app.admin_token_id.clone(), Some(app.admin_user_id.clone()));
        let mut callers = vec![Caller {
            label: "Admin user",
            creds: app.admin.clone(),
            member: Some(app.admin_user_id.clone()),
            admin: true,
        }];
        let mut fixed_members = BTreeSet::from([("admin@example.com".to_owned(), 3)]);
        for (label, user, role) in [
            ("Normal user", "n@example.com", pb::Privilege::Normal),
            ("Read-Only user", "ro@example.com", pb::Privilege::ReadOnly),
        ] {
            let (user_id, creds, token) = app.member_with_token(user, role).await;
            owners.insert(token.id, Some(user_id.clone()));
            fixed_members.insert((user.to_owned(), role.into()));
            callers.push(Caller {
                label,
                creds,
                member: Some(user_id),
                admin: false,
            });
        }
        for (label, privilege) in [
            ("Admin account", pb::Privilege::Admin),
            ("Normal account", pb::Privilege::Normal),
        ] {
            let (token, secret) = app.account_token(privilege).await;
            owners.insert(token.id, None);
            callers.push(Caller {
                label,
                creds: As::new(secret, "props"),
                member: None,
                admin: privilege == pb::Privilege::Admin,
            });
        }
        let mut targets = Vec::new();
        for n in 0..TARGETS {
            let user_name = format!("target{n}@example.com");
            let user_id = app.add_member(&user_name, pb::Privilege::Admin).await;
            let (token, secret) = app.issue_token(&user_name, None).await;
            owners.insert(token.id.clone(), Some(user_id.clone()));
            targets.push(Target {
                user_name,
                user_id,
                present: true,
                role: pb::Privilege::Admin.into(),
                token_id: token.id,
                secret,
                token_privilege: token.privilege,
                token_alive: true,
                used: false,
            });
        }
        World {
            app,
            callers,
            fixed_members,
            model: Mutex::new(Model { targets, owners }),
            codes: CodeTally::default(),
        }
    }

    fn target(&self, index: usize) -> Target {
        self.model.lock().expect("model").targets[index].clone()
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Target)) {
        change(&mut self.model.lock().expect("model").targets[index]);
    }

    /// Counts the code and checks it is the one the model expects.
    fn expect_code<T>(
        &self,
        op: &Op,
        result: &Result<T, tonic::Status>,
        expected: Code,
    ) -> Result<(), TestCaseError> {
        let code = self.codes.count(result);
        prop_assert_eq!(
            code,
            expected,
            "{:?} answered {:?}",
            op,
            result.as_ref().err()
        );
        Ok(())
    }

    async fn play(&self, ops: Vec<Op>) -> Result<(), TestCaseError> {
        for op in &ops {
            match *op {
                Op::Add {
                    caller,
                    target,
                    role,
                } => self.add(op, caller, target, role).await?,
                Op::Update {
                    caller,
                    target,
                    role,
                } => {
                    let (who, t) = (&self.callers[caller], self.target(target));
                    let result = self
                        .app
                        .accounts
                        .clone()
                        .update_member(who.creds.req(pb::UpdateMemberRequest {
                            user_id: t.user_id.clone(),
                            role,
                            ..Default::default()
                        }))
                        .await;
                    let expected = member_change_code(who.admin, t.present);
                    self.expect_code(op, &result, expected)?;
                    if expected == Code::Ok {
                        self.update(target, |t| t.role = role);
                    }
                }
                Op::Remove { caller, target } => {
                    let (who, t) = (&self.callers[caller], self.target(target));
                    let result = self
                        .app
                        .accounts
                        .clone()
                        .remove_member(who.creds.req(pb::RemoveMemberRequest {
                            user_id: t.user_id.clone(),
                            ..Default::default()
                        }))
                        .await;
                    let expected = member_change_code(who.admin, t.present);
                    self.expect_code(op, &result, expected)?;
                    if expected == Code::Ok {
                        self.update(target, |t| {
                            t.present = false;
                            t.token_alive = false;
                        });
                    }
                }
                Op::ListMembers { caller, page_size } => {
                    self.list_members(op, caller, page_size).await?;
                }
                Op::Authorize { target, required } => {
                    self.authorize(target, required).await?;
                }
                Op::Watch { caller } => self.watch(caller).await?,
            }
        }
        Ok(())
    }

    async fn add(
        &self,
        op: &Op,
        caller: usize,
        target: usize,
        role: i32,
    ) -> Result<(), TestCaseError> {
        let (who, t) = (&self.callers[caller], self.target(target));
        let result = self
            .app
            .accounts
            .clone()
            .add_member(who.creds.req(pb::AddMemberRequest {
                user_name: t.user_name.clone(),
                role,
            }))
            .await;
        let expected = match (who.admin, t.present) {
            (false, _) => Code::PermissionDenied,
            (true, true) => Code::AlreadyExists,
            (true, false) => Code::Ok,
        };
        self.expect_code(op, &result, expected)?;
        if let Ok(reply) = result {
            let user_id = reply.into_inner().member.expect("member").user_id;
            prop_assert_ne!(
                &user_id,
                &t.user_id,
                "a new membership, not the removed one"
            );
            // The new membership's own token; the old one stays dead.
            let (token, secret) = self.app.issue_token(&t.user_name, None).await;
            let mut model = self.model.lock().expect("model");
            model.owners.insert(token.id.clone(), Some(user_id.clone()));
            model.targets[target] = Target {
                user_id,
                present: true,
                role,
                token_id: token.id,
                secret,
                token_privilege: token.privilege,
                token_alive: true,
                used: false,
                ..t
            };
        }
        Ok(())
    }

    async fn list_members(
        &self,
        op: &Op,
        caller: usize,
        page_size: i32,
    ) -> Result<(), TestCaseError> {
        let who = &self.callers[caller];
        let mut seen = BTreeSet::new();
        let mut page_token = String::new();
        loop {
            let result = self
                .app
                .accounts
                .clone()
                .list_members(who.creds.req(pb::ListMembersRequest {
                    page_size,
                    page_token: page_token.clone(),
                }))
                .await;
            self.expect_code(op, &result, Code::Ok)?;
            let page = result.expect("ok").into_inner();
            for member in page.members {
                prop_assert!(
                    seen.insert((member.user_name.clone(), member.role)),
                    "{} was shown {} twice",
                    who.label,
                    member.user_name
                );
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let mut expected = self.fixed_members.clone();
        let model = self.model.lock().expect("model");
        for t in model.targets.iter().filter(|t| t.present) {
            expected.insert((t.user_name.clone(), t.role));
        }
        prop_assert_eq!(seen, expected, "{} listed the members", who.label);
        Ok(())
    }

    /// A target's token acts with min(token privilege, its member's role now), or not at all
    /// once the member is removed: no answer may reflect an older role.
    async fn authorize(&self, target: usize, required: i32) -> Result<(), TestCaseError> {
        let t = self.target(target);
        let required_privilege = pb::Privilege::try_from(required).expect("privilege");
        let answer = self.app.authorize(&t.secret, APP, required_privilege).await;
        let effective = t.token_privilege.min(t.role);
        let expected = if !t.token_alive {
            pb::Decision::OwnerRemoved
        } else if required <= effective {
            pb::Decision::Allow
        } else {
            pb::Decision::InsufficientPrivilege
        };
        prop_assert_eq!(
            answer.decision(),
            expected,
            "{:?} with required {}",
            t,
            required
        );
        if expected == pb::Decision::Allow {
            let principal = answer.principal.expect("principal");
            prop_assert_eq!(principal.effective_privilege, effective);
        }
        if t.token_alive {
            self.update(target, |t| t.used = true);
        }
        Ok(())
    }

    /// A snapshot of every application the caller may watch: each one's token is visible to
    /// the caller, and an Admin sees the application of every target token in use.
    async fn watch(&self, caller: usize) -> Result<(), TestCaseError> {
        let who = &self.callers[caller];
        let mut stream = self
            .app
            .tokens
            .clone()
            .watch_applications(who.creds.req(pb::WatchApplicationsRequest {
                states: vec![
                    pb::AppState::Pending.into(),
                    pb::AppState::Allow.into(),
                    pb::AppState::Deny.into(),
                ],
                ..Default::default()
            }))
            .await
            .map_err(|s| TestCaseError::fail(format!("{} cannot watch: {s:?}", who.label)))?
            .into_inner();
        let mut shown = BTreeSet::new();
        loop {
            let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .map_err(|_| TestCaseError::fail("no SnapshotEnd within 10 s"))?
                .expect("stream open")
                .map_err(|s| TestCaseError::fail(format!("watch failed: {s:?}")))?;
            match item.r#type() {
                pb::WatchEventType::SnapshotEnd => break,
                pb::WatchEventType::Snapshot => {
                    let app = item.application.expect("application");
                    shown.insert((app.token_id, app.name));
                }
                _ => {}
            }
        }
        let model = self.model.lock().expect("model");
        for (token_id, name) in &shown {
            let owner = model.owners.get(token_id).ok_or_else(|| {
                TestCaseError::fail(format!("{} was shown an unknown token", who.label))
            })?;
            prop_assert!(
                who.admin || (owner.is_some() && *owner == who.member),
                "{} was shown {name:?} of token {token_id}",
                who.label
            );
        }
        if who.admin {
            for t in model.targets.iter().filter(|t| t.used) {
                prop_assert!(
                    shown.contains(&(t.token_id.clone(), APP.to_owned())),
                    "{} missed {APP} of {}",
                    who.label,
                    t.user_name
                );
            }
        }
        Ok(())
    }
}

/// Cases, and calls per case at most: bounded so the SQLite run stays around a few seconds.
const CASES: u32 = 32;
const MAX_OPS: usize = 16;

async fn random_member_authorize_and_watch_calls_match_the_model(backend: Backend) {
    let world = Arc::new(World::new(backend).await);
    let played = Arc::clone(&world);
    let strategy = proptest::collection::vec(op(world.callers.len()), 1..=MAX_OPS);
    crate::common::props::run_cases(CASES, strategy, move |ops| {
        let world = Arc::clone(&played);
        async move { world.play(ops).await }
    })
    .await;
    world.codes.assert_reached(
        &format!("{CASES} cases of member calls"),
        &["Ok", "NotFound", "PermissionDenied", "AlreadyExists"],
    );
}

on_both_backends!(random_member_authorize_and_watch_calls_match_the_model);
