//! The aggregator's rule: a sample-weighted mean, or one of the robust aggregators of
//! [`flspec::fl::aggregate`], which need each collaborator's update (so this flow sends them
//! in the clear, without secure aggregation).
//!
//! ```
//! use flspec_examples::fedavg_mnist::Rule;
//!
//! let rule: Rule = "multi-krum:2,4".parse()?;
//! assert_eq!(rule, Rule::MultiKrum { f: 2, m: 4 });
//! assert_eq!(rule.to_string(), "multi-krum:2,4");
//! let (a, b, c) = ([1.0f32], [2.0], [100.0]);
//! let mut out = [0.0f32];
//! Rule::Median.aggregate(&[(&a, 1.0), (&b, 1.0), (&c, 1.0)], &mut out)?;
//! assert_eq!(out, [2.0]);
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail};
use flspec::fl::aggregate::{
    AggregateError, Bulyan, Individual, Krum, Median, RobustAggregator, TrimmedMean,
    weighted_mean_into,
};
use serde::{Deserialize, Serialize};

/// The rule specs [`Rule::from_str`] takes, for error messages and `--help`.
pub const RULE_SPECS: &str =
    "mean, median, trimmed-mean[:BETA] (default 0.2), krum:F, multi-krum:F,M, bulyan:F";

/// How the aggregator combines the collaborators' models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// FedAvg: the mean weighted by training samples ([`weighted_mean_into`]).
    #[default]
    Mean,
    /// Coordinate-wise median ([`Median`], Flower's FedMedian).
    Median,
    /// Coordinate-wise trimmed mean ([`TrimmedMean`], Flower's FedTrimmedAvg).
    TrimmedMean {
        /// Fraction cut from each end, in `[0, 0.5)`.
        beta: f64,
    },
    /// Krum ([`Krum`] with `to_keep = 0`): the one update closest to its `n − f − 2` nearest.
    Krum {
        /// Byzantine collaborators tolerated; needs `n ≥ 2f + 3`.
        f: usize,
    },
    /// Multi-Krum: the sample-weighted mean of the `m` best-scored updates.
    MultiKrum {
        /// Byzantine collaborators tolerated; needs `n ≥ 2f + 3`.
        f: usize,
        /// Updates averaged, `1..=n`.
        m: usize,
    },
    /// Bulyan ([`Bulyan`]): Krum selection, then a trimmed mean around the median; needs
    /// `n ≥ 4f + 3`.
    Bulyan {
        /// Byzantine collaborators tolerated.
        f: usize,
    },
}

impl Rule {
    /// Whether the rule needs each update (all but [`Rule::Mean`]).
    pub fn is_robust(&self) -> bool {
        !matches!(self, Rule::Mean)
    }

    /// The fewest updates the rule accepts (Krum's `2f + 3`, Bulyan's `4f + 3`, else 1).
    pub fn min_updates(&self) -> usize {
        match *self {
            Rule::Mean | Rule::Median | Rule::TrimmedMean { .. } => 1,
            Rule::Krum { f } | Rule::MultiKrum { f, .. } => 2 * f + 3,
            Rule::Bulyan { f } => 4 * f + 3,
        }
    }

    /// Aggregates `(model, training samples)` pairs into `out`.
    ///
    /// # Errors
    /// [`AggregateError`]: no update, lengths that differ, a non-finite value (robust rules),
    /// too few updates for `f`, a parameter out of range.
    pub fn aggregate(
        &self,
        updates: &[(&[f32], f64)],
        out: &mut [f32],
    ) -> Result<(), AggregateError> {
        let mut individual = Individual::new(out.len());
        if self.is_robust() {
            for (u, w) in updates {
                individual.push(u, *w)?;
            }
        }
        match *self {
            Rule::Mean => weighted_mean_into(updates, out),
            Rule::Median => Median.aggregate(&individual, out),
            Rule::TrimmedMean { beta } => TrimmedMean { beta }.aggregate(&individual, out),
            Rule::Krum { f } => Krum {
                num_malicious: f,
                to_keep: 0,
            }
            .aggregate(&individual, out),
            Rule::MultiKrum { f, m } => Krum {
                num_malicious: f,
                to_keep: m,
            }
            .aggregate(&individual, out),
            Rule::Bulyan { f } => Bulyan { num_malicious: f }.aggregate(&individual, out),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rule::Mean => f.write_str("mean"),
            Rule::Median => f.write_str("median"),
            Rule::TrimmedMean { beta } => write!(f, "trimmed-mean:{beta}"),
            Rule::Krum { f: n } => write!(f, "krum:{n}"),
            Rule::MultiKrum { f: n, m } => write!(f, "multi-krum:{n},{m}"),
            Rule::Bulyan { f: n } => write!(f, "bulyan:{n}"),
        }
    }
}

impl FromStr for Rule {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (kind, param) = match s.split_once(':') {
            Some((kind, param)) => (kind, Some(param)),
            None => (s, None),
        };
        let count = |p: &str| -> anyhow::Result<usize> {
            p.parse()
                .with_context(|| format!("rule `{s}`: `{p}` is not a whole number"))
        };
        let needs =
            |what: &str| format!("rule `{s}` needs {what}, e.g. `{kind}:2`; rules: {RULE_SPECS}");
        Ok(match (kind, param) {
            ("mean", None) => Rule::Mean,
            ("median", None) => Rule::Median,
            ("trimmed-mean", None) => Rule::TrimmedMean { beta: 0.2 },
            ("trimmed-mean", Some(p)) => {
                let beta: f64 = p
                    .parse()
                    .with_context(|| format!("rule `{s}`: beta `{p}` is not a number"))?;
                if !(0.0..0.5).contains(&beta) {
                    bail!("rule `{s}`: beta must be in [0, 0.5), got {p}");
                }
                Rule::TrimmedMean { beta }
            }
            ("krum", Some(p)) => Rule::Krum { f: count(p)? },
            ("krum", None) => bail!(needs("the number of Byzantine collaborators F")),
            ("multi-krum", Some(p)) => {
                let Some((f, m)) = p.split_once(',') else {
                    bail!(
                        "rule `{s}`: expected multi-krum:F,M (F Byzantine, M averaged), e.g. multi-krum:2,6"
                    );
                };
                let m = count(m)?;
                if m == 0 {
                    bail!("rule `{s}`: Multi-Krum averages M >= 1 updates (krum:F keeps one)");
                }
                Rule::MultiKrum { f: count(f)?, m }
            }
            ("multi-krum", None) => {
                bail!("rule `{s}`: expected multi-krum:F,M, e.g. multi-krum:2,6")
            }
            ("bulyan", Some(p)) => Rule::Bulyan { f: count(p)? },
            ("bulyan", None) => bail!(needs("the number of Byzantine collaborators F")),
            ("mean" | "median", Some(_)) => bail!("rule `{s}`: {kind} takes no parameter"),
            _ => bail!("unknown aggregation rule `{s}`; rules: {RULE_SPECS}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip() {
        for s in [
            "mean",
            "median",
            "trimmed-mean:0.1",
            "krum:2",
            "multi-krum:2,5",
            "bulyan:1",
        ] {
            assert_eq!(s.parse::<Rule>().expect(s).to_string(), s);
        }
        for bad in [
            "avg",
            "krum",
            "krum:x",
            "trimmed-mean:0.5",
            "multi-krum:2",
            "multi-krum:2,0",
            "median:1",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mean_is_weighted_and_robust_rules_ignore_the_outlier() {
        let ups: Vec<[f32; 1]> = vec![[1.0], [1.1], [0.9], [1.05], [0.95], [1000.0]];
        let pairs: Vec<(&[f32], f64)> = ups.iter().map(|u| (&u[..], 1.0)).collect();
        let mut out = [0.0f32];
        Rule::Mean.aggregate(&pairs, &mut out).expect("mean");
        assert!(out[0] > 100.0, "{out:?}");
        for rule in [
            Rule::Median,
            Rule::TrimmedMean { beta: 0.2 },
            Rule::Krum { f: 1 },
            Rule::MultiKrum { f: 1, m: 3 },
        ] {
            rule.aggregate(&pairs, &mut out).expect("robust");
            assert!((out[0] - 1.0).abs() < 0.1, "{rule}: {out:?}");
        }
        let err = Rule::Bulyan { f: 1 }
            .aggregate(&pairs, &mut out)
            .expect_err("Bulyan with f = 1 needs 7 updates");
        assert!(err.to_string().contains("at least 7"), "{err}");
    }
}
