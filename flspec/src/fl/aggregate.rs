//! Server-side aggregation of parameter vectors.
//!
//! The module splits aggregators by what they need to see, and the type system enforces it:
//!
//! - [`WeightedSum`] holds only the (weighted) sum of the updates and the total weight. It is
//!   what a secure-aggregation round can produce, and all that a mean ([`WeightedSum::mean_into`]),
//!   FedAvgM ([`FedAvgM`]) and the FedOpt server optimizers ([`FedOpt`]: FedAdam, FedYogi,
//!   FedAdagrad) need.
//! - [`Individual`] holds each collaborator's update. The robust aggregators ([`Median`],
//!   [`TrimmedMean`], [`Krum`], [`Bulyan`]) implement [`RobustAggregator`], whose only method
//!   takes `&Individual`; given a `WeightedSum` they do not compile:
//!
//! ```compile_fail,E0308
//! use flspec::fl::aggregate::{Median, RobustAggregator, WeightedSum};
//! let mut sum = WeightedSum::new(2);
//! sum.add(&[1.0, 2.0], 1.0).unwrap();
//! let mut out = [0.0f32; 2];
//! Median.aggregate(&sum, &mut out).unwrap(); // a SecAgg sum has no individual updates
//! ```
//!
//! Definitions and parameter names follow Flower 1.42 (`flwr/server/strategy/aggregate.py`,
//! `fedopt.py`, `fedadam.py`, `fedyogi.py`, `fedadagrad.py`, `fedavgm.py`); the tests pin
//! values computed with Flower's own functions (`scripts/reference/flower_aggregate.py`).
//!
//! Sums accumulate in `f64`: weights are sample counts (tens of thousands) and sums run over
//! many collaborators, where `f32` would lose about 3 digits; the conversion and the
//! multiply-add vectorise, and aggregation stays bound by reading the `f32` inputs.

use serde::{Deserialize, Serialize};

/// What is wrong with an aggregation's input.
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// An update's length differs from the model's.
    #[error(
        "update {index} has {found} values but the model has {expected}; send updates of the same model"
    )]
    LengthMismatch {
        /// Position of the update among those given (0-based).
        index: usize,
        /// The model's number of values.
        expected: usize,
        /// The update's number of values.
        found: usize,
    },
    /// No update was given.
    #[error("no updates to aggregate; wait for at least one collaborator's update")]
    Empty,
    /// The total weight is zero, negative or not finite.
    #[error(
        "total weight is {total}, it must be positive and finite; give each update a positive weight (e.g. its sample count)"
    )]
    NonPositiveWeight {
        /// The offending total weight.
        total: f64,
    },
    /// A single weight is negative or not finite.
    #[error("update {index} has a negative or non-finite weight; use its sample count or 1.0")]
    InvalidWeight {
        /// Position of the update.
        index: usize,
    },
    /// An update holds NaN or an infinity (robust aggregators reject it rather than spreading it).
    #[error("update {index} holds a non-finite value; drop that collaborator's update")]
    NonFinite {
        /// Position of the update.
        index: usize,
    },
    /// Too many Byzantine collaborators for the rule's guarantee.
    #[error(
        "{rule} with f = {f} Byzantine collaborators needs at least {required} updates, got {n}; lower f or wait for more updates"
    )]
    TooManyByzantine {
        /// The rule (`"Krum"`, `"Bulyan"`).
        rule: &'static str,
        /// The assumed number of Byzantine collaborators.
        f: usize,
        /// Updates given.
        n: usize,
        /// Updates needed.
        required: usize,
    },
    /// A hyper-parameter is out of its range.
    #[error("{name} = {value} is out of range: {expected}")]
    InvalidParameter {
        /// The parameter's name (Flower's).
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range.
        expected: &'static str,
    },
}

/// Result of an aggregation.
pub type Result<T> = std::result::Result<T, AggregateError>;

fn check_len(index: usize, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(AggregateError::LengthMismatch {
            index,
            expected,
            found,
        })
    }
}

fn check_weight(index: usize, w: f64) -> Result<()> {
    if w.is_finite() && w >= 0.0 {
        Ok(())
    } else {
        Err(AggregateError::InvalidWeight { index })
    }
}

fn check_total(total: f64) -> Result<()> {
    if total.is_finite() && total > 0.0 {
        Ok(())
    } else {
        Err(AggregateError::NonPositiveWeight { total })
    }
}

/// Coordinates per block of the one-shot means: the `f64` accumulator (8 KiB) stays in L1.
const BLOCK: usize = 1024;

/// Weighted mean `Σ wᵢ·xᵢ / Σ wᵢ` of `updates` into `out`, Flower's `aggregate` (FedAvg).
///
/// Allocates nothing: it accumulates block by block in an `f64` stack buffer.
///
/// # Errors
/// [`AggregateError::Empty`], [`AggregateError::LengthMismatch`] (against `out`),
/// [`AggregateError::InvalidWeight`], [`AggregateError::NonPositiveWeight`].
///
/// ```
/// use flspec::fl::aggregate::weighted_mean_into;
/// let mut out = [0.0f32; 2];
/// weighted_mean_into(&[(&[1.0, 2.0][..], 1.0), (&[4.0, 5.0][..], 2.0)], &mut out)?;
/// assert_eq!(out, [3.0, 4.0]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
pub fn weighted_mean_into(updates: &[(&[f32], f64)], out: &mut [f32]) -> Result<()> {
    if updates.is_empty() {
        return Err(AggregateError::Empty);
    }
    let mut total = 0.0;
    for (i, (u, w)) in updates.iter().enumerate() {
        check_len(i, out.len(), u.len())?;
        check_weight(i, *w)?;
        total += w;
    }
    check_total(total)?;
    let inv = 1.0 / total;
    let mut acc = [0.0f64; BLOCK];
    for (start, out_block) in (0..).step_by(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let acc = &mut acc[..out_block.len()];
        acc.fill(0.0);
        add_block(acc, updates, start);
        for (o, a) in out_block.iter_mut().zip(acc.iter()) {
            *o = (*a * inv) as f32;
        }
    }
    Ok(())
}

/// Unweighted mean of `updates` into `out` (every weight 1).
///
/// # Errors
/// [`AggregateError::Empty`], [`AggregateError::LengthMismatch`] (against `out`).
///
/// ```
/// use flspec::fl::aggregate::mean_into;
/// let mut out = [0.0f32; 2];
/// mean_into(&[&[1.0, 2.0][..], &[3.0, 6.0][..]], &mut out)?;
/// assert_eq!(out, [2.0, 4.0]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
pub fn mean_into(updates: &[&[f32]], out: &mut [f32]) -> Result<()> {
    if updates.is_empty() {
        return Err(AggregateError::Empty);
    }
    for (i, u) in updates.iter().enumerate() {
        check_len(i, out.len(), u.len())?;
    }
    let inv = 1.0 / updates.len() as f64;
    let mut acc = [0.0f64; BLOCK];
    for (start, out_block) in (0..).step_by(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let acc = &mut acc[..out_block.len()];
        acc.fill(0.0);
        let end = start + out_block.len();
        // Four updates per pass: one load and store of the accumulator per four inputs.
        let mut quads = updates.chunks_exact(4);
        for q in &mut quads {
            let xs = q[0][start..end].iter().zip(&q[1][start..end]);
            let xs = xs.zip(q[2][start..end].iter().zip(&q[3][start..end]));
            for (a, ((x0, x1), (x2, x3))) in acc.iter_mut().zip(xs) {
                *a += (f64::from(*x0) + f64::from(*x1)) + (f64::from(*x2) + f64::from(*x3));
            }
        }
        match quads.remainder() {
            [] => {}
            [u] => {
                for (a, x) in acc.iter_mut().zip(&u[start..end]) {
                    *a += f64::from(*x);
                }
            }
            [u0, u1] => {
                for (a, (x0, x1)) in acc
                    .iter_mut()
                    .zip(u0[start..end].iter().zip(&u1[start..end]))
                {
                    *a += f64::from(*x0) + f64::from(*x1);
                }
            }
            [u0, u1, u2] => {
                let xs = u0[start..end]
                    .iter()
                    .zip(&u1[start..end])
                    .zip(&u2[start..end]);
                for (a, ((x0, x1), x2)) in acc.iter_mut().zip(xs) {
                    *a += (f64::from(*x0) + f64::from(*x1)) + f64::from(*x2);
                }
            }
            _ => unreachable!("chunks_exact(4) leaves at most 3"),
        }
        for (o, a) in out_block.iter_mut().zip(acc.iter()) {
            *o = (*a * inv) as f32;
        }
    }
    Ok(())
}

/// Adds `Σ wᵢ·xᵢ[start..start + acc.len()]` into `acc`, four updates per pass: one load and
/// store of the accumulator per four inputs.
fn add_block(acc: &mut [f64], updates: &[(&[f32], f64)], start: usize) {
    let end = start + acc.len();
    let mut quads = updates.chunks_exact(4);
    for q in &mut quads {
        let (w0, w1, w2, w3) = (q[0].1, q[1].1, q[2].1, q[3].1);
        let xs = q[0].0[start..end].iter().zip(&q[1].0[start..end]);
        let xs = xs.zip(q[2].0[start..end].iter().zip(&q[3].0[start..end]));
        for (a, ((x0, x1), (x2, x3))) in acc.iter_mut().zip(xs) {
            *a += (w0 * f64::from(*x0) + w1 * f64::from(*x1))
                + (w2 * f64::from(*x2) + w3 * f64::from(*x3));
        }
    }
    match quads.remainder() {
        [] => {}
        [(u, w)] => axpy(acc, &u[start..end], *w),
        [(u0, w0), (u1, w1)] => {
            for (a, (x0, x1)) in acc
                .iter_mut()
                .zip(u0[start..end].iter().zip(&u1[start..end]))
            {
                *a += w0 * f64::from(*x0) + w1 * f64::from(*x1);
            }
        }
        [(u0, w0), (u1, w1), (u2, w2)] => {
            let xs = u0[start..end]
                .iter()
                .zip(&u1[start..end])
                .zip(&u2[start..end]);
            for (a, ((x0, x1), x2)) in acc.iter_mut().zip(xs) {
                *a += (w0 * f64::from(*x0) + w1 * f64::from(*x1)) + w2 * f64::from(*x2);
            }
        }
        _ => unreachable!("chunks_exact(4) leaves at most 3"),
    }
}

#[inline]
fn axpy(acc: &mut [f64], x: &[f32], w: f64) {
    for (a, x) in acc.iter_mut().zip(x) {
        *a += w * f64::from(*x);
    }
}

/// The weighted sum of updates and their total weight: all that means and server optimizers
/// need, and what secure aggregation yields. Add updates one at a time (a folding join), merge
/// partial sums, or build one from a SecAgg sum with [`WeightedSum::from_sum`].
///
/// ```
/// use flspec::fl::aggregate::WeightedSum;
/// let mut sum = WeightedSum::new(2);
/// sum.add(&[1.0, 2.0], 1.0)?;
/// sum.add(&[4.0, 5.0], 2.0)?;
/// assert_eq!(sum.mean()?, vec![3.0, 4.0]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedSum {
    sum: Vec<f64>,
    total_weight: f64,
    count: usize,
}

impl WeightedSum {
    /// An empty sum for models of `len` values.
    ///
    /// ```
    /// let s = flspec::fl::aggregate::WeightedSum::new(3);
    /// assert_eq!((s.len(), s.count()), (3, 0));
    /// ```
    pub fn new(len: usize) -> Self {
        Self {
            sum: vec![0.0; len],
            total_weight: 0.0,
            count: 0,
        }
    }

    /// A sum computed elsewhere, e.g. the unmasked output of secure aggregation: `sum` is
    /// `Σ wᵢ·xᵢ` (for plain SecAgg of unweighted updates, `Σ xᵢ` with `total_weight` the number
    /// of survivors), `count` the number of updates in it.
    ///
    /// # Errors
    /// [`AggregateError::NonPositiveWeight`] unless `total_weight` is positive and finite.
    ///
    /// ```
    /// use flspec::fl::aggregate::WeightedSum;
    /// let s = WeightedSum::from_sum(vec![6.0, 9.0], 3.0, 3)?;
    /// assert_eq!(s.mean()?, vec![2.0, 3.0]);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn from_sum(sum: Vec<f64>, total_weight: f64, count: usize) -> Result<Self> {
        check_total(total_weight)?;
        Ok(Self {
            sum,
            total_weight,
            count,
        })
    }

    /// Adds one update with `weight` (its sample count, or 1.0 for an unweighted mean).
    ///
    /// # Errors
    /// [`AggregateError::LengthMismatch`], [`AggregateError::InvalidWeight`]; the sum is
    /// unchanged on error.
    ///
    /// ```
    /// let mut s = flspec::fl::aggregate::WeightedSum::new(1);
    /// s.add(&[2.0], 3.0)?;
    /// assert_eq!((s.as_slice(), s.total_weight()), (&[6.0][..], 3.0));
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn add(&mut self, update: &[f32], weight: f64) -> Result<()> {
        check_len(self.count, self.sum.len(), update.len())?;
        check_weight(self.count, weight)?;
        axpy(&mut self.sum, update, weight);
        self.total_weight += weight;
        self.count += 1;
        Ok(())
    }

    /// Adds several updates with their weights in one pass over the sum (faster than
    /// [`WeightedSum::add`] one by one when the sum is larger than the caches).
    ///
    /// # Errors
    /// [`AggregateError::LengthMismatch`], [`AggregateError::InvalidWeight`]; the sum is
    /// unchanged on error.
    ///
    /// ```
    /// let mut s = flspec::fl::aggregate::WeightedSum::new(1);
    /// s.add_all(&[(&[2.0][..], 1.0), (&[5.0][..], 2.0)])?;
    /// assert_eq!((s.as_slice(), s.count()), (&[12.0][..], 2));
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn add_all(&mut self, updates: &[(&[f32], f64)]) -> Result<()> {
        let mut total = 0.0;
        for (i, (u, w)) in updates.iter().enumerate() {
            check_len(self.count + i, self.sum.len(), u.len())?;
            check_weight(self.count + i, *w)?;
            total += w;
        }
        for (k, block) in self.sum.chunks_mut(BLOCK).enumerate() {
            add_block(block, updates, k * BLOCK);
        }
        self.total_weight += total;
        self.count += updates.len();
        Ok(())
    }

    /// Adds another partial sum (e.g. from another branch of a join).
    ///
    /// # Errors
    /// [`AggregateError::LengthMismatch`].
    ///
    /// ```
    /// use flspec::fl::aggregate::WeightedSum;
    /// let (mut a, mut b) = (WeightedSum::new(1), WeightedSum::new(1));
    /// a.add(&[1.0], 1.0)?;
    /// b.add(&[3.0], 1.0)?;
    /// a.merge(&b)?;
    /// assert_eq!(a.mean()?, vec![2.0]);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn merge(&mut self, other: &WeightedSum) -> Result<()> {
        check_len(self.count, self.sum.len(), other.sum.len())?;
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        self.total_weight += other.total_weight;
        self.count += other.count;
        Ok(())
    }

    /// Writes the weighted mean `sum / total_weight` into `out` (FedAvg).
    ///
    /// # Errors
    /// [`AggregateError::Empty`] before any update, [`AggregateError::NonPositiveWeight`],
    /// [`AggregateError::LengthMismatch`] if `out` has another length.
    ///
    /// ```
    /// let mut s = flspec::fl::aggregate::WeightedSum::new(1);
    /// s.add(&[2.0], 1.0)?;
    /// let mut out = [0.0f32];
    /// s.mean_into(&mut out)?;
    /// assert_eq!(out, [2.0]);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn mean_into(&self, out: &mut [f32]) -> Result<()> {
        if self.count == 0 {
            return Err(AggregateError::Empty);
        }
        check_total(self.total_weight)?;
        check_len(0, self.sum.len(), out.len())?;
        let inv = 1.0 / self.total_weight;
        for (o, s) in out.iter_mut().zip(&self.sum) {
            *o = (*s * inv) as f32;
        }
        Ok(())
    }

    /// The weighted mean as a new vector; see [`WeightedSum::mean_into`].
    ///
    /// # Errors
    /// As [`WeightedSum::mean_into`].
    ///
    /// ```
    /// let mut s = flspec::fl::aggregate::WeightedSum::new(1);
    /// s.add(&[2.0], 1.0)?;
    /// assert_eq!(s.mean()?, vec![2.0]);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn mean(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.sum.len()];
        self.mean_into(&mut out)?;
        Ok(out)
    }

    /// Number of values per update.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::WeightedSum::new(4).len(), 4);
    /// ```
    pub fn len(&self) -> usize {
        self.sum.len()
    }

    /// Whether the model has no values.
    ///
    /// ```
    /// assert!(flspec::fl::aggregate::WeightedSum::new(0).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.sum.is_empty()
    }

    /// Number of updates summed.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::WeightedSum::new(4).count(), 0);
    /// ```
    pub fn count(&self) -> usize {
        self.count
    }

    /// Total weight of the updates summed.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::WeightedSum::new(4).total_weight(), 0.0);
    /// ```
    pub fn total_weight(&self) -> f64 {
        self.total_weight
    }

    /// The summed vector `Σ wᵢ·xᵢ`.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::WeightedSum::new(1).as_slice(), &[0.0]);
    /// ```
    pub fn as_slice(&self) -> &[f64] {
        &self.sum
    }
}

/// Each collaborator's update with its weight: what the robust aggregators need. Secure
/// aggregation cannot produce it, so a robust aggregator cannot run on a SecAgg round.
/// Updates are borrowed, not copied; non-finite values are refused on [`Individual::push`].
///
/// ```
/// use flspec::fl::aggregate::{Individual, Median, RobustAggregator};
/// let (a, b, c) = ([1.0f32, 0.0], [2.0, 0.0], [100.0, 0.0]);
/// let mut ups = Individual::new(2);
/// for u in [&a, &b, &c] { ups.push(u, 1.0)?; }
/// let mut out = [0.0f32; 2];
/// Median.aggregate(&ups, &mut out)?;
/// assert_eq!(out, [2.0, 0.0]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Individual<'a> {
    len: usize,
    updates: Vec<&'a [f32]>,
    weights: Vec<f64>,
}

impl<'a> Individual<'a> {
    /// No updates yet, for models of `len` values.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::Individual::new(3).count(), 0);
    /// ```
    pub fn new(len: usize) -> Self {
        Self {
            len,
            updates: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Adds one update with its weight (sample count; only Multi-Krum's mean uses it, as in Flower).
    ///
    /// # Errors
    /// [`AggregateError::LengthMismatch`], [`AggregateError::InvalidWeight`],
    /// [`AggregateError::NonFinite`].
    ///
    /// ```
    /// let mut ups = flspec::fl::aggregate::Individual::new(1);
    /// assert!(ups.push(&[f32::NAN], 1.0).is_err());
    /// ```
    pub fn push(&mut self, update: &'a [f32], weight: f64) -> Result<()> {
        let index = self.updates.len();
        check_len(index, self.len, update.len())?;
        check_weight(index, weight)?;
        if !update.iter().all(|x| x.is_finite()) {
            return Err(AggregateError::NonFinite { index });
        }
        self.updates.push(update);
        self.weights.push(weight);
        Ok(())
    }

    /// Number of updates.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::Individual::new(3).count(), 0);
    /// ```
    pub fn count(&self) -> usize {
        self.updates.len()
    }

    /// Number of values per update.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::Individual::new(3).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the model has no values.
    ///
    /// ```
    /// assert!(flspec::fl::aggregate::Individual::new(0).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The updates' weighted sum, so that means and server optimizers also run on plain rounds.
    ///
    /// # Errors
    /// None in practice (lengths were checked on push); kept for symmetry with [`WeightedSum::add`].
    ///
    /// ```
    /// let mut ups = flspec::fl::aggregate::Individual::new(1);
    /// ups.push(&[4.0], 1.0)?;
    /// assert_eq!(ups.to_weighted_sum()?.mean()?, vec![4.0]);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn to_weighted_sum(&self) -> Result<WeightedSum> {
        let mut s = WeightedSum::new(self.len);
        for (u, w) in self.updates.iter().zip(&self.weights) {
            s.add(u, *w)?;
        }
        Ok(s)
    }
}

/// An aggregator that needs each collaborator's update (not a sum), so it cannot run on a
/// secure-aggregation round.
pub trait RobustAggregator {
    /// Aggregates `updates` into `out`.
    ///
    /// # Errors
    /// [`AggregateError::Empty`], [`AggregateError::LengthMismatch`] if `out` does not match,
    /// and the rule's own range checks.
    ///
    /// ```
    /// use flspec::fl::aggregate::{Individual, RobustAggregator, TrimmedMean};
    /// let mut ups = Individual::new(1);
    /// ups.push(&[1.0], 1.0)?;
    /// let mut out = [0.0f32];
    /// TrimmedMean { beta: 0.2 }.aggregate(&ups, &mut out)?;
    /// assert_eq!(out, [1.0]);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    fn aggregate(&self, updates: &Individual<'_>, out: &mut [f32]) -> Result<()>;
}

fn check_individual(updates: &Individual<'_>, out: &[f32]) -> Result<()> {
    if updates.count() == 0 {
        return Err(AggregateError::Empty);
    }
    check_len(0, updates.len, out.len())
}

/// Coordinate-wise median (Flower's `aggregate_median`, `FedMedian`): for an even count, the
/// mean of the two middle values, as `numpy.median`.
///
/// ```
/// use flspec::fl::aggregate::{Individual, Median, RobustAggregator};
/// let (a, b) = ([1.0f32], [2.0]);
/// let mut ups = Individual::new(1);
/// ups.push(&a, 1.0)?;
/// ups.push(&b, 1.0)?;
/// let mut out = [0.0f32];
/// Median.aggregate(&ups, &mut out)?;
/// assert_eq!(out, [1.5]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Median;

impl RobustAggregator for Median {
    fn aggregate(&self, updates: &Individual<'_>, out: &mut [f32]) -> Result<()> {
        check_individual(updates, out)?;
        let n = updates.count();
        let mut col = vec![0.0f32; n];
        for (j, o) in out.iter_mut().enumerate() {
            for (c, u) in col.iter_mut().zip(&updates.updates) {
                *c = u[j];
            }
            *o = median_of(&mut col);
        }
        Ok(())
    }
}

fn median_of(col: &mut [f32]) -> f32 {
    let n = col.len();
    let (lo, hi, _) = col.select_nth_unstable_by(n / 2, f32::total_cmp);
    let hi_v = *hi;
    if n % 2 == 1 {
        hi_v
    } else {
        let lo_v = lo.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        ((f64::from(lo_v) + f64::from(hi_v)) / 2.0) as f32
    }
}

/// Coordinate-wise trimmed mean (Flower's `aggregate_trimmed_avg`, `FedTrimmedAvg`): per
/// coordinate, drop the `⌊beta·n⌋` smallest and largest values and average the rest.
/// `beta` must be in `[0, 0.5)` (Flower's default is 0.2).
///
/// ```
/// use flspec::fl::aggregate::{Individual, RobustAggregator, TrimmedMean};
/// let vals = [[1.0f32], [2.0], [3.0], [4.0], [1000.0]];
/// let mut ups = Individual::new(1);
/// for v in &vals { ups.push(v, 1.0)?; }
/// let mut out = [0.0f32];
/// TrimmedMean { beta: 0.2 }.aggregate(&ups, &mut out)?;
/// assert_eq!(out, [3.0]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrimmedMean {
    /// Fraction cut from each end, in `[0, 0.5)`.
    pub beta: f64,
}

impl Default for TrimmedMean {
    /// Flower's default, `beta = 0.2`.
    fn default() -> Self {
        Self { beta: 0.2 }
    }
}

impl RobustAggregator for TrimmedMean {
    fn aggregate(&self, updates: &Individual<'_>, out: &mut [f32]) -> Result<()> {
        if !(0.0..0.5).contains(&self.beta) {
            return Err(AggregateError::InvalidParameter {
                name: "beta",
                value: self.beta,
                expected: "0 <= beta < 0.5",
            });
        }
        check_individual(updates, out)?;
        let n = updates.count();
        let cut = (self.beta * n as f64) as usize;
        let kept = n - 2 * cut;
        let mut col = vec![0.0f32; n];
        for (j, o) in out.iter_mut().enumerate() {
            for (c, u) in col.iter_mut().zip(&updates.updates) {
                *c = u[j];
            }
            col.sort_unstable_by(f32::total_cmp);
            let s: f64 = col[cut..n - cut].iter().map(|x| f64::from(*x)).sum();
            *o = (s / kept as f64) as f32;
        }
        Ok(())
    }
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    // Eight independent lanes so the compiler vectorises the reduction.
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = f64::from(x[k]) - f64::from(y[k]);
            acc[k] += d * d;
        }
    }
    let mut s: f64 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = f64::from(*x) - f64::from(*y);
        s += d * d;
    }
    s
}

/// Squared distances between all pairs of updates, row-major `n × n`.
fn distances(updates: &[&[f32]]) -> Vec<f64> {
    let n = updates.len();
    let mut d = vec![0.0f64; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let v = sq_dist(updates[i], updates[j]);
            d[i * n + j] = v;
            d[j * n + i] = v;
        }
    }
    d
}

/// Krum scores (Flower's `aggregate_krum`) of the updates at `idx`, from the full distance
/// matrix `d` of `n` updates: for each, the sum of its squared distances to its
/// `max(1, |idx| − f − 2)` nearest others in `idx`.
fn krum_scores(d: &[f64], n: usize, idx: &[usize], f: usize) -> Vec<f64> {
    let closest = idx.len().saturating_sub(f + 2).max(1);
    let mut row = Vec::with_capacity(idx.len());
    idx.iter()
        .map(|&i| {
            row.clear();
            row.extend(idx.iter().filter(|&&j| j != i).map(|&j| d[i * n + j]));
            row.sort_unstable_by(f64::total_cmp);
            row.iter().take(closest).sum()
        })
        .collect()
}

fn all_krum_scores(updates: &[&[f32]], f: usize) -> Vec<f64> {
    let n = updates.len();
    let idx: Vec<usize> = (0..n).collect();
    krum_scores(&distances(updates), n, &idx, f)
}

/// Krum and Multi-Krum (Blanchard et al. 2017; Flower's `aggregate_krum`, `Krum`): score each
/// update by the summed squared distance to its `n − f − 2` nearest others; Krum
/// (`to_keep = 0`) returns the lowest-scored update, Multi-Krum the sample-weighted mean of the
/// `to_keep` lowest. Needs `n ≥ 2f + 3` updates (Flower does not check; the guarantee needs it).
///
/// ```
/// use flspec::fl::aggregate::{Individual, Krum, RobustAggregator};
/// let vals = [[0.0f32], [0.1], [0.2], [0.15], [100.0]];
/// let mut ups = Individual::new(1);
/// for v in &vals { ups.push(v, 1.0)?; }
/// let mut out = [0.0f32];
/// Krum { num_malicious: 1, to_keep: 0 }.aggregate(&ups, &mut out)?;
/// assert!(out[0] < 1.0);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Krum {
    /// `f`: the number of Byzantine collaborators tolerated (Flower's `num_malicious_clients`).
    pub num_malicious: usize,
    /// `m`: 0 for Krum, otherwise the number of updates Multi-Krum averages (Flower's `num_clients_to_keep`).
    pub to_keep: usize,
}

impl Krum {
    /// Index of the update Krum selects (lowest score; ties go to the lexicographically smaller
    /// update, where Flower takes the first, so the result does not depend on arrival order).
    ///
    /// # Errors
    /// [`AggregateError::Empty`], [`AggregateError::TooManyByzantine`] if `n < 2f + 3`.
    ///
    /// ```
    /// use flspec::fl::aggregate::{Individual, Krum};
    /// let vals = [[0.0f32], [0.1], [0.2], [100.0], [0.15]];
    /// let mut ups = Individual::new(1);
    /// for v in &vals { ups.push(v, 1.0)?; }
    /// assert_ne!(Krum { num_malicious: 1, to_keep: 0 }.select(&ups)?, 3);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    pub fn select(&self, updates: &Individual<'_>) -> Result<usize> {
        self.check(updates.count())?;
        Ok(argmin(
            &all_krum_scores(&updates.updates, self.num_malicious),
            &updates.updates,
        ))
    }

    fn check(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(AggregateError::Empty);
        }
        let required = 2 * self.num_malicious + 3;
        if n < required {
            return Err(AggregateError::TooManyByzantine {
                rule: "Krum",
                f: self.num_malicious,
                n,
                required,
            });
        }
        if self.to_keep > n {
            return Err(AggregateError::InvalidParameter {
                name: "to_keep",
                value: self.to_keep as f64,
                expected: "0 (Krum) or at most the number of updates (Multi-Krum)",
            });
        }
        Ok(())
    }
}

/// Index of the lowest score; ties are broken by the updates' values (lexicographic, total
/// order), so the choice does not depend on the order the updates arrived in.
fn argmin(scores: &[f64], updates: &[&[f32]]) -> usize {
    let mut best = 0;
    for i in 1..scores.len() {
        if by_score(scores, updates, i, best).is_lt() {
            best = i;
        }
    }
    best
}

fn by_score(scores: &[f64], updates: &[&[f32]], a: usize, b: usize) -> std::cmp::Ordering {
    scores[a].total_cmp(&scores[b]).then_with(|| {
        updates[a]
            .iter()
            .zip(updates[b])
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

impl RobustAggregator for Krum {
    fn aggregate(&self, updates: &Individual<'_>, out: &mut [f32]) -> Result<()> {
        check_individual(updates, out)?;
        self.check(updates.count())?;
        let scores = all_krum_scores(&updates.updates, self.num_malicious);
        if self.to_keep == 0 {
            out.copy_from_slice(updates.updates[argmin(&scores, &updates.updates)]);
            return Ok(());
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|a, b| by_score(&scores, &updates.updates, *a, *b));
        let chosen: Vec<(&[f32], f64)> = order[..self.to_keep]
            .iter()
            .map(|&i| (updates.updates[i], updates.weights[i]))
            .collect();
        weighted_mean_into(&chosen, out)
    }
}

/// Bulyan (El Mhamdi et al. 2018; Flower's `aggregate_bulyan` with Krum as the first rule):
/// select `θ = n − 2f` updates by repeated Krum, then per coordinate average the
/// `β = θ − 2f` values closest to the selection's median. Needs `n ≥ 4f + 3`.
/// One departure from Flower: tied Krum scores (frequent once the set has shrunk) go to the
/// lexicographically smaller update, not the first to arrive, so the result does not depend
/// on arrival order.
///
/// ```
/// use flspec::fl::aggregate::{Bulyan, Individual, RobustAggregator};
/// let vals = [[0.0f32], [0.1], [0.2], [0.15], [0.05], [0.12], [100.0]];
/// let mut ups = Individual::new(1);
/// for v in &vals { ups.push(v, 1.0)?; }
/// let mut out = [0.0f32];
/// Bulyan { num_malicious: 1 }.aggregate(&ups, &mut out)?;
/// assert!(out[0] < 1.0);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bulyan {
    /// `f`: the number of Byzantine collaborators tolerated (Flower's `num_malicious_clients`).
    pub num_malicious: usize,
}

impl RobustAggregator for Bulyan {
    fn aggregate(&self, updates: &Individual<'_>, out: &mut [f32]) -> Result<()> {
        check_individual(updates, out)?;
        let (n, f) = (updates.count(), self.num_malicious);
        let required = 4 * f + 3;
        if n < required {
            return Err(AggregateError::TooManyByzantine {
                rule: "Bulyan",
                f,
                n,
                required,
            });
        }
        let theta = n - 2 * f;
        let beta = theta - 2 * f;
        // The distance matrix is computed once; each repeated Krum scores the remaining subset
        // (Flower recomputes it, with the same result).
        let d = distances(&updates.updates);
        let mut rest: Vec<usize> = (0..n).collect();
        let mut selected: Vec<&[f32]> = Vec::with_capacity(theta);
        for _ in 0..theta {
            let scores = krum_scores(&d, n, &rest, f);
            let rest_ups: Vec<&[f32]> = rest.iter().map(|&i| updates.updates[i]).collect();
            let best = argmin(&scores, &rest_ups);
            selected.push(updates.updates[rest.remove(best)]);
        }
        let mut col = vec![0.0f32; theta];
        let mut by_dist: Vec<(f32, f32)> = Vec::with_capacity(theta);
        for (j, o) in out.iter_mut().enumerate() {
            for (c, u) in col.iter_mut().zip(&selected) {
                *c = u[j];
            }
            let med = median_of(&mut col);
            by_dist.clear();
            by_dist.extend(selected.iter().map(|u| ((u[j] - med).abs(), u[j])));
            // Ties (equally far on both sides) go to the smaller value, whatever the order.
            by_dist.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let s: f64 = by_dist[..beta].iter().map(|(_, x)| f64::from(*x)).sum();
            *o = (s / beta as f64) as f32;
        }
        Ok(())
    }
}

/// A server optimizer: turns the round's [`WeightedSum`] into the next global model, keeping
/// its state between rounds. Works on secure-aggregation sums.
pub trait ServerOptimizer {
    /// Applies one round and returns the new global weights.
    ///
    /// # Errors
    /// [`AggregateError::Empty`], [`AggregateError::NonPositiveWeight`],
    /// [`AggregateError::LengthMismatch`] if the sum is for another model.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOpt, ServerOptimizer, WeightedSum};
    /// let mut opt = FedOpt::fed_adam(vec![0.0]);
    /// let mut sum = WeightedSum::new(1);
    /// sum.add(&[1.0], 1.0)?;
    /// assert!(opt.step(&sum)?[0] > 0.0);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    fn step(&mut self, sum: &WeightedSum) -> Result<&[f32]>;

    /// The current global weights.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOpt, ServerOptimizer};
    /// assert_eq!(FedOpt::fed_yogi(vec![1.0]).weights(), &[1.0]);
    /// ```
    fn weights(&self) -> &[f32];
}

/// Which FedOpt rule (Reddi et al. 2021, "Adaptive Federated Optimization").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FedOptKind {
    /// FedAdam: `v ← β₂v + (1−β₂)Δ²`, bias-corrected step as Flower's.
    Adam,
    /// FedYogi: `v ← v − (1−β₂)Δ²·sign(v − Δ²)`.
    Yogi,
    /// FedAdagrad: `v ← v + Δ²` (β₁ = 0 in Flower).
    Adagrad,
}

/// FedOpt hyper-parameters, with Flower's names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FedOptConfig {
    /// Server learning rate.
    pub eta: f64,
    /// Client learning rate (not used by the server step; send it to collaborators).
    pub eta_l: f64,
    /// Momentum decay.
    pub beta_1: f64,
    /// Second-moment decay.
    pub beta_2: f64,
    /// Adaptivity (ε).
    pub tau: f64,
}

impl FedOptConfig {
    /// Flower 1.42's defaults for `kind`: FedAdam η=0.1, η_l=0.1, β₁=0.9, β₂=0.99, τ=1e-9;
    /// FedYogi η=0.01, η_l=0.0316, β₁=0.9, β₂=0.99, τ=1e-3; FedAdagrad η=0.1, η_l=0.1, β₁=β₂=0, τ=1e-9.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOptConfig, FedOptKind};
    /// assert_eq!(FedOptConfig::flower_default(FedOptKind::Yogi).tau, 1e-3);
    /// ```
    pub fn flower_default(kind: FedOptKind) -> Self {
        match kind {
            FedOptKind::Adam => Self {
                eta: 1e-1,
                eta_l: 1e-1,
                beta_1: 0.9,
                beta_2: 0.99,
                tau: 1e-9,
            },
            FedOptKind::Yogi => Self {
                eta: 1e-2,
                eta_l: 0.0316,
                beta_1: 0.9,
                beta_2: 0.99,
                tau: 1e-3,
            },
            FedOptKind::Adagrad => Self {
                eta: 1e-1,
                eta_l: 1e-1,
                beta_1: 0.0,
                beta_2: 0.0,
                tau: 1e-9,
            },
        }
    }
}

/// FedOpt state kept between rounds (serde-able, so a checkpointed aggregator resumes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedOptState {
    /// The global weights `x_t`.
    pub current: Vec<f32>,
    /// First moment `m_t`.
    pub m_t: Vec<f32>,
    /// Second moment `v_t`.
    pub v_t: Vec<f32>,
    /// Rounds applied so far.
    pub round: u64,
}

/// A FedOpt server optimizer (FedAdam, FedYogi, FedAdagrad) as in Flower 1.42: each round
/// `Δ = mean − x`, `m ← β₁m + (1−β₁)Δ`, `v` by the rule, `x ← x + η·m / (√v + τ)`; FedAdam scales
/// η by `√(1−β₂^(t+1)) / (1−β₁^(t+1))` with `t` the 1-based round, exactly as Flower does.
///
/// ```
/// use flspec::fl::aggregate::{FedOpt, ServerOptimizer, WeightedSum};
/// let mut opt = FedOpt::fed_adagrad(vec![0.0, 0.0]);
/// let mut sum = WeightedSum::new(2);
/// sum.add(&[1.0, -1.0], 10.0)?;
/// let w = opt.step(&sum)?;
/// assert!(w[0] > 0.0 && w[1] < 0.0);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedOpt {
    kind: FedOptKind,
    config: FedOptConfig,
    state: FedOptState,
}

impl FedOpt {
    /// A FedOpt optimizer starting from `initial` weights.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOpt, FedOptConfig, FedOptKind};
    /// let cfg = FedOptConfig { eta: 0.05, ..FedOptConfig::flower_default(FedOptKind::Adam) };
    /// let opt = FedOpt::new(FedOptKind::Adam, cfg, vec![0.0; 3]);
    /// assert_eq!(opt.state().round, 0);
    /// ```
    pub fn new(kind: FedOptKind, config: FedOptConfig, initial: Vec<f32>) -> Self {
        let n = initial.len();
        Self {
            kind,
            config,
            state: FedOptState {
                current: initial,
                m_t: vec![0.0; n],
                v_t: vec![0.0; n],
                round: 0,
            },
        }
    }

    /// FedAdam with Flower's defaults.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedOpt::fed_adam(vec![0.0]);
    /// assert_eq!(opt.config().beta_2, 0.99);
    /// ```
    pub fn fed_adam(initial: Vec<f32>) -> Self {
        Self::new(
            FedOptKind::Adam,
            FedOptConfig::flower_default(FedOptKind::Adam),
            initial,
        )
    }

    /// FedYogi with Flower's defaults.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedOpt::fed_yogi(vec![0.0]);
    /// assert_eq!(opt.config().eta, 0.01);
    /// ```
    pub fn fed_yogi(initial: Vec<f32>) -> Self {
        Self::new(
            FedOptKind::Yogi,
            FedOptConfig::flower_default(FedOptKind::Yogi),
            initial,
        )
    }

    /// FedAdagrad with Flower's defaults.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedOpt::fed_adagrad(vec![0.0]);
    /// assert_eq!(opt.config().beta_1, 0.0);
    /// ```
    pub fn fed_adagrad(initial: Vec<f32>) -> Self {
        Self::new(
            FedOptKind::Adagrad,
            FedOptConfig::flower_default(FedOptKind::Adagrad),
            initial,
        )
    }

    /// The hyper-parameters.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::FedOpt::fed_adam(vec![]).config().eta, 0.1);
    /// ```
    pub fn config(&self) -> &FedOptConfig {
        &self.config
    }

    /// The state (to checkpoint it).
    ///
    /// ```
    /// assert!(flspec::fl::aggregate::FedOpt::fed_adam(vec![1.0]).state().m_t == [0.0]);
    /// ```
    pub fn state(&self) -> &FedOptState {
        &self.state
    }
}

impl ServerOptimizer for FedOpt {
    fn step(&mut self, sum: &WeightedSum) -> Result<&[f32]> {
        check_len(0, self.state.current.len(), sum.len())?;
        if sum.count() == 0 {
            return Err(AggregateError::Empty);
        }
        check_total(sum.total_weight())?;
        let FedOptConfig {
            eta,
            beta_1,
            beta_2,
            tau,
            ..
        } = self.config;
        self.state.round += 1;
        let t = self.state.round as f64;
        let eta_t = match self.kind {
            FedOptKind::Adam => {
                eta * (1.0 - beta_2.powf(t + 1.0)).sqrt() / (1.0 - beta_1.powf(t + 1.0))
            }
            FedOptKind::Yogi | FedOptKind::Adagrad => eta,
        };
        let inv = 1.0 / sum.total_weight();
        let st = &mut self.state;
        for (((x, m), v), s) in st
            .current
            .iter_mut()
            .zip(&mut st.m_t)
            .zip(&mut st.v_t)
            .zip(sum.as_slice())
        {
            let mean = (s * inv) as f32;
            let delta = f64::from(mean - *x);
            let m_new = beta_1 * f64::from(*m) + (1.0 - beta_1) * delta;
            let v_old = f64::from(*v);
            let d2 = delta * delta;
            let v_new = match self.kind {
                FedOptKind::Adam => beta_2 * v_old + (1.0 - beta_2) * d2,
                FedOptKind::Yogi => v_old - (1.0 - beta_2) * d2 * (v_old - d2).signum_or_zero(),
                FedOptKind::Adagrad => v_old + d2,
            };
            *m = m_new as f32;
            *v = v_new as f32;
            *x = (f64::from(*x) + eta_t * m_new / (v_new.sqrt() + tau)) as f32;
        }
        Ok(&self.state.current)
    }

    fn weights(&self) -> &[f32] {
        &self.state.current
    }
}

trait SignumOrZero {
    fn signum_or_zero(self) -> Self;
}

impl SignumOrZero for f64 {
    /// `numpy.sign`: 0 at 0 (`f64::signum` gives ±1).
    fn signum_or_zero(self) -> f64 {
        if self == 0.0 { 0.0 } else { self.signum() }
    }
}

/// FedAvgM state kept between rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedAvgMState {
    /// The global weights.
    pub current: Vec<f32>,
    /// The momentum vector, `None` before the first round.
    pub momentum: Option<Vec<f32>>,
}

/// FedAvg with server momentum (Hsu et al. 2019; Flower's `FedAvgM`): pseudo-gradient
/// `g = x − mean`, `v ← μ·v + g` (`v = g` in the first round), `x ← x − lr·v`.
///
/// ```
/// use flspec::fl::aggregate::{FedAvgM, ServerOptimizer, WeightedSum};
/// let mut opt = FedAvgM::new(vec![0.0], 1.0, 0.0); // plain FedAvg
/// let mut sum = WeightedSum::new(1);
/// sum.add(&[3.0], 1.0)?;
/// assert_eq!(opt.step(&sum)?, &[3.0]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedAvgM {
    /// Flower's `server_learning_rate` (default 1.0).
    pub server_learning_rate: f64,
    /// Flower's `server_momentum` (default 0.0).
    pub server_momentum: f64,
    state: FedAvgMState,
}

impl FedAvgM {
    /// FedAvgM from `initial` weights.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedAvgM::new(vec![0.0], 1.0, 0.9);
    /// assert!(opt.state().momentum.is_none());
    /// ```
    pub fn new(initial: Vec<f32>, server_learning_rate: f64, server_momentum: f64) -> Self {
        Self {
            server_learning_rate,
            server_momentum,
            state: FedAvgMState {
                current: initial,
                momentum: None,
            },
        }
    }

    /// The state (to checkpoint it).
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::FedAvgM::new(vec![2.0], 1.0, 0.0).state().current, [2.0]);
    /// ```
    pub fn state(&self) -> &FedAvgMState {
        &self.state
    }
}

impl ServerOptimizer for FedAvgM {
    fn step(&mut self, sum: &WeightedSum) -> Result<&[f32]> {
        check_len(0, self.state.current.len(), sum.len())?;
        if sum.count() == 0 {
            return Err(AggregateError::Empty);
        }
        check_total(sum.total_weight())?;
        let inv = 1.0 / sum.total_weight();
        let (lr, mu) = (self.server_learning_rate, self.server_momentum);
        let st = &mut self.state;
        let first = st.momentum.is_none();
        let mom = st
            .momentum
            .get_or_insert_with(|| vec![0.0; st.current.len()]);
        for ((x, v), s) in st
            .current
            .iter_mut()
            .zip(mom.iter_mut())
            .zip(sum.as_slice())
        {
            let mean = (s * inv) as f32;
            let g = *x - mean;
            let g = if mu > 0.0 {
                if first {
                    g
                } else {
                    (mu * f64::from(*v)) as f32 + g
                }
            } else {
                g
            };
            *v = g;
            *x = (f64::from(*x) - lr * f64::from(g)) as f32;
        }
        Ok(&self.state.current)
    }

    fn weights(&self) -> &[f32] {
        &self.state.current
    }
}

/// Prints the message, as flspec's errors do, so that `fn main() -> Result<(), AggregateError>` shows
/// what went wrong rather than the variant's fields.
impl core::fmt::Debug for AggregateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::error::write_chain(self, f)
    }
}
