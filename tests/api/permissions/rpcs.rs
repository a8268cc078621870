//! One call per RPC of the permission matrix, by a cell's caller on a cell's target, and its
//! outcome in the matrix's words: a deliberate per-RPC table.

use super::{Cell, World};
use api_tokens::grpc::pb;
use prost_types::FieldMask;
use tonic::Code;

impl World {
    /// Runs one cell's RPC and returns the outcome in the matrix's words.
    pub(super) async fn run(&self, cell: &Cell) -> String {
        let caller = self.caller(cell.caller);
        let who = &caller.creds;
        let mut tokens = self.app.tokens.clone();
        let mut accounts = self.app.accounts.clone();
        let target = if cell.target == "-" {
            String::new()
        } else {
            self.target(caller, &cell.target).await
        };
        let code = |r: Result<(), tonic::Status>| r.map_or_else(|s| s.code(), |()| Code::Ok);
        let create = |token_type: pb::TokenType, privilege: pb::Privilege| pb::CreateTokenRequest {
            r#type: token_type.into(),
            privilege: privilege.into(),
            ..Default::default()
        };
        let outcome = match cell.rpc.as_str() {
            "GetToken" => code(
                tokens
                    .get_token(who.req(pb::GetTokenRequest { id: target }))
                    .await
                    .map(drop),
            ),
            "UpdateToken description"
            | "UpdateToken privilege to Admin"
            | "UpdateToken bound_cidrs"
            | "UpdateToken expire_time" => {
                let (token, path) = if cell.rpc.ends_with("expire_time") {
                    let at = chrono::Utc::now() + chrono::TimeDelta::days(30);
                    (
                        pb::Token {
                            id: target,
                            expire_time: Some(prost_types::Timestamp {
                                seconds: at.timestamp(),
                                nanos: 0,
                            }),
                            ..Default::default()
                        },
                        "expire_time",
                    )
                } else if cell.rpc.ends_with("bound_cidrs") {
                    (
                        pb::Token {
                            id: target,
                            bound_cidrs: vec!["127.0.0.0/8".into()],
                            ..Default::default()
                        },
                        "bound_cidrs",
                    )
                } else if cell.rpc.ends_with("description") {
                    (
                        pb::Token {
                            id: target,
                            description: "changed".into(),
                            ..Default::default()
                        },
                        "description",
                    )
                } else {
                    (
                        pb::Token {
                            id: target,
                            privilege: pb::Privilege::Admin.into(),
                            ..Default::default()
                        },
                        "privilege",
                    )
                };
                let mask = FieldMask {
                    paths: vec![path.into()],
                };
                code(
                    tokens
                        .update_token(who.req(pb::UpdateTokenRequest {
                            token: Some(token),
                            update_mask: Some(mask),
                        }))
                        .await
                        .map(drop),
                )
            }
            "RetireToken" => code(
                tokens
                    .retire_token(who.req(pb::RetireTokenRequest {
                        id: target,
                        validate_only: false,
                    }))
                    .await
                    .map(drop),
            ),
            "RetireToken validate_only" => {
                return previewed(
                    tokens
                        .retire_token(who.req(pb::RetireTokenRequest {
                            id: target,
                            validate_only: true,
                        }))
                        .await
                        .map(|r| r.into_inner().preview),
                );
            }
            "RotateToken" => code(
                tokens
                    .rotate_token(who.req(pb::RotateTokenRequest {
                        id: target,
                        ..Default::default()
                    }))
                    .await
                    .map(drop),
            ),
            "PromoteToken" => code(
                tokens
                    .promote_token(who.req(pb::PromoteTokenRequest {
                        id: target,
                        ..Default::default()
                    }))
                    .await
                    .map(drop),
            ),
            "ListApplications" => code(
                tokens
                    .list_applications(who.req(pb::ListApplicationsRequest {
                        token_id: target,
                        ..Default::default()
                    }))
                    .await
                    .map(drop),
            ),
            "SetApplicationState" | "SetApplicationState with conditions" => {
                let conditions = cell
                    .rpc
                    .ends_with("conditions")
                    .then(|| pb::ApprovalConditions {
                        max_privilege: pb::Privilege::ReadOnly.into(),
                        client_cidrs: vec!["10.0.0.0/8".into()],
                        ..Default::default()
                    });
                code(
                    tokens
                        .set_application_state(who.req(pb::SetApplicationStateRequest {
                            token_id: target,
                            name: "Grafana Translator".into(),
                            state: pb::AppState::Allow.into(),
                            conditions,
                            ..Default::default()
                        }))
                        .await
                        .map(drop),
                )
            }
            "SetApplicationState validate_only" => {
                return previewed(
                    tokens
                        .set_application_state(who.req(pb::SetApplicationStateRequest {
                            token_id: target,
                            name: "Grafana Translator".into(),
                            state: pb::AppState::Allow.into(),
                            validate_only: true,
                            ..Default::default()
                        }))
                        .await
                        .map(|r| r.into_inner().preview),
                );
            }
            "BatchSetApplicationStates" | "BatchSetApplicationStates validate_only" => {
                let validate_only = cell.rpc.ends_with("validate_only");
                let reply = tokens
                    .batch_set_application_states(who.req(pb::BatchSetApplicationStatesRequest {
                        decisions: vec![pb::ApplicationDecision {
                            token_id: target,
                            name: "Grafana Translator".into(),
                            state: pb::AppState::Allow.into(),
                            conditions: None,
                        }],
                        reason: "matrix".into(),
                        validate_only,
                    }))
                    .await;
                match reply {
                    Err(status) if validate_only => return previewed(Err(status)),
                    Err(status) => status.code(),
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        // A refused preview has no results, only its reason.
                        if validate_only && reply.preview.as_ref().is_some_and(|p| !p.permitted) {
                            return previewed(Ok(reply.preview));
                        }
                        let item = Code::from(reply.results[0].code);
                        if validate_only && item == Code::Ok {
                            return previewed(Ok(reply.preview));
                        }
                        item
                    }
                }
            }
            "GetInstallCommand" => code(
                tokens
                    .get_install_command(who.req(pb::GetInstallCommandRequest {
                        token_id: target,
                        broker_id: String::new(),
                    }))
                    .await
                    .map(drop),
            ),
            "CreateToken user, Read-Only" => code(
                tokens
                    .create_token(who.req(create(pb::TokenType::User, pb::Privilege::ReadOnly)))
                    .await
                    .map(drop),
            ),
            "CreateToken user, with expire_time" => {
                let at = chrono::Utc::now() + chrono::TimeDelta::days(7);
                let request = pb::CreateTokenRequest {
                    expire_time: Some(prost_types::Timestamp {
                        seconds: at.timestamp(),
                        nanos: 0,
                    }),
                    ..create(pb::TokenType::User, pb::Privilege::ReadOnly)
                };
                code(tokens.create_token(who.req(request)).await.map(drop))
            }
            "CreateToken user, Admin" => code(
                tokens
                    .create_token(who.req(create(pb::TokenType::User, pb::Privilege::Admin)))
                    .await
                    .map(drop),
            ),
            "CreateToken account, Read-Only" => code(
                tokens
                    .create_token(who.req(create(pb::TokenType::Account, pb::Privilege::ReadOnly)))
                    .await
                    .map(drop),
            ),
            rpc if rpc.starts_with("ListTokens sees ") => {
                let target = self.target(caller, &rpc["ListTokens sees ".len()..]).await;
                let mut seen = false;
                let mut page_token = String::new();
                loop {
                    let page = tokens
                        .list_tokens(who.req(pb::ListTokensRequest {
                            page_size: 1000,
                            page_token,
                            ..Default::default()
                        }))
                        .await
                        .expect("ListTokens always answers")
                        .into_inner();
                    seen |= page.tokens.iter().any(|t| t.id == target);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    page_token = page.next_page_token;
                }
                if seen { Code::Ok } else { Code::NotFound }
            }
            "ListAuditEvents" => code(
                tokens
                    .list_audit_events(who.req(pb::ListAuditEventsRequest::default()))
                    .await
                    .map(drop),
            ),
            "GetAccount" => code(
                accounts
                    .get_account(who.req(pb::GetAccountRequest {}))
                    .await
                    .map(drop),
            ),
            // A change that leaves every other cell as it was.
            "SetAccountPolicy" => code(
                accounts
                    .set_account_policy(who.req(pb::SetAccountPolicyRequest {
                        policy: Some(pb::AccountPolicy::default()),
                        update_mask: Some(FieldMask {
                            paths: vec!["retire_on_reuse".into()],
                        }),
                    }))
                    .await
                    .map(drop),
            ),
            "ListMembers" => code(
                accounts
                    .list_members(who.req(pb::ListMembersRequest::default()))
                    .await
                    .map(drop),
            ),
            "AddMember" => {
                let n = self
                    .victims
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                code(
                    accounts
                        .add_member(who.req(pb::AddMemberRequest {
                            user_name: format!("added-{n}@example.com"),
                            role: pb::Privilege::ReadOnly.into(),
                        }))
                        .await
                        .map(drop),
                )
            }
            "UpdateMember" | "UpdateMember validate_only" => {
                let user_id = self.victim().await;
                let validate_only = cell.rpc.ends_with("validate_only");
                let reply = accounts
                    .update_member(who.req(pb::UpdateMemberRequest {
                        user_id,
                        role: pb::Privilege::ReadOnly.into(),
                        validate_only,
                    }))
                    .await;
                if validate_only {
                    return previewed(reply.map(|r| r.into_inner().preview));
                }
                code(reply.map(drop))
            }
            "RemoveMember" | "RemoveMember validate_only" => {
                let user_id = self.victim().await;
                let validate_only = cell.rpc.ends_with("validate_only");
                let reply = accounts
                    .remove_member(who.req(pb::RemoveMemberRequest {
                        user_id,
                        validate_only,
                    }))
                    .await;
                if validate_only {
                    return previewed(reply.map(|r| r.into_inner().preview));
                }
                code(reply.map(drop))
            }
            "WatchTokenEvents" => code(
                tokens
                    .watch_token_events(who.req(pb::WatchTokenEventsRequest {
                        token_id: target,
                        ..Default::default()
                    }))
                    .await
                    .map(drop),
            ),
            rpc if rpc.starts_with("WatchTokenEvents hears of ") => {
                let mut events = tokens
                    .watch_token_events(who.req(pb::WatchTokenEventsRequest::default()))
                    .await
                    .expect("a stream of every visible token opens")
                    .into_inner();
                // The first message stands for the present: what follows is news.
                events
                    .message()
                    .await
                    .expect("open")
                    .expect("first message");
                let target = self
                    .target(caller, &rpc["WatchTokenEvents hears of ".len()..])
                    .await;
                heard_of_creation(&mut events, &target).await
            }
            "ReportLeakedSecret" => code(
                tokens
                    .report_leaked_secret(who.req(pb::ReportLeakedSecretRequest {
                        secret: uuid::Uuid::new_v4().to_string(),
                        where_found: "matrix".into(),
                    }))
                    .await
                    .map(drop),
            ),
            other => panic!("the matrix names an RPC the test does not know: {other}"),
        };
        match outcome {
            Code::Ok => "OK",
            Code::NotFound => "NOT_FOUND",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            other => panic!(
                "unexpected code {other:?} for {} / {} / {}",
                cell.rpc, cell.target, cell.caller
            ),
        }
        .to_owned()
    }
}

/// `Ok` once the stream tells of `target`'s creation; `NotFound` if it stays silent about it
/// (a second of nothing: the event, were it visible, is on its way within milliseconds).
async fn heard_of_creation(
    events: &mut tonic::Streaming<pb::WatchTokenEventsResponse>,
    target: &str,
) -> Code {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(1), events.message()).await {
            Ok(Ok(Some(event)))
                if event.r#type() == pb::TokenEventType::Created && event.token_id == target =>
            {
                return Code::Ok;
            }
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) | Ok(Err(_)) => panic!("the stream ended"),
            Err(_) => return Code::NotFound,
        }
    }
}

/// A preview's outcome in the matrix's words: `OK` when permitted, `NOT PERMITTED` when it
/// says the change would be refused, else the error's code.
fn previewed(reply: Result<Option<pb::ImpactPreview>, tonic::Status>) -> String {
    match reply {
        Ok(Some(preview)) if preview.permitted => "OK".into(),
        Ok(Some(preview)) => {
            assert!(
                preview.recently_used.is_empty() && preview.privilege_drops.is_empty(),
                "a refused preview says nothing more"
            );
            "NOT PERMITTED".into()
        }
        Ok(None) => panic!("a validate_only answer without a preview"),
        Err(status) => format!("{:?}", status.code())
            .replace("NotFound", "NOT_FOUND")
            .replace("PermissionDenied", "PERMISSION_DENIED")
            .replace("Unauthenticated", "UNAUTHENTICATED")
            .replace("FailedPrecondition", "FAILED_PRECONDITION")
            .replace("InvalidArgument", "INVALID_ARGUMENT"),
    }
}
