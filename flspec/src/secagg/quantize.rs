//! Quantization of `f32` updates to `Z_(2^32)` and back.
//!
//! A value `x` is clipped to `[-clip, clip]`, shifted and scaled to `v = (x + clip) * scale`
//! in `[0, L]`, and rounded stochastically to `floor(v)` or `floor(v) + 1` (unbiased:
//! `E[q] = v`). The top level is `L = floor((2^32 - 1) / n_max)`, so the sum of `n_max`
//! quantized values is at most `2^32 - 1`: the wrapping sum of the masked vectors is the exact
//! integer sum, never a wrapped one. `scale = L / (2 * clip)`.
//!
//! # Error bound
//! Each quantized value is within `1 / scale` of its clipped input (strictly less than one
//! level). The de-quantized sum of `n` values is within `n / scale` of the sum of the clipped
//! inputs ([`Quantizer::error_bound`]), before the final rounding to `f32` (relative error
//! `2^-24`). The arithmetic runs in `f64`, exact at these magnitudes. Values outside
//! `[-clip, clip]` are clipped, which is the one error the bound does not cover: pick `clip`
//! from the update norms you expect (count clipped values with [`Quantizer::clipped_count`]).
//!
//! ```
//! use flspec::secagg::Quantizer;
//! use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
//!
//! let q = Quantizer::new(1.0, 100)?;
//! let mut rng = ChaCha20Rng::from_seed([1; 32]);
//! let a = q.quantize(&[0.25, -0.5], &mut rng)?;
//! let b = q.quantize(&[0.5, 0.125], &mut rng)?;
//! let sum: Vec<u32> = a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect();
//! let back = q.dequantize_sum(&sum, 2)?;
//! assert!((back[0] - 0.75).abs() as f64 <= q.error_bound(2));
//! assert!((back[1] + 0.375).abs() as f64 <= q.error_bound(2));
//! # Ok::<(), flspec::secagg::SecAggError>(())
//! ```

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use super::error::{Result, SecAggError};

/// Fewest integer levels per value we accept (8 bits of resolution).
pub const MIN_LEVELS: u32 = 1 << 8;

/// Clip, scale and stochastic rounding into `Z_(2^32)`, sized for at most `n_max` summands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "QuantizerParams", into = "QuantizerParams")]
pub struct Quantizer {
    clip: f32,
    n_max: u32,
    max_weight: Option<f32>,
    levels: u32,
    scale: f64,
}

/// The serialized form of a [`Quantizer`]: its parameters, re-validated on load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantizerParams {
    /// Clipping bound of the encoded values.
    pub clip: f32,
    /// Most summands.
    pub n_max: u32,
    /// For a weighted mean: the largest weight.
    pub max_weight: Option<f32>,
}

impl TryFrom<QuantizerParams> for Quantizer {
    type Error = SecAggError;
    /// Rebuilds the quantizer with the constructor that made it, so a deserialized quantizer
    /// is validated exactly as a new one and has the same scale: [`Quantizer::new`] without a
    /// `max_weight`, [`Quantizer::for_weighted_mean`] with one.
    fn try_from(p: QuantizerParams) -> Result<Self> {
        match p.max_weight {
            None => Self::new(p.clip, p.n_max),
            Some(w) => Self::for_weighted_mean(p.clip, w, p.n_max),
        }
    }
}

impl From<Quantizer> for QuantizerParams {
    fn from(q: Quantizer) -> Self {
        Self {
            clip: q.clip,
            n_max: q.n_max,
            max_weight: q.max_weight,
        }
    }
}

impl Quantizer {
    /// A quantizer for values in `[-clip, clip]`, summed over at most `n_max` collaborators.
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] naming `clip` (not finite and positive) or `n_max`
    /// (zero, or so large that fewer than [`MIN_LEVELS`] levels are left per value).
    pub fn new(clip: f32, n_max: u32) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0) {
            return Err(SecAggError::param(
                "clip",
                format!("clip = {clip} is not a finite positive number"),
                "set `clip` to the largest magnitude an update coordinate may have, e.g. 1.0",
            ));
        }
        if n_max == 0 {
            return Err(SecAggError::param(
                "n_max",
                "n_max = 0",
                "set `n_max` to the number of collaborators in the round (or more)",
            ));
        }
        let levels = u32::MAX / n_max;
        if levels < MIN_LEVELS {
            return Err(SecAggError::param(
                "n_max",
                format!(
                    "n_max = {n_max} leaves only {levels} levels per value in Z_(2^32), below {MIN_LEVELS}"
                ),
                format!(
                    "lower `n_max` to at most {} (aggregate larger federations in groups)",
                    u32::MAX / MIN_LEVELS
                ),
            ));
        }
        let scale = f64::from(levels) / (2.0 * f64::from(clip));
        Ok(Self {
            clip,
            n_max,
            max_weight: None,
            levels,
            scale,
        })
    }

    /// A quantizer for a weighted mean: each collaborator sends `clip(x) * w` and `w`, with
    /// `0 <= w <= max_weight`, so the encoded range is `[-c, c]` with
    /// `c = max(clip, 1) * max_weight`; neither the weighted values nor the weights can wrap.
    /// Use with [`Quantizer::encode_weighted`] and [`Quantizer::decode_weighted_mean`].
    ///
    /// # Errors
    /// As [`Quantizer::new`], and on a `max_weight` that is not finite and positive.
    pub fn for_weighted_mean(clip: f32, max_weight: f32, n_max: u32) -> Result<Self> {
        if !(max_weight.is_finite() && max_weight > 0.0) {
            return Err(SecAggError::param(
                "max_weight",
                format!("max_weight = {max_weight} is not a finite positive number"),
                "set `max_weight` to the largest weight (e.g. sample count) a collaborator may send",
            ));
        }
        if !(clip.is_finite() && clip > 0.0) {
            return Err(SecAggError::param(
                "clip",
                format!("clip = {clip} is not a finite positive number"),
                "set `clip` to the largest magnitude an update coordinate may have, e.g. 1.0",
            ));
        }
        let range = clip.max(1.0) * max_weight;
        if !range.is_finite() {
            return Err(SecAggError::param(
                "max_weight",
                format!("max(clip, 1) * max_weight = {clip} * {max_weight} overflows f32"),
                "lower `clip` or `max_weight` (normalise the weights, e.g. to sample fractions)",
            ));
        }
        let q = Self::new(range, n_max)?;
        Ok(Self {
            clip,
            max_weight: Some(max_weight),
            ..q
        })
    }

    /// The clipping bound given at construction.
    pub fn clip(&self) -> f32 {
        self.clip
    }

    /// The bound of the encoded range: `clip`, or `max(clip, 1) * max_weight` for a weighted mean.
    pub fn range(&self) -> f32 {
        match self.max_weight {
            None => self.clip,
            Some(w) => self.clip.max(1.0) * w,
        }
    }

    /// The largest number of summands.
    pub fn n_max(&self) -> u32 {
        self.n_max
    }

    /// The top integer level `L` of one value.
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// Integer levels per unit of input.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Bound on the error of a de-quantized sum of `n` values: `n / scale` (before rounding to `f32`).
    pub fn error_bound(&self, n: u32) -> f64 {
        f64::from(n) / self.scale
    }

    /// How many values of `input` lie outside `[-range, range]` and would be clipped.
    pub fn clipped_count(&self, input: &[f32]) -> usize {
        let r = self.range();
        input.iter().filter(|x| x.abs() > r).count()
    }

    /// Clips, scales and rounds stochastically (with `rng`) to `[0, levels]`.
    ///
    /// # Errors
    /// [`SecAggError::NonFiniteInput`] with the index of the first NaN or infinite value.
    pub fn quantize(&self, input: &[f32], rng: &mut impl RngCore) -> Result<Vec<u32>> {
        let r = f64::from(self.range());
        let top = f64::from(self.levels);
        input
            .iter()
            .enumerate()
            .map(|(index, &x)| {
                if !x.is_finite() {
                    return Err(SecAggError::NonFiniteInput { index });
                }
                let v = ((f64::from(x).clamp(-r, r) + r) * self.scale).clamp(0.0, top);
                let floor = v.floor();
                let frac = v - floor;
                // 53 uniform bits in [0, 1).
                let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                let q = if u < frac { floor + 1.0 } else { floor };
                Ok(q.min(top) as u32)
            })
            .collect()
    }

    /// Checks that pre-quantized values are at most [`Quantizer::levels`].
    ///
    /// # Errors
    /// [`SecAggError::QuantizedOutOfRange`] with the index of the first value above the top level.
    pub fn check_quantized(&self, input: &[u32]) -> Result<()> {
        match input.iter().position(|&q| q > self.levels) {
            Some(index) => Err(SecAggError::QuantizedOutOfRange {
                index,
                max: self.levels,
            }),
            None => Ok(()),
        }
    }

    /// Maps the integer sum of `n` quantized vectors back to the sum of their values.
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] if `n` is 0 or above `n_max` (the sum may have wrapped).
    pub fn dequantize_sum(&self, sum: &[u32], n: u32) -> Result<Vec<f32>> {
        if n == 0 || n > self.n_max {
            return Err(SecAggError::param(
                "n",
                format!(
                    "{n} summands, but the quantizer is sized for 1 to {}",
                    self.n_max
                ),
                "build the Quantizer with `n_max` at least the number of collaborators",
            ));
        }
        let offset = f64::from(n) * f64::from(self.range());
        Ok(sum
            .iter()
            .map(|&s| (f64::from(s) / self.scale - offset) as f32)
            .collect())
    }

    /// The mean of `n` vectors from their integer sum: [`Quantizer::dequantize_sum`] / `n`.
    ///
    /// # Errors
    /// As [`Quantizer::dequantize_sum`].
    pub fn dequantize_mean(&self, sum: &[u32], n: u32) -> Result<Vec<f32>> {
        let inv = 1.0 / n.max(1) as f32;
        Ok(self
            .dequantize_sum(sum, n)?
            .into_iter()
            .map(|v| v * inv)
            .collect())
    }

    /// Encodes one collaborator's update for a weighted mean: `clip(x) * weight` for each value,
    /// then `weight` itself as the last value.
    ///
    /// # Errors
    /// [`SecAggError::InvalidParameter`] if the quantizer was not built with
    /// [`Quantizer::for_weighted_mean`] or `weight` is outside `[0, max_weight]`;
    /// [`SecAggError::NonFiniteInput`] on NaN or infinite values.
    pub fn encode_weighted(&self, update: &[f32], weight: f32) -> Result<Vec<f32>> {
        let Some(max_weight) = self.max_weight else {
            return Err(SecAggError::param(
                "quantizer",
                "this quantizer was not built for a weighted mean",
                "build it with `Quantizer::for_weighted_mean(clip, max_weight, n_max)`",
            ));
        };
        if !(weight.is_finite() && (0.0..=max_weight).contains(&weight)) {
            return Err(SecAggError::param(
                "max_weight",
                format!("a weight is outside [0, max_weight = {max_weight}]"),
                "raise `max_weight` to the largest weight (sample count) a collaborator may send",
            ));
        }
        if let Some(index) = update.iter().position(|x| !x.is_finite()) {
            return Err(SecAggError::NonFiniteInput { index });
        }
        Ok(update
            .iter()
            .map(|x| x.clamp(-self.clip, self.clip) * weight)
            .chain(core::iter::once(weight))
            .collect())
    }

    /// Decodes a de-quantized sum of [`Quantizer::encode_weighted`] vectors into the weighted
    /// mean `sum(w x) / sum(w)`.
    ///
    /// # Errors
    /// [`SecAggError::Malformed`] on an empty vector or a total weight that is not positive.
    pub fn decode_weighted_mean(&self, sum: &[f32]) -> Result<Vec<f32>> {
        let Some((&total, values)) = sum.split_last() else {
            return Err(SecAggError::malformed("weighted sum", "empty vector"));
        };
        if total.partial_cmp(&0.0) != Some(core::cmp::Ordering::Greater) {
            return Err(SecAggError::malformed(
                "weighted sum",
                "the total weight is not positive (every collaborator sent weight 0?)",
            ));
        }
        Ok(values.iter().map(|v| v / total).collect())
    }
}
