//! Long-term signing identities for the malicious-secure mode ([`super::Security::Malicious`]).
//!
//! Each collaborator signs its advertised keys and the survivor set of the consistency check
//! with an Ed25519 key (RFC 8032, `ed25519-dalek` v2); every recipient checks each signature
//! against a [`VerifyingDirectory`] (client id → verifying key) that it got from the PKI, never
//! from the server.
//!
//! Why a separate Ed25519 key rather than the mTLS certificate's own key: the federation's
//! certificates may carry ECDSA P-256 or Ed25519 keys, and a SecAgg signature must not be
//! confusable with a TLS handshake signature made by the same key. A dedicated Ed25519 identity,
//! certified by the same CA that issues the mTLS certificates, gives one scheme everywhere, one
//! key distribution (the CA's), deterministic signatures (no per-signature randomness to get
//! wrong), and 64-byte signatures that verify in tens of microseconds. In the local runtime the
//! identities are made per run ([`SigningIdentity::generate`]).
//!
//! Every signed payload is domain-separated: the module label, a per-message tag, the session id,
//! the round and the signer's id come first, so a signature from another message kind, session,
//! round or signer never verifies. Verification is strict (`verify_strict`: no small-order keys,
//! no malleable signatures).

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use super::ClientId;
use super::error::{Result, SecAggError};
use super::kdf::LABEL;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A collaborator's long-term Ed25519 signing key.
///
/// # Security
/// The secret key is wiped on drop (`ed25519-dalek`'s `ZeroizeOnDrop`), is not `Clone` or
/// `Serialize`, and `Debug` prints only the public key.
pub struct SigningIdentity {
    key: SigningKey,
}

impl core::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("public", &Hex(&self.public_key()))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SigningIdentity {
    /// Draws a fresh identity from `rng` (the local runtime makes one per collaborator per run).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self {
            key: SigningKey::generate(rng),
        }
    }

    /// Loads an identity from its 32-byte Ed25519 secret (as stored by the federation's PKI).
    ///
    /// # Security
    /// The caller should wipe its copy of `secret` afterwards.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// An explicit copy of this long-term identity, for the next round's
    /// [`super::Client::new_signed`] (which takes, and wipes, the identity it is given). Not
    /// `Clone`, so that no copy is made by accident; both copies are wiped on drop.
    ///
    /// ```
    /// use flspec::secagg::SigningIdentity;
    /// let long_term = SigningIdentity::generate(&mut rand_core::OsRng);
    /// let for_this_round = long_term.duplicate();
    /// assert_eq!(for_this_round.public_key(), long_term.public_key());
    /// ```
    pub fn duplicate(&self) -> Self {
        Self {
            key: self.key.clone(),
        }
    }

    /// The 32-byte verifying (public) key, to be certified and put in the [`VerifyingDirectory`].
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub(crate) fn sign(&self, payload: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(payload).to_bytes()
    }
}

/// The verifying key of every collaborator, by client id: the trust anchor of the malicious-secure
/// mode. Build it from the PKI (or from the per-run identities of the local runtime), never from
/// keys the server sends.
#[derive(Clone, Default)]
pub struct VerifyingDirectory {
    keys: BTreeMap<ClientId, VerifyingKey>,
}

impl core::fmt::Debug for VerifyingDirectory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VerifyingDirectory")
            .field("clients", &self.keys.len())
            .finish()
    }
}

impl VerifyingDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `client`'s verifying key (32 bytes, as [`SigningIdentity::public_key`] returns).
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] naming `directory` if the bytes are not a valid or are a
    /// weak (small-order) Ed25519 key, or if `client` already has a key.
    pub fn insert(&mut self, client: ClientId, public_key: [u8; 32]) -> Result<()> {
        let key = VerifyingKey::from_bytes(&public_key)
            .ok()
            .filter(|k| !k.is_weak())
            .ok_or_else(|| {
                SecAggError::param(
                    "directory",
                    format!(
                        "the verifying key given for client {client} is not a valid Ed25519 key"
                    ),
                    "take the key from the collaborator's certified identity",
                )
            })?;
        if self.keys.insert(client, key).is_some() {
            return Err(SecAggError::param(
                "directory",
                format!("client {client} has two verifying keys"),
                "give each collaborator exactly one identity",
            ));
        }
        Ok(())
    }

    /// A directory of the given identities' public keys (for the local runtime and tests).
    ///
    /// # Errors
    /// As [`VerifyingDirectory::insert`].
    pub fn from_identities<'a>(
        identities: impl IntoIterator<Item = (ClientId, &'a SigningIdentity)>,
    ) -> Result<Self> {
        let mut dir = Self::new();
        for (id, identity) in identities {
            dir.insert(id, identity.public_key())?;
        }
        Ok(dir)
    }

    /// `client`'s verifying key, if known.
    pub fn public_key(&self, client: ClientId) -> Option<[u8; 32]> {
        self.keys.get(&client).map(VerifyingKey::to_bytes)
    }

    /// Number of clients with a key.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the directory is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `signature` by `signer` on `payload`.
    ///
    /// # Errors
    /// [`SecAggError::UnknownSigner`] if `signer` has no key; [`SecAggError::BadSignature`]
    /// naming `message` if the signature does not verify (strictly).
    pub(crate) fn verify(
        &self,
        signer: ClientId,
        message: &'static str,
        payload: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<()> {
        let key = self
            .keys
            .get(&signer)
            .ok_or(SecAggError::UnknownSigner { signer })?;
        key.verify_strict(payload, &Signature::from_bytes(signature))
            .map_err(|_| SecAggError::BadSignature { signer, message })
    }

    /// Checks many signatures at once: `(signer, payload, signature)` triples, all of the kind
    /// `message`. Ed25519 batch verification (deterministic: its random weights come from a
    /// transcript of all inputs) costs about half of one-by-one verification; if the batch
    /// fails, each signature is checked alone (strictly) so that the error names the first bad
    /// signer.
    ///
    /// # Errors
    /// As [`VerifyingDirectory::verify`], for the first bad signature in order.
    pub(crate) fn verify_all(
        &self,
        message: &'static str,
        items: &[(ClientId, Vec<u8>, [u8; SIGNATURE_LEN])],
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(items.len());
        for (signer, _, _) in items {
            let key = self
                .keys
                .get(signer)
                .ok_or(SecAggError::UnknownSigner { signer: *signer })?;
            keys.push(*key);
        }
        let payloads: Vec<&[u8]> = items.iter().map(|(_, p, _)| p.as_slice()).collect();
        let signatures: Vec<Signature> = items
            .iter()
            .map(|(_, _, s)| Signature::from_bytes(s))
            .collect();
        if ed25519_dalek::verify_batch(&payloads, &signatures, &keys).is_ok() {
            return Ok(());
        }
        for (signer, payload, signature) in items {
            self.verify(*signer, message, payload, signature)?;
        }
        Ok(())
    }
}

/// The signed payload of an advertisement: label, tag, session, round, sender, both public keys.
pub(crate) fn advertise_payload(
    session: &[u8; 32],
    round: u64,
    sender: ClientId,
    c_public: &[u8; 32],
    s_public: &[u8; 32],
) -> Vec<u8> {
    let mut p = header(b"advertise-keys", session, round, sender, 64);
    p.extend_from_slice(c_public);
    p.extend_from_slice(s_public);
    p
}

/// The digest of a survivor set `U3`: SHA-256 of the label, a tag, the number of survivors and
/// their ids (sorted ascending, 4 bytes big-endian each). Computed once per round, so that each
/// signature covers 32 bytes rather than `4 n`.
pub(crate) fn survivors_digest(survivors: &[ClientId]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LABEL);
    h.update(b"survivor-set");
    h.update((survivors.len() as u64).to_be_bytes());
    for id in survivors {
        h.update(id.0.to_be_bytes());
    }
    h.finalize().into()
}

/// The signed payload of the consistency check: label, tag, session, round, signer, and the
/// [`survivors_digest`] of `U3`.
pub(crate) fn consistency_payload(
    session: &[u8; 32],
    round: u64,
    signer: ClientId,
    survivors_digest: &[u8; 32],
) -> Vec<u8> {
    let mut p = header(b"consistency-check", session, round, signer, 32);
    p.extend_from_slice(survivors_digest);
    p
}

fn header(tag: &[u8], session: &[u8; 32], round: u64, who: ClientId, extra: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(LABEL.len() + 1 + tag.len() + 32 + 8 + 4 + extra);
    p.extend_from_slice(LABEL);
    p.push(tag.len() as u8);
    p.extend_from_slice(tag);
    p.extend_from_slice(session);
    p.extend_from_slice(&round.to_be_bytes());
    p.extend_from_slice(&who.0.to_be_bytes());
    p
}

struct Hex<'a>(&'a [u8]);

impl core::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
