//! The client (collaborator) state machine of one round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::{Result, SecAggError};
use super::identity::{self, SigningIdentity, VerifyingDirectory};
use super::kdf;
use super::messages::{
    AdvertiseKeys, AllAdvertised, CheckedUnmaskRequest, ConsistencyRequest, ConsistencySignature,
    EncryptedShare, MaskedInput, RevealedShare, SignedAdvertiseKeys, SignedKeyBroadcast,
    UnmaskRequest, UnmaskResponse,
};
use super::prg::Sign;
use super::rng::SecretRng;
use super::shamir::{self, ShamirField};
use super::{ClientId, Config, Security};

const ORDER: &str = "new, advertise, share_keys, masked_input, unmask \
                     (malicious-secure: new_signed, advertise_signed, share_keys_signed, \
                     masked_input, sign_survivors, unmask_checked)";

/// The malicious-secure mode's identity and trust anchor.
struct Signing {
    identity: SigningIdentity,
    directory: Arc<VerifyingDirectory>,
    /// SecAgg+ only: the closed neighbourhood of each member of this client's own, whose
    /// signatures count for revealing that member's shares (`None` on the full graph, where
    /// every neighbourhood is the whole round).
    owner_hoods: Option<BTreeMap<ClientId, Vec<ClientId>>>,
    /// The signed advertisement this client sent: its own entry in the key broadcast must be
    /// exactly this (compared, not verified: Ed25519 signatures are deterministic).
    sent_advert: Option<SignedAdvertiseKeys>,
}

/// Malicious-secure mode: the survivor set `U3` this client signed, its digest and the
/// signature it made (its own entry among the consistency signatures must be exactly this).
struct SignedSurvivors {
    u3: Vec<ClientId>,
    digest: [u8; 32],
    signature: [u8; identity::SIGNATURE_LEN],
}

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
    /// Malicious-secure mode: `U3` signed, shares still held.
    Checked(Box<Held>, Box<SignedSurvivors>),
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
            Self::Checked(..) => "signed-survivors",
            Self::Done => "done",
            Self::Aborted(_) => "aborted",
        }
    }
}

fn no_identity() -> SecAggError {
    SecAggError::param(
        "security",
        "this client has no signing identity",
        "create it with `Client::new_signed`",
    )
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
    signing: Option<Box<Signing>>,
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
    /// [`SecAggError::InvalidParameter`] if the config is invalid or malicious-secure (use
    /// [`Client::new_signed`]); [`SecAggError::UnexpectedClient`] if `id` is not in it.
    pub fn new<R: RngCore + CryptoRng>(config: Config, id: ClientId, rng: &mut R) -> Result<Self> {
        if config.security == Security::Malicious {
            return Err(SecAggError::param(
                "security",
                "the config is malicious-secure but the client has no signing identity",
                "create the client with `Client::new_signed`, or use `Security::SemiHonest`",
            ));
        }
        Self::build(config, id, rng, None)
    }

    /// Creates the client `id` for a malicious-secure round (`config.security` is
    /// [`Security::Malicious`]): it signs with `identity` and checks every peer's signature
    /// against `directory`, which must come from the PKI (not from the server) and hold
    /// `identity`'s own key under `id`.
    ///
    /// # Errors
    /// As [`Client::new`]; [`SecAggError::InvalidParameter`] naming `security` for a
    /// semi-honest config, or `directory` if it lacks `id`'s key or holds another one.
    ///
    /// # Security
    /// The identity is wiped when the client is dropped; share it between rounds by loading
    /// it again ([`SigningIdentity::from_secret_bytes`]) from the site's key store.
    pub fn new_signed<R: RngCore + CryptoRng>(
        config: Config,
        id: ClientId,
        identity: SigningIdentity,
        directory: Arc<VerifyingDirectory>,
        rng: &mut R,
    ) -> Result<Self> {
        if config.security != Security::Malicious {
            return Err(SecAggError::param(
                "security",
                "`Client::new_signed` was given a semi-honest config",
                "set `Config::security` to `Security::Malicious` (`Config::with_security`), or use `Client::new`",
            ));
        }
        if directory.public_key(id) != Some(identity.public_key()) {
            return Err(SecAggError::param(
                "directory",
                format!("the directory has no key, or another key, for this client {id}"),
                "build the directory from the certified identities of every collaborator",
            ));
        }
        let signing = Signing {
            identity,
            directory,
            owner_hoods: None,
            sent_advert: None,
        };
        Self::build(config, id, rng, Some(signing))
    }

    fn build<R: RngCore + CryptoRng>(
        config: Config,
        id: ClientId,
        rng: &mut R,
        mut signing: Option<Signing>,
    ) -> Result<Self> {
        let graph = config.graph()?;
        let hood = graph
            .closed_neighbourhood(id)
            .ok_or(SecAggError::UnexpectedClient {
                client: id,
                why: "not in the round's config",
            })?
            .to_vec();
        if let (Some(signing), super::Mode::SecAggPlus { .. }) = (&mut signing, &config.mode) {
            signing.owner_hoods = Some(
                hood.iter()
                    .filter_map(|&o| Some((o, graph.closed_neighbourhood(o)?.to_vec())))
                    .collect(),
            );
        }
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
            signing: signing.map(Box::new),
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

    fn signing(&self) -> Result<&Signing> {
        self.signing.as_deref().ok_or_else(no_identity)
    }

    fn abort(&mut self, e: SecAggError) -> SecAggError {
        tracing::debug!(client = %self.id, round = self.config.round, "secagg client aborted");
        self.phase = Phase::Aborted(e.to_string());
        e
    }

    /// Round 0: the two public keys to send to the server.
    ///
    /// # Errors
    /// [`SecAggError::OutOfOrder`] unless this is the first call.
    pub fn advertise(&mut self) -> Result<AdvertiseKeys> {
        self.config
            .expect_security(Security::SemiHonest, "advertise", "`advertise_signed`")?;
        self.take_advertisement("advertise")
    }

    /// Round 0 of either mode: the two public keys, moving the fresh keys to `Advertised`.
    /// `call` names the public method in an out-of-order error.
    fn take_advertisement(&mut self, call: &'static str) -> Result<AdvertiseKeys> {
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Fresh(keys) = phase else {
            self.phase = phase;
            return Err(self.out_of_order(call));
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
        self.config
            .expect_security(Security::SemiHonest, "share_keys", "`share_keys_signed`")?;
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
        self.config.check_round(all.round)?;
        let mut seen = BTreeSet::new();
        let mut public_keys = BTreeSet::new();
        let mut peers = BTreeMap::new();
        let mut own_ok = false;
        for k in &all.keys {
            self.config.check_round(k.round)?;
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

    /// Round 2 with an input that is already an element of `Z_(2^32)^d`, the ring the masks
    /// and the sum live in: any `u32` is allowed, and the server's
    /// [`AggregateSum::sum`](super::AggregateSum::sum) is the wrapping sum of these vectors
    /// (its `values` mean nothing for such inputs). For encodings of your own, such as signed
    /// integers plus discrete Gaussian noise for distributed differential privacy
    /// ([`crate::dp::ddg::to_ring`]), where the caller bounds the wrap-around of the sum.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use flspec::dp::ddg::{from_ring, to_ring};
    /// use flspec::secagg::{ClientId, Config, DropoutPlan, Input, Quantizer, simulate_round};
    /// use rand_core::OsRng;
    ///
    /// let ids = vec![ClientId(1), ClientId(2), ClientId(3)];
    /// let config = Config::new(ids, 2, 2, Quantizer::new(1.0, 3)?);
    /// let inputs = BTreeMap::from([
    ///     (ClientId(1), Input::Ring(vec![to_ring(-5), to_ring(7)])),
    ///     (ClientId(2), Input::Ring(vec![to_ring(2), to_ring(-9)])),
    ///     (ClientId(3), Input::Ring(vec![to_ring(1), to_ring(1)])),
    /// ]);
    /// let out = simulate_round(&config, &inputs, &DropoutPlan::none(), &mut OsRng)?;
    /// let signed: Vec<i64> = out.result?.sum.iter().map(|&v| from_ring(v)).collect();
    /// assert_eq!(signed, [-2, -1]);
    /// # Ok::<(), flspec::secagg::SecAggError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Client::masked_input`] (but no value is out of range).
    pub fn masked_input_ring(
        &mut self,
        input: &[u32],
        received: &[EncryptedShare],
    ) -> Result<MaskedInput> {
        if !matches!(self.phase, Phase::SharedKeys(_)) {
            return Err(self.out_of_order("masked_input_ring"));
        }
        self.check_len(input.len())?;
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
            self.config.check_round(e.round)?;
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
        self.config.expect_security(
            Security::SemiHonest,
            "unmask",
            "`sign_survivors`, then `unmask_checked`",
        )?;
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
        self.config.check_round(request.round)?;
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

/// The malicious-secure mode ([`Security::Malicious`]).
impl Client {
    /// Round 0, malicious-secure: the two public keys, signed over the session id, round, this
    /// client's id and both keys.
    ///
    /// # Errors
    /// [`SecAggError::WrongSecurityMode`] in a semi-honest round; [`SecAggError::OutOfOrder`]
    /// unless this is the first call.
    pub fn advertise_signed(&mut self) -> Result<SignedAdvertiseKeys> {
        self.config
            .expect_security(Security::Malicious, "advertise_signed", "`advertise`")?;
        let msg = self.take_advertisement("advertise_signed")?;
        let session = self.config.session;
        let payload = identity::advertise_payload(
            &session,
            msg.round,
            msg.sender,
            &msg.c_public,
            &msg.s_public,
        );
        let signing = self.signing.as_deref_mut().ok_or_else(no_identity)?;
        let signed = SignedAdvertiseKeys {
            session,
            keys: msg,
            signature: signing.identity.sign(&payload),
        };
        signing.sent_advert = Some(signed.clone());
        Ok(signed)
    }

    /// Round 1, malicious-secure: checks the session, round and signature of every advertised
    /// key pair of this client's neighbourhood against the directory (in one batch), then
    /// shares keys as [`Client::share_keys`] does. Entries of non-neighbours are not verified
    /// (their keys are never used by this client); this client's own entry is not verified
    /// either but must equal, signature included, the one it sent.
    ///
    /// # Errors
    /// Aborts, revealing nothing, on [`SecAggError::WrongSession`], [`SecAggError::WrongRound`],
    /// [`SecAggError::BadSignature`] (a substituted, forged or replayed key) or
    /// [`SecAggError::UnknownSigner`]; otherwise as [`Client::share_keys`].
    pub fn share_keys_signed(&mut self, all: &SignedKeyBroadcast) -> Result<Vec<EncryptedShare>> {
        self.config
            .expect_security(Security::Malicious, "share_keys_signed", "`share_keys`")?;
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Advertised(keys) = phase else {
            self.phase = phase;
            return Err(self.out_of_order("share_keys_signed"));
        };
        let checked = self.verify_broadcast(all);
        match checked.and_then(|plain| self.do_share_keys(*keys, &plain)) {
            Ok((shared, out)) => {
                self.phase = Phase::SharedKeys(Box::new(shared));
                Ok(out)
            }
            Err(e) => Err(self.abort(e)),
        }
    }

    fn verify_broadcast(&self, all: &SignedKeyBroadcast) -> Result<AllAdvertised> {
        self.config
            .check_session(&all.session, "signed key broadcast")?;
        self.config.check_round(all.round)?;
        let signing = self.signing()?;
        let mut keys = Vec::with_capacity(all.keys.len());
        let mut to_verify = Vec::with_capacity(self.hood.len());
        for k in &all.keys {
            self.config
                .check_session(&k.session, "signed advertisement")?;
            self.config.check_round(k.keys.round)?;
            if k.keys.sender == self.id {
                // Ed25519 signatures are deterministic: what this client sent is the only
                // valid entry for it, so comparing replaces verifying.
                if signing.sent_advert.as_ref() != Some(k) {
                    return Err(SecAggError::BadSignature {
                        signer: self.id,
                        message: "advertised public keys",
                    });
                }
            } else if self.hood.binary_search(&k.keys.sender).is_ok() {
                let payload = identity::advertise_payload(
                    &k.session,
                    k.keys.round,
                    k.keys.sender,
                    &k.keys.c_public,
                    &k.keys.s_public,
                );
                to_verify.push((k.keys.sender, payload, k.signature));
            }
            keys.push(k.keys.clone());
        }
        signing
            .directory
            .verify_all("advertised public keys", &to_verify)?;
        Ok(AllAdvertised {
            round: all.round,
            keys,
        })
    }

    /// Consistency check: signs the survivor set `U3` the server announces (session, round,
    /// this client's id and the sorted set). Call after [`Client::masked_input`].
    ///
    /// # Errors
    /// Aborts on a wrong session or round, a repeated or unknown id, a set without this
    /// client, or fewer than `threshold` members of this client's neighbourhood in it
    /// ([`SecAggError::TooFewPeers`]).
    pub fn sign_survivors(&mut self, request: &ConsistencyRequest) -> Result<ConsistencySignature> {
        self.config
            .expect_security(Security::Malicious, "sign_survivors", "`unmask`")?;
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Masked(held) = phase else {
            self.phase = phase;
            return Err(self.out_of_order("sign_survivors"));
        };
        match self.do_sign_survivors(&held, request) {
            Ok((signed, msg)) => {
                self.phase = Phase::Checked(held, Box::new(signed));
                Ok(msg)
            }
            Err(e) => Err(self.abort(e)),
        }
    }

    fn do_sign_survivors(
        &self,
        held: &Held,
        request: &ConsistencyRequest,
    ) -> Result<(SignedSurvivors, ConsistencySignature)> {
        self.config
            .check_session(&request.session, "consistency request")?;
        self.config.check_round(request.round)?;
        let u3 = self.survivor_set(&request.survivors, "survivor entry in ConsistencyRequest")?;
        let t = self.config.threshold as usize;
        let live = u3
            .iter()
            .filter(|v| **v == self.id || held.mask_set.contains(v))
            .count();
        if live < t {
            return Err(SecAggError::TooFewPeers {
                list: "consistency request's survivors",
                got: live,
                threshold: t,
            });
        }
        let digest = identity::survivors_digest(&u3);
        let payload = identity::consistency_payload(
            &self.config.session,
            self.config.round,
            self.id,
            &digest,
        );
        let signature = self.signing()?.identity.sign(&payload);
        Ok((
            SignedSurvivors {
                u3,
                digest,
                signature,
            },
            ConsistencySignature {
                sender: self.id,
                session: self.config.session,
                round: self.config.round,
                signature,
            },
        ))
    }

    /// `ids` as a sorted set: no repeats, all in the round, this client included.
    fn survivor_set(&self, ids: &[ClientId], what: &'static str) -> Result<Vec<ClientId>> {
        let mut set = BTreeSet::new();
        for &v in ids {
            if self.all.binary_search(&v).is_err() {
                return Err(SecAggError::UnexpectedClient {
                    client: v,
                    why: "listed as a survivor but not in the round's config",
                });
            }
            if !set.insert(v) {
                return Err(SecAggError::Duplicate {
                    message: what,
                    client: v,
                });
            }
        }
        if !set.contains(&self.id) {
            return Err(SecAggError::UnexpectedClient {
                client: self.id,
                why: "the survivor set does not list this client; it refuses to answer",
            });
        }
        Ok(set.into_iter().collect())
    }

    /// Round 3, malicious-secure: reveals shares as [`Client::unmask`] does, but only if the
    /// request's survivors are exactly the `U3` this client signed and, for every peer whose
    /// share it reveals, at least `threshold` survivors of that peer's closed neighbourhood
    /// (everyone on the full graph) validly signed that same `U3`. `s` shares go only to
    /// clients outside `U3` (`U2 \ U3`), `b` shares only to members of `U3`.
    ///
    /// Verification is lazy: every signature is checked for session, round, signer and
    /// repeats, but only a small set that gives each such peer `threshold` signatures of its
    /// neighbourhood is verified (one batch; on the full graph this client's own and the lowest
    /// other ids, in SecAgg+ a greedy cover). A bad signature outside that set is never looked
    /// at, since the `threshold` verified ones already carry the guarantee; one inside it
    /// aborts. If the signatures cannot reach `threshold`, all of them are verified first, so
    /// a bad one is reported before [`SecAggError::TooFewSignatures`]. This client's own
    /// signature is compared with the one it made instead of verified.
    ///
    /// # Errors
    /// Aborts, revealing nothing, on [`SecAggError::InconsistentSurvivors`],
    /// [`SecAggError::BadSignature`] (a forged, altered or replayed signature among those it
    /// verifies, or its own signature altered),
    /// [`SecAggError::UnknownSigner`], [`SecAggError::TooFewSignatures`], a wrong session or
    /// round, a signer outside `U3` or signing twice; otherwise as [`Client::unmask`].
    pub fn unmask_checked(&mut self, request: &CheckedUnmaskRequest) -> Result<UnmaskResponse> {
        self.config
            .expect_security(Security::Malicious, "unmask_checked", "`unmask`")?;
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Checked(held, signed) = phase else {
            self.phase = phase;
            return Err(self.out_of_order("unmask_checked"));
        };
        let result = self
            .check_signatures(&held, &signed, request)
            .and_then(|()| self.do_unmask(&held, &request.request));
        match result {
            Ok(r) => Ok(r),
            Err(e) => Err(self.abort(e)),
        }
        // `held` (every share) is wiped here, whatever the outcome.
    }

    fn check_signatures(
        &self,
        held: &Held,
        signed: &SignedSurvivors,
        request: &CheckedUnmaskRequest,
    ) -> Result<()> {
        self.config
            .check_session(&request.session, "checked unmask request")?;
        self.config.check_round(request.request.round)?;
        let u3 = signed.u3.as_slice();
        let mut listed = request.request.survivors.clone();
        listed.sort_unstable();
        if listed != u3 {
            return Err(SecAggError::InconsistentSurvivors {
                problem: "the unmask request's survivors differ from the survivor set this client signed",
            });
        }
        let signing = self.signing()?;
        // Only signers in a neighbourhood whose owner's share this client holds can matter.
        let relevant: Option<BTreeSet<ClientId>> = signing
            .owner_hoods
            .as_ref()
            .map(|h| h.values().flatten().copied().collect());
        // Structural checks of every signature first (cheap), then the candidates that count.
        let mut candidates = BTreeMap::new();
        for sig in &request.signatures {
            self.config
                .check_session(&sig.session, "consistency signature")?;
            self.config.check_round(sig.round)?;
            if u3.binary_search(&sig.sender).is_err() {
                return Err(SecAggError::UnexpectedClient {
                    client: sig.sender,
                    why: "signed the survivor set but is not in it",
                });
            }
            if candidates.contains_key(&sig.sender) {
                return Err(SecAggError::Duplicate {
                    message: "consistency signature",
                    client: sig.sender,
                });
            }
            if relevant.as_ref().is_none_or(|r| r.contains(&sig.sender)) {
                candidates.insert(sig.sender, &sig.signature);
            }
        }
        // The owners whose shares this client would reveal, in the request's order.
        let mut owners: Vec<ClientId> = Vec::new();
        for o in request
            .request
            .survivors
            .iter()
            .chain(&request.request.dropped)
        {
            if held.shares.contains_key(o) && !owners.contains(o) {
                owners.push(*o);
            }
        }
        let t = self.config.threshold as usize;
        let ids: Vec<ClientId> = candidates.keys().copied().collect();
        if let Some(picked) = self.pick_signers(&owners, &ids, t) {
            // Enough signatures exist: verify just the picked ones (any bad one aborts);
            // the others are never needed, so never checked.
            return self.verify_consistency(signed, picked.iter().map(|v| (*v, candidates[v])));
        }
        // Too few: verify all candidates, so that a bad one is named first, then report the
        // first owner that falls short.
        self.verify_consistency(signed, candidates.iter().map(|(v, s)| (*v, *s)))?;
        for owner in owners {
            let got = match &signing.owner_hoods {
                None => ids.len(),
                Some(h) => h
                    .get(&owner)
                    .map_or(0, |hood| ids.iter().filter(|v| hood.contains(v)).count()),
            };
            if got < t {
                return Err(SecAggError::TooFewSignatures {
                    owner,
                    got,
                    threshold: t,
                });
            }
        }
        Ok(()) // unreachable: `pick_signers` finds a set whenever every owner has `t`
    }

    /// Which consistency signatures to verify: a small set of `candidates` (sorted ids) with at
    /// least `t` members of the closed neighbourhood of every owner in `owners` (everyone on the
    /// full graph), or `None` if no such set exists. This client's own signature comes first
    /// (it is compared, not verified); then, on the full graph, the lowest ids; in SecAgg+, the
    /// candidate in the most neighbourhoods still short of `t`, repeatedly (greedy set cover,
    /// lowest id on ties). Greedy fails only when some owner has fewer than `t` candidates.
    fn pick_signers(
        &self,
        owners: &[ClientId],
        candidates: &[ClientId],
        t: usize,
    ) -> Option<Vec<ClientId>> {
        let own_first = candidates
            .iter()
            .filter(|v| **v == self.id)
            .chain(candidates.iter().filter(|v| **v != self.id))
            .copied();
        let Some(hoods) = self.signing.as_ref().and_then(|s| s.owner_hoods.as_ref()) else {
            if owners.is_empty() {
                return Some(Vec::new());
            }
            return (candidates.len() >= t).then(|| own_first.take(t).collect());
        };
        let mut need: Vec<usize> = vec![t; owners.len()];
        // For each candidate (own first), the owners whose neighbourhood it is in.
        let mut pool: Vec<(ClientId, Vec<usize>)> = own_first
            .map(|v| {
                let covers = owners
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| hoods.get(o).is_some_and(|h| h.binary_search(&v).is_ok()))
                    .map(|(j, _)| j)
                    .collect();
                (v, covers)
            })
            .collect();
        let mut picked = Vec::new();
        while need.iter().any(|n| *n > 0) {
            // The first candidate of maximal gain (own signature first: it is in every
            // neighbourhood of this client's own).
            let mut best: Option<(usize, usize)> = None;
            for (i, (_, covers)) in pool.iter().enumerate() {
                let g = covers.iter().filter(|j| need[**j] > 0).count();
                if g > 0 && best.is_none_or(|(bg, _)| g > bg) {
                    best = Some((g, i));
                }
            }
            let (_, i) = best?;
            let (v, covers) = pool.remove(i);
            for j in covers {
                need[j] = need[j].saturating_sub(1);
            }
            picked.push(v);
        }
        Some(picked)
    }

    /// Checks the given consistency signatures on `signed.u3`: this client's own by comparison
    /// with the one it made, the others against the directory in one batch.
    ///
    /// # Errors
    /// [`SecAggError::BadSignature`] naming the first bad signer; [`SecAggError::UnknownSigner`].
    fn verify_consistency<'a>(
        &self,
        signed: &SignedSurvivors,
        signatures: impl Iterator<Item = (ClientId, &'a [u8; identity::SIGNATURE_LEN])>,
    ) -> Result<()> {
        let mut to_verify = Vec::new();
        for (signer, signature) in signatures {
            if signer == self.id {
                if *signature != signed.signature {
                    return Err(SecAggError::BadSignature {
                        signer,
                        message: "survivor set",
                    });
                }
                continue;
            }
            let payload = identity::consistency_payload(
                &self.config.session,
                self.config.round,
                signer,
                &signed.digest,
            );
            to_verify.push((signer, payload, *signature));
        }
        self.signing()?
            .directory
            .verify_all("survivor set", &to_verify)
    }
}
