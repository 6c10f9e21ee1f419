//! Coordinate-wise robust aggregators: [`Median`] and [`TrimmedMean`].

use serde::{Deserialize, Serialize};

use super::individual::check_individual;
use super::{AggregateError, Individual, Result, RobustAggregator};

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

/// Median of `col` (reordered in place), `numpy.median`'s for an even count.
pub(super) fn median_of(col: &mut [f32]) -> f32 {
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
