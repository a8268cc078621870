//! The protobuf codec with small buffers: our messages are a few hundred bytes, and tonic's
//! defaults (8 KiB per call, growing to 32 KiB on a burst) were most of an idle watcher's memory.
use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Bytes reserved per call for encoding or decoding; a larger message grows the buffer.
const BUFFER_SIZE: usize = 1024;
/// Bytes a stream encodes before handing them to HTTP/2. The buffer keeps the capacity it
/// grew to, so tonic's 32 KiB would let every watcher that received a large snapshot hold
/// 32 KiB for the rest of its life.
const YIELD_THRESHOLD: usize = 4 * 1024;

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
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }
}
