//! Caller credentials, the Circonus way: `x-circonus-auth-token` and `x-circonus-app-name`,
//! or `authorization: Basic base64(app:token)`. One parser reads them from gRPC metadata
//! (management calls) and from the HTTP headers Envoy forwards in an ext_authz Check.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tonic::metadata::MetadataMap;

use crate::domain::{AppName, Secret, SecretParseError};
use crate::service::{Credentials, ServiceError};

pub const TOKEN_HEADER: &str = "x-circonus-auth-token";
pub const APP_HEADER: &str = "x-circonus-app-name";
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// A header that is present but whose value is not printable ASCII text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotText;

/// Anything credentials can be read from: gRPC metadata, or an HTTP request's headers.
pub trait HeaderSource {
    /// The value of the header with this lower-case name, if present.
    fn header(&self, name: &str) -> Result<Option<&str>, NotText>;
}

impl HeaderSource for MetadataMap {
    fn header(&self, name: &str) -> Result<Option<&str>, NotText> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).map_err(|_| NotText),
        }
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
}

impl From<CredentialsError> for ServiceError {
    fn from(err: CredentialsError) -> Self {
        let reason = match err {
            CredentialsError::Missing => "MISSING_CREDENTIALS",
            CredentialsError::Malformed(_) => "MALFORMED_CREDENTIALS",
            CredentialsError::MalformedToken(_) => "MALFORMED_TOKEN",
            CredentialsError::MalformedAppName(_) => "MALFORMED_APP_NAME",
        };
        ServiceError::Unauthenticated {
            reason,
            message: err.to_string(),
        }
    }
}

fn text<'a>(
    headers: &'a impl HeaderSource,
    name: &str,
) -> Result<Option<&'a str>, CredentialsError> {
    headers.header(name).map_err(|NotText| {
        CredentialsError::Malformed(format!("header {name} is not printable ASCII"))
    })
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
    let (app, token) = text.split_once(':').ok_or_else(malformed)?;
    Ok((app.to_owned(), token.to_owned()))
}

/// Reads and validates credentials. The Circonus headers win when both forms are present,
/// so an `authorization` header meant for someone else does not get in the way.
pub fn credentials(headers: &impl HeaderSource) -> Result<Credentials, CredentialsError> {
    let token = text(headers, TOKEN_HEADER)?;
    let app = text(headers, APP_HEADER)?;
    let (app, token) = match (app, token, text(headers, AUTHORIZATION_HEADER)?) {
        (Some(app), Some(token), _) => (app.to_owned(), token.to_owned()),
        (_, _, Some(auth)) => basic(auth)?,
        _ => return Err(CredentialsError::Missing),
    };
    let secret = Secret::parse(&token).map_err(CredentialsError::MalformedToken)?;
    let app = AppName::parse(&app).map_err(CredentialsError::MalformedAppName)?;
    Ok(Credentials { secret, app })
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
        fn header(&self, name: &str) -> Result<Option<&str>, NotText> {
            Ok(self.0.get(name).copied())
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
                reason: "MISSING_CREDENTIALS",
                ..
            })
        ));
        let mut md = MetadataMap::new();
        md.insert("authorization", "Basic !!!".parse().unwrap());
        assert!(matches!(
            credentials_from_metadata(&md),
            Err(ServiceError::Unauthenticated {
                reason: "MALFORMED_CREDENTIALS",
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
                    reason: "MALFORMED_TOKEN",
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
