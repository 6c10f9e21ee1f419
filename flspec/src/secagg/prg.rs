//! The mask PRG: the ChaCha20 keystream (RFC 8439, 96-bit zero nonce, counter from 0) keyed by
//! the full 32-byte derived key, read as little-endian `u32` words.
//!
//! Raw words are uniform in `Z_(2^32)` already, so there is no modulo bias. One key yields at
//! most `2^32` blocks (`2^36` words), far above any model size.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Words per keystream chunk (16 KiB): large enough for the SIMD backends, small enough for L1/L2.
const CHUNK_WORDS: usize = 4096;

/// Whether a mask is added to or subtracted from the vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    /// `acc += PRG(key)`.
    Plus,
    /// `acc -= PRG(key)`.
    Minus,
}

/// A 32-byte PRG key (a pairwise or self mask key). Consumed by use, wiped on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MaskKey([u8; 32]);

impl core::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MaskKey(<redacted>)")
    }
}

impl MaskKey {
    /// Wraps raw key bytes (the caller should wipe its copy).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Adds (`Sign::Plus`) or subtracts (`Sign::Minus`) the keystream words to `acc`, wrapping.
    pub fn apply(self, acc: &mut [u32], sign: Sign) {
        apply_mask(&self.0, acc, sign);
    }

    /// The first `len` keystream words (for tests and known-answer checks).
    pub fn keystream_words(self, len: usize) -> Vec<u32> {
        let mut out = vec![0u32; len];
        apply_mask(&self.0, &mut out, Sign::Plus);
        out
    }
}

fn apply_mask(key: &[u8; 32], acc: &mut [u32], sign: Sign) {
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    let mut buf = [0u8; CHUNK_WORDS * 4];
    for chunk in acc.chunks_mut(CHUNK_WORDS) {
        let bytes = &mut buf[..chunk.len() * 4];
        bytes.fill(0);
        cipher.apply_keystream(bytes);
        let words = bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        match sign {
            Sign::Plus => chunk
                .iter_mut()
                .zip(words)
                .for_each(|(a, w)| *a = a.wrapping_add(w)),
            Sign::Minus => chunk
                .iter_mut()
                .zip(words)
                .for_each(|(a, w)| *a = a.wrapping_sub(w)),
        }
    }
    buf.zeroize();
}
