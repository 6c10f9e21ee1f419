//! Serde round trips (issue 8, point 2): a deserialized `Quantizer` or `Config` is rebuilt by
//! the constructor that made it and validated exactly as that constructor validates, so it
//! equals the original, behaves identically, and an invalid one is refused at load time.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use flspec::secagg::quantize::QuantizerParams;
use flspec::secagg::{ClientId, Config, Mode, Quantizer, SecAggError, min_safe_threshold};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn via_json<T: Serialize + DeserializeOwned>(v: &T) -> T {
    serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
}

fn via_postcard<T: Serialize + DeserializeOwned>(v: &T) -> T {
    postcard::from_bytes(&postcard::to_stdvec(v).unwrap()).unwrap()
}

/// The weighted mean of `updates` (one value and one weight each) summed with `q`.
fn weighted_mean(q: &Quantizer, updates: &[(f32, f32)]) -> Result<f32, SecAggError> {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut sum = vec![0u32; 2];
    for &(x, w) in updates {
        let encoded = q.encode_weighted(&[x], w)?;
        for (s, v) in sum.iter_mut().zip(q.quantize(&encoded, &mut rng)?) {
            *s = s.wrapping_add(v);
        }
    }
    let n = updates.len() as u32;
    Ok(q.decode_weighted_mean(&q.dequantize_sum(&sum, n)?)?[0])
}

/// The case of the issue: (0.25 * 1.0 + 0.25 * 0.5) / 1.5 = 0.25. Before the fix the
/// deserialized quantizer had the scale of `Quantizer::new(1.0, 2)`, the weight 1.0 saturated
/// to 0.5 and the mean came out as 0.375 / 1.0 = 0.375.
#[test]
fn weighted_mean_quantizer_survives_a_round_trip() {
    let q = Quantizer::for_weighted_mean(1.0, 1.5, 2).unwrap();
    let updates = [(0.25, 1.0), (0.25, 0.5)];
    let direct = weighted_mean(&q, &updates).unwrap();
    assert!((direct - 0.25).abs() < 1e-6, "{direct}");
    for back in [via_json(&q), via_postcard(&q)] {
        assert_eq!(back, q);
        assert_eq!(back.scale(), q.scale());
        let mean = weighted_mean(&back, &updates).unwrap();
        assert_eq!(mean, direct, "0.375 would be the old, wrong scale");
    }
    // Inside a Config, as a flow state, a federated message or a checkpoint carries it.
    let ids: Vec<ClientId> = (1..=2).map(ClientId).collect();
    let config = Config::new(ids, 2, 3, q.clone());
    let back = via_json(&config);
    assert_eq!(back, config);
    assert_eq!(weighted_mean(&back.quantizer, &updates).unwrap(), direct);
}

#[test]
fn invalid_max_weight_is_refused_at_deserialization() {
    for bad in [f32::NAN, -1.0, 0.0, f32::INFINITY] {
        let params = QuantizerParams {
            clip: 1.0,
            n_max: 3,
            max_weight: Some(bad),
        };
        let bytes = postcard::to_stdvec(&params).unwrap();
        let e = postcard::from_bytes::<Quantizer>(&bytes).unwrap_err();
        assert!(
            matches!(e, postcard::Error::SerdeDeCustom),
            "max_weight = {bad}: {e}"
        );
    }
    let e = serde_json::from_str::<Quantizer>(r#"{"clip":1.0,"n_max":3,"max_weight":-1.0}"#)
        .unwrap_err();
    assert!(e.to_string().contains("`max_weight`"), "{e}");
    // A range that overflows f32 is refused too (it used to become `inf` and panic later).
    let e = serde_json::from_str::<Quantizer>(r#"{"clip":1e30,"n_max":3,"max_weight":1e30}"#)
        .unwrap_err();
    assert!(e.to_string().contains("`max_weight`"), "{e}");
    let e = serde_json::from_str::<Quantizer>(r#"{"clip":1.0,"n_max":0,"max_weight":2.0}"#)
        .unwrap_err();
    assert!(e.to_string().contains("`n_max`"), "{e}");
}

#[test]
fn invalid_config_is_refused_at_deserialization() {
    let ids: Vec<ClientId> = (1..=4).map(ClientId).collect();
    let good = Config::new(ids.clone(), 3, 5, Quantizer::new(1.0, 4).unwrap());
    let json = serde_json::to_value(&good).unwrap();
    assert_eq!(
        serde_json::from_value::<Config>(json.clone()).unwrap(),
        good
    );
    let mut cases = Vec::new();
    for (field, value, name) in [
        ("threshold", serde_json::json!(2), "`threshold`"), // unsafe without the opt-out
        ("threshold", serde_json::json!(5), "`threshold`"),
        ("vector_len", serde_json::json!(0), "`vector_len`"),
        ("clients", serde_json::json!([1, 1, 2, 3]), "`clients`"),
        (
            "quantizer",
            serde_json::json!({"clip": 1.0, "n_max": 3, "max_weight": null}),
            "`quantizer.n_max`",
        ),
        (
            "quantizer",
            serde_json::json!({"clip": f32::MAX, "n_max": 4, "max_weight": 2.0}),
            "`max_weight`",
        ),
    ] {
        let mut v = json.clone();
        v[field] = value;
        cases.push((v, name));
    }
    for (v, name) in cases {
        let e = serde_json::from_value::<Config>(v.clone()).unwrap_err();
        assert!(e.to_string().contains(name), "{v}: {e}");
    }
    // The opt-out is part of the serialized form, and absent means off.
    let low = Config::new(ids, 2, 5, Quantizer::new(1.0, 4).unwrap()).unsafe_allow_low_threshold();
    assert_eq!(via_json(&low), low);
    assert_eq!(via_postcard(&low), low);
    let mut v = serde_json::to_value(&low).unwrap();
    v.as_object_mut()
        .unwrap()
        .remove("unsafe_allow_low_threshold");
    assert!(serde_json::from_value::<Config>(v).is_err());
}

fn quantizer() -> impl Strategy<Value = Quantizer> {
    (
        prop_oneof![0.001f32..10.0, Just(1.0f32), 1e-20f32..1e-10],
        prop::option::of(prop_oneof![0.01f32..10_000.0, Just(1.0f32)]),
        1u32..200,
    )
        .prop_filter_map("valid quantizer", |(clip, w, n_max)| match w {
            None => Quantizer::new(clip, n_max).ok(),
            Some(w) => Quantizer::for_weighted_mean(clip, w, n_max).ok(),
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        2u32..16,
        any::<bool>(),
        any::<u64>(),
        0.0f64..1.0,
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        1usize..64,
        quantizer(),
    )
        .prop_filter_map(
            "valid config",
            |(n, plus, graph_seed, t_frac, low, session, round, d, q)| {
                let mode = if plus && n > 3 {
                    Mode::SecAggPlus {
                        k: Mode::secagg_plus_degree(n as usize),
                        graph_seed,
                    }
                } else {
                    Mode::Full
                };
                let ids = (0..n).map(|i| ClientId(i * 5 + 1));
                let mut c = Config::new(ids, 2, d, q)
                    .with_mode(mode)
                    .with_session(session)
                    .with_round(round);
                let hood = c.neighbourhood_size() as u32;
                let lowest = if low { 2 } else { min_safe_threshold(hood) };
                c.threshold = lowest + ((hood - lowest + 1) as f64 * t_frac) as u32;
                c.threshold = c.threshold.min(hood);
                if low {
                    c = c.unsafe_allow_low_threshold();
                }
                c.validate().is_ok().then_some(c)
            },
        )
}

/// Same output for the same seed: quantize, de-quantize and (for a weighted quantizer) the
/// weighted encoding and decoding.
fn same_behaviour(a: &Quantizer, b: &Quantizer, x: &[f32], seed: u64) {
    let qa = a
        .quantize(x, &mut ChaCha20Rng::seed_from_u64(seed))
        .unwrap();
    let qb = b
        .quantize(x, &mut ChaCha20Rng::seed_from_u64(seed))
        .unwrap();
    assert_eq!(qa, qb);
    let n = a.n_max().min(3);
    assert_eq!(
        a.dequantize_sum(&qa, n).unwrap(),
        b.dequantize_sum(&qb, n).unwrap()
    );
    assert_eq!(a.error_bound(n), b.error_bound(n));
    assert_eq!(
        a.encode_weighted(x, 0.5).ok(),
        b.encode_weighted(x, 0.5).ok()
    );
    if let Ok(enc) = a.encode_weighted(x, 0.5) {
        let sum = a
            .dequantize_sum(
                &a.quantize(&enc, &mut ChaCha20Rng::seed_from_u64(seed))
                    .unwrap(),
                1,
            )
            .unwrap();
        assert_eq!(
            a.decode_weighted_mean(&sum).ok(),
            b.decode_weighted_mean(&sum).ok()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_valid_quantizer_round_trips(
        q in quantizer(),
        x in prop::collection::vec(-20.0f32..20.0, 1..32),
        seed in any::<u64>(),
    ) {
        for back in [via_json(&q), via_postcard(&q)] {
            prop_assert_eq!(&back, &q);
            same_behaviour(&q, &back, &x, seed);
        }
    }

    #[test]
    fn every_valid_config_round_trips(c in config(), seed in any::<u64>()) {
        for back in [via_json(&c), via_postcard(&c)] {
            prop_assert_eq!(&back, &c);
            prop_assert!(back.validate().is_ok());
            prop_assert_eq!(back.min_safe_threshold(), c.min_safe_threshold());
            prop_assert_eq!(back.shamir_field(), c.shamir_field());
            let (ga, gb) = (c.graph().unwrap(), back.graph().unwrap());
            for &id in &c.clients {
                prop_assert_eq!(ga.closed_neighbourhood(id), gb.closed_neighbourhood(id));
            }
            let x: Vec<f32> = (0..c.vector_len).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
            same_behaviour(&c.quantizer, &back.quantizer, &x, seed);
        }
    }
}
