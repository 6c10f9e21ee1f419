//! Differential-privacy benchmarks: the exact discrete Gaussian sampler (CKS20) per value at
//! the σ a DDG run uses, and KLS21's conditional randomized rounding, on the MNIST CNN's
//! 21,840 values.
//!
//! Run: `CARGO_TARGET_DIR=/work/main/target-release cargo bench -p flspec --bench dp --
//! --warm-up-time 1 --measurement-time 3`.
//!
//! Measured 2026-11-30 22:53 UTC on `Intel(R) Xeon(R) Processor` (2-core VM shared with other
//! builds, load average 6.5), one thread, `SecretRng` (ChaCha20), 21,840 values per call:
//!
//! | σ² | time per call | values/s |
//! |---|---|---|
//! | 0.25 | 14.5 ms | 1.5 M |
//! | 10² | 12.5 ms | 1.7 M |
//! | 10⁴ | 8.9 ms | 2.4 M |
//! | 10⁶ | 7.5 ms | 2.9 M |
//! | 10¹² | 9.0 ms | 2.4 M |
//! | conditional rounding (c = 2¹⁶) | 0.60 ms | 36 M |
//!
//! So one client's noise for the MNIST CNN costs about 9 ms per round, and about 0.4 s for a
//! 1M-parameter model.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flspec::dp::DiscreteGaussian;
use flspec::dp::clip::IntegerBound;
use flspec::secagg::rng::SecretRng;

const DIM: usize = 21_840;

fn sampler(c: &mut Criterion) {
    let mut g = c.benchmark_group("discrete_gaussian");
    g.throughput(Throughput::Elements(DIM as u64));
    for var in [0.25, 1e2, 1e4, 1e6, 1e12] {
        let d = DiscreteGaussian::with_variance(var).expect("valid variance");
        let mut rng = SecretRng::from_seed_ref(&[1; 32]);
        let mut out = vec![0i64; DIM];
        g.bench_function(format!("sigma2={var:e}"), |b| {
            b.iter(|| d.fill(&mut out, &mut rng))
        });
    }
    g.finish();
}

fn rounding(c: &mut Criterion) {
    let mut g = c.benchmark_group("conditional_rounding");
    g.throughput(Throughput::Elements(DIM as u64));
    let c_int = 65_536.0;
    let bound = IntegerBound::new(c_int, DIM, (-0.5f64).exp()).expect("valid bound");
    let x: Vec<f64> = (0..DIM)
        .map(|i| (i as f64 * 0.37).sin() * c_int / (DIM as f64).sqrt() * 1.2)
        .collect();
    let mut x = x;
    flspec::dp::clip::clip_l2_f64(&mut x, c_int).expect("finite");
    let mut rng = SecretRng::from_seed_ref(&[2; 32]);
    g.bench_function("round", |b| {
        b.iter_batched(
            || (),
            |()| bound.round(&x, 100, &mut rng).expect("within bound"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, sampler, rounding);
criterion_main!(benches);
