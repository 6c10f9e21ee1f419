//! Quantization: error bound, no wrap-around at n_max, parameter validation, weighted mean,
//! and a known answer.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use flspec::secagg::{ClientId, Config, Mode, Quantizer, SecAggError};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Each value within 1/scale; the de-quantized sum of n within n/scale of the clipped sum.
    #[test]
    fn error_bound_holds(
        clip in 0.01f32..100.0,
        n in 1u32..=64,
        n_max_extra in 0u32..1000,
        seed in any::<u64>(),
        raw in prop::collection::vec(-2.0f32..2.0, 1..200),
    ) {
        let q = Quantizer::new(clip, n + n_max_extra).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let d = raw.len();
        let mut sum = vec![0u32; d];
        let mut exact = vec![0f64; d];
        for i in 0..n {
            let x: Vec<f32> = raw.iter().map(|v| v * clip * (1.0 + i as f32 / 7.0)).collect();
            let qx = q.quantize(&x, &mut rng).unwrap();
            for j in 0..d {
                let clipped = f64::from(x[j].clamp(-clip, clip));
                let single = f64::from(qx[j]) / q.scale() - f64::from(clip);
                prop_assert!((single - clipped).abs() <= 1.0 / q.scale() * (1.0 + 1e-9));
                sum[j] = sum[j].wrapping_add(qx[j]);
                exact[j] += clipped;
            }
        }
        let back = q.dequantize_sum(&sum, n).unwrap();
        for j in 0..d {
            let tol = q.error_bound(n) + f64::from(back[j]).abs() * f64::from(f32::EPSILON) + 1e-12;
            prop_assert!((f64::from(back[j]) - exact[j]).abs() <= tol,
                "j={} got {} want {} tol {}", j, back[j], exact[j], tol);
        }
    }
}

#[test]
fn n_max_summands_at_the_top_never_wrap() {
    for n_max in [1u32, 2, 3, 100, 1000, 60_000] {
        let q = Quantizer::new(1.0, n_max).unwrap();
        let top = q
            .quantize(&[5.0], &mut ChaCha20Rng::seed_from_u64(0))
            .unwrap()[0];
        assert_eq!(top, q.levels());
        let total = u64::from(top) * u64::from(n_max);
        assert!(total <= u64::from(u32::MAX), "n_max = {n_max}");
        let sum = vec![top.wrapping_mul(n_max)];
        let back = q.dequantize_sum(&sum, n_max).unwrap();
        assert!(
            (back[0] - n_max as f32).abs() <= n_max as f32 * 1e-6 + q.error_bound(n_max) as f32
        );
    }
}

#[test]
fn stochastic_rounding_is_unbiased() {
    let q = Quantizer::new(1.0, 1 << 22).unwrap(); // coarse: 1023 levels
    let x = 0.3337f32;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let v = (f64::from(x) + 1.0) * q.scale();
    let trials = 20_000;
    let mean: f64 = (0..trials)
        .map(|_| f64::from(q.quantize(&[x], &mut rng).unwrap()[0]))
        .sum::<f64>()
        / f64::from(trials);
    assert!((mean - v).abs() < 0.02, "mean {mean} vs {v}");
}

#[test]
fn bad_parameters_name_the_value_to_change() {
    let name = |e: SecAggError| match e {
        SecAggError::InvalidParameter { name, .. } => name,
        other => panic!("unexpected {other}"),
    };
    assert_eq!(name(Quantizer::new(0.0, 10).unwrap_err()), "clip");
    assert_eq!(name(Quantizer::new(f32::NAN, 10).unwrap_err()), "clip");
    assert_eq!(name(Quantizer::new(1.0, 0).unwrap_err()), "n_max");
    let e = Quantizer::new(1.0, u32::MAX / 100).unwrap_err();
    assert!(e.to_string().contains("lower `n_max`"), "{e}");
    assert_eq!(
        name(Quantizer::for_weighted_mean(1.0, -1.0, 10).unwrap_err()),
        "max_weight"
    );

    let ids: Vec<ClientId> = (1..=20).map(ClientId).collect();
    let small = Quantizer::new(1.0, 10).unwrap();
    let e = Config::new(ids.clone(), 11, 5, small)
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("n_max >= 20"), "{e}");
    assert_eq!(name(e), "quantizer.n_max");
    let q = Quantizer::new(1.0, 20).unwrap();
    assert_eq!(
        name(
            Config::new(ids.clone(), 1, 5, q.clone())
                .validate()
                .unwrap_err()
        ),
        "threshold"
    );
    assert_eq!(
        name(
            Config::new(ids.clone(), 21, 5, q.clone())
                .validate()
                .unwrap_err()
        ),
        "threshold"
    );
    assert_eq!(
        name(
            Config::new(ids.clone(), 11, 0, q.clone())
                .validate()
                .unwrap_err()
        ),
        "vector_len"
    );
    assert_eq!(
        name(
            Config::new(vec![ClientId(1)], 2, 5, q.clone())
                .validate()
                .unwrap_err()
        ),
        "clients"
    );
    assert_eq!(
        name(
            Config::new(vec![ClientId(1), ClientId(1)], 2, 5, q.clone())
                .validate()
                .unwrap_err()
        ),
        "clients"
    );
    let plus = |k| {
        Config::new(ids.clone(), 3, 5, q.clone()).with_mode(Mode::SecAggPlus { k, graph_seed: 1 })
    };
    assert_eq!(name(plus(0).validate().unwrap_err()), "k");
    assert_eq!(name(plus(20).validate().unwrap_err()), "k");
    let odd: Vec<ClientId> = (1..=21).map(ClientId).collect();
    let e = Config::new(odd, 2, 5, Quantizer::new(1.0, 21).unwrap())
        .with_mode(Mode::SecAggPlus {
            k: 5,
            graph_seed: 1,
        })
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("use k = 4 or 6"), "{e}");
    let e = plus(4).with_mode(Mode::SecAggPlus {
        k: 4,
        graph_seed: 1,
    });
    let e = Config { threshold: 6, ..e }.validate().unwrap_err();
    assert!(e.to_string().contains("k + 1 = 5"), "{e}");
    assert!(plus(4).validate().is_ok());
}

#[test]
fn non_finite_inputs_are_rejected_by_index() {
    let q = Quantizer::new(1.0, 4).unwrap();
    let e = q
        .quantize(&[0.0, 1.0, f32::NAN], &mut ChaCha20Rng::seed_from_u64(0))
        .unwrap_err();
    assert!(matches!(e, SecAggError::NonFiniteInput { index: 2 }));
    assert!(matches!(
        q.check_quantized(&[0, q.levels() + 1]),
        Err(SecAggError::QuantizedOutOfRange { index: 1, .. })
    ));
    assert!(
        q.dequantize_sum(&[0], 5).is_err(),
        "more summands than n_max"
    );
    assert_eq!(q.clipped_count(&[0.5, 1.5, -2.0]), 2);
}

#[test]
fn weighted_mean_round_trip() {
    let q = Quantizer::for_weighted_mean(1.0, 1000.0, 8).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let updates = [
        (vec![0.5f32, -0.25], 100.0f32),
        (vec![-0.5, 0.75], 300.0),
        (vec![2.0, 0.0], 600.0),
    ];
    let mut sum = vec![0u32; 3];
    for (u, w) in &updates {
        let enc = q.encode_weighted(u, *w).unwrap();
        for (s, v) in sum.iter_mut().zip(q.quantize(&enc, &mut rng).unwrap()) {
            *s = s.wrapping_add(v);
        }
    }
    let mean = q
        .decode_weighted_mean(&q.dequantize_sum(&sum, 3).unwrap())
        .unwrap();
    // (0.5*100 - 0.5*300 + 1.0*600) / 1000 (2.0 clipped to 1.0), (-25 + 225 + 0) / 1000
    assert!((mean[0] - 0.5).abs() < 1e-4, "{mean:?}");
    assert!((mean[1] - 0.2).abs() < 1e-4, "{mean:?}");
    let e = q.encode_weighted(&[0.0], 1001.0).unwrap_err();
    assert!(e.to_string().contains("raise `max_weight`"), "{e}");
    assert!(
        Quantizer::new(1.0, 3)
            .unwrap()
            .encode_weighted(&[0.0], 1.0)
            .is_err()
    );
}

#[test]
fn quantizer_serde_revalidates() {
    let q = Quantizer::new(2.5, 100).unwrap();
    let json = serde_json::to_string(&q).unwrap();
    let back: Quantizer = serde_json::from_str(&json).unwrap();
    assert_eq!(back, q);
    assert!(
        serde_json::from_str::<Quantizer>(r#"{"clip":-1.0,"n_max":3,"max_weight":null}"#).is_err()
    );
}

/// Known answer: seeded stochastic rounding of a fixed vector.
#[test]
fn quantize_known_answer() {
    let q = Quantizer::new(1.0, 100).unwrap();
    assert_eq!(q.levels(), 42_949_672);
    let x: Vec<f32> = (0..64).map(|i| (i as f32 / 10.0).sin()).collect();
    let out = q
        .quantize(&x, &mut ChaCha20Rng::from_seed([1; 32]))
        .unwrap();
    assert_eq!(out[0], 21_474_836);
    let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest,
        "6298e040bc2c8832cb536917d42fc3b66fdb8ebfc9dc24364ee164dba37a7f24"
    );
}
