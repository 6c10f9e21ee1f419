//! Shamir sharing: property tests, refusals, and why not `sharks` (its coefficient bias),
//! plus a cross-check that `sharks` recovers our GF(2^8) shares to the same secret.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use flspec::secagg::SecAggError;
use flspec::secagg::shamir::{Recoverer, SecretShare, ShamirField, recover, split};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn copy(s: &SecretShare) -> SecretShare {
    SecretShare::new(s.x(), s.y().to_vec())
}

fn field_strategy() -> impl Strategy<Value = ShamirField> {
    prop_oneof![Just(ShamirField::Gf256), Just(ShamirField::Mersenne61)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any t of n shares rebuild the secret, in any order.
    #[test]
    fn any_t_shares_rebuild(
        field in field_strategy(),
        secret in any::<[u8; 32]>(),
        n in 2usize..=40,
        t_frac in 0.0f64..1.0,
        seed in any::<u64>(),
    ) {
        let t = 2 + ((n - 1) as f64 * t_frac) as usize;
        let t = t.min(n);
        let mut r = rng(seed);
        let shares = split(field, &secret, t, n, &mut r).unwrap();
        prop_assert_eq!(shares.len(), n);
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut r);
        let chosen: Vec<SecretShare> = idx[..t].iter().map(|&i| copy(&shares[i])).collect();
        prop_assert_eq!(*recover(field, &chosen, t).unwrap(), secret);
        // More than t shares also work.
        let all: Vec<SecretShare> = shares.iter().map(copy).collect();
        prop_assert_eq!(*recover(field, &all, t).unwrap(), secret);
    }

    /// t - 1 shares do not rebuild: recovery refuses, and interpolating them as if the
    /// threshold were t - 1 gives a different secret (except with negligible probability).
    #[test]
    fn t_minus_one_shares_do_not_rebuild(
        field in field_strategy(),
        secret in any::<[u8; 32]>(),
        n in 3usize..=30,
        seed in any::<u64>(),
    ) {
        let t = 3 + (seed as usize % (n - 2));
        let t = t.min(n);
        let shares = split(field, &secret, t, n, &mut rng(seed)).unwrap();
        let few: Vec<SecretShare> = shares[..t - 1].iter().map(copy).collect();
        let refused = matches!(recover(field, &few, t), Err(SecAggError::Shamir { .. }));
        prop_assert!(refused);
        let wrong = recover(field, &few, t - 1).unwrap();
        prop_assert_ne!(*wrong, secret);
    }
}

#[test]
fn parameters_are_enforced() {
    let s = [1u8; 32];
    for field in [ShamirField::Gf256, ShamirField::Mersenne61] {
        assert!(split(field, &s, 0, 5, &mut rng(1)).is_err(), "t = 0");
        assert!(split(field, &s, 1, 5, &mut rng(1)).is_err(), "t = 1");
        assert!(split(field, &s, 6, 5, &mut rng(1)).is_err(), "t > n");
        assert!(split(field, &s, 2, 2, &mut rng(1)).is_ok());
    }
    assert!(
        split(ShamirField::Gf256, &s, 2, 256, &mut rng(1)).is_err(),
        "GF(2^8) has 255 points"
    );
    assert!(split(ShamirField::Gf256, &s, 2, 255, &mut rng(1)).is_ok());
    assert!(split(ShamirField::Mersenne61, &s, 2, 1000, &mut rng(1)).is_ok());
}

#[test]
fn duplicate_and_unknown_indices_are_rejected() {
    let s = [9u8; 32];
    for field in [ShamirField::Gf256, ShamirField::Mersenne61] {
        let shares = split(field, &s, 3, 5, &mut rng(2)).unwrap();
        let dup = vec![copy(&shares[0]), copy(&shares[1]), copy(&shares[1])];
        let e = recover(field, &dup, 3).unwrap_err();
        assert!(e.to_string().contains("duplicate share index 2"), "{e}");
        let zero = vec![
            copy(&shares[0]),
            copy(&shares[1]),
            SecretShare::new(0, shares[2].y().to_vec()),
        ];
        assert!(
            recover(field, &zero, 3)
                .unwrap_err()
                .to_string()
                .contains("unknown share index 0")
        );
        let short = vec![
            copy(&shares[0]),
            copy(&shares[1]),
            SecretShare::new(3, vec![0; 3]),
        ];
        assert!(recover(field, &short, 3).is_err());
        assert!(
            recover(field, &shares[..2].iter().map(copy).collect::<Vec<_>>(), 1).is_err(),
            "t = 1"
        );
    }
    let big = vec![
        SecretShare::new(1, vec![0; 32]),
        SecretShare::new(256, vec![0; 32]),
    ];
    assert!(
        recover(ShamirField::Gf256, &big, 2)
            .unwrap_err()
            .to_string()
            .contains("unknown share index 256")
    );
}

#[test]
fn recoverer_caches_and_agrees() {
    let field = ShamirField::Mersenne61;
    let mut rec = Recoverer::new(field, 4);
    for i in 0..10u8 {
        let secret = [i; 32];
        let shares = split(field, &secret, 4, 300, &mut rng(u64::from(i))).unwrap();
        let chosen: Vec<SecretShare> = shares[100..104].iter().map(copy).collect();
        assert_eq!(*rec.recover(&chosen).unwrap(), secret);
    }
}

#[test]
fn shares_do_not_print() {
    let shares = split(ShamirField::Gf256, &[0xab; 32], 2, 2, &mut rng(3)).unwrap();
    let y_hex: String = shares[0].y().iter().map(|b| format!("{b:02x}")).collect();
    let dbg = format!("{:?}", shares[0]);
    assert!(!dbg.contains(&y_hex) && dbg.contains("redacted"), "{dbg}");
}

/// Why not `sharks` 0.5: its dealer draws non-constant coefficients from 1..=255, never zero.
/// For t = 2 a share is y = s + a*x with a != 0, so y != s in every byte: one share rules a
/// candidate value out for every byte of the secret. With uniform coefficients (ours), y = s
/// happens with probability 1/256 per byte.
#[test]
fn sharks_share_never_equals_secret_byte() {
    use sharks::{Share, Sharks};
    let secret = [0x5au8; 64];
    let mut r = rng(4);
    let mut sharks_equal = 0usize;
    let mut ours_equal = 0usize;
    let trials = 200;
    for _ in 0..trials {
        let share: Share = Sharks(2).dealer_rng(&secret, &mut r).next().unwrap();
        let bytes = Vec::from(&share);
        sharks_equal += bytes[1..].iter().filter(|&&y| y == 0x5a).count();
        let ours = split(ShamirField::Gf256, &[0x5a; 32], 2, 1, &mut r);
        assert!(ours.is_err(), "t > n is refused");
        let ours = split(ShamirField::Gf256, &[0x5a; 32], 2, 2, &mut r).unwrap();
        ours_equal += ours[0].y().iter().filter(|&&y| y == 0x5a).count();
    }
    // sharks: 200 * 64 bytes, never equal. Ours: 200 * 32 bytes, about 25 expected.
    assert_eq!(
        sharks_equal, 0,
        "sharks leaks: a share byte never equals the secret byte"
    );
    assert!(
        ours_equal > 5,
        "uniform coefficients: y == s about 1/256 of the time, got {ours_equal}"
    );
    // And sharks accepts what it should refuse.
    assert!(
        Sharks(1).dealer_rng(&secret, &mut r).next().is_some(),
        "threshold 1 accepted"
    );
    let shares: Vec<Share> = Sharks(2).dealer_rng(&secret, &mut r).take(2).collect();
    let dup = [shares[0].clone(), shares[0].clone()];
    assert!(
        Sharks(1).recover(&dup).map(|s| s != secret).unwrap_or(true),
        "duplicates give a wrong secret"
    );
}

/// Our GF(2^8) uses sharks' polynomial (0x11d): sharks recovers our shares to our secret.
#[test]
fn sharks_recovers_our_gf256_shares() {
    use sharks::{Share, Sharks};
    let mut r = rng(5);
    for t in [2usize, 3, 7, 20] {
        let secret: [u8; 32] = core::array::from_fn(|i| (i * 37 + t) as u8);
        let ours = split(ShamirField::Gf256, &secret, t, 25, &mut r).unwrap();
        let theirs: Vec<Share> = ours[3..3 + t]
            .iter()
            .map(|s| {
                let mut b = vec![s.x() as u8];
                b.extend_from_slice(s.y());
                Share::try_from(b.as_slice()).unwrap()
            })
            .collect();
        assert_eq!(
            Sharks(t as u8).recover(&theirs).unwrap(),
            secret.to_vec(),
            "t = {t}"
        );
    }
}
