//! Server optimizers over a round's [`WeightedSum`]: [`FedOpt`] (FedAdam, FedYogi,
//! FedAdagrad) and [`FedAvgM`].

use serde::{Deserialize, Serialize};

use super::{AggregateError, Result, WeightedSum, check_len, check_total};

/// A server optimizer: turns the round's [`WeightedSum`] into the next global model, keeping
/// its state between rounds. Works on secure-aggregation sums.
pub trait ServerOptimizer {
    /// Applies one round and returns the new global weights.
    ///
    /// # Errors
    /// [`AggregateError::Empty`], [`AggregateError::NonPositiveWeight`],
    /// [`AggregateError::LengthMismatch`] if the sum is for another model.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOpt, ServerOptimizer, WeightedSum};
    /// let mut opt = FedOpt::fed_adam(vec![0.0]);
    /// let mut sum = WeightedSum::new(1);
    /// sum.add(&[1.0], 1.0)?;
    /// assert!(opt.step(&sum)?[0] > 0.0);
    /// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
    /// ```
    fn step(&mut self, sum: &WeightedSum) -> Result<&[f32]>;

    /// The current global weights.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOpt, ServerOptimizer};
    /// assert_eq!(FedOpt::fed_yogi(vec![1.0]).weights(), &[1.0]);
    /// ```
    fn weights(&self) -> &[f32];
}

/// Which FedOpt rule (Reddi et al. 2021, "Adaptive Federated Optimization").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FedOptKind {
    /// FedAdam: `v ← β₂v + (1−β₂)Δ²`, bias-corrected step as Flower's.
    Adam,
    /// FedYogi: `v ← v − (1−β₂)Δ²·sign(v − Δ²)`.
    Yogi,
    /// FedAdagrad: `v ← v + Δ²` (β₁ = 0 in Flower).
    Adagrad,
}

/// FedOpt hyper-parameters, with Flower's names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FedOptConfig {
    /// Server learning rate.
    pub eta: f64,
    /// Client learning rate (not used by the server step; send it to collaborators).
    pub eta_l: f64,
    /// Momentum decay.
    pub beta_1: f64,
    /// Second-moment decay.
    pub beta_2: f64,
    /// Adaptivity (ε).
    pub tau: f64,
}

impl FedOptConfig {
    /// Flower 1.42's defaults for `kind`: FedAdam η=0.1, η_l=0.1, β₁=0.9, β₂=0.99, τ=1e-9;
    /// FedYogi η=0.01, η_l=0.0316, β₁=0.9, β₂=0.99, τ=1e-3; FedAdagrad η=0.1, η_l=0.1, β₁=β₂=0, τ=1e-9.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOptConfig, FedOptKind};
    /// assert_eq!(FedOptConfig::flower_default(FedOptKind::Yogi).tau, 1e-3);
    /// ```
    pub fn flower_default(kind: FedOptKind) -> Self {
        match kind {
            FedOptKind::Adam => Self {
                eta: 1e-1,
                eta_l: 1e-1,
                beta_1: 0.9,
                beta_2: 0.99,
                tau: 1e-9,
            },
            FedOptKind::Yogi => Self {
                eta: 1e-2,
                eta_l: 0.0316,
                beta_1: 0.9,
                beta_2: 0.99,
                tau: 1e-3,
            },
            FedOptKind::Adagrad => Self {
                eta: 1e-1,
                eta_l: 1e-1,
                beta_1: 0.0,
                beta_2: 0.0,
                tau: 1e-9,
            },
        }
    }
}

/// FedOpt state kept between rounds (serde-able, so a checkpointed aggregator resumes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedOptState {
    /// The global weights `x_t`.
    pub current: Vec<f32>,
    /// First moment `m_t`.
    pub m_t: Vec<f32>,
    /// Second moment `v_t`.
    pub v_t: Vec<f32>,
    /// Rounds applied so far.
    pub round: u64,
}

/// A FedOpt server optimizer (FedAdam, FedYogi, FedAdagrad) as in Flower 1.42: each round
/// `Δ = mean − x`, `m ← β₁m + (1−β₁)Δ`, `v` by the rule, `x ← x + η·m / (√v + τ)`; FedAdam scales
/// η by `√(1−β₂^(t+1)) / (1−β₁^(t+1))` with `t` the 1-based round, exactly as Flower does.
///
/// ```
/// use flspec::fl::aggregate::{FedOpt, ServerOptimizer, WeightedSum};
/// let mut opt = FedOpt::fed_adagrad(vec![0.0, 0.0]);
/// let mut sum = WeightedSum::new(2);
/// sum.add(&[1.0, -1.0], 10.0)?;
/// let w = opt.step(&sum)?;
/// assert!(w[0] > 0.0 && w[1] < 0.0);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedOpt {
    kind: FedOptKind,
    config: FedOptConfig,
    state: FedOptState,
}

impl FedOpt {
    /// A FedOpt optimizer starting from `initial` weights.
    ///
    /// ```
    /// use flspec::fl::aggregate::{FedOpt, FedOptConfig, FedOptKind};
    /// let cfg = FedOptConfig { eta: 0.05, ..FedOptConfig::flower_default(FedOptKind::Adam) };
    /// let opt = FedOpt::new(FedOptKind::Adam, cfg, vec![0.0; 3]);
    /// assert_eq!(opt.state().round, 0);
    /// ```
    pub fn new(kind: FedOptKind, config: FedOptConfig, initial: Vec<f32>) -> Self {
        let n = initial.len();
        Self {
            kind,
            config,
            state: FedOptState {
                current: initial,
                m_t: vec![0.0; n],
                v_t: vec![0.0; n],
                round: 0,
            },
        }
    }

    /// FedAdam with Flower's defaults.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedOpt::fed_adam(vec![0.0]);
    /// assert_eq!(opt.config().beta_2, 0.99);
    /// ```
    pub fn fed_adam(initial: Vec<f32>) -> Self {
        Self::new(
            FedOptKind::Adam,
            FedOptConfig::flower_default(FedOptKind::Adam),
            initial,
        )
    }

    /// FedYogi with Flower's defaults.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedOpt::fed_yogi(vec![0.0]);
    /// assert_eq!(opt.config().eta, 0.01);
    /// ```
    pub fn fed_yogi(initial: Vec<f32>) -> Self {
        Self::new(
            FedOptKind::Yogi,
            FedOptConfig::flower_default(FedOptKind::Yogi),
            initial,
        )
    }

    /// FedAdagrad with Flower's defaults.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedOpt::fed_adagrad(vec![0.0]);
    /// assert_eq!(opt.config().beta_1, 0.0);
    /// ```
    pub fn fed_adagrad(initial: Vec<f32>) -> Self {
        Self::new(
            FedOptKind::Adagrad,
            FedOptConfig::flower_default(FedOptKind::Adagrad),
            initial,
        )
    }

    /// The hyper-parameters.
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::FedOpt::fed_adam(vec![]).config().eta, 0.1);
    /// ```
    pub fn config(&self) -> &FedOptConfig {
        &self.config
    }

    /// The state (to checkpoint it).
    ///
    /// ```
    /// assert!(flspec::fl::aggregate::FedOpt::fed_adam(vec![1.0]).state().m_t == [0.0]);
    /// ```
    pub fn state(&self) -> &FedOptState {
        &self.state
    }
}

impl ServerOptimizer for FedOpt {
    fn step(&mut self, sum: &WeightedSum) -> Result<&[f32]> {
        check_len(0, self.state.current.len(), sum.len())?;
        if sum.count() == 0 {
            return Err(AggregateError::Empty);
        }
        check_total(sum.total_weight())?;
        let FedOptConfig {
            eta,
            beta_1,
            beta_2,
            tau,
            ..
        } = self.config;
        self.state.round += 1;
        let t = self.state.round as f64;
        let eta_t = match self.kind {
            FedOptKind::Adam => {
                eta * (1.0 - beta_2.powf(t + 1.0)).sqrt() / (1.0 - beta_1.powf(t + 1.0))
            }
            FedOptKind::Yogi | FedOptKind::Adagrad => eta,
        };
        let inv = 1.0 / sum.total_weight();
        let st = &mut self.state;
        for (((x, m), v), s) in st
            .current
            .iter_mut()
            .zip(&mut st.m_t)
            .zip(&mut st.v_t)
            .zip(sum.as_slice())
        {
            let mean = (s * inv) as f32;
            let delta = f64::from(mean - *x);
            let m_new = beta_1 * f64::from(*m) + (1.0 - beta_1) * delta;
            let v_old = f64::from(*v);
            let d2 = delta * delta;
            let v_new = match self.kind {
                FedOptKind::Adam => beta_2 * v_old + (1.0 - beta_2) * d2,
                FedOptKind::Yogi => v_old - (1.0 - beta_2) * d2 * (v_old - d2).signum_or_zero(),
                FedOptKind::Adagrad => v_old + d2,
            };
            *m = m_new as f32;
            *v = v_new as f32;
            *x = (f64::from(*x) + eta_t * m_new / (v_new.sqrt() + tau)) as f32;
        }
        Ok(&self.state.current)
    }

    fn weights(&self) -> &[f32] {
        &self.state.current
    }
}

trait SignumOrZero {
    fn signum_or_zero(self) -> Self;
}

impl SignumOrZero for f64 {
    /// `numpy.sign`: 0 at 0 (`f64::signum` gives ±1).
    fn signum_or_zero(self) -> f64 {
        if self == 0.0 { 0.0 } else { self.signum() }
    }
}

/// FedAvgM state kept between rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedAvgMState {
    /// The global weights.
    pub current: Vec<f32>,
    /// The momentum vector, `None` before the first round.
    pub momentum: Option<Vec<f32>>,
}

/// FedAvg with server momentum (Hsu et al. 2019; Flower's `FedAvgM`): pseudo-gradient
/// `g = x − mean`, `v ← μ·v + g` (`v = g` in the first round), `x ← x − lr·v`.
///
/// ```
/// use flspec::fl::aggregate::{FedAvgM, ServerOptimizer, WeightedSum};
/// let mut opt = FedAvgM::new(vec![0.0], 1.0, 0.0); // plain FedAvg
/// let mut sum = WeightedSum::new(1);
/// sum.add(&[3.0], 1.0)?;
/// assert_eq!(opt.step(&sum)?, &[3.0]);
/// # Ok::<(), flspec::fl::aggregate::AggregateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedAvgM {
    /// Flower's `server_learning_rate` (default 1.0).
    pub server_learning_rate: f64,
    /// Flower's `server_momentum` (default 0.0).
    pub server_momentum: f64,
    state: FedAvgMState,
}

impl FedAvgM {
    /// FedAvgM from `initial` weights.
    ///
    /// ```
    /// let opt = flspec::fl::aggregate::FedAvgM::new(vec![0.0], 1.0, 0.9);
    /// assert!(opt.state().momentum.is_none());
    /// ```
    pub fn new(initial: Vec<f32>, server_learning_rate: f64, server_momentum: f64) -> Self {
        Self {
            server_learning_rate,
            server_momentum,
            state: FedAvgMState {
                current: initial,
                momentum: None,
            },
        }
    }

    /// The state (to checkpoint it).
    ///
    /// ```
    /// assert_eq!(flspec::fl::aggregate::FedAvgM::new(vec![2.0], 1.0, 0.0).state().current, [2.0]);
    /// ```
    pub fn state(&self) -> &FedAvgMState {
        &self.state
    }
}

impl ServerOptimizer for FedAvgM {
    fn step(&mut self, sum: &WeightedSum) -> Result<&[f32]> {
        check_len(0, self.state.current.len(), sum.len())?;
        if sum.count() == 0 {
            return Err(AggregateError::Empty);
        }
        check_total(sum.total_weight())?;
        let inv = 1.0 / sum.total_weight();
        let (lr, mu) = (self.server_learning_rate, self.server_momentum);
        let st = &mut self.state;
        let first = st.momentum.is_none();
        let mom = st
            .momentum
            .get_or_insert_with(|| vec![0.0; st.current.len()]);
        for ((x, v), s) in st
            .current
            .iter_mut()
            .zip(mom.iter_mut())
            .zip(sum.as_slice())
        {
            let mean = (s * inv) as f32;
            let g = *x - mean;
            let g = if mu > 0.0 {
                if first {
                    g
                } else {
                    (mu * f64::from(*v)) as f32 + g
                }
            } else {
                g
            };
            *v = g;
            *x = (f64::from(*x) - lr * f64::from(g)) as f32;
        }
        Ok(&self.state.current)
    }

    fn weights(&self) -> &[f32] {
        &self.state.current
    }
}
