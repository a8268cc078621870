//! TokenService: token lifecycle, applications, install command, audit log.
//!
//! Every handler has one shape: authenticate the caller, read the request (`request::parse`,
//! every bad field reported), call the use case, convert its answer.
use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::client_address;
use super::consistency::{caller, credentials_of, with_revision};
use super::pb::{self, token_service_server::TokenService};
use super::request::parse;
use crate::service::{Service, ServiceError, TokenView, WatchItem};

pub struct TokenHandler {
    service: Service,
}

impl TokenHandler {
    pub fn new(service: Service) -> Self {
        TokenHandler { service }
    }
}

fn token(view: TokenView) -> Option<pb::Token> {
    Some(view.into())
}

type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A use case's stream of watch items as a stream of `T`; an error ends it with its status.
fn stream_of<T: From<WatchItem>>(
    items: impl Stream<Item = Result<WatchItem, ServiceError>> + Send + 'static,
) -> WatchStream<T> {
    Box::pin(items.map(|item| {
        item.map(Into::into).map_err(|e| {
            // A stream's status goes out in its trailers, past the layer that logs causes.
            let status = Status::from(e);
            super::log_cause(&status);
            status
        })
    }))
}

#[tonic::async_trait]
impl TokenService for TokenHandler {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let new = parse(request.get_ref())?;
        let (view, secret) = self.service.create_token(&caller, new).await?;
        let reply = pb::CreateTokenResponse {
            token: token(view),
            secret: secret.expose().to_owned(),
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn get_token(
        &self,
        request: Request<pb::GetTokenRequest>,
    ) -> Result<Response<pb::GetTokenResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let id = parse(request.get_ref())?;
        let view = self.service.get_token(&caller, id).await?;
        Ok(Response::new(pb::GetTokenResponse { token: token(view) }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (filters, page) = parse(request.get_ref())?;
        let page = self.service.list_tokens(&caller, filters, page).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_token(
        &self,
        request: Request<pb::UpdateTokenRequest>,
    ) -> Result<Response<pb::UpdateTokenResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (id, update) = parse(request.get_ref())?;
        let view = self.service.update_token(&caller, id, update).await?;
        let reply = pb::UpdateTokenResponse { token: token(view) };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn retire_token(
        &self,
        request: Request<pb::RetireTokenRequest>,
    ) -> Result<Response<pb::RetireTokenResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let id = parse(request.get_ref())?;
        if request.get_ref().validate_only {
            let previewed = self.service.preview_retire_token(&caller, id).await?;
            return Ok(Response::new(pb::RetireTokenResponse {
                token: previewed.would.and_then(token),
                preview: Some(previewed.preview.into()),
            }));
        }
        let view = self.service.retire_token(&caller, id).await?;
        let reply = pb::RetireTokenResponse {
            token: token(view),
            preview: None,
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn rotate_token(
        &self,
        request: Request<pb::RotateTokenRequest>,
    ) -> Result<Response<pb::RotateTokenResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (id, rotate) = parse(request.get_ref())?;
        let (view, secret) = self.service.rotate_token(&caller, id, rotate).await?;
        let reply = pb::RotateTokenResponse {
            token: token(view),
            secret: secret.expose().to_owned(),
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn promote_token(
        &self,
        request: Request<pb::PromoteTokenRequest>,
    ) -> Result<Response<pb::PromoteTokenResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (id, privilege) = parse(request.get_ref())?;
        let view = self.service.promote_token(&caller, id, privilege).await?;
        let reply = pb::PromoteTokenResponse { token: token(view) };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (token_id, state, page) = parse(request.get_ref())?;
        let page = self
            .service
            .list_applications(&caller, token_id, state, page)
            .await?;
        Ok(Response::new(pb::ListApplicationsResponse {
            applications: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn set_application_state(
        &self,
        request: Request<pb::SetApplicationStateRequest>,
    ) -> Result<Response<pb::SetApplicationStateResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (decision, reason) = parse(request.get_ref())?;
        if request.get_ref().validate_only {
            let previewed = self
                .service
                .preview_set_application_state(&caller, decision, reason)
                .await?;
            return Ok(Response::new(pb::SetApplicationStateResponse {
                application: previewed.would.map(Into::into),
                preview: Some(previewed.preview.into()),
            }));
        }
        let app = self
            .service
            .set_application_state(&caller, decision, reason)
            .await?;
        let reply = pb::SetApplicationStateResponse {
            application: Some(app.into()),
            preview: None,
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn batch_set_application_states(
        &self,
        request: Request<pb::BatchSetApplicationStatesRequest>,
    ) -> Result<Response<pb::BatchSetApplicationStatesResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (decisions, reason) = parse(request.get_ref())?;
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
                    .map(Into::into)
                    .collect(),
                preview: Some(previewed.preview.into()),
            }));
        }
        let results = self
            .service
            .batch_set_application_states(&caller, decisions, reason)
            .await?;
        let reply = pb::BatchSetApplicationStatesResponse {
            results: results.into_iter().map(Into::into).collect(),
            preview: None,
        };
        Ok(with_revision(&self.service, reply).await)
    }

    async fn get_install_command(
        &self,
        request: Request<pb::GetInstallCommandRequest>,
    ) -> Result<Response<pb::GetInstallCommandResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (token_id, broker): (_, Option<String>) = parse(request.get_ref())?;
        let install = self
            .service
            .install_command(&caller, token_id, broker.as_deref())
            .await?;
        let reply = pb::GetInstallCommandResponse {
            command: install.command,
            app_name: install.app_name.as_str().to_owned(),
            api_url: install.api_url,
            cosi_url: install.cosi_url,
            config_json: install.config_json,
            key_env_var: install.key_env_var.to_owned(),
        };
        Ok(with_revision(&self.service, reply).await)
    }

    type WatchApplicationsStream = WatchStream<pb::WatchApplicationsResponse>;

    /// The stream authenticates inside the use case: it judges its caller again as changes come.
    async fn watch_applications(
        &self,
        request: Request<pb::WatchApplicationsRequest>,
    ) -> Result<Response<Self::WatchApplicationsStream>, Status> {
        self.service.require_database()?;
        let credentials = credentials_of(&self.service, &request)?;
        let watch = parse(request.get_ref())?;
        let stream = self.service.watch_applications(credentials, watch).await?;
        Ok(Response::new(stream_of(stream)))
    }

    type WatchTokenEventsStream = WatchStream<pb::WatchTokenEventsResponse>;

    /// As WatchApplications: the stream judges its caller again as changes come.
    async fn watch_token_events(
        &self,
        request: Request<pb::WatchTokenEventsRequest>,
    ) -> Result<Response<Self::WatchTokenEventsStream>, Status> {
        self.service.require_database()?;
        let credentials = credentials_of(&self.service, &request)?;
        let watch = parse(request.get_ref())?;
        let stream = self.service.watch_token_events(credentials, watch).await?;
        Ok(Response::new(stream_of(stream)))
    }

    /// No credentials: holding the secret is the proof. Limited per client address.
    async fn report_leaked_secret(
        &self,
        request: Request<pb::ReportLeakedSecretRequest>,
    ) -> Result<Response<pb::ReportLeakedSecretResponse>, Status> {
        self.service.require_database()?;
        let reporter = client_address::of_request(&request, self.service.trusted_proxies());
        let report = parse(request.get_ref())?;
        self.service.report_leaked_secret(report, reporter).await?;
        // No revision header: whether the report wrote anything is not the reporter's to know.
        Ok(Response::new(pb::ReportLeakedSecretResponse {}))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = caller(&self.service, &request).await?;
        let (target, page): (Option<String>, _) = parse(request.get_ref())?;
        let page = self
            .service
            .list_audit_events(&caller, target.as_deref(), page)
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
