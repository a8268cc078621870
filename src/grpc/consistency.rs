//! Read your own writes on any replica: every mutation answers with the revision it committed
//! at (response header `x-api-tokens-revision`); a management call may ask for at least a
//! revision (request header `x-api-tokens-min-revision`), and Authorize has a field for it.
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use super::client_address;
use super::credentials::credentials_from_metadata;
use crate::domain::Caller;
use crate::service::{Credentials, Service, ServiceError};

pub const REVISION_HEADER: &str = "x-api-tokens-revision";
pub const MIN_REVISION_HEADER: &str = "x-api-tokens-min-revision";

fn min_revision(metadata: &MetadataMap) -> Result<Option<&str>, ServiceError> {
    match metadata.get(MIN_REVISION_HEADER) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            ServiceError::invalid(MIN_REVISION_HEADER, "is not a revision this service issued")
        }),
    }
}

/// Authenticates a management caller, once this replica is at least as fresh as asked.
pub async fn caller<T>(service: &Service, request: &Request<T>) -> Result<Caller, Status> {
    let metadata = request.metadata();
    service.require_database()?;
    service
        .at_least(MIN_REVISION_HEADER, min_revision(metadata)?)
        .await?;
    let credentials = credentials_of(service, request)?;
    Ok(service.authenticate(&credentials).await?)
}

/// A management call's credentials, with the address it comes from.
pub fn credentials_of<T>(service: &Service, request: &Request<T>) -> Result<Credentials, Status> {
    let mut credentials = credentials_from_metadata(request.metadata())?;
    credentials.client = client_address::of_request(request, service.trusted_proxies());
    Ok(credentials)
}

/// A mutation's response, with the revision it committed at.
pub async fn with_revision<T>(service: &Service, message: T) -> Response<T> {
    let mut response = Response::new(message);
    let revision = service.revision_after_write().await;
    if revision.is_empty() {
        // The log's head could not be read just now: no revision rather than a wrong one.
        return response;
    }
    if let Ok(value) = MetadataValue::try_from(revision) {
        response.metadata_mut().insert(REVISION_HEADER, value);
    }
    response
}
