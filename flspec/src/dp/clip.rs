//! L2 clipping of an update, and the norm bound after KLS21's conditional randomized rounding.
//!
//! A collaborator first clips its update `x` to L2 norm `C` (scaling by `min(1, C/‖x‖)`,
//! computed in `f64`), so that one collaborator's contribution to the sum has bounded
//! sensitivity. For the distributed discrete Gaussian the clipped update is then scaled to
//! the integer grid (`x/γ`, γ the granularity) and rounded to integers coordinate by
//! coordinate, up or down at random with the probability that keeps it unbiased, repeating
//! the rounding until the integer vector's norm is at most [`IntegerBound::l2`]
//! ("conditional randomized rounding", Kairouz, Liu and Steinke 2021, "The Distributed
//! Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation", ICML,
//! arXiv:2102.06387, §4). That bound is the sensitivity the accountant uses.
//!
//! ```
//! use flspec::dp::clip::{clip_l2_f32, IntegerBound};
//!
//! let mut update = [3.0f32, 4.0];
//! let report = clip_l2_f32(&mut update, 1.0)?;
//! assert_eq!(report.norm, 5.0);
//! assert!((update[0] - 0.6).abs() < 1e-6 && (update[1] - 0.8).abs() < 1e-6);
//!
//! // Clip 1.0 on a grid of 1/1000 (clip 1000 in integer units), 2 coordinates, beta = e^-0.5.
//! let bound = IntegerBound::new(1000.0, 2, (-0.5f64).exp())?;
//! assert!(bound.l2() >= 1000.0 && bound.l2() <= 1000.0 + 2f64.sqrt());
//! # Ok::<(), flspec::dp::DpError>(())
//! ```

use rand_core::{CryptoRng, RngCore};

use super::error::{DpError, Result, invalid};

/// What [`clip_l2_f32`] and [`clip_l2_f64`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClipReport {
    /// The L2 norm before clipping.
    pub norm: f64,
    /// The factor applied: `min(1, C/norm)` (1 for a zero vector).
    pub scale: f64,
}

impl ClipReport {
    /// Whether the update was scaled down.
    pub fn clipped(&self) -> bool {
        self.scale < 1.0
    }
}

fn check_clip(clip: f64) -> Result<()> {
    if clip.is_finite() && clip > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            "clip",
            format!("{clip} is not a finite positive L2 norm"),
            "set the clipping norm (e.g. --dp-clip) to a positive number",
        ))
    }
}

/// The L2 norm of `x` in `f64`, scaled by the largest magnitude so that it cannot overflow.
///
/// # Errors
/// [`DpError::NonFinite`] at the first NaN or infinity.
pub fn l2_norm<T: Copy + Into<f64>>(x: &[T]) -> Result<f64> {
    let mut max = 0.0f64;
    for (index, v) in x.iter().enumerate() {
        let v: f64 = (*v).into();
        if !v.is_finite() {
            return Err(DpError::NonFinite { index });
        }
        max = max.max(v.abs());
    }
    if max == 0.0 {
        return Ok(0.0);
    }
    let sum: f64 = x
        .iter()
        .map(|v| {
            let r = (*v).into() / max;
            r * r
        })
        .sum();
    Ok(max * sum.sqrt())
}

/// Clips `x` in place to L2 norm at most `clip` (the scale `min(1, clip/‖x‖)` in `f64`,
/// each product rounded to `f32`: the result's norm is at most `clip·(1 + 2⁻²³)`).
///
/// # Errors
/// [`DpError::InvalidParameter`] for a `clip` that is not finite and positive;
/// [`DpError::NonFinite`] if `x` holds a NaN or an infinity (nothing is changed).
pub fn clip_l2_f32(x: &mut [f32], clip: f64) -> Result<ClipReport> {
    check_clip(clip)?;
    let norm = l2_norm(x)?;
    let scale = if norm > clip { clip / norm } else { 1.0 };
    if scale < 1.0 {
        for v in x.iter_mut() {
            *v = (f64::from(*v) * scale) as f32;
        }
    }
    Ok(ClipReport { norm, scale })
}

/// Clips `x` in place to L2 norm at most `clip`, as [`clip_l2_f32`].
///
/// # Errors
/// As [`clip_l2_f32`].
pub fn clip_l2_f64(x: &mut [f64], clip: f64) -> Result<ClipReport> {
    check_clip(clip)?;
    let norm = l2_norm(x)?;
    let scale = if norm > clip { clip / norm } else { 1.0 };
    if scale < 1.0 {
        for v in x.iter_mut() {
            *v *= scale;
        }
    }
    Ok(ClipReport { norm, scale })
}

/// The integer-domain sensitivity after conditional randomized rounding (KLS21): for an
/// update of L2 norm at most `c` (in integer units: the clip divided by the granularity γ)
/// in `d` dimensions, rounding is repeated until the integer vector's L2 norm is at most
///
/// `Δ₂ = min( c + √d,  √(c² + d/4 + √(2·ln(1/β))·(c + √d/2)) )`,
///
/// which one rounding meets with probability at least 1 − β; the first term always holds
/// (each coordinate moves by less than 1), and is the bound when β = 0. The L1 bound of the
/// integer vector is `Δ₁ = Δ₂·min(√d, Δ₂)` (each nonzero integer coordinate has `|x| ≤ x²`).
/// These are the `rounded_l2_norm_bound`/`rounded_l1_norm_bound` of KLS21's code
/// (google-research/federated, `distributed_dp`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntegerBound {
    c: f64,
    dim: usize,
    beta: f64,
    l2: f64,
}

impl IntegerBound {
    /// The bound for clip `c` in integer units (`C/γ`), `dim` coordinates and rounding
    /// failure probability `beta` in `[0, 1)`.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `clip`, `dim` or `beta` when out of range.
    pub fn new(c: f64, dim: usize, beta: f64) -> Result<Self> {
        check_clip(c)?;
        if dim == 0 {
            return Err(invalid("dim", "0 coordinates", "give the update's length"));
        }
        if !(0.0..1.0).contains(&beta) {
            return Err(invalid(
                "beta",
                format!("{beta} is not in [0, 1)"),
                "use a small rounding failure probability such as exp(-0.5)",
            ));
        }
        let d = dim as f64;
        let b1 = c + d.sqrt();
        let l2 = if beta == 0.0 {
            b1
        } else {
            let b2 =
                (c * c + 0.25 * d + (2.0 * (1.0 / beta).ln()).sqrt() * (c + 0.5 * d.sqrt())).sqrt();
            b1.min(b2)
        };
        Ok(Self { c, dim, beta, l2 })
    }

    /// Δ₂: the L2 bound of a rounded update (integer units).
    pub fn l2(&self) -> f64 {
        self.l2
    }

    /// Δ₁ = Δ₂·min(√d, Δ₂): the L1 bound of a rounded update (integer units).
    pub fn l1(&self) -> f64 {
        self.l2 * (self.dim as f64).sqrt().min(self.l2)
    }

    /// The number of coordinates d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The clip in integer units this bound was made for.
    pub fn clip(&self) -> f64 {
        self.c
    }

    /// The rounding failure probability β.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// Rounds `scaled` (an update already clipped to L2 norm `clip()` and divided by γ)
    /// to integers, each coordinate up with probability equal to its fractional part, and
    /// repeats until the result's L2 norm is at most [`IntegerBound::l2`]: at most
    /// `max_tries` roundings.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `dim` if `scaled` has another length;
    /// [`DpError::NonFinite`] for a NaN or infinity; naming `clip` if `scaled`'s norm exceeds
    /// `clip()` by more than 1e-6 relative (clip first); naming `beta` if `max_tries`
    /// roundings all exceeded the bound (raise β or `max_tries`).
    pub fn round<R: RngCore + CryptoRng + ?Sized>(
        &self,
        scaled: &[f64],
        max_tries: u32,
        rng: &mut R,
    ) -> Result<Vec<i64>> {
        if scaled.len() != self.dim {
            return Err(invalid(
                "dim",
                format!(
                    "update has {} coordinates, the bound was made for {}",
                    scaled.len(),
                    self.dim
                ),
                "build the IntegerBound with the update's length",
            ));
        }
        let norm = l2_norm(scaled)?;
        // The sensitivity comes from the check on the integer vector below, which holds
        // whatever the input; the input's norm only decides how often one rounding passes.
        // Allow the rounding of an f32 clip (relative 2^-23), refuse an unclipped update.
        if norm > self.c * (1.0 + 1e-6) {
            return Err(invalid(
                "clip",
                format!(
                    "the scaled update's norm {norm} exceeds the clip {} in integer units",
                    self.c
                ),
                "clip the update (clip_l2_f32/clip_l2_f64) and divide it by the granularity before rounding",
            ));
        }
        // |x| <= Δ₂ ⟺ Σ x² <= ⌊Δ₂²⌋ for integers; the sum is exact in u128.
        let bound_sq = (self.l2 * self.l2).floor() as u128;
        let mut out = vec![0i64; scaled.len()];
        for _ in 0..max_tries {
            let mut sq: u128 = 0;
            for (o, &v) in out.iter_mut().zip(scaled) {
                let f = v.floor();
                let frac = v - f;
                // Up with probability frac: a uniform 53-bit fraction below frac.
                let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                let r = if u < frac { f + 1.0 } else { f } as i64;
                sq = sq.saturating_add(u128::from(r.unsigned_abs()).pow(2));
                *o = r;
            }
            if sq <= bound_sq {
                return Ok(out);
            }
        }
        Err(invalid(
            "beta",
            format!(
                "{max_tries} randomized roundings all exceeded the L2 bound {}",
                self.l2
            ),
            "raise beta (a looser bound) or max_tries",
        ))
    }
}
