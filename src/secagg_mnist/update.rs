//! The vector a collaborator contributes to a round, and how the aggregator reads the sum.
//!
//! Everything the aggregator averages travels in one vector, so that under secure aggregation
//! it learns only sums. With `w = n_train / max_samples` (the collaborator's weight, at most 1):
//!
//! | slice | value |
//! |---|---|
//! | `0..NUM_PARAMETERS` | `w * clip(weight)`, every parameter of every layer |
//! | `LOSS` | `w * min(train_loss, clip)` |
//! | `AGG_CORRECT` | correctly classified test samples of the aggregated model / `max_samples` |
//! | `LOCAL_CORRECT` | correctly classified test samples of the local model / `max_samples` |
//! | `TEST_COUNT` | test samples / `max_samples` |
//! | `WEIGHT` | `w` |
//!
//! Every value lies in `[-clip, clip]` (with `clip >= 1`), the range the round's quantizer
//! encodes without overflow for up to `n_max` summands. The aggregator divides the summed
//! weighted values by the summed weight (FedAvg weighted by sample count) and the summed correct
//! counts by the summed test counts.

use flspec::fl::aggregate::WeightedSum;
use flspec_tch::models::mnist_cnn::NUM_PARAMETERS;

/// Index of the weighted training loss.
pub const LOSS: usize = NUM_PARAMETERS;
/// Index of the aggregated model's correct count.
pub const AGG_CORRECT: usize = NUM_PARAMETERS + 1;
/// Index of the local model's correct count.
pub const LOCAL_CORRECT: usize = NUM_PARAMETERS + 2;
/// Index of the test-sample count.
pub const TEST_COUNT: usize = NUM_PARAMETERS + 3;
/// Index of the weight.
pub const WEIGHT: usize = NUM_PARAMETERS + 4;
/// Length of the vector.
pub const LEN: usize = NUM_PARAMETERS + 5;

/// What one collaborator measured in a round (private to it until summed).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measurements {
    /// Training samples.
    pub train_count: usize,
    /// Test samples.
    pub test_count: usize,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Test samples the aggregated model classified correctly.
    pub agg_correct: usize,
    /// Test samples the locally trained model classified correctly.
    pub local_correct: usize,
}

/// Builds the contribution vector. Returns the vector and how many parameters were clipped.
pub fn encode(
    weights: &[f32],
    m: &Measurements,
    clip: f32,
    max_samples: usize,
) -> (Vec<f32>, usize) {
    let scale = max_samples.max(1) as f32;
    let w = m.train_count as f32 / scale;
    let mut clipped = 0;
    let mut out = Vec::with_capacity(LEN);
    out.extend(weights.iter().map(|&x| {
        if x.abs() > clip {
            clipped += 1;
        }
        x.clamp(-clip, clip) * w
    }));
    out.push((m.train_loss as f32).min(clip) * w);
    out.push(m.agg_correct as f32 / scale);
    out.push(m.local_correct as f32 / scale);
    out.push(m.test_count as f32 / scale);
    out.push(w);
    (out, clipped)
}

/// What the aggregator reads from a summed vector.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundSum {
    /// The FedAvg model: weighted mean of the parameters.
    pub model: Vec<f32>,
    /// Weighted mean training loss.
    pub train_loss: f64,
    /// Accuracy of the aggregated model over all collaborators' test samples.
    pub agg_accuracy: f64,
    /// Accuracy of the local models over all collaborators' test samples.
    pub local_accuracy: f64,
    /// Total training samples (rounded).
    pub train_samples: u64,
}

/// Decodes a sum of contribution vectors.
///
/// # Errors
/// A message if the vector has the wrong length or a zero total weight.
pub fn decode(sum: &[f32], max_samples: usize) -> Result<RoundSum, String> {
    if sum.len() != LEN {
        return Err(format!(
            "the summed vector has {} values, expected {LEN}",
            sum.len()
        ));
    }
    let total_w = f64::from(sum[WEIGHT]);
    if total_w <= 0.0 {
        return Err("the total weight is zero: no collaborator contributed samples".into());
    }
    let tests = f64::from(sum[TEST_COUNT]);
    let ratio = |x: f32| {
        if tests > 0.0 {
            f64::from(x) / tests
        } else {
            0.0
        }
    };
    Ok(RoundSum {
        model: sum[..NUM_PARAMETERS]
            .iter()
            .map(|&x| (f64::from(x) / total_w) as f32)
            .collect(),
        train_loss: f64::from(sum[LOSS]) / total_w,
        agg_accuracy: ratio(sum[AGG_CORRECT]),
        local_accuracy: ratio(sum[LOCAL_CORRECT]),
        train_samples: (total_w * max_samples as f64).round() as u64,
    })
}

/// The parameters' part of a summed vector as a [`WeightedSum`] of `count` contributions: the
/// sum `Σ wᵢ·clip(xᵢ)` and the total weight `Σ wᵢ`, all that a server optimizer needs
/// ([`super::ServerOpt`]). Its mean is [`RoundSum::model`].
///
/// # Errors
/// A message if the vector has the wrong length or a zero total weight.
pub fn weighted_sum(sum: &[f32], count: usize) -> Result<WeightedSum, String> {
    if sum.len() != LEN {
        return Err(format!(
            "the summed vector has {} values, expected {LEN}",
            sum.len()
        ));
    }
    WeightedSum::from_sum(
        sum[..NUM_PARAMETERS]
            .iter()
            .map(|&x| f64::from(x))
            .collect(),
        f64::from(sum[WEIGHT]),
        count,
    )
    .map_err(|e| format!("the round's sum: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sum_of_two_decodes_to_the_weighted_means() {
        let a = Measurements {
            train_count: 300,
            test_count: 100,
            train_loss: 1.0,
            agg_correct: 10,
            local_correct: 50,
        };
        let b = Measurements {
            train_count: 100,
            test_count: 100,
            train_loss: 2.0,
            agg_correct: 30,
            local_correct: 70,
        };
        let wa = vec![1.0; NUM_PARAMETERS];
        let wb = vec![-1.0; NUM_PARAMETERS];
        let (va, _) = encode(&wa, &a, 4.0, 1000);
        let (vb, _) = encode(&wb, &b, 4.0, 1000);
        let sum: Vec<f32> = va.iter().zip(&vb).map(|(x, y)| x + y).collect();
        let r = decode(&sum, 1000).unwrap();
        assert!((r.model[0] - 0.5).abs() < 1e-6);
        assert!((r.train_loss - 1.25).abs() < 1e-6);
        assert!((r.agg_accuracy - 0.2).abs() < 1e-6);
        assert!((r.local_accuracy - 0.6).abs() < 1e-6);
        assert_eq!(r.train_samples, 400);
        let ws = weighted_sum(&sum, 2).unwrap();
        assert_eq!((ws.count(), ws.len()), (2, NUM_PARAMETERS));
        assert!((ws.total_weight() - 0.4).abs() < 1e-6);
        let mean = ws.mean().unwrap();
        assert!(mean.iter().zip(&r.model).all(|(a, b)| (a - b).abs() < 1e-6));
        assert!(weighted_sum(&sum[1..], 2).is_err());
        let mut empty = sum.clone();
        empty[WEIGHT] = 0.0;
        assert!(weighted_sum(&empty, 2).is_err());
    }

    #[test]
    fn weights_beyond_the_clip_are_clipped_and_counted() {
        let m = Measurements {
            train_count: 10,
            test_count: 1,
            ..Default::default()
        };
        let mut w = vec![0.0; NUM_PARAMETERS];
        w[0] = 9.0;
        let (v, clipped) = encode(&w, &m, 4.0, 10);
        assert_eq!(clipped, 1);
        assert_eq!(v[0], 4.0);
        assert!(v.iter().all(|x| x.abs() <= 4.0));
    }
}
