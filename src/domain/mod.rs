//! The rules of API tokens as plain Rust types: no prost, tonic or sea-orm here.
mod address;
mod app;
mod authorize;
mod caller;
mod conditions;
mod decision;
mod lifecycle;
mod member;
mod names;
mod notices;
mod precondition;
mod privilege;
mod reason;
mod secret;
mod time;
mod token;
mod validate;

pub use address::AddressRanges;
pub use app::{AppName, AppStanding, AppState, Application, Evidence, Rationale};
pub use authorize::{Call, OwnerStatus, TokenGrant, decide, decide_with};
pub use caller::{Caller, PolicyDenial, may_grant};
pub use conditions::Conditions;
pub use decision::{AddressRefusal, AddressRule, Decision};
pub use lifecycle::{AccountPolicy, ExpiryRefusal, PreviousSecret, Rotation, SecretUse};
pub use member::{Account, Member, UserName, validate_account_name};
pub(crate) use names::names;
pub use names::{Named, UnknownName};
pub use notices::{Notice, NoticeKind, TokenTimes};
pub use precondition::Precondition;
pub use privilege::Privilege;
pub use reason::Reason;
pub use secret::{Secret, SecretDigest, SecretParseError};
pub use time::{
    Clock, EARLIEST_SECOND, LATEST_SECOND, LONGEST_DURATION_SECONDS, earlier_by, later_by, latest,
    now, representable, span_of, time_of, truncate_span_to_micros, truncate_to_micros,
};
pub use token::{Description, Token, TokenDraft, TokenState, TokenType};
pub use validate::{ECHO_BYTES, FieldViolation, echo, is_invisible};
