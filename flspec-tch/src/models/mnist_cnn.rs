//! The CNN of the SecAgg MNIST example (the seed tutorial's `Net`) and its parameters as one flat
//! `f32` vector for averaging whole models. CPU only.
//!
//! ```text
//! conv1 1->10 k5 -> max_pool 2 -> relu -> conv2 10->20 k5 -> max_pool 2 -> relu -> view(-1, 320)
//!   -> fc1 320->50 -> relu -> fc2 50->10 -> log_softmax
//! ```
//! Parameters are created in PyTorch's order with PyTorch's default initialisation
//! (`kaiming_uniform_(a = sqrt(5))` for weights, `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for biases),
//! so `Net::new(42)` draws what `torch.manual_seed(42); Net()` draws.
//!
//! ```no_run
//! use flspec_tch::datasets::mnist::Mnist;
//! use flspec_tch::models::mnist_cnn::Net;
//! use flspec_tch::train::{self, TrainConfig};
//!
//! let shard = Mnist::load_bundled()?.shard(0, 2)?;
//! let mut net = Net::new(42)?;
//! let loss = train::train_one_epoch(&mut net, &shard.train, &TrainConfig::default())?;
//! let accuracy = train::validate(&net, &shard.test, 32)?;
//! let flat: Vec<f32> = net.to_flat()?; // 21,840 values, in PARAMETERS order
//! net.set_flat(&flat)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::{Mutex, PoisonError};

use tch::nn;
use tch::{Device, Tensor};

use crate::error::{Error, Result};

/// A parameter tensor's name and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// PyTorch's name, as in `Net().state_dict()`.
    pub name: &'static str,
    /// Its shape.
    pub shape: &'static [i64],
}

impl ParamSpec {
    /// The number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product::<i64>() as usize
    }
}

/// The parameters, in the order of the flat vector ([`Net::to_flat`]) and of PyTorch's
/// `state_dict()`.
pub const PARAMETERS: [ParamSpec; 8] = [
    ParamSpec {
        name: "conv1.weight",
        shape: &[10, 1, 5, 5],
    },
    ParamSpec {
        name: "conv1.bias",
        shape: &[10],
    },
    ParamSpec {
        name: "conv2.weight",
        shape: &[20, 10, 5, 5],
    },
    ParamSpec {
        name: "conv2.bias",
        shape: &[20],
    },
    ParamSpec {
        name: "fc1.weight",
        shape: &[50, 320],
    },
    ParamSpec {
        name: "fc1.bias",
        shape: &[50],
    },
    ParamSpec {
        name: "fc2.weight",
        shape: &[10, 50],
    },
    ParamSpec {
        name: "fc2.bias",
        shape: &[10],
    },
];

/// The length of the flat parameter vector: the sum of [`PARAMETERS`]' sizes.
pub const NUM_PARAMETERS: usize = 21_840;

/// The seed tutorial's `Net`, on the CPU.
pub struct Net {
    vs: nn::VarStore,
    /// The parameters, in [`PARAMETERS`] order.
    params: Vec<Tensor>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("parameters", &NUM_PARAMETERS)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// A freshly initialised model: `tch::manual_seed(seed)` (libtorch's global generator, as
    /// `torch.manual_seed`), then PyTorch's default initialisation in PyTorch's order. Calls on
    /// several threads are serialised, so the same seed always gives the same model.
    ///
    /// # Errors
    /// [`Error::Torch`] if libtorch fails.
    pub fn new(seed: i64) -> Result<Self> {
        // Seeding and drawing must not interleave with another thread's `Net::new` (the local
        // runtime builds collaborators' models on threads), or the same seed gives other values.
        static INIT: Mutex<()> = Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let mut params = Vec::with_capacity(PARAMETERS.len());
        for pair in PARAMETERS.chunks_exact(2) {
            let (weight, bias) = (&pair[0], &pair[1]);
            let (layer, _) = weight.name.split_once('.').unwrap_or((weight.name, ""));
            let fan_in: i64 = weight.shape[1..].iter().product();
            let fan_in = fan_in as f64;
            // torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5)), computed as PyTorch does.
            let a = 5f64.sqrt();
            let gain = (2.0 / (1.0 + a * a)).sqrt();
            let w_bound = 3f64.sqrt() * (gain / fan_in.sqrt());
            let b_bound = 1.0 / fan_in.sqrt();
            let layer = root.sub(layer);
            params.push(layer.f_var(
                "weight",
                weight.shape,
                nn::Init::Uniform {
                    lo: -w_bound,
                    up: w_bound,
                },
            )?);
            params.push(layer.f_var(
                "bias",
                bias.shape,
                nn::Init::Uniform {
                    lo: -b_bound,
                    up: b_bound,
                },
            )?);
        }
        Ok(Self { vs, params })
    }

    /// The log-probabilities of the 10 classes, `[N, 10]`, for images `[N, 1, 28, 28]`.
    ///
    /// # Errors
    /// [`Error::Torch`], e.g. for input of another shape.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let [c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b] = self.params.as_slice() else {
            unreachable!("Net::new creates exactly 8 parameters");
        };
        let pool = |x: Tensor| x.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        let x = pool(xs.f_conv2d(c1w, Some(c1b), [1, 1], [0, 0], [1, 1], 1)?)?.f_relu()?;
        let x = pool(x.f_conv2d(c2w, Some(c2b), [1, 1], [0, 0], [1, 1], 1)?)?.f_relu()?;
        let x = x.f_view([-1, 320])?;
        let x = x.f_linear(f1w, Some(f1b))?.f_relu()?;
        Ok(x.f_linear(f2w, Some(f2b))?.f_log_softmax(1, None)?)
    }

    /// The parameters' variable store (for an optimizer, or saving with `VarStore::save`).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The parameter tensors, in [`PARAMETERS`] order.
    pub fn parameters(&self) -> &[Tensor] {
        &self.params
    }

    /// All parameters as one vector of [`NUM_PARAMETERS`] values: each tensor of [`PARAMETERS`]
    /// in turn, flattened row-major.
    ///
    /// # Errors
    /// [`Error::Torch`] if libtorch fails.
    pub fn to_flat(&self) -> Result<Vec<f32>> {
        let mut flat = Vec::with_capacity(NUM_PARAMETERS);
        for p in &self.params {
            flat.extend(Vec::<f32>::try_from(&p.f_detach()?.f_reshape([-1])?)?);
        }
        Ok(flat)
    }

    /// Overwrites all parameters from a vector laid out as [`Net::to_flat`]'s.
    ///
    /// # Errors
    /// [`Error::ParameterCount`] unless `flat.len() == NUM_PARAMETERS`; [`Error::Torch`].
    pub fn set_flat(&mut self, flat: &[f32]) -> Result<()> {
        if flat.len() != NUM_PARAMETERS {
            return Err(Error::ParameterCount {
                expected: NUM_PARAMETERS,
                found: flat.len(),
            });
        }
        let mut offset = 0;
        for (p, spec) in self.params.iter_mut().zip(&PARAMETERS) {
            let values = &flat[offset..offset + spec.numel()];
            offset += spec.numel();
            let src = Tensor::f_from_slice(values)?.f_reshape(spec.shape)?;
            tch::no_grad(|| p.f_copy_(&src))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tch::Kind;

    #[test]
    fn parameter_layout_has_21840_values() {
        assert_eq!(
            PARAMETERS.iter().map(ParamSpec::numel).sum::<usize>(),
            NUM_PARAMETERS
        );
        let net = Net::new(42).unwrap();
        for (p, spec) in net.parameters().iter().zip(&PARAMETERS) {
            assert_eq!(p.size(), spec.shape, "{}", spec.name);
        }
        let mut names: Vec<String> = net.var_store().variables().into_keys().collect();
        names.sort();
        let mut expected: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn flat_round_trip_and_seeded_init() {
        let net = Net::new(42).unwrap();
        let flat = net.to_flat().unwrap();
        assert_eq!(flat.len(), NUM_PARAMETERS);
        assert_eq!(
            Net::new(42).unwrap().to_flat().unwrap(),
            flat,
            "same seed, same model"
        );
        assert_ne!(Net::new(7).unwrap().to_flat().unwrap(), flat);
        // conv1.weight is within PyTorch's kaiming_uniform_(a = sqrt(5)) bound 1/sqrt(25).
        assert!(flat[..250].iter().all(|v| v.abs() <= 0.2));

        let mut other = Net::new(1).unwrap();
        other.set_flat(&flat).unwrap();
        assert_eq!(other.to_flat().unwrap(), flat);
        assert!(matches!(
            other.set_flat(&flat[1..]),
            Err(Error::ParameterCount { .. })
        ));
    }

    #[test]
    fn forward_gives_log_probabilities() {
        let net = Net::new(42).unwrap();
        let out = net
            .forward(&Tensor::zeros([3, 1, 28, 28], (Kind::Float, Device::Cpu)))
            .unwrap();
        assert_eq!(out.size(), [3, 10]);
        let total = out.exp().sum(Kind::Double).double_value(&[]);
        assert!((total - 3.0).abs() < 1e-5, "{total}");
    }
}
