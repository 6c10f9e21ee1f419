//! The mask PRG: the ChaCha20 keystream (RFC 8439, 96-bit zero nonce, counter from 0) keyed by
//! the full 32-byte derived key, read as little-endian `u32` words.
//!
//! Raw words are uniform in `Z_(2^32)` already, so there is no modulo bias. One key yields at
//! most `2^32` blocks (`2^36` words), far above any model size.

use chacha20::ChaChaCore;
use chacha20::cipher::consts::U10;
use chacha20::cipher::{Block, KeyIvInit, StreamCipherCore};
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

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
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
    // The block-level core writes the keystream straight into the scratch blocks (no zeroing
    // and XOR pass), which keeps masking within a few percent of the raw keystream speed.
    let mut core = ChaChaCore::<U10>::new(key.into(), &[0u8; 12].into());
    let mut blocks = vec![Block::<ChaChaCore<U10>>::default(); CHUNK_WORDS / 16];
    for chunk in acc.chunks_mut(CHUNK_WORDS) {
        let n_blocks = chunk.len().div_ceil(16);
        core.write_keystream_blocks(&mut blocks[..n_blocks]);
        for (dst, block) in chunk.chunks_mut(16).zip(&blocks[..n_blocks]) {
            let block: &[u8; 64] = block.as_ref();
            match (sign, <&mut [u32; 16]>::try_from(&mut *dst)) {
                // Full blocks: fixed sizes, so the loop has no bounds checks and vectorizes.
                (Sign::Plus, Ok(full)) => add_block(full, block),
                (Sign::Minus, Ok(full)) => sub_block(full, block),
                (_, Err(_)) => tail(dst, block, sign),
            }
        }
    }
    for b in &mut blocks {
        b.as_mut_slice().zeroize();
    }
}

#[inline(always)]
fn add_block(dst: &mut [u32; 16], block: &[u8; 64]) {
    for (a, w) in dst.iter_mut().zip(block.chunks_exact(4)) {
        *a = a.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
}

#[inline(always)]
fn sub_block(dst: &mut [u32; 16], block: &[u8; 64]) {
    for (a, w) in dst.iter_mut().zip(block.chunks_exact(4)) {
        *a = a.wrapping_sub(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
}

fn tail(dst: &mut [u32], block: &[u8; 64], sign: Sign) {
    for (a, w) in dst.iter_mut().zip(block.chunks_exact(4)) {
        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        *a = match sign {
            Sign::Plus => a.wrapping_add(w),
            Sign::Minus => a.wrapping_sub(w),
        };
    }
}
