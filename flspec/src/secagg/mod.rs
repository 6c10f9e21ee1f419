#![doc = include_str!("README.md")]

mod client;
mod error;
pub mod graph;
pub mod identity;
pub mod kdf;
pub mod messages;
mod parallel;
pub mod prg;
pub mod quantize;
pub mod rng;
mod server;
pub mod shamir;
mod simulate;

use serde::{Deserialize, Serialize};

pub use client::Client;
pub use error::{Result, SecAggError};
pub use graph::{Mode, NeighbourGraph};
pub use identity::{SigningIdentity, VerifyingDirectory};
pub use messages::{
    AdvertiseKeys, AllAdvertised, CheckedUnmaskRequest, ConsistencyRequest, ConsistencySignature,
    EncryptedShare, MaskedInput, RevealedShare, SignedAdvertiseKeys, SignedKeyBroadcast,
    UnmaskRequest, UnmaskResponse,
};
pub use parallel::default_threads;
pub use quantize::Quantizer;
pub use server::{AggregateSum, Server};
pub use shamir::ShamirField;
pub use simulate::{
    DropoutPlan, Input, SimulationOutcome, Transcript, TranscriptEntry, simulate_round,
    simulate_round_with_threads,
};

/// The longest vector one round can mask: ChaCha20 (RFC 8439) has a 32-bit block counter,
/// `2^32` blocks of 16 words.
pub const MAX_VECTOR_LEN: u64 = 1 << 36;

/// A collaborator's id in a round (any distinct `u32`s; Shamir evaluation points come from
/// positions in the neighbour graph, not from the ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub u32);

impl core::fmt::Display for ClientId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

/// The four rounds of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Round 0: public keys.
    AdvertiseKeys,
    /// Round 1: encrypted shares.
    ShareKeys,
    /// Round 2: masked inputs.
    MaskedInputCollection,
    /// Round 3: shares for unmasking.
    Unmasking,
}

impl core::fmt::Display for Stage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::AdvertiseKeys => "AdvertiseKeys",
            Self::ShareKeys => "ShareKeys",
            Self::MaskedInputCollection => "MaskedInputCollection",
            Self::Unmasking => "Unmasking",
        })
    }
}

/// The smallest threshold that resists the unmask-list attack in a group of `group_size`
/// share holders: more than half of them, `group_size / 2 + 1`, and at least 2.
///
/// `group_size` is the number of invited clients `n` on the full graph, and the size `k + 1`
/// of each closed neighbourhood in SecAgg+ ([`Config::min_safe_threshold`] picks the right
/// one for a config).
///
/// # Security
/// With `t <= group_size / 2` a server that sends two different unmask requests to two
/// disjoint groups of clients (client X "dropped" in one list, alive in the other) collects
/// `t` shares of X's self-mask seed `b_X` from one group and `t` shares of its mask key `s_X`
/// from the other, rebuilds both and removes every mask from X's input. No forgery is needed,
/// and no honest client can notice. With `t > group_size / 2` the two groups would need more
/// than `group_size` answers, and each client answers one request per round.
///
/// ```
/// use flspec::secagg::min_safe_threshold;
/// assert_eq!(min_safe_threshold(2), 2);
/// assert_eq!(min_safe_threshold(4), 3);
/// assert_eq!(min_safe_threshold(5), 3);
/// ```
pub fn min_safe_threshold(group_size: u32) -> u32 {
    (group_size / 2 + 1).max(2)
}

/// The smallest threshold of the malicious-secure mode in a group of `group_size` share
/// holders: more than two thirds, `2 * group_size / 3 + 1`, and at least 2 (Bonawitz et al.
/// 2017, §6: with `t > 2n/3` the consistency check holds against a server that also controls
/// fewer than `n/3` clients).
///
/// ```
/// use flspec::secagg::min_malicious_threshold;
/// assert_eq!(min_malicious_threshold(3), 3);
/// assert_eq!(min_malicious_threshold(10), 7);
/// assert_eq!(min_malicious_threshold(100), 67);
/// ```
pub fn min_malicious_threshold(group_size: u32) -> u32 {
    (2 * u64::from(group_size) / 3 + 1).max(2) as u32
}

/// Which server the round resists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Security {
    /// Bonawitz et al. 2017's semi-honest protocol: a server that follows the protocol learns
    /// only the sum. The default (and the mode of a serialized config without the field).
    #[default]
    SemiHonest,
    /// The actively secure variant (Bonawitz et al. 2017, §4 "active adversary"): advertised
    /// keys are signed with each collaborator's [`SigningIdentity`] and checked against a
    /// [`VerifyingDirectory`], and a consistency-check round makes every survivor sign the
    /// survivor set `U3`; a client reveals shares only after at least `threshold` valid
    /// signatures on the same `U3`. Needs `threshold > 2/3` of each group
    /// ([`min_malicious_threshold`]). Use [`Client::new_signed`] and the `_signed`/`_checked`
    /// calls.
    Malicious,
}

impl core::fmt::Display for Security {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::SemiHonest => "semi-honest",
            Self::Malicious => "malicious-secure",
        })
    }
}

/// The public parameters of one round, known to the server and every client.
///
/// A deserialized config is checked with [`Config::validate`] before it is returned, so an
/// invalid one (from a flow state, a message or a checkpoint) is refused at load time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ConfigFields")]
pub struct Config {
    /// The collaborators invited to the round (distinct ids, any order).
    pub clients: Vec<ClientId>,
    /// Shamir threshold `t`: shares needed to rebuild a secret, and the fewest survivors for
    /// which the round completes. On the full graph `n/2 < t <= n` (`t >= 2`); in SecAgg+ it
    /// applies to each closed neighbourhood of `k + 1` clients: `(k + 1)/2 < t <= k + 1`.
    /// See [`min_safe_threshold`] for why a lower `t` is refused.
    pub threshold: u32,
    /// Session id, bound into every key derivation and encrypted share.
    pub session: [u8; 32],
    /// Round number, bound likewise; use a fresh round (or session) every time.
    pub round: u64,
    /// Full graph or SecAgg+.
    pub mode: Mode,
    /// How `f32` inputs map to `Z_(2^32)`.
    pub quantizer: Quantizer,
    /// Length of every input vector.
    pub vector_len: usize,
    /// UNSAFE: accept a threshold at or below half the group ([`min_safe_threshold`]); any
    /// `2 <= t` is then allowed. Off by default (and when absent from a serialized config).
    ///
    /// # Security
    /// With this on, a server that sends different unmask lists to two groups of clients can
    /// rebuild both secrets of one client and read its input in the clear. Turn it on only
    /// when the server is trusted to send one list to everyone (for instance in tests), and
    /// prefer [`Config::unsafe_allow_low_threshold`] so the choice is visible in the code.
    #[serde(default)]
    pub unsafe_allow_low_threshold: bool,
    /// Semi-honest (default) or malicious-secure; absent from a serialized config means
    /// semi-honest.
    #[serde(default)]
    pub security: Security,
}

/// The serialized form of a [`Config`], checked by [`Config::validate`] on load.
#[derive(Deserialize)]
struct ConfigFields {
    clients: Vec<ClientId>,
    threshold: u32,
    session: [u8; 32],
    round: u64,
    mode: Mode,
    quantizer: Quantizer,
    vector_len: usize,
    #[serde(default)]
    unsafe_allow_low_threshold: bool,
    #[serde(default)]
    security: Security,
}

impl TryFrom<ConfigFields> for Config {
    type Error = SecAggError;
    fn try_from(f: ConfigFields) -> Result<Self> {
        let config = Self {
            clients: f.clients,
            threshold: f.threshold,
            session: f.session,
            round: f.round,
            mode: f.mode,
            quantizer: f.quantizer,
            vector_len: f.vector_len,
            unsafe_allow_low_threshold: f.unsafe_allow_low_threshold,
            security: f.security,
        };
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// A full-graph config with session id zero and round 0; adjust the public fields or use
    /// the `with_` methods.
    pub fn new(
        clients: impl IntoIterator<Item = ClientId>,
        threshold: u32,
        vector_len: usize,
        quantizer: Quantizer,
    ) -> Self {
        Self {
            clients: clients.into_iter().collect(),
            threshold,
            session: [0; 32],
            round: 0,
            mode: Mode::Full,
            quantizer,
            vector_len,
            unsafe_allow_low_threshold: false,
            security: Security::SemiHonest,
        }
    }

    /// Sets the security mode.
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// UNSAFE: accepts a threshold at or below half of each group (see
    /// [`Config::unsafe_allow_low_threshold`](Config#structfield.unsafe_allow_low_threshold)).
    ///
    /// # Security
    /// A server that sends different unmask lists to two groups of clients can then rebuild
    /// both `b_u` and `s_u` of one client and unmask its input. Use only where the server is
    /// trusted to send every client the same list.
    pub fn unsafe_allow_low_threshold(mut self) -> Self {
        self.unsafe_allow_low_threshold = true;
        self
    }

    /// The smallest threshold [`Config::validate`] accepts without the opt-out, of `n` on the
    /// full graph and of `k + 1` in SecAgg+: [`min_safe_threshold`] in the semi-honest mode,
    /// [`min_malicious_threshold`] in the malicious-secure one.
    pub fn min_safe_threshold(&self) -> u32 {
        let group = u32::try_from(self.neighbourhood_size()).unwrap_or(u32::MAX);
        match self.security {
            Security::SemiHonest => min_safe_threshold(group),
            Security::Malicious => min_malicious_threshold(group),
        }
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the session id.
    pub fn with_session(mut self, session: [u8; 32]) -> Self {
        self.session = session;
        self
    }

    /// Sets the round.
    pub fn with_round(mut self, round: u64) -> Self {
        self.round = round;
        self
    }

    /// Refuses a call made for another [`Security`] mode than this round's.
    pub(crate) fn expect_security(
        &self,
        want: Security,
        call: &'static str,
        instead: &'static str,
    ) -> Result<()> {
        if self.security == want {
            Ok(())
        } else {
            Err(SecAggError::WrongSecurityMode {
                call,
                mode: self.security,
                instead,
            })
        }
    }

    /// Refuses a `message` of another session.
    pub(crate) fn check_session(&self, got: &[u8; 32], message: &'static str) -> Result<()> {
        if *got == self.session {
            Ok(())
        } else {
            Err(SecAggError::WrongSession { message })
        }
    }

    /// Refuses a message of another round.
    pub(crate) fn check_round(&self, got: u64) -> Result<()> {
        if got == self.round {
            Ok(())
        } else {
            Err(SecAggError::WrongRound {
                expected: self.round,
                got,
            })
        }
    }

    /// The clients, sorted.
    pub fn sorted_clients(&self) -> Vec<ClientId> {
        let mut ids = self.clients.clone();
        ids.sort_unstable();
        ids
    }

    /// The neighbour graph of this round.
    ///
    /// # Errors
    /// As [`Config::validate`].
    pub fn graph(&self) -> Result<NeighbourGraph> {
        self.validate()?;
        NeighbourGraph::build(
            &self.sorted_clients(),
            &self.mode,
            &self.session,
            self.round,
        )
    }

    /// Size of each closed neighbourhood: `n` on the full graph, `k + 1` in SecAgg+.
    pub fn neighbourhood_size(&self) -> usize {
        match self.mode {
            Mode::Full => self.clients.len(),
            Mode::SecAggPlus { k, .. } => k as usize + 1,
        }
    }

    /// The Shamir field: GF(2^8) when every neighbourhood has at most 255 members, else GF(2^61 - 1).
    pub fn shamir_field(&self) -> ShamirField {
        ShamirField::for_shares(self.neighbourhood_size())
    }

    /// Checks every parameter up front.
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] naming the value to change: `clients` (fewer than 2,
    /// duplicates), `threshold` (outside `2..=n` or `2..=k + 1`, or not more than half of that
    /// group without the [`Config::unsafe_allow_low_threshold`] opt-out; see
    /// [`min_safe_threshold`]), `k`, `quantizer.n_max` (smaller than the number of clients,
    /// so sums could wrap) or `vector_len`.
    pub fn validate(&self) -> Result<()> {
        let n = self.clients.len();
        if n < 2 {
            return Err(SecAggError::param(
                "clients",
                format!("{n} client(s); secure aggregation needs at least 2"),
                "invite at least 2 collaborators",
            ));
        }
        let sorted = self.sorted_clients();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(SecAggError::param(
                "clients",
                format!("client id {} appears twice", w[0]),
                "give every collaborator a distinct id",
            ));
        }
        if let Mode::SecAggPlus { k, .. } = self.mode {
            let k = k as usize;
            if k == 0 || k >= n || (k % 2 == 1 && n % 2 == 1) {
                // The graph builder reports the precise problem.
                NeighbourGraph::build(&sorted, &self.mode, &self.session, self.round)?;
            }
        }
        let hood = self.neighbourhood_size();
        let t = self.threshold as usize;
        let scope = match self.mode {
            Mode::Full => format!("the number of clients n = {hood}"),
            Mode::SecAggPlus { .. } => format!("the neighbourhood size k + 1 = {hood}"),
        };
        let safe = self.min_safe_threshold() as usize;
        if t < 2 || t > hood {
            return Err(SecAggError::param(
                "threshold",
                format!("threshold = {t} is outside 2..={hood} ({scope})"),
                format!(
                    "set `threshold` between {safe} and {hood} (more than half of {hood}, so a server cannot unmask anyone)"
                ),
            ));
        }
        if t < safe && !self.unsafe_allow_low_threshold && self.security == Security::Malicious {
            return Err(SecAggError::param(
                "threshold",
                format!(
                    "threshold = {t} is not more than two thirds of {scope}, the bound of the \
                     malicious-secure mode (Bonawitz et al. 2017): below it a server that also \
                     controls a few clients can gather threshold-many consistency signatures on two \
                     different survivor sets"
                ),
                format!(
                    "set `threshold` to at least {safe}; only if no client can collude with the \
                     server, opt out with `Config::unsafe_allow_low_threshold()` (then any t >= 2 is \
                     accepted, and only t > half of each group still resists a server alone)"
                ),
            ));
        }
        if t < safe && !self.unsafe_allow_low_threshold {
            return Err(SecAggError::param(
                "threshold",
                format!(
                    "threshold = {t} is not more than half of {scope}: a server that sends different \
                     unmask lists to two groups of clients (one client dropped in one list, alive in \
                     the other) collects {t} shares of both its self-mask seed b_u and its mask key s_u, \
                     rebuilds both and unmasks that client's input"
                ),
                format!(
                    "set `threshold` to at least {safe}; only if the server is trusted to send every \
                     client the same unmask list, opt out with `Config::unsafe_allow_low_threshold()` \
                     (field `unsafe_allow_low_threshold: true`)"
                ),
            ));
        }
        if self.quantizer.n_max() < n as u32 {
            return Err(SecAggError::param(
                "quantizer.n_max",
                format!(
                    "the quantizer is sized for {} summands but the round has {n} clients, so the sum could wrap",
                    self.quantizer.n_max()
                ),
                format!("build the Quantizer with n_max >= {n}"),
            ));
        }
        if self.vector_len as u64 > MAX_VECTOR_LEN {
            return Err(SecAggError::param(
                "vector_len",
                format!(
                    "vector_len = {} exceeds {MAX_VECTOR_LEN}, the most one ChaCha20 key can mask",
                    self.vector_len
                ),
                "split the update into several rounds",
            ));
        }
        if self.vector_len == 0 {
            return Err(SecAggError::param(
                "vector_len",
                "vector_len = 0",
                "set `vector_len` to the number of values each collaborator sends",
            ));
        }
        Ok(())
    }
}
