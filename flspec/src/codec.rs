//! The serde encoding of flow states, shared by checkpoints and the federated runtime.
//!
//! States are encoded with [`postcard`]: compact, deterministic and free of code execution on
//! load (unlike the pickles other frameworks send).

use crate::{Error, Flow, Result};

/// Encodes a flow state.
///
/// # Errors
/// [`Error::Codec`] if a field fails to serialize.
pub fn encode_state<F: Flow>(state: &F) -> Result<Vec<u8>> {
    postcard::to_stdvec(state).map_err(|source| Error::Codec {
        flow: F::NAME,
        action: "encode",
        source,
    })
}

/// Decodes a flow state.
///
/// # Errors
/// [`Error::Codec`] if the bytes are not a state of this flow.
pub fn decode_state<F: Flow>(bytes: &[u8]) -> Result<F> {
    postcard::from_bytes(bytes).map_err(|source| Error::Codec {
        flow: F::NAME,
        action: "decode",
        source,
    })
}
