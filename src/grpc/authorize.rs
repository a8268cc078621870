//! AuthorizeService: the hot path's handler.
use tonic::{Request, Response, Status};

use super::convert::principal;
use super::pb::{self, authorize_service_server::AuthorizeService};
use super::request::{Asked, parse};
use crate::domain::{AppName, Decision};
use crate::service::{AuthorizeOutcome, Service};

pub struct AuthorizeHandler {
    service: Service,
}

impl AuthorizeHandler {
    pub fn new(service: Service) -> Self {
        AuthorizeHandler { service }
    }
}

/// The response a gateway needs: decision, HTTP status, Circonus error code, reason, principal.
pub fn response(outcome: &AuthorizeOutcome, app: &AppName) -> pb::AuthorizeResponse {
    let decision = outcome.decision;
    let principal = match (decision, &outcome.grant) {
        (Decision::Allow { effective }, Some(grant)) => Some(principal(grant, effective)),
        _ => None,
    };
    pb::AuthorizeResponse {
        decision: pb::Decision::from(decision).into(),
        http_status: decision.http_status().into(),
        error_code: decision.error_code().to_owned(),
        reason: decision.explanation(app.as_str()),
        principal,
    }
}

#[tonic::async_trait]
impl AuthorizeService for AuthorizeHandler {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let asked: Asked = parse(request.get_ref())?;
        let min_revision = Some(request.get_ref().min_revision.as_str());
        self.service.at_least("min_revision", min_revision).await?;
        let outcome = self
            .service
            .authorize_from(&asked.secret, &asked.app, asked.required, asked.client)
            .await?;
        Ok(Response::new(response(&outcome, &asked.app)))
    }
}
