//! `flspec::fl::sampling`: Flower's sample sizes, determinism per seed and round, online only,
//! and every name picked eventually.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use flspec::fl::sampling::{ClientSampler, SamplingError};
use proptest::prelude::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("site-{i:02}")).collect()
}

#[test]
fn sizes_follow_flower_num_fit_clients() {
    // Flower: max(int(available * fraction_fit), min_fit_clients).
    for (fraction, min, available, want) in [
        (1.0, 2, 10, 10),
        (0.3, 2, 10, 3),
        (0.1, 2, 10, 2),
        (0.25, 1, 10, 2),
        (0.0, 3, 10, 3),
        (0.5, 0, 1, 0),
        (0.99, 1, 100, 99),
    ] {
        let s = ClientSampler::new(0)
            .fraction(fraction)
            .min_clients(min)
            .min_available(0);
        assert_eq!(
            s.sample_size(available),
            want,
            "{fraction} {min} {available}"
        );
        let names = names(available);
        assert_eq!(s.sample(0, &names).unwrap().len(), want);
    }
}

#[test]
fn too_few_online_is_an_error_that_says_so() {
    let s = ClientSampler::new(0)
        .fraction(0.5)
        .min_clients(2)
        .min_available(4);
    let err = s.sample(0, &names(3)).unwrap_err();
    assert_eq!(
        err,
        SamplingError::NotEnoughAvailable {
            available: 3,
            needed: 4,
            min_available: 4,
            sample_size: 2
        }
    );
    assert!(
        err.to_string()
            .contains("3 collaborators online, the round needs 4"),
        "{err}"
    );
    // min_clients above what is online (Flower returns an empty sample).
    let err = ClientSampler::new(0)
        .min_clients(5)
        .sample(0, &names(4))
        .unwrap_err();
    assert!(matches!(
        err,
        SamplingError::NotEnoughAvailable {
            available: 4,
            needed: 5,
            ..
        }
    ));
    // Duplicates count once.
    let err = ClientSampler::new(0)
        .min_available(3)
        .sample(0, &["a", "a", "b"])
        .unwrap_err();
    assert!(matches!(
        err,
        SamplingError::NotEnoughAvailable { available: 2, .. }
    ));
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = ClientSampler::new(0)
            .fraction(bad)
            .sample(0, &names(4))
            .unwrap_err();
        assert!(matches!(err, SamplingError::Fraction(_)), "{bad}");
    }
}

#[test]
fn rounds_and_seeds_change_the_sample() {
    let all = names(20);
    let s = ClientSampler::new(9).fraction(0.25);
    let samples: BTreeSet<Vec<&str>> = (0..10).map(|r| s.sample(r, &all).unwrap()).collect();
    assert!(
        samples.len() >= 9,
        "rounds gave {} distinct samples of 10",
        samples.len()
    );
    let other = ClientSampler::new(10).fraction(0.25);
    let differs = (0..10).any(|r| s.sample(r, &all).unwrap() != other.sample(r, &all).unwrap());
    assert!(differs);
}

#[test]
fn every_name_is_eventually_picked_about_evenly() {
    let all = names(30);
    let s = ClientSampler::new(3).fraction(0.1).min_clients(1);
    let mut count = vec![0usize; 30];
    for round in 0..3000 {
        for name in s.sample(round, &all).unwrap() {
            count[all.iter().position(|n| n == name).unwrap()] += 1;
        }
    }
    // 3 of 30 per round: each about 300 times.
    assert!(count.iter().all(|&c| (220..380).contains(&c)), "{count:?}");
}

#[test]
fn sample_online_filters() {
    let all = names(10);
    let s = ClientSampler::new(1).fraction(0.5);
    for round in 0..50 {
        let picked = s
            .sample_online(round, &all, |n| !n.ends_with('3') && !n.ends_with('7'))
            .unwrap();
        assert_eq!(picked.len(), 4);
        assert!(
            picked
                .iter()
                .all(|n| !n.ends_with('3') && !n.ends_with('7')),
            "{picked:?}"
        );
        let online: Vec<&str> = all
            .iter()
            .map(String::as_str)
            .filter(|n| !n.ends_with('3') && !n.ends_with('7'))
            .collect();
        assert_eq!(picked, s.sample(round, &online).unwrap());
    }
}

proptest! {
    #[test]
    fn picks_only_online_names_deterministically(
        online in proptest::collection::btree_set(0usize..60, 2..40),
        fraction in 0.0f64..=1.0,
        min in 0usize..3,
        seed in any::<u64>(),
        round in any::<u64>(),
    ) {
        let all = names(60);
        let online: Vec<&str> = online.iter().map(|&i| all[i].as_str()).collect();
        let s = ClientSampler::new(seed).fraction(fraction).min_clients(min).min_available(2);
        let picked = s.sample(round, &online).unwrap();
        prop_assert_eq!(picked.len(), s.sample_size(online.len()));
        prop_assert!(picked.iter().all(|p| online.contains(p)));
        prop_assert!(picked.windows(2).all(|w| w[0] < w[1]), "not sorted or not distinct");
        // The order of the online list does not matter.
        let mut reversed = online.clone();
        reversed.reverse();
        prop_assert_eq!(&picked, &s.sample(round, &reversed).unwrap());
    }
}

#[test]
fn the_toolkits_errors_print_their_message_in_debug() {
    let sampling = flspec::fl::sampling::ClientSampler::new(1)
        .sample(0, &["only"])
        .expect_err("one online name is fewer than the default minimum of 2");
    assert_eq!(format!("{sampling:?}"), sampling.to_string());
    let partition = "nonsense"
        .parse::<flspec::fl::partition::Partitioner>()
        .expect_err("an unknown spec is refused");
    assert_eq!(format!("{partition:?}"), partition.to_string());
    let aggregate =
        flspec::fl::aggregate::mean_into(&[], &mut []).expect_err("no updates is an error");
    assert_eq!(format!("{aggregate:?}"), aggregate.to_string());
}
