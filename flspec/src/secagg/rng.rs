//! A ChaCha20 random number generator whose whole state is wiped on drop.
//!
//! `rand_chacha::ChaCha20Rng` keeps its key and its buffered output in memory after drop. The
//! client's dealer (Shamir coefficients) and stochastic-rounding RNGs, and the per-client RNGs
//! of [`super::simulate_round`], hold secrets, so they use [`SecretRng`] instead: the same
//! keystream, built on the `chacha20` crate's core (wiped on drop by its `zeroize` feature),
//! with the key and the output buffer wiped here.
//!
//! The output is bit for bit that of `rand_chacha::ChaCha20Rng::from_seed(seed)` (stream 0,
//! 64-bit block counter from 0) for every mix of `next_u32`, `next_u64` and `fill_bytes`, so
//! seeded rounds keep their golden digests.

use chacha20::ChaChaCore;
use chacha20::cipher::consts::U10;
use chacha20::cipher::{Block, KeyIvInit, StreamCipherCore};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Keystream blocks generated at a time (as `rand_chacha`, which buffers 4 blocks).
const BUF_BLOCKS: usize = 4;
/// 32-bit words in the buffer.
const BUF_WORDS: usize = BUF_BLOCKS * 16;

/// ChaCha20 (20 rounds) as a seeded CSPRNG: key, counter state and buffered output are wiped
/// on drop; `Debug` prints nothing of them; no `Clone` (a copy would duplicate the stream).
///
/// ```
/// use flspec::secagg::rng::SecretRng;
/// use rand_chacha::{rand_core::{RngCore, SeedableRng}, ChaCha20Rng};
///
/// let seed = [7u8; 32];
/// let mut ours = SecretRng::from_seed_ref(&seed);
/// let mut theirs = ChaCha20Rng::from_seed(seed);
/// assert_eq!(ours.next_u64(), theirs.next_u64());
/// ```
///
/// # Security
/// A seeded RNG is only as secret as its seed: draw the seed from an OS-seeded CSPRNG and
/// keep it in wiped memory.
pub struct SecretRng {
    core: ChaChaCore<U10>,
    key: [u8; 32],
    /// Keystream blocks not yet (fully) handed out.
    buf: [Block<ChaChaCore<U10>>; BUF_BLOCKS],
    /// Next unread word of `buf`; `BUF_WORDS` when empty.
    index: usize,
    /// Blocks generated so far (the next block's 64-bit counter).
    block: u64,
}

impl core::fmt::Debug for SecretRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretRng(<redacted>)")
    }
}

impl Drop for SecretRng {
    fn drop(&mut self) {
        self.key.zeroize();
        for b in &mut self.buf {
            b.as_mut_slice().zeroize();
        }
        self.index.zeroize();
        self.block.zeroize();
        // `core` wipes its own state (chacha20's `zeroize` feature).
    }
}

impl ZeroizeOnDrop for SecretRng {}

/// The core positioned at 64-bit block `block`: the IETF core's 32-bit counter holds the low
/// half, the first nonce word the high half (the layout of the original 64-bit-counter
/// ChaCha20 that `rand_chacha` uses, with stream 0).
fn core_at(key: &[u8; 32], block: u64) -> ChaChaCore<U10> {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&((block >> 32) as u32).to_le_bytes());
    let mut core = ChaChaCore::<U10>::new(key.into(), &nonce.into());
    chacha20::cipher::StreamCipherSeekCore::set_block_pos(&mut core, block as u32);
    core
}

impl SecretRng {
    /// The generator for `seed`, read by reference so that no copy of it is left behind.
    pub fn from_seed_ref(seed: &[u8; 32]) -> Self {
        Self {
            core: core_at(seed, 0),
            key: *seed,
            buf: Default::default(),
            index: BUF_WORDS,
            block: 0,
        }
    }

    /// Seeds a new generator from `rng` (32 bytes), wiping the intermediate seed.
    pub fn from_rng(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *seed);
        Self::from_seed_ref(&seed)
    }

    fn refill(&mut self) {
        self.core.write_keystream_blocks(&mut self.buf);
        self.block = self.block.wrapping_add(BUF_BLOCKS as u64);
        if self.block as u32 == 0 {
            // The IETF core's 32-bit counter wrapped: carry into the high half.
            self.core = core_at(&self.key, self.block);
        }
        self.index = 0;
    }

    fn word(&self, i: usize) -> u32 {
        let b = &self.buf[i / 16];
        let o = (i % 16) * 4;
        u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
    }

    #[cfg(test)]
    fn seek_block(&mut self, block: u64) {
        self.core = core_at(&self.key, block);
        self.block = block;
        self.index = BUF_WORDS;
    }
}

impl RngCore for SecretRng {
    fn next_u32(&mut self) -> u32 {
        if self.index >= BUF_WORDS {
            self.refill();
        }
        let w = self.word(self.index);
        self.index += 1;
        w
    }

    fn next_u64(&mut self) -> u64 {
        // As rand_core's BlockRng: two consecutive words, low first, across a refill if needed.
        let lo = u64::from(self.next_u32());
        let hi = u64::from(self.next_u32());
        (hi << 32) | lo
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // As rand_core's BlockRng: whole words are consumed, the unused bytes of a last
        // partial word are skipped.
        let mut done = 0;
        while done < dest.len() {
            if self.index >= BUF_WORDS {
                self.refill();
            }
            let start = self.index * 4;
            let avail = BUF_WORDS * 4 - start;
            let n = avail.min(dest.len() - done);
            for (k, d) in dest[done..done + n].iter_mut().enumerate() {
                let p = start + k;
                *d = self.buf[p / 64][p % 64];
            }
            done += n;
            self.index += n.div_ceil(4);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for SecretRng {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// The counter carries from 32 to 64 bits exactly as in rand_chacha (2^32 blocks in).
    #[test]
    fn counter_carries_past_2_pow_32_blocks_like_rand_chacha() {
        let seed = [0x3cu8; 32];
        let mut ours = SecretRng::from_seed_ref(&seed);
        let mut theirs = ChaCha20Rng::from_seed(seed);
        let start = (1u64 << 32) - 8;
        ours.seek_block(start);
        theirs.set_word_pos(u128::from(start) * 16);
        for i in 0..16 * 20 {
            assert_eq!(ours.next_u32(), theirs.next_u32(), "word {i}");
        }
        assert_eq!(ours.block >> 32, 1, "crossed into the high half");
    }
}
