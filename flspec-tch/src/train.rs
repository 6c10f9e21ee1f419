//! Local training and validation of an image classifier on MNIST-shaped data, as the seed
//! tutorial does it: SGD with momentum, batches in data-set order, mean loss per sample.

use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Reduction, Tensor};

use crate::datasets::mnist::{COLS, Dataset, ROWS};
use crate::error::{Error, Result};
use crate::fedprox::Proximal;
use crate::models::mnist_cnn::Net;

/// The seed tutorial's training hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// SGD learning rate (0.01).
    pub learning_rate: f64,
    /// SGD momentum (0.5).
    pub momentum: f64,
    /// Samples per batch (32); the last batch may be shorter.
    pub batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 0.01,
            momentum: 0.5,
            batch_size: 32,
        }
    }
}

/// A dataset as tensors: normalised images `[N, 1, 28, 28]` (f32) and labels `[N]` (i64).
#[derive(Debug)]
pub struct Batches {
    images: Tensor,
    labels: Tensor,
    len: usize,
}

impl Batches {
    /// Converts a dataset (see [`Dataset::normalized`]).
    ///
    /// # Errors
    /// [`Error::Torch`] if libtorch fails.
    pub fn new(data: &Dataset) -> Result<Self> {
        let len = data.len();
        let images = Tensor::f_from_slice(&data.normalized())?.f_view([
            len as i64,
            1,
            ROWS as i64,
            COLS as i64,
        ])?;
        let labels = Tensor::f_from_slice(data.labels())?.f_to_kind(Kind::Int64)?;
        Ok(Self {
            images,
            labels,
            len,
        })
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The same data on `device` (one copy, where training would otherwise move each batch to
    /// the model's device every epoch).
    ///
    /// # Errors
    /// [`Error::Torch`] if libtorch fails (e.g. a device it lacks).
    pub fn to_device(&self, device: tch::Device) -> Result<Self> {
        Ok(Self {
            images: self.images.f_to_device(device)?,
            labels: self.labels.f_to_device(device)?,
            len: self.len,
        })
    }

    /// `(images, labels)` batches of `batch_size` samples in dataset order (not shuffled, as the
    /// seed's loaders), the last one possibly shorter, on `device` (no copy if already there).
    fn iter(
        &self,
        batch_size: usize,
        device: tch::Device,
    ) -> impl Iterator<Item = Result<(Tensor, Tensor)>> + '_ {
        (0..self.len).step_by(batch_size.max(1)).map(move |start| {
            let n = batch_size.min(self.len - start) as i64;
            Ok((
                self.images
                    .f_narrow(0, start as i64, n)?
                    .f_to_device(device)?,
                self.labels
                    .f_narrow(0, start as i64, n)?
                    .f_to_device(device)?,
            ))
        })
    }
}

/// Trains `net` for one epoch over `data` in order with a fresh SGD optimizer (the seed creates
/// one per round), and returns the mean training loss: the sum over batches of
/// `nll_loss * batch_len`, divided by the number of samples (as the seed).
///
/// # Errors
/// [`Error::EmptyDataset`], [`Error::ZeroBatchSize`], [`Error::Torch`].
pub fn train_one_epoch(net: &mut Net, data: &Dataset, config: &TrainConfig) -> Result<f64> {
    train_one_epoch_on(net, &Batches::new(data)?, config)
}

/// [`train_one_epoch`] on data already converted to tensors.
///
/// # Errors
/// As [`train_one_epoch`].
pub fn train_one_epoch_on(net: &mut Net, data: &Batches, config: &TrainConfig) -> Result<f64> {
    train_one_epoch_with(net, data, config, None)
}

/// As [`train_one_epoch_on`], with FedProx's proximal term ([`Proximal::term`]) added to every
/// batch's loss when `proximal` is `Some`. The returned mean loss is the data loss alone (the
/// `nll_loss` without the term), as OpenFL's FedProx reports it (its `FedProxOptimizer` adds the
/// term's gradient in the step), so runs with different `mu` compare. With `None` this is
/// exactly [`train_one_epoch_on`].
///
/// # Errors
/// As [`train_one_epoch`]; [`Error::ProximalCount`] or [`Error::ProximalShape`] if `proximal`
/// was taken from another model.
pub fn train_one_epoch_with(
    net: &mut Net,
    data: &Batches,
    config: &TrainConfig,
    proximal: Option<&Proximal>,
) -> Result<f64> {
    if data.is_empty() {
        return Err(Error::EmptyDataset);
    }
    if config.batch_size == 0 {
        return Err(Error::ZeroBatchSize);
    }
    let mut opt = nn::Sgd {
        momentum: config.momentum,
        ..Default::default()
    }
    .build(net.var_store(), config.learning_rate)?;
    let mut total = 0.0;
    for batch in data.iter(config.batch_size, net.device()) {
        let (xs, ys) = batch?;
        opt.zero_grad();
        let loss = net
            .forward(&xs)?
            .f_nll_loss(&ys, None::<Tensor>, Reduction::Mean, -100)?;
        match proximal {
            None => loss.f_backward()?,
            Some(proximal) => proximal.add_to(&loss, net.parameters())?.f_backward()?,
        }
        opt.step();
        total += loss.f_double_value(&[])? * ys.size()[0] as f64;
    }
    // Free the gradients (libtorch's zero_grad sets them to none): a collaborator keeps its
    // model between rounds, and 88 KB of stale gradients each add up over many collaborators.
    opt.zero_grad();
    Ok(total / data.len() as f64)
}

/// The fraction of `data` that `net` classifies correctly (evaluated in batches, without
/// gradients). 0 for an empty dataset.
///
/// # Errors
/// [`Error::ZeroBatchSize`], [`Error::Torch`].
pub fn validate(net: &Net, data: &Dataset, batch_size: usize) -> Result<f64> {
    validate_on(net, &Batches::new(data)?, batch_size)
}

/// [`validate`] on data already converted to tensors.
///
/// # Errors
/// As [`validate`].
pub fn validate_on(net: &Net, data: &Batches, batch_size: usize) -> Result<f64> {
    if batch_size == 0 {
        return Err(Error::ZeroBatchSize);
    }
    if data.is_empty() {
        return Ok(0.0);
    }
    let correct = tch::no_grad(|| -> Result<i64> {
        let mut correct = 0;
        for batch in data.iter(batch_size, net.device()) {
            let (xs, ys) = batch?;
            let pred = net.forward(&xs)?.f_argmax(1, false)?;
            correct += pred
                .f_eq_tensor(&ys)?
                .f_sum(Kind::Int64)?
                .f_int64_value(&[])?;
        }
        Ok(correct)
    })?;
    Ok(correct as f64 / data.len() as f64)
}
