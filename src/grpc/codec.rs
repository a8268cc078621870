//! The protobuf codec with small buffers: our messages are a few hundred bytes, and tonic's
//! defaults (8 KiB per call, growing to 32 KiB on a burst) were most of an idle watcher's memory.
use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Bytes reserved per call for encoding or decoding; a larger message grows the buffer.
const BUFFER_SIZE: usize = 1024;
/// Bytes a stream encodes before handing them to HTTP/2. The buffer keeps the capacity it
/// grew to, so tonic's 32 KiB would let every watcher that received a large snapshot hold
/// 32 KiB for the rest of its life.
const YIELD_THRESHOLD: usize = 4 * 1024;

/// The buffer sizes every method's codec uses.
pub(super) fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// A message the server reads from a caller's bytes: any prost message, or a type with a
/// reader of its own (`AuthorizeCall`).
pub trait ReadMessage: Sized {
    type Error: std::fmt::Display;

    fn read(buf: &mut DecodeBuf<'_>) -> Result<Self, Self::Error>;
}

impl<U: Message + Default> ReadMessage for U {
    type Error = prost::DecodeError;

    fn read(buf: &mut DecodeBuf<'_>) -> Result<Self, Self::Error> {
        U::decode(buf)
    }
}

#[derive(Debug, Clone)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        SmallBufferCodec(PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CallerBytesDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CallerBytesDecoder::default()
    }
}

/// Reading a message with one change from tonic-prost: bytes that are not a valid message (invalid UTF-8 in a
/// string field, a wrong wire type, a truncated field) are INVALID_ARGUMENT, not the INTERNAL
/// that tonic-prost answers by gRPC's status-code table. The server decodes only what a caller
/// sent, so it is the caller's mistake, and INTERNAL is what alerts count as a server bug
/// (tests/api/hostile_input.rs). A client of this crate decoding a malformed response sees
/// INVALID_ARGUMENT too; the message says what failed to decode.
#[derive(Debug)]
pub struct CallerBytesDecoder<U>(PhantomData<U>);

impl<U> Default for CallerBytesDecoder<U> {
    fn default() -> Self {
        CallerBytesDecoder(PhantomData)
    }
}

impl<U: ReadMessage> Decoder for CallerBytesDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::read(buf)
            .map(Some)
            .map_err(|error| Status::invalid_argument(error.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}
