//! Individual updates ([`Individual`]) and the trait of the aggregators that need them
//! ([`RobustAggregator`]).

use super::{AggregateError, Result, WeightedSum, check_len, check_weight};

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
    pub(super) updates: Vec<&'a [f32]>,
    pub(super) weights: Vec<f64>,
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

/// The checks every robust aggregator makes first: some updates, and `out` of their length.
pub(super) fn check_individual(updates: &Individual<'_>, out: &[f32]) -> Result<()> {
    if updates.count() == 0 {
        return Err(AggregateError::Empty);
    }
    check_len(0, updates.len, out.len())
}
