//! Property-based tests of the domain rules for random callers, tokens and inputs
//! (the server-level properties are in server.rs and members.rs beside this file).
use api_tokens::domain::{
    AppName, AppState, Caller, Decision, Description, OwnerStatus, Privilege, Secret,
    SecretParseError, Token, TokenGrant, TokenType, decide,
};
use chrono::Utc;
use proptest::prelude::*;
use proptest::test_runner::Config;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Domain level: thousands of cases in microseconds, over every combination the types allow.

/// Two accounts and three members are enough to hit "same", "other" and "none" in every field.
const ACCOUNTS: [Uuid; 2] = [Uuid::from_u128(0xA), Uuid::from_u128(0xB)];
const MEMBERS: [Uuid; 3] = [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)];

fn privilege() -> impl Strategy<Value = Privilege> {
    prop_oneof![
        Just(Privilege::ReadOnly),
        Just(Privilege::Normal),
        Just(Privilege::Admin)
    ]
}

fn token_type() -> impl Strategy<Value = TokenType> {
    prop_oneof![Just(TokenType::User), Just(TokenType::Account)]
}

fn app_state() -> impl Strategy<Value = AppState> {
    prop_oneof![
        Just(AppState::Allow),
        Just(AppState::Pending),
        Just(AppState::Deny)
    ]
}

/// A member id or none, independently of the token type: the rules must hold even for
/// shapes the service never builds (a user token without owner, an account token with one).
fn member() -> impl Strategy<Value = Option<Uuid>> {
    proptest::option::of(proptest::sample::select(MEMBERS.to_vec()))
}

fn caller() -> impl Strategy<Value = Caller> {
    (
        proptest::sample::select(ACCOUNTS.to_vec()),
        token_type(),
        member(),
        privilege(),
    )
        .prop_map(|(account_id, token_type, member_id, privilege)| Caller {
            account_id,
            token_id: Uuid::new_v4(),
            token_type,
            member_id,
            privilege,
            app: api_tokens::domain::AppName::parse("property-app").expect("name"),
            client: None,
            secret: api_tokens::domain::SecretUse::Current,
        })
}

fn token() -> impl Strategy<Value = Token> {
    (
        proptest::sample::select(ACCOUNTS.to_vec()),
        token_type(),
        member(),
        privilege(),
        app_state(),
        any::<bool>(),
    )
        .prop_map(
            |(account_id, token_type, owner_id, privilege, default_app_state, retired)| {
                let now = Utc::now();
                Token {
                    id: Uuid::new_v4(),
                    account_id,
                    token_type,
                    owner_id,
                    privilege,
                    default_app_state,
                    description: Description::default(),
                    creator_id: owner_id,
                    created_at: now,
                    updated_at: now,
                    retired_at: retired.then_some(now),
                    promoted_at: None,
                    last_used_at: None,
                    bound_ranges: Default::default(),
                    expires_at: None,
                    rotated_at: None,
                    previous_secret: None,
                }
            },
        )
}

fn grant() -> impl Strategy<Value = TokenGrant> {
    let owner = prop_oneof![
        Just(OwnerStatus::Account),
        Just(OwnerStatus::Removed),
        privilege().prop_map(OwnerStatus::Member),
    ];
    (
        token_type(),
        member(),
        privilege(),
        app_state(),
        any::<bool>(),
        owner,
    )
        .prop_map(
            |(token_type, owner_id, privilege, default_app_state, retired, owner)| TokenGrant {
                token_id: Uuid::new_v4(),
                account_id: ACCOUNTS[0],
                token_type,
                owner_id,
                privilege,
                default_app_state,
                retired,
                owner,
                bound_ranges: Default::default(),
                expires_at: None,
                secret: api_tokens::domain::SecretUse::Current,
            },
        )
}

/// What docs/permissions.md and `AppName`'s documentation promise, written independently.
fn app_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !name.starts_with(' ')
        && !name.ends_with(' ')
}

fn secret_is_valid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Strings near what the parsers accept, so both answers are exercised often.
fn near_secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "[0-9a-fA-Fg-]{34,38}",
        "[0-9a-f]{8}.[0-9a-f]{4}.[0-9a-f]{4}.[0-9a-f]{4}.[0-9a-f]{12}",
        any::<String>(),
        ".{0,40}",
    ]
}

fn near_app_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,205}",
        "[ -~]{195,205}",
        "[ -~\t\n\u{7f}\u{e9}\u{1F600}]{0,20}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 2048, failure_persistence: None, ..Config::default() })]

    /// Non-admins see only their own user tokens; nobody sees another account's tokens;
    /// an Admin sees every token of its account.
    #[test]
    fn visibility_never_leaks(c in caller(), t in token()) {
        let seen = c.can_see(&t);
        if t.account_id != c.account_id {
            prop_assert!(!seen, "another account's token");
        } else if c.is_admin() {
            prop_assert!(seen, "an Admin sees the whole account");
        } else if seen {
            prop_assert_eq!(t.token_type, TokenType::User, "non-admin saw an account token");
            prop_assert!(t.owner_id.is_some() && t.owner_id == c.member_id,
                "non-admin saw someone else's token");
        }
        prop_assert_eq!(seen, c.can_see_token(t.account_id, t.token_type, t.owner_id));
    }

    /// Nobody creates a token above their own privilege; Read-Only creates nothing; account
    /// tokens are Admin-only; user tokens need a user. And whatever meets all that is allowed.
    #[test]
    fn creation_never_escalates(c in caller(), kind in token_type(), p in privilege()) {
        let allowed = c.may_create(kind, p).is_ok();
        let expected = c.privilege != Privilege::ReadOnly
            && p <= c.privilege
            && match kind {
                TokenType::Account => c.privilege == Privilege::Admin,
                TokenType::User => c.member_id.is_some(),
            };
        prop_assert_eq!(allowed, expected);
        prop_assert_eq!(c.require_may_grant(p).is_ok(), p <= c.privilege);
        prop_assert_eq!(c.require_admin().is_ok(), c.privilege == Privilege::Admin);
        prop_assert_eq!(c.require_write().is_ok(), c.privilege != Privilege::ReadOnly);
    }

    /// `decide` allows only an allowed application, a usable token, and enough privilege; the
    /// effective privilege never exceeds the token's, nor a user token owner's current role.
    #[test]
    fn decide_never_allows_below_the_required_privilege(
        g in grant(), state in app_state(), required in privilege()
    ) {
        let usable = g.usable(chrono::Utc::now());
        if let Ok(effective) = usable {
            prop_assert!(effective <= g.privilege);
            if let OwnerStatus::Member(role) = g.owner {
                prop_assert!(effective <= role, "user token above its owner's role");
            }
        }
        match decide(&g, state, required) {
            Decision::Allow { effective } => {
                prop_assert!(effective >= required);
                prop_assert_eq!(state, AppState::Allow);
                prop_assert!(!g.retired);
                prop_assert_ne!(g.owner, OwnerStatus::Removed);
                prop_assert_eq!(Ok(effective), usable);
            }
            Decision::InsufficientPrivilege { effective, required: r } => {
                prop_assert!(effective < r);
                prop_assert_eq!(r, required);
            }
            Decision::Retired => prop_assert!(g.retired),
            Decision::OwnerRemoved => prop_assert_eq!(g.owner, OwnerStatus::Removed),
            Decision::Pending => prop_assert_eq!(state, AppState::Pending),
            Decision::Denied => prop_assert_eq!(state, AppState::Deny),
            other => prop_assert!(false, "decide never answers {:?}", other),
        }
    }

    /// `AppName::parse` never panics and accepts exactly 1 to 200 printable ASCII characters
    /// without a leading or trailing space.
    #[test]
    fn app_name_accepts_exactly_what_it_documents(name in near_app_name()) {
        match AppName::parse(&name) {
            Ok(parsed) => {
                prop_assert!(app_name_is_valid(&name), "accepted {:?}", name);
                prop_assert_eq!(parsed.as_str(), name.as_str());
            }
            Err(why) => {
                prop_assert!(!app_name_is_valid(&name), "refused {:?}: {}", name, why);
                prop_assert!(!why.is_empty());
            }
        }
    }

    /// `Secret::parse` never panics, accepts exactly the 8-4-4-4-12 hexadecimal shape in any
    /// case, and normalises it to lower case.
    #[test]
    fn secret_accepts_exactly_what_it_documents(s in near_secret()) {
        match Secret::parse(&s) {
            Ok(secret) => {
                prop_assert!(secret_is_valid(&s), "accepted {:?}", s);
                prop_assert_eq!(secret.expose(), s.to_ascii_lowercase());
                let shown = format!("{secret:?}");
                prop_assert!(!shown.contains(secret.expose()));
            }
            Err(SecretParseError::Empty) => prop_assert!(s.is_empty()),
            Err(SecretParseError::NotUuidShaped) => {
                prop_assert!(!s.is_empty() && !secret_is_valid(&s), "refused {:?}", s);
            }
        }
    }

    /// Descriptions: at most 1000 characters, no control characters but newlines, no
    /// invisible or bidirectional control characters.
    #[test]
    fn description_accepts_exactly_what_it_documents(
        text in prop_oneof!["[ -~\n\t\u{7}\u{e9}\u{202e}\u{200b}]{990,1010}", any::<String>()]
    ) {
        let valid = text.chars().count() <= 1000
            && !text.chars().any(|c| c.is_control() && c != '\n')
            && !text.chars().any(api_tokens::domain::is_invisible);
        prop_assert_eq!(Description::parse(&text).is_ok(), valid);
    }
}
