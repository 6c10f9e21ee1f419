//! Key derivation (HKDF-SHA256, RFC 5869) for every key of a round.
//!
//! Every derivation uses the session id as salt and an `info` of fixed-width fields (no
//! delimiters): the protocol label, a one-byte purpose, the round as big-endian `u64`, and the
//! client ids as big-endian `u32`. So keys never repeat across sessions, rounds, purposes,
//! pairs or directions.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

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

fn derive(
    ikm: &[u8; 32],
    session: &[u8; 32],
    purpose: u8,
    round: u64,
    ids: &[ClientId],
) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(session), ikm);
    let mut info = Vec::with_capacity(LABEL.len() + 1 + 8 + 4 * ids.len());
    info.extend_from_slice(LABEL);
    info.push(purpose);
    info.extend_from_slice(&round.to_be_bytes());
    for id in ids {
        info.extend_from_slice(&id.0.to_be_bytes());
    }
    let mut okm = [0u8; 32];
    hk.expand(&info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
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
    MaskKey::from_bytes(derive(
        shared_secret,
        session,
        PURPOSE_PAIRWISE,
        round,
        &[lo, hi],
    ))
}

/// The self mask key of `owner` from its seed `b_u`.
pub fn self_mask_key(seed: &[u8; 32], session: &[u8; 32], round: u64, owner: ClientId) -> MaskKey {
    MaskKey::from_bytes(derive(seed, session, PURPOSE_SELF, round, &[owner]))
}

/// The key that encrypts `sender`'s shares for `recipient` (one direction only).
pub fn share_encryption_key(
    shared_secret: &[u8; 32],
    session: &[u8; 32],
    round: u64,
    sender: ClientId,
    recipient: ClientId,
) -> AeadKey {
    AeadKey(derive(
        shared_secret,
        session,
        PURPOSE_SHARE_ENC,
        round,
        &[sender, recipient],
    ))
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
