//! `flspec::fl::schedule`: PyTorch's scheduler definitions (closed forms), the text grammar,
//! serde, and properties (round trips, monotone where the shape is, never negative).
//!
//! The reference values are PyTorch's documented closed forms (torch/optim/lr_scheduler.py,
//! `_get_closed_form_lr`), with the round as the epoch and base_lr the initial value:
//! - `StepLR`:            `base_lr * gamma ** (last_epoch // step_size)`
//! - `ExponentialLR`:     `base_lr * gamma ** last_epoch`
//! - `CosineAnnealingLR`: `eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2`
//! - `LinearLR`:          `base_lr * (start_factor + (end_factor - start_factor) * min(T_max, last_epoch) / T_max)`
//!
//! The literal values below were worked out by hand from these formulas.

#![allow(clippy::unwrap_used)]

use std::f64::consts::PI;

use flspec::fl::schedule::{EpochSchedule, LrSchedule, Schedule, ScheduleError, ScheduleValue};
use proptest::prelude::*;

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-12 * want.abs().max(1e-300)
}

#[track_caller]
fn assert_close(got: f64, want: f64, what: &str) {
    assert!(close(got, want), "{what}: got {got}, want {want}");
}

#[test]
fn step_matches_pytorch_step_lr() {
    // StepLR(lr=0.1, step_size=3, gamma=0.1)
    let lr: LrSchedule = "step:0.1,every=3,gamma=0.1".parse().unwrap();
    let want = [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001];
    for (t, w) in want.iter().enumerate() {
        assert_close(lr.at(t as u64), *w, &format!("round {t}"));
    }
    for t in 0..100u64 {
        let closed = 0.1 * 0.1f64.powi((t / 3) as i32);
        assert_close(lr.at(t), closed, &format!("round {t}"));
    }
}

#[test]
fn exponential_matches_pytorch_exponential_lr() {
    // ExponentialLR(lr=0.1, gamma=0.9)
    let lr: LrSchedule = "exp:0.1,gamma=0.9".parse().unwrap();
    assert_close(lr.at(0), 0.1, "round 0");
    assert_close(lr.at(1), 0.09, "round 1");
    assert_close(lr.at(2), 0.081, "round 2");
    assert_close(lr.at(3), 0.0729, "round 3");
    for t in 0..200u64 {
        assert_close(lr.at(t), 0.1 * 0.9f64.powf(t as f64), &format!("round {t}"));
    }
}

#[test]
fn cosine_matches_pytorch_cosine_annealing_lr_up_to_t_max_then_stays_at_min() {
    // CosineAnnealingLR(lr=0.1, T_max=10, eta_min=0.001)
    let lr: LrSchedule = "cosine:0.1,min=0.001,rounds=10".parse().unwrap();
    assert_close(lr.at(0), 0.1, "round 0");
    // cos(pi/2) = 0: halfway between 0.1 and 0.001.
    assert!((lr.at(5) - 0.0505).abs() < 1e-15, "{}", lr.at(5));
    assert_close(lr.at(10), 0.001, "round 10");
    for t in 0..=10u64 {
        let closed = 0.001 + (0.1 - 0.001) * (1.0 + (PI * t as f64 / 10.0).cos()) / 2.0;
        assert!((lr.at(t) - closed).abs() < 1e-15, "round {t}");
    }
    // PyTorch's closed form would rise again (at 15 it is back at 0.0505); we stay at min.
    for t in 11..40 {
        assert_eq!(lr.at(t), 0.001, "round {t}");
    }
    // `min=` defaults to PyTorch's eta_min = 0.
    let lr0: LrSchedule = "cosine:0.2,rounds=4".parse().unwrap();
    assert!((lr0.at(2) - 0.1).abs() < 1e-15);
    assert_eq!(lr0.to_string(), "cosine:0.2,min=0,rounds=4");
}

#[test]
fn warmup_matches_pytorch_linear_lr_then_sequential_lr() {
    // SequentialLR([LinearLR(start_factor=1/(w+1), total_iters=w), StepLR(step_size=2, gamma=0.5)],
    // milestones=[w]) with w = 3 and lr = 0.2: LinearLR's factor is (t + 1)/(w + 1) for t <= w.
    let lr: LrSchedule = "warmup:3,then=step:0.2,every=2,gamma=0.5".parse().unwrap();
    let w = 3.0;
    for t in 0..3u64 {
        let start = 1.0 / (w + 1.0);
        let factor = start + (1.0 - start) * (t as f64).min(w) / w;
        assert_close(lr.at(t), 0.2 * factor, &format!("round {t}"));
    }
    assert_close(lr.at(0), 0.05, "round 0");
    // After the milestone, the step schedule starts from its own epoch 0.
    let want = [0.2, 0.2, 0.1, 0.1, 0.05];
    for (k, v) in want.iter().enumerate() {
        assert_close(lr.at(3 + k as u64), *v, &format!("round {}", 3 + k));
    }
}

#[test]
fn piecewise_epochs_take_the_last_piece_started() {
    let e: EpochSchedule = "piecewise:0=3,2=2,10=1".parse().unwrap();
    let got: Vec<usize> = (0..12).map(|t| e.at(t)).collect();
    assert_eq!(got, [3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1]);
    assert_eq!(e.at(u64::MAX), 1);
}

#[test]
fn epoch_decays_round_to_the_nearest_whole_number_and_never_below_one() {
    // 8 · 0.5^⌊t/2⌋ = 8, 8, 4, 4, 2, 2, 1, 1, 0.5 → 1, ...
    let e: EpochSchedule = "step:8,every=2,gamma=0.5".parse().unwrap();
    let got: Vec<usize> = (0..12).map(|t| e.at(t)).collect();
    assert_eq!(got, [8, 8, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1]);
    // cosine 5 → 1 over 4 rounds: 1 + 4·(1 + cos(πt/4))/2 = 5, 4.41, 3, 1.59, 1 → 5, 4, 3, 2, 1.
    let c: EpochSchedule = "cosine:5,min=1,rounds=4".parse().unwrap();
    assert_eq!(
        (0..6).map(|t| c.at(t)).collect::<Vec<_>>(),
        [5, 4, 3, 2, 1, 1]
    );
    // Without `min=`, an epoch schedule ends at 1.
    let c: EpochSchedule = "cosine:5,rounds=4".parse().unwrap();
    assert_eq!(c.at(4), 1);
}

#[test]
fn huge_rounds_do_not_panic() {
    for spec in [
        "step:0.1,every=1,gamma=0.5",
        "exp:0.1,gamma=0.99",
        "cosine:0.1,rounds=3",
        "warmup:5,then=exp:0.1,gamma=1",
    ] {
        let lr: LrSchedule = spec.parse().unwrap();
        let v = lr.at(u64::MAX);
        assert!(v.is_finite() && v >= 0.0, "{spec}: {v}");
    }
    let e: EpochSchedule = "exp:4,gamma=0.5".parse().unwrap();
    assert_eq!(e.at(u64::MAX), 1);
}

#[test]
fn keys_may_come_in_any_order_and_display_is_canonical() {
    let a: LrSchedule = "step:0.1,gamma=0.5,every=5".parse().unwrap();
    let b: LrSchedule = " step:0.1, every=5 , gamma=0.5".parse().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_string(), "step:0.1,every=5,gamma=0.5");
    let w: LrSchedule = "warmup:2,then=warmup:1,then=piecewise:0=0.1,4=0.01"
        .parse()
        .unwrap();
    assert_eq!(
        w.to_string(),
        "warmup:2,then=warmup:1,then=piecewise:0=0.1,4=0.01"
    );
    assert_eq!(
        format!("{w:?}"),
        "Schedule(\"warmup:2,then=warmup:1,then=piecewise:0=0.1,4=0.01\")"
    );
}

#[test]
fn bad_text_is_an_error_that_says_what_to_write() {
    let cases: &[(&str, &str)] = &[
        ("", "it is empty"),
        ("fast", "`fast` is not a valid learning rate"),
        ("stepp:0.1,every=2,gamma=0.5", "unknown shape `stepp:`"),
        ("step:0.1,gamma=0.5", "`step` needs `every=`"),
        (
            "step:0.1,every=2,gamma=0.5,gamma=0.4",
            "`gamma=` is given twice",
        ),
        (
            "exp:0.1,gama=0.5",
            "unknown key `gama` for `exp`; it takes gamma=",
        ),
        ("exp:0.1,0.5", "`0.5` should be key=value"),
        (
            "cosine:0.1,rounds=ten",
            "rounds `ten` is not a whole number",
        ),
        ("warmup:3", "`warmup:` needs a number of rounds"),
        ("warmup:3,0.1", "comes `then=<schedule>`"),
        (
            "piecewise:0=2,5",
            "piece `5` should be <first round>=<value>",
        ),
        ("-0.1", "learning rate = -0.1 is out of range"),
        ("NaN", "learning rate = NaN is out of range"),
        ("exp:0.1,gamma=0", "gamma = 0 is out of range"),
        ("step:0.1,every=0,gamma=0.5", "every = 0 is out of range"),
        (
            "cosine:0.1,min=0.2,rounds=5",
            "must not exceed the initial value",
        ),
        ("warmup:0,then=0.1", "warm-up rounds = 0 is out of range"),
        ("piecewise:1=0.1", "must start at round 0"),
        ("piecewise:0=0.1,5=0.2,5=0.3", "must increase"),
    ];
    for (spec, want) in cases {
        let err = spec.parse::<LrSchedule>().unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{spec:?}: {err} (wanted {want:?})"
        );
        // Debug shows the message too (for `fn main() -> Result<...>`).
        assert!(format!("{err:?}").contains(want));
    }
    let err = "piecewise:0=2,5=0".parse::<EpochSchedule>().unwrap_err();
    assert!(matches!(
        err,
        ScheduleError::InvalidParameter { name: "epochs", .. }
    ));
    assert!(err.to_string().contains("at least 1"), "{err}");
    let err = "1.5".parse::<EpochSchedule>().unwrap_err();
    assert!(
        err.to_string().contains("not a valid epochs value"),
        "{err}"
    );
    // Syntax errors name the text and show the grammar by example.
    let err = "step:0.1".parse::<LrSchedule>().unwrap_err();
    assert!(matches!(&err, ScheduleError::Syntax { spec, .. } if spec == "step:0.1"));
    assert!(err.to_string().contains("cosine:0.1,min=0.001,rounds=20"));
}

#[test]
fn serde_uses_the_text_and_checks_it() {
    let lr: LrSchedule = "cosine:0.1,min=0.001,rounds=20".parse().unwrap();
    let json = serde_json::to_string(&lr).unwrap();
    assert_eq!(json, "\"cosine:0.1,min=0.001,rounds=20\"");
    assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), lr);
    let err = serde_json::from_str::<EpochSchedule>("\"piecewise:0=0\"").unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

fn lr_value() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![
        Just(0.0),
        1e-6f64..10.0,
        (1u32..1000).prop_map(|k| f64::from(k) * 1e-3)
    ]
}

fn leaf<T: ScheduleValue>(
    value: impl Strategy<Value = T> + Clone + 'static,
) -> BoxedStrategy<Schedule<T>> {
    let v = value.clone();
    prop_oneof![
        v.clone().prop_map(|v| Schedule::constant(v).unwrap()),
        (v.clone(), 1u64..20, 0.01f64..=1.0)
            .prop_map(|(v, every, g)| Schedule::step(v, every, g).unwrap()),
        (v.clone(), 0.01f64..=1.0).prop_map(|(v, g)| Schedule::exponential(v, g).unwrap()),
        (v.clone(), v.clone(), 1u64..50).prop_map(|(a, b, r)| {
            let (hi, lo) = if a.to_f64() >= b.to_f64() {
                (a, b)
            } else {
                (b, a)
            };
            Schedule::cosine(hi, lo, r).unwrap()
        }),
        (prop::collection::btree_map(1u64..100, v.clone(), 0..5), v).prop_map(|(rest, first)| {
            Schedule::piecewise(std::iter::once((0, first)).chain(rest)).unwrap()
        }),
    ]
    .boxed()
}

fn schedule<T: ScheduleValue>(
    value: impl Strategy<Value = T> + Clone + 'static,
) -> impl Strategy<Value = Schedule<T>> {
    leaf(value).prop_recursive(2, 4, 1, |inner| {
        (1u64..10, inner).prop_map(|(w, s)| Schedule::warmup(w, s).unwrap())
    })
}

proptest! {
    #[test]
    fn text_and_serde_round_trip(lr in schedule(lr_value()), e in schedule(1usize..20)) {
        let back: LrSchedule = lr.to_string().parse().unwrap();
        prop_assert_eq!(&back, &lr);
        let back: EpochSchedule = e.to_string().parse().unwrap();
        prop_assert_eq!(&back, &e);
        let json = serde_json::to_string(&lr).unwrap();
        prop_assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), lr.clone());
        for t in 0..60 {
            prop_assert_eq!(back.at(t), e.at(t));
        }
    }

    #[test]
    fn never_negative_and_epochs_at_least_one(lr in schedule(lr_value()), e in schedule(1usize..20), t in 0u64..10_000) {
        let v = lr.at(t);
        prop_assert!(v.is_finite() && v >= 0.0, "{} at {}: {}", lr, t, v);
        prop_assert!(e.at(t) >= 1);
    }

    #[test]
    fn decays_never_increase(v in 1e-6f64..10.0, min_frac in 0.0f64..=1.0, every in 1u64..10, g in 0.01f64..=1.0, r in 1u64..50) {
        let decays = [
            LrSchedule::step(v, every, g).unwrap(),
            LrSchedule::exponential(v, g).unwrap(),
            LrSchedule::cosine(v, v * min_frac, r).unwrap(),
        ];
        for s in &decays {
            for t in 0..120 {
                prop_assert!(s.at(t + 1) <= s.at(t), "{} rises at {}", s, t);
            }
            prop_assert!(s.at(0) == v, "{} starts at {}", s, s.at(0));
        }
        // Epochs too (rounding is monotone).
        let e = EpochSchedule::cosine(20, 1, r).unwrap();
        for t in 0..120 {
            prop_assert!(e.at(t + 1) <= e.at(t));
        }
    }

    #[test]
    fn warmup_rises_to_the_next_schedules_start(w in 1u64..20, v in 1e-6f64..10.0, g in 0.01f64..=1.0) {
        let then = LrSchedule::exponential(v, g).unwrap();
        let s = LrSchedule::warmup(w, then.clone()).unwrap();
        for t in 0..w {
            prop_assert!(s.at(t) < s.at(t + 1), "{} at {}", s, t);
        }
        prop_assert_eq!(s.at(w), v);
        for t in 0..50 {
            prop_assert_eq!(s.at(w + t), then.at(t));
        }
    }
}
