//! The exact discrete Gaussian sampler (CKS20) against its probability mass function.
//!
//! Goodness of fit: Pearson's chi-square on the binned draws of a fixed-seed `SecretRng`,
//! at a false-alarm rate α = 1e-6 per test. The bins are chosen so that the degrees of
//! freedom k are even, where the chi-square survival function has the closed form
//! `Q(x) = e^{-x/2}·Σ_{j<k/2} (x/2)^j/j!`; the critical value `Q⁻¹(α)` is found by bisection
//! below (checked against scipy's `chi2.isf`). With the seeds fixed the tests are
//! deterministic; α says how unlikely a correct sampler would be to fail under another seed.
#![allow(clippy::unwrap_used)]

use flspec::dp::{DiscreteGaussian, Variance};
use flspec::secagg::rng::SecretRng;

/// The false-alarm rate of each goodness-of-fit test.
const ALPHA: f64 = 1e-6;

/// The chi-square survival function for an even number `k` of degrees of freedom.
fn chi2_sf_even(x: f64, k: usize) -> f64 {
    assert!(k.is_multiple_of(2) && k > 0, "closed form needs even k");
    let h = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for j in 1..k / 2 {
        term *= h / j as f64;
        sum += term;
    }
    (-h).exp() * sum
}

/// The chi-square critical value at [`ALPHA`] for even `k` degrees of freedom.
fn critical_value(k: usize) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1000.0f64);
    while hi - lo > 1e-10 {
        let mid = 0.5 * (lo + hi);
        if chi2_sf_even(mid, k) > ALPHA {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Pearson's statistic of `draws` against the pmf of `dist`, with bins `-b..=b` and the two
/// tails; returns (statistic, degrees of freedom).
fn chi_square(draws: &[i64], dist: &DiscreteGaussian, b: i64) -> (f64, usize) {
    let n = draws.len() as f64;
    let mut counts = vec![0u64; (2 * b + 3) as usize];
    for &x in draws {
        let i = if x < -b {
            0
        } else if x > b {
            (2 * b + 2) as usize
        } else {
            (x + b + 1) as usize
        };
        counts[i] += 1;
    }
    let inner: Vec<f64> = (-b..=b).map(|x| dist.pmf(x)).collect();
    let tail = (1.0 - inner.iter().sum::<f64>()) / 2.0;
    let mut probs = vec![tail];
    probs.extend(inner);
    probs.push(tail);
    let mut stat = 0.0;
    for (c, p) in counts.iter().zip(&probs) {
        let e = n * p;
        assert!(e >= 5.0, "bin expected count {e} < 5: narrow the bins");
        stat += (*c as f64 - e).powi(2) / e;
    }
    let k = probs.len() - 1;
    assert!(
        k.is_multiple_of(2),
        "pick bins with an even number of degrees of freedom"
    );
    eprintln!(
        "chi2 = {stat:.2} with {k} dof (critical {:.2})",
        critical_value(k)
    );
    (stat, k)
}

fn draws(var: Variance, n: usize, seed: u8) -> (DiscreteGaussian, Vec<i64>) {
    let dist = DiscreteGaussian::new(var).unwrap();
    let mut rng = SecretRng::from_seed_ref(&[seed; 32]);
    let v = dist.sample_vec(n, &mut rng);
    (dist, v)
}

#[test]
fn critical_value_matches_tables() {
    // scipy.stats.chi2.isf(1e-6, k) (scipy installed with dp-accounting 0.6.0).
    for (k, want) in [
        (4, 33.37684158165888),
        (10, 46.863046846784385),
        (22, 68.85576868072236),
    ] {
        let got = critical_value(k);
        assert!((got - want).abs() / want < 1e-9, "k = {k}: {got} vs {want}");
    }
}

#[test]
fn sigma_3_fits_its_pmf() {
    let (dist, v) = draws(Variance::new(9, 1).unwrap(), 100_000, 1);
    let (stat, k) = chi_square(&v, &dist, 10);
    assert!(
        stat < critical_value(k),
        "chi2 = {stat} with {k} dof, critical {}",
        critical_value(k)
    );
}

#[test]
fn the_fit_test_rejects_a_wrong_variance() {
    // The same draws against sigma^2 = 9.9: the test has the power to see a 10% error.
    let (_, v) = draws(Variance::new(9, 1).unwrap(), 100_000, 1);
    let wrong = DiscreteGaussian::new(Variance::new(99, 10).unwrap()).unwrap();
    let (stat, k) = chi_square(&v, &wrong, 10);
    assert!(
        stat > critical_value(k),
        "chi2 = {stat} should exceed {}",
        critical_value(k)
    );
}

#[test]
fn tiny_sigma_one_half_fits_its_pmf() {
    let (dist, v) = draws(Variance::new(1, 4).unwrap(), 100_000, 2);
    assert!(
        (dist.pmf(0) - 0.786_570_707_041_948).abs() < 1e-12,
        "{}",
        dist.pmf(0)
    );
    let (stat, k) = chi_square(&v, &dist, 1);
    assert!(stat < critical_value(k), "chi2 = {stat} with {k} dof");
}

#[test]
fn a_fractional_variance_from_f64_fits_its_pmf() {
    // 0.3 -> 19661/65536 (rounded up on the 2^-16 grid).
    let var = Variance::from_f64(0.3).unwrap();
    assert_eq!((var.numer(), var.denom()), (19661, 65536));
    let (dist, v) = draws(var, 100_000, 3);
    let (stat, k) = chi_square(&v, &dist, 1);
    assert!(stat < critical_value(k), "chi2 = {stat} with {k} dof");
}

#[test]
fn mean_and_variance_match_the_exact_moments() {
    let (dist, v) = draws(Variance::new(9, 1).unwrap(), 100_000, 4);
    let n = v.len() as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let exact = dist.variance();
    // 6 standard errors: sd(mean) = sigma/sqrt(n), sd(var) ~ sigma^2·sqrt(2/n).
    assert!(mean.abs() < 6.0 * 3.0 / n.sqrt(), "mean {mean}");
    assert!(
        (var - exact).abs() < 6.0 * 9.0 * (2.0 / n).sqrt(),
        "var {var} vs {exact}"
    );
}

#[test]
fn exact_variance_is_below_sigma_squared() {
    // CKS20: the discrete Gaussian's variance is at most sigma^2; visibly so for small sigma.
    for (num, den) in [(1u64, 4u64), (1, 2), (1, 1), (9, 1), (1_000_000, 1)] {
        let d = DiscreteGaussian::new(Variance::new(num, den).unwrap()).unwrap();
        let s2 = num as f64 / den as f64;
        assert!(d.variance() <= s2, "sigma^2 = {s2}: {}", d.variance());
        // And it agrees with the direct sum of x^2·pmf(x).
        let lim = (40.0 * s2.sqrt()) as i64 + 10;
        let direct: f64 = (-lim..=lim).map(|x| (x * x) as f64 * d.pmf(x)).sum();
        assert!((direct - d.variance()).abs() <= 1e-9 * s2, "sigma^2 = {s2}");
    }
    let half = DiscreteGaussian::new(Variance::new(1, 4).unwrap()).unwrap();
    assert!(half.variance() < 0.9 * 0.25, "{}", half.variance());
}

#[test]
fn pmf_sums_to_one() {
    for s2 in [0.01, 0.25, 0.3, 1.0, 9.0, 1e4] {
        let d = DiscreteGaussian::with_variance(s2).unwrap();
        let lim = (40.0 * f64::sqrt(s2)) as i64 + 10;
        let total: f64 = (-lim..=lim).map(|x| d.pmf(x)).sum();
        assert!((total - 1.0).abs() < 1e-12, "sigma^2 = {s2}: {total}");
    }
}

#[test]
fn seeded_rng_gives_the_same_draws_and_other_seeds_do_not() {
    let d = DiscreteGaussian::with_variance(1e4).unwrap();
    let a = d.sample_vec(1000, &mut SecretRng::from_seed_ref(&[9; 32]));
    let b = d.sample_vec(1000, &mut SecretRng::from_seed_ref(&[9; 32]));
    let c = d.sample_vec(1000, &mut SecretRng::from_seed_ref(&[10; 32]));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Golden prefix: a change to the algorithm's use of randomness shows up here.
    assert_eq!(&a[..4], &GOLDEN_SIGMA_100_SEED_9);
}

/// The first draws of N_Z(0, 10^4) from `SecretRng::from_seed_ref(&[9; 32])`.
const GOLDEN_SIGMA_100_SEED_9: [i64; 4] = [-176, 13, -87, -172];

#[test]
fn huge_sigma_one_million() {
    let var = Variance::from_f64(1e12).unwrap();
    assert_eq!((var.numer(), var.denom()), (1_000_000_000_000, 1));
    let (_, v) = draws(var, 4000, 5);
    let n = v.len() as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() < 6.0 * 1e6 / n.sqrt(), "mean {mean}");
    assert!(
        (var / 1e12 - 1.0).abs() < 6.0 * (2.0 / n).sqrt(),
        "var {var}"
    );
}

#[test]
fn largest_sigma_on_the_fine_grid_and_too_large_is_refused() {
    // sigma^2 just under 2^32 on the 2^-16 grid: still within the 128-bit bounds.
    let d = DiscreteGaussian::with_variance(4.2e9).unwrap();
    let x = d.sample(&mut SecretRng::from_seed_ref(&[1; 32]));
    assert!(x.unsigned_abs() < 20 * 65_000);
    // An integer sigma^2 of 2^62 (sigma = 2^31) is accepted, 2^63 - 1 is refused by name.
    assert!(DiscreteGaussian::new(Variance::new(1 << 62, 1).unwrap()).is_ok());
    let err = DiscreteGaussian::new(Variance::new(u64::MAX, 1).unwrap()).unwrap_err();
    assert!(err.to_string().contains("sigma_squared"), "{err}");
    // A fine denominator with a large sigma is refused too.
    assert!(DiscreteGaussian::new(Variance::new(u64::MAX, 1 << 20).unwrap()).is_err());
}

#[test]
fn bad_variances_are_refused() {
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e19] {
        assert!(Variance::from_f64(v).is_err(), "{v}");
    }
    assert!(Variance::new(0, 1).is_err());
    assert!(Variance::new(1, 0).is_err());
    // Rounded up, never down.
    for v in [0.1, 0.3, 2.5e-7, 1234.5678, 5e9 + 0.5] {
        assert!(Variance::from_f64(v).unwrap().to_f64() >= v, "{v}");
    }
}

/// Pearson's statistic with bins `[edges[i], edges[i+1])` plus the two tails, the bin
/// probabilities summed from the pmf; returns (statistic, degrees of freedom).
fn chi_square_ranges(draws: &[i64], dist: &DiscreteGaussian, edges: &[i64]) -> (f64, usize) {
    let n = draws.len() as f64;
    let bins = edges.len() + 1;
    let mut counts = vec![0u64; bins];
    for &x in draws {
        counts[edges.partition_point(|e| *e <= x)] += 1;
    }
    let mut probs: Vec<f64> = edges
        .windows(2)
        .map(|w| (w[0]..w[1]).map(|x| dist.pmf(x)).sum())
        .collect();
    let tail = (1.0 - probs.iter().sum::<f64>()) / 2.0;
    probs.insert(0, tail);
    probs.push(tail);
    let mut stat = 0.0;
    for (c, p) in counts.iter().zip(&probs) {
        let e = n * p;
        assert!(e >= 5.0, "bin expected count {e} < 5");
        stat += (*c as f64 - e).powi(2) / e;
    }
    let k = bins - 1;
    eprintln!(
        "chi2 = {stat:.2} with {k} dof (critical {:.2})",
        critical_value(k)
    );
    (stat, k)
}

#[test]
fn sigma_1000_with_a_fractional_variance_fits_its_pmf() {
    // sigma^2 = 10^6 + 0.3 on the 2^-16 grid: the rational path (q = 2^16) at a large sigma.
    let var = Variance::from_f64(1e6 + 0.3).unwrap();
    assert_eq!(var.denom(), 65536);
    let (dist, v) = draws(var, 50_000, 6);
    // 24 edges at (k + 1/2)·sigma/4: 23 inner bins + 2 tails, 24 degrees of freedom.
    let edges: Vec<i64> = (-12..12)
        .map(|k| ((k as f64 + 0.5) * 250.0) as i64)
        .collect();
    let (stat, k) = chi_square_ranges(&v, &dist, &edges);
    assert_eq!(k, 24);
    assert!(stat < critical_value(k), "chi2 = {stat} with {k} dof");
    // And against sigma^2 = 1.1·10^6 the same draws fail.
    let wrong = DiscreteGaussian::with_variance(1.1e6).unwrap();
    let (stat, _) = chi_square_ranges(&v, &wrong, &edges);
    assert!(
        stat > critical_value(k),
        "chi2 = {stat} should exceed the critical value"
    );
}
