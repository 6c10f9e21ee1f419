//! Whole rounds: for random n, thresholds and dropouts at every stage, the unmasked sum is
//! exactly the plain sum of the survivors' quantized inputs, or the round aborts (never a
//! partial result). Full graph and SecAgg+.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};

use flspec::secagg::{
    ClientId, Config, DropoutPlan, Input, Mode, Quantizer, SecAggError, SimulationOutcome, Stage,
    simulate_round,
};
use proptest::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const STAGES: [Stage; 4] = [
    Stage::AdvertiseKeys,
    Stage::ShareKeys,
    Stage::MaskedInputCollection,
    Stage::Unmasking,
];

struct Case {
    config: Config,
    inputs: BTreeMap<ClientId, Vec<u32>>,
    plan: DropoutPlan,
}

fn make_case(n: usize, plus: bool, t_frac: f64, drop_rate: f64, d: usize, seed: u64) -> Case {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    // Sparse, shuffled ids: ids are labels, not Shamir points.
    let ids: Vec<ClientId> = (0..n as u32).map(|i| ClientId(i * 7 + 3)).collect();
    let mode = if plus && n > 3 {
        Mode::SecAggPlus {
            k: Mode::secagg_plus_degree(n),
            graph_seed: seed,
        }
    } else {
        Mode::Full
    };
    let q = Quantizer::new(1.0, n as u32 + r.gen_range(0..5)).unwrap();
    let probe = Config::new(ids.clone(), 2, d, q.clone()).with_mode(mode.clone());
    let hood = probe.neighbourhood_size();
    // Thresholds from the smallest safe one (more than half of each group) up to the group.
    let safe = probe.min_safe_threshold() as usize;
    let t = (safe + ((hood - safe + 1) as f64 * t_frac) as usize).min(hood) as u32;
    let config = Config {
        threshold: t,
        round: seed % 1000,
        ..probe
    };
    config.validate().unwrap();
    let inputs = ids
        .iter()
        .map(|&id| (id, (0..d).map(|_| r.gen_range(0..=q.levels())).collect()))
        .collect();
    let mut plan = DropoutPlan::none();
    for &id in &ids {
        if r.gen_bool(drop_rate) {
            plan = plan.drop_before(id, STAGES[r.gen_range(0..4)]);
        }
    }
    Case {
        config,
        inputs,
        plan,
    }
}

fn run(case: &Case, seed: u64) -> SimulationOutcome {
    let inputs = case
        .inputs
        .iter()
        .map(|(&id, v)| (id, Input::Quantized(v.clone())))
        .collect();
    simulate_round(
        &case.config,
        &inputs,
        &case.plan,
        &mut ChaCha20Rng::seed_from_u64(seed),
    )
    .unwrap()
}

/// Who sends the message of each stage, by the plan alone.
fn senders(case: &Case, stage: Stage) -> BTreeSet<ClientId> {
    case.config
        .clients
        .iter()
        .copied()
        .filter(|&id| case.plan.stage_of(id).is_none_or(|d| stage < d))
        .collect()
}

fn plain_sum(case: &Case, who: &[ClientId]) -> Vec<u32> {
    let mut sum = vec![0u32; case.config.vector_len];
    for id in who {
        for (s, v) in sum.iter_mut().zip(&case.inputs[id]) {
            *s = s.wrapping_add(*v);
        }
    }
    sum
}

fn check(case: &Case, out: &SimulationOutcome) -> Result<(), TestCaseError> {
    let t = case.config.threshold as usize;
    match &out.result {
        Ok(sum) => {
            prop_assert_eq!(&sum.sum, &plain_sum(case, &sum.contributors));
            let expected: BTreeSet<ClientId> = senders(case, Stage::MaskedInputCollection)
                .into_iter()
                .filter(|id| !out.client_errors.contains_key(id))
                .collect();
            prop_assert_eq!(
                sum.contributors.iter().copied().collect::<BTreeSet<_>>(),
                expected
            );
            prop_assert!(sum.contributors.len() >= t);
            let back = case
                .config
                .quantizer
                .dequantize_sum(&sum.sum, sum.contributors.len() as u32)
                .unwrap();
            prop_assert_eq!(&sum.values, &back);
        }
        Err(SecAggError::TooFewSurvivors {
            stage,
            survived,
            threshold,
        }) => {
            prop_assert_eq!(*threshold, t);
            prop_assert!(*survived < t);
            if case.config.mode == Mode::Full && out.client_errors.is_empty() {
                prop_assert_eq!(*survived, senders(case, *stage).len());
            }
        }
        Err(SecAggError::TooFewShareHolders {
            survived,
            threshold,
            ..
        }) => {
            prop_assert!(
                matches!(case.config.mode, Mode::SecAggPlus { .. }),
                "full graph: global count decides"
            );
            prop_assert!(survived < threshold);
        }
        Err(e) => prop_assert!(false, "unexpected error: {}", e),
    }
    if case.config.mode == Mode::Full {
        // On the full graph the round succeeds iff at least t clients reach Unmasking.
        prop_assert!(out.client_errors.is_empty(), "{:?}", out.client_errors);
        prop_assert_eq!(
            out.result.is_ok(),
            senders(case, Stage::Unmasking).len() >= t
        );
    }
    Ok(())
}

proptest! {
    // Modest case counts: a debug-build X25519 takes about 0.4 ms, and a full-graph round of
    // n clients needs about 2 n^2 of them.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn full_graph_sum_is_exact(
        n in 2usize..=60, t_frac in 0.0f64..1.0, drop_rate in 0.0f64..0.5, d in 1usize..48, seed in any::<u64>()
    ) {
        let case = make_case(n, false, t_frac, drop_rate, d, seed);
        check(&case, &run(&case, seed))?;
    }

    #[test]
    fn secagg_plus_sum_is_exact(
        n in 4usize..=60, t_frac in 0.0f64..0.6, drop_rate in 0.0f64..0.3, d in 1usize..48, seed in any::<u64>()
    ) {
        let case = make_case(n, true, t_frac, drop_rate, d, seed);
        check(&case, &run(&case, seed))?;
    }
}

#[test]
fn no_dropouts_always_succeed() {
    for (n, plus) in [(2, false), (5, false), (9, true), (40, true), (31, true)] {
        let case = make_case(n, plus, 0.5, 0.0, 17, n as u64);
        let out = run(&case, 1);
        let sum = out.result.as_ref().unwrap();
        assert_eq!(sum.contributors.len(), n);
        assert_eq!(sum.sum, plain_sum(&case, &sum.contributors));
    }
}

#[test]
fn below_threshold_aborts_with_counts() {
    let ids: Vec<ClientId> = (1..=5).map(ClientId).collect();
    let config = Config::new(ids.clone(), 3, 4, Quantizer::new(1.0, 5).unwrap());
    let inputs: BTreeMap<_, _> = ids
        .iter()
        .map(|&id| (id, Input::Float(vec![0.1; 4])))
        .collect();
    for (stage, expected_stage) in [
        (Stage::AdvertiseKeys, Stage::AdvertiseKeys),
        (Stage::ShareKeys, Stage::ShareKeys),
        (Stage::MaskedInputCollection, Stage::MaskedInputCollection),
        (Stage::Unmasking, Stage::Unmasking),
    ] {
        let plan = DropoutPlan::none()
            .drop_before(ClientId(1), stage)
            .drop_before(ClientId(2), stage)
            .drop_before(ClientId(3), stage);
        let out =
            simulate_round(&config, &inputs, &plan, &mut ChaCha20Rng::seed_from_u64(0)).unwrap();
        let e = out.result.unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, SecAggError::TooFewSurvivors { stage: s, survived: 2, threshold: 3 } if s == expected_stage),
            "{msg}"
        );
        assert!(
            msg.contains("2 collaborator(s) survived, below the threshold 3"),
            "{msg}"
        );
    }
}

#[test]
fn secagg_plus_neighbourhood_loss_aborts() {
    // n = 12, k = 2: each client shares with 2 ring neighbours, t = 3 = k + 1. If one
    // survivor's neighbour drops before unmasking, its b_u has only 2 holders left.
    let ids: Vec<ClientId> = (1..=12).map(ClientId).collect();
    let config = Config::new(ids.clone(), 3, 4, Quantizer::new(1.0, 12).unwrap()).with_mode(
        Mode::SecAggPlus {
            k: 2,
            graph_seed: 5,
        },
    );
    let inputs: BTreeMap<_, _> = ids
        .iter()
        .map(|&id| (id, Input::Float(vec![0.1; 4])))
        .collect();
    let plan = DropoutPlan::none().drop_before(ClientId(1), Stage::Unmasking);
    let out = simulate_round(&config, &inputs, &plan, &mut ChaCha20Rng::seed_from_u64(0)).unwrap();
    let e = out.result.unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::TooFewShareHolders {
                survived: 2,
                threshold: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn float_inputs_average_within_the_bound() {
    let ids: Vec<ClientId> = (1..=10).map(ClientId).collect();
    let q = Quantizer::new(2.0, 10).unwrap();
    let config = Config::new(ids.clone(), 6, 100, q.clone()).with_mode(Mode::SecAggPlus {
        k: 6,
        graph_seed: 1,
    });
    let x = |id: ClientId| -> Vec<f32> {
        (0..100)
            .map(|j| ((id.0 * 100 + j) as f32 * 0.37).sin() * 1.5)
            .collect()
    };
    let inputs: BTreeMap<_, _> = ids.iter().map(|&id| (id, Input::Float(x(id)))).collect();
    let plan = DropoutPlan::none().drop_before(ClientId(4), Stage::MaskedInputCollection);
    let out = simulate_round(&config, &inputs, &plan, &mut ChaCha20Rng::seed_from_u64(11)).unwrap();
    let sum = out.result.unwrap();
    assert_eq!(sum.contributors.len(), 9);
    for j in 0..100 {
        let exact: f64 = sum.contributors.iter().map(|&id| f64::from(x(id)[j])).sum();
        assert!((f64::from(sum.values[j]) - exact).abs() <= q.error_bound(9) + 1e-5);
    }
    let mean = sum.mean();
    assert!((mean[0] - sum.values[0] / 9.0).abs() < 1e-6);
}

/// Slow in a debug build (about 180,000 X25519 operations): run with
/// `cargo test --release -p flspec --test secagg_protocol -- --ignored`.
#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored"]
fn large_full_graph_uses_the_prime_field() {
    // 300 clients: more than 255 share holders, so Shamir runs over GF(2^61 - 1).
    let ids: Vec<ClientId> = (1..=300).map(ClientId).collect();
    let config = Config::new(ids.clone(), 151, 3, Quantizer::new(1.0, 300).unwrap());
    assert_eq!(
        config.shamir_field(),
        flspec::secagg::ShamirField::Mersenne61
    );
    let inputs: BTreeMap<_, _> = ids
        .iter()
        .map(|&id| (id, Input::Quantized(vec![id.0, 1, 0])))
        .collect();
    let plan = DropoutPlan::none()
        .drop_before(ClientId(7), Stage::MaskedInputCollection)
        .drop_before(ClientId(9), Stage::Unmasking);
    let out = simulate_round(&config, &inputs, &plan, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
    let sum = out.result.unwrap();
    assert_eq!(sum.sum, vec![300 * 301 / 2 - 7, 299, 0]);
}
