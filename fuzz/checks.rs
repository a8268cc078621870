//! The fuzzing oracles: what must hold for any bytes a caller sends before a database is
//! touched. The cargo-fuzz targets (nightly) and `tests/properties/fuzz_inputs.rs` (stable, in CI) both
//! run these functions, so a crash found by either is replayed by the other.
// Each fuzz target uses one of the oracles.
#![allow(dead_code)]

use api_tokens::domain::{
    AddressRefusal, AddressRule, AppName, Decision, Description, OwnerStatus, Privilege, Secret,
    TokenGrant, TokenType, UserName,
};
use api_tokens::grpc::{
    ExtAuthzSettings, credentials, ext_authz_read_check, ext_authz_respond, pb,
};
use api_tokens::service::{AuthorizeOutcome, PageRequest, Purpose, Sealer};
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::metadata::MetadataMap;
use uuid::Uuid;

const TOKEN_HEADER: &str = "x-circonus-auth-token";
const APP_HEADER: &str = "x-circonus-app-name";
const AUTHORIZATION_HEADER: &str = "authorization";
const HEADERS: [&str; 3] = [TOKEN_HEADER, APP_HEADER, AUTHORIZATION_HEADER];

/// A well-formed secret the structured inputs can present, so the oracle can look for it in
/// every answer: the decision paths are reached, and a leak of it is caught.
const KNOWN_SECRET: &str = "6f1c2a9e-3b4d-4c5e-8f70-91a2b3c4d5e6";

/// The fixed words of every credentials refusal (src/grpc/credentials.rs, AppName, Secret): a
/// token that is a piece of them is "echoed" by coincidence, not leaked.
const FIXED: &str = "send headers x-circonus-auth-token and x-circonus-app-name, or authorization: \
    Basic base64(app name:token) header x-circonus-app-name is not printable ASCII \
    header x-circonus-auth-token is not printable ASCII header authorization is not printable ASCII \
    authorization must be Basic base64(app name:token) the authentication token must not be \
    empty the authentication token must be UUID-shaped: 32 hexadecimal digits in groups \
    8-4-4-4-12 the application name must be at most 200 characters, got the application name \
    may contain only printable ASCII characters (letters, digits, spaces, punctuation), found \
    the application name must not start or end with a space";

/// True when `token` showing up in an answer would be a leak rather than a coincidence: it looks
/// like (a piece of) a secret, at least 8 hexadecimal digits and dashes, so ordinary words and
/// replacement characters do not count; it is not a piece of the fixed wording; and it is not a
/// piece of what the answer is meant to carry (the application name, Check's HTTP method and
/// the principal's ids).
fn would_leak(token: &str, expected: &[String]) -> bool {
    token.chars().filter(char::is_ascii_hexdigit).count() >= 8
        && token.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && !FIXED.contains(token)
        && !expected.iter().any(|text| text.contains(token))
}

/// The credential headers as real gRPC metadata, the domain parsers, page tokens, cursors and
/// prost decoding of the requests: nothing panics, and no refusal echoes the presented token.
pub fn request_parsing(data: &[u8]) {
    // The input is up to three header values separated by NUL bytes (never valid in a header).
    let mut map = http::HeaderMap::new();
    let mut token = None;
    let mut app_names = Vec::new();
    for (name, value) in HEADERS.iter().zip(data.split(|b| *b == 0)) {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            let text = value.to_str().ok().map(str::to_owned);
            match *name {
                TOKEN_HEADER => token = text,
                APP_HEADER => app_names.extend(text),
                _ => {}
            }
            map.insert(*name, value);
        }
    }
    if let Err(refused) = credentials(&MetadataMap::from_headers(map))
        && let Some(token) = token.filter(|t| would_leak(t, &app_names))
    {
        assert!(
            !refused.to_string().contains(&token),
            "a refusal echoed the token"
        );
    }

    let text = String::from_utf8_lossy(data);
    let _ = AppName::parse(&text);
    let _ = Secret::parse(&text);
    let _ = Description::parse(&text);
    let _ = UserName::parse(&text);
    static SEALER: std::sync::LazyLock<Sealer> = std::sync::LazyLock::new(Sealer::random);
    let _ = SEALER.open(Purpose::WatchCursor, Some(Uuid::nil()), &text);
    let size = data
        .get(..4)
        .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let _ = PageRequest::parse(size, &text);

    let _ = pb::AuthorizeRequest::decode(data);
    let _ = pb::CreateTokenRequest::decode(data);
    let _ = pb::UpdateTokenRequest::decode(data);
    let _ = pb::ListTokensRequest::decode(data);
    let _ = pb::WatchApplicationsRequest::decode(data);
    let _ = pb::AddMemberRequest::decode(data);
    let _ = pb::SetApplicationStateRequest::decode(data);
}

/// Envoy's Check: the bytes decoded as a CheckRequest, and also read as one built field by field
/// (so headers, raw header bytes and Basic credentials are reached often). Whatever arrives:
/// no panic; a refusal is a 400 or 401 with a Circonus-shaped JSON body; the privilege follows
/// the method; and for every decision the answer never carries a presented secret, an allowed
/// answer strips the token from the upstream request and sets the identity headers.
pub fn ext_authz_check(data: &[u8]) {
    if let Ok(check) = CheckRequest::decode(data) {
        check_ext_authz(&check);
    }
    check_ext_authz(&structured_check(data));
}

/// A CheckRequest from fuzz bytes: the first byte picks where headers go and which known
/// credentials are added; the rest is the method, then header names and values, NUL-separated.
fn structured_check(data: &[u8]) -> CheckRequest {
    let (mode, rest) = data.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
    let mut fields = rest.split(|b| *b == 0);
    let method = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let mut headers = HashMap::new();
    let mut raw = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if mode & 1 == 0 {
            headers.insert(name, String::from_utf8_lossy(value).into_owned());
        } else {
            raw.push(HeaderValue {
                key: name,
                raw_value: value.to_vec(),
                ..Default::default()
            });
        }
    }
    if mode & 2 != 0 {
        headers.insert(TOKEN_HEADER.to_owned(), KNOWN_SECRET.to_owned());
    }
    if mode & 4 != 0 {
        use base64::Engine;
        let app = headers.get(APP_HEADER).cloned().unwrap_or_default();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{app}:{KNOWN_SECRET}"));
        headers.insert(AUTHORIZATION_HEADER.to_owned(), format!("Basic {basic}"));
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method,
                    headers,
                    header_map: (!raw.is_empty()).then_some(HeaderMap { headers: raw }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The HTTP request a Check asks about, if it says.
fn http_of(check: &CheckRequest) -> Option<&HttpRequest> {
    check
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
}

/// Every value the request presents under `name`, from either header form.
fn presented(check: &CheckRequest, name: &str) -> Vec<String> {
    let Some(http) = http_of(check) else {
        return Vec::new();
    };
    let raw = http.header_map.iter().flat_map(|map| &map.headers);
    http.headers
        .get(name)
        .cloned()
        .into_iter()
        .chain(
            raw.filter(|h| h.key.eq_ignore_ascii_case(name))
                .flat_map(|h| {
                    [
                        h.value.clone(),
                        String::from_utf8_lossy(&h.raw_value).into_owned(),
                    ]
                }),
        )
        .collect()
}

fn check_ext_authz(check: &CheckRequest) {
    let method = http_of(check).map_or("", |http| http.method.as_str());
    let mut secrets = presented(check, TOKEN_HEADER);
    secrets.extend(presented(check, AUTHORIZATION_HEADER));
    secrets.push(KNOWN_SECRET.to_owned());
    let mut echoed = presented(check, APP_HEADER);
    echoed.push(method.to_owned());
    echoed.extend((1..=3).map(|n| Uuid::from_u128(n).to_string()));
    let assert_no_secret = |response: &CheckResponse| {
        let seen = readable(response);
        for secret in secrets.iter().filter(|s| would_leak(s, &echoed)) {
            assert!(
                !seen.contains(secret.as_str()),
                "an answer carried the presented secret {secret:?}: {seen}"
            );
        }
    };
    let settings = ExtAuthzSettings::default();
    let (credentials, required) = match ext_authz_read_check(check, &settings) {
        Ok(asked) => asked,
        Err(refusal) => {
            assert_no_secret(&refusal);
            assert_refusal(&refusal, &[400, 401]);
            return;
        }
    };
    assert_eq!(required, settings.required_privilege(method));
    let grant = Arc::new(TokenGrant {
        // The ids an allowed answer carries, listed in `echoed` above.
        token_id: Uuid::from_u128(1),
        account_id: Uuid::from_u128(2),
        token_type: TokenType::User,
        owner_id: Some(Uuid::from_u128(3)),
        privilege: Privilege::Admin,
        default_app_state: api_tokens::domain::AppState::Pending,
        retired: false,
        owner: OwnerStatus::Member(Privilege::Admin),
        bound_ranges: Default::default(),
        expires_at: None,
        secret: api_tokens::domain::SecretUse::Current,
    });
    for decision in every_decision() {
        let outcome = AuthorizeOutcome {
            decision,
            grant: Some(grant.clone()),
            approval_ends: None,
        };
        let response = ext_authz_respond(check, &credentials.app, &outcome);
        assert_no_secret(&response);
        if decision.is_allow() {
            assert_allowed(&response);
        } else {
            assert_refusal(&response, &[decision.http_status()]);
        }
    }
}

/// Everything an answer says, as text: a denied body's JSON strings decoded (so an escape such
/// as `\u0016` followed by echoed text cannot spell a secret), the rest as `Debug` shows it.
fn readable(response: &CheckResponse) -> String {
    let mut response = response.clone();
    let mut decoded = String::new();
    if let Some(HttpResponse::DeniedResponse(denied)) = &mut response.http_response {
        let body = std::mem::take(&mut denied.body);
        match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(fields)) => {
                for value in fields.values() {
                    decoded.push('\n');
                    decoded.push_str(value.as_str().unwrap_or_default());
                }
            }
            _ => decoded = body,
        }
    }
    format!("{response:?}{decoded}")
}

fn every_decision() -> Vec<Decision> {
    let mut all = vec![
        Decision::Pending,
        Decision::Denied,
        Decision::UnknownToken,
        Decision::Retired,
        Decision::Expired,
        Decision::OwnerRemoved,
        Decision::AppLimitReached,
    ];
    for rule in [AddressRule::Token, AddressRule::Approval] {
        for unknown in [false, true] {
            all.push(Decision::AddressNotAllowed(AddressRefusal {
                rule,
                unknown,
            }));
        }
    }
    for effective in [Privilege::ReadOnly, Privilege::Normal, Privilege::Admin] {
        all.push(Decision::Allow { effective });
        all.push(Decision::InsufficientPrivilege {
            effective,
            required: Privilege::Admin,
        });
    }
    all
}

fn assert_refusal(response: &CheckResponse, statuses: &[u16]) {
    assert_ne!(
        response.status.as_ref().map_or(0, |s| s.code),
        0,
        "a refusal is not OK"
    );
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("a refusal carries a denied HTTP response");
    };
    let status = denied.status.as_ref().map_or(0, |s| s.code);
    assert!(
        statuses.iter().any(|s| i32::from(*s) == status),
        "HTTP status {status}, expected one of {statuses:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&denied.body).expect("the body is JSON");
    for field in ["code", "message", "explanation"] {
        assert!(body[field].is_string(), "the body has a {field} string");
    }
}

fn assert_allowed(response: &CheckResponse) {
    assert_eq!(
        response.status.as_ref().map_or(0, |s| s.code),
        0,
        "an allow is OK"
    );
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("an allow carries an OK HTTP response");
    };
    assert!(ok.headers_to_remove.iter().any(|h| h == TOKEN_HEADER));
    for identity in api_tokens::grpc::IDENTITY_HEADERS {
        let set = ok
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .any(|h| h.key == identity);
        assert!(set, "an allow sets {identity}");
    }
}
