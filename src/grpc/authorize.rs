//! AuthorizeService: the hot path's handler.
use tonic::{Request, Response, Status};

use super::authorize_call::AuthorizeCall;
use super::authorize_server::authorize_service_server::AuthorizeService;
use super::pb;
use super::request::Asked;
use crate::service::Service;

pub struct AuthorizeHandler {
    service: Service,
}

impl AuthorizeHandler {
    pub fn new(service: Service) -> Self {
        AuthorizeHandler { service }
    }
}

#[tonic::async_trait]
impl AuthorizeService for AuthorizeHandler {
    async fn authorize(
        &self,
        request: Request<AuthorizeCall>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let mut request = request.into_inner();
        let min_revision = std::mem::take(&mut request.min_revision);
        let asked = Asked::try_from(request)?;
        self.service
            .at_least("min_revision", Some(&min_revision))
            .await?;
        let outcome = self
            .service
            .authorize_from(&asked.secret, &asked.app, asked.required, asked.client)
            .await?;
        Ok(Response::new(pb::AuthorizeResponse::of(
            outcome, &asked.app,
        )))
    }
}
