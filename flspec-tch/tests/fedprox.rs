//! FedProx's proximal term: its value and gradient against hand computations, `mu = 0` is plain
//! training bit for bit, a huge `mu` keeps the trained model near the global one, and mismatched
//! parameters are refused.
#![cfg(feature = "torch")]
#![allow(clippy::unwrap_used)]

use flspec_tch::Error;
use flspec_tch::datasets::mnist::{Dataset, Mnist};
use flspec_tch::fedprox::Proximal;
use flspec_tch::models::mnist_cnn::Net;
use flspec_tch::train::{Batches, TrainConfig, train_one_epoch_on, train_one_epoch_with};
use tch::{Kind, Tensor};

/// The first `n` training images of the bundled data, one libtorch thread (deterministic sums).
fn small_train_set(n: usize) -> Dataset {
    flspec_tch::threads::set_num_threads(1);
    let data = Mnist::load_bundled().unwrap();
    let indices: Vec<usize> = (0..n).collect();
    data.train.subset(&indices).unwrap()
}

fn l2_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn term_is_half_mu_times_the_squared_distance() {
    let global = [
        Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]),
        Tensor::from_slice(&[0.5f32]),
    ];
    let proximal = Proximal::new(&global, 0.1).unwrap();
    assert_eq!(proximal.mu(), 0.1);
    let params = [
        Tensor::from_slice(&[1.5f32, 2.0, 1.0, 4.0]).view([2, 2]),
        Tensor::from_slice(&[-0.5f32]),
    ];
    // ||.||^2 = 0.5^2 + 0 + 2^2 + 0 + 1^2 = 5.25; 0.1 / 2 * 5.25 = 0.2625.
    let term = proximal.term(&params).unwrap();
    assert_eq!(term.size(), Vec::<i64>::new(), "a scalar");
    assert!((term.double_value(&[]) - 0.2625).abs() < 1e-6);
    let loss = Tensor::from(1.25f32);
    let total = proximal.add_to(&loss, &params).unwrap();
    assert!((total.double_value(&[]) - 1.5125).abs() < 1e-6);
    // The snapshot's own parameters are at distance 0.
    assert_eq!(proximal.term(&global).unwrap().double_value(&[]), 0.0);
}

#[test]
fn gradient_is_mu_times_the_difference_and_the_snapshot_does_not_move() {
    let mut net = Net::new(3).unwrap();
    let mu = 0.37;
    let proximal = Proximal::new(net.parameters(), mu).unwrap();
    let global = net.to_flat().unwrap();
    // Move the model away from the snapshot (set_flat writes in place, without gradients).
    let moved: Vec<f32> = global
        .iter()
        .enumerate()
        .map(|(i, v)| v + ((i % 7) as f32 - 3.0) * 0.01)
        .collect();
    net.set_flat(&moved).unwrap();
    let term = proximal.term(net.parameters()).unwrap();
    term.backward();
    let mut grads = Vec::new();
    for p in net.parameters() {
        grads.extend(Vec::<f32>::try_from(p.grad().reshape([-1])).unwrap());
    }
    for ((g, w), w0) in grads.iter().zip(&moved).zip(&global) {
        let expected = mu as f32 * (w - w0);
        assert!((g - expected).abs() < 1e-6, "{g} vs {expected}");
    }
    // The snapshot was a copy: the term at the moved model is not 0, and it is mu/2 * ||d||^2.
    let expected = mu / 2.0 * l2_distance(&moved, &global).powi(2);
    assert!((term.double_value(&[]) - expected).abs() < 1e-6 * expected.max(1.0));
}

#[test]
fn mu_zero_trains_exactly_as_plain_training() {
    let data = Batches::new(&small_train_set(200)).unwrap();
    let config = TrainConfig::default();
    let mut plain = Net::new(42).unwrap();
    let plain_loss = train_one_epoch_on(&mut plain, &data, &config).unwrap();
    let mut none = Net::new(42).unwrap();
    let none_loss = train_one_epoch_with(&mut none, &data, &config, None).unwrap();
    let mut zero = Net::new(42).unwrap();
    let proximal = Proximal::new(zero.parameters(), 0.0).unwrap();
    let zero_loss = train_one_epoch_with(&mut zero, &data, &config, Some(&proximal)).unwrap();
    assert_eq!(plain_loss.to_bits(), none_loss.to_bits());
    assert_eq!(plain_loss.to_bits(), zero_loss.to_bits());
    let plain = plain.to_flat().unwrap();
    assert_eq!(plain, none.to_flat().unwrap());
    assert_eq!(plain, zero.to_flat().unwrap(), "mu = 0 adds nothing");
}

#[test]
fn a_huge_mu_keeps_the_model_near_the_global_one() {
    let data = Batches::new(&small_train_set(800)).unwrap();
    let config = TrainConfig::default();
    let start = Net::new(42).unwrap().to_flat().unwrap();
    let drift = |mu: Option<f64>| {
        let mut net = Net::new(42).unwrap();
        let proximal = mu.map(|mu| Proximal::new(net.parameters(), mu).unwrap());
        let loss = train_one_epoch_with(&mut net, &data, &config, proximal.as_ref()).unwrap();
        (l2_distance(&net.to_flat().unwrap(), &start), loss)
    };
    let (plain, plain_loss) = drift(None);
    let (small, _) = drift(Some(0.01));
    let (huge, huge_loss) = drift(Some(100.0));
    assert!(plain > 0.05, "plain training moves the model: {plain}");
    assert!(small < plain, "mu = 0.01: {small} vs {plain}");
    assert!(huge < 0.2 * plain, "mu = 100: {huge} vs {plain}");
    // The reported loss is the data loss: held near the untrained model, it stays higher.
    assert!(huge_loss > plain_loss, "{huge_loss} vs {plain_loss}");
}

#[test]
fn mismatched_parameters_and_bad_mu_are_refused() {
    let net = Net::new(1).unwrap();
    let proximal = Proximal::new(net.parameters(), 0.1).unwrap();
    let err = proximal.term(&net.parameters()[1..]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ProximalCount {
                expected: 8,
                found: 7
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("7 parameter tensors"), "{err}");
    let mut swapped: Vec<Tensor> = net.parameters().iter().map(Tensor::shallow_clone).collect();
    swapped.swap(0, 2);
    let err = proximal
        .add_to(&Tensor::from(0.0f32), &swapped)
        .unwrap_err();
    assert!(
        matches!(&err, Error::ProximalShape { index: 0, expected, found }
            if expected == &[10, 1, 5, 5] && found == &[20, 10, 5, 5]),
        "{err:?}"
    );
    // Training with a snapshot of another model fails before changing anything.
    let other = [Tensor::zeros([3], (Kind::Float, tch::Device::Cpu))];
    let proximal = Proximal::new(&other, 0.1).unwrap();
    let mut net = Net::new(1).unwrap();
    let before = net.to_flat().unwrap();
    let data = Batches::new(&small_train_set(200)).unwrap();
    let err = train_one_epoch_with(&mut net, &data, &TrainConfig::default(), Some(&proximal))
        .unwrap_err();
    assert!(matches!(err, Error::ProximalCount { .. }), "{err:?}");
    assert_eq!(net.to_flat().unwrap(), before);
    for mu in [-0.1, f64::NAN, f64::INFINITY] {
        let err = Proximal::new(net.parameters(), mu).unwrap_err();
        assert!(matches!(err, Error::ProximalMu(_)), "{err:?}");
        assert!(err.to_string().contains("finite number >= 0"), "{err}");
    }
}
