//! Fuzzes what a caller controls before any database is touched: the three credential headers
//! (as real gRPC metadata), the domain parsers, page tokens and cursors, and prost decoding
//! of every request of the Authorize and management paths. Nothing may panic, and a refusal
//! never echoes the presented token.
#![no_main]

use api_tokens::domain::{AppName, Description, Secret, UserName};
use api_tokens::grpc::{credentials, pb};
use api_tokens::service::{PageRequest, decode_cursor};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::metadata::MetadataMap;

const HEADERS: [&str; 3] = [
    "x-circonus-auth-token",
    "x-circonus-app-name",
    "authorization",
];

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

fuzz_target!(|data: &[u8]| {
    // The input is up to three header values separated by NUL bytes (never valid in a header).
    let mut map = http::HeaderMap::new();
    let mut token = None;
    for (name, value) in HEADERS.iter().zip(data.split(|b| *b == 0)) {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            if *name == HEADERS[0] {
                token = value.to_str().ok().map(str::to_owned);
            }
            map.insert(*name, value);
        }
    }
    if let Err(refused) = credentials(&MetadataMap::from_headers(map)) {
        if let Some(token) = token.filter(|t| t.len() >= 8 && !FIXED.contains(t.as_str())) {
            assert!(
                !refused.to_string().contains(&token),
                "a refusal echoed the token"
            );
        }
    }

    let text = String::from_utf8_lossy(data);
    let _ = AppName::parse(&text);
    let _ = Secret::parse(&text);
    let _ = Description::parse(&text);
    let _ = UserName::parse(&text);
    let _ = decode_cursor(&text);
    let size = data
        .get(..4)
        .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let _ = PageRequest::parse(size, &text);

    let _ = pb::AuthorizeRequest::decode(data);
    let _ = pb::CreateTokenRequest::decode(data);
    let _ = pb::UpdateTokenRequest::decode(data);
    let _ = pb::ListTokensRequest::decode(data);
    let _ = pb::WatchApplicationsRequest::decode(data);
});
