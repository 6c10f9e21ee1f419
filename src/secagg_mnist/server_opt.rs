//! The server optimizer the aggregator applies to each round's sum: FedAvg (the seed's, the
//! default) or one of Flower's server-side strategies FedAvgM, FedAdam, FedYogi and FedAdagrad
//! ([`flspec::fl::aggregate`]).
//!
//! All of them need only the weighted sum of the collaborators' models and the summed weight,
//! which is exactly what secure aggregation reveals: the aggregator builds a
//! [`WeightedSum`] from the unmasked sum
//! ([`super::update::weighted_sum`]) and hands it to
//! [`ServerOptimizer::step`]. The optimizer's state (the moments, the momentum) lives in the
//! aggregator's private [`super::Coordinator`] and is never sent to a collaborator.
//!
//! On the command line a setting is `NAME[:KEY=VALUE,...]`: `fedavg`, `fedavgm`, `fedadam`,
//! `fedyogi`, `fedadagrad`, each with Flower 1.42's defaults, which keys override:
//!
//! | name | keys (Flower's defaults) |
//! |---|---|
//! | `fedavg` | none |
//! | `fedavgm` | `lr` = server_learning_rate (1.0), `momentum` = server_momentum (0.0) |
//! | `fedadam` | `eta` or `lr` (0.1), `tau` (1e-9), `beta_1` (0.9), `beta_2` (0.99) |
//! | `fedyogi` | `eta` or `lr` (0.01), `tau` (1e-3), `beta_1` (0.9), `beta_2` (0.99) |
//! | `fedadagrad` | `eta` or `lr` (0.1), `tau` (1e-9) |
//!
//! ```
//! use flspec_examples::secagg_mnist::ServerOpt;
//! let opt: ServerOpt = "fedadam:eta=0.01,tau=1e-3".parse()?;
//! assert_eq!(opt.name(), "FedAdam");
//! assert_eq!(opt.to_string().parse::<ServerOpt>()?, opt);
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::str::FromStr;

use flspec::fl::aggregate::{
    AggregateError, FedAvgM, FedOpt, FedOptConfig, FedOptKind, ServerOptimizer, WeightedSum,
};
use serde::{Deserialize, Serialize};

/// Which server optimizer turns a round's sum into the next global model, with its
/// hyper-parameters (Flower's names). Part of the public [`super::Settings`]; the optimizer's
/// state is the aggregator's alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerOpt {
    /// The sample-weighted mean of the collaborators' models (the seed's; Flower's `FedAvg`).
    #[default]
    FedAvg,
    /// FedAvg with server momentum (Hsu et al. 2019; Flower's `FedAvgM`).
    FedAvgM {
        /// Flower's `server_learning_rate` (default 1.0).
        server_learning_rate: f64,
        /// Flower's `server_momentum` (default 0.0, which is FedAvg).
        server_momentum: f64,
    },
    /// FedAdam (Reddi et al. 2021; Flower's `FedAdam`).
    FedAdam(FedOptConfig),
    /// FedYogi (Reddi et al. 2021; Flower's `FedYogi`).
    FedYogi(FedOptConfig),
    /// FedAdagrad (Reddi et al. 2021; Flower's `FedAdagrad`).
    FedAdagrad(FedOptConfig),
}

impl ServerOpt {
    /// The command-line names, in the order of the table above.
    pub const NAMES: [&'static str; 5] = ["fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad"];

    /// The optimizer `name` (one of [`ServerOpt::NAMES`]) with Flower 1.42's defaults.
    ///
    /// # Errors
    /// An unknown name, with the choices.
    ///
    /// ```
    /// use flspec_examples::secagg_mnist::ServerOpt;
    /// let ServerOpt::FedYogi(c) = ServerOpt::flower_default("fedyogi")? else { panic!() };
    /// assert_eq!((c.eta, c.tau), (0.01, 1e-3));
    /// # Ok::<(), String>(())
    /// ```
    pub fn flower_default(name: &str) -> Result<Self, String> {
        Ok(match name {
            "fedavg" => ServerOpt::FedAvg,
            "fedavgm" => ServerOpt::FedAvgM {
                server_learning_rate: 1.0,
                server_momentum: 0.0,
            },
            "fedadam" => ServerOpt::FedAdam(FedOptConfig::flower_default(FedOptKind::Adam)),
            "fedyogi" => ServerOpt::FedYogi(FedOptConfig::flower_default(FedOptKind::Yogi)),
            "fedadagrad" => {
                ServerOpt::FedAdagrad(FedOptConfig::flower_default(FedOptKind::Adagrad))
            }
            other => {
                return Err(format!(
                    "unknown server optimizer `{other}`; choose one of {}",
                    Self::NAMES.join(", ")
                ));
            }
        })
    }

    /// The strategy's name as Flower spells it (`FedAdam`).
    ///
    /// ```
    /// assert_eq!(flspec_examples::secagg_mnist::ServerOpt::FedAvg.name(), "FedAvg");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            ServerOpt::FedAvg => "FedAvg",
            ServerOpt::FedAvgM { .. } => "FedAvgM",
            ServerOpt::FedAdam(_) => "FedAdam",
            ServerOpt::FedYogi(_) => "FedYogi",
            ServerOpt::FedAdagrad(_) => "FedAdagrad",
        }
    }

    /// The command-line name (`fedadam`).
    fn key(&self) -> &'static str {
        match self {
            ServerOpt::FedAvg => "fedavg",
            ServerOpt::FedAvgM { .. } => "fedavgm",
            ServerOpt::FedAdam(_) => "fedadam",
            ServerOpt::FedYogi(_) => "fedyogi",
            ServerOpt::FedAdagrad(_) => "fedadagrad",
        }
    }

    /// The same optimizer with server learning rate `lr` (FedAvgM's `server_learning_rate`,
    /// FedOpt's `eta`), as `--server-lr` sets it.
    ///
    /// # Errors
    /// For FedAvg, which has no server learning rate (FedAvgM with `lr` is FedAvg with one).
    ///
    /// ```
    /// use flspec_examples::secagg_mnist::ServerOpt;
    /// let opt = ServerOpt::flower_default("fedadam")?.with_server_lr(0.01)?;
    /// assert_eq!(opt.to_string(), "fedadam:eta=0.01");
    /// assert!(ServerOpt::FedAvg.with_server_lr(0.5).is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn with_server_lr(mut self, lr: f64) -> Result<Self, String> {
        match &mut self {
            ServerOpt::FedAvg => {
                return Err(format!(
                    "`--server-lr {lr}`: FedAvg has no server learning rate; use `--server-opt fedavgm` (FedAvg with a server learning rate and momentum) or a FedOpt optimizer"
                ));
            }
            ServerOpt::FedAvgM {
                server_learning_rate,
                ..
            } => *server_learning_rate = lr,
            ServerOpt::FedAdam(c) | ServerOpt::FedYogi(c) | ServerOpt::FedAdagrad(c) => c.eta = lr,
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks the hyper-parameters: learning rates positive and finite, momentum and the betas
    /// in `[0, 1)`, τ positive and finite.
    ///
    /// # Errors
    /// The first value out of range, and its range.
    ///
    /// ```
    /// use flspec_examples::secagg_mnist::ServerOpt;
    /// assert!("fedyogi:tau=0".parse::<ServerOpt>().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        let positive = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{}: `{what}` = {v} must be positive and finite",
                    self.name()
                ))
            }
        };
        let unit = |what: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{}: `{what}` = {v} must lie in [0, 1)",
                    self.name()
                ))
            }
        };
        match self {
            ServerOpt::FedAvg => Ok(()),
            ServerOpt::FedAvgM {
                server_learning_rate,
                server_momentum,
            } => {
                positive("lr", *server_learning_rate)?;
                unit("momentum", *server_momentum)
            }
            ServerOpt::FedAdam(c) | ServerOpt::FedYogi(c) | ServerOpt::FedAdagrad(c) => {
                positive("eta", c.eta)?;
                positive("tau", c.tau)?;
                unit("beta_1", c.beta_1)?;
                unit("beta_2", c.beta_2)
            }
        }
    }

    /// The optimizer's state for a run whose global model is now `initial`; `None` for FedAvg,
    /// which keeps no state.
    pub(crate) fn start(&self, initial: Vec<f32>) -> Option<ServerState> {
        match *self {
            ServerOpt::FedAvg => None,
            ServerOpt::FedAvgM {
                server_learning_rate,
                server_momentum,
            } => Some(ServerState::AvgM(FedAvgM::new(
                initial,
                server_learning_rate,
                server_momentum,
            ))),
            ServerOpt::FedAdam(c) => {
                Some(ServerState::Opt(FedOpt::new(FedOptKind::Adam, c, initial)))
            }
            ServerOpt::FedYogi(c) => {
                Some(ServerState::Opt(FedOpt::new(FedOptKind::Yogi, c, initial)))
            }
            ServerOpt::FedAdagrad(c) => Some(ServerState::Opt(FedOpt::new(
                FedOptKind::Adagrad,
                c,
                initial,
            ))),
        }
    }

    /// The keys that differ from Flower's defaults, as `(key, value)`.
    fn overrides(&self) -> Vec<(&'static str, f64)> {
        let Ok(default) = Self::flower_default(self.key()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match (self, default) {
            (
                ServerOpt::FedAvgM {
                    server_learning_rate: lr,
                    server_momentum: m,
                },
                ServerOpt::FedAvgM {
                    server_learning_rate: lr0,
                    server_momentum: m0,
                },
            ) => {
                if *lr != lr0 {
                    out.push(("lr", *lr));
                }
                if *m != m0 {
                    out.push(("momentum", *m));
                }
            }
            (
                ServerOpt::FedAdam(c) | ServerOpt::FedYogi(c) | ServerOpt::FedAdagrad(c),
                ServerOpt::FedAdam(d) | ServerOpt::FedYogi(d) | ServerOpt::FedAdagrad(d),
            ) => {
                for (key, v, v0) in [
                    ("eta", c.eta, d.eta),
                    ("tau", c.tau, d.tau),
                    ("beta_1", c.beta_1, d.beta_1),
                    ("beta_2", c.beta_2, d.beta_2),
                ] {
                    if v != v0 {
                        out.push((key, v));
                    }
                }
            }
            _ => {}
        }
        out
    }
}

impl fmt::Display for ServerOpt {
    /// `NAME[:KEY=VALUE,...]`, with only the keys that differ from Flower's defaults; parses
    /// back to the same setting.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())?;
        for (i, (key, value)) in self.overrides().into_iter().enumerate() {
            let sep = if i == 0 { ':' } else { ',' };
            write!(f, "{sep}{key}={value}")?;
        }
        Ok(())
    }
}

impl FromStr for ServerOpt {
    type Err = String;

    /// `NAME[:KEY=VALUE,...]`: see the module's table for the names and keys.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, keys) = s.split_once(':').unwrap_or((s, ""));
        let mut opt = Self::flower_default(name.trim())?;
        for pair in keys.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!(
                    "`{s}`: expected KEY=VALUE after `{name}:`, found `{pair}` (e.g. `fedadam:eta=0.01,tau=1e-3`)"
                ));
            };
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|e| format!("`{s}`: `{key}` = `{value}` is not a number: {e}"))?;
            let key = key.trim();
            let known = match &mut opt {
                ServerOpt::FedAvg => None,
                ServerOpt::FedAvgM {
                    server_learning_rate,
                    server_momentum,
                } => match key {
                    "lr" | "server_learning_rate" => Some(server_learning_rate),
                    "momentum" | "server_momentum" => Some(server_momentum),
                    _ => None,
                },
                ServerOpt::FedAdam(c) | ServerOpt::FedYogi(c) | ServerOpt::FedAdagrad(c) => {
                    match key {
                        "eta" | "lr" => Some(&mut c.eta),
                        "tau" => Some(&mut c.tau),
                        "beta_1" => Some(&mut c.beta_1),
                        "beta_2" => Some(&mut c.beta_2),
                        _ => None,
                    }
                }
            };
            let Some(slot) = known else {
                let keys = match opt {
                    ServerOpt::FedAvg => "none",
                    ServerOpt::FedAvgM { .. } => "lr, momentum",
                    _ => "eta (or lr), tau, beta_1, beta_2",
                };
                return Err(format!(
                    "`{s}`: {} has no key `{key}`; its keys: {keys}",
                    opt.name()
                ));
            };
            *slot = value;
        }
        opt.validate()?;
        Ok(opt)
    }
}

/// A server optimizer's state between rounds: the aggregator's alone, never serialized into the
/// flow state and never sent.
pub(crate) enum ServerState {
    /// FedAvgM: the global model and the momentum.
    AvgM(FedAvgM),
    /// FedAdam, FedYogi, FedAdagrad: the global model and both moments.
    Opt(FedOpt),
}

impl ServerState {
    /// Applies one round's sum and returns the new global model.
    pub(crate) fn step(&mut self, sum: &WeightedSum) -> Result<&[f32], AggregateError> {
        match self {
            ServerState::AvgM(opt) => opt.step(sum),
            ServerState::Opt(opt) => opt.step(sum),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_name_parses_to_flower_defaults_and_round_trips() {
        for name in ServerOpt::NAMES {
            let opt: ServerOpt = name.parse().unwrap();
            assert_eq!(opt, ServerOpt::flower_default(name).unwrap());
            assert_eq!(opt.to_string(), name);
        }
        let opt: ServerOpt = "fedavgm:lr=0.5,momentum=0.9".parse().unwrap();
        assert_eq!(
            opt,
            ServerOpt::FedAvgM {
                server_learning_rate: 0.5,
                server_momentum: 0.9
            }
        );
        assert_eq!(opt.to_string().parse::<ServerOpt>().unwrap(), opt);
        let opt: ServerOpt = "fedadam:lr=0.01,tau=0.001,beta_1=0.5".parse().unwrap();
        let ServerOpt::FedAdam(c) = opt else {
            panic!("{opt:?}")
        };
        assert_eq!((c.eta, c.tau, c.beta_1, c.beta_2), (0.01, 1e-3, 0.5, 0.99));
        assert_eq!(opt.to_string(), "fedadam:eta=0.01,tau=0.001,beta_1=0.5");
    }

    #[test]
    fn bad_settings_name_the_choices() {
        let err = "fedsgd".parse::<ServerOpt>().unwrap_err();
        assert!(err.contains("fedavg, fedavgm, fedadam"), "{err}");
        let err = "fedadam:momentum=0.9".parse::<ServerOpt>().unwrap_err();
        assert!(err.contains("eta (or lr), tau"), "{err}");
        let err = "fedavg:lr=1".parse::<ServerOpt>().unwrap_err();
        assert!(err.contains("keys: none"), "{err}");
        let err = "fedadam:eta".parse::<ServerOpt>().unwrap_err();
        assert!(err.contains("KEY=VALUE"), "{err}");
        let err = "fedadam:eta=x".parse::<ServerOpt>().unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        let err = "fedavgm:momentum=1".parse::<ServerOpt>().unwrap_err();
        assert!(err.contains("[0, 1)"), "{err}");
        let err = "fedadam:eta=-0.1".parse::<ServerOpt>().unwrap_err();
        assert!(err.contains("positive"), "{err}");
    }

    #[test]
    fn fedavg_keeps_no_state_and_the_others_start_from_the_model() {
        assert!(ServerOpt::FedAvg.start(vec![1.0]).is_none());
        for name in &ServerOpt::NAMES[1..] {
            let mut state = ServerOpt::flower_default(name)
                .unwrap()
                .start(vec![1.0, 2.0])
                .unwrap();
            // The mean equals the model: every optimizer leaves it where it is.
            let sum = WeightedSum::from_sum(vec![2.0, 4.0], 2.0, 2).unwrap();
            assert_eq!(state.step(&sum).unwrap(), &[1.0, 2.0], "{name}");
        }
    }
}
