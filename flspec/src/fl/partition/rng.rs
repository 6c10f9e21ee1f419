//! The few random draws the toolkit needs, on a seeded ChaCha stream, written out here so that
//! a partition or a sample depends only on the seed (not on the version of a sampling crate).

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// A ChaCha20 generator for `seed`, on stream `stream` (a round, a purpose).
pub(crate) fn seeded(seed: u64, stream: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias.
pub(crate) fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    let n = n as u64;
    // The largest multiple of n that fits: draws at or above it are redrawn.
    let zone = u64::MAX - (u64::MAX % n + 1) % n;
    loop {
        let x = rng.next_u64();
        if x <= zone {
            return (x % n) as usize;
        }
    }
}

/// Fisher–Yates shuffle.
pub(crate) fn shuffle<T>(rng: &mut ChaCha20Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}

/// A uniform `f64` in `[0, 1)`, 53 random bits.
pub(crate) fn unit(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform `f64` in `(0, 1]`, for logarithms.
fn unit_open(rng: &mut ChaCha20Rng) -> f64 {
    1.0 - unit(rng)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha20Rng) -> f64 {
    let r = (-2.0 * unit_open(rng).ln()).sqrt();
    r * (std::f64::consts::TAU * unit(rng)).cos()
}

/// A Gamma(`shape`, 1) draw, `shape > 0` (Marsaglia & Tsang 2000; for `shape < 1`, the boost
/// `Gamma(shape + 1) · U^(1/shape)`).
pub(crate) fn gamma(rng: &mut ChaCha20Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        return gamma(rng, shape + 1.0) * unit_open(rng).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = unit_open(rng);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A draw from the symmetric Dirichlet distribution Dir(`alpha`, …, `alpha`) over `k` parts.
/// When every Gamma draw underflows to zero (tiny `alpha`), all the mass goes to one part chosen
/// uniformly, which is the limit of the distribution.
pub(crate) fn dirichlet(rng: &mut ChaCha20Rng, alpha: f64, k: usize) -> Vec<f64> {
    let mut p: Vec<f64> = (0..k).map(|_| gamma(rng, alpha)).collect();
    let total: f64 = p.iter().sum();
    if total > 0.0 && total.is_finite() {
        p.iter_mut().for_each(|x| *x /= total);
    } else {
        p.iter_mut().for_each(|x| *x = 0.0);
        if k > 0 {
            p[below(rng, k)] = 1.0;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_has_the_right_mean() {
        let mut rng = seeded(7, 0);
        for shape in [0.1, 0.5, 1.0, 3.0] {
            let n = 20_000;
            let mean = (0..n).map(|_| gamma(&mut rng, shape)).sum::<f64>() / n as f64;
            assert!(
                (mean - shape).abs() < 0.05 * shape.max(1.0),
                "{shape}: {mean}"
            );
        }
    }

    #[test]
    fn below_is_in_range_and_covers() {
        let mut rng = seeded(1, 0);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[below(&mut rng, 7)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
