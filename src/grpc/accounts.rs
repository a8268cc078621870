//! AccountService: members and roles. Handlers as in `tokens`: authenticate, read, call, convert.
use tonic::{Request, Response, Status};

use super::consistency::{caller, with_revision};
use super::pb::{self, account_service_server::AccountService};
use super::request::parse;
use crate::service::Service;

pub struct AccountHandler {
    service: Service,
}

impl AccountHandler {
    pub fn new(service: Service) -> Self {
        AccountHandler { service }
    }
}

#[tonic::async_trait]
impl AccountService for AccountHandler {
    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let view = self.service.get_account(&caller).await?;
        let policy = self.service.account_policy(&caller).await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(view.account.into()),
            caller: view.caller.map(Into::into),
            caller_token_id: caller.token_id.to_string(),
            caller_privilege: pb::Privilege::from(caller.privilege).into(),
            policy: Some(policy.into()),
        }))
    }

    async fn set_account_policy(
        &self,
        request: Request<pb::SetAccountPolicyRequest>,
    ) -> Result<Response<pb::SetAccountPolicyResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let update = parse(request.get_ref())?;
        let policy = self.service.set_account_policy(&caller, update).await?;
        let reply = pb::SetAccountPolicyResponse {
            policy: Some(policy.into()),
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let page = parse(request.get_ref())?;
        let page = self.service.list_members(&caller, page).await?;
        Ok(Response::new(pb::ListMembersResponse {
            members: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (user_name, role) = parse(request.get_ref())?;
        let member = self.service.add_member(&caller, user_name, role).await?;
        let reply = pb::AddMemberResponse {
            member: Some(member.into()),
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn update_member(
        &self,
        request: Request<pb::UpdateMemberRequest>,
    ) -> Result<Response<pb::UpdateMemberResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (id, role) = parse(request.get_ref())?;
        if request.get_ref().validate_only {
            let previewed = self
                .service
                .preview_update_member(&caller, id, role)
                .await?;
            return Ok(Response::new(pb::UpdateMemberResponse {
                member: previewed.would.map(Into::into),
                preview: Some(previewed.preview.into()),
            }));
        }
        let member = self.service.update_member(&caller, id, role).await?;
        let reply = pb::UpdateMemberResponse {
            member: Some(member.into()),
            preview: None,
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let id = parse(request.get_ref())?;
        if request.get_ref().validate_only {
            let previewed = self.service.preview_remove_member(&caller, id).await?;
            return Ok(Response::new(pb::RemoveMemberResponse {
                preview: Some(previewed.preview.into()),
            }));
        }
        self.service.remove_member(&caller, id).await?;
        let reply = pb::RemoveMemberResponse { preview: None };
        Ok(with_revision(&self.service, reply).await)
    }
}
