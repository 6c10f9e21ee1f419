//! L2 clipping and KLS21's integer-domain bound after conditional randomized rounding.
#![allow(clippy::unwrap_used)]

use flspec::dp::DpError;
use flspec::dp::clip::{IntegerBound, clip_l2_f32, clip_l2_f64, l2_norm};
use flspec::secagg::rng::SecretRng;
use proptest::prelude::*;

proptest! {
    #[test]
    fn clipped_norm_never_exceeds_c(
        x in prop::collection::vec(-1e30f32..1e30f32, 1..200),
        clip in 1e-3f64..1e3,
    ) {
        let before = x.clone();
        let mut y = x;
        let r = clip_l2_f32(&mut y, clip).unwrap();
        let after = l2_norm(&y).unwrap();
        prop_assert!(after <= clip * (1.0 + 1e-6), "{after} > {clip}");
        if r.norm <= clip {
            prop_assert_eq!(y, before);
            prop_assert_eq!(r.scale, 1.0);
        } else {
            prop_assert!(r.clipped());
            prop_assert!((after / clip - 1.0).abs() < 1e-6, "scaled to exactly C");
        }
    }

    #[test]
    fn clipped_f64_norm_never_exceeds_c(
        x in prop::collection::vec(-1e300f64..1e300, 1..50),
        clip in 1e-6f64..1e6,
    ) {
        let mut y = x;
        clip_l2_f64(&mut y, clip).unwrap();
        prop_assert!(l2_norm(&y).unwrap() <= clip * (1.0 + 1e-12));
    }
}

#[test]
fn known_vector_is_scaled_to_c() {
    let mut x = [3.0f32, 4.0];
    let r = clip_l2_f32(&mut x, 1.0).unwrap();
    assert_eq!((r.norm, r.scale), (5.0, 0.2));
    assert_eq!(x, [0.6, 0.8]);
}

#[test]
fn zero_vector_is_left_alone() {
    let mut x = [0.0f32; 16];
    let r = clip_l2_f32(&mut x, 1.0).unwrap();
    assert_eq!((r.norm, r.scale, r.clipped()), (0.0, 1.0, false));
    assert_eq!(x, [0.0; 16]);
    let mut e: [f32; 0] = [];
    assert_eq!(clip_l2_f32(&mut e, 1.0).unwrap().norm, 0.0);
}

#[test]
fn nan_and_infinity_are_refused_and_nothing_changes() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = [1e10f32, 2.0, bad, 3.0];
        let err = clip_l2_f32(&mut x, 1.0).unwrap_err();
        assert_eq!(err, DpError::NonFinite { index: 2 });
        assert_eq!(x[0], 1e10, "left unchanged");
        assert!(err.to_string().contains("index 2"));
    }
}

#[test]
fn bad_clip_is_refused_by_name() {
    for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        match clip_l2_f32(&mut [1.0], c) {
            Err(DpError::InvalidParameter { name, .. }) => assert_eq!(name, "clip"),
            other => panic!("{c}: {other:?}"),
        }
    }
}

#[test]
fn huge_f64_values_do_not_overflow_the_norm() {
    let mut x = [1e300f64, 1e300];
    let r = clip_l2_f64(&mut x, 1.0).unwrap();
    assert!((r.norm / (2f64.sqrt() * 1e300) - 1.0).abs() < 1e-15);
    assert!((l2_norm(&x).unwrap() - 1.0).abs() < 1e-15);
}

/// (c, beta, dim, bound) from scripts/reference/dp_accounting_reference.py (KLS21's
/// `rounded_l2_norm_bound` in plain Python).
const ROUNDED_L2: &[(f64, f64, usize, f64)] = &[
    (1000.0, 0.6065306597126334, 1000, 1000.6327055360027),
    (10.0, 0.0, 100, 20.0),
    (100.0, 0.001, 10000, 114.26958619128484),
    (5.0, 0.1, 4, 6.235045802376762),
];

#[test]
fn integer_bound_matches_kls21_reference_values() {
    for &(c, beta, dim, want) in ROUNDED_L2 {
        let b = IntegerBound::new(c, dim, beta).unwrap();
        assert!(
            (b.l2() - want).abs() <= 1e-12 * want,
            "{c} {beta} {dim}: {}",
            b.l2()
        );
        assert!(b.l2() <= c + (dim as f64).sqrt());
        assert_eq!(b.l1(), b.l2() * (dim as f64).sqrt().min(b.l2()));
    }
}

#[test]
fn rounding_stays_within_the_bound_and_fails_at_most_beta_of_the_time() {
    // c = 100 in integer units, d = 400, beta = 0.1: one rounding exceeds Δ₂ with
    // probability at most 0.1 (KLS21); count single-try failures over 2000 trials.
    let (c, d, beta) = (100.0, 400, 0.1);
    let bound = IntegerBound::new(c, d, beta).unwrap();
    let mut rng = SecretRng::from_seed_ref(&[3; 32]);
    // A vector of norm exactly c (after clipping) with every coordinate fractional.
    let mut x: Vec<f64> = (0..d)
        .map(|i| if i % 2 == 0 { 5.3 } else { -4.7 })
        .collect();
    assert!(clip_l2_f64(&mut x, c).unwrap().clipped());
    assert!(x.iter().all(|v| v.fract() != 0.0));
    let trials = 2000;
    let mut fails = 0;
    for _ in 0..trials {
        match bound.round(&x, 1, &mut rng) {
            Ok(r) => {
                let n: f64 = r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                assert!(n <= bound.l2());
            }
            Err(DpError::InvalidParameter { name, .. }) => {
                assert_eq!(name, "beta");
                fails += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let rate = fails as f64 / trials as f64;
    eprintln!("single-try failure rate {rate} (beta {beta})");
    let slack = 5.0 * (beta * (1.0 - beta) / trials as f64).sqrt();
    assert!(
        rate <= beta + slack,
        "single-try failure rate {rate} > beta {beta}"
    );
    // With retries it succeeds.
    let r = bound.round(&x, 100, &mut rng).unwrap();
    assert_eq!(r.len(), d);
}

#[test]
fn rounding_refuses_an_unclipped_or_misshapen_update() {
    let bound = IntegerBound::new(10.0, 3, 0.0).unwrap();
    let mut rng = SecretRng::from_seed_ref(&[4; 32]);
    match bound.round(&[20.0, 0.0, 0.0], 10, &mut rng) {
        Err(DpError::InvalidParameter { name, .. }) => assert_eq!(name, "clip"),
        other => panic!("{other:?}"),
    }
    match bound.round(&[1.0, 0.0], 10, &mut rng) {
        Err(DpError::InvalidParameter { name, .. }) => assert_eq!(name, "dim"),
        other => panic!("{other:?}"),
    }
    // beta = 0: the bound c + sqrt(d) always holds, one try suffices.
    for _ in 0..100 {
        bound.round(&[5.5, -5.5, 5.5], 1, &mut rng).unwrap();
    }
}

#[test]
fn bad_integer_bound_parameters_are_refused_by_name() {
    let name = |r: Result<IntegerBound, DpError>| match r {
        Err(DpError::InvalidParameter { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    assert_eq!(name(IntegerBound::new(0.0, 3, 0.1)), "clip");
    assert_eq!(name(IntegerBound::new(1.0, 0, 0.1)), "dim");
    assert_eq!(name(IntegerBound::new(1.0, 3, 1.0)), "beta");
    assert_eq!(name(IntegerBound::new(1.0, 3, -0.1)), "beta");
}

#[test]
fn an_f32_clipped_update_rounds_without_complaint() {
    // clip_l2_f32 leaves the norm up to 2^-23 over C (f32 rounding); rounding must accept
    // that, and the integer result still meets the bound exactly.
    let gamma = 1.0 / 1024.0;
    let mut update = [0.5f32, -2.0, 0.25, 1.0];
    clip_l2_f32(&mut update, 1.0).unwrap();
    let scaled: Vec<f64> = update.iter().map(|v| f64::from(*v) / gamma).collect();
    assert!(
        l2_norm(&scaled).unwrap() > 1024.0,
        "this vector lands just over C in f32"
    );
    let bound = IntegerBound::new(1024.0, 4, (-0.5f64).exp()).unwrap();
    let mut rng = SecretRng::from_seed_ref(&[5; 32]);
    let r = bound.round(&scaled, 100, &mut rng).unwrap();
    let sq: i64 = r.iter().map(|v| v * v).sum();
    assert!((sq as f64).sqrt() <= bound.l2());
}
