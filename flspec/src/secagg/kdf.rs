//! Key derivation (HKDF-SHA256, RFC 5869) for every key of a round.
//!
//! Every derivation uses the session id as salt and an `info` of fixed-width fields (no
//! delimiters): the protocol label, a one-byte purpose, the round as big-endian `u64`, and the
//! client ids as big-endian `u32`. So keys never repeat across sessions, rounds, purposes,
//! pairs or directions.

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::ClientId;
use super::prg::MaskKey;

/// Protocol label, first part of every HKDF `info` and of the AEAD associated data.
pub const LABEL: &[u8; 16] = b"flspec/secagg/v1";

const PURPOSE_PAIRWISE: u8 = 1;
const PURPOSE_SELF: u8 = 2;
const PURPOSE_SHARE_ENC: u8 = 3;

/// A 32-byte ChaCha20-Poly1305 key for one direction of one pair in one round. Wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AeadKey(pub(crate) [u8; 32]);

impl core::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

impl AeadKey {
    /// The raw key bytes.
    ///
    /// # Security
    /// For known-answer tests; never log or send them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// SHA-256 over data that may be secret: its state, buffer and length are wiped on drop.
/// (The `sha2` hasher keeps its state after drop, so HMAC and HKDF are built here on its
/// compression function.)
#[derive(Zeroize, ZeroizeOnDrop)]
struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    filled: usize,
    len: u64,
}

impl Sha256 {
    /// FIPS 180-4 §5.3.3.
    const IV: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    fn new() -> Self {
        Self {
            state: Self::IV,
            block: [0; 64],
            filled: 0,
            len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let n = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == 64 {
                compress256(
                    &mut self.state,
                    core::slice::from_ref(GenericArray::from_slice(&self.block)),
                );
                self.filled = 0;
            }
        }
    }

    /// Writes the digest to `out` and wipes the hasher.
    fn finish_into(mut self, out: &mut [u8; 32]) {
        let bits = self.len.wrapping_mul(8);
        self.block[self.filled] = 0x80;
        self.block[self.filled + 1..].fill(0);
        if self.filled >= 56 {
            compress256(
                &mut self.state,
                core::slice::from_ref(GenericArray::from_slice(&self.block)),
            );
            self.block.fill(0);
        }
        self.block[56..].copy_from_slice(&bits.to_be_bytes());
        compress256(
            &mut self.state,
            core::slice::from_ref(GenericArray::from_slice(&self.block)),
        );
        for (o, w) in out.chunks_exact_mut(4).zip(self.state.iter()) {
            o.copy_from_slice(&w.to_be_bytes());
        }
    }
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key`, into `out`; every
/// intermediate value (padded keys, inner digest, hasher states) is wiped.
fn hmac_sha256(key: &[u8], parts: &[&[u8]], out: &mut [u8; 32]) {
    let mut k = Zeroizing::new([0u8; 64]);
    if key.len() > 64 {
        let mut h = Sha256::new();
        h.update(key);
        let mut digest = Zeroizing::new([0u8; 32]);
        h.finish_into(&mut digest);
        k[..32].copy_from_slice(&*digest);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut pad = Zeroizing::new([0u8; 64]);
    for (p, b) in pad.iter_mut().zip(k.iter()) {
        *p = b ^ 0x36;
    }
    let mut inner = Sha256::new();
    inner.update(&*pad);
    for part in parts {
        inner.update(part);
    }
    let mut inner_digest = Zeroizing::new([0u8; 32]);
    inner.finish_into(&mut inner_digest);
    for (p, b) in pad.iter_mut().zip(k.iter()) {
        *p = b ^ 0x5c;
    }
    let mut outer = Sha256::new();
    outer.update(&*pad);
    outer.update(&*inner_digest);
    outer.finish_into(out);
}

/// HKDF-SHA256 (RFC 5869): extract with `salt`, expand `info` into `okm` (at most
/// `255 * 32` bytes). Unlike the `hkdf` crate, it wipes the pseudo-random key, every HMAC
/// state and every intermediate block, so nothing derived from the input key material `ikm`
/// is left in memory after it returns (the caller wipes `ikm` and `okm`).
///
/// # Panics
/// If `okm` is longer than `255 * 32` bytes, which RFC 5869 forbids.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) {
    assert!(
        okm.len() <= 255 * 32,
        "HKDF-SHA256 output is at most 8160 bytes"
    );
    let mut prk = Zeroizing::new([0u8; 32]);
    hmac_sha256(salt, &[ikm], &mut prk);
    let mut t = Zeroizing::new([0u8; 32]);
    let mut t_len = 0;
    for (i, chunk) in okm.chunks_mut(32).enumerate() {
        let counter = [i as u8 + 1];
        let previous = Zeroizing::new(*t);
        hmac_sha256(&*prk, &[&previous[..t_len], info, &counter], &mut t);
        t_len = 32;
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
}

/// Derives a 32-byte key straight into `okm` (inside the key type, so no copy is left behind).
fn derive(
    ikm: &[u8; 32],
    session: &[u8; 32],
    purpose: u8,
    round: u64,
    ids: &[ClientId],
    okm: &mut [u8; 32],
) {
    let mut info = Vec::with_capacity(LABEL.len() + 1 + 8 + 4 * ids.len());
    info.extend_from_slice(LABEL);
    info.push(purpose);
    info.extend_from_slice(&round.to_be_bytes());
    for id in ids {
        info.extend_from_slice(&id.0.to_be_bytes());
    }
    hkdf_sha256(session, ikm, &info, okm);
}

/// The pairwise mask key of `a` and `b` from their X25519 shared secret (symmetric in `a`, `b`).
pub fn pairwise_mask_key(
    shared_secret: &[u8; 32],
    session: &[u8; 32],
    round: u64,
    a: ClientId,
    b: ClientId,
) -> MaskKey {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut key = MaskKey::from_bytes([0; 32]);
    derive(
        shared_secret,
        session,
        PURPOSE_PAIRWISE,
        round,
        &[lo, hi],
        key.bytes_mut(),
    );
    key
}

/// The self mask key of `owner` from its seed `b_u`.
pub fn self_mask_key(seed: &[u8; 32], session: &[u8; 32], round: u64, owner: ClientId) -> MaskKey {
    let mut key = MaskKey::from_bytes([0; 32]);
    derive(
        seed,
        session,
        PURPOSE_SELF,
        round,
        &[owner],
        key.bytes_mut(),
    );
    key
}

/// The key that encrypts `sender`'s shares for `recipient` (one direction only).
pub fn share_encryption_key(
    shared_secret: &[u8; 32],
    session: &[u8; 32],
    round: u64,
    sender: ClientId,
    recipient: ClientId,
) -> AeadKey {
    let mut key = AeadKey([0; 32]);
    derive(
        shared_secret,
        session,
        PURPOSE_SHARE_ENC,
        round,
        &[sender, recipient],
        &mut key.0,
    );
    key
}

/// The associated data of an encrypted share: label, session, round, sender, recipient.
pub fn share_associated_data(
    session: &[u8; 32],
    round: u64,
    sender: ClientId,
    recipient: ClientId,
) -> [u8; 68] {
    let mut ad = [0u8; 68];
    ad[..16].copy_from_slice(LABEL);
    ad[16..48].copy_from_slice(session);
    ad[48..56].copy_from_slice(&round.to_be_bytes());
    ad[56..60].copy_from_slice(&sender.0.to_be_bytes());
    ad[60..64].copy_from_slice(&recipient.0.to_be_bytes());
    ad[64..68].copy_from_slice(b"shar");
    ad
}
