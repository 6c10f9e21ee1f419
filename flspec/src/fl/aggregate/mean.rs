//! Means over parameter vectors: one-shot ([`weighted_mean_into`], [`mean_into`]) and
//! streaming ([`WeightedSum`], also what secure aggregation yields).

use serde::{Deserialize, Serialize};

use super::kernel;
use super::{AggregateError, Result, check_len, check_total, check_weight};

/// Weighted mean `Σ wᵢ·xᵢ / Σ wᵢ` of `updates` into `out`, Flower's `aggregate` (FedAvg).
///
/// Allocates nothing: it accumulates block by block in an `f64` stack buffer, four updates per
/// pass, the last pass writing `out`; on x86-64 CPUs with AVX2 a copy of the same loops compiled
/// for AVX2 runs, with bit-identical results.
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
    kernel::mean::<_, true>(updates, 1.0 / total, out);
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
    kernel::mean::<_, false>(updates, 1.0 / updates.len() as f64, out);
    Ok(())
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
        kernel::add::<_, true>(&[(update, weight)], &mut self.sum);
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
        kernel::add::<_, true>(updates, &mut self.sum);
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
        kernel::scale(&self.sum, 1.0 / self.total_weight, out);
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
