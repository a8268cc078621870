//! The wire: generated protobuf types, thin handlers, conversions and the one error mapping.
mod accounts;
mod authorize;
mod authorize_call;
mod authorize_response;
mod client_address;
pub mod codec;
mod consistency;
mod convert;
mod credentials;
mod ext_authz;
mod request;
mod status;
mod tokens;
#[cfg(test)]
mod wire_pins;

pub use accounts::AccountHandler;
pub use authorize::AuthorizeHandler;
pub use client_address::FORWARDED_FOR_HEADER;
pub use consistency::{MIN_REVISION_HEADER, REVISION_HEADER};
pub use convert::{duration, timestamp};
pub use credentials::{
    APP_HEADER, CredentialsError, HeaderSource, NotText, TOKEN_HEADER, credentials,
    credentials_from_metadata,
};
pub use ext_authz::{
    ACCOUNT_ID_HEADER, ExtAuthzHandler, ExtAuthzSettings, IDENTITY_HEADERS, PRIVILEGE_HEADER,
    TOKEN_ID_HEADER, TOKEN_TYPE_HEADER, USER_ID_HEADER, read_check as ext_authz_read_check,
    respond as ext_authz_respond,
};
pub use status::{internal, log_cause, retry_after, with_reason};
pub use tokens::TokenHandler;

/// The AuthorizeService server `build.rs` generates over `AuthorizeCall`: the one served
/// (`pb::authorize_service_server`, generated with the rest, is not).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod authorize_server {
    include!(concat!(
        env!("OUT_DIR"),
        "/apitokens.v1.AuthorizeService.rs"
    ));
}

/// Code generated from `proto/apitokens/v1` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("apitokens.v1");

    pub use super::authorize_response::AuthorizeResponse;

    /// The descriptor set that reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("apitokens_descriptor");
}
