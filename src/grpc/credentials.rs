//! Caller credentials from gRPC metadata, the Circonus way: `x-circonus-auth-token` and
//! `x-circonus-app-name`, or `authorization: Basic base64(app:token)`.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tonic::metadata::MetadataMap;

use crate::domain::{AppName, Secret};
use crate::service::{Credentials, ServiceError};

pub const TOKEN_HEADER: &str = "x-circonus-auth-token";
pub const APP_HEADER: &str = "x-circonus-app-name";

fn unauthenticated(reason: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Unauthenticated {
        reason,
        message: message.into(),
    }
}

fn header<'a>(metadata: &'a MetadataMap, name: &str) -> Result<Option<&'a str>, ServiceError> {
    match metadata.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            unauthenticated(
                "MALFORMED_CREDENTIALS",
                format!("metadata {name} is not printable ASCII"),
            )
        }),
    }
}

/// Basic credentials: the user name is the application, the password the token.
fn basic(value: &str) -> Result<(String, String), ServiceError> {
    let malformed = || {
        unauthenticated(
            "MALFORMED_CREDENTIALS",
            "authorization must be Basic base64(app name:token)",
        )
    };
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (app, token) = text.split_once(':').ok_or_else(malformed)?;
    Ok((app.to_owned(), token.to_owned()))
}

pub fn credentials_from_metadata(metadata: &MetadataMap) -> Result<Credentials, ServiceError> {
    let token = header(metadata, TOKEN_HEADER)?;
    let app = header(metadata, APP_HEADER)?;
    let (app, token) = match (app, token, header(metadata, "authorization")?) {
        (Some(app), Some(token), _) => (app.to_owned(), token.to_owned()),
        (_, _, Some(auth)) => basic(auth)?,
        _ => {
            return Err(unauthenticated(
                "MISSING_CREDENTIALS",
                format!(
                    "send metadata {TOKEN_HEADER} and {APP_HEADER}, or authorization: Basic base64(app:token)"
                ),
            ));
        }
    };
    let secret = Secret::parse(&token)
        .map_err(|e| unauthenticated("MALFORMED_TOKEN", format!("the authentication token {e}")))?;
    let app = AppName::parse(&app)
        .map_err(|e| unauthenticated("MALFORMED_APP_NAME", format!("the application name {e}")))?;
    Ok(Credentials { secret, app })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "fb349ef1-91e4-4b05-aaa2-52246b77ea66";

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
            !err.to_string().contains("abc-123"),
            "the presented token is never echoed"
        );
    }
}
