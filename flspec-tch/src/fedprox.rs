//! FedProx's proximal term (Li et al., "Federated Optimization in Heterogeneous Networks",
//! MLSys 2020): each collaborator minimises its data loss plus `mu/2 * ||w - w_global||^2`,
//! which keeps its local model near the round's global model on non-IID data.
//!
//! Take a [`Proximal`] snapshot of the global model when a round's training starts (after
//! loading the aggregated weights), then add its term to every batch's loss, in one call
//! ([`Proximal::add_to`]), or let [`crate::train::train_one_epoch_with`] do it:
//!
//! ```no_run
//! use flspec_tch::datasets::mnist::Mnist;
//! use flspec_tch::fedprox::Proximal;
//! use flspec_tch::models::mnist_cnn::Net;
//! use flspec_tch::train::{self, Batches, TrainConfig};
//!
//! let shard = Mnist::load_bundled()?.shard(0, 10)?;
//! let mut net = Net::new(42)?;
//! // ... net.set_flat(&global_model)? ...
//! let proximal = Proximal::new(net.parameters(), 0.01)?;
//! let data = Batches::new(&shard.train)?;
//! let loss = train::train_one_epoch_with(&mut net, &data, &TrainConfig::default(), Some(&proximal))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a hand-written loop: `let loss = proximal.add_to(&data_loss, net.parameters())?;` before
//! `loss.backward()`. The term's gradient is `mu * (w - w_global)`, what OpenFL's
//! `FedProxOptimizer` adds in its step and what Flower's FedProx baseline gets from autograd.
//! `mu = 0` is plain FedAvg training.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// FedProx (Li et al. 2020): a snapshot of the global model's parameters (detached copies,
/// so training the model does not move them) and the proximal weight `mu`.
pub struct Proximal {
    /// Detached copies of the global parameters, in the model's parameter order.
    global: Vec<Tensor>,
    mu: f64,
}

impl std::fmt::Debug for Proximal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proximal")
            .field("mu", &self.mu)
            .field("tensors", &self.global.len())
            .finish_non_exhaustive()
    }
}

impl Proximal {
    /// Snapshots `global` (e.g. [`Net::parameters`](crate::models::mnist_cnn::Net::parameters)
    /// right after loading the round's global model): detached copies on the same devices.
    ///
    /// # Errors
    /// [`Error::ProximalMu`] unless `mu` is finite and `>= 0`; [`Error::Torch`] if libtorch fails.
    pub fn new(global: &[Tensor], mu: f64) -> Result<Self> {
        if !(mu.is_finite() && mu >= 0.0) {
            return Err(Error::ProximalMu(mu));
        }
        let global = global
            .iter()
            .map(|t| {
                // A new leaf outside autograd with the values (`detach` alone would share the
                // storage that training then updates in place).
                let mut copy = t.f_empty_like()?;
                tch::no_grad(|| copy.f_copy_(t))?;
                Ok(copy)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { global, mu })
    }

    /// The proximal weight `mu`.
    pub fn mu(&self) -> f64 {
        self.mu
    }

    /// `mu/2 * sum_i ||params_i - global_i||^2`, a scalar (f32) tensor, differentiable in
    /// `params`: its gradient is `mu * (params_i - global_i)`.
    ///
    /// # Errors
    /// [`Error::ProximalCount`] or [`Error::ProximalShape`] unless `params` has the snapshot's
    /// number of tensors and shapes, in order; [`Error::Torch`] if libtorch fails.
    pub fn term(&self, params: &[Tensor]) -> Result<Tensor> {
        self.check(params)?;
        let mut sum: Option<Tensor> = None;
        for (p, g) in params.iter().zip(&self.global) {
            let s = p.f_sub(g)?.f_square()?.f_sum(p.kind())?;
            sum = Some(match sum {
                None => s,
                Some(acc) => acc.f_add(&s)?,
            });
        }
        let sum = match sum {
            Some(sum) => sum,
            None => Tensor::f_zeros([], (Kind::Float, tch::Device::Cpu))?,
        };
        Ok(sum.f_mul_scalar(self.mu / 2.0)?)
    }

    /// `loss + term(params)`, in one call: the loss to call `backward` on.
    ///
    /// # Errors
    /// As [`Proximal::term`].
    pub fn add_to(&self, loss: &Tensor, params: &[Tensor]) -> Result<Tensor> {
        Ok(loss.f_add(&self.term(params)?)?)
    }

    /// `params` match the snapshot: same number of tensors, same shapes in order.
    fn check(&self, params: &[Tensor]) -> Result<()> {
        if params.len() != self.global.len() {
            return Err(Error::ProximalCount {
                expected: self.global.len(),
                found: params.len(),
            });
        }
        for (index, (p, g)) in params.iter().zip(&self.global).enumerate() {
            let (found, expected) = (p.size(), g.size());
            if found != expected {
                return Err(Error::ProximalShape {
                    index,
                    expected,
                    found,
                });
            }
        }
        Ok(())
    }
}
