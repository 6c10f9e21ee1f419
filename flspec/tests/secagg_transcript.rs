//! The server's whole view of a round (every byte it received) does not contain any client's
//! quantized input or raw `f32` input, for full rounds with dropouts at every stage.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::BTreeMap;

use flspec::secagg::{
    ClientId, Config, DropoutPlan, Input, Mode, Quantizer, Stage, simulate_round,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const D: usize = 256;

fn le_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn check_mode(mode: Mode, threshold: u32) {
    let ids: Vec<ClientId> = (1..=10).map(ClientId).collect();
    let q = Quantizer::new(1.0, 10).unwrap();
    let config = Config::new(ids.clone(), threshold, D, q.clone()).with_mode(mode);
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    // Distinctive inputs: a sparse update (many exact zeros, which quantize to the same word),
    // a constant one, and smooth ones.
    let raw: BTreeMap<ClientId, Vec<f32>> = ids
        .iter()
        .map(|&id| {
            let v = match id.0 {
                1 => (0..D)
                    .map(|j| if j % 16 == 0 { 0.5 } else { 0.0 })
                    .collect(),
                2 => vec![0.25; D],
                _ => (0..D)
                    .map(|j| ((id.0 as usize * D + j) as f32 * 0.01).sin())
                    .collect(),
            };
            (id, v)
        })
        .collect();
    let quantized: BTreeMap<ClientId, Vec<u32>> = raw
        .iter()
        .map(|(&id, x)| (id, q.quantize(x, &mut rng).unwrap()))
        .collect();
    let inputs = quantized
        .iter()
        .map(|(&id, v)| (id, Input::Quantized(v.clone())))
        .collect();
    let plan = DropoutPlan::none()
        .drop_before(ClientId(3), Stage::ShareKeys)
        .drop_before(ClientId(5), Stage::MaskedInputCollection)
        .drop_before(ClientId(8), Stage::Unmasking);
    let out = simulate_round(&config, &inputs, &plan, &mut rng).unwrap();
    let sum = out.result.unwrap();
    assert_eq!(
        sum.contributors.len(),
        8,
        "clients 3 and 5 dropped before sending inputs"
    );
    let view = &out.transcript;
    assert!(view.total_bytes() > 8 * D * 4);
    for (id, q) in &quantized {
        // Any 3 consecutive quantized words (12 bytes), anywhere in any message.
        for w in q.windows(3) {
            assert!(
                !view.contains(&le_u32(w)),
                "client {id}'s quantized input leaked"
            );
        }
        for w in raw[id].windows(2) {
            assert!(!view.contains(&le_f32(w)), "client {id}'s raw input leaked");
        }
    }
    // Sanity check of the search itself: the masked vectors are in the view.
    let first = view
        .entries
        .iter()
        .find(|e| e.stage == Stage::MaskedInputCollection)
        .unwrap();
    assert!(view.contains(&first.bytes[first.bytes.len() - 12..]));
    // And the sum itself is right.
    let mut plain = vec![0u32; D];
    for id in &sum.contributors {
        for (s, v) in plain.iter_mut().zip(&quantized[id]) {
            *s = s.wrapping_add(*v);
        }
    }
    assert_eq!(sum.sum, plain);
}

#[test]
fn server_view_full_graph_hides_inputs() {
    check_mode(Mode::Full, 6);
}

#[test]
fn server_view_secagg_plus_hides_inputs() {
    check_mode(
        Mode::SecAggPlus {
            k: 6,
            graph_seed: 3,
        },
        4,
    );
}
