//! The plain FedAvg / FedProx MNIST run of [`crate::fedavg_mnist`] as a hand-written tch loop,
//! without a flow or a runtime: the baseline of the `fedprox_bench` overhead benchmark, and the
//! cross-check that the flow computes exactly what the loop does (`tests/fedprox_noniid.rs`).
//!
//! Same work as the flow, in the same order, with the same functions: the same partition of the
//! training set and test shards, per round and collaborator (in collaborator order) set the
//! global weights, validate them on the test shard, snapshot them for FedProx, train the
//! round's local epochs, validate the local model, flatten it; then combine the models with the
//! run's rule weighted by training samples, and validate the new global model on the whole test
//! set. No attackers (the loop refuses them).
//!
//! ```no_run
//! use std::sync::Arc;
//! use flspec_examples::fedavg_mnist::RunOptions;
//! use flspec_tch::datasets::mnist::Mnist;
//!
//! let mut options = RunOptions::new(10, Arc::new(Mnist::load_bundled()?));
//! options.partition = "dirichlet:0.1".parse()?;
//! options.settings.mu = 0.01;
//! let run = flspec_examples::hand_loop::run(&options)?;
//! println!("final accuracy {:.4}", run.accuracy.last().copied().unwrap_or(0.0));
//! # Ok::<(), anyhow::Error>(())
//! ```

use anyhow::{Context, bail};
use flspec_tch::fedprox::Proximal;
use flspec_tch::models::mnist_cnn::Net;
use flspec_tch::train::{Batches, train_one_epoch_with, validate_on};

use crate::fedavg_mnist::RunOptions;

/// Samples per validation batch (the flow's).
const EVAL_BATCH: usize = 1000;

/// What a hand-written run computed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HandRun {
    /// The final global model, as [`Net::to_flat`] lays it out.
    pub model: Vec<f32>,
    /// Per round: the new global model's accuracy on the whole test set.
    pub accuracy: Vec<f64>,
    /// Per round: the mean training loss (last local epoch), weighted by training samples.
    pub train_loss: Vec<f64>,
}

/// Runs `options` (its collaborators, data, partition, settings and seed) as a plain loop.
///
/// # Errors
/// Attackers in `options` (the loop has none), the options' own checks, a partition or
/// libtorch error, or a round in which every model holds a NaN or an infinity.
pub fn run(options: &RunOptions) -> anyhow::Result<HandRun> {
    if !options.attackers.is_empty() {
        bail!("the hand-written loop runs no attackers; remove `--attack`");
    }
    options.validate()?;
    let settings = &options.settings;
    let count = options.collaborators.len();
    let partition = options.partition()?;
    let mut sites = Vec::with_capacity(count);
    for index in 0..count {
        let train = options.data.train.subset(partition.site(index))?;
        if train.is_empty() {
            bail!("collaborator {index} has no training samples");
        }
        let test = options.data.test.shard(index, count)?;
        sites.push((Batches::new(&train)?, Batches::new(&test)?));
    }
    let all_test = Batches::new(&options.data.test)?;
    let mut net = Net::new(0)?;
    let mut eval = Net::new(0)?;
    let mut global = Net::new(options.seed)?.to_flat()?;
    let mut out = HandRun::default();
    for round in 0..settings.rounds {
        let config = settings.train_config(round);
        let epochs = settings.epochs.at(u64::from(round));
        let mut models = Vec::with_capacity(count);
        let mut losses = Vec::with_capacity(count);
        for (train, test) in &sites {
            net.set_flat(&global)?;
            validate_on(&net, test, EVAL_BATCH)?;
            let proximal = if settings.mu > 0.0 {
                Some(Proximal::new(net.parameters(), settings.mu)?)
            } else {
                None
            };
            let mut loss = 0.0;
            for _ in 0..epochs {
                loss = train_one_epoch_with(&mut net, train, &config, proximal.as_ref())?;
            }
            validate_on(&net, test, EVAL_BATCH)?;
            let model = net.to_flat()?;
            // The flow's report: how far training moved the model.
            let distance: f64 = model
                .iter()
                .zip(&global)
                .map(|(l, g)| (f64::from(*l) - f64::from(*g)).powi(2))
                .sum();
            std::hint::black_box(distance.sqrt());
            models.push((model, train.len() as f64));
            losses.push(loss);
        }
        let updates: Vec<(&[f32], f64)> = models
            .iter()
            .filter(|(m, _)| m.iter().all(|v| v.is_finite()))
            .map(|(m, w)| (m.as_slice(), *w))
            .collect();
        if updates.is_empty() {
            bail!("round {round}: every model holds a NaN or an infinity");
        }
        let mut model = vec![0.0f32; global.len()];
        settings
            .rule
            .aggregate(&updates, &mut model)
            .context("aggregating the models")?;
        eval.set_flat(&model)?;
        out.accuracy
            .push(validate_on(&eval, &all_test, EVAL_BATCH)?);
        let samples: f64 = models.iter().map(|(_, w)| w).sum();
        out.train_loss.push(
            models
                .iter()
                .zip(&losses)
                .map(|((_, w), l)| l * w)
                .sum::<f64>()
                / samples,
        );
        global = model;
    }
    out.model = global;
    Ok(out)
}
