//! Who shares keys and masks with whom: the full graph, or the SecAgg+ neighbour graph.
//!
//! The SecAgg+ graph (Bell et al. 2020) is a public, seeded, `k`-regular graph: the
//! collaborators are placed on a ring in a pseudo-random order drawn from
//! `SHA-256(label, graph_seed, session, round)` with ChaCha20, and each is linked to the `k/2`
//! nearest positions on either side (for odd `k`, with even `n`, also to the opposite position).
//! Every party computes the same graph from the config alone.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ClientId;
use super::error::{Result, SecAggError};
use super::kdf::LABEL;

/// How collaborators are connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Every collaborator shares with all others (Bonawitz et al. 2017).
    Full,
    /// SecAgg+: each collaborator shares with `k` neighbours of a public seeded `k`-regular graph.
    SecAggPlus {
        /// Neighbours per collaborator (`k = O(log n)`; see [`Mode::secagg_plus_degree`]).
        k: u32,
        /// Public seed of the graph.
        graph_seed: u64,
    },
}

impl Mode {
    /// A SecAgg+ degree for `n` collaborators: `2 * ceil(log2 n)`, capped at `n - 1`, and made
    /// even-compatible (`k * n` even).
    pub fn secagg_plus_degree(n: usize) -> u32 {
        let n = n.max(2);
        let log = usize::BITS - (n - 1).leading_zeros();
        let mut k = (2 * log as usize).min(n - 1);
        if (k * n) % 2 == 1 {
            k -= 1;
        }
        k.max(1) as u32
    }
}

/// The neighbour graph of one round over the sorted client ids.
#[derive(Clone, Debug)]
pub struct NeighbourGraph {
    ids: Vec<ClientId>,
    /// Closed neighbourhoods (sorted, self included); `None` for the full graph.
    closed: Option<Vec<Vec<ClientId>>>,
}

impl NeighbourGraph {
    /// Builds the graph for `clients` (sorted and distinct) under `mode`.
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] naming `k` if no `k`-regular graph on `n` vertices exists.
    pub fn build(
        clients: &[ClientId],
        mode: &Mode,
        session: &[u8; 32],
        round: u64,
    ) -> Result<Self> {
        let ids = clients.to_vec();
        let n = ids.len();
        let (k, graph_seed) = match mode {
            Mode::Full => return Ok(Self { ids, closed: None }),
            Mode::SecAggPlus { k, graph_seed } => (*k as usize, *graph_seed),
        };
        if k == 0 || k >= n {
            return Err(SecAggError::param(
                "k",
                format!(
                    "SecAgg+ k = {k} with {n} collaborators; k must be in 1..={}",
                    n.saturating_sub(1)
                ),
                format!("use k = {} or Mode::Full", Mode::secagg_plus_degree(n)),
            ));
        }
        if k % 2 == 1 && n % 2 == 1 {
            return Err(SecAggError::param(
                "k",
                format!("SecAgg+ k = {k} is odd and n = {n} is odd: no k-regular graph exists"),
                format!("use k = {} or {}", k - 1, k + 1),
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(LABEL);
        hasher.update(b"graph");
        hasher.update(graph_seed.to_be_bytes());
        hasher.update(session);
        hasher.update(round.to_be_bytes());
        let mut rng = ChaCha20Rng::from_seed(hasher.finalize().into());
        // Fisher-Yates: order[p] = index of the client at ring position p.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = uniform_below(&mut rng, i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut closed: Vec<Vec<ClientId>> = vec![Vec::with_capacity(k + 1); n];
        for p in 0..n {
            let me = order[p];
            closed[me].push(ids[me]);
            for d in 1..=k / 2 {
                closed[me].push(ids[order[(p + d) % n]]);
                closed[me].push(ids[order[(p + n - d) % n]]);
            }
            if k % 2 == 1 {
                closed[me].push(ids[order[(p + n / 2) % n]]);
            }
        }
        for c in &mut closed {
            c.sort_unstable();
            c.dedup();
            debug_assert_eq!(c.len(), k + 1, "ring construction is k-regular for k < n");
        }
        Ok(Self {
            ids,
            closed: Some(closed),
        })
    }

    /// All clients, sorted.
    pub fn clients(&self) -> &[ClientId] {
        &self.ids
    }

    /// Position of `id` among the sorted clients.
    pub fn index_of(&self, id: ClientId) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// The closed neighbourhood of `id` (its neighbours and itself, sorted), or `None` if
    /// `id` is not in the round.
    pub fn closed_neighbourhood(&self, id: ClientId) -> Option<&[ClientId]> {
        let i = self.index_of(id)?;
        Some(match &self.closed {
            None => &self.ids,
            Some(c) => &c[i],
        })
    }

    /// Whether `a` and `b` are neighbours (or equal).
    pub fn are_neighbours(&self, a: ClientId, b: ClientId) -> bool {
        self.share_x(a, b).is_some()
    }

    /// The Shamir evaluation point of `holder`'s share of `owner`'s secrets: its 1-based
    /// position in `owner`'s closed neighbourhood (so x never exceeds `k + 1` in SecAgg+).
    pub fn share_x(&self, owner: ClientId, holder: ClientId) -> Option<u32> {
        let hood = self.closed_neighbourhood(owner)?;
        hood.binary_search(&holder).ok().map(|p| p as u32 + 1)
    }

    /// Size of every closed neighbourhood (`n` for the full graph, `k + 1` for SecAgg+).
    pub fn closed_size(&self) -> usize {
        match &self.closed {
            None => self.ids.len(),
            Some(c) => c.first().map_or(0, Vec::len),
        }
    }
}

/// Uniform integer in `[0, bound)` by rejection (no modulo bias).
fn uniform_below(rng: &mut impl RngCore, bound: u64) -> u64 {
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let v = rng.next_u64();
        if v < zone {
            return v % bound;
        }
    }
}
