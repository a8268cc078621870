//! AuthorizeService: the hot path's handler.
use std::net::IpAddr;

use tonic::{Request, Response, Status};

use super::convert::{self, Violations};
use super::pb::{self, authorize_service_server::AuthorizeService};
use crate::domain::{AppName, Decision, Privilege, Secret};
use crate::service::{AuthorizeOutcome, Service, ServiceError};

pub struct AuthorizeHandler {
    service: Service,
}

impl AuthorizeHandler {
    pub fn new(service: Service) -> Self {
        AuthorizeHandler { service }
    }
}

/// What an Authorize request asks.
struct Asked {
    secret: Secret,
    app: AppName,
    required: Privilege,
    client: Option<IpAddr>,
}

fn parse(req: &pb::AuthorizeRequest) -> Result<Asked, ServiceError> {
    let mut v = Violations::default();
    let secret = v.check(
        "token",
        Secret::parse(&req.token).map_err(|e| e.to_string()),
    );
    let app = v.check("app_name", convert::app_name(&req.app_name));
    let required = v.check(
        "required_privilege",
        convert::privilege(req.required_privilege),
    );
    let client = v.check(
        "client_address",
        convert::optional_address(&req.client_address),
    );
    v.finish(|| {
        Some(Asked {
            secret: secret?,
            app: app?,
            required: required?.unwrap_or(Privilege::ReadOnly),
            client: client?,
        })
    })
}

/// The response a gateway needs: decision, HTTP status, Circonus error code, reason, principal.
pub fn response(outcome: &AuthorizeOutcome, app: &AppName) -> pb::AuthorizeResponse {
    let decision = outcome.decision;
    let principal = match (decision, &outcome.grant) {
        (Decision::Allow { effective }, Some(grant)) => {
            Some(convert::principal_pb(grant, effective))
        }
        _ => None,
    };
    pb::AuthorizeResponse {
        decision: convert::decision_pb(decision).into(),
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
        let asked = parse(request.get_ref())?;
        let min_revision = Some(request.get_ref().min_revision.as_str());
        self.service.at_least("min_revision", min_revision).await?;
        let outcome = self
            .service
            .authorize_from(&asked.secret, &asked.app, asked.required, asked.client)
            .await?;
        Ok(Response::new(response(&outcome, &asked.app)))
    }
}
