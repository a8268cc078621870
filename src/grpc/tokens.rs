//! TokenService: token lifecycle, applications, install command, audit log.
use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::consistency;
use super::convert::{self, Violations};
use super::pb::{self, token_service_server::TokenService};
use crate::domain::{AppState, Caller, Description, Privilege, Rationale};
use crate::service::{
    MAX_BATCH, NewTokenRequest, PageRequest, Service, ServiceError, TokenFilters, TokenUpdate,
};
use crate::storage::AppDecision;

pub struct TokenHandler {
    service: Service,
}

impl TokenHandler {
    pub fn new(service: Service) -> Self {
        TokenHandler { service }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        consistency::caller(&self.service, request).await
    }
}

fn parse_create(req: &pb::CreateTokenRequest) -> Result<NewTokenRequest, ServiceError> {
    let mut v = Violations::default();
    let token_type = v.check("type", convert::required(convert::token_type(req.r#type)));
    let privilege = v.check("privilege", convert::privilege(req.privilege));
    let default_app_state = v.check(
        "default_app_state",
        convert::app_state(req.default_app_state),
    );
    let description = v.check("description", Description::parse(&req.description));
    let request_id = v.check("request_id", convert::optional_uuid(&req.request_id));
    let bound_ranges = v.check("bound_cidrs", convert::ranges(&req.bound_cidrs));
    v.finish(|| {
        Some(NewTokenRequest {
            token_type: token_type?,
            privilege: privilege?.unwrap_or(Privilege::ReadOnly),
            default_app_state: default_app_state?.unwrap_or(AppState::Pending),
            description: description?,
            request_id: request_id?,
            bound_ranges: bound_ranges?,
        })
    })
}

fn parse_update(req: &pb::UpdateTokenRequest) -> Result<(uuid::Uuid, TokenUpdate), ServiceError> {
    let mut v = Violations::default();
    let Some(token) = req.token.as_ref() else {
        return Err(ServiceError::invalid("token", "is required"));
    };
    let id = v.check("token.id", convert::uuid(&token.id));
    let paths = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.as_slice())
        .unwrap_or_default();
    if paths.is_empty() {
        v.add(
            "update_mask",
            "is required: name the fields to change (privilege, default_app_state, description, bound_cidrs)",
        );
    }
    let mut update = TokenUpdate::default();
    for path in paths {
        match path.as_str() {
            "privilege" => {
                update.privilege = v.check(
                    "token.privilege",
                    convert::required(convert::privilege(token.privilege)),
                );
            }
            "default_app_state" => {
                update.default_app_state = v.check(
                    "token.default_app_state",
                    convert::required(convert::app_state(token.default_app_state)),
                );
            }
            "description" => update.description = v.check("token.description", Description::parse(&token.description)),
            "bound_cidrs" => update.bound_ranges = v.check("token.bound_cidrs", convert::ranges(&token.bound_cidrs)),
            other => v.add(
                "update_mask",
                format!("cannot update '{other}': only privilege, default_app_state, description and bound_cidrs may change"),
            ),
        }
    }
    v.finish(|| Some((id?, update)))
}

/// One decision's fields, under `prefix` (`""` for SetApplicationState's own fields,
/// `decisions[i].` in a batch); its conditions are checked against its state now.
fn parse_decision(
    v: &mut Violations,
    prefix: &str,
    token_id: &str,
    name: &str,
    state: i32,
    conditions: Option<&pb::ApprovalConditions>,
) -> Option<AppDecision> {
    let token_id = v.check(&format!("{prefix}token_id"), convert::uuid(token_id));
    let name = v.check(&format!("{prefix}name"), convert::app_name(name));
    let state = v.check(
        &format!("{prefix}state"),
        convert::required(convert::app_state(state)),
    );
    let conditions = convert::conditions(
        v,
        &format!("{prefix}conditions"),
        conditions,
        state,
        crate::domain::now(),
    );
    Some(AppDecision {
        token_id: token_id?,
        name: name?,
        state: state?,
        conditions: conditions?,
    })
}

fn parse_batch(
    req: &pb::BatchSetApplicationStatesRequest,
) -> Result<(Vec<AppDecision>, Option<Rationale>), ServiceError> {
    let mut v = Violations::default();
    if req.decisions.is_empty() || req.decisions.len() > MAX_BATCH {
        v.add(
            "decisions",
            format!(
                "must hold 1 to {MAX_BATCH} decisions, got {}",
                req.decisions.len()
            ),
        );
    }
    let mut decisions = Vec::with_capacity(req.decisions.len());
    let mut seen = std::collections::HashSet::new();
    for (i, d) in req.decisions.iter().enumerate().take(MAX_BATCH) {
        let prefix = format!("decisions[{i}].");
        let parsed = parse_decision(
            &mut v,
            &prefix,
            &d.token_id,
            &d.name,
            d.state,
            d.conditions.as_ref(),
        );
        if let Some(decision) = parsed {
            if !seen.insert((decision.token_id, decision.name.clone())) {
                v.add(
                    &format!("decisions[{i}]"),
                    "decides a (token_id, name) an earlier decision of this batch decides",
                );
            }
            decisions.push(decision);
        }
    }
    let reason = v.check("reason", Rationale::parse(&req.reason));
    v.finish(|| Some((decisions, reason?)))
}

fn parse_id(field: &str, value: &str) -> Result<uuid::Uuid, ServiceError> {
    convert::uuid(value).map_err(|e| ServiceError::invalid(field, e))
}

fn token_reply(view: crate::service::TokenView) -> Option<pb::Token> {
    Some(convert::token_pb(view))
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchApplicationsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TokenService for TokenHandler {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = parse_create(request.get_ref())?;
        let (view, secret) = self.service.create_token(&caller, req).await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::CreateTokenResponse {
                token: token_reply(view),
                secret: secret.expose().to_owned(),
            },
        )
        .await)
    }

    async fn get_token(
        &self,
        request: Request<pb::GetTokenRequest>,
    ) -> Result<Response<pb::GetTokenResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id("id", &request.get_ref().id)?;
        let view = self.service.get_token(&caller, id).await?;
        Ok(Response::new(pb::GetTokenResponse {
            token: token_reply(view),
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let mut v = Violations::default();
        let token_type = v.check("type", convert::token_type(req.r#type));
        let owner_id = v.check("owner_user_id", convert::optional_uuid(&req.owner_user_id));
        let state = v.check("state", convert::token_state(req.state));
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let filters = v.finish(|| {
            Some(TokenFilters {
                token_type: token_type?,
                owner_id: owner_id?,
                state: state?,
            })
        })?;
        let page = self.service.list_tokens(&caller, filters, page).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: page.items.into_iter().map(convert::token_pb).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_token(
        &self,
        request: Request<pb::UpdateTokenRequest>,
    ) -> Result<Response<pb::UpdateTokenResponse>, Status> {
        let caller = self.caller(&request).await?;
        let (id, update) = parse_update(request.get_ref())?;
        let view = self.service.update_token(&caller, id, update).await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::UpdateTokenResponse {
                token: token_reply(view),
            },
        )
        .await)
    }

    async fn retire_token(
        &self,
        request: Request<pb::RetireTokenRequest>,
    ) -> Result<Response<pb::RetireTokenResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id("id", &request.get_ref().id)?;
        if request.get_ref().validate_only {
            let previewed = self.service.preview_retire_token(&caller, id).await?;
            return Ok(Response::new(pb::RetireTokenResponse {
                token: previewed.would.and_then(token_reply),
                preview: Some(convert::preview_pb(previewed.preview)),
            }));
        }
        let view = self.service.retire_token(&caller, id).await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::RetireTokenResponse {
                token: token_reply(view),
                preview: None,
            },
        )
        .await)
    }

    async fn promote_token(
        &self,
        request: Request<pb::PromoteTokenRequest>,
    ) -> Result<Response<pb::PromoteTokenResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.check("id", convert::uuid(&req.id));
        let privilege = v.check("privilege", convert::privilege(req.privilege));
        let (id, privilege) = v.finish(|| Some((id?, privilege?)))?;
        let view = self.service.promote_token(&caller, id, privilege).await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::PromoteTokenResponse {
                token: token_reply(view),
            },
        )
        .await)
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let mut v = Violations::default();
        let token_id = v.check("token_id", convert::uuid(&req.token_id));
        let state = v.check("state", convert::app_state(req.state));
        let (token_id, state) = v.finish(|| Some((token_id?, state?)))?;
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let page = self
            .service
            .list_applications(&caller, token_id, state, page)
            .await?;
        Ok(Response::new(pb::ListApplicationsResponse {
            applications: page
                .items
                .into_iter()
                .map(convert::application_pb)
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn set_application_state(
        &self,
        request: Request<pb::SetApplicationStateRequest>,
    ) -> Result<Response<pb::SetApplicationStateResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let decision = parse_decision(
            &mut v,
            "",
            &req.token_id,
            &req.name,
            req.state,
            req.conditions.as_ref(),
        );
        let reason = v.check("reason", Rationale::parse(&req.reason));
        let (decision, reason) = v.finish(|| Some((decision?, reason?)))?;
        if req.validate_only {
            let previewed = self
                .service
                .preview_decisions(&caller, vec![decision], reason)
                .await?;
            let application = match previewed.would.and_then(|mut r| r.pop()) {
                Some(Ok(decided)) => Some(convert::application_pb(decided.application().clone())),
                // Refused for this decision alone: as the change itself would be.
                Some(Err(e)) => return Err(e.into()),
                None => None,
            };
            return Ok(Response::new(pb::SetApplicationStateResponse {
                application,
                preview: Some(convert::preview_pb(previewed.preview)),
            }));
        }
        let app = self
            .service
            .set_application_state(&caller, decision, reason)
            .await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::SetApplicationStateResponse {
                application: Some(convert::application_pb(app)),
                preview: None,
            },
        )
        .await)
    }

    async fn get_install_command(
        &self,
        request: Request<pb::GetInstallCommandRequest>,
    ) -> Result<Response<pb::GetInstallCommandResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.get_ref();
        let token_id = parse_id("token_id", &req.token_id)?;
        let broker = Some(req.broker_id.as_str()).filter(|b| !b.is_empty());
        let install = self
            .service
            .install_command(&caller, token_id, broker)
            .await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::GetInstallCommandResponse {
                command: install.command,
                app_name: install.app_name.as_str().to_owned(),
                api_url: install.api_url,
                cosi_url: install.cosi_url,
                config_json: install.config_json,
                key_env_var: install.key_env_var.to_owned(),
            },
        )
        .await)
    }

    async fn batch_set_application_states(
        &self,
        request: Request<pb::BatchSetApplicationStatesRequest>,
    ) -> Result<Response<pb::BatchSetApplicationStatesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let (decisions, reason) = parse_batch(request.get_ref())?;
        if request.get_ref().validate_only {
            let previewed = self
                .service
                .preview_decisions(&caller, decisions, reason)
                .await?;
            return Ok(Response::new(pb::BatchSetApplicationStatesResponse {
                results: previewed
                    .would
                    .unwrap_or_default()
                    .into_iter()
                    .map(convert::decision_result_pb)
                    .collect(),
                preview: Some(convert::preview_pb(previewed.preview)),
            }));
        }
        let results = self
            .service
            .batch_set_application_states(&caller, decisions, reason)
            .await?;
        Ok(consistency::with_revision(
            &self.service,
            pb::BatchSetApplicationStatesResponse {
                results: results
                    .into_iter()
                    .map(convert::decision_result_pb)
                    .collect(),
                preview: None,
            },
        )
        .await)
    }

    type WatchApplicationsStream = WatchStream;

    async fn watch_applications(
        &self,
        request: Request<pb::WatchApplicationsRequest>,
    ) -> Result<Response<Self::WatchApplicationsStream>, Status> {
        self.service.require_database()?;
        let credentials = consistency::credentials_of(&self.service, &request)?;
        let watch = convert::watch_request(request.get_ref())?;
        let stream = self.service.watch_applications(credentials, watch).await?;
        Ok(Response::new(Box::pin(stream.map(|item| {
            item.map(convert::watch_item_pb).map_err(|e| {
                // A stream's status goes out in its trailers, past the layer that logs causes.
                let status = Status::from(e);
                super::log_cause(&status);
                status
            })
        }))))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let target = Some(req.target_id.as_str()).filter(|t| !t.is_empty());
        let page = self
            .service
            .list_audit_events(&caller, target, page)
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: page.items.into_iter().map(convert::audit_pb).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
