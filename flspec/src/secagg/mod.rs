#![doc = include_str!("README.md")]

mod client;
mod error;
pub mod graph;
pub mod kdf;
pub mod messages;
pub mod prg;
pub mod quantize;
mod server;
pub mod shamir;
mod simulate;

use serde::{Deserialize, Serialize};

pub use client::Client;
pub use error::{Result, SecAggError};
pub use graph::{Mode, NeighbourGraph};
pub use messages::{
    AdvertiseKeys, AllAdvertised, EncryptedShare, MaskedInput, RevealedShare, UnmaskRequest,
    UnmaskResponse,
};
pub use quantize::Quantizer;
pub use server::{AggregateSum, Server};
pub use shamir::ShamirField;
pub use simulate::{
    DropoutPlan, Input, SimulationOutcome, Transcript, TranscriptEntry, simulate_round,
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

/// The public parameters of one round, known to the server and every client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The collaborators invited to the round (distinct ids, any order).
    pub clients: Vec<ClientId>,
    /// Shamir threshold `t`: shares needed to rebuild a secret, and the fewest survivors for
    /// which the round completes. In SecAgg+ it applies to each closed neighbourhood
    /// (`2 <= t <= k + 1`); on the full graph `2 <= t <= n`.
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
    /// duplicates), `threshold`, `k`, `quantizer.n_max` (smaller than the number of clients,
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
        if t < 2 || t > hood {
            let scope = match self.mode {
                Mode::Full => format!("the number of clients n = {hood}"),
                Mode::SecAggPlus { .. } => format!("the neighbourhood size k + 1 = {hood}"),
            };
            return Err(SecAggError::param(
                "threshold",
                format!("threshold = {t} is outside 2..={hood} ({scope})"),
                format!(
                    "set `threshold` between 2 and {hood}; more than half ({}) resists collusion best",
                    hood / 2 + 1
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
