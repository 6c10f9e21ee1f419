//! The server (aggregator) state machine of one round.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::Arc;

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::error::{Result, SecAggError};
use super::graph::NeighbourGraph;
use super::identity::{self, VerifyingDirectory};
use super::kdf;
use super::messages::{
    AdvertiseKeys, AllAdvertised, CheckedUnmaskRequest, ConsistencyRequest, ConsistencySignature,
    EncryptedShare, MaskedInput, SignedAdvertiseKeys, SignedKeyBroadcast, UnmaskRequest,
    UnmaskResponse,
};
use super::parallel;
use super::prg::Sign;
use super::shamir::{Recoverer, SecretShare, ShamirField};
use super::{ClientId, Config, Security, Stage};

const ORDER: &str = "receive_advertise*, broadcast_keys, receive_shares*, route_shares, receive_masked*, \
                     unmask_request, receive_unmask*, finish (malicious-secure: receive_signed_advertise*, \
                     broadcast_signed_keys, ..., receive_masked*, consistency_request, \
                     receive_consistency*, checked_unmask_request, receive_unmask*, finish)";

/// The result of a round: the exact sum in `Z_(2^32)` and its de-quantized value.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateSum {
    /// Wrapping sum of the contributors' quantized inputs (exact, since the quantizer leaves
    /// room for `n_max` summands).
    pub sum: Vec<u32>,
    /// The de-quantized sum of the contributors' (clipped) inputs.
    pub values: Vec<f32>,
    /// The clients whose inputs are in the sum (those whose masked input arrived), sorted.
    pub contributors: Vec<ClientId>,
}

impl AggregateSum {
    /// The mean over the contributors.
    pub fn mean(&self) -> Vec<f32> {
        let inv = 1.0 / self.contributors.len().max(1) as f32;
        self.values.iter().map(|v| v * inv).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Keys,
    Shares,
    Masked,
    Consistency,
    Unmask,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Keys => "collecting keys",
            Self::Shares => "collecting shares",
            Self::Masked => "collecting masked inputs",
            Self::Consistency => "collecting consistency signatures",
            Self::Unmask => "collecting unmask responses",
        }
    }
}

/// Admits one message of `sender` in any receive step, of either mode: it must be `allowed`
/// (else [`SecAggError::UnexpectedClient`] saying `why` not) and not `seen` before from the
/// same sender (else [`SecAggError::Duplicate`] naming `message`).
fn admit(
    sender: ClientId,
    allowed: bool,
    why: &'static str,
    seen: bool,
    message: &'static str,
) -> Result<()> {
    if !allowed {
        return Err(SecAggError::UnexpectedClient {
            client: sender,
            why,
        });
    }
    if seen {
        return Err(SecAggError::Duplicate {
            message,
            client: sender,
        });
    }
    Ok(())
}

/// The aggregator's side of one round: a sans-IO state machine that only routes ciphertexts
/// and sums masked vectors; it learns the sum of the survivors' inputs and nothing else
/// (against a semi-honest server; see the module docs for the threat model).
///
/// It holds no randomness: given the same messages it computes the same result.
pub struct Server {
    config: Config,
    graph: NeighbourGraph,
    field: ShamirField,
    phase: Phase,
    advertised: BTreeMap<ClientId, AdvertiseKeys>,
    shares_in: BTreeMap<ClientId, Vec<EncryptedShare>>,
    u2: BTreeSet<ClientId>,
    /// For each u in U2: the peers whose ciphertexts were routed to u (its mask set).
    mask_sets: BTreeMap<ClientId, BTreeSet<ClientId>>,
    sum: Vec<u32>,
    u3: BTreeSet<ClientId>,
    dropped: BTreeSet<ClientId>,
    responses: BTreeMap<ClientId, UnmaskResponse>,
    /// Malicious-secure mode: the advertisements' signatures, forwarded as received.
    signed_adverts: BTreeMap<ClientId, [u8; 64]>,
    /// Malicious-secure mode: the survivors' signatures on `U3`.
    consistency: BTreeMap<ClientId, ConsistencySignature>,
    /// Optional: drop badly signed messages early (the clients check them anyway).
    directory: Option<Arc<VerifyingDirectory>>,
    /// Digest of `U3`, computed once for checking consistency signatures.
    u3_digest: Option<[u8; 32]>,
    /// Worker threads for [`Server::finish`].
    threads: NonZeroUsize,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("round", &self.config.round)
            .field("state", &self.phase.name())
            .field("advertised", &self.advertised.len())
            .field("u2", &self.u2.len())
            .field("u3", &self.u3.len())
            .field("responses", &self.responses.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for the round `config`.
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] if the config is invalid.
    pub fn new(config: Config) -> Result<Self> {
        let graph = config.graph()?;
        Ok(Self {
            field: config.shamir_field(),
            sum: vec![0; config.vector_len],
            config,
            graph,
            phase: Phase::Keys,
            advertised: BTreeMap::new(),
            shares_in: BTreeMap::new(),
            u2: BTreeSet::new(),
            mask_sets: BTreeMap::new(),
            u3: BTreeSet::new(),
            dropped: BTreeSet::new(),
            responses: BTreeMap::new(),
            signed_adverts: BTreeMap::new(),
            consistency: BTreeMap::new(),
            directory: None,
            u3_digest: None,
            threads: parallel::default_threads(),
        })
    }

    /// Sets how many worker threads [`Server::finish`] uses to rebuild the secrets and remove
    /// the masks (default: [`default_threads`](super::default_threads), the machine's
    /// available parallelism). The result is the same bytes for any count; 1 runs everything
    /// on the calling thread. On the full graph at n = 1,000 this is the O(n^2) part of the
    /// server's round: one key agreement and one mask expansion per (dropped client,
    /// survivor) pair.
    pub fn with_threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = threads;
        self
    }

    /// The worker threads [`Server::finish`] uses ([`Server::with_threads`]).
    pub fn threads(&self) -> NonZeroUsize {
        self.threads
    }

    /// Makes the server check signatures itself (malicious-secure mode), so that a client
    /// with a bad signature is left out of the round instead of making every honest client
    /// abort. Security does not depend on it: clients check every signature they rely on.
    pub fn with_directory(mut self, directory: Arc<VerifyingDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The round's config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The round's neighbour graph.
    pub fn graph(&self) -> &NeighbourGraph {
        &self.graph
    }

    fn expect_phase(&self, want: Phase, call: &'static str) -> Result<()> {
        if self.phase == want {
            Ok(())
        } else {
            Err(SecAggError::OutOfOrder {
                call,
                state: self.phase.name(),
                order: ORDER,
            })
        }
    }

    fn check_threshold(&self, stage: Stage, survived: usize) -> Result<()> {
        let threshold = self.config.threshold as usize;
        if survived < threshold {
            tracing::warn!(round = self.config.round, %stage, survived, threshold, "secagg round aborted");
            return Err(SecAggError::TooFewSurvivors {
                stage,
                survived,
                threshold,
            });
        }
        Ok(())
    }

    /// Round 0: records one client's public keys.
    ///
    /// # Errors
    /// Wrong state or round, an unknown sender, or a second message from the same sender.
    pub fn receive_advertise(&mut self, msg: AdvertiseKeys) -> Result<()> {
        self.config.expect_security(
            Security::SemiHonest,
            "receive_advertise",
            "`receive_signed_advertise`",
        )?;
        self.record_advertise(msg)
    }

    fn record_advertise(&mut self, msg: AdvertiseKeys) -> Result<()> {
        self.expect_phase(Phase::Keys, "receive_advertise")?;
        self.config.check_round(msg.round)?;
        admit(
            msg.sender,
            self.graph.index_of(msg.sender).is_some(),
            "not in the round's config",
            self.advertised.contains_key(&msg.sender),
            "AdvertiseKeys",
        )?;
        self.advertised.insert(msg.sender, msg);
        Ok(())
    }

    /// Closes round 0 and returns the keys to broadcast to every client that advertised.
    ///
    /// # Errors
    /// [`SecAggError::TooFewSurvivors`] if fewer than `threshold` clients advertised.
    pub fn broadcast_keys(&mut self) -> Result<AllAdvertised> {
        self.config.expect_security(
            Security::SemiHonest,
            "broadcast_keys",
            "`broadcast_signed_keys`",
        )?;
        self.expect_phase(Phase::Keys, "broadcast_keys")?;
        self.check_threshold(Stage::AdvertiseKeys, self.advertised.len())?;
        self.phase = Phase::Shares;
        Ok(AllAdvertised {
            round: self.config.round,
            keys: self.advertised.values().cloned().collect(),
        })
    }

    /// Round 1: records the encrypted shares one client sent (one per advertised neighbour).
    ///
    /// # Errors
    /// Wrong state or round; a sender that did not advertise or sends twice; a ciphertext
    /// whose sender differs, whose recipient is not an advertised neighbour, or repeats one.
    pub fn receive_shares(&mut self, sender: ClientId, shares: Vec<EncryptedShare>) -> Result<()> {
        self.expect_phase(Phase::Shares, "receive_shares")?;
        admit(
            sender,
            self.advertised.contains_key(&sender),
            "sent shares without advertising keys",
            self.shares_in.contains_key(&sender),
            "ShareKeys",
        )?;
        let mut recipients = BTreeSet::new();
        for e in &shares {
            self.config.check_round(e.round)?;
            if e.sender != sender {
                return Err(SecAggError::malformed(
                    "ShareKeys",
                    format!(
                        "client {sender} sent a share labelled as from client {}",
                        e.sender
                    ),
                ));
            }
            if e.recipient == sender
                || !self.advertised.contains_key(&e.recipient)
                || !self.graph.are_neighbours(sender, e.recipient)
            {
                return Err(SecAggError::UnexpectedClient {
                    client: e.recipient,
                    why: "addressed a share but is not an advertised neighbour of its sender",
                });
            }
            if !recipients.insert(e.recipient) {
                return Err(SecAggError::Duplicate {
                    message: "EncryptedShare",
                    client: sender,
                });
            }
        }
        self.shares_in.insert(sender, shares);
        Ok(())
    }

    /// Closes round 1: returns, for each client that sent shares, the ciphertexts addressed to
    /// it by the other clients that sent shares (send each client only its own list).
    ///
    /// # Errors
    /// [`SecAggError::TooFewSurvivors`] if fewer than `threshold` clients sent shares.
    pub fn route_shares(&mut self) -> Result<BTreeMap<ClientId, Vec<EncryptedShare>>> {
        self.expect_phase(Phase::Shares, "route_shares")?;
        self.check_threshold(Stage::ShareKeys, self.shares_in.len())?;
        self.u2 = self.shares_in.keys().copied().collect();
        let mut routed: BTreeMap<ClientId, Vec<EncryptedShare>> =
            self.u2.iter().map(|&u| (u, Vec::new())).collect();
        for (_, list) in core::mem::take(&mut self.shares_in) {
            for e in list {
                if let Some(inbox) = routed.get_mut(&e.recipient) {
                    inbox.push(e);
                }
            }
        }
        self.mask_sets = routed
            .iter()
            .map(|(&u, inbox)| (u, inbox.iter().map(|e| e.sender).collect()))
            .collect();
        self.phase = Phase::Masked;
        Ok(routed)
    }

    /// Round 2: adds one client's masked vector to the running sum (no vector is stored).
    ///
    /// # Errors
    /// Wrong state or round; a sender that sent no shares, or sends twice; a wrong length.
    pub fn receive_masked(&mut self, msg: MaskedInput) -> Result<()> {
        self.expect_phase(Phase::Masked, "receive_masked")?;
        self.config.check_round(msg.round)?;
        admit(
            msg.sender,
            self.u2.contains(&msg.sender),
            "sent a masked input without sharing keys",
            self.u3.contains(&msg.sender),
            "MaskedInput",
        )?;
        if msg.masked.len() != self.config.vector_len {
            return Err(SecAggError::LengthMismatch {
                what: "masked input",
                got: msg.masked.len(),
                expected: self.config.vector_len,
                fix: "every client must send a vector of the config's `vector_len`",
            });
        }
        for (s, m) in self.sum.iter_mut().zip(&msg.masked) {
            *s = s.wrapping_add(*m);
        }
        self.u3.insert(msg.sender);
        Ok(())
    }

    /// Closes round 2 and returns the request to send to every survivor.
    ///
    /// # Errors
    /// [`SecAggError::TooFewSurvivors`] if fewer than `threshold` masked inputs arrived.
    pub fn unmask_request(&mut self) -> Result<UnmaskRequest> {
        self.config.expect_security(
            Security::SemiHonest,
            "unmask_request",
            "`consistency_request`, `receive_consistency` and `checked_unmask_request`",
        )?;
        self.expect_phase(Phase::Masked, "unmask_request")?;
        self.check_threshold(Stage::MaskedInputCollection, self.u3.len())?;
        self.dropped = self.u2.difference(&self.u3).copied().collect();
        self.phase = Phase::Unmask;
        Ok(UnmaskRequest {
            round: self.config.round,
            survivors: self.u3.iter().copied().collect(),
            dropped: self.dropped.iter().copied().collect(),
        })
    }

    /// Round 3: records one survivor's revealed shares.
    ///
    /// # Errors
    /// Wrong state or round; a sender that is not a survivor or answers twice; a share of a
    /// client the sender holds no share of, of the wrong kind (a `b` share of a dropped
    /// client or an `s` share of a survivor), repeated, or of the wrong length.
    pub fn receive_unmask(&mut self, resp: UnmaskResponse) -> Result<()> {
        self.expect_phase(Phase::Unmask, "receive_unmask")?;
        self.config.check_round(resp.round)?;
        let sender = resp.sender;
        if self.config.security == Security::Malicious && !self.consistency.contains_key(&sender) {
            return Err(SecAggError::UnexpectedClient {
                client: sender,
                why: "sent an unmask response without signing the survivor set",
            });
        }
        admit(
            sender,
            self.u3.contains(&sender),
            "sent an unmask response but is not a survivor",
            self.responses.contains_key(&sender),
            "UnmaskResponse",
        )?;
        let held_from = self.mask_sets.get(&sender);
        let holds =
            |owner: ClientId| owner == sender || held_from.is_some_and(|m| m.contains(&owner));
        for (list, allowed, what) in [
            (
                &resp.seed_shares,
                &self.u3,
                "b share of a client that is not a survivor",
            ),
            (
                &resp.key_shares,
                &self.dropped,
                "s share of a client that did not drop",
            ),
        ] {
            let mut owners = BTreeSet::new();
            for r in list {
                if !allowed.contains(&r.owner) {
                    return Err(SecAggError::UnexpectedClient {
                        client: r.owner,
                        why: what,
                    });
                }
                if !holds(r.owner) {
                    return Err(SecAggError::UnexpectedClient {
                        client: r.owner,
                        why: "share revealed by a client that holds no share of it",
                    });
                }
                if !owners.insert(r.owner) {
                    return Err(SecAggError::Duplicate {
                        message: "revealed share",
                        client: sender,
                    });
                }
                if r.share.len() != self.field.share_len() {
                    return Err(SecAggError::LengthMismatch {
                        what: "revealed share",
                        got: r.share.len(),
                        expected: self.field.share_len(),
                        fix: "clients and server must use the same config",
                    });
                }
            }
        }
        self.responses.insert(sender, resp);
        Ok(())
    }

    /// Closes the round: rebuilds the self-mask seeds of the survivors and the mask keys of the
    /// dropped clients, removes their masks, and returns the sum. All or nothing: on any error
    /// no partial result exists. The rebuilding and the mask expansions run on
    /// [`Server::threads`] workers; the sum is the same for any worker count.
    ///
    /// # Errors
    /// [`SecAggError::TooFewSurvivors`] if fewer than `threshold` clients answered the unmask
    /// request; [`SecAggError::TooFewShareHolders`] if some client's secret has fewer than
    /// `threshold` shares (SecAgg+); [`SecAggError::Shamir`] or
    /// [`SecAggError::Malformed`] on inconsistent shares.
    pub fn finish(mut self) -> Result<AggregateSum> {
        self.expect_phase(Phase::Unmask, "finish")?;
        self.check_threshold(Stage::Unmasking, self.responses.len())?;
        let t = self.config.threshold as usize;
        // Gather shares per owner, with their evaluation points from the graph.
        let mut seed_shares: BTreeMap<ClientId, Vec<SecretShare>> = BTreeMap::new();
        let mut key_shares: BTreeMap<ClientId, Vec<SecretShare>> = BTreeMap::new();
        for (&holder, resp) in &self.responses {
            for (list, into) in [
                (&resp.seed_shares, &mut seed_shares),
                (&resp.key_shares, &mut key_shares),
            ] {
                for r in list {
                    let x = self.graph.share_x(r.owner, holder).ok_or_else(|| {
                        SecAggError::malformed("unmask response", "share from a non-neighbour")
                    })?;
                    into.entry(r.owner)
                        .or_default()
                        .push(SecretShare::new(x, r.share.clone()));
                }
            }
        }
        // Dropped clients whose pairwise masks are in the sum.
        let mut to_unmask: BTreeMap<ClientId, Vec<ClientId>> = BTreeMap::new();
        for &u in &self.u3 {
            for &v in self.mask_sets.get(&u).into_iter().flatten() {
                if self.dropped.contains(&v) {
                    to_unmask.entry(v).or_default().push(u);
                }
            }
        }
        // Check every count before any work, so an abort is cheap and total.
        let count = |m: &BTreeMap<ClientId, Vec<SecretShare>>, owner: &ClientId| {
            m.get(owner).map_or(0, Vec::len)
        };
        for owner in &self.u3 {
            let survived = count(&seed_shares, owner);
            if survived < t {
                return Err(SecAggError::TooFewShareHolders {
                    owner: *owner,
                    survived,
                    threshold: t,
                });
            }
        }
        for owner in to_unmask.keys() {
            let survived = count(&key_shares, owner);
            if survived < t {
                return Err(SecAggError::TooFewShareHolders {
                    owner: *owner,
                    survived,
                    threshold: t,
                });
            }
        }
        let mut sum = core::mem::take(&mut self.sum);
        self.remove_masks(&mut sum, &seed_shares, &key_shares, &to_unmask)?;
        let n = self.u3.len() as u32;
        let values = self.config.quantizer.dequantize_sum(&sum, n)?;
        tracing::debug!(
            round = self.config.round,
            contributors = n,
            "secagg round complete"
        );
        Ok(AggregateSum {
            sum,
            values,
            contributors: self.u3.iter().copied().collect(),
        })
    }
    /// Rebuilds the survivors' seeds and the dropped clients' mask keys, then removes every
    /// self mask and every pairwise mask of a dropped client from `sum`, on
    /// [`Server::threads`] workers. Both steps are independent per owner (per survivor and
    /// dropped client pair for the masks); each worker sums its masks into its own vector and
    /// the partial sums are added at the end, in `Z_(2^32)` where the order does not matter, so
    /// any worker count gives the same bytes. On an error, the first in owner order (seeds of
    /// `U3`, then keys of the dropped clients, as [`Server::finish`] documents) is returned.
    fn remove_masks(
        &self,
        sum: &mut [u32],
        seed_shares: &BTreeMap<ClientId, Vec<SecretShare>>,
        key_shares: &BTreeMap<ClientId, Vec<SecretShare>>,
        to_unmask: &BTreeMap<ClientId, Vec<ClientId>>,
    ) -> Result<()> {
        let t = self.config.threshold as usize;
        let session = self.config.session;
        let round = self.config.round;
        // 1. Rebuild every secret. Each worker keeps its own Lagrange-coefficient cache.
        let jobs: Vec<(usize, Rebuild)> = self
            .u3
            .iter()
            .map(|&u| Rebuild::Seed(u))
            .chain(to_unmask.keys().map(|&v| Rebuild::Key(v)))
            .enumerate()
            .collect();
        let parts = parallel::fold(
            self.threads,
            &jobs,
            || (Recoverer::new(self.field, t), Vec::new()),
            |(recoverer, out): &mut (Recoverer, Vec<(usize, Result<Rebuilt>)>), (i, job)| {
                let rebuilt = match *job {
                    Rebuild::Seed(u) => recoverer.recover(&seed_shares[&u]).map(Rebuilt::Seed),
                    Rebuild::Key(v) => self.rebuild_key(recoverer, v, &key_shares[&v]),
                };
                out.push((*i, rebuilt));
            },
        );
        let mut slots: Vec<Option<Result<Rebuilt>>> = jobs.iter().map(|_| None).collect();
        for (i, r) in parts.into_iter().flat_map(|(_, out)| out) {
            slots[i] = Some(r);
        }
        let mut seeds = Vec::with_capacity(self.u3.len());
        let mut keys = Vec::with_capacity(to_unmask.len());
        for ((_, job), slot) in jobs.iter().zip(slots) {
            match (job, slot) {
                (Rebuild::Seed(u), Some(Ok(Rebuilt::Seed(seed)))) => seeds.push((*u, seed)),
                (Rebuild::Key(v), Some(Ok(Rebuilt::Key(s_v)))) => keys.push((*v, s_v)),
                (_, Some(Err(e))) => return Err(e),
                _ => {
                    return Err(SecAggError::malformed(
                        "unmasking",
                        "a rebuilt secret is missing (internal error; please report it)",
                    ));
                }
            }
        }
        // 2. Expand and remove the masks: one self mask per survivor, one pairwise mask per
        // (dropped client, surviving neighbour) pair.
        let masks: Vec<Unmask<'_>> =
            seeds
                .iter()
                .map(|(u, seed)| Unmask::SelfMask(*u, seed))
                .chain(keys.iter().flat_map(|(v, s_v)| {
                    to_unmask[v].iter().map(move |&u| Unmask::Pair(*v, s_v, u))
                }))
                .collect();
        let partials = parallel::fold(
            self.threads,
            &masks,
            || Zeroizing::new(vec![0u32; sum.len()]),
            |acc, mask| match *mask {
                Unmask::SelfMask(u, seed) => {
                    kdf::self_mask_key(seed, &session, round, u).apply(acc, Sign::Minus);
                }
                Unmask::Pair(v, s_v, u) => {
                    let dh = s_v.diffie_hellman(&PublicKey::from(self.advertised[&u].s_public));
                    // u added +PRG if u < v, -PRG otherwise: remove it.
                    let sign = if u < v { Sign::Minus } else { Sign::Plus };
                    kdf::pairwise_mask_key(dh.as_bytes(), &session, round, u, v).apply(acc, sign);
                }
            },
        );
        for part in &partials {
            for (s, p) in sum.iter_mut().zip(part.iter()) {
                *s = s.wrapping_add(*p);
            }
        }
        Ok(())
    }

    /// Rebuilds the mask key `s_v` of the dropped client `v` and checks it against the key
    /// `v` advertised.
    fn rebuild_key(
        &self,
        recoverer: &mut Recoverer,
        v: ClientId,
        shares: &[SecretShare],
    ) -> Result<Rebuilt> {
        let key_bytes = recoverer.recover(shares)?;
        let s_v = StaticSecret::from(*key_bytes);
        if PublicKey::from(&s_v).to_bytes() != self.advertised[&v].s_public {
            return Err(SecAggError::malformed(
                "unmask responses",
                format!(
                    "the rebuilt mask key of client {v} does not match its advertised key: a share is corrupt"
                ),
            ));
        }
        Ok(Rebuilt::Key(s_v))
    }
}

/// A secret to rebuild when the round closes.
enum Rebuild {
    /// The self-mask seed `b_u` of a survivor.
    Seed(ClientId),
    /// The mask key `s_v` of a dropped client.
    Key(ClientId),
}

/// A rebuilt secret (wiped on drop).
enum Rebuilt {
    Seed(Zeroizing<[u8; 32]>),
    Key(StaticSecret),
}

/// One mask to remove from the sum.
enum Unmask<'a> {
    /// The self mask of survivor `u`, from its rebuilt seed.
    SelfMask(ClientId, &'a [u8; 32]),
    /// The pairwise mask between dropped client `v` (its rebuilt key) and survivor `u`.
    Pair(ClientId, &'a StaticSecret, ClientId),
}

/// The malicious-secure mode ([`Security::Malicious`]).
impl Server {
    /// Round 0, malicious-secure: records one client's signed keys (checking the signature
    /// first if the server has a directory, see [`Server::with_directory`]).
    ///
    /// # Errors
    /// As [`Server::receive_advertise`]; [`SecAggError::WrongSession`];
    /// [`SecAggError::BadSignature`] or [`SecAggError::UnknownSigner`] with a directory.
    pub fn receive_signed_advertise(&mut self, msg: SignedAdvertiseKeys) -> Result<()> {
        self.config.expect_security(
            Security::Malicious,
            "receive_signed_advertise",
            "`receive_advertise`",
        )?;
        self.expect_phase(Phase::Keys, "receive_signed_advertise")?;
        self.config
            .check_session(&msg.session, "signed advertisement")?;
        self.config.check_round(msg.keys.round)?;
        if let Some(dir) = &self.directory {
            let k = &msg.keys;
            let payload = identity::advertise_payload(
                &msg.session,
                k.round,
                k.sender,
                &k.c_public,
                &k.s_public,
            );
            dir.verify(k.sender, "advertised public keys", &payload, &msg.signature)?;
        }
        let sender = msg.keys.sender;
        self.record_advertise(msg.keys)?;
        self.signed_adverts.insert(sender, msg.signature);
        Ok(())
    }

    /// Closes round 0 (malicious-secure) and returns the signed keys to broadcast.
    ///
    /// # Errors
    /// [`SecAggError::TooFewSurvivors`] if fewer than `threshold` clients advertised.
    pub fn broadcast_signed_keys(&mut self) -> Result<SignedKeyBroadcast> {
        self.config.expect_security(
            Security::Malicious,
            "broadcast_signed_keys",
            "`broadcast_keys`",
        )?;
        self.expect_phase(Phase::Keys, "broadcast_signed_keys")?;
        self.check_threshold(Stage::AdvertiseKeys, self.advertised.len())?;
        self.phase = Phase::Shares;
        let keys = self
            .advertised
            .values()
            .map(|k| SignedAdvertiseKeys {
                session: self.config.session,
                keys: k.clone(),
                signature: self.signed_adverts[&k.sender],
            })
            .collect();
        Ok(SignedKeyBroadcast {
            session: self.config.session,
            round: self.config.round,
            keys,
        })
    }

    /// The signed keys for one `client`: only its closed neighbourhood's advertisements (all of
    /// them on the full graph), the only keys it uses. Call after
    /// [`Server::broadcast_signed_keys`]; in SecAgg+ it cuts what each client downloads from
    /// `|U1|` advertisements to `k + 1`.
    ///
    /// # Errors
    /// Wrong state; [`SecAggError::UnexpectedClient`] if `client` did not advertise.
    pub fn signed_keys_for(&self, client: ClientId) -> Result<SignedKeyBroadcast> {
        if self.phase == Phase::Keys || !self.signed_adverts.contains_key(&client) {
            return Err(SecAggError::UnexpectedClient {
                client,
                why: "did not advertise signed keys, or the keys are not broadcast yet",
            });
        }
        let hood = self.graph.closed_neighbourhood(client).unwrap_or(&[]);
        let keys = hood
            .iter()
            .filter_map(|v| {
                Some(SignedAdvertiseKeys {
                    session: self.config.session,
                    keys: self.advertised.get(v)?.clone(),
                    signature: *self.signed_adverts.get(v)?,
                })
            })
            .collect();
        Ok(SignedKeyBroadcast {
            session: self.config.session,
            round: self.config.round,
            keys,
        })
    }

    /// Closes round 2 (malicious-secure) and returns the survivor set `U3` to send to every
    /// survivor for signing.
    ///
    /// # Errors
    /// [`SecAggError::TooFewSurvivors`] if fewer than `threshold` masked inputs arrived.
    pub fn consistency_request(&mut self) -> Result<ConsistencyRequest> {
        self.config.expect_security(
            Security::Malicious,
            "consistency_request",
            "`unmask_request`",
        )?;
        self.expect_phase(Phase::Masked, "consistency_request")?;
        self.check_threshold(Stage::MaskedInputCollection, self.u3.len())?;
        self.dropped = self.u2.difference(&self.u3).copied().collect();
        self.phase = Phase::Consistency;
        Ok(ConsistencyRequest {
            session: self.config.session,
            round: self.config.round,
            survivors: self.u3.iter().copied().collect(),
        })
    }

    /// Consistency check: records one survivor's signature on `U3` (checked first if the
    /// server has a directory).
    ///
    /// # Errors
    /// Wrong state, session or round; a sender outside `U3` or signing twice; with a
    /// directory, [`SecAggError::BadSignature`] or [`SecAggError::UnknownSigner`].
    pub fn receive_consistency(&mut self, sig: ConsistencySignature) -> Result<()> {
        self.expect_phase(Phase::Consistency, "receive_consistency")?;
        self.config
            .check_session(&sig.session, "consistency signature")?;
        self.config.check_round(sig.round)?;
        admit(
            sig.sender,
            self.u3.contains(&sig.sender),
            "signed the survivor set but is not a survivor",
            self.consistency.contains_key(&sig.sender),
            "ConsistencySignature",
        )?;
        if let Some(dir) = &self.directory {
            let digest = *self.u3_digest.get_or_insert_with(|| {
                identity::survivors_digest(&self.u3.iter().copied().collect::<Vec<_>>())
            });
            let payload = identity::consistency_payload(
                &self.config.session,
                self.config.round,
                sig.sender,
                &digest,
            );
            dir.verify(sig.sender, "survivor set", &payload, &sig.signature)?;
        }
        self.consistency.insert(sig.sender, sig);
        Ok(())
    }

    /// Closes the consistency check: returns the unmask request with every signature received,
    /// to send to every signer.
    ///
    /// # Errors
    /// [`SecAggError::TooFewSurvivors`] (stage `Unmasking`) if fewer than `threshold`
    /// survivors signed.
    pub fn checked_unmask_request(&mut self) -> Result<CheckedUnmaskRequest> {
        self.expect_phase(Phase::Consistency, "checked_unmask_request")?;
        self.check_threshold(Stage::Unmasking, self.consistency.len())?;
        self.phase = Phase::Unmask;
        Ok(CheckedUnmaskRequest {
            session: self.config.session,
            request: UnmaskRequest {
                round: self.config.round,
                survivors: self.u3.iter().copied().collect(),
                dropped: self.dropped.iter().copied().collect(),
            },
            signatures: self.consistency.values().cloned().collect(),
        })
    }

    /// The checked unmask request for one `client`, carrying only the signatures that client
    /// counts: those of its neighbours' closed neighbourhoods (SecAgg+), all of them on the
    /// full graph. Call after [`Server::checked_unmask_request`]; in SecAgg+ it cuts what each
    /// client downloads from `|U3|` signatures to about `2k + 1`.
    ///
    /// # Errors
    /// Wrong state; [`SecAggError::UnexpectedClient`] if `client` did not sign.
    pub fn checked_unmask_request_for(&self, client: ClientId) -> Result<CheckedUnmaskRequest> {
        self.expect_phase(Phase::Unmask, "checked_unmask_request_for")?;
        if !self.consistency.contains_key(&client) {
            return Err(SecAggError::UnexpectedClient {
                client,
                why: "did not sign the survivor set, so it gets no unmask request",
            });
        }
        let hood = self.graph.closed_neighbourhood(client).unwrap_or(&[]);
        let relevant: BTreeSet<ClientId> = hood
            .iter()
            .flat_map(|&o| self.graph.closed_neighbourhood(o).unwrap_or(&[]))
            .copied()
            .collect();
        Ok(CheckedUnmaskRequest {
            session: self.config.session,
            request: UnmaskRequest {
                round: self.config.round,
                survivors: self.u3.iter().copied().collect(),
                dropped: self.dropped.iter().copied().collect(),
            },
            signatures: self
                .consistency
                .values()
                .filter(|s| relevant.contains(&s.sender))
                .cloned()
                .collect(),
        })
    }
}
