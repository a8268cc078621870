//! Why a call was refused: every `google.rpc.ErrorInfo` reason this service sends, in one list.
//!
//! The names are part of the API: clients branch on them. The comments of
//! `proto/apitokens/v1/resources.proto` and `docs/errors.md` list them for callers; a test
//! below keeps all three in step.

/// A stable, machine-readable reason, sent as `ErrorInfo.reason` in domain `apitokens.v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // The Authorize decision, refusing a management caller's own credentials.
    /// The calling application waits for approval on the token.
    AppPending,
    /// The calling application is denied on the token.
    AppDenied,
    /// No token has this secret.
    UnknownToken,
    /// The token is retired: refused as a credential, and as the target of a change.
    TokenRetired,
    /// The token has expired: refused as a credential, and as the target of a change.
    TokenExpired,
    /// The token's effective privilege is below what the call needs.
    InsufficientPrivilege,
    /// The owner of the user token is no longer a member.
    OwnerRemoved,
    /// A new application name past the token's cap.
    AppLimitReached,
    /// The client's address is outside the token's or the approval's address ranges.
    AddressNotAllowed,

    // Credentials that cannot be read.
    /// No token, or no application name.
    MissingCredentials,
    /// A header that is not text, or Basic credentials that do not decode.
    MalformedCredentials,
    /// The token is not UUID-shaped.
    MalformedToken,
    /// The application name breaks its rules.
    MalformedAppName,
    /// The credentials say two different things.
    AmbiguousCredentials,

    // The rules, refusing a caller who may see the target.
    /// Read-Only callers change nothing.
    ReadOnlyCaller,
    /// Only an Admin may do this.
    AdminRequired,
    /// Nobody grants more than their own privilege.
    PrivilegeAboveCaller,
    /// An account token has no user to own a user token.
    NoUserToOwnToken,
    /// Nobody widens the approval of the application they call as, on their own token.
    OwnApproval,

    // The target's state.
    /// The token is already an account token.
    AlreadyAccountToken,
    /// The change would leave the account without an Admin.
    LastAdmin,
    /// One-Step-Install needs a token of Normal privilege or more.
    TokenPrivilegeTooLow,
    /// The account's policy requires an expiry.
    ExpiryRequired,
    /// The expiry is further away than the account's policy allows.
    LifetimeAbovePolicy,
    /// The watch cursor points at changes compacted away.
    CursorExpired,

    // Conflicts.
    /// The write conflicts with an existing resource.
    Conflict,
    /// An account of that name exists.
    AccountExists,
    /// That user is already a member.
    MemberExists,
    /// The CreateToken request_id made a token already.
    RequestAlreadyDone,

    // The server's state: retry.
    /// A concurrent change aborted this one; nothing was written.
    ConcurrentChange,
    /// The server is shutting down.
    ShuttingDown,
    /// The server is at its concurrent-request limit.
    Overloaded,
    /// The server has not reached its database yet.
    Starting,
    /// The database cannot store changes now (disk full, I/O error, read-only); nothing
    /// was stored, and reads go on.
    StorageUnwritable,
    /// The call took longer than the server's request timeout.
    RequestTimeout,
    /// Too many calls of this kind from this client: retry after the RetryInfo's delay.
    RateLimited,
}

impl Reason {
    /// Every reason, in the order the docs list them.
    pub const ALL: [Reason; 36] = [
        Reason::AppPending,
        Reason::AppDenied,
        Reason::UnknownToken,
        Reason::TokenRetired,
        Reason::TokenExpired,
        Reason::InsufficientPrivilege,
        Reason::OwnerRemoved,
        Reason::AppLimitReached,
        Reason::AddressNotAllowed,
        Reason::MissingCredentials,
        Reason::MalformedCredentials,
        Reason::MalformedToken,
        Reason::MalformedAppName,
        Reason::AmbiguousCredentials,
        Reason::ReadOnlyCaller,
        Reason::AdminRequired,
        Reason::PrivilegeAboveCaller,
        Reason::NoUserToOwnToken,
        Reason::OwnApproval,
        Reason::AlreadyAccountToken,
        Reason::LastAdmin,
        Reason::TokenPrivilegeTooLow,
        Reason::ExpiryRequired,
        Reason::LifetimeAbovePolicy,
        Reason::CursorExpired,
        Reason::Conflict,
        Reason::AccountExists,
        Reason::MemberExists,
        Reason::RequestAlreadyDone,
        Reason::ConcurrentChange,
        Reason::ShuttingDown,
        Reason::Overloaded,
        Reason::Starting,
        Reason::StorageUnwritable,
        Reason::RequestTimeout,
        Reason::RateLimited,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AppPending => "APP_PENDING",
            Reason::AppDenied => "APP_DENIED",
            Reason::UnknownToken => "UNKNOWN_TOKEN",
            Reason::TokenRetired => "TOKEN_RETIRED",
            Reason::TokenExpired => "TOKEN_EXPIRED",
            Reason::InsufficientPrivilege => "INSUFFICIENT_PRIVILEGE",
            Reason::OwnerRemoved => "OWNER_REMOVED",
            Reason::AppLimitReached => "APP_LIMIT_REACHED",
            Reason::AddressNotAllowed => "ADDRESS_NOT_ALLOWED",
            Reason::MissingCredentials => "MISSING_CREDENTIALS",
            Reason::MalformedCredentials => "MALFORMED_CREDENTIALS",
            Reason::MalformedToken => "MALFORMED_TOKEN",
            Reason::MalformedAppName => "MALFORMED_APP_NAME",
            Reason::AmbiguousCredentials => "AMBIGUOUS_CREDENTIALS",
            Reason::ReadOnlyCaller => "READ_ONLY_CALLER",
            Reason::AdminRequired => "ADMIN_REQUIRED",
            Reason::PrivilegeAboveCaller => "PRIVILEGE_ABOVE_CALLER",
            Reason::NoUserToOwnToken => "NO_USER_TO_OWN_TOKEN",
            Reason::OwnApproval => "OWN_APPROVAL",
            Reason::AlreadyAccountToken => "ALREADY_ACCOUNT_TOKEN",
            Reason::LastAdmin => "LAST_ADMIN",
            Reason::TokenPrivilegeTooLow => "TOKEN_PRIVILEGE_TOO_LOW",
            Reason::ExpiryRequired => "EXPIRY_REQUIRED",
            Reason::LifetimeAbovePolicy => "LIFETIME_ABOVE_POLICY",
            Reason::CursorExpired => "CURSOR_EXPIRED",
            Reason::Conflict => "CONFLICT",
            Reason::AccountExists => "ACCOUNT_EXISTS",
            Reason::MemberExists => "MEMBER_EXISTS",
            Reason::RequestAlreadyDone => "REQUEST_ALREADY_DONE",
            Reason::ConcurrentChange => "CONCURRENT_CHANGE",
            Reason::ShuttingDown => "SHUTTING_DOWN",
            Reason::Overloaded => "OVERLOADED",
            Reason::Starting => "STARTING",
            Reason::StorageUnwritable => "STORAGE_UNWRITABLE",
            Reason::RequestTimeout => "REQUEST_TIMEOUT",
            Reason::RateLimited => "RATE_LIMITED",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every upper-case word of a text: the names a listing can hold.
    fn words(text: &str) -> HashSet<&str> {
        text.split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .collect()
    }

    #[test]
    fn names_are_distinct() {
        let names: HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
    }

    #[test]
    fn the_proto_and_the_docs_list_every_reason() {
        for (file, text) in [
            (
                "proto/apitokens/v1/resources.proto",
                include_str!("../../proto/apitokens/v1/resources.proto"),
            ),
            ("docs/errors.md", include_str!("../../docs/errors.md")),
        ] {
            let words = words(text);
            for reason in Reason::ALL {
                assert!(
                    words.contains(reason.as_str()),
                    "{file} does not list {reason}"
                );
            }
        }
    }
}
