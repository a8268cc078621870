//! Calls many scenarios make as the bootstrap Admin, each written once: read a token, list
//! its applications, read an audit trail, retire a token, remove a member, and Authorize
//! from a client address.
use api_tokens::grpc::pb::authorize_service_client::AuthorizeServiceClient;
use api_tokens::grpc::pb::token_service_client::TokenServiceClient;
use api_tokens::grpc::{REVISION_HEADER, pb};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use super::clock::seconds;
use super::{As, TestApp};

/// The revision a write's answer carries in its metadata.
pub fn revision_of(metadata: &MetadataMap) -> String {
    metadata
        .get(REVISION_HEADER)
        .expect("a mutation answers with its revision")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Authorize as a client at `client` (an address, or "" for none) asks it.
pub fn authorize_request(
    secret: &str,
    app: &str,
    required: pb::Privilege,
    client: &str,
) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        token: secret.into(),
        app_name: app.into(),
        required_privilege: required.into(),
        client_address: client.into(),
        ..Default::default()
    }
}

/// One Authorize on any replica's AuthorizeService; it must answer.
pub async fn authorize_on(
    client: &AuthorizeServiceClient<Channel>,
    request: pb::AuthorizeRequest,
) -> pb::AuthorizeResponse {
    client
        .clone()
        .authorize(request)
        .await
        .expect("authorize answers")
        .into_inner()
}

/// One page of the audit log as `who` reads it, newest first.
pub async fn audit_log(
    tokens: &TokenServiceClient<Channel>,
    who: &As,
    request: pb::ListAuditEventsRequest,
) -> Vec<pb::AuditEvent> {
    tokens
        .clone()
        .list_audit_events(who.req(request))
        .await
        .expect("audit")
        .into_inner()
        .audit_events
}

/// Every application of the token, as `who` lists them on any server's TokenService.
pub async fn applications_of(
    tokens: &TokenServiceClient<Channel>,
    who: &As,
    token_id: &str,
) -> Vec<pb::Application> {
    tokens
        .clone()
        .list_applications(who.req(pb::ListApplicationsRequest {
            token_id: token_id.into(),
            ..Default::default()
        }))
        .await
        .expect("list applications")
        .into_inner()
        .applications
}

impl TestApp {
    /// The token as the bootstrap Admin reads it.
    pub async fn token(&self, id: &str) -> pb::Token {
        self.tokens
            .clone()
            .get_token(self.admin.req(pb::GetTokenRequest { id: id.into() }))
            .await
            .expect("get token")
            .into_inner()
            .token
            .expect("token")
    }

    /// The ids of the tokens `request` lists for the bootstrap Admin (one page).
    pub async fn token_ids(&self, request: pb::ListTokensRequest) -> Vec<String> {
        self.tokens
            .clone()
            .list_tokens(self.admin.req(request))
            .await
            .expect("list tokens")
            .into_inner()
            .tokens
            .into_iter()
            .map(|t| t.id)
            .collect()
    }

    /// Every application of the token, as the bootstrap Admin lists them.
    pub async fn applications(&self, token_id: &str) -> Vec<pb::Application> {
        applications_of(&self.tokens, &self.admin, token_id).await
    }

    /// CreateToken as `who`: a Normal user token whose applications are allowed by default,
    /// with whatever else `request` sets (ranges, an expiry, a request id).
    pub async fn try_create_allowing_token(
        &self,
        who: &As,
        request: pb::CreateTokenRequest,
    ) -> Result<(pb::Token, String), tonic::Status> {
        let request = pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            privilege: pb::Privilege::Normal.into(),
            default_app_state: pb::AppState::Allow.into(),
            ..request
        };
        let reply = self.tokens.clone().create_token(who.req(request)).await?;
        let reply = reply.into_inner();
        Ok((reply.token.expect("token"), reply.secret))
    }

    /// The token's application of that name, as the bootstrap Admin lists it.
    pub async fn application(&self, token_id: &str, name: &str) -> pb::Application {
        self.applications(token_id)
            .await
            .into_iter()
            .find(|a| a.name == name)
            .expect("listed")
    }

    /// The audit events of one target (`token id` or `token id/application`), newest first.
    pub async fn audit_events(&self, target_id: &str) -> Vec<pb::AuditEvent> {
        let request = pb::ListAuditEventsRequest {
            target_id: target_id.into(),
            ..Default::default()
        };
        audit_log(&self.tokens, &self.admin, request).await
    }

    /// Decides the token's application as the bootstrap Admin, with no reason or conditions.
    pub async fn set_state(
        &self,
        token_id: &str,
        name: &str,
        state: pb::AppState,
    ) -> pb::Application {
        self.tokens
            .clone()
            .set_application_state(self.admin.req(pb::SetApplicationStateRequest {
                token_id: token_id.into(),
                name: name.into(),
                state: state.into(),
                ..Default::default()
            }))
            .await
            .expect("set application state")
            .into_inner()
            .application
            .expect("application")
    }

    /// Retires the token as the bootstrap Admin; the answer's metadata carries its revision.
    pub async fn retire(&self, id: &str) -> MetadataMap {
        self.tokens
            .clone()
            .retire_token(self.admin.req(pb::RetireTokenRequest {
                id: id.into(),
                ..Default::default()
            }))
            .await
            .expect("retire")
            .metadata()
            .clone()
    }

    /// Removes the member as the bootstrap Admin.
    pub async fn remove_member(&self, user_id: &str) {
        self.accounts
            .clone()
            .remove_member(self.admin.req(pb::RemoveMemberRequest {
                user_id: user_id.into(),
                ..Default::default()
            }))
            .await
            .expect("remove member");
    }

    /// Authorize as a client at `client` (an address, or "" for none) would ask it.
    pub async fn authorize_from(
        &self,
        secret: &str,
        app: &str,
        required: pb::Privilege,
        client: &str,
    ) -> pb::AuthorizeResponse {
        authorize_on(
            &self.authorize,
            authorize_request(secret, app, required, client),
        )
        .await
    }
}

/// Rotates as `caller`; returns the token, the new secret and the revision it committed at.
pub async fn rotate(
    app: &TestApp,
    caller: &As,
    id: &str,
    overlap: i64,
    from_first_use: bool,
) -> Result<(pb::Token, String, String), tonic::Status> {
    let reply = app
        .tokens
        .clone()
        .rotate_token(caller.req(pb::RotateTokenRequest {
            id: id.into(),
            overlap: Some(seconds(overlap)),
            overlap_from_first_use: from_first_use,
            expire_time: None,
        }))
        .await?;
    let revision = revision_of(reply.metadata());
    let reply = reply.into_inner();
    Ok((reply.token.expect("token"), reply.secret, revision))
}

/// Sets the account policy's `retire_on_reuse` (only that field) as the bootstrap Admin.
pub async fn set_retire_on_reuse(app: &TestApp, retire: bool) {
    app.accounts
        .clone()
        .set_account_policy(app.admin.req(pb::SetAccountPolicyRequest {
            policy: Some(pb::AccountPolicy {
                retire_on_reuse: retire,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["retire_on_reuse".into()],
            }),
        }))
        .await
        .expect("set policy");
}
