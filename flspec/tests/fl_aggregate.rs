//! `flspec::fl::aggregate` against Flower's own implementations, plus property tests.
//!
//! The consts in `flower` were printed once by
//! `/work/main/.venv-baselines/flower/bin/python scripts/reference/flower_aggregate.py`
//! (flwr 1.42.0, numpy 2.4.6): inputs are 7 updates of length 5 from
//! `numpy.random.default_rng(20261130)` (f32 normals, the last shifted by +50 as a far-away
//! Byzantine update) with weights 10, 20, ..., 70; outputs are Flower's `aggregate`,
//! `aggregate_median`, `aggregate_trimmed_avg(0.2)`, `aggregate_krum(f=2, to_keep=0|3)`,
//! `aggregate_bulyan(f=1, aggregate_krum, to_keep=0)` (also on the updates in lexicographic
//! order, see `bulyan_matches_flower_up_to_tie_breaking`), and 3 rounds of `FedAdam`, `FedYogi`,
//! `FedAdagrad` (defaults) and `FedAvgM(server_learning_rate=0.5, server_momentum=0.9)` from
//! `INITIAL`, where round r's results are the first 6 updates plus 0.1·r with their weights.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use flspec::fl::aggregate::*;
use proptest::prelude::*;

#[allow(clippy::excessive_precision, clippy::approx_constant, dead_code)]
mod flower {
    // flwr 1.42.0, numpy 2.4.6
    pub const UPDATES: [[f32; 5]; 7] = [
        [
            -0.33319079875946045,
            -1.0526431798934937,
            -1.796259880065918,
            0.0655747503042221,
            -0.5863723754882812,
        ],
        [
            -0.23280811309814453,
            0.04557528346776962,
            0.6739180684089661,
            -0.5835244655609131,
            0.5308712124824524,
        ],
        [
            -0.42343780398368835,
            -0.8328889012336731,
            2.062026262283325,
            -0.08764111995697021,
            -0.787680983543396,
        ],
        [
            0.992752730846405,
            -1.5415562391281128,
            -0.9103514552116394,
            0.4881770610809326,
            -0.3218379616737366,
        ],
        [
            0.18152518570423126,
            2.3560855388641357,
            1.2470585107803345,
            -2.021857500076294,
            -0.6621726751327515,
        ],
        [
            -0.665775716304779,
            -0.14860127866268158,
            -0.737186074256897,
            -1.6479567289352417,
            0.7685474157333374,
        ],
        [
            50.46478271484375,
            51.16333770751953,
            47.116451263427734,
            50.201480865478516,
            49.449100494384766,
        ],
    ];
    pub const WEIGHTS: [f64; 7] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0];
    pub const WEIGHTED_MEAN: &[f64] = &[
        12.573868751525879,
        12.835921287536621,
        11.918699264526367,
        11.857202529907227,
        12.295324325561523,
    ];
    pub const MEDIAN: &[f64] = &[
        -0.23280811309814453,
        -0.14860127866268158,
        0.6739180684089661,
        -0.08764111995697021,
        -0.3218379616737366,
    ];
    pub const TRIMMED_MEAN_0_2: &[f64] = &[
        0.036968231201171875,
        0.0735054761171341,
        0.4670930802822113,
        -0.3530741333961487,
        -0.05419290065765381,
    ];
    pub const KRUM_F2: &[f64] = &[
        -0.23280811309814453,
        0.04557528346776962,
        0.6739180684089661,
        -0.5835244655609131,
        0.5308712124824524,
    ];
    pub const MULTI_KRUM_F2_M3: &[f64] = &[
        -0.532606840133667,
        -0.20590002834796906,
        -0.5412822365760803,
        -1.2210237979888916,
        0.5651838779449463,
    ];
    pub const BULYAN_F1: &[f64] = &[
        -0.32981225848197937,
        -1.1423627138137817,
        1.3276675939559937,
        -0.2018636018037796,
        -0.678741991519928,
    ];
    pub const BULYAN_F1_LEX_ORDER: &[f64] = &[
        -0.32981225848197937,
        -0.6780444979667664,
        -1.1479324102401733,
        -0.2018636018037796,
        -0.5652971267700195,
    ];
    pub const INITIAL: &[f64] = &[
        0.0,
        0.10000000149011612,
        0.20000000298023224,
        0.30000001192092896,
        0.4000000059604645,
    ];
    pub const FEDADAM_3_ROUNDS: &[f64] = &[
        0.07424596296816854,
        0.17424597457933336,
        0.2742459737910171,
        0.22575403308058212,
        0.32575402712011764,
        0.1586641388485978,
        0.25930667710625555,
        0.3597101037030764,
        0.1407432635783576,
        0.2445943742968209,
        0.2482918341351067,
        0.349629801553429,
        0.45047468806858515,
        0.052132935172655534,
        0.17373629537737867,
    ];
    pub const FEDYOGI_3_ROUNDS: &[f64] = &[
        0.008133105002343655,
        0.1085737943649292,
        0.20895959436893463,
        0.2900881767272949,
        0.39025047421455383,
        0.01960250362753868,
        0.12045878171920776,
        0.2212633490562439,
        0.2767949402332306,
        0.37737593054771423,
        0.03344558924436569,
        0.1346237063407898,
        0.23579108715057373,
        0.26141929626464844,
        0.36319828033447266,
    ];
    pub const FEDADAGRAD_3_ROUNDS: &[f64] = &[
        0.10000000149011612,
        0.20000000298023224,
        0.30000001192092896,
        0.20000001788139343,
        0.30000001192092896,
        0.17071065306663513,
        0.27071070671081543,
        0.37071073055267334,
        0.13649512827396393,
        0.2562732696533203,
        0.24706780910491943,
        0.34317752718925476,
        0.439494252204895,
        0.0901714563369751,
        0.24580979347229004,
    ];
    pub const FEDAVGM_3_ROUNDS: &[f64] = &[
        0.02178242988884449,
        0.13005800545215607,
        0.2430577576160431,
        -0.2621123194694519,
        0.2053665965795517,
        0.10227783024311066,
        0.22213919460773468,
        0.3533385694026947,
        -0.9990695118904114,
        -0.017120197415351868,
        0.24536722898483276,
        0.3740006685256958,
        0.5189797878265381,
        -1.4749085903167725,
        -0.10343161970376968,
    ];
}

use flower::*;

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, Flower {w}"
        );
    }
}

fn individual() -> Individual<'static> {
    let mut ups = Individual::new(5);
    for (u, w) in UPDATES.iter().zip(WEIGHTS) {
        ups.push(u, w).unwrap();
    }
    ups
}

fn robust(agg: &dyn RobustAggregator) -> Vec<f32> {
    let mut out = vec![0.0; 5];
    agg.aggregate(&individual(), &mut out).unwrap();
    out
}

#[test]
fn weighted_mean_matches_flower_aggregate() {
    let pairs: Vec<(&[f32], f64)> = UPDATES.iter().map(|u| &u[..]).zip(WEIGHTS).collect();
    let mut out = [0.0f32; 5];
    weighted_mean_into(&pairs, &mut out).unwrap();
    assert_close(&out, WEIGHTED_MEAN, 1e-6, "weighted_mean_into");
    let mut sum = WeightedSum::new(5);
    for (u, w) in &pairs {
        sum.add(u, *w).unwrap();
    }
    assert_close(
        &sum.mean().unwrap(),
        WEIGHTED_MEAN,
        1e-6,
        "WeightedSum::mean",
    );
}

#[test]
fn add_all_equals_adding_one_by_one() {
    // 1..=7 updates cover the groups of four and every remainder; 2500 values span 3 blocks.
    let data: Vec<Vec<f32>> = (0..7)
        .map(|i| {
            (0..2500)
                .map(|j| ((i * 37 + j * 11) % 101) as f32 - 50.0)
                .collect()
        })
        .collect();
    for n in 1..=7 {
        let pairs: Vec<(&[f32], f64)> = data[..n].iter().map(|u| &u[..]).zip(WEIGHTS).collect();
        let (mut one, mut all) = (WeightedSum::new(2500), WeightedSum::new(2500));
        for (u, w) in &pairs {
            one.add(u, *w).unwrap();
        }
        all.add_all(&pairs).unwrap();
        assert_eq!(one.count(), all.count());
        assert_eq!(one.total_weight(), all.total_weight());
        for (a, b) in one.as_slice().iter().zip(all.as_slice()) {
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + a.abs()),
                "n = {n}: {a} vs {b}"
            );
        }
    }
    let mut s = WeightedSum::new(2500);
    assert!(
        s.add_all(&[(&data[0][..], 1.0), (&[1.0][..], 1.0)])
            .is_err()
    );
    assert_eq!(s.count(), 0, "a refused batch leaves the sum unchanged");
}

#[test]
fn median_matches_flower() {
    assert_close(&robust(&Median), MEDIAN, 0.0, "median");
}

#[test]
fn trimmed_mean_matches_flower() {
    assert_close(
        &robust(&TrimmedMean { beta: 0.2 }),
        TRIMMED_MEAN_0_2,
        1e-6,
        "trimmed mean",
    );
}

#[test]
fn krum_and_multi_krum_match_flower() {
    assert_close(
        &robust(&Krum {
            num_malicious: 2,
            to_keep: 0,
        }),
        KRUM_F2,
        0.0,
        "krum",
    );
    assert_close(
        &robust(&Krum {
            num_malicious: 2,
            to_keep: 3,
        }),
        MULTI_KRUM_F2_M3,
        1e-6,
        "multi-krum",
    );
}

/// Flower's Bulyan breaks tied Krum scores (a mutual nearest pair in the shrinking set) by
/// arrival order; flspec by the updates' values, so its result does not depend on the order.
/// Given the updates in lexicographic order, both rules agree: `BULYAN_F1_LEX_ORDER`. On
/// these inputs Flower's arrival-order result `BULYAN_F1` differs in the coordinates where
/// the tie mattered, and flspec gives the lexicographic-order answer for every order.
#[test]
fn bulyan_matches_flower_up_to_tie_breaking() {
    let got = robust(&Bulyan { num_malicious: 1 });
    assert_close(&got, BULYAN_F1_LEX_ORDER, 1e-6, "bulyan");
    assert_close(
        &got[..1],
        &BULYAN_F1[..1],
        1e-6,
        "bulyan, a coordinate the tie does not touch",
    );
}

fn three_rounds(opt: &mut dyn ServerOptimizer) -> Vec<f32> {
    let mut all = Vec::new();
    for r in 1..=3 {
        let mut sum = WeightedSum::new(5);
        for (u, w) in UPDATES[..6].iter().zip(&WEIGHTS[..6]) {
            let shifted: Vec<f32> = u.iter().map(|x| x + (0.1 * f64::from(r)) as f32).collect();
            sum.add(&shifted, *w).unwrap();
        }
        all.extend_from_slice(opt.step(&sum).unwrap());
    }
    all
}

fn initial() -> Vec<f32> {
    INITIAL.iter().map(|x| *x as f32).collect()
}

#[test]
fn fed_adam_matches_flower() {
    assert_close(
        &three_rounds(&mut FedOpt::fed_adam(initial())),
        FEDADAM_3_ROUNDS,
        1e-5,
        "FedAdam",
    );
}

#[test]
fn fed_yogi_matches_flower() {
    assert_close(
        &three_rounds(&mut FedOpt::fed_yogi(initial())),
        FEDYOGI_3_ROUNDS,
        1e-5,
        "FedYogi",
    );
}

#[test]
fn fed_adagrad_matches_flower() {
    assert_close(
        &three_rounds(&mut FedOpt::fed_adagrad(initial())),
        FEDADAGRAD_3_ROUNDS,
        1e-5,
        "FedAdagrad",
    );
}

#[test]
fn fed_avgm_matches_flower() {
    assert_close(
        &three_rounds(&mut FedAvgM::new(initial(), 0.5, 0.9)),
        FEDAVGM_3_ROUNDS,
        1e-5,
        "FedAvgM",
    );
}

#[test]
fn fed_opt_state_round_trips_through_serde_and_resumes() {
    let mut a = FedOpt::fed_adam(initial());
    let mut sum = WeightedSum::new(5);
    sum.add(&UPDATES[0], 1.0).unwrap();
    a.step(&sum).unwrap();
    let json = serde_json::to_string(&a).unwrap();
    let mut b: FedOpt = serde_json::from_str(&json).unwrap();
    assert_eq!(a.step(&sum).unwrap(), b.step(&sum).unwrap());
    assert_eq!(b.state().round, 2);
}

#[test]
fn secagg_style_sum_gives_the_same_mean_as_adding_updates() {
    let mut added = WeightedSum::new(5);
    let mut raw = vec![0.0f64; 5];
    for u in &UPDATES {
        added.add(u, 1.0).unwrap();
        for (r, x) in raw.iter_mut().zip(u) {
            *r += f64::from(*x);
        }
    }
    let from_sum = WeightedSum::from_sum(raw, 7.0, 7).unwrap();
    assert_eq!(added.mean().unwrap(), from_sum.mean().unwrap());
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut out = [0.0f32; 5];
    assert_eq!(mean_into(&[], &mut out), Err(AggregateError::Empty));
    assert!(matches!(
        mean_into(&[&[1.0][..]], &mut out),
        Err(AggregateError::LengthMismatch {
            index: 0,
            expected: 5,
            found: 1
        })
    ));
    assert!(matches!(
        weighted_mean_into(&[(&UPDATES[0][..], 0.0)], &mut out),
        Err(AggregateError::NonPositiveWeight { .. })
    ));
    assert!(matches!(
        weighted_mean_into(&[(&UPDATES[0][..], -1.0)], &mut out),
        Err(AggregateError::InvalidWeight { index: 0 })
    ));
    assert!(WeightedSum::from_sum(vec![1.0], 0.0, 1).is_err());
    assert_eq!(WeightedSum::new(5).mean(), Err(AggregateError::Empty));
    let mut s = WeightedSum::new(5);
    assert!(s.add(&[1.0], 1.0).is_err());
    assert_eq!(s.count(), 0, "a refused update leaves the sum unchanged");
    let ups = individual();
    assert!(matches!(
        Krum {
            num_malicious: 3,
            to_keep: 0
        }
        .aggregate(&ups, &mut out),
        Err(AggregateError::TooManyByzantine {
            rule: "Krum",
            f: 3,
            n: 7,
            required: 9
        })
    ));
    assert!(matches!(
        Bulyan { num_malicious: 2 }.aggregate(&ups, &mut out),
        Err(AggregateError::TooManyByzantine {
            rule: "Bulyan",
            f: 2,
            n: 7,
            required: 11
        })
    ));
    assert!(
        Krum {
            num_malicious: 0,
            to_keep: 8
        }
        .aggregate(&ups, &mut out)
        .is_err()
    );
    assert!(TrimmedMean { beta: 0.5 }.aggregate(&ups, &mut out).is_err());
    assert!(Median.aggregate(&Individual::new(5), &mut out).is_err());
    assert!(Median.aggregate(&ups, &mut [0.0f32; 4]).is_err());
    let mut fo = FedOpt::fed_adam(vec![0.0; 4]);
    assert!(fo.step(&WeightedSum::new(5)).is_err());
    let mut ind = Individual::new(1);
    assert_eq!(
        ind.push(&[f32::INFINITY], 1.0),
        Err(AggregateError::NonFinite { index: 0 })
    );
    let msg = AggregateError::TooManyByzantine {
        rule: "Krum",
        f: 3,
        n: 7,
        required: 9,
    }
    .to_string();
    assert!(msg.contains("lower f or wait for more updates"), "{msg}");
}

#[test]
fn mean_spans_several_blocks() {
    // Longer than the 1024-value accumulation block, with a ragged tail.
    let a: Vec<f32> = (0..2500).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..2500).map(|i| -(i as f32) + 2.0).collect();
    let mut out = vec![0.0f32; 2500];
    mean_into(&[&a, &b], &mut out).unwrap();
    assert!(out.iter().all(|x| *x == 1.0));
    weighted_mean_into(&[(&a, 3.0), (&b, 1.0)], &mut out).unwrap();
    for (i, o) in out.iter().enumerate() {
        assert_eq!(*o, ((3.0 * i as f64 - i as f64 + 2.0) / 4.0) as f32);
    }
}

fn vecs(n: std::ops::Range<usize>, d: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
    prop::collection::vec(prop::collection::vec(-100.0f32..100.0, d), n)
}

proptest! {
    #[test]
    fn mean_of_identical_inputs_is_that_input(x in prop::collection::vec(-1e3f32..1e3, 1..50), n in 1usize..20, w in 0.1f64..100.0) {
        let ups: Vec<(&[f32], f64)> = (0..n).map(|_| (&x[..], w)).collect();
        let mut out = vec![0.0; x.len()];
        weighted_mean_into(&ups, &mut out).unwrap();
        for (o, v) in out.iter().zip(&x) {
            prop_assert!((o - v).abs() <= 1e-6 * (1.0 + v.abs()), "{o} vs {v}");
        }
        let plain: Vec<&[f32]> = (0..n).map(|_| &x[..]).collect();
        mean_into(&plain, &mut out).unwrap();
        for (o, v) in out.iter().zip(&x) {
            prop_assert!((o - v).abs() <= 1e-6 * (1.0 + v.abs()));
        }
        let mut ind = Individual::new(x.len());
        for _ in 0..n { ind.push(&x, w).unwrap(); }
        Median.aggregate(&ind, &mut out).unwrap();
        prop_assert_eq!(&out, &x);
    }

    #[test]
    fn aggregators_are_permutation_invariant(ups in vecs(7..12, 6), seed in any::<u64>()) {
        let mut perm: Vec<usize> = (0..ups.len()).collect();
        // Fisher-Yates with a tiny LCG, so the permutation comes from the proptest seed.
        let mut s = seed;
        for i in (1..perm.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let (mut a, mut b) = (Individual::new(6), Individual::new(6));
        for (i, u) in ups.iter().enumerate() { a.push(u, 1.0 + i as f64).unwrap(); }
        for &i in &perm { b.push(&ups[i], 1.0 + i as f64).unwrap(); }
        let aggs: [(&str, &dyn RobustAggregator, f32); 4] = [
            ("median", &Median, 0.0),
            ("trimmed", &TrimmedMean { beta: 0.2 }, 1e-4),
            ("krum", &Krum { num_malicious: 2, to_keep: 0 }, 0.0),
            ("bulyan", &Bulyan { num_malicious: 1 }, 1e-4),
        ];
        for (name, agg, tol) in aggs {
            let (mut oa, mut ob) = (vec![0.0; 6], vec![0.0; 6]);
            agg.aggregate(&a, &mut oa).unwrap();
            agg.aggregate(&b, &mut ob).unwrap();
            for (x, y) in oa.iter().zip(&ob) {
                prop_assert!((x - y).abs() <= tol, "{name}: {x} vs {y}");
            }
        }
        let (sa, sb) = (a.to_weighted_sum().unwrap().mean().unwrap(), b.to_weighted_sum().unwrap().mean().unwrap());
        for (x, y) in sa.iter().zip(&sb) {
            prop_assert!((x - y).abs() <= 1e-4, "mean: {x} vs {y}");
        }
    }

    #[test]
    fn krum_picks_an_honest_update(honest in vecs(5..12, 8), f in 1usize..4, shift in 1e3f32..1e4) {
        // f < (n - 2) / 2 Byzantine updates, far away from the honest ones in [-100, 100].
        let n = honest.len() + f;
        prop_assume!(2 * f + 2 < n);
        let byz: Vec<Vec<f32>> = (0..f).map(|k| vec![shift * (k as f32 + 1.0); 8]).collect();
        let mut ups = Individual::new(8);
        for u in honest.iter().chain(&byz) { ups.push(u, 1.0).unwrap(); }
        let k = Krum { num_malicious: f, to_keep: 0 };
        prop_assert!(k.select(&ups).unwrap() < honest.len());
        let mut out = vec![0.0; 8];
        Krum { num_malicious: f, to_keep: n - 2 * f }.aggregate(&ups, &mut out).unwrap();
        prop_assert!(out.iter().all(|x| x.abs() <= 100.0), "multi-krum kept a Byzantine update: {out:?}");
    }

    #[test]
    fn median_and_trimmed_mean_are_bounded_by_honest_values(honest in vecs(5..12, 4), f in 1usize..3, shift in 1e3f32..1e4) {
        // Median: f < n/2; trimmed mean: beta·n >= f so the outliers are cut.
        let n = honest.len() + f;
        prop_assume!(2 * f < n);
        let byz: Vec<Vec<f32>> = (0..f).map(|k| vec![if k % 2 == 0 { shift } else { -shift }; 4]).collect();
        let mut ups = Individual::new(4);
        for u in honest.iter().chain(&byz) { ups.push(u, 1.0).unwrap(); }
        let beta = (f as f64 / n as f64 + 1e-9).min(0.49);
        prop_assume!((beta * n as f64) as usize >= f);
        for agg in [&Median as &dyn RobustAggregator, &TrimmedMean { beta }] {
            let mut out = vec![0.0; 4];
            agg.aggregate(&ups, &mut out).unwrap();
            for (j, o) in out.iter().enumerate() {
                let lo = honest.iter().map(|u| u[j]).fold(f32::INFINITY, f32::min);
                let hi = honest.iter().map(|u| u[j]).fold(f32::NEG_INFINITY, f32::max);
                prop_assert!(*o >= lo - 1e-3 && *o <= hi + 1e-3, "coordinate {j}: {o} outside [{lo}, {hi}]");
            }
        }
    }
}
