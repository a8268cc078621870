//! Property-based tests against one real server: random sequences of management calls by
//! random callers never leak a token, never escalate, never answer INTERNAL.

use std::sync::{Arc, Mutex};

use crate::common::props::CodeTally;
use crate::common::{As, Backend, TestApp, spawn_app};
use api_tokens::domain::Privilege;
use api_tokens::grpc::pb;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost_types::FieldMask;
use tonic::Code;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Server level: random sequences of management calls by random callers, on one shared server.

/// One caller of the shared server, and what it is by the rules.
struct Who {
    label: &'static str,
    creds: As,
    /// The member it acts as; `None` for an account token.
    member: Option<String>,
    privilege: Privilege,
}

struct World {
    app: TestApp,
    callers: Vec<Who>,
    /// Token ids any call may target: never a caller's own token, so callers stay usable.
    targets: Mutex<Vec<String>>,
    /// Calls made, by the codes they got.
    codes: CodeTally,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        caller: usize,
        account: bool,
        privilege: i32,
    },
    Get {
        caller: usize,
        target: usize,
    },
    GetUnknown {
        caller: usize,
    },
    List {
        caller: usize,
        page_size: i32,
        token_type: i32,
        owner: Option<usize>,
    },
    RaisePrivilege {
        caller: usize,
        target: usize,
        privilege: i32,
    },
    Retire {
        caller: usize,
        target: usize,
    },
    Promote {
        caller: usize,
        target: usize,
    },
    SetApp {
        caller: usize,
        target: usize,
        state: i32,
    },
}

fn op(callers: usize) -> impl Strategy<Value = Op> {
    let c = 0..callers;
    let t = any::<usize>();
    let p = 1..=3i32;
    prop_oneof![
        3 => (c.clone(), any::<bool>(), p.clone())
            .prop_map(|(caller, account, privilege)| Op::Create { caller, account, privilege }),
        3 => (c.clone(), t).prop_map(|(caller, target)| Op::Get { caller, target }),
        1 => c.clone().prop_map(|caller| Op::GetUnknown { caller }),
        3 => (c.clone(), 0..4i32, 0..3i32, proptest::option::of(0..callers))
            .prop_map(|(caller, page_size, token_type, owner)| Op::List {
                caller, page_size, token_type, owner,
            }),
        2 => (c.clone(), t, p)
            .prop_map(|(caller, target, privilege)| Op::RaisePrivilege { caller, target, privilege }),
        1 => (c.clone(), t).prop_map(|(caller, target)| Op::Retire { caller, target }),
        1 => (c.clone(), t).prop_map(|(caller, target)| Op::Promote { caller, target }),
        1 => (c, t, 1..=3i32).prop_map(|(caller, target, state)| Op::SetApp { caller, target, state }),
    ]
}

fn privilege_of(value: i32) -> Privilege {
    match pb::Privilege::try_from(value) {
        Ok(pb::Privilege::Admin) => Privilege::Admin,
        Ok(pb::Privilege::Normal) => Privilege::Normal,
        _ => Privilege::ReadOnly,
    }
}

impl World {
    async fn new(backend: Backend) -> World {
        let app = spawn_app(backend).await;
        let mut callers = vec![Who {
            label: "Admin user",
            creds: app.admin.clone(),
            member: Some(app.admin_user_id.clone()),
            privilege: Privilege::Admin,
        }];
        // An Admin's Read-Only token is a Read-Only caller: it sees only its owner's tokens.
        let (token, secret) = app
            .issue_token("admin@example.com", Some(Privilege::ReadOnly))
            .await;
        callers.push(Who {
            label: "Admin's Read-Only token",
            creds: As::new(secret, "props"),
            member: Some(token.owner_user_id),
            privilege: Privilege::ReadOnly,
        });
        for (label, user, role, privilege) in [
            (
                "Normal user 1",
                "n1@example.com",
                pb::Privilege::Normal,
                Privilege::Normal,
            ),
            (
                "Normal user 2",
                "n2@example.com",
                pb::Privilege::Normal,
                Privilege::Normal,
            ),
            (
                "Read-Only user",
                "ro@example.com",
                pb::Privilege::ReadOnly,
                Privilege::ReadOnly,
            ),
        ] {
            let (user_id, creds, _) = app.member_with_token(user, role).await;
            callers.push(Who {
                label,
                creds,
                member: Some(user_id),
                privilege,
            });
        }
        for (label, p, privilege) in [
            ("Admin account", pb::Privilege::Admin, Privilege::Admin),
            ("Normal account", pb::Privilege::Normal, Privilege::Normal),
            (
                "Read-Only account",
                pb::Privilege::ReadOnly,
                Privilege::ReadOnly,
            ),
        ] {
            let (_, secret) = app
                .create_token(&app.admin, pb::TokenType::Account, p, pb::AppState::Allow)
                .await;
            callers.push(Who {
                label,
                creds: As::new(secret, "props"),
                member: None,
                privilege,
            });
        }
        // Targets to start with: a user token of each member and an account token.
        let mut targets = Vec::new();
        for (user, privilege) in [
            ("admin@example.com", Privilege::Normal),
            ("n1@example.com", Privilege::Normal),
            ("n2@example.com", Privilege::Normal),
            ("ro@example.com", Privilege::ReadOnly),
        ] {
            targets.push(app.issue_token(user, Some(privilege)).await.0.id);
        }
        targets.push(
            app.create_token(
                &app.admin,
                pb::TokenType::Account,
                pb::Privilege::Normal,
                pb::AppState::Allow,
            )
            .await
            .0
            .id,
        );
        World {
            app,
            callers,
            targets: Mutex::new(targets),
            codes: CodeTally::default(),
        }
    }

    fn target(&self, index: usize) -> String {
        let targets = self.targets.lock().expect("targets");
        targets[index % targets.len()].clone()
    }

    /// The one oracle for every token a caller is shown: what the rules let it see.
    fn may_see(&self, who: &Who, token: &pb::Token) -> Result<(), TestCaseError> {
        if who.privilege == Privilege::Admin {
            return Ok(());
        }
        prop_assert_eq!(
            token.r#type(),
            pb::TokenType::User,
            "{} was shown account token {}",
            who.label,
            token.id
        );
        prop_assert_eq!(
            Some(&token.owner_user_id),
            who.member.as_ref(),
            "{} was shown another member's token {}",
            who.label,
            token.id
        );
        Ok(())
    }

    /// Records the code, and refuses the ones a caller's request must never produce.
    fn code<T>(&self, op: &Op, result: &Result<T, tonic::Status>) -> Result<Code, TestCaseError> {
        let code = self.codes.count(result);
        if let Err(status) = result {
            prop_assert!(
                !matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::Unavailable
                ),
                "{op:?} answered {status:?}"
            );
        }
        Ok(code)
    }

    async fn play(&self, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut tokens = self.app.tokens.clone();
        for op in &ops {
            match op {
                Op::Create {
                    caller,
                    account,
                    privilege,
                } => {
                    let who = &self.callers[*caller];
                    let kind = if *account {
                        pb::TokenType::Account
                    } else {
                        pb::TokenType::User
                    };
                    let result = tokens
                        .create_token(who.creds.req(pb::CreateTokenRequest {
                            r#type: kind.into(),
                            privilege: *privilege,
                            default_app_state: pb::AppState::Allow.into(),
                            description: String::new(),
                            request_id: String::new(),
                            ..Default::default()
                        }))
                        .await;
                    if self.code(op, &result)? == Code::Ok {
                        let token = result.expect("ok").into_inner().token.expect("token");
                        prop_assert!(
                            privilege_of(token.privilege) <= who.privilege,
                            "{} created a token above itself: {token:?}",
                            who.label
                        );
                        self.may_see(who, &token)?;
                        self.targets.lock().expect("targets").push(token.id);
                    }
                }
                Op::Get { caller, target } => {
                    let who = &self.callers[*caller];
                    let result = tokens
                        .get_token(who.creds.req(pb::GetTokenRequest {
                            id: self.target(*target),
                        }))
                        .await;
                    if self.code(op, &result)? == Code::Ok {
                        self.may_see(who, &result.expect("ok").into_inner().token.expect("token"))?;
                    }
                }
                Op::GetUnknown { caller } => {
                    let who = &self.callers[*caller];
                    let result = tokens
                        .get_token(who.creds.req(pb::GetTokenRequest {
                            id: Uuid::new_v4().to_string(),
                        }))
                        .await;
                    prop_assert_eq!(self.code(op, &result)?, Code::NotFound);
                }
                Op::List {
                    caller,
                    page_size,
                    token_type,
                    owner,
                } => {
                    let who = &self.callers[*caller];
                    let owner_user_id = owner
                        .and_then(|o| self.callers[o].member.clone())
                        .unwrap_or_default();
                    let mut page_token = String::new();
                    loop {
                        let result = tokens
                            .list_tokens(who.creds.req(pb::ListTokensRequest {
                                page_size: *page_size,
                                page_token: page_token.clone(),
                                r#type: *token_type,
                                owner_user_id: owner_user_id.clone(),
                                state: 0,
                                expire_before: None,
                            }))
                            .await;
                        prop_assert_eq!(
                            self.code(op, &result)?,
                            Code::Ok,
                            "ListTokens always answers"
                        );
                        let page = result.expect("ok").into_inner();
                        for token in &page.tokens {
                            self.may_see(who, token)?;
                        }
                        if page.next_page_token.is_empty() {
                            break;
                        }
                        page_token = page.next_page_token;
                    }
                }
                Op::RaisePrivilege {
                    caller,
                    target,
                    privilege,
                } => {
                    let who = &self.callers[*caller];
                    let result = tokens
                        .update_token(who.creds.req(pb::UpdateTokenRequest {
                            token: Some(pb::Token {
                                id: self.target(*target),
                                privilege: *privilege,
                                ..Default::default()
                            }),
                            update_mask: Some(FieldMask {
                                paths: vec!["privilege".into()],
                            }),
                        }))
                        .await;
                    if self.code(op, &result)? == Code::Ok {
                        let token = result.expect("ok").into_inner().token.expect("token");
                        prop_assert!(
                            privilege_of(token.privilege) <= who.privilege,
                            "{} raised a token above itself: {token:?}",
                            who.label
                        );
                        self.may_see(who, &token)?;
                    }
                }
                Op::Retire { caller, target } => {
                    let who = &self.callers[*caller];
                    let result = tokens
                        .retire_token(who.creds.req(pb::RetireTokenRequest {
                            id: self.target(*target),
                            ..Default::default()
                        }))
                        .await;
                    if self.code(op, &result)? == Code::Ok {
                        prop_assert!(who.privilege != Privilege::ReadOnly);
                        self.may_see(who, &result.expect("ok").into_inner().token.expect("token"))?;
                    }
                }
                Op::Promote { caller, target } => {
                    let who = &self.callers[*caller];
                    let result = tokens
                        .promote_token(who.creds.req(pb::PromoteTokenRequest {
                            id: self.target(*target),
                            ..Default::default()
                        }))
                        .await;
                    if self.code(op, &result)? == Code::Ok {
                        prop_assert_eq!(who.privilege, Privilege::Admin, "{} promoted", who.label);
                    }
                }
                Op::SetApp {
                    caller,
                    target,
                    state,
                } => {
                    let who = &self.callers[*caller];
                    let result = tokens
                        .set_application_state(who.creds.req(pb::SetApplicationStateRequest {
                            token_id: self.target(*target),
                            name: "props-app".into(),
                            state: *state,
                            ..Default::default()
                        }))
                        .await;
                    if self.code(op, &result)? == Code::Ok {
                        prop_assert!(who.privilege != Privilege::ReadOnly);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Cases, and calls per case at most: bounded so the SQLite run stays around a second.
const SERVER_CASES: u32 = 32;
const MAX_OPS: usize = 16;

async fn random_management_calls_never_leak_or_escalate(backend: Backend) {
    let world = Arc::new(World::new(backend).await);
    let played = Arc::clone(&world);
    let strategy = proptest::collection::vec(op(world.callers.len()), 1..=MAX_OPS);
    crate::common::props::run_cases(SERVER_CASES, strategy, move |ops| {
        let world = Arc::clone(&played);
        async move { world.play(ops).await }
    })
    .await;
    world.codes.assert_reached(
        &format!("{SERVER_CASES} cases"),
        &["Ok", "NotFound", "PermissionDenied"],
    );
}

on_both_backends!(random_management_calls_never_leak_or_escalate);
