//! The hand-written Authorize request reader and response writer pinned to the proto: their
//! field numbers, names and kinds must be exactly the descriptor set's, so a field added to
//! `authorize_service.proto` fails here until the hand-written code handles it.
use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};

use super::pb::FILE_DESCRIPTOR_SET;

/// A field as the hand-written code handles it: number, name, kind.
pub(super) type Field = (u32, &'static str, Kind);

/// What a field is on the wire, as far as the hand-written code cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Text,
    Enum,
    Int,
    Message,
}

impl Kind {
    fn of(t: Type) -> Option<Kind> {
        match t {
            Type::String => Some(Kind::Text),
            Type::Enum => Some(Kind::Enum),
            Type::Int32 => Some(Kind::Int),
            Type::Message => Some(Kind::Message),
            _ => None,
        }
    }
}

/// The message `apitokens.v1.NAME` as the descriptor set declares it.
fn message(name: &str) -> DescriptorProto {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("the built descriptor set");
    set.file
        .into_iter()
        .filter(|f| f.package() == "apitokens.v1")
        .flat_map(|f| f.message_type)
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("apitokens.v1.{name} is in the descriptor set"))
}

/// The proto's fields of `name`, as (number, name, kind), in number order.
fn declared(name: &str) -> Vec<(u32, String, Option<Kind>)> {
    let mut fields: Vec<_> = message(name)
        .field
        .iter()
        .map(|f| (f.number() as u32, f.name().to_owned(), Kind::of(f.r#type())))
        .collect();
    fields.sort();
    fields
}

fn handled(fields: &[Field]) -> Vec<(u32, String, Option<Kind>)> {
    let mut fields: Vec<_> = fields
        .iter()
        .map(|&(number, name, kind)| (number, name.to_owned(), Some(kind)))
        .collect();
    fields.sort();
    fields
}

#[test]
fn the_request_reader_reads_every_field_of_the_proto() {
    assert_eq!(
        handled(&super::authorize_call::READ_FIELDS),
        declared("AuthorizeRequest"),
        "src/grpc/authorize_call.rs must read exactly AuthorizeRequest's fields"
    );
}

#[test]
fn the_response_writer_writes_every_field_of_the_proto() {
    for (name, fields) in super::authorize_response::WRITTEN_FIELDS {
        assert_eq!(
            handled(fields),
            declared(name),
            "src/grpc/authorize_response.rs must write exactly {name}'s fields"
        );
    }
}
