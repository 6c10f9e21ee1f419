//! Byzantine collaborators: what an attacker does instead of sending its honest update.
//!
//! An attack is part of a collaborator's private state ([`super::Site`]), applied inside its
//! own step: the aggregator receives a model vector like any other and cannot tell.
//!
//! ```
//! use flspec_examples::fedavg_mnist::{Attack, Attacker};
//!
//! let a: Attacker = "Portland:sign-flip:10".parse()?;
//! assert_eq!(a.name, "Portland");
//! assert_eq!(a.attack, Attack::SignFlip { scale: 10.0 });
//! assert_eq!("noise".parse::<Attack>()?, Attack::Noise { std: 1.0 });
//! assert_eq!(a.to_string(), "Portland:sign-flip:10");
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The attack specs [`Attack::from_str`] takes, for error messages and `--help`.
pub const ATTACK_SPECS: &str = "sign-flip[:SCALE] (default 4), label-flip, noise[:STD] (default 1)";

/// What a Byzantine collaborator sends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Attack {
    /// Trains honestly, then sends `global − scale · (local − global)`: its update negated and
    /// scaled (Li et al. 2019's sign-flipping attack, with a scale).
    SignFlip {
        /// How much larger than the honest update the flipped one is (> 0).
        scale: f32,
    },
    /// Trains on flipped labels `9 − y` and sends the result (data poisoning).
    LabelFlip,
    /// Sends `global + N(0, std²)` per parameter instead of an update (a Gaussian attack).
    Noise {
        /// The noise's standard deviation (> 0).
        std: f32,
    },
}

impl Attack {
    /// The default scale of [`Attack::SignFlip`].
    pub const DEFAULT_SCALE: f32 = 4.0;
    /// The default standard deviation of [`Attack::Noise`].
    pub const DEFAULT_STD: f32 = 1.0;

    /// Turns the honestly trained `local` model into what the attacker sends, in place.
    /// `global` is the model the round started from; `noise_seed` seeds the Gaussian noise (the
    /// same seed gives the same noise). A label flip changed the training data and leaves
    /// `local` as it is.
    pub fn apply(&self, global: &[f32], local: &mut [f32], noise_seed: u64) {
        match *self {
            Attack::SignFlip { scale } => {
                for (l, g) in local.iter_mut().zip(global) {
                    *l = g - scale * (*l - g);
                }
            }
            Attack::LabelFlip => {}
            Attack::Noise { std } => {
                let mut rng = SplitMix64(noise_seed);
                for (l, g) in local.iter_mut().zip(global) {
                    *l = g + std * rng.normal();
                }
            }
        }
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::SignFlip { scale } => write!(f, "sign-flip:{scale}"),
            Attack::LabelFlip => f.write_str("label-flip"),
            Attack::Noise { std } => write!(f, "noise:{std}"),
        }
    }
}

impl FromStr for Attack {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (kind, param) = match s.split_once(':') {
            Some((kind, param)) => (kind, Some(param)),
            None => (s, None),
        };
        let positive = |what: &str, default: f32| -> anyhow::Result<f32> {
            let Some(p) = param else {
                return Ok(default);
            };
            let v: f32 = p
                .parse()
                .with_context(|| format!("attack `{s}`: {what} `{p}` is not a number"))?;
            if !(v.is_finite() && v > 0.0) {
                bail!("attack `{s}`: {what} must be a finite number > 0, got {p}");
            }
            Ok(v)
        };
        match kind {
            "sign-flip" => Ok(Attack::SignFlip {
                scale: positive("the scale", Attack::DEFAULT_SCALE)?,
            }),
            "label-flip" if param.is_none() => Ok(Attack::LabelFlip),
            "label-flip" => bail!("attack `{s}`: label-flip takes no parameter"),
            "noise" => Ok(Attack::Noise {
                std: positive("the standard deviation", Attack::DEFAULT_STD)?,
            }),
            _ => bail!("unknown attack `{s}`; attacks: {ATTACK_SPECS}"),
        }
    }
}

/// A collaborator and its attack (`--attack NAME:ATTACK`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attacker {
    /// The collaborator.
    pub name: String,
    /// What it sends instead of its honest update.
    pub attack: Attack,
}

impl fmt::Display for Attacker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.attack)
    }
}

impl FromStr for Attacker {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let Some((name, attack)) = s.split_once(':') else {
            bail!(
                "`--attack {s}`: expected NAME:ATTACK, e.g. Portland:sign-flip; attacks: {ATTACK_SPECS}"
            );
        };
        if name.is_empty() {
            bail!("`--attack {s}`: the collaborator's name is empty");
        }
        Ok(Attacker {
            name: name.to_string(),
            attack: attack.parse().with_context(|| format!("`--attack {s}`"))?,
        })
    }
}

/// A small seeded generator for the noise attack (SplitMix64, Steele et al. 2014), with
/// standard normal draws by Box-Muller: reproducible without a dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_flip_negates_and_scales_the_update() {
        let global = [1.0f32, -1.0];
        let mut local = [1.5f32, -2.0];
        Attack::SignFlip { scale: 2.0 }.apply(&global, &mut local, 0);
        assert_eq!(local, [0.0, 1.0]);
    }

    #[test]
    fn noise_replaces_the_update_reproducibly() {
        let global = vec![0.5f32; 20_000];
        let mut a = vec![9.0f32; 20_000];
        let mut b = a.clone();
        let attack = Attack::Noise { std: 2.0 };
        attack.apply(&global, &mut a, 7);
        attack.apply(&global, &mut b, 7);
        assert_eq!(a, b);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = a
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{}", var.sqrt());
        let mut c = vec![9.0f32; 20_000];
        attack.apply(&global, &mut c, 8);
        assert_ne!(a, c);
    }

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["sign-flip:4", "label-flip", "noise:0.5"] {
            assert_eq!(s.parse::<Attack>().expect(s).to_string(), s);
        }
        assert_eq!(
            "sign-flip".parse::<Attack>().expect("default"),
            Attack::SignFlip { scale: 4.0 }
        );
        for bad in [
            "flip",
            "sign-flip:-1",
            "noise:x",
            "label-flip:2",
            "noise:inf",
        ] {
            assert!(bad.parse::<Attack>().is_err(), "{bad}");
        }
        let err = "Portland".parse::<Attacker>().expect_err("no attack");
        assert!(err.to_string().contains("NAME:ATTACK"), "{err}");
        let err = "Portland:flip".parse::<Attacker>().expect_err("unknown");
        assert!(format!("{err:#}").contains("unknown attack"), "{err:#}");
    }
}
