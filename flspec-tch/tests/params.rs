//! Property tests of `flspec_tch::params::Layout`: any set of named f32 tensors round-trips
//! through a flat vector bit for bit, in sorted and in explicit order.
#![cfg(feature = "torch")]
#![allow(clippy::unwrap_used)]

use flspec_tch::params::Layout;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use tch::Device;
use tch::nn::{Init, VarStore};

/// Up to 5 tensors, named `layerN.<weight|bias>`-like (with dots, as tch names nested
/// variables), of rank 0 to 3 with dimensions 0 to 4.
fn shapes() -> impl Strategy<Value = Vec<(String, Vec<i64>)>> {
    btree_map("[a-c]{1,2}\\.[wb][0-9]?", vec(0i64..5, 0..4), 1..6)
        .prop_map(|m| m.into_iter().collect())
        .prop_shuffle()
}

/// A store with one zero variable per `(name, shape)`.
fn store(specs: &[(String, Vec<i64>)]) -> VarStore {
    let vs = VarStore::new(Device::Cpu);
    for (name, shape) in specs {
        let (layer, var) = name.split_once('.').unwrap();
        let _ = vs.root().sub(layer).var(var, shape, Init::Const(0.0));
    }
    vs
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_values_round_trip_bit_exactly(
        (specs, values) in shapes().prop_flat_map(|specs| {
            let len: usize = specs.iter().map(|(_, s)| s.iter().product::<i64>() as usize).sum();
            // Any bit pattern, NaN payloads and signed zeros included.
            (Just(specs), vec(any::<u32>().prop_map(f32::from_bits), len))
        })
    ) {
        let vs = store(&specs);
        // The order given (a shuffled one) and the sorted one.
        let names: Vec<&str> = specs.iter().map(|(n, _)| n.as_str()).collect();
        for layout in [
            Layout::from_var_store_in_order(&vs, &names).unwrap(),
            Layout::from_var_store(&vs).unwrap(),
        ] {
            prop_assert_eq!(layout.len(), values.len());
            layout.load_from(&vs, &values).unwrap();
            prop_assert_eq!(bits(&layout.to_vec(&vs).unwrap()), bits(&values));
            let mut out = vec![0f32; values.len()];
            layout.copy_to(&vs, &mut out).unwrap();
            prop_assert_eq!(bits(&out), bits(&values));
            // Each slot holds its tensor's values, row-major.
            let variables = vs.variables();
            for slot in layout.slots() {
                let t = variables[slot.name()].reshape([-1]);
                let got: Vec<f32> = Vec::try_from(&t).unwrap();
                prop_assert_eq!(bits(&got), bits(&values[slot.range()]));
            }
        }
    }

    #[test]
    fn a_wrong_length_never_writes(specs in shapes(), delta in prop_oneof![Just(-1i64), 1i64..3]) {
        let vs = store(&specs);
        let layout = Layout::from_var_store(&vs).unwrap();
        let len = layout.len() as i64 + delta;
        prop_assume!(len >= 0);
        let flat = vec![1f32; len as usize];
        let err = layout.load_from(&vs, &flat).unwrap_err();
        prop_assert!(matches!(err, flspec_tch::Error::ParameterCount { .. }), "{}", err);
        prop_assert!(layout.to_vec(&vs).unwrap().iter().all(|&v| v == 0.0));
    }
}
