//! The exact discrete Gaussian sampler of Canonne, Kamath and Steinke (2020).
//!
//! "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020, arXiv:2004.00010),
//! Algorithms 1–3: Bernoulli(exp(−γ)) for a rational γ ≥ 0 (Algorithm 1), the discrete
//! Laplace by rejection (Algorithm 2, with s = 1) and the discrete Gaussian by rejection from
//! the discrete Laplace with t = ⌊σ⌋ + 1 (Algorithm 3). Every decision is a comparison of
//! integers drawn uniformly from the RNG: no floating point is used while sampling, so the
//! output distribution is exactly
//! `P[X = x] = exp(−x²/(2σ²)) / Σ_y exp(−y²/(2σ²))` for the rational σ² of [`Variance`]
//! (conditioned on `|x| ≤ i64::MAX`, an event of probability 1 − exp(−2³¹) or more at the
//! largest σ² this sampler accepts).
//!
//! # Integer arithmetic
//! With σ² = p/q (reduced), Algorithm 3 accepts a candidate `y` with probability exp(−γ),
//! `γ = (|y|·q·t − p)² / (2·p·q·t²)`. [`DiscreteGaussian::new`] checks that `q·t < 2⁶⁴` and
//! `2·p·q·t² < 2¹²⁷`, so the numerator fits 256 bits and every uniform draw fits a `u128`.
//! That allows σ up to about 1.2·10⁷ with the 2⁻¹⁶ grid of [`Variance::from_f64`], and up to
//! about 3·10⁹ for an integer σ².
//!
//! ```
//! use flspec::dp::{DiscreteGaussian, Variance};
//! use flspec::secagg::rng::SecretRng;
//!
//! let noise = DiscreteGaussian::new(Variance::from_f64(9.0)?)?; // sigma = 3
//! let mut rng = SecretRng::from_seed_ref(&[7; 32]);
//! let x: i64 = noise.sample(&mut rng);
//! assert!(x.abs() < 100);
//! assert!((noise.pmf(0) - 0.1329807601338109).abs() < 1e-12);
//! # Ok::<(), flspec::dp::DpError>(())
//! ```
//!
//! # Security
//! Draw from a cryptographically secure RNG ([`crate::secagg::rng::SecretRng`] seeded from
//! the OS, or `rand_core::OsRng`): the privacy guarantee assumes the noise is unpredictable.
//! The sampler's running time depends on the value drawn (as CKS20's does); it is not
//! constant-time.

use std::fmt;

use rand_core::{CryptoRng, RngCore};

use super::error::{Result, invalid};

/// Denominator of [`Variance::from_f64`] below 2³²: σ² is rounded up to a multiple of 2⁻¹⁶.
const F64_DENOM: u64 = 1 << 16;

/// The variance parameter σ² of a discrete Gaussian, as an exact positive rational `p/q`
/// in lowest terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variance {
    num: u64,
    den: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Variance {
    /// σ² = `num / den`, reduced to lowest terms.
    ///
    /// # Errors
    /// [`super::DpError::InvalidParameter`] if `num` or `den` is zero.
    ///
    /// ```
    /// let v = flspec::dp::Variance::new(6, 4)?;
    /// assert_eq!((v.numer(), v.denom()), (3, 2));
    /// # Ok::<(), flspec::dp::DpError>(())
    /// ```
    pub fn new(num: u64, den: u64) -> Result<Self> {
        if num == 0 || den == 0 {
            return Err(invalid(
                "sigma_squared",
                format!("{num}/{den} is not a positive rational"),
                "give a numerator and a denominator of at least 1",
            ));
        }
        let g = gcd(num, den);
        Ok(Self {
            num: num / g,
            den: den / g,
        })
    }

    /// σ² from an `f64`, rounded UP (never less noise than asked) to the rational
    /// `⌈σ²·2¹⁶⌉ / 2¹⁶` when σ² < 2³², or to the integer `⌈σ²⌉` from 2³² on; exact when σ² is
    /// already on that grid (e.g. 0.25, 9, 10¹²). The relative change is at most
    /// 2⁻¹⁶/σ² (2⁻³² from 2³² on).
    ///
    /// # Errors
    /// [`super::DpError::InvalidParameter`] if σ² is not finite, not positive, or 2⁶³ or more.
    ///
    /// ```
    /// let v = flspec::dp::Variance::from_f64(0.3)?;
    /// assert_eq!((v.numer(), v.denom()), (19661, 65536)); // 0.3000030...
    /// assert!(v.to_f64() >= 0.3);
    /// # Ok::<(), flspec::dp::DpError>(())
    /// ```
    pub fn from_f64(sigma_squared: f64) -> Result<Self> {
        if !sigma_squared.is_finite() || sigma_squared <= 0.0 || sigma_squared >= 2f64.powi(63) {
            return Err(invalid(
                "sigma_squared",
                format!("{sigma_squared} is not in (0, 2^63)"),
                "use a finite positive noise variance",
            ));
        }
        if sigma_squared < 2f64.powi(32) {
            // Exact: multiplying by a power of two and ceil are exact in f64 here.
            let num = (sigma_squared * F64_DENOM as f64).ceil() as u64;
            Self::new(num, F64_DENOM)
        } else {
            Self::new(sigma_squared.ceil() as u64, 1)
        }
    }

    /// σ² from the standard deviation σ, as [`Variance::from_f64`] of `σ·σ`.
    ///
    /// # Errors
    /// As [`Variance::from_f64`].
    pub fn from_std_dev(sigma: f64) -> Result<Self> {
        Self::from_f64(sigma * sigma)
    }

    /// The numerator `p` of σ² = p/q.
    pub fn numer(&self) -> u64 {
        self.num
    }

    /// The denominator `q` of σ² = p/q.
    pub fn denom(&self) -> u64 {
        self.den
    }

    /// σ² as the nearest `f64`.
    pub fn to_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl fmt::Display for Variance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// The discrete Gaussian N_Z(0, σ²) on the integers, sampled exactly (CKS20 Algorithm 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscreteGaussian {
    var: Variance,
    /// ⌊σ⌋ + 1: the scale of the discrete Laplace proposal.
    t: u64,
    /// q·t (< 2⁶⁴).
    qt: u128,
    /// 2·p·q·t² (< 2¹²⁷): the denominator of γ.
    gamma_den: u128,
}

/// ⌊√n⌋ for a `u64`.
fn isqrt(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    while u128::from(r) * u128::from(r) > u128::from(n) {
        r -= 1;
    }
    while u128::from(r + 1) * u128::from(r + 1) <= u128::from(n) {
        r += 1;
    }
    r
}

impl DiscreteGaussian {
    /// The sampler for σ² = `var`.
    ///
    /// # Errors
    /// [`super::DpError::InvalidParameter`] naming `sigma_squared` if σ² is too large or its
    /// denominator too fine for the 128-bit arithmetic (see the module docs); an integer σ²
    /// ([`Variance::new`]`(n, 1)`) allows the largest σ.
    pub fn new(var: Variance) -> Result<Self> {
        let t = isqrt(var.num / var.den) + 1;
        let too_big = || {
            invalid(
                "sigma_squared",
                format!("{var} is too large or too finely divided for the exact sampler"),
                "use an integer variance (Variance::new(n, 1)) or a smaller sigma (at most ~3e9)",
            )
        };
        let qt = u128::from(var.den) * u128::from(t);
        if qt >= 1 << 64 {
            return Err(too_big());
        }
        let gamma_den = (2 * u128::from(var.num))
            .checked_mul(qt)
            .and_then(|x| x.checked_mul(u128::from(t)))
            .filter(|&x| x < 1 << 127)
            .ok_or_else(too_big)?;
        Ok(Self {
            var,
            t,
            qt,
            gamma_den,
        })
    }

    /// The sampler for σ² given as an `f64` ([`Variance::from_f64`]: rounded up to the grid).
    ///
    /// # Errors
    /// As [`Variance::from_f64`] and [`DiscreteGaussian::new`].
    pub fn with_variance(sigma_squared: f64) -> Result<Self> {
        Self::new(Variance::from_f64(sigma_squared)?)
    }

    /// The exact variance parameter σ² that is sampled.
    pub fn variance_param(&self) -> Variance {
        self.var
    }

    /// One draw of N_Z(0, σ²).
    pub fn sample<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        loop {
            let y = sample_discrete_laplace(self.t, rng);
            let Ok(y) = i64::try_from(y) else {
                // |y| > i64::MAX: cannot be returned; rejecting it conditions the output on
                // |x| <= i64::MAX (see the module docs).
                continue;
            };
            let ay = u128::from(y.unsigned_abs());
            // |y| < 2^63 and q·t < 2^64: fits.
            let yqt = ay * self.qt;
            let p = u128::from(self.var.num);
            let a = yqt.abs_diff(p);
            if bernoulli_exp_minus_square_over(a, self.gamma_den, rng) {
                return y;
            }
        }
    }

    /// Fills `out` with independent draws.
    pub fn fill<R: RngCore + CryptoRng + ?Sized>(&self, out: &mut [i64], rng: &mut R) {
        for x in out {
            *x = self.sample(rng);
        }
    }

    /// `n` independent draws.
    pub fn sample_vec<R: RngCore + CryptoRng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<i64> {
        let mut v = vec![0; n];
        self.fill(&mut v, rng);
        v
    }

    /// The probability mass `P[X = x]`, computed in `f64` (for tests and reports; sampling
    /// never uses it).
    pub fn pmf(&self, x: i64) -> f64 {
        let s2 = self.var.to_f64();
        let xf = x as f64;
        (-xf * xf / (2.0 * s2)).exp() / normalizer(s2)
    }

    /// The exact variance `E[X²]` of this distribution, in `f64`. It is below σ² (CKS20 §2
    /// bound the discrete Gaussian's variance by σ²), by a margin that vanishes exponentially
    /// in σ² (about `8π²σ⁴·exp(−2π²σ²)` for σ ≥ 1).
    pub fn variance(&self) -> f64 {
        let s2 = self.var.to_f64();
        if s2 >= 0.25 {
            // Poisson summation: Σ_y y² e^{-y²/2σ²} = √(2π) σ³ Σ_k (1 − 4π²σ²k²) e^{−2π²σ²k²}.
            let (mut num, mut den) = (1.0, 1.0);
            for k in 1..=20 {
                let k2 = f64::from(k * k);
                let e = (-2.0 * std::f64::consts::PI.powi(2) * s2 * k2).exp();
                num += 2.0 * (1.0 - 4.0 * std::f64::consts::PI.powi(2) * s2 * k2) * e;
                den += 2.0 * e;
            }
            s2 * num / den
        } else {
            let z = normalizer(s2);
            (1..=64)
                .map(|y| {
                    let y = f64::from(y);
                    2.0 * y * y * (-y * y / (2.0 * s2)).exp()
                })
                .sum::<f64>()
                / z
        }
    }
}

/// `Σ_y exp(−y²/(2σ²))` over all integers, in `f64`.
fn normalizer(s2: f64) -> f64 {
    if s2 >= 0.25 {
        // Poisson summation: √(2π)·σ·Σ_k e^{−2π²σ²k²}.
        let mut sum = 1.0;
        for k in 1..=20 {
            sum += 2.0 * (-2.0 * std::f64::consts::PI.powi(2) * s2 * f64::from(k * k)).exp();
        }
        (2.0 * std::f64::consts::PI * s2).sqrt() * sum
    } else {
        1.0 + (1..=64)
            .map(|y| 2.0 * (-f64::from(y * y) / (2.0 * s2)).exp())
            .sum::<f64>()
    }
}

/// A uniform `u128` in `[0, n)`, `n ≥ 1`, by rejection (unbiased).
fn uniform_below<R: RngCore + ?Sized>(n: u128, rng: &mut R) -> u128 {
    debug_assert!(n >= 1);
    if n == 1 {
        return 0;
    }
    let bits = 128 - (n - 1).leading_zeros();
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    loop {
        let x = if bits <= 64 {
            u128::from(rng.next_u64())
        } else {
            (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
        } & mask;
        if x < n {
            return x;
        }
    }
}

/// Bernoulli(num/den), `num ≤ den`, `den ≥ 1`.
fn bernoulli<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    uniform_below(den, rng) < num
}

/// Bernoulli(exp(−num/den)) for `0 ≤ num/den < 1` (CKS20 Algorithm 1, first branch):
/// the parity of the first K with Bernoulli(γ/K) = 0, where Bernoulli(γ/K) is drawn as
/// Bernoulli(γ) AND Bernoulli(1/K) (independent), so no product `K·den` is ever formed.
fn bernoulli_exp_minus_fraction<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    let mut k: u128 = 1;
    loop {
        let a = bernoulli(num, den, rng) && bernoulli(1, k, rng);
        if !a {
            return k % 2 == 1;
        }
        k += 1;
    }
}

/// Bernoulli(exp(−1)).
fn bernoulli_exp_minus_one<R: RngCore + ?Sized>(rng: &mut R) -> bool {
    let mut k: u128 = 1;
    while bernoulli(1, k, rng) {
        k += 1;
    }
    k % 2 == 1
}

/// Bernoulli(exp(−a²/den)) for `a < 2¹²⁷`, `1 ≤ den < 2¹²⁷` (CKS20 Algorithm 1: ⌊γ⌋ draws
/// of Bernoulli(exp(−1)), then one of Bernoulli(exp(−(γ − ⌊γ⌋)))).
fn bernoulli_exp_minus_square_over<R: RngCore + ?Sized>(a: u128, den: u128, rng: &mut R) -> bool {
    let (whole, rem) = square_divmod(a, den);
    match whole {
        Some(whole) => {
            let mut i: u128 = 0;
            while i < whole {
                if !bernoulli_exp_minus_one(rng) {
                    return false;
                }
                i += 1;
            }
            bernoulli_exp_minus_fraction(rem, den, rng)
        }
        // ⌊γ⌋ ≥ 2^128: the answer is 1 with probability below exp(−2^128); drawing until the
        // first failure of Bernoulli(exp(−1)) returns 0 after 1.6 draws on average.
        None => loop {
            if !bernoulli_exp_minus_one(rng) {
                return false;
            }
        },
    }
}

/// `(⌊a²/d⌋, a² mod d)` for `a < 2¹²⁷`, `1 ≤ d < 2¹²⁷`; the quotient is `None` when it does
/// not fit a `u128`.
fn square_divmod(a: u128, d: u128) -> (Option<u128>, u128) {
    if a < 1 << 64 {
        let sq = a * a;
        return (Some(sq / d), sq % d);
    }
    // a² as 256 bits (hi, lo), then binary long division by d.
    let (hi, lo) = mul_wide(a, a);
    let mut rem: u128 = 0;
    let mut quot_hi: u128 = 0;
    let mut quot_lo: u128 = 0;
    for i in (0..256).rev() {
        let bit = if i >= 128 {
            (hi >> (i - 128)) & 1
        } else {
            (lo >> i) & 1
        };
        // rem < d < 2^127, so 2·rem + 1 fits.
        rem = (rem << 1) | bit;
        let q = rem >= d;
        if q {
            rem -= d;
        }
        quot_hi = (quot_hi << 1) | (quot_lo >> 127);
        quot_lo = (quot_lo << 1) | u128::from(q);
    }
    (if quot_hi == 0 { Some(quot_lo) } else { None }, rem)
}

/// The 256-bit product `a·b` as `(high, low)` 128-bit halves.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const M: u128 = u64::MAX as u128;
    let (a0, a1) = (a & M, a >> 64);
    let (b0, b1) = (b & M, b >> 64);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & M) + (p10 & M);
    let lo = (p00 & M) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// The discrete Laplace with scale `t` (CKS20 Algorithm 2, s = 1): `P[Y = y] ∝ exp(−|y|/t)`.
/// The magnitude is returned with its sign in an `i128` (it fits: `|y| < t·2⁶⁴`).
fn sample_discrete_laplace<R: RngCore + ?Sized>(t: u64, rng: &mut R) -> i128 {
    let t = u128::from(t);
    loop {
        let u = uniform_below(t, rng);
        if !bernoulli_exp_minus_fraction(u, t, rng) {
            continue;
        }
        let mut v: u64 = 0;
        while bernoulli_exp_minus_one(rng) {
            v += 1;
        }
        let x = u + t * u128::from(v);
        let negative = rng.next_u32() & 1 == 1;
        if negative && x == 0 {
            continue;
        }
        // x < 2^64·2^64 is impossible here (t < 2^32 from new()'s checks, v < 2^64).
        let x = x as i128;
        return if negative { -x } else { x };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_divmod_matches_u128_where_it_fits_and_long_division_beyond() {
        for (a, d) in [
            (0u128, 1u128),
            (5, 3),
            (u64::MAX as u128, 7),
            (1 << 63, (1 << 100) + 3),
        ] {
            let (q, r) = square_divmod(a, d);
            assert_eq!((q, r), (Some(a * a / d), a * a % d), "a={a} d={d}");
        }
        // (2^70)^2 = 2^140; / 2^100 = 2^40 exactly.
        assert_eq!(square_divmod(1 << 70, 1 << 100), (Some(1 << 40), 0));
        // (2^70 + 1)^2 = 2^140 + 2^71 + 1; mod (2^100 − 1): 2^140 = 2^40·(2^100−1) + 2^40.
        let d = (1u128 << 100) - 1;
        let (q, r) = square_divmod((1 << 70) + 1, d);
        assert_eq!(r, (1u128 << 40) + (1 << 71) + 1);
        assert_eq!(q, Some(1 << 40));
        // Quotient over 128 bits.
        assert_eq!(square_divmod((1 << 126) + 5, 2).0, None);
    }

    #[test]
    fn mul_wide_agrees_on_known_products() {
        assert_eq!(mul_wide(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(mul_wide(1 << 64, 1 << 64), (1, 0));
        assert_eq!(mul_wide(3, 5), (0, 15));
    }

    #[test]
    fn isqrt_is_exact_at_squares_and_neighbours() {
        for r in [0u64, 1, 2, 3, 1000, 4_294_967_295] {
            let n = r * r;
            assert_eq!(isqrt(n), r);
            if n > 0 {
                assert_eq!(isqrt(n - 1), r - 1);
            }
        }
        assert_eq!(isqrt(u64::MAX), 4_294_967_295);
    }
}
