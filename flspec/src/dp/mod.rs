//! Distributed differential privacy on the secure sum: clipping, the exact discrete Gaussian
//! and its accounting.
//!
//! Each collaborator clips its update to L2 norm `C` ([`clip`]), scales it to the integer
//! grid and rounds it with bounded norm ([`clip::IntegerBound`]), and adds integer noise
//! drawn from the discrete Gaussian N_Z(0, σ²) ([`DiscreteGaussian`], the exact sampler of
//! Canonne, Kamath and Steinke 2020) before masking. Secure aggregation then reveals only the
//! sum, which carries the survivors' summed noise; [`ddg`] bounds its privacy (Kairouz, Liu
//! and Steinke 2021) and provisions σ² for dropouts, and [`accountant`] composes the rounds in
//! Rényi DP and converts to (ε, δ) as Google's `dp-accounting` does.
//!
//! # Why the discrete Gaussian (and not Skellam)
//! Both fit SecAgg's integer arithmetic. The discrete Gaussian has an exact sampler that uses
//! only integer operations (CKS20, Algorithm 3), so the noise added is exactly the noise
//! analysed (floating-point noise can break DP: Mironov 2012). Its sum over clients is not a
//! discrete Gaussian, and KLS21 pay for that with a correction τ that grows when each client
//! adds little noise (many clients, σ of a unit or less); in integer units after scaling by
//! the granularity γ, the per-client σ of a federated run is in the hundreds or more and τ
//! underflows to 0 ([`ddg::DdgMechanism::tau`] reports it). The Skellam mechanism (Agarwal,
//! Kairouz, Liu 2021, "The Skellam Mechanism for Differentially Private Federated Learning",
//! NeurIPS) is closed under summation, so it has no τ, but its RDP bound carries an extra Δ₁
//! term, and its samples come from Poisson samplers that numeric libraries implement in
//! floating point; an exact integer-only Poisson sampler is more machinery than CKS20's. At
//! the noise levels used here both give essentially the Gaussian mechanism's ε, so we take the
//! one with the simple exact sampler.
//!
//! # What the guarantee covers
//! - The **aggregate** released to the aggregator, and everything computed from it (the
//!   model and its metrics): it is (ε, δ)-DP at the collaborator level (neighbouring runs
//!   differ in one collaborator's whole contribution, each round clipped to `C`), composed over
//!   the rounds recorded in the [`accountant::Accountant`]. A record inside a site's data is
//!   covered through its site's contribution.
//! - It is **central** DP achieved in a distributed way: it holds as long as the
//!   collaborators that survive a round (at least the provisioned `t`, see
//!   [`ddg::Provisioning`]) add their noise honestly and secure aggregation hides each
//!   individual (noisy) update. A collaborator that skips its noise weakens the guarantee by
//!   its share of the variance; noise is provisioned for `t` honest survivors.
//! - It does **not** cover a malicious collaborator poisoning its own update (DP bounds what
//!   is learnt about a participant, not how much a participant can change the model; robust
//!   aggregation addresses that, and only without SecAgg), nor what a collaborator's own
//!   update reveals to someone who sees it unmasked (SecAgg's job), nor side channels such as
//!   timing (the sampler is not constant-time).
//!
//! ```
//! use flspec::dp::accountant::{Accountant, Target};
//! use flspec::dp::clip::{IntegerBound, clip_l2_f32};
//! use flspec::dp::ddg::Provisioning;
//! use flspec::dp::DiscreteGaussian;
//! use flspec::secagg::rng::SecretRng;
//!
//! // Provision: 10 clients, any 8 survive, clip 1.0 at granularity 1/1024, 4 parameters.
//! let gamma = 1.0 / 1024.0;
//! let bound = IntegerBound::new(1.0 / gamma, 4, (-0.5f64).exp())?;
//! let target = Target { epsilon: 8.0, delta: 1e-5, rounds: 10 };
//! let plan = Provisioning::for_target(target, bound, 10, 8)?;
//!
//! // One client, one round: clip, scale, round, add noise (then quantize and mask).
//! let mut rng = SecretRng::from_seed_ref(&[1; 32]);
//! let mut update = [0.5f32, -2.0, 0.25, 1.0];
//! clip_l2_f32(&mut update, 1.0)?;
//! let scaled: Vec<f64> = update.iter().map(|v| f64::from(*v) / gamma).collect();
//! let mut ints = bound.round(&scaled, 100, &mut rng)?;
//! let noise = DiscreteGaussian::with_variance(plan.local_variance())?;
//! for x in &mut ints {
//!     *x += noise.sample(&mut rng);
//! }
//!
//! // The aggregator, after unmasking 9 survivors' sum: record what this round spent.
//! let mut spent = Accountant::new(target.delta)?;
//! let eps = spent.record(&plan.achieved(9)?.rdp())?;
//! assert!(eps < 8.0);
//! # Ok::<(), flspec::dp::DpError>(())
//! ```

pub mod accountant;
pub mod clip;
pub mod ddg;
pub mod discrete_gaussian;
mod error;

pub use discrete_gaussian::{DiscreteGaussian, Variance};
pub use error::{DpError, Result};
