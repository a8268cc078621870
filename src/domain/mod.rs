//! The rules of API tokens as plain Rust types: no prost, tonic or sea-orm here.
mod app;
mod authorize;
mod caller;
mod member;
mod names;
mod precondition;
mod privilege;
mod reason;
mod secret;
mod time;
mod token;
mod validate;

pub use app::{AppName, AppState, Application};
pub use authorize::{Decision, OwnerStatus, TokenGrant, decide};
pub use caller::{Caller, PolicyDenial, may_grant};
pub use member::{Account, Member, UserName, validate_account_name};
pub(crate) use names::names;
pub use names::{Named, UnknownName};
pub use precondition::Precondition;
pub use privilege::Privilege;
pub use reason::Reason;
pub use secret::{Secret, SecretDigest, SecretParseError};
pub use time::{now, truncate_to_micros};
pub use token::{Description, Token, TokenDraft, TokenState, TokenType};
pub use validate::{FieldViolation, is_invisible};
