//! Envoy ext_authz (`envoy.service.auth.v3.Authorization/Check`): the Authorize decision for
//! any HTTP service behind an Envoy or Istio gateway, on the same port as the rest.
//!
//! Choices a gateway operator relies on (docs/ENVOY.md says the same for people):
//! - Credentials are read from the HTTP request's headers with the same parser as gRPC
//!   metadata: `x-circonus-auth-token` + `x-circonus-app-name`, or `authorization: Basic`.
//! - GET, HEAD and OPTIONS need Read-Only; every other method needs the configured write
//!   privilege (Normal by default).
//! - Refusals are `DeniedHttpResponse`s with a Circonus-shaped JSON body. A malformed
//!   application name answers 400: the request is wrong, and no credential will fix it.
//! - An outage is the gRPC error UNAVAILABLE, never a denial, so Envoy's
//!   `failure_mode_allow` / `status_on_error` decide what the client sees.
use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::address::Address as SocketAddressKind;
use serde_json::json;
use tonic::{Code, Request, Response, Status};

use super::credentials::{
    AUTHORIZATION_HEADER, CredentialsError, HeaderSource, NotText, TOKEN_HEADER, credentials,
    is_basic,
};
use crate::domain::{AppName, Decision, Privilege, TokenGrant};
use crate::service::{AuthorizeOutcome, Credentials, Service};

/// Upstream identity headers. Set on every allowed request, overwriting whatever the client
/// sent, so an upstream can trust them.
pub const ACCOUNT_ID_HEADER: &str = "x-api-tokens-account-id";
pub const USER_ID_HEADER: &str = "x-api-tokens-user-id";
pub const TOKEN_ID_HEADER: &str = "x-api-tokens-token-id";
pub const TOKEN_TYPE_HEADER: &str = "x-api-tokens-token-type";
pub const PRIVILEGE_HEADER: &str = "x-api-tokens-privilege";
/// Every upstream identity header.
pub const IDENTITY_HEADERS: [&str; 5] = [
    ACCOUNT_ID_HEADER,
    USER_ID_HEADER,
    TOKEN_ID_HEADER,
    TOKEN_TYPE_HEADER,
    PRIVILEGE_HEADER,
];

/// How HTTP requests map to the privilege they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtAuthzSettings {
    /// What a method other than GET, HEAD or OPTIONS needs.
    pub write_privilege: Privilege,
}

impl Default for ExtAuthzSettings {
    fn default() -> Self {
        ExtAuthzSettings {
            write_privilege: Self::DEFAULT_WRITE_PRIVILEGE,
        }
    }
}

impl ExtAuthzSettings {
    pub const DEFAULT_WRITE_PRIVILEGE: Privilege = Privilege::Normal;

    /// Safe methods only read. Methods are case-sensitive (RFC 9110), so an odd spelling
    /// such as `get` falls to the write privilege: the stricter side.
    pub fn required_privilege(&self, method: &str) -> Privilege {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Privilege::ReadOnly,
            _ => self.write_privilege,
        }
    }
}

pub struct ExtAuthzHandler {
    service: Service,
    settings: ExtAuthzSettings,
}

impl ExtAuthzHandler {
    pub fn new(service: Service, settings: ExtAuthzSettings) -> Self {
        ExtAuthzHandler { service, settings }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzHandler {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let check = request.get_ref();
        let (credentials, required) = match read_check(check, &self.settings) {
            Ok(asked) => asked,
            Err(refusal) => return Ok(Response::new(*refusal)),
        };
        let (secret, app) = (&credentials.secret, &credentials.app);
        let outcome = self
            .service
            .authorize_from(secret, app, required, credentials.client)
            .await?;
        Ok(Response::new(respond(check, app, &outcome)))
    }
}

/// What a Check asks, read before any lookup: the credentials and the privilege the HTTP
/// method needs, or (missing or malformed credentials) the refusal to answer at once.
pub fn read_check(
    check: &CheckRequest,
    settings: &ExtAuthzSettings,
) -> Result<(Credentials, Privilege), Box<CheckResponse>> {
    let http = HttpHeaders::of(check);
    let mut credentials =
        credentials(&http).map_err(|refusal| Box::new(refuse_credentials(&refusal)))?;
    credentials.client = source_address(check);
    Ok((credentials, settings.required_privilege(http.method())))
}

/// The downstream client's address as Envoy saw it (`attributes.source`): Envoy has already
/// applied its own `x-forwarded-for` policy (`use_remote_address`, `xff_num_trusted_hops`),
/// so a header the client sent is not read again here. `None` for a pipe or no address.
fn source_address(check: &CheckRequest) -> Option<IpAddr> {
    let address = check
        .attributes
        .as_ref()?
        .source
        .as_ref()?
        .address
        .as_ref()?;
    match address.address.as_ref()? {
        SocketAddressKind::SocketAddress(socket) => socket
            .address
            .parse::<IpAddr>()
            .ok()
            .map(|a| a.to_canonical()),
        _ => None,
    }
}

/// The answer to a Check whose credentials were decided on.
pub fn respond(check: &CheckRequest, app: &AppName, outcome: &AuthorizeOutcome) -> CheckResponse {
    answer(outcome, app, &HttpHeaders::of(check))
}

/// The HTTP request Envoy asks about. Envoy lower-cases header names in `headers`; with
/// `encode_raw_headers` it sends `header_map` instead, values possibly as raw bytes.
struct HttpHeaders<'a>(Option<&'a HttpRequest>);

impl<'a> HttpHeaders<'a> {
    fn of(check: &'a CheckRequest) -> Self {
        HttpHeaders(
            check
                .attributes
                .as_ref()
                .and_then(|a| a.request.as_ref())
                .and_then(|r| r.http.as_ref()),
        )
    }

    fn method(&self) -> &str {
        self.0.map_or("", |http| http.method.as_str())
    }
}

impl HeaderSource for HttpHeaders<'_> {
    /// Envoy's `headers` map joins a repeated header's values with commas; `header_map`
    /// lists each occurrence. Every value found is returned, so repeats can be compared.
    fn header_values(&self, name: &str) -> Result<Vec<&str>, NotText> {
        let Some(http) = self.0 else {
            return Ok(vec![]);
        };
        if let Some(value) = http.headers.get(name) {
            return Ok(vec![value]);
        }
        let Some(map) = http.header_map.as_ref() else {
            return Ok(vec![]);
        };
        map.headers
            .iter()
            .filter(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| {
                if h.raw_value.is_empty() {
                    Ok(h.value.as_str())
                } else {
                    std::str::from_utf8(&h.raw_value).map_err(|_| NotText)
                }
            })
            .collect()
    }
}

fn answer(outcome: &AuthorizeOutcome, app: &AppName, http: &HttpHeaders<'_>) -> CheckResponse {
    match (outcome.decision, &outcome.grant) {
        (Decision::Allow { effective }, Some(grant)) => allowed(grant, effective, http),
        (decision, _) => denied(
            decision.http_status(),
            decision.error_code(),
            decision.summary(app.as_str(), http.method()),
            decision.explanation(app.as_str()),
        ),
    }
}

/// OK, with the principal in upstream headers. Each identity header is overwritten (an
/// absent user id is removed), so a client cannot smuggle its own. The token's secret is
/// removed from the upstream request: the upstream has the identity and needs no secret.
fn allowed(grant: &TokenGrant, effective: Privilege, http: &HttpHeaders<'_>) -> CheckResponse {
    let mut ok = OkHttpResponseBuilder::new();
    let mut set = |name: &str, value: String| {
        ok.add_header(
            name,
            value,
            Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
            false,
        );
    };
    set(ACCOUNT_ID_HEADER, grant.account_id.to_string());
    set(TOKEN_ID_HEADER, grant.token_id.to_string());
    set(TOKEN_TYPE_HEADER, grant.token_type.as_str().to_owned());
    set(PRIVILEGE_HEADER, effective.as_str().to_owned());
    match grant.member_id() {
        Some(user) => set(USER_ID_HEADER, user.to_string()),
        None => {
            ok.remove_header(USER_ID_HEADER);
        }
    }
    ok.remove_header(TOKEN_HEADER);
    // Basic credentials carry the token as their password; another scheme (say a Bearer
    // token for the upstream itself) is not ours to drop.
    if let Ok(Some(authorization)) = http.header(AUTHORIZATION_HEADER)
        && is_basic(authorization)
    {
        ok.remove_header(AUTHORIZATION_HEADER);
    }
    let mut response = CheckResponse::with_status(Status::ok(""));
    response.set_http_response(ok);
    response
}

/// A refusal in the shape Circonus clients parse: `{"code", "message", "explanation"}`.
fn denied(http_status: u16, code: &str, message: String, explanation: String) -> CheckResponse {
    let body = json!({ "code": code, "message": message, "explanation": explanation });
    // Envoy only tells OK from not-OK here; the gRPC code is for its stats and logs.
    let grpc = match http_status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        _ => Code::PermissionDenied,
    };
    let mut refusal = DeniedHttpResponseBuilder::new();
    // Every status passed here (400, 401, 403) is in Envoy's enum; 403 is its own default.
    refusal
        .set_http_status(
            HttpStatusCode::try_from(i32::from(http_status)).unwrap_or(HttpStatusCode::Forbidden),
        )
        .add_header(
            "content-type",
            "application/json",
            Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
            false,
        )
        .set_body(body.to_string());
    let mut response = CheckResponse::with_status(Status::new(grpc, code));
    response.set_http_response(refusal);
    response
}

/// Missing or malformed credentials. Nothing presented is echoed back but the app name.
fn refuse_credentials(refusal: &CredentialsError) -> CheckResponse {
    let (status, code, message) = match refusal {
        CredentialsError::Missing => (401, "Unauthorized.MissingCredentials", "No API token"),
        CredentialsError::Malformed(_) => (
            401,
            "Unauthorized.MalformedCredentials",
            "The credentials are malformed",
        ),
        // The code Circonus answers for a token of the wrong shape, as for an unknown one.
        CredentialsError::MalformedToken(_) => (
            401,
            "Forbidden.BadToken",
            "The token doesn't match the right format",
        ),
        CredentialsError::MalformedAppName(_) => (
            400,
            "BadRequest.MalformedAppName",
            "The application name is malformed",
        ),
        CredentialsError::Ambiguous(_) => (
            401,
            "Unauthorized.AmbiguousCredentials",
            "The request carries more than one set of credentials",
        ),
    };
    denied(status, code, message.to_owned(), refusal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_methods_read_everything_else_writes() {
        let settings = ExtAuthzSettings::default();
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert_eq!(settings.required_privilege(method), Privilege::ReadOnly);
        }
        for method in ["POST", "PUT", "PATCH", "DELETE", "get", ""] {
            assert_eq!(settings.required_privilege(method), Privilege::Normal);
        }
        let strict = ExtAuthzSettings {
            write_privilege: Privilege::Admin,
        };
        assert_eq!(strict.required_privilege("DELETE"), Privilege::Admin);
        assert_eq!(strict.required_privilege("GET"), Privilege::ReadOnly);
    }
}
