//! Choosing the collaborators of a round, with Flower's `FedAvg` semantics.
//!
//! A [`ClientSampler`] holds Flower's `fraction_fit`, `min_fit_clients` and
//! `min_available_clients` and a seed. [`ClientSampler::sample`] takes the round number and the
//! names that are online now, and picks `max(floor(available · fraction), min_clients)` of them
//! (Flower's `num_fit_clients`), uniformly at random from a stream seeded by the seed and the
//! round. The pick depends only on the seed, the round and the *set* of online names (not their
//! order), so a local and a federated run of the same flow pick the same collaborators. Where
//! Flower blocks until enough clients connect (or returns an empty sample), this returns a
//! [`SamplingError`] saying how many were online and how many were needed.
//!
//! ```
//! use flspec::fl::sampling::ClientSampler;
//!
//! let sampler = ClientSampler::new(42).fraction(0.3).min_clients(2).min_available(2);
//! let online = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
//! let round_1 = sampler.sample(1, &online)?;
//! assert_eq!(round_1.len(), 3);
//! assert_eq!(round_1, sampler.sample(1, &online)?); // deterministic
//! # Ok::<(), flspec::fl::sampling::SamplingError>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Populations up to this many times the sample are shuffled densely (a vector of them all).
const DENSE_FACTOR: usize = 8;

use super::partition::rng;

/// Samples the collaborators of each round; see the [module documentation](self).
///
/// ```
/// use flspec::fl::sampling::ClientSampler;
///
/// // Flower's defaults: fraction 1.0, at least 2 clients, at least 2 online.
/// let all = ClientSampler::new(0);
/// assert_eq!(all.sample(0, &["x", "y", "z"])?, ["x", "y", "z"]);
/// # Ok::<(), flspec::fl::sampling::SamplingError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientSampler {
    fraction: f64,
    min_clients: usize,
    min_available: usize,
    seed: u64,
}

impl ClientSampler {
    /// A sampler with Flower's `FedAvg` defaults (`fraction_fit = 1.0`, `min_fit_clients = 2`,
    /// `min_available_clients = 2`) and this seed.
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// assert_eq!(ClientSampler::new(7).sample_size(10), 10);
    /// ```
    pub fn new(seed: u64) -> Self {
        ClientSampler {
            fraction: 1.0,
            min_clients: 2,
            min_available: 2,
            seed,
        }
    }

    /// Flower's `fraction_fit`: the share of the online collaborators to pick, in `[0, 1]`
    /// (checked by [`ClientSampler::sample`]).
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// assert_eq!(ClientSampler::new(7).fraction(0.25).sample_size(10), 2);
    /// ```
    #[must_use]
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = fraction;
        self
    }

    /// Flower's `min_fit_clients`: pick at least this many, whatever the fraction.
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// assert_eq!(ClientSampler::new(7).fraction(0.1).min_clients(3).sample_size(10), 3);
    /// ```
    #[must_use]
    pub fn min_clients(mut self, min_clients: usize) -> Self {
        self.min_clients = min_clients;
        self
    }

    /// Flower's `min_available_clients`: refuse to sample while fewer than this many are online.
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// let s = ClientSampler::new(7).min_clients(1).min_available(3);
    /// assert!(s.sample(0, &["a", "b"]).is_err());
    /// ```
    #[must_use]
    pub fn min_available(mut self, min_available: usize) -> Self {
        self.min_available = min_available;
        self
    }

    /// How many collaborators a round with `available` online picks: Flower's
    /// `num_fit_clients`, `max(floor(available · fraction), min_clients)`.
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// let s = ClientSampler::new(0).fraction(0.5).min_clients(2);
    /// assert_eq!((s.sample_size(9), s.sample_size(2)), (4, 2));
    /// ```
    pub fn sample_size(&self, available: usize) -> usize {
        ((available as f64 * self.fraction) as usize).max(self.min_clients)
    }

    /// Picks round `round`'s collaborators among the `online` names (duplicates count once),
    /// returned sorted by name. Only online names are ever picked.
    ///
    /// # Errors
    /// [`SamplingError::Fraction`] if the fraction is not within `[0, 1]`;
    /// [`SamplingError::NotEnoughAvailable`] if fewer than `min_available` are online, or
    /// fewer than the sample size (Flower returns an empty sample there).
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// let s = ClientSampler::new(5).fraction(0.5);
    /// let picked = s.sample(3, &["d", "a", "c", "b"])?;
    /// assert_eq!(picked.len(), 2);
    /// assert!(picked.windows(2).all(|w| w[0] < w[1]));
    /// assert_eq!(picked, s.sample(3, &["a", "b", "c", "d"])?); // order of `online` is irrelevant
    /// # Ok::<(), flspec::fl::sampling::SamplingError>(())
    /// ```
    pub fn sample<'a, S: AsRef<str>>(
        &self,
        round: u64,
        online: &'a [S],
    ) -> Result<Vec<&'a str>, SamplingError> {
        self.pick(round, online.iter().map(AsRef::as_ref))
    }

    /// Picks round `round`'s collaborators among `available` numbered ones (`0..available`),
    /// returned sorted, in time and memory that grow with the sample, not with `available`:
    /// the sample of a round from a population of a million costs what it costs from a
    /// thousand. Over sorted names, `sample` picks exactly the names at these positions.
    ///
    /// # Errors
    /// As [`ClientSampler::sample`].
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// let s = ClientSampler::new(9).fraction(0.001).min_clients(3);
    /// let picked = s.sample_indices(2, 1_000_000)?;
    /// assert_eq!(picked.len(), 1_000);
    /// let names = ["a", "b", "c", "d", "e", "f"];
    /// let by_name = ClientSampler::new(9).fraction(0.5).sample(2, &names)?;
    /// let by_index = ClientSampler::new(9).fraction(0.5).sample_indices(2, names.len())?;
    /// assert_eq!(by_name, by_index.iter().map(|&i| names[i]).collect::<Vec<_>>());
    /// # Ok::<(), flspec::fl::sampling::SamplingError>(())
    /// ```
    pub fn sample_indices(
        &self,
        round: u64,
        available: usize,
    ) -> Result<Vec<usize>, SamplingError> {
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(SamplingError::Fraction(self.fraction));
        }
        let size = self.sample_size(available);
        let needed = size.max(self.min_available);
        if available < needed {
            return Err(SamplingError::NotEnoughAvailable {
                available,
                needed,
                min_available: self.min_available,
                sample_size: size,
            });
        }
        // Stream = round, so every round draws afresh and reproducibly from the one seed.
        let mut rng = rng::seeded(self.seed, round);
        // Partial Fisher–Yates: the first `size` slots of `0..available` are a uniform sample.
        // Small populations shuffle a vector; large ones keep only the slots that moved, which
        // draws the same sample.
        let mut picked: Vec<usize> = if available <= size.saturating_mul(DENSE_FACTOR) {
            let mut order: Vec<usize> = (0..available).collect();
            for i in 0..size {
                let j = i + rng::below(&mut rng, available - i);
                order.swap(i, j);
            }
            order.truncate(size);
            order
        } else {
            let mut moved: HashMap<usize, usize, BuildHasherDefault<SlotHasher>> =
                HashMap::with_capacity_and_hasher(2 * size, BuildHasherDefault::default());
            let mut picked = Vec::with_capacity(size);
            for i in 0..size {
                let j = i + rng::below(&mut rng, available - i);
                let at_j = moved.get(&j).copied().unwrap_or(j);
                let at_i = moved.get(&i).copied().unwrap_or(i);
                moved.insert(j, at_i);
                picked.push(at_j);
            }
            picked
        };
        picked.sort_unstable();
        Ok(picked)
    }

    /// Picks among the distinct `online` names (see [`ClientSampler::sample`]).
    fn pick<'a>(
        &self,
        round: u64,
        online: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<&'a str>, SamplingError> {
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(SamplingError::Fraction(self.fraction));
        }
        let names: Vec<&'a str> = online.collect::<BTreeSet<_>>().into_iter().collect();
        let picked = self.sample_indices(round, names.len())?;
        Ok(picked.into_iter().map(|i| names[i]).collect())
    }

    /// [`ClientSampler::sample`] over `all` names, keeping only those `is_online` says are.
    ///
    /// # Errors
    /// As [`ClientSampler::sample`], counting only the online names.
    ///
    /// ```
    /// # use flspec::fl::sampling::ClientSampler;
    /// let s = ClientSampler::new(1).min_clients(1).min_available(1);
    /// let picked = s.sample_online(0, &["a", "b", "c"], |name| name != "b")?;
    /// assert_eq!(picked, ["a", "c"]);
    /// # Ok::<(), flspec::fl::sampling::SamplingError>(())
    /// ```
    pub fn sample_online<'a, S: AsRef<str>>(
        &self,
        round: u64,
        all: &'a [S],
        mut is_online: impl FnMut(&str) -> bool,
    ) -> Result<Vec<&'a str>, SamplingError> {
        self.pick(
            round,
            all.iter().map(AsRef::as_ref).filter(|name| is_online(name)),
        )
    }
}

/// Why a round could not be sampled.
///
/// ```
/// use flspec::fl::sampling::{ClientSampler, SamplingError};
/// let err = ClientSampler::new(0).min_clients(3).sample(0, &["a", "b"]).unwrap_err();
/// assert!(matches!(err, SamplingError::NotEnoughAvailable { available: 2, needed: 3, .. }));
/// ```
#[derive(Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// The fraction is not within `[0, 1]`.
    #[error(
        "client fraction {0} is not within [0, 1]; use e.g. 0.1 for a tenth of the online clients"
    )]
    Fraction(f64),
    /// Fewer collaborators are online than the round needs.
    #[error(
        "{available} collaborators online, the round needs {needed} \
         (min_available_clients = {min_available}, sample size = {sample_size}); \
         wait for more to connect or lower min_clients / min_available"
    )]
    NotEnoughAvailable {
        /// Distinct names online.
        available: usize,
        /// `max(min_available, sample size)`.
        needed: usize,
        /// The `min_available` setting.
        min_available: usize,
        /// The sample size for this many online.
        sample_size: usize,
    },
}

/// Prints the message, as flspec's errors do, so that `fn main() -> Result<(), SamplingError>` shows
/// what went wrong rather than the variant's fields.
impl core::fmt::Debug for SamplingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::error::write_chain(self, f)
    }
}

/// Hashes the slot numbers of the sparse shuffle with one multiply (Fibonacci hashing): they
/// are not chosen by an adversary, and SipHash would cost more than the draw.
#[derive(Default)]
struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense partial Fisher–Yates over the whole population, as `sample` drew before
    /// `sample_indices` learnt to keep only the moved slots.
    fn dense(seed: u64, round: u64, available: usize, size: usize) -> Vec<usize> {
        let mut rng = rng::seeded(seed, round);
        let mut order: Vec<usize> = (0..available).collect();
        for i in 0..size {
            let j = i + rng::below(&mut rng, available - i);
            order.swap(i, j);
        }
        let mut picked = order[..size].to_vec();
        picked.sort_unstable();
        picked
    }

    #[test]
    fn sparse_draw_picks_what_the_dense_shuffle_picks() {
        for (available, size) in [(100_000, 100), (10_000, 1_000), (50, 5), (9, 1)] {
            let s = ClientSampler::new(17)
                .fraction(0.0)
                .min_clients(size)
                .min_available(1);
            for round in 0..3 {
                assert_eq!(
                    s.sample_indices(round, available)
                        .expect("enough are available"),
                    dense(17, round, available, size),
                    "{size} of {available}, round {round}"
                );
            }
        }
    }
}
