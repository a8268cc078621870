//! `AuthorizeResponse`, written by hand instead of by prost-build (build.rs maps the message
//! here), so that an allowed call's response is encoded straight from the cached grant.
//!
//! A generated message needs its five strings built first: three ids hex-encoded into their
//! own allocations, the explanation, then all of it copied again into the frame and freed.
//! That was a fifth of a warm Authorize's cost over Health/Check (docs/BENCHMARKS.md). On the
//! server an allowed response carries the grant and writes the same bytes from it; every
//! other response, and every decoded one, is the plain message with its public fields.
use std::sync::Arc;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};
use uuid::Uuid;

use super::pb::{Decision, Principal};
use crate::domain::{self, AppName, Privilege, TokenGrant};
use crate::service::AuthorizeOutcome;

/// Response of AuthorizeService.Authorize: the fields of `authorize_service.proto`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizeResponse {
    /// The decision (`Decision`).
    pub decision: i32,
    /// The HTTP status a REST gateway should answer: 200, 401 or 403.
    pub http_status: i32,
    /// A Circonus-style error code, e.g. "Forbidden.BadToken"; empty on ALLOW.
    pub error_code: String,
    /// A human-readable explanation; never contains the secret.
    pub reason: String,
    /// Who the token acts for; set only on ALLOW. Boxed: the response is moved through
    /// every layer on the way out, and the principal is most of its size.
    pub principal: Option<Box<Principal>>,
    /// Set only on the server, for an allowed call: what the encoding is written from,
    /// in place of the fields above (which are then empty).
    allowed: Option<Allowed>,
}

/// The grant an allowed call acted with, and the privilege it acted with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    grant: Arc<TokenGrant>,
    effective: Privilege,
}

// Field numbers, as in authorize_service.proto.
const DECISION: u32 = 1;
const HTTP_STATUS: u32 = 2;
const ERROR_CODE: u32 = 3;
const REASON: u32 = 4;
const PRINCIPAL: u32 = 5;
const ACCOUNT_ID: u32 = 1;
const USER_ID: u32 = 2;
const TOKEN_ID: u32 = 3;
const TOKEN_TYPE: u32 = 4;
const EFFECTIVE_PRIVILEGE: u32 = 5;
/// Every field this type writes and reads, per message, as the proto declares it: a test
/// compares them with the descriptor set (`wire_pins`).
#[cfg(test)]
pub(super) const WRITTEN_FIELDS: [(&str, &[super::wire_pins::Field]); 2] = {
    use super::wire_pins::Kind::{Enum, Int, Message, Text};
    [
        (
            "AuthorizeResponse",
            &[
                (DECISION, "decision", Enum),
                (HTTP_STATUS, "http_status", Int),
                (ERROR_CODE, "error_code", Text),
                (REASON, "reason", Text),
                (PRINCIPAL, "principal", Message),
            ],
        ),
        (
            "Principal",
            &[
                (ACCOUNT_ID, "account_id", Text),
                (USER_ID, "user_id", Text),
                (TOKEN_ID, "token_id", Text),
                (TOKEN_TYPE, "token_type", Enum),
                (EFFECTIVE_PRIVILEGE, "effective_privilege", Enum),
            ],
        ),
    ]
};
/// A hyphenated id's length, so an encoded id is a 1-byte key, a 1-byte length and the text.
const ID_LEN: usize = uuid::fmt::Hyphenated::LENGTH;

impl AuthorizeResponse {
    /// The response a gateway needs: decision, HTTP status, Circonus error code, reason and,
    /// when allowed, the principal.
    ///
    /// By value: an allowed response keeps the outcome's grant (an `Arc` cloned and dropped on
    /// every call is two more writes to a counter every worker thread shares).
    pub fn of(outcome: AuthorizeOutcome, app: &AppName) -> Self {
        let decision = outcome.decision;
        if let (domain::Decision::Allow { effective }, Some(grant)) = (decision, outcome.grant) {
            return AuthorizeResponse::allowed(grant, effective);
        }
        AuthorizeResponse {
            decision: Decision::from(decision).into(),
            http_status: decision.http_status().into(),
            error_code: decision.error_code().to_owned(),
            reason: decision.explanation(app.as_str()),
            ..Default::default()
        }
    }

    /// The response to an allowed call, encoded from `grant` when it is sent.
    fn allowed(grant: Arc<TokenGrant>, effective: Privilege) -> Self {
        AuthorizeResponse {
            allowed: Some(Allowed { grant, effective }),
            ..Default::default()
        }
    }

    /// The decision, or UNSPECIFIED for a value this build does not know.
    pub fn decision(&self) -> Decision {
        Decision::try_from(self.decision).unwrap_or_default()
    }
}

impl Allowed {
    fn http_status(&self) -> i32 {
        domain::Decision::Allow {
            effective: self.effective,
        }
        .http_status()
        .into()
    }

    /// `Decision::explanation` of an allow, which names no application.
    fn reason(&self) -> &'static str {
        self.effective.allowed_explanation()
    }

    fn encoded_len(&self) -> usize {
        let reason = self.reason().len();
        let principal = self.principal_len();
        encoding::int32::encoded_len(DECISION, &(Decision::Allow as i32))
            + encoding::int32::encoded_len(HTTP_STATUS, &self.http_status())
            + encoding::key_len(REASON)
            + encoding::encoded_len_varint(reason as u64)
            + reason
            + encoding::key_len(PRINCIPAL)
            + encoding::encoded_len_varint(principal as u64)
            + principal
    }

    fn principal_len(&self) -> usize {
        let ids = 2 + usize::from(self.grant.member_id().is_some());
        ids * (2 + ID_LEN)
            + encoding::int32::encoded_len(TOKEN_TYPE, &self.token_type())
            + encoding::int32::encoded_len(EFFECTIVE_PRIVILEGE, &self.effective_privilege())
    }

    fn token_type(&self) -> i32 {
        super::pb::TokenType::from(self.grant.token_type).into()
    }

    fn effective_privilege(&self) -> i32 {
        super::pb::Privilege::from(self.effective).into()
    }

    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::int32::encode(DECISION, &(Decision::Allow as i32), buf);
        encoding::int32::encode(HTTP_STATUS, &self.http_status(), buf);
        let reason = self.reason();
        encoding::encode_key(REASON, WireType::LengthDelimited, buf);
        encoding::encode_varint(reason.len() as u64, buf);
        buf.put_slice(reason.as_bytes());
        encoding::encode_key(PRINCIPAL, WireType::LengthDelimited, buf);
        encoding::encode_varint(self.principal_len() as u64, buf);
        encode_id(ACCOUNT_ID, self.grant.account_id, buf);
        if let Some(member) = self.grant.member_id() {
            encode_id(USER_ID, member, buf);
        }
        encode_id(TOKEN_ID, self.grant.token_id, buf);
        encoding::int32::encode(TOKEN_TYPE, &self.token_type(), buf);
        encoding::int32::encode(EFFECTIVE_PRIVILEGE, &self.effective_privilege(), buf);
    }
}

/// An id as a string field, hex-encoded straight into the frame.
fn encode_id(tag: u32, id: Uuid, buf: &mut impl BufMut) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(ID_LEN as u64, buf);
    buf.put_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
}

impl Message for AuthorizeResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(allowed) = &self.allowed {
            return allowed.encode_raw(buf);
        }
        if self.decision != 0 {
            encoding::int32::encode(DECISION, &self.decision, buf);
        }
        if self.http_status != 0 {
            encoding::int32::encode(HTTP_STATUS, &self.http_status, buf);
        }
        if !self.error_code.is_empty() {
            encoding::string::encode(ERROR_CODE, &self.error_code, buf);
        }
        if !self.reason.is_empty() {
            encoding::string::encode(REASON, &self.reason, buf);
        }
        if let Some(principal) = &self.principal {
            encoding::message::encode(PRINCIPAL, principal, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            DECISION => encoding::int32::merge(wire_type, &mut self.decision, buf, ctx),
            HTTP_STATUS => encoding::int32::merge(wire_type, &mut self.http_status, buf, ctx),
            ERROR_CODE => encoding::string::merge(wire_type, &mut self.error_code, buf, ctx),
            REASON => encoding::string::merge(wire_type, &mut self.reason, buf, ctx),
            PRINCIPAL => encoding::message::merge(
                wire_type,
                self.principal.get_or_insert_with(Box::default).as_mut(),
                buf,
                ctx,
            ),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        if let Some(allowed) = &self.allowed {
            return allowed.encoded_len();
        }
        let int32 = |tag, value: &i32| match value {
            0 => 0,
            v => encoding::int32::encoded_len(tag, v),
        };
        let string = |tag, value: &String| match value.is_empty() {
            true => 0,
            false => encoding::string::encoded_len(tag, value),
        };
        int32(DECISION, &self.decision)
            + int32(HTTP_STATUS, &self.http_status)
            + string(ERROR_CODE, &self.error_code)
            + string(REASON, &self.reason)
            + self
                .principal
                .as_ref()
                .map_or(0, |p| encoding::message::encoded_len(PRINCIPAL, p))
    }

    fn clear(&mut self) {
        *self = AuthorizeResponse::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OwnerStatus, TokenType};
    use crate::grpc::pb;
    use crate::service::test_grant;

    /// The caches' test grant (a user token), or the same as an account token.
    fn grant(token_type: TokenType) -> Arc<TokenGrant> {
        let user = test_grant(Uuid::from_u64_pair(2, 2), Some(Uuid::from_u64_pair(3, 3)));
        match token_type {
            TokenType::User => user,
            TokenType::Account => Arc::new(TokenGrant {
                token_type,
                owner_id: None,
                owner: OwnerStatus::Account,
                ..(*user).clone()
            }),
        }
    }

    /// The principal as a generated message carries it.
    fn principal(grant: &TokenGrant, effective: Privilege) -> Principal {
        let id = |id: Uuid| id.to_string();
        Principal {
            account_id: id(grant.account_id),
            user_id: grant.member_id().map(id).unwrap_or_default(),
            token_id: id(grant.token_id),
            token_type: pb::TokenType::from(grant.token_type).into(),
            effective_privilege: pb::Privilege::from(effective).into(),
        }
    }

    /// The same response as the generated message would carry it, from the domain's rules.
    fn built(grant: &TokenGrant, effective: Privilege) -> AuthorizeResponse {
        let allow = domain::Decision::Allow { effective };
        AuthorizeResponse {
            decision: Decision::from(allow).into(),
            http_status: allow.http_status().into(),
            error_code: allow.error_code().to_owned(),
            reason: allow.explanation("any application"),
            principal: Some(Box::new(principal(grant, effective))),
            ..Default::default()
        }
    }

    #[test]
    fn an_allowed_response_encodes_as_its_fields_would() {
        for token_type in [TokenType::User, TokenType::Account] {
            for effective in [Privilege::ReadOnly, Privilege::Normal, Privilege::Admin] {
                let grant = grant(token_type);
                let outcome = AuthorizeOutcome {
                    decision: domain::Decision::Allow { effective },
                    grant: Some(grant.clone()),
                    approval_ends: None,
                };
                let app = AppName::parse("Terraform v0.12.x").unwrap();
                let written = AuthorizeResponse::of(outcome, &app);
                assert!(written.allowed.is_some(), "written from the grant");
                let expected = built(&grant, effective);
                assert_eq!(written.encoded_len(), expected.encoded_len());
                assert_eq!(written.encode_to_vec(), expected.encode_to_vec());
                let decoded = AuthorizeResponse::decode(&written.encode_to_vec()[..]).unwrap();
                assert_eq!(decoded, expected, "{token_type:?} {effective:?}");
            }
        }
    }

    #[test]
    fn a_refusal_round_trips_and_unknown_fields_are_skipped() {
        let refused = AuthorizeResponse {
            decision: Decision::Retired as i32,
            http_status: 403,
            error_code: "Forbidden.BadToken".into(),
            reason: "retired".into(),
            ..Default::default()
        };
        let mut bytes = refused.encode_to_vec();
        encoding::string::encode(15, &"from a newer build".to_owned(), &mut bytes);
        let decoded = AuthorizeResponse::decode(&bytes[..]).unwrap();
        assert_eq!(decoded, refused);
        assert_eq!(decoded.decision(), Decision::Retired);
        assert_eq!(AuthorizeResponse::default().encoded_len(), 0);
    }
}
