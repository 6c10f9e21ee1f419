//! The client (collaborator) state machine of one round.

use std::collections::{BTreeMap, BTreeSet};

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::{Result, SecAggError};
use super::kdf;
use super::messages::{
    AdvertiseKeys, AllAdvertised, EncryptedShare, MaskedInput, RevealedShare, UnmaskRequest,
    UnmaskResponse,
};
use super::prg::Sign;
use super::rng::SecretRng;
use super::shamir::{self, ShamirField};
use super::{ClientId, Config};

const ORDER: &str = "new, advertise, share_keys, masked_input, unmask";

/// 32 secret bytes (a seed), wiped on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Secret32([u8; 32]);

impl Secret32 {
    fn draw(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut s = Self([0; 32]);
        rng.fill_bytes(&mut s.0);
        s
    }
}

/// Secrets of round 0 (`c`, `s`, `b_u` and the seeds of the client's own randomness).
struct Keys {
    c: StaticSecret,
    s: StaticSecret,
    seed: Secret32,
    dealer_seed: Secret32,
    rounding_seed: Secret32,
}

struct PeerKeys {
    c_public: PublicKey,
    s_public: PublicKey,
}

/// State after ShareKeys: the keys to decrypt each neighbour's shares (`c` itself is gone),
/// `s` and `b_u` to mask, own shares kept.
struct Shared {
    receive_keys: BTreeMap<ClientId, kdf::AeadKey>,
    s: StaticSecret,
    seed: Secret32,
    rounding_seed: Secret32,
    peers: BTreeMap<ClientId, PeerKeys>,
    own: HeldShares,
}

/// A holder's shares of one owner's `b` and `s`, wiped on drop.
struct HeldShares {
    seed: Zeroizing<Vec<u8>>,
    key: Zeroizing<Vec<u8>>,
}

/// State after MaskedInputCollection: only the shares held for peers (and self).
struct Held {
    mask_set: BTreeSet<ClientId>,
    shares: BTreeMap<ClientId, HeldShares>,
}

enum Phase {
    Fresh(Box<Keys>),
    Advertised(Box<Keys>),
    SharedKeys(Box<Shared>),
    Masked(Box<Held>),
    Done,
    Aborted(String),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Fresh(_) => "fresh",
            Self::Advertised(_) => "advertised",
            Self::SharedKeys(_) => "shared-keys",
            Self::Masked(_) => "masked",
            Self::Done => "done",
            Self::Aborted(_) => "aborted",
        }
    }
}

/// A collaborator's side of one secure-aggregation round: a sans-IO state machine.
///
/// Call [`Client::advertise`], [`Client::share_keys`], [`Client::masked_input`] and
/// [`Client::unmask`] in order, sending each result to the server. Any protocol error aborts
/// the client for the round and wipes its secrets; an out-of-order call or a bad input vector
/// only returns an error.
///
/// # Security
/// Holds the round's secrets (`c`, `s`, `b_u`, shares of peers' secrets); they are wiped on
/// drop, consumed as the round advances, and never printed (`Debug` shows the id and state).
/// All randomness comes from the `rng` given to [`Client::new`], so a seeded RNG gives a
/// reproducible round (for tests only: use an OS-seeded CSPRNG in production).
pub struct Client {
    config: Config,
    id: ClientId,
    all: Vec<ClientId>,
    hood: Vec<ClientId>,
    field: ShamirField,
    phase: Phase,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("round", &self.config.round)
            .field("state", &self.phase.name())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Creates the client `id` for the round `config` and draws its secrets from `rng`.
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] if the config is invalid; [`SecAggError::UnexpectedClient`]
    /// if `id` is not in it.
    pub fn new<R: RngCore + CryptoRng>(config: Config, id: ClientId, rng: &mut R) -> Result<Self> {
        let graph = config.graph()?;
        let hood = graph
            .closed_neighbourhood(id)
            .ok_or(SecAggError::UnexpectedClient {
                client: id,
                why: "not in the round's config",
            })?
            .to_vec();
        let keys = Keys {
            c: StaticSecret::random_from_rng(&mut *rng),
            s: StaticSecret::random_from_rng(&mut *rng),
            seed: Secret32::draw(rng),
            dealer_seed: Secret32::draw(rng),
            rounding_seed: Secret32::draw(rng),
        };
        Ok(Self {
            field: config.shamir_field(),
            all: graph.clients().to_vec(),
            config,
            id,
            hood,
            phase: Phase::Fresh(Box::new(keys)),
        })
    }

    /// This client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The round's config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This client's closed neighbourhood (itself and the peers it shares with), sorted.
    pub fn neighbourhood(&self) -> &[ClientId] {
        &self.hood
    }

    fn out_of_order(&self, call: &'static str) -> SecAggError {
        match &self.phase {
            Phase::Aborted(first) => SecAggError::Aborted {
                first: first.clone(),
            },
            p => SecAggError::OutOfOrder {
                call,
                state: p.name(),
                order: ORDER,
            },
        }
    }

    fn abort(&mut self, e: SecAggError) -> SecAggError {
        tracing::debug!(client = %self.id, round = self.config.round, "secagg client aborted");
        self.phase = Phase::Aborted(e.to_string());
        e
    }

    fn check_round(&self, got: u64) -> Result<()> {
        if got == self.config.round {
            Ok(())
        } else {
            Err(SecAggError::WrongRound {
                expected: self.config.round,
                got,
            })
        }
    }

    /// Round 0: the two public keys to send to the server.
    ///
    /// # Errors
    /// [`SecAggError::OutOfOrder`] unless this is the first call.
    pub fn advertise(&mut self) -> Result<AdvertiseKeys> {
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Fresh(keys) = phase else {
            self.phase = phase;
            return Err(self.out_of_order("advertise"));
        };
        let msg = AdvertiseKeys {
            sender: self.id,
            round: self.config.round,
            c_public: PublicKey::from(&keys.c).to_bytes(),
            s_public: PublicKey::from(&keys.s).to_bytes(),
        };
        self.phase = Phase::Advertised(keys);
        Ok(msg)
    }

    /// Round 1: Shamir-shares `b_u` and `s_u` among the neighbourhood and encrypts each
    /// neighbour's pair of shares for it. Returns one ciphertext per advertised neighbour.
    ///
    /// # Errors
    /// Aborts on a wrong round, unknown or duplicate senders, repeated public keys, a missing or
    /// altered own key, a low-order key, or fewer than `threshold` advertised members of the
    /// neighbourhood ([`SecAggError::TooFewPeers`]).
    pub fn share_keys(&mut self, all: &AllAdvertised) -> Result<Vec<EncryptedShare>> {
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Advertised(keys) = phase else {
            self.phase = phase;
            return Err(self.out_of_order("share_keys"));
        };
        match self.do_share_keys(*keys, all) {
            Ok((shared, out)) => {
                self.phase = Phase::SharedKeys(Box::new(shared));
                Ok(out)
            }
            Err(e) => Err(self.abort(e)),
        }
    }

    fn do_share_keys(
        &self,
        keys: Keys,
        all: &AllAdvertised,
    ) -> Result<(Shared, Vec<EncryptedShare>)> {
        self.check_round(all.round)?;
        let mut seen = BTreeSet::new();
        let mut public_keys = BTreeSet::new();
        let mut peers = BTreeMap::new();
        let mut own_ok = false;
        for k in &all.keys {
            self.check_round(k.round)?;
            if self.all.binary_search(&k.sender).is_err() {
                return Err(SecAggError::UnexpectedClient {
                    client: k.sender,
                    why: "not in the round's config",
                });
            }
            if !seen.insert(k.sender) {
                return Err(SecAggError::Duplicate {
                    message: "AdvertiseKeys in AllAdvertised",
                    client: k.sender,
                });
            }
            if !public_keys.insert(k.c_public) || !public_keys.insert(k.s_public) {
                return Err(SecAggError::malformed(
                    "AllAdvertised",
                    format!(
                        "client {}'s public key repeats another advertised key",
                        k.sender
                    ),
                ));
            }
            if k.sender == self.id {
                own_ok = k.c_public == PublicKey::from(&keys.c).to_bytes()
                    && k.s_public == PublicKey::from(&keys.s).to_bytes();
            } else if self.hood.binary_search(&k.sender).is_ok() {
                peers.insert(
                    k.sender,
                    PeerKeys {
                        c_public: PublicKey::from(k.c_public),
                        s_public: PublicKey::from(k.s_public),
                    },
                );
            }
        }
        if !own_ok {
            return Err(SecAggError::malformed(
                "AllAdvertised",
                "this client's own keys are missing or altered",
            ));
        }
        let t = self.config.threshold as usize;
        if peers.len() + 1 < t {
            return Err(SecAggError::TooFewPeers {
                list: "AllAdvertised",
                got: peers.len() + 1,
                threshold: t,
            });
        }
        let mut dealer = SecretRng::from_seed_ref(&keys.dealer_seed.0);
        let n_shares = self.hood.len();
        let seed_shares = shamir::split(self.field, &keys.seed.0, t, n_shares, &mut dealer)?;
        let key_bytes = Zeroizing::new(keys.s.to_bytes());
        let key_shares = shamir::split(self.field, &key_bytes, t, n_shares, &mut dealer)?;
        let session = &self.config.session;
        let round = self.config.round;
        let mut out = Vec::with_capacity(peers.len());
        let mut receive_keys = BTreeMap::new();
        let mut own = None;
        for (pos, &holder) in self.hood.iter().enumerate() {
            let (sb, kb) = (seed_shares[pos].y(), key_shares[pos].y());
            if holder == self.id {
                own = Some(HeldShares {
                    seed: Zeroizing::new(sb.to_vec()),
                    key: Zeroizing::new(kb.to_vec()),
                });
                continue;
            }
            let Some(peer) = peers.get(&holder) else {
                continue; // did not advertise: dropped
            };
            let shared = keys.c.diffie_hellman(&peer.c_public);
            if !shared.was_contributory() {
                return Err(SecAggError::WeakKey { peer: holder });
            }
            let aead_key =
                kdf::share_encryption_key(shared.as_bytes(), session, round, self.id, holder);
            receive_keys.insert(
                holder,
                kdf::share_encryption_key(shared.as_bytes(), session, round, holder, self.id),
            );
            let mut plaintext = Zeroizing::new(Vec::with_capacity(sb.len() + kb.len()));
            plaintext.extend_from_slice(sb);
            plaintext.extend_from_slice(kb);
            let ad = kdf::share_associated_data(session, round, self.id, holder);
            let cipher = ChaCha20Poly1305::new((&aead_key.0).into());
            let ciphertext = cipher
                .encrypt(
                    &[0u8; 12].into(),
                    Payload {
                        msg: &plaintext,
                        aad: &ad,
                    },
                )
                .map_err(|_| {
                    SecAggError::malformed("share encryption", "AEAD encryption failed")
                })?;
            out.push(EncryptedShare {
                sender: self.id,
                recipient: holder,
                round,
                ciphertext,
            });
        }
        let own = own.ok_or_else(|| {
            SecAggError::malformed(
                "neighbourhood",
                "this client is not in its own neighbourhood",
            )
        })?;
        // `c` and the dealer seed are dropped (wiped) here.
        let Keys {
            s,
            seed,
            rounding_seed,
            ..
        } = keys;
        Ok((
            Shared {
                receive_keys,
                s,
                seed,
                rounding_seed,
                peers,
                own,
            },
            out,
        ))
    }

    /// Round 2: quantizes `input` (stochastic rounding seeded from this client's RNG), adds the
    /// self mask and the pairwise masks of every peer whose encrypted share arrived in
    /// `received`, and returns the masked vector.
    ///
    /// # Errors
    /// [`SecAggError::LengthMismatch`] or [`SecAggError::NonFiniteInput`] on a bad input (the
    /// client stays usable); aborts on a share that fails authentication
    /// ([`SecAggError::DecryptionFailed`]), is addressed to another client, comes from a
    /// non-neighbour or twice, or on fewer than `threshold` peers ([`SecAggError::TooFewPeers`]).
    pub fn masked_input(
        &mut self,
        input: &[f32],
        received: &[EncryptedShare],
    ) -> Result<MaskedInput> {
        let Phase::SharedKeys(shared) = &self.phase else {
            return Err(self.out_of_order("masked_input"));
        };
        self.check_len(input.len())?;
        let mut rounding = SecretRng::from_seed_ref(&shared.rounding_seed.0);
        let quantized = Zeroizing::new(self.config.quantizer.quantize(input, &mut rounding)?);
        self.mask(&quantized, received)
    }

    /// Round 2 with an input already quantized by the round's [`super::Quantizer`]
    /// (values at most [`super::Quantizer::levels`]).
    ///
    /// # Errors
    /// As [`Client::masked_input`], and [`SecAggError::QuantizedOutOfRange`] on a value above
    /// the quantizer's top level.
    pub fn masked_input_quantized(
        &mut self,
        input: &[u32],
        received: &[EncryptedShare],
    ) -> Result<MaskedInput> {
        if !matches!(self.phase, Phase::SharedKeys(_)) {
            return Err(self.out_of_order("masked_input_quantized"));
        }
        self.check_len(input.len())?;
        self.config.quantizer.check_quantized(input)?;
        self.mask(input, received)
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len == self.config.vector_len {
            Ok(())
        } else {
            Err(SecAggError::LengthMismatch {
                what: "input vector",
                got: len,
                expected: self.config.vector_len,
                fix: "pass a vector of the config's `vector_len`",
            })
        }
    }

    fn mask(&mut self, quantized: &[u32], received: &[EncryptedShare]) -> Result<MaskedInput> {
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::SharedKeys(shared) = phase else {
            self.phase = phase;
            return Err(self.out_of_order("masked_input"));
        };
        match self.do_mask(*shared, quantized, received) {
            Ok((held, msg)) => {
                self.phase = Phase::Masked(Box::new(held));
                Ok(msg)
            }
            Err(e) => Err(self.abort(e)),
        }
    }

    fn do_mask(
        &self,
        shared: Shared,
        quantized: &[u32],
        received: &[EncryptedShare],
    ) -> Result<(Held, MaskedInput)> {
        let session = &self.config.session;
        let round = self.config.round;
        let share_len = self.field.share_len();
        let mut shares = BTreeMap::new();
        for e in received {
            if e.recipient != self.id {
                return Err(SecAggError::DecryptionFailed {
                    sender: e.sender,
                    recipient: e.recipient,
                });
            }
            self.check_round(e.round)?;
            let Some(aead_key) = shared.receive_keys.get(&e.sender) else {
                return Err(SecAggError::UnexpectedClient {
                    client: e.sender,
                    why: "sent an encrypted share but is not an advertised neighbour of this client",
                });
            };
            if shares.contains_key(&e.sender) {
                return Err(SecAggError::Duplicate {
                    message: "EncryptedShare",
                    client: e.sender,
                });
            }
            let ad = kdf::share_associated_data(session, round, e.sender, self.id);
            let cipher = ChaCha20Poly1305::new((&aead_key.0).into());
            let plaintext = Zeroizing::new(
                cipher
                    .decrypt(
                        &[0u8; 12].into(),
                        Payload {
                            msg: &e.ciphertext,
                            aad: &ad,
                        },
                    )
                    .map_err(|_| SecAggError::DecryptionFailed {
                        sender: e.sender,
                        recipient: self.id,
                    })?,
            );
            if plaintext.len() != 2 * share_len {
                return Err(SecAggError::malformed(
                    "encrypted share",
                    "wrong plaintext length",
                ));
            }
            shares.insert(
                e.sender,
                HeldShares {
                    seed: Zeroizing::new(plaintext[..share_len].to_vec()),
                    key: Zeroizing::new(plaintext[share_len..].to_vec()),
                },
            );
        }
        let t = self.config.threshold as usize;
        if shares.len() + 1 < t {
            return Err(SecAggError::TooFewPeers {
                list: "list of received shares",
                got: shares.len() + 1,
                threshold: t,
            });
        }
        let mut masked = quantized.to_vec();
        kdf::self_mask_key(&shared.seed.0, session, round, self.id).apply(&mut masked, Sign::Plus);
        let mask_set: BTreeSet<ClientId> = shares.keys().copied().collect();
        for &v in &mask_set {
            let peer = shared
                .peers
                .get(&v)
                .ok_or_else(|| SecAggError::malformed("mask set", "peer without keys"))?;
            let dh = shared.s.diffie_hellman(&peer.s_public);
            if !dh.was_contributory() {
                return Err(SecAggError::WeakKey { peer: v });
            }
            let sign = if self.id < v { Sign::Plus } else { Sign::Minus };
            kdf::pairwise_mask_key(dh.as_bytes(), session, round, self.id, v)
                .apply(&mut masked, sign);
        }
        let Shared { own, .. } = shared; // s, b_u and the AEAD keys dropped (wiped) here
        shares.insert(self.id, own);
        Ok((
            Held { mask_set, shares },
            MaskedInput {
                sender: self.id,
                round,
                masked,
            },
        ))
    }

    /// Round 3: reveals the `b` share of each surviving peer and the `s` share of each dropped
    /// peer, never both for one peer.
    ///
    /// # Errors
    /// Aborts (revealing nothing) if a peer is listed both as survivor and dropped
    /// ([`SecAggError::BothSharesRequested`]), if a list repeats a client, if this client is
    /// not listed as a survivor, if fewer than `threshold` members of its neighbourhood
    /// survived ([`SecAggError::TooFewPeers`]), or on a wrong round.
    pub fn unmask(&mut self, request: &UnmaskRequest) -> Result<UnmaskResponse> {
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Masked(held) = phase else {
            self.phase = phase;
            return Err(self.out_of_order("unmask"));
        };
        match self.do_unmask(&held, request) {
            Ok(r) => Ok(r),
            Err(e) => Err(self.abort(e)),
        }
        // `held` (every share) is wiped here, whatever the outcome.
    }

    fn do_unmask(&self, held: &Held, request: &UnmaskRequest) -> Result<UnmaskResponse> {
        self.check_round(request.round)?;
        let mut survivors = BTreeSet::new();
        for &v in &request.survivors {
            if !survivors.insert(v) {
                return Err(SecAggError::Duplicate {
                    message: "survivor entry in UnmaskRequest",
                    client: v,
                });
            }
        }
        let mut dropped = BTreeSet::new();
        for &v in &request.dropped {
            if survivors.contains(&v) {
                return Err(SecAggError::BothSharesRequested { peer: v });
            }
            if !dropped.insert(v) {
                return Err(SecAggError::Duplicate {
                    message: "dropped entry in UnmaskRequest",
                    client: v,
                });
            }
        }
        if !survivors.contains(&self.id) {
            return Err(SecAggError::UnexpectedClient {
                client: self.id,
                why: "the unmask request does not list this client as a survivor; it refuses to answer",
            });
        }
        let t = self.config.threshold as usize;
        let live = survivors
            .iter()
            .filter(|v| **v == self.id || held.mask_set.contains(v))
            .count();
        if live < t {
            return Err(SecAggError::TooFewPeers {
                list: "unmask request's survivors",
                got: live,
                threshold: t,
            });
        }
        let reveal = |owners: &BTreeSet<ClientId>, pick: fn(&HeldShares) -> &[u8]| {
            owners
                .iter()
                .filter_map(|o| {
                    held.shares.get(o).map(|h| RevealedShare {
                        owner: *o,
                        share: pick(h).to_vec(),
                    })
                })
                .collect::<Vec<_>>()
        };
        Ok(UnmaskResponse {
            sender: self.id,
            round: self.config.round,
            seed_shares: reveal(&survivors, |h| &h.seed),
            key_shares: reveal(&dropped, |h| &h.key),
        })
    }
}
