//! The contribution under distributed differential privacy (`--dp-epsilon`): what a
//! collaborator masks instead of [`super::update::encode`]'s vector, and how the aggregator
//! reads the noisy sum.
//!
//! A collaborator clips its **model update** `Δ = w_local − w_global` to L2 norm `C`
//! (`--dp-clip`), divides it by the round's granularity γ, rounds it to integers with bounded
//! norm ([`IntegerBound::round`], Kairouz, Liu and Steinke 2021), adds discrete Gaussian noise
//! of the provisioned variance to every coordinate ([`DiscreteGaussian`], the exact sampler of
//! Canonne, Kamath and Steinke 2020) and writes the result into `Z_(2^32)`, the ring secure
//! aggregation sums in. Each collaborator adds its noise once, to its own contribution, before
//! masking: the aggregator only ever sees the masked vector and, after unmasking, the sum of
//! the survivors' noisy updates.
//!
//! | slice | value (an element of `Z_(2^32)`) |
//! |---|---|
//! | `0..NUM_PARAMETERS` | `round(clip(Δ)/γ) + noise` |
//! | `LOSS` | `round(min(train_loss, 16) · 2^16)` |
//! | `AGG_CORRECT`, `LOCAL_CORRECT`, `TEST_COUNT`, `WEIGHT` | the counts themselves |
//!
//! The new global model is `w_global + γ·Σ/s` over the `s` contributors (every contributor
//! weighs the same: sample-count weights would scale the sensitivity with the data).
//!
//! # What the guarantee covers
//! The noise covers the model updates, so the global models the aggregator releases are
//! (ε, δ)-DP at the collaborator level. The evaluation **metrics** in the table (training
//! loss, correct counts, sample counts: the last five slots) are summed exactly under secure
//! aggregation, as without DP, and are **not** covered: the aggregator learns their sums.
use flspec::BoxError;
use flspec::dp::accountant::Target;
use flspec::dp::clip::{IntegerBound, clip_l2_f64};
use flspec::dp::ddg::{DdgPlan, from_ring, to_ring};
use flspec::dp::discrete_gaussian::DiscreteGaussian;
use flspec_tch::models::mnist_cnn::NUM_PARAMETERS;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use super::update::{
    AGG_CORRECT, LEN, LOCAL_CORRECT, LOSS, Measurements, RoundSum, TEST_COUNT, WEIGHT,
};

/// Rounding failure probability β of [`IntegerBound`]: KLS21's choice, `e^-0.5`.
pub const BETA: f64 = 0.606_530_659_712_633_4;
/// The largest probability we accept that any coordinate of a round's sum wraps around in
/// `Z_(2^32)`: `2^-40`.
pub const MAX_WRAP: f64 = 9.094_947_017_729_282e-13;
/// A training loss is capped here before it is summed.
pub const LOSS_CAP: f64 = 16.0;
/// Fixed-point scale of the summed loss.
pub const LOSS_SCALE: f64 = 65_536.0;
/// The most roundings [`IntegerBound::round`] may try (each passes with probability
/// `1 − β ≈ 0.39` at worst, in practice almost always at once).
pub const MAX_ROUNDINGS: u32 = 200;

/// The privacy settings of a run (`--dp-epsilon`, `--dp-delta`, `--dp-clip`,
/// `--dp-min-survivors`); public, they travel to every collaborator.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpSettings {
    /// ε of the whole run (all rounds).
    pub epsilon: f64,
    /// δ of the whole run.
    pub delta: f64,
    /// L2 clip `C` of a collaborator's model update per round.
    pub clip: f64,
    /// The fewest survivors a round may have for the guarantee to hold; 0 picks the SecAgg
    /// threshold of the first round. Rounds with fewer are refused before unmasking.
    pub min_survivors: u32,
}

/// The noise plan of a run, as every collaborator needs it: made once by the aggregator
/// ([`NoisePlan::new`]) and sent with each round's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoisePlan {
    /// Granularity γ: one integer unit of the ring is γ in model units.
    pub gamma: f64,
    /// The clip in integer units, `C/γ`.
    pub clip_units: f64,
    /// Rounding failure probability β.
    pub beta: f64,
    /// Variance of the discrete Gaussian each collaborator adds (integer units).
    pub local_variance: f64,
    /// Collaborators the noise was provisioned for.
    pub clients: u32,
    /// Any this many or more survivors meet the target.
    pub min_survivors: u32,
    /// Probability bound that a round's sum wraps around in the ring (all clients surviving).
    pub wrap_probability: f64,
}

impl NoisePlan {
    /// The plan meeting `dp` over `rounds` rounds for `clients` collaborators of which any
    /// `min_survivors` survive ([`DdgPlan::new`] with β = e^-0.5, the 32-bit ring and wraps
    /// below 2^-40).
    ///
    /// # Errors
    /// [`flspec::dp::DpError`] naming the knob (`--dp-epsilon`, `--dp-delta`, `--dp-clip`)
    /// when the target cannot be met.
    pub fn new(
        dp: &DpSettings,
        rounds: u32,
        clients: usize,
        min_survivors: usize,
    ) -> Result<(Self, DdgPlan), BoxError> {
        let target = Target {
            epsilon: dp.epsilon,
            delta: dp.delta,
            rounds,
        };
        let plan = DdgPlan::new(
            target,
            dp.clip,
            NUM_PARAMETERS,
            clients,
            min_survivors,
            BETA,
            32,
            MAX_WRAP,
        )
        .map_err(|e| {
            format!(
                "--dp-epsilon {} --dp-delta {} --dp-clip {}: {e}",
                dp.epsilon, dp.delta, dp.clip
            )
        })?;
        Ok((
            NoisePlan {
                gamma: plan.gamma,
                clip_units: plan.bound.clip(),
                beta: plan.bound.beta(),
                local_variance: plan.provisioning.local_variance(),
                clients: u32::try_from(clients)?,
                min_survivors: u32::try_from(min_survivors)?,
                wrap_probability: plan.wrap_probability,
            },
            plan,
        ))
    }

    /// The noise's standard deviation per collaborator, in model units (γ·σ).
    pub fn local_std_dev(&self) -> f64 {
        self.gamma * self.local_variance.sqrt()
    }
}

/// Encodes a collaborator's contribution: clipped, rounded and noised update, then the exact
/// metrics. Returns the ring vector and whether the update was clipped.
///
/// # Errors
/// A message on a length mismatch, a non-finite update, or a bad plan.
pub fn encode<R: RngCore + CryptoRng>(
    local: &[f32],
    global: &[f32],
    m: &Measurements,
    plan: &NoisePlan,
    rng: &mut R,
) -> Result<(Vec<u32>, bool), BoxError> {
    let noise = Noise::draw(plan, rng)?;
    encode_with_noise(local, global, m, plan, noise, rng)
}

/// One contribution's noise: `NUM_PARAMETERS` draws of the plan's discrete Gaussian. It does
/// not depend on the update, so a collaborator can draw it while it trains
/// ([`Noise::draw_in_background`]); it is wiped when dropped and used exactly once
/// ([`encode_with_noise`] consumes it).
pub struct Noise(Vec<i64>);

impl std::fmt::Debug for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Noise(<{} values redacted>)", self.0.len())
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Noise {
    /// Draws the noise of one contribution from `rng`.
    ///
    /// # Errors
    /// A bad variance in the plan.
    pub fn draw<R: RngCore + CryptoRng>(plan: &NoisePlan, rng: &mut R) -> Result<Self, BoxError> {
        let sampler = DiscreteGaussian::with_variance(plan.local_variance)?;
        Ok(Noise(sampler.sample_vec(NUM_PARAMETERS, rng)))
    }

    /// Draws the noise on another thread, from a ChaCha20 generator seeded by the OS, so that
    /// it is ready when training ends (`join` the handle).
    pub fn draw_in_background(plan: NoisePlan) -> std::thread::JoinHandle<Result<Self, String>> {
        std::thread::spawn(move || {
            let mut rng = flspec::secagg::rng::SecretRng::from_rng(&mut rand_core::OsRng);
            Noise::draw(&plan, &mut rng).map_err(|e| e.to_string())
        })
    }
}

/// [`encode`] with noise drawn beforehand ([`Noise::draw`]); `rng` drives the rounding only.
///
/// # Errors
/// As [`encode`], and a noise vector of the wrong length.
pub fn encode_with_noise<R: RngCore + CryptoRng>(
    local: &[f32],
    global: &[f32],
    m: &Measurements,
    plan: &NoisePlan,
    noise: Noise,
    rng: &mut R,
) -> Result<(Vec<u32>, bool), BoxError> {
    if noise.0.len() != NUM_PARAMETERS {
        return Err(format!(
            "the noise has {} values, expected {NUM_PARAMETERS}",
            noise.0.len()
        )
        .into());
    }
    if local.len() != NUM_PARAMETERS || global.len() != NUM_PARAMETERS {
        return Err(format!(
            "the model has {} parameters and the global model {}, expected {NUM_PARAMETERS}",
            local.len(),
            global.len()
        )
        .into());
    }
    let mut delta: Vec<f64> = local
        .iter()
        .zip(global)
        .map(|(&l, &g)| f64::from(l) - f64::from(g))
        .collect();
    let report = clip_l2_f64(&mut delta, plan.clip_units * plan.gamma)?;
    let inv = 1.0 / plan.gamma;
    for d in &mut delta {
        *d *= inv;
    }
    let bound = IntegerBound::new(plan.clip_units, NUM_PARAMETERS, plan.beta)?;
    let rounded = bound.round(&delta, MAX_ROUNDINGS, rng)?;
    let mut out = Vec::with_capacity(LEN);
    out.extend(
        rounded
            .into_iter()
            .zip(&noise.0)
            .map(|(x, z)| to_ring(x.saturating_add(*z))),
    );
    drop(noise);
    let loss = (m.train_loss.clamp(0.0, LOSS_CAP) * LOSS_SCALE).round() as i64;
    out.push(to_ring(loss));
    for count in [m.agg_correct, m.local_correct, m.test_count, m.train_count] {
        out.push(to_ring(i64::try_from(count)?));
    }
    debug_assert_eq!(
        [
            out.len() - 5,
            LOSS,
            AGG_CORRECT,
            LOCAL_CORRECT,
            TEST_COUNT,
            WEIGHT
        ],
        [
            NUM_PARAMETERS,
            NUM_PARAMETERS,
            NUM_PARAMETERS + 1,
            NUM_PARAMETERS + 2,
            NUM_PARAMETERS + 3,
            NUM_PARAMETERS + 4
        ]
    );
    Ok((out, report.clipped()))
}

/// Reads the ring sum of `contributors` encodings: the new global model (`global` plus the
/// mean noisy update) and the exact metrics (the loss as a mean over the contributors).
///
/// # Errors
/// A message on a length mismatch, no contributor or no training sample.
pub fn decode(
    sum: &[u32],
    contributors: usize,
    global: &[f32],
    plan: &NoisePlan,
) -> Result<RoundSum, BoxError> {
    if sum.len() != LEN || global.len() != NUM_PARAMETERS {
        return Err(format!(
            "the summed vector has {} values and the global model {}, expected {LEN} and {NUM_PARAMETERS}",
            sum.len(),
            global.len()
        )
        .into());
    }
    if contributors == 0 {
        return Err("no collaborator contributed to the round".into());
    }
    let scale = plan.gamma / contributors as f64;
    let model = sum[..NUM_PARAMETERS]
        .iter()
        .zip(global)
        .map(|(&s, &g)| (f64::from(g) + from_ring(s) as f64 * scale) as f32)
        .collect();
    let count = |i: usize| from_ring(sum[i]).max(0) as f64;
    let tests = count(TEST_COUNT);
    let ratio = |i: usize| if tests > 0.0 { count(i) / tests } else { 0.0 };
    let samples = count(WEIGHT);
    if samples <= 0.0 {
        return Err("the total weight is zero: no collaborator contributed samples".into());
    }
    Ok(RoundSum {
        model,
        train_loss: count(LOSS) / LOSS_SCALE / contributors as f64,
        agg_accuracy: ratio(AGG_CORRECT),
        local_accuracy: ratio(LOCAL_CORRECT),
        train_samples: samples as u64,
    })
}

/// The new global model as a [`super::update::weighted_sum`]-like sum for a server optimizer: one
/// contribution of weight 1 whose value is the DP model (`decode`'s), so that
/// the optimizer's pseudo-gradient is the mean noisy update.
///
/// # Errors
/// A message if the model is empty.
pub fn as_weighted_sum(
    model: &[f32],
    contributors: usize,
) -> Result<flspec::fl::aggregate::WeightedSum, BoxError> {
    flspec::fl::aggregate::WeightedSum::from_sum(
        model.iter().map(|&x| f64::from(x)).collect(),
        1.0,
        contributors,
    )
    .map_err(|e| format!("the round's DP model: {e}").into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn settings(epsilon: f64) -> DpSettings {
        DpSettings {
            epsilon,
            delta: 1e-5,
            clip: 1.0,
            min_survivors: 0,
        }
    }

    fn measured(train: usize) -> Measurements {
        Measurements {
            train_count: train,
            test_count: 100,
            train_loss: 0.5,
            agg_correct: 40,
            local_correct: 80,
        }
    }

    #[test]
    fn the_sum_decodes_to_the_mean_update_and_exact_metrics() {
        let (plan, _) = NoisePlan::new(&settings(8.0), 10, 3, 2).unwrap();
        let global = vec![0.1f32; NUM_PARAMETERS];
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut sum = vec![0u32; LEN];
        let mut local = global.clone();
        local[0] += 0.3; // norm 0.3 < clip 1: not clipped
        for train in [100, 200, 300] {
            let (v, clipped) = encode(&local, &global, &measured(train), &plan, &mut rng).unwrap();
            assert!(!clipped);
            for (s, x) in sum.iter_mut().zip(&v) {
                *s = s.wrapping_add(*x);
            }
        }
        let r = decode(&sum, 3, &global, &plan).unwrap();
        // Noise: 3 clients' sum has std γ·σ·√3 per coordinate; the mean divides it by 3.
        let tol = 6.0 * plan.local_std_dev() * 3f64.sqrt() / 3.0 + plan.gamma;
        assert!(
            (f64::from(r.model[0]) - 0.4).abs() < tol,
            "{} vs 0.4 ± {tol}",
            r.model[0]
        );
        assert!((f64::from(r.model[1]) - 0.1).abs() < tol);
        assert_eq!(r.train_samples, 600);
        assert!((r.agg_accuracy - 0.4).abs() < 1e-12);
        assert!((r.local_accuracy - 0.8).abs() < 1e-12);
        assert!((r.train_loss - 0.5).abs() < 1e-9);
    }

    #[test]
    fn an_update_beyond_the_clip_is_clipped() {
        let (plan, _) = NoisePlan::new(&settings(8.0), 10, 3, 2).unwrap();
        let global = vec![0.0f32; NUM_PARAMETERS];
        let local = vec![1.0f32; NUM_PARAMETERS]; // norm √21840 ≫ 1
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (v, clipped) = encode(&local, &global, &measured(10), &plan, &mut rng).unwrap();
        assert!(clipped);
        // The integer update plus noise: its norm is at most Δ₂ + a few noise norms.
        let norm: f64 = v[..NUM_PARAMETERS]
            .iter()
            .map(|&x| (from_ring(x) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let noise_norm = (plan.local_variance * NUM_PARAMETERS as f64).sqrt();
        let bound = IntegerBound::new(plan.clip_units, NUM_PARAMETERS, plan.beta).unwrap();
        assert!(norm <= bound.l2() + 1.1 * noise_norm, "{norm}");
    }

    /// The sample variance of `v`'s parameter slots, read as signed integers.
    fn variance(v: &[u32]) -> f64 {
        let x: Vec<f64> = v[..NUM_PARAMETERS]
            .iter()
            .map(|&r| from_ring(r) as f64)
            .collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (x.len() - 1) as f64
    }

    /// Noise is added exactly once per contribution: with a zero update, one encoding carries
    /// variance σ² per coordinate and the sum of `s` encodings `s·σ²` (not 0, not 2·s·σ²).
    /// Over 21,840 coordinates the sample variance's relative standard deviation is
    /// √(2/21,839) ≈ 0.96 %, so a ±5 % band is more than 5 standard deviations wide: with the
    /// fixed seed the test is deterministic, and for other seeds it would fail by chance with
    /// probability below 1e-6 while a doubled or missing noise (±100 %) always fails.
    #[test]
    fn noise_is_added_exactly_once_per_contribution() {
        let (plan, _) = NoisePlan::new(&settings(3.0), 10, 5, 3).unwrap();
        let model = vec![0.25f32; NUM_PARAMETERS];
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut sum = vec![0u32; LEN];
        for i in 0..5 {
            let (v, _) = encode(&model, &model, &measured(10), &plan, &mut rng).unwrap();
            if i == 0 {
                let ratio = variance(&v) / plan.local_variance;
                assert!((ratio - 1.0).abs() < 0.05, "one contribution: {ratio} σ²");
            }
            for (s, x) in sum.iter_mut().zip(&v) {
                *s = s.wrapping_add(*x);
            }
        }
        let ratio = variance(&sum) / plan.local_variance;
        assert!((ratio - 5.0).abs() < 0.25, "five contributions: {ratio} σ²");
        // The decoded model moves by the summed noise only: γ·noise/5 around the old one.
        let r = decode(&sum, 5, &model, &plan).unwrap();
        let moved: f64 = r
            .model
            .iter()
            .map(|&x| (f64::from(x) - 0.25).powi(2))
            .sum::<f64>()
            / NUM_PARAMETERS as f64;
        let expected = 5.0 * plan.local_variance * (plan.gamma / 5.0).powi(2);
        assert!(
            (moved / expected - 1.0).abs() < 0.06,
            "{moved} vs {expected}"
        );
    }

    #[test]
    fn the_noise_plan_meets_the_target_for_any_provisioned_survivor_count() {
        let dp = settings(3.0);
        let (plan, ddg) = NoisePlan::new(&dp, 10, 10, 6).unwrap();
        assert!(plan.wrap_probability <= MAX_WRAP);
        for survivors in 6..=10 {
            let (eps, _) = ddg
                .provisioning
                .achieved(survivors)
                .unwrap()
                .epsilon(10, dp.delta)
                .unwrap();
            assert!(eps <= 3.0 + 1e-9, "{survivors} survivors: epsilon {eps}");
        }
        // Fewer survivors than provisioned: weaker than promised (the flow refuses them).
        let (eps, _) = ddg
            .provisioning
            .achieved(3)
            .unwrap()
            .epsilon(10, dp.delta)
            .unwrap();
        assert!(eps > 3.0, "{eps}");
    }

    #[test]
    fn an_unreachable_target_names_the_knobs() {
        let err = NoisePlan::new(&settings(1e-6), 1000, 2, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--dp-epsilon"), "{err}");
    }
}
