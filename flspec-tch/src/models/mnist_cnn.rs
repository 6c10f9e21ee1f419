//! The CNN of the SecAgg MNIST example (the seed tutorial's `Net`) and its parameters as one flat
//! `f32` vector for averaging whole models ([`Net::layout`], a [`Layout`]), on the CPU or a CUDA
//! device ([`Net::new_on`]).
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
//! flspec_tch::export::save_net(&net, "model.safetensors")?; // PyTorch's state_dict names
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::{LazyLock, Mutex, PoisonError};

use tch::nn;
use tch::{Device, Tensor};

use crate::error::Result;
use crate::params::Layout;

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

/// [`PARAMETERS`] as a [`Layout`], built once.
static LAYOUT: LazyLock<Layout> = LazyLock::new(|| {
    Layout::new(PARAMETERS.iter().map(|p| (p.name, p.shape)))
        .expect("PARAMETERS has distinct names and non-negative dimensions")
});

/// The seed tutorial's `Net`, on the CPU or a CUDA device.
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
    /// A freshly initialised model on the CPU: `tch::manual_seed(seed)` (libtorch's global
    /// generator, as `torch.manual_seed`), then PyTorch's default initialisation in PyTorch's
    /// order. Calls on several threads are serialised, so the same seed always gives the same
    /// model.
    ///
    /// # Errors
    /// [`Error::Torch`](crate::Error::Torch) if libtorch fails.
    pub fn new(seed: i64) -> Result<Self> {
        Self::new_on(seed, Device::Cpu)
    }

    /// As [`Net::new`], on `device` (see [`crate::device::DeviceChoice::resolve`]). The values
    /// are drawn on the CPU and then moved, so a seed gives the same model on every device.
    ///
    /// ```
    /// use flspec_tch::models::mnist_cnn::Net;
    ///
    /// let net = Net::new_on(42, tch::Device::Cpu)?;
    /// assert_eq!(net.device(), tch::Device::Cpu);
    /// assert_eq!(net.to_flat()?, Net::new(42)?.to_flat()?);
    /// # Ok::<(), flspec_tch::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Torch`](crate::Error::Torch) if libtorch fails, e.g. for a CUDA device that
    /// this libtorch lacks (check with [`DeviceChoice::resolve`](crate::device::DeviceChoice::resolve) first).
    pub fn new_on(seed: i64, device: Device) -> Result<Self> {
        // Seeding and drawing must not interleave with another thread's `Net::new` (the local
        // runtime builds collaborators' models on threads), or the same seed gives other values.
        static INIT: Mutex<()> = Mutex::new(());
        let guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
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
        drop(guard);
        if device == Device::Cpu {
            return Ok(Self { vs, params });
        }
        // A store on the device with copies of the CPU draws (not `VarStore::set_device`, which
        // panics where libtorch lacks the device; this returns the error).
        let moved = nn::VarStore::new(device);
        let root = moved.root();
        let params = PARAMETERS
            .iter()
            .zip(&params)
            .map(|(spec, value)| {
                let (layer, name) = spec.name.split_once('.').unwrap_or(("", spec.name));
                root.sub(layer).f_var_copy(name, value)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { vs: moved, params })
    }

    /// The layout of [`Net::to_flat`]'s vector: [`PARAMETERS`] in order, under PyTorch's
    /// `state_dict()` names.
    pub fn layout() -> &'static Layout {
        &LAYOUT
    }

    /// The device the parameters are on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The log-probabilities of the 10 classes, `[N, 10]`, for images `[N, 1, 28, 28]`.
    ///
    /// # Errors
    /// [`Error::Torch`](crate::Error::Torch), e.g. for input of another shape.
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
    /// in turn, flattened row-major ([`Net::layout`]). One allocation, each value copied once
    /// (see [`crate::params`]).
    ///
    /// # Errors
    /// [`Error::Torch`](crate::Error::Torch) if libtorch fails.
    pub fn to_flat(&self) -> Result<Vec<f32>> {
        LAYOUT.tensors_to_vec(&self.params)
    }

    /// As [`Net::to_flat`], into `out` (no allocation).
    ///
    /// # Errors
    /// [`Error::ParameterCount`](crate::Error::ParameterCount) unless
    /// `out.len() == NUM_PARAMETERS`; [`Error::Torch`](crate::Error::Torch).
    pub fn copy_flat_to(&self, out: &mut [f32]) -> Result<()> {
        LAYOUT.copy_tensors_to(&self.params, out)
    }

    /// Overwrites all parameters from a vector laid out as [`Net::to_flat`]'s (one `copy_` per
    /// tensor, no intermediate buffer).
    ///
    /// # Errors
    /// [`Error::ParameterCount`](crate::Error::ParameterCount) unless
    /// `flat.len() == NUM_PARAMETERS`; [`Error::Torch`](crate::Error::Torch).
    pub fn set_flat(&mut self, flat: &[f32]) -> Result<()> {
        LAYOUT.load_tensors_from(&mut self.params, flat)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::error::Error;
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
    fn layout_is_the_state_dict_order_and_matches_the_var_store() {
        let layout = Net::layout();
        assert_eq!(layout.len(), NUM_PARAMETERS);
        assert!(layout.names().eq(PARAMETERS.iter().map(|p| p.name)));
        let net = Net::new(3).unwrap();
        layout.check(net.var_store()).unwrap();
        // Through the var store (by name) and through the parameter list: the same vector.
        assert_eq!(
            layout.to_vec(net.var_store()).unwrap(),
            net.to_flat().unwrap()
        );
        let mut out = vec![0f32; NUM_PARAMETERS];
        net.copy_flat_to(&mut out).unwrap();
        assert_eq!(out, net.to_flat().unwrap());
        assert_eq!(net.device(), Device::Cpu);
    }

    /// CUDA where libtorch has none: an error, not a panic (`VarStore::set_device` would panic).
    #[test]
    fn new_on_a_missing_device_is_an_error() {
        if tch::Cuda::is_available() {
            eprintln!("skipped: libtorch sees a CUDA device here");
            return;
        }
        assert!(matches!(
            Net::new_on(42, Device::Cuda(0)),
            Err(Error::Torch(_))
        ));
    }

    #[test]
    fn set_flat_keeps_the_parameters_trainable_leaves() {
        let mut net = Net::new(3).unwrap();
        let flat: Vec<f32> = (0..NUM_PARAMETERS).map(|i| i as f32 * 1e-4).collect();
        net.set_flat(&flat).unwrap();
        for p in net.parameters() {
            assert!(p.requires_grad() && p.is_leaf());
        }
        assert_eq!(net.to_flat().unwrap(), flat);
        // The var store sees the same values (set_flat writes in place, no new tensors).
        assert_eq!(Net::layout().to_vec(net.var_store()).unwrap(), flat);
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
