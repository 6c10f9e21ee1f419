//! The gRPC codec: every message of [`crate::wire`] is encoded with postcard.
//!
//! The service itself is generated at build time by tonic-build's manual builder (see
//! `build.rs`), so the crate needs neither `.proto` files nor a system `protoc`. tonic frames
//! each message and enforces the size limit ([`Limits`]) before the decoder sees it; the decoder
//! turns malformed bytes into `INVALID_ARGUMENT`, never a panic.

use std::marker::PhantomData;

use bytes::{Buf, BufMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::Error;

/// Size limits on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message a participant sends or accepts, in bytes. A flow state travels in
    /// one message, so this bounds the encoded state. Default: 256 MiB.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// The largest encoded state that fits a message with its envelope.
    pub fn max_state_bytes(&self) -> usize {
        self.max_message_bytes.saturating_sub(ENVELOPE)
    }

    /// Checks the size of an encoded state.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if it does not fit a message.
    pub fn check_state(&self, what: impl FnOnce() -> String, size: usize) -> crate::Result<()> {
        if size > self.max_state_bytes() {
            return Err(Error::TooLarge {
                what: what(),
                size,
                limit: self.max_state_bytes(),
            });
        }
        Ok(())
    }
}

/// Room for a message's fields other than the state (ids, names, the collaborator list).
const ENVELOPE: usize = 1 << 20;

/// Decodes one wire message.
///
/// # Errors
/// [`Error::Malformed`] if the bytes are not a `T`, or carry bytes after it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> crate::Result<T> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| Error::Malformed {
        what: std::any::type_name::<T>(),
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Malformed {
            what: std::any::type_name::<T>(),
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// Encodes one wire message.
///
/// # Errors
/// [`Error::Malformed`] if a value cannot be encoded.
pub fn encode<T: Serialize>(value: &T) -> crate::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Malformed {
        what: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// A tonic [`Codec`] that encodes `E` and decodes `D` with postcard.
#[derive(Debug)]
pub struct PostcardCodec<E, D>(PhantomData<fn(E) -> D>);

impl<E, D> Default for PostcardCodec<E, D> {
    fn default() -> Self {
        PostcardCodec(PhantomData)
    }
}

impl<E, D> Codec for PostcardCodec<E, D>
where
    E: Serialize + Send + 'static,
    D: DeserializeOwned + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = PostcardEncoder<E>;
    type Decoder = PostcardDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        PostcardEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        PostcardDecoder(PhantomData)
    }
}

/// The encoder of [`PostcardCodec`].
#[derive(Debug)]
pub struct PostcardEncoder<E>(PhantomData<fn(E)>);

impl<E: Serialize> Encoder for PostcardEncoder<E> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        postcard::to_io(&item, dst.writer())
            .map(|_| ())
            .map_err(|e| Status::internal(format!("could not encode a message: {e}")))
    }
}

/// The decoder of [`PostcardCodec`].
#[derive(Debug)]
pub struct PostcardDecoder<D>(PhantomData<fn() -> D>);

impl<D: DeserializeOwned> Decoder for PostcardDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        let len = src.remaining();
        let result = if src.chunk().len() == len {
            decode(src.chunk())
        } else {
            decode(&src.copy_to_bytes(len))
        };
        src.advance(src.remaining());
        result
            .map(Some)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }
}
