//! The Authorize request as the server reads it: the secret is checked where it lies in the
//! request and the application name kept inline, so reading a request with a name of up to 24
//! bytes (and no revision or client address) allocates nothing.
//!
//! prost's `AuthorizeRequest` makes a `String` of each field: two allocations, two copies and
//! two frees, a third of what Authorize cost beyond Health/Check (docs/BENCHMARKS.md). Clients
//! still send `pb::AuthorizeRequest`: the wire format is the same, and a test decodes random
//! requests and random bytes both ways.
use compact_str::CompactString;
use prost::DecodeError;
use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, check_wire_type, decode_key, decode_varint};
use tonic::codec::{Codec, DecodeBuf};
use tonic_prost::{ProstCodec, ProstEncoder};

use super::authorize_response::AuthorizeResponse;
use super::codec::{CallerBytesDecoder, ReadMessage};
use crate::domain::{Secret, SecretParseError};

/// What an `AuthorizeRequest` carried, field by field (see the proto for their meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeCall {
    /// The secret, checked as it was read (a malformed one is refused with the field's name).
    pub token: Result<Secret, SecretParseError>,
    pub app_name: CompactString,
    pub required_privilege: i32,
    pub min_revision: String,
    pub client_address: String,
}

impl Default for AuthorizeCall {
    fn default() -> Self {
        AuthorizeCall {
            token: Err(SecretParseError::Empty),
            app_name: CompactString::default(),
            required_privilege: 0,
            min_revision: String::new(),
            client_address: String::new(),
        }
    }
}

// Field numbers, as in authorize_service.proto (pinned to it by `wire_pins`).
const TOKEN: u32 = 1;
const APP_NAME: u32 = 2;
const REQUIRED_PRIVILEGE: u32 = 3;
const MIN_REVISION: u32 = 4;
const CLIENT_ADDRESS: u32 = 5;

/// Every field `decode` reads, as the proto declares it: a test compares this with the
/// descriptor set, so a field added to the proto cannot be dropped here unnoticed.
#[cfg(test)]
pub(super) const READ_FIELDS: [super::wire_pins::Field; 5] = {
    use super::wire_pins::Kind::{Enum, Text};
    [
        (TOKEN, "token", Text),
        (APP_NAME, "app_name", Text),
        (REQUIRED_PRIVILEGE, "required_privilege", Enum),
        (MIN_REVISION, "min_revision", Text),
        (CLIENT_ADDRESS, "client_address", Text),
    ]
};

/// Why bytes are not an `AuthorizeRequest`: the caller's mistake, so INVALID_ARGUMENT.
#[derive(Debug, thiserror::Error)]
pub enum CallDecodeError {
    #[error(transparent)]
    Wire(#[from] DecodeError),
    #[error("{field}: buffer underflow")]
    Underflow { field: &'static str },
    #[error("{field}: invalid string value: data is not UTF-8 encoded")]
    NotUtf8 { field: &'static str },
}

impl AuthorizeCall {
    /// Reads a request as protobuf does: fields in any order, the last of a repeated field
    /// wins, unknown fields skipped.
    pub fn decode(mut buf: impl Buf) -> Result<Self, CallDecodeError> {
        let mut call = AuthorizeCall::default();
        while buf.has_remaining() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            match tag {
                TOKEN => {
                    call.token = read_field(&mut buf, wire_type, "token", Secret::parse_bytes)?
                }
                APP_NAME => {
                    call.app_name =
                        read_text(&mut buf, wire_type, "app_name", |s| CompactString::from(s))?
                }
                REQUIRED_PRIVILEGE => {
                    check_wire_type(WireType::Varint, wire_type)?;
                    // As protobuf reads an int32: the low 32 bits of the varint.
                    call.required_privilege = decode_varint(&mut buf)? as i32;
                }
                MIN_REVISION => {
                    call.min_revision =
                        read_text(&mut buf, wire_type, "min_revision", str::to_owned)?
                }
                CLIENT_ADDRESS => {
                    call.client_address =
                        read_text(&mut buf, wire_type, "client_address", str::to_owned)?
                }
                _ => {
                    prost::encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default())?
                }
            }
        }
        Ok(call)
    }
}

/// A length-delimited field's bytes, handed to `read` where they lie when the buffer holds
/// them in one piece (a request's buffer does), then skipped.
fn read_field<T>(
    buf: &mut impl Buf,
    wire_type: WireType,
    field: &'static str,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<T, CallDecodeError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = decode_varint(buf)?;
    if len > buf.remaining() as u64 {
        return Err(CallDecodeError::Underflow { field });
    }
    let len = len as usize;
    if buf.chunk().len() >= len {
        let value = read(&buf.chunk()[..len]);
        buf.advance(len);
        Ok(value)
    } else {
        Ok(read(&buf.copy_to_bytes(len)))
    }
}

/// `read_field` for a string field: its bytes must be UTF-8.
fn read_text<T>(
    buf: &mut impl Buf,
    wire_type: WireType,
    field: &'static str,
    read: impl FnOnce(&str) -> T,
) -> Result<T, CallDecodeError> {
    read_field(buf, wire_type, field, |bytes| {
        std::str::from_utf8(bytes).map(read)
    })?
    .map_err(|_| CallDecodeError::NotUtf8 { field })
}

/// The Authorize method's codec: requests read by `AuthorizeCall::decode`, responses written
/// by prost with the small buffers every other method uses.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeCodec;

impl Codec for AuthorizeCodec {
    type Encode = AuthorizeResponse;
    type Decode = AuthorizeCall;
    type Encoder = ProstEncoder<AuthorizeResponse>;
    type Decoder = CallerBytesDecoder<AuthorizeCall>;

    fn encoder(&mut self) -> Self::Encoder {
        // The second type is what prost would decode; this codec never uses prost for that.
        ProstCodec::<AuthorizeResponse, ()>::raw_encoder(super::codec::buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CallerBytesDecoder::default()
    }
}

impl ReadMessage for AuthorizeCall {
    type Error = CallDecodeError;

    fn read(buf: &mut DecodeBuf<'_>) -> Result<Self, CallDecodeError> {
        AuthorizeCall::decode(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::pb;
    use proptest::prelude::*;
    use prost::Message;

    /// What prost's generated type reads from the same bytes, in `AuthorizeCall`'s terms.
    fn as_prost_reads(bytes: &[u8]) -> Option<AuthorizeCall> {
        let request = pb::AuthorizeRequest::decode(bytes).ok()?;
        Some(AuthorizeCall {
            token: Secret::parse(&request.token),
            app_name: request.app_name.into(),
            required_privilege: request.required_privilege,
            min_revision: request.min_revision,
            client_address: request.client_address,
        })
    }

    fn request() -> impl Strategy<Value = pb::AuthorizeRequest> {
        let token = prop_oneof![
            Just(String::new()),
            "[0-9a-fA-F]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-fA-F]{12}",
            ".{0,40}",
        ];
        (token, ".{0,40}", any::<i32>(), ".{0,8}", ".{0,8}").prop_map(
            |(token, app_name, required_privilege, min_revision, client_address)| {
                pb::AuthorizeRequest {
                    token,
                    app_name,
                    required_privilege,
                    min_revision,
                    client_address,
                }
            },
        )
    }

    proptest! {
        #[test]
        fn reads_what_prost_writes(request in request()) {
            let bytes = request.encode_to_vec();
            let call = AuthorizeCall::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(Some(call), as_prost_reads(&bytes));
        }

        /// Any bytes: where prost reads a request this reads the same one, and where prost
        /// refuses the bytes this refuses them too, except a token that is not UTF-8, which
        /// is read as a malformed secret (refused all the same, naming the field).
        #[test]
        fn agrees_with_prost_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let ours = AuthorizeCall::decode(bytes.as_slice()).ok();
            match as_prost_reads(&bytes) {
                Some(theirs) => prop_assert_eq!(ours, Some(theirs)),
                None => prop_assert!(
                    ours.is_none() || ours.is_some_and(|call| call.token.is_err()),
                    "prost refused bytes this read as a well-formed secret"
                ),
            }
        }
    }

    #[test]
    fn the_last_of_a_repeated_field_wins_and_unknown_fields_are_skipped() {
        let secret = Secret::generate();
        let mut bytes = pb::AuthorizeRequest {
            token: "first".into(),
            app_name: "first".into(),
            ..Default::default()
        }
        .encode_to_vec();
        // Field 9 (unknown, varint 7), then token and app_name again.
        bytes.extend([9 << 3, 7]);
        bytes.extend(
            pb::AuthorizeRequest {
                token: secret.expose().to_owned(),
                app_name: "second".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let call = AuthorizeCall::decode(bytes.as_slice()).unwrap();
        assert_eq!(call.token, Ok(secret));
        assert_eq!(call.app_name, "second");
    }

    #[test]
    fn debug_hides_the_secret() {
        let secret = Secret::generate();
        let bytes = pb::AuthorizeRequest {
            token: secret.expose().to_owned(),
            app_name: "app".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let call = AuthorizeCall::decode(bytes.as_slice()).unwrap();
        let shown = format!("{call:?}");
        assert!(!shown.contains(secret.expose()), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn a_string_that_is_not_utf8_names_its_field() {
        let bytes = [2 << 3 | 2, 2, 0xff, 0xfe];
        let error = AuthorizeCall::decode(&bytes[..]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "app_name: invalid string value: data is not UTF-8 encoded"
        );
        let truncated = [2 << 3 | 2, 9, b'a'];
        let error = AuthorizeCall::decode(&truncated[..]).unwrap_err();
        assert_eq!(error.to_string(), "app_name: buffer underflow");
    }
}
