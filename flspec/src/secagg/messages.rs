//! The typed messages of a round, all serde-serializable.
//!
//! Encodings are fixed-width or length-prefixed (postcard: varint lengths, raw bytes); the masked
//! vector travels as raw little-endian `u32` words (4 bytes each), so a masked update costs the
//! same as a plain `f32` one. Nothing is ever delimiter-joined.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::ClientId;
use super::error::Result;

/// Round 0, client → server: the client's two X25519 public keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertiseKeys {
    /// Sender.
    pub sender: ClientId,
    /// Round number.
    pub round: u64,
    /// Public key `c` (encrypts shares).
    pub c_public: [u8; 32],
    /// Public key `s` (pairwise masks).
    pub s_public: [u8; 32],
}

/// Round 0, server → clients: every advertised key pair, sorted by sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllAdvertised {
    /// Round number.
    pub round: u64,
    /// The keys received, one per collaborator, sorted by sender.
    pub keys: Vec<AdvertiseKeys>,
}

/// Round 1, client → server → one peer: the sender's shares of `b_u` and `s_u` for one
/// recipient, encrypted with ChaCha20-Poly1305 (sender, recipient, round and session bound
/// as associated data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedShare {
    /// Sender (owner of the shared secrets).
    pub sender: ClientId,
    /// Recipient (share holder).
    pub recipient: ClientId,
    /// Round number.
    pub round: u64,
    /// Ciphertext and 16-byte tag.
    #[serde(with = "wire_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Round 2, client → server: the quantized input plus all masks, in `Z_(2^32)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedInput {
    /// Sender.
    pub sender: ClientId,
    /// Round number.
    pub round: u64,
    /// The masked vector, encoded as raw little-endian words.
    #[serde(with = "wire_words")]
    pub masked: Vec<u32>,
}

/// Round 3, server → clients: who survived round 2 and who dropped after sharing keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskRequest {
    /// Round number.
    pub round: u64,
    /// Clients whose masked input was received (their `b` shares are requested).
    pub survivors: Vec<ClientId>,
    /// Clients that shared keys but sent no masked input (their `s` shares are requested).
    pub dropped: Vec<ClientId>,
}

/// Round 0 of the malicious-secure mode, client → server: [`AdvertiseKeys`] signed with the
/// sender's [`super::SigningIdentity`] over the session id, round, sender and both public keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAdvertiseKeys {
    /// Session id (a message of another session is refused before its signature is checked).
    pub session: [u8; 32],
    /// The advertised keys (sender and round included).
    pub keys: AdvertiseKeys,
    /// Ed25519 signature over the domain-separated encoding of session, round, sender and keys.
    #[serde(with = "wire_signature")]
    pub signature: [u8; 64],
}

/// Round 0 of the malicious-secure mode, server → clients: every signed advertisement, sorted
/// by sender; each recipient checks the signatures of its neighbours against its own directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedKeyBroadcast {
    /// Session id.
    pub session: [u8; 32],
    /// Round number.
    pub round: u64,
    /// The signed keys received, one per collaborator, sorted by sender.
    pub keys: Vec<SignedAdvertiseKeys>,
}

/// Consistency check, server → each survivor: the survivor set `U3` (the clients whose masked
/// input arrived), for the survivor to sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyRequest {
    /// Session id.
    pub session: [u8; 32],
    /// Round number.
    pub round: u64,
    /// `U3`, sorted.
    pub survivors: Vec<ClientId>,
}

/// Consistency check, survivor → server (forwarded to every survivor): the sender's Ed25519
/// signature over session, round, sender and `U3`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencySignature {
    /// Signer.
    pub sender: ClientId,
    /// Session id.
    pub session: [u8; 32],
    /// Round number.
    pub round: u64,
    /// The signature.
    #[serde(with = "wire_signature")]
    pub signature: [u8; 64],
}

/// Unmasking in the malicious-secure mode, server → survivors: the unmask request (whose
/// survivors must be the `U3` each client signed) with the survivors' consistency signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedUnmaskRequest {
    /// Session id.
    pub session: [u8; 32],
    /// Survivors (`U3`) and dropped clients (`U2 \ U3`).
    pub request: UnmaskRequest,
    /// The signatures of survivors on `U3`.
    pub signatures: Vec<ConsistencySignature>,
}

/// One revealed share in an [`UnmaskResponse`].
///
/// # Security
/// Holds share bytes: wiped on drop, and `Debug` prints only the owner and the length.
/// It is `Clone` because it travels inside flow states, which every runtime must clone (a
/// fan-out copies the state to each collaborator); each copy is wiped when dropped too.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedShare {
    /// The client whose secret this is a share of.
    pub owner: ClientId,
    /// The share's encoded values (its evaluation point follows from the graph).
    #[serde(with = "wire_bytes")]
    pub share: Vec<u8>,
}

impl core::fmt::Debug for RevealedShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RevealedShare")
            .field("owner", &self.owner)
            .field("share", &Redacted(self.share.len()))
            .finish()
    }
}

impl Drop for RevealedShare {
    fn drop(&mut self) {
        self.share.zeroize();
    }
}

impl ZeroizeOnDrop for RevealedShare {}

/// Round 3, client → server: `b` shares of survivors and `s` shares of dropped clients.
///
/// # Security
/// Its shares are wiped on drop and never printed (see [`RevealedShare`], which also says why
/// it is `Clone`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskResponse {
    /// Sender.
    pub sender: ClientId,
    /// Round number.
    pub round: u64,
    /// Shares of the self-mask seeds `b_v` of surviving peers.
    pub seed_shares: Vec<RevealedShare>,
    /// Shares of the mask secret keys `s_v` of dropped peers.
    pub key_shares: Vec<RevealedShare>,
}

/// Prints `<redacted, N bytes>` in place of secret bytes.
pub(crate) struct Redacted(pub(crate) usize);

impl core::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0)
    }
}

/// Encodes a message with postcard (length-prefixed, no delimiters).
///
/// # Errors
/// [`super::SecAggError::Encoding`] if serialization fails.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>> {
    Ok(postcard::to_stdvec(message)?)
}

/// Decodes a message encoded by [`encode`].
///
/// # Errors
/// [`super::SecAggError::Encoding`] on malformed bytes.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    Ok(postcard::from_bytes(bytes)?)
}

mod wire_bytes {
    use serde::{Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                // The bytes may be a revealed share (self-describing formats such as JSON send
                // them as a list): grow by hand and wipe every outgrown buffer, and the partial
                // one on an error, so that no copy is left in freed memory.
                let mut out = Zeroizing::new(Vec::with_capacity(
                    seq.size_hint().unwrap_or(0).min(1 << 20),
                ));
                while let Some(b) = seq.next_element::<u8>()? {
                    if out.len() == out.capacity() {
                        let mut bigger = Vec::with_capacity((2 * out.capacity()).max(64));
                        bigger.extend_from_slice(&out);
                        out = Zeroizing::new(bigger); // the old buffer is wiped here
                    }
                    out.push(b);
                }
                Ok(core::mem::take(&mut *out))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

mod wire_words {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|w| w.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        let bytes = super::wire_bytes::deserialize(d)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::invalid_length(
                bytes.len(),
                &"a multiple of 4 bytes",
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect())
    }
}

mod wire_signature {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let bytes = super::wire_bytes::deserialize(d)?;
        <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"64 signature bytes"))
    }
}
