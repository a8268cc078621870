//! AccountService: members and roles.
use tonic::{Request, Response, Status};

use super::consistency;
use super::convert::{self, Violations};
use super::pb::{self, account_service_server::AccountService};
use crate::domain::{Caller, UserName};
use crate::service::{PageRequest, Service};

pub struct AccountHandler {
    service: Service,
}

impl AccountHandler {
    pub fn new(service: Service) -> Self {
        AccountHandler { service }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        consistency::caller(&self.service, request).await
    }
}

#[tonic::async_trait]
impl AccountService for AccountHandler {
    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let caller = self.caller(&request).await?;
        let view = self.service.get_account(&caller).await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(convert::account_pb(view.account)),
            caller: view.caller.map(convert::member_pb),
            caller_token_id: caller.token_id.to_string(),
            caller_privilege: convert::privilege_pb(caller.privilege).into(),
        }))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let page = self.service.list_members(&caller, page).await?;
        Ok(Response::new(pb::ListMembersResponse {
            members: page.items.into_iter().map(convert::member_pb).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let mut v = Violations::default();
        let user_name = v.check("user_name", UserName::parse(&req.user_name));
        let role = v.check("role", convert::required(convert::privilege(req.role)));
        let (user_name, role) = v.finish(|| Some((user_name?, role?)))?;
        let member = self.service.add_member(&caller, user_name, role).await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::AddMemberResponse {
                member: Some(convert::member_pb(member)),
            },
        )
        .await)
    }

    async fn update_member(
        &self,
        request: Request<pb::UpdateMemberRequest>,
    ) -> Result<Response<pb::UpdateMemberResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let mut v = Violations::default();
        let id = v.check("user_id", convert::uuid(&req.user_id));
        let role = v.check("role", convert::required(convert::privilege(req.role)));
        let (id, role) = v.finish(|| Some((id?, role?)))?;
        if req.validate_only {
            let previewed = self
                .service
                .preview_update_member(&caller, id, role)
                .await?;
            return Ok(Response::new(pb::UpdateMemberResponse {
                member: previewed.would.map(convert::member_pb),
                preview: Some(convert::preview_pb(previewed.preview)),
            }));
        }
        let member = self.service.update_member(&caller, id, role).await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::UpdateMemberResponse {
                member: Some(convert::member_pb(member)),
                preview: None,
            },
        )
        .await)
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::default();
        let id = v.check("user_id", convert::uuid(&request.get_ref().user_id));
        let id = v.finish(|| id)?;
        if request.get_ref().validate_only {
            let previewed = self.service.preview_remove_member(&caller, id).await?;
            return Ok(Response::new(pb::RemoveMemberResponse {
                preview: Some(convert::preview_pb(previewed.preview)),
            }));
        }
        self.service.remove_member(&caller, id).await?;
        Ok(
            consistency::with_revision(&self.service, pb::RemoveMemberResponse { preview: None })
                .await,
        )
    }
}
