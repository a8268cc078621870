//! Caller credentials, the Circonus way: `x-circonus-auth-token` and `x-circonus-app-name`,
//! or `authorization: Basic base64(app:token)`. One parser reads them from gRPC metadata
//! (management calls) and from the HTTP headers Envoy forwards in an ext_authz Check.
//!
//! Credentials must say one thing: two different values of a header, or headers and Basic
//! credentials that disagree, are refused (AMBIGUOUS_CREDENTIALS) rather than one silently
//! winning, so a proxy or a client cannot be made to authorize one identity and log another.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tonic::metadata::MetadataMap;

use crate::domain::{AppName, Reason, Secret, SecretParseError};
use crate::service::{Credentials, ServiceError};

pub const TOKEN_HEADER: &str = "x-circonus-auth-token";
pub const APP_HEADER: &str = "x-circonus-app-name";
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// A header that is present but whose value is not printable ASCII text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotText;

/// Anything credentials can be read from: gRPC metadata, or an HTTP request's headers.
pub trait HeaderSource {
    /// Every value of the header with this lower-case name, in order; empty if absent.
    fn header_values(&self, name: &str) -> Result<Vec<&str>, NotText>;

    /// The first value of the header with this lower-case name, if present.
    fn header(&self, name: &str) -> Result<Option<&str>, NotText> {
        Ok(self.header_values(name)?.into_iter().next())
    }
}

impl HeaderSource for MetadataMap {
    fn header_values(&self, name: &str) -> Result<Vec<&str>, NotText> {
        self.get_all(name)
            .iter()
            .map(|value| value.to_str().map_err(|_| NotText))
            .collect()
    }
}

/// Why no credentials could be read. No variant carries the presented secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "send headers {TOKEN_HEADER} and {APP_HEADER}, or authorization: Basic base64(app name:token)"
    )]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("the authentication token {0}")]
    MalformedToken(SecretParseError),
    #[error("the application name {0}")]
    MalformedAppName(String),
    #[error("{0}")]
    Ambiguous(String),
}

impl From<CredentialsError> for ServiceError {
    fn from(err: CredentialsError) -> Self {
        let reason = match err {
            CredentialsError::Missing => Reason::MissingCredentials,
            CredentialsError::Malformed(_) => Reason::MalformedCredentials,
            CredentialsError::MalformedToken(_) => Reason::MalformedToken,
            CredentialsError::MalformedAppName(_) => Reason::MalformedAppName,
            CredentialsError::Ambiguous(_) => Reason::AmbiguousCredentials,
        };
        ServiceError::Unauthenticated {
            reason,
            message: err.to_string(),
        }
    }
}

/// The one value of a header, if present: several values must all be the same. With
/// `list`, a value is also split at commas, the way proxies join repeated headers (Envoy
/// does); only for headers whose values never hold a comma (tokens).
fn single<'a>(
    headers: &'a impl HeaderSource,
    name: &str,
    list: bool,
) -> Result<Option<&'a str>, CredentialsError> {
    let values = headers.header_values(name).map_err(|NotText| {
        CredentialsError::Malformed(format!("header {name} is not printable ASCII"))
    })?;
    let mut parts = values.into_iter().flat_map(|v| {
        if list {
            v.split(',').map(str::trim).collect::<Vec<_>>()
        } else {
            vec![v]
        }
    });
    let first = parts.next();
    if let Some(first) = first
        && parts.any(|other| other != first)
    {
        return Err(CredentialsError::Ambiguous(format!(
            "header {name} is sent with different values; send it once"
        )));
    }
    Ok(first)
}

/// The value both forms agree on, or the one form present.
fn agree(
    header: Option<&str>,
    basic: Option<&str>,
    what: &str,
) -> Result<Option<String>, CredentialsError> {
    match (header, basic) {
        (Some(h), Some(b)) if h != b => Err(CredentialsError::Ambiguous(format!(
            "the {what} in the headers and in the authorization: Basic credentials differ; send one"
        ))),
        (h, b) => Ok(h.or(b).map(str::to_owned)),
    }
}

/// Whether an `authorization` value uses the Basic scheme, i.e. carries a token as its password.
pub fn is_basic(value: &str) -> bool {
    value
        .trim_start()
        .split_once(' ')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// Basic credentials: the user name is the application, the password the token.
fn basic(value: &str) -> Result<(String, String), CredentialsError> {
    let malformed =
        || CredentialsError::Malformed("authorization must be Basic base64(app name:token)".into());
    if !is_basic(value) {
        return Err(malformed());
    }
    let (_, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    // Split at the last colon: the secret never holds one, app names may (`circonus:osi:…`).
    let (app, token) = text.rsplit_once(':').ok_or_else(malformed)?;
    Ok((app.to_owned(), token.to_owned()))
}

/// Reads and validates credentials. An `authorization` header of another scheme (say a
/// Bearer token for the upstream) is left alone when the Circonus headers are complete;
/// Basic credentials are ours, and must agree with the headers.
pub fn credentials(headers: &impl HeaderSource) -> Result<Credentials, CredentialsError> {
    let token = single(headers, TOKEN_HEADER, true)?;
    let app = single(headers, APP_HEADER, false)?;
    let auth = single(headers, AUTHORIZATION_HEADER, false)?;
    let from_basic = match auth {
        Some(auth) if is_basic(auth) => Some(basic(auth)?),
        Some(auth) if app.is_none() || token.is_none() => Some(basic(auth)?),
        _ => None,
    };
    let (basic_app, basic_token) = match &from_basic {
        Some((app, token)) => (Some(app.as_str()), Some(token.as_str())),
        None => (None, None),
    };
    let token = agree(token, basic_token, "token")?;
    let app = agree(app, basic_app, "application name")?;
    let (Some(app), Some(token)) = (app, token) else {
        return Err(CredentialsError::Missing);
    };
    let secret = Secret::parse(&token).map_err(CredentialsError::MalformedToken)?;
    let app = AppName::parse(&app).map_err(CredentialsError::MalformedAppName)?;
    Ok(Credentials {
        secret,
        app,
        client: None,
    })
}

/// Credentials of a management call, refused as UNAUTHENTICATED when missing or malformed.
pub fn credentials_from_metadata(metadata: &MetadataMap) -> Result<Credentials, ServiceError> {
    Ok(credentials(metadata)?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "fb349ef1-91e4-4b05-aaa2-52246b77ea66";

    /// The shape of the headers Envoy forwards: lower-case names, text values.
    struct Http(HashMap<&'static str, &'static str>);

    impl HeaderSource for Http {
        fn header_values(&self, name: &str) -> Result<Vec<&str>, NotText> {
            Ok(self.0.get(name).copied().into_iter().collect())
        }
    }

    #[test]
    fn headers_or_basic() {
        let mut md = MetadataMap::new();
        md.insert(TOKEN_HEADER, SECRET.parse().unwrap());
        md.insert(APP_HEADER, "ExampleApp".parse().unwrap());
        assert_eq!(
            credentials_from_metadata(&md).unwrap().app.as_str(),
            "ExampleApp"
        );

        let mut md = MetadataMap::new();
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("Terraform v0.12.x:{SECRET}"))
        );
        md.insert("authorization", basic.parse().unwrap());
        let creds = credentials_from_metadata(&md).unwrap();
        assert_eq!(creds.app.as_str(), "Terraform v0.12.x");
        assert_eq!(creds.secret.expose(), SECRET);
    }

    #[test]
    fn the_same_parser_reads_http_headers() {
        let http = Http(HashMap::from([
            (TOKEN_HEADER, SECRET),
            (APP_HEADER, "curl"),
        ]));
        let creds = credentials(&http).unwrap();
        assert_eq!(creds.app.as_str(), "curl");
        assert_eq!(creds.secret.expose(), SECRET);

        let bearer = Http(HashMap::from([
            (TOKEN_HEADER, SECRET),
            (APP_HEADER, "curl"),
            (AUTHORIZATION_HEADER, "Bearer something-for-upstream"),
        ]));
        assert!(credentials(&bearer).is_ok(), "Circonus headers win");
        assert_eq!(
            credentials(&Http(HashMap::from([(APP_HEADER, "curl")]))).unwrap_err(),
            CredentialsError::Missing
        );
    }

    fn basic_of(app: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{app}:{secret}")))
    }

    fn reason(err: CredentialsError) -> &'static str {
        match ServiceError::from(err) {
            ServiceError::Unauthenticated { reason, .. } => reason.as_str(),
            other => panic!("not UNAUTHENTICATED: {other:?}"),
        }
    }

    #[test]
    fn basic_splits_at_the_last_colon() {
        let app = "circonus:osi:0018fd34aa2e3c1b49e36ef4b8a8d4b0ab6e2b7f1b8e7c0d9d5f3d3f0a8ff759";
        let mut md = MetadataMap::new();
        md.insert("authorization", basic_of(app, SECRET).parse().unwrap());
        let creds = credentials_from_metadata(&md).unwrap();
        assert_eq!(creds.app.as_str(), app);
        assert_eq!(creds.secret.expose(), SECRET);
    }

    #[test]
    fn repeated_headers_with_different_values_are_refused() {
        const OTHER: &str = "ec45e8a2-d6d9-624c-c21c-a83f573731c1";
        let mut md = MetadataMap::new();
        md.append(TOKEN_HEADER, SECRET.parse().unwrap());
        md.append(TOKEN_HEADER, OTHER.parse().unwrap());
        md.insert(APP_HEADER, "curl".parse().unwrap());
        assert_eq!(
            reason(credentials(&md).unwrap_err()),
            "AMBIGUOUS_CREDENTIALS"
        );

        let mut md = MetadataMap::new();
        md.insert(TOKEN_HEADER, SECRET.parse().unwrap());
        md.append(APP_HEADER, "curl".parse().unwrap());
        md.append(APP_HEADER, "wget".parse().unwrap());
        assert_eq!(
            reason(credentials(&md).unwrap_err()),
            "AMBIGUOUS_CREDENTIALS"
        );

        // The same value twice says one thing.
        let mut md = MetadataMap::new();
        md.append(TOKEN_HEADER, SECRET.parse().unwrap());
        md.append(TOKEN_HEADER, SECRET.parse().unwrap());
        md.insert(APP_HEADER, "curl".parse().unwrap());
        assert!(credentials(&md).is_ok());

        // Proxies join repeated headers with commas.
        let joined = format!("{SECRET},{OTHER}");
        let http = Http(HashMap::from([
            (TOKEN_HEADER, joined.leak() as &'static str),
            (APP_HEADER, "curl"),
        ]));
        assert_eq!(
            reason(credentials(&http).unwrap_err()),
            "AMBIGUOUS_CREDENTIALS"
        );
    }

    #[test]
    fn headers_and_basic_must_agree() {
        const OTHER: &str = "ec45e8a2-d6d9-624c-c21c-a83f573731c1";
        let mut md = MetadataMap::new();
        md.insert(TOKEN_HEADER, SECRET.parse().unwrap());
        md.insert(APP_HEADER, "curl".parse().unwrap());
        md.insert("authorization", basic_of("curl", OTHER).parse().unwrap());
        assert_eq!(
            reason(credentials(&md).unwrap_err()),
            "AMBIGUOUS_CREDENTIALS"
        );
        md.insert("authorization", basic_of("wget", SECRET).parse().unwrap());
        assert_eq!(
            reason(credentials(&md).unwrap_err()),
            "AMBIGUOUS_CREDENTIALS"
        );
        md.insert("authorization", basic_of("curl", SECRET).parse().unwrap());
        assert!(credentials(&md).is_ok(), "the same credentials twice agree");
    }

    #[test]
    fn basic_scheme_is_recognised_in_any_case() {
        assert!(is_basic("Basic Zm9vOmJhcg=="));
        assert!(is_basic("basic Zm9vOmJhcg=="));
        assert!(!is_basic("Bearer abc"));
        assert!(!is_basic("Basic"));
    }

    #[test]
    fn missing_or_malformed_is_unauthenticated() {
        let md = MetadataMap::new();
        assert!(matches!(
            credentials_from_metadata(&md),
            Err(ServiceError::Unauthenticated {
                reason: Reason::MissingCredentials,
                ..
            })
        ));
        let mut md = MetadataMap::new();
        md.insert("authorization", "Basic !!!".parse().unwrap());
        assert!(matches!(
            credentials_from_metadata(&md),
            Err(ServiceError::Unauthenticated {
                reason: Reason::MalformedCredentials,
                ..
            })
        ));
        let mut md = MetadataMap::new();
        md.insert(TOKEN_HEADER, "abc-123".parse().unwrap());
        md.insert(APP_HEADER, "x".parse().unwrap());
        let err = credentials_from_metadata(&md).unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::Unauthenticated {
                    reason: Reason::MalformedToken,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            !err.to_string().contains("abc-123"),
            "the presented token is never echoed"
        );
    }
}
