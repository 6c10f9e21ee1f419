//! The distributed discrete Gaussian (DDG): the privacy of the sum of the survivors' noisy
//! integer updates, and how much noise each collaborator adds so that any `t` survivors
//! give the target (Kairouz, Liu and Steinke 2021, "The Distributed Discrete Gaussian
//! Mechanism for Federated Learning with Secure Aggregation", ICML, arXiv:2102.06387).
//!
//! Each of `n` survivors adds independent N_Z(0, σ²) noise to its rounded integer update
//! (sensitivity Δ₂ in L2, Δ₁ in L1, from [`super::clip::IntegerBound`]). The sum of `n`
//! discrete Gaussians is not a discrete Gaussian, but it is close: KLS21 (Proposition 14, as
//! implemented in their `compute_rdp_dgaussian`) bound one round's RDP at order α by
//!
//! `ε(α) = min( α/2·s₂² + τd,  α/2·(s₂² + 2s₁τ + τ²d),  α/2·(s₂ + τ√d)² )`,
//!
//! with `s₂ = Δ₂/(√n·σ)`, `s₁ = Δ₁/(√n·σ)` and `τ = 10·Σ_{k=1}^{n−1} exp(−2π²σ²·k/(k+1))`:
//! the Gaussian mechanism's α·s₂²/2 plus a correction that vanishes once σ is a few units.
//!
//! # Dropouts
//! Noise is provisioned for the fewest survivors the round accepts (the SecAgg threshold
//! `t`): [`Provisioning::for_target`] finds the smallest per-client σ² such that every
//! survivor count `s` in `[t, n]` meets the target (the per-round RDP is the worst over
//! those `s`). A round that ends with `s` survivors spent [`DdgMechanism::rdp`] with `s`;
//! [`super::accountant::Accountant`] adds up what each round actually spent.
//!
//! ```
//! use flspec::dp::accountant::Target;
//! use flspec::dp::clip::IntegerBound;
//! use flspec::dp::ddg::Provisioning;
//!
//! // 10 clients, any 7 may survive; 1000 parameters clipped to 1000 integer units.
//! let bound = IntegerBound::new(1000.0, 1000, (-0.5f64).exp())?;
//! let target = Target { epsilon: 3.0, delta: 1e-5, rounds: 10 };
//! let p = Provisioning::for_target(target, bound, 10, 7)?;
//! assert!(p.achieved(7)?.epsilon(target.rounds, target.delta)?.0 <= 3.0);
//! assert!(p.achieved(10)?.epsilon(target.rounds, target.delta)?.0 < 3.0);
//! # Ok::<(), flspec::dp::DpError>(())
//! ```

use super::accountant::{Rdp, Target, default_orders, smallest_meeting};
use super::clip::IntegerBound;
use super::error::{DpError, Result, invalid};

/// KLS21's `τ = 10·Σ_{k=1}^{n−1} exp(−2π²σ²·k/(k+1))` for `n` summands of variance σ².
pub fn tau(n: usize, local_variance: f64) -> f64 {
    let c = -2.0 * std::f64::consts::PI.powi(2) * local_variance;
    10.0 * (1..n)
        .map(|k| {
            let k = k as f64;
            (c * k / (k + 1.0)).exp()
        })
        .sum::<f64>()
}

/// One round of the distributed discrete Gaussian with `survivors` noise-adding clients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdgMechanism {
    survivors: usize,
    dim: usize,
    l2: f64,
    l1: f64,
    local_variance: f64,
    tau: f64,
}

impl DdgMechanism {
    /// The mechanism for rounded updates bounded by `bound`, summed over `survivors`
    /// clients that each add N_Z(0, `local_variance`) (integer units).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `survivors` (0) or `local_variance` (below 1/4:
    /// we apply KLS21's Proposition 14 only for σ ≥ 1/2, as its reference ports do; or not
    /// finite).
    pub fn new(bound: IntegerBound, survivors: usize, local_variance: f64) -> Result<Self> {
        Self::with_sensitivity(
            bound.l2(),
            bound.l1(),
            bound.dim(),
            survivors,
            local_variance,
        )
    }

    /// The mechanism for explicit integer-domain sensitivities `l2` (Δ₂) and `l1` (Δ₁) in
    /// `dim` coordinates.
    ///
    /// # Errors
    /// As [`DdgMechanism::new`]; naming `l2`/`l1` unless finite and positive.
    pub fn with_sensitivity(
        l2: f64,
        l1: f64,
        dim: usize,
        survivors: usize,
        local_variance: f64,
    ) -> Result<Self> {
        for (name, v) in [("l2", l2), ("l1", l1)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(
                    name,
                    format!("{v} is not a positive sensitivity"),
                    "check the clip and the granularity",
                ));
            }
        }
        if survivors == 0 {
            return Err(invalid(
                "survivors",
                "0 clients",
                "account only for rounds with survivors",
            ));
        }
        if dim == 0 {
            return Err(invalid("dim", "0 coordinates", "give the update's length"));
        }
        if !(local_variance.is_finite() && local_variance >= 0.25) {
            return Err(invalid(
                "local_variance",
                format!(
                    "{local_variance} is below 1/4 or not finite (KLS21's analysis of the sum assumes sigma >= 1/2)"
                ),
                "add more noise per client (a smaller --dp-epsilon target or a finer granularity)",
            ));
        }
        Ok(Self {
            survivors,
            dim,
            l2,
            l1,
            local_variance,
            tau: tau(survivors, local_variance),
        })
    }

    /// KLS21's τ for this mechanism.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// The variance of the summed noise, `survivors·σ²`.
    pub fn central_variance(&self) -> f64 {
        self.survivors as f64 * self.local_variance
    }

    /// One round's RDP ε(α) (KLS21 Proposition 14; see the module docs).
    pub fn rdp_at(&self, order: f64) -> f64 {
        let sd = self.central_variance().sqrt();
        let (s2, s1, tau, d) = (self.l2 / sd, self.l1 / sd, self.tau, self.dim as f64);
        let a = order / 2.0;
        let t1 = a * s2 * s2 + tau * d;
        let t2 = a * (s2 * s2 + 2.0 * s1 * tau + tau * tau * d);
        let t3 = a * (s2 + d.sqrt() * tau).powi(2);
        t1.min(t2).min(t3)
    }

    /// One round's RDP curve on [`default_orders`].
    pub fn rdp(&self) -> Rdp {
        Rdp::from_fn(default_orders(), |a| self.rdp_at(a))
            .expect("the default orders are valid and the curve is positive and finite")
    }

    /// (ε, order) of `rounds` rounds of this mechanism at `delta`.
    ///
    /// # Errors
    /// As [`Rdp::epsilon`].
    pub fn epsilon(&self, rounds: u32, delta: f64) -> Result<(f64, f64)> {
        self.rdp().composed(rounds).epsilon(delta)
    }
}

/// The noise each of `clients` collaborators adds, provisioned so that any
/// `min_survivors` or more survivors give the promised guarantee.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Provisioning {
    clients: usize,
    min_survivors: usize,
    local_variance: f64,
    bound: IntegerBound,
}

impl Provisioning {
    /// From a central variance σ_total² that the sum must carry (e.g. from a Gaussian
    /// analysis): each client adds σ_total²/`min_survivors`, so `s ≥ min_survivors`
    /// survivors give at least σ_total².
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `min_survivors` (0 or above `clients`) or
    /// `central_variance` (not finite and positive).
    pub fn for_central_variance(
        central_variance: f64,
        bound: IntegerBound,
        clients: usize,
        min_survivors: usize,
    ) -> Result<Self> {
        check_counts(clients, min_survivors)?;
        if !(central_variance.is_finite() && central_variance > 0.0) {
            return Err(invalid(
                "central_variance",
                format!("{central_variance} is not positive"),
                "give the variance the sum must carry",
            ));
        }
        Ok(Self {
            clients,
            min_survivors,
            local_variance: central_variance / min_survivors as f64,
            bound,
        })
    }

    /// The smallest per-client variance σ² (bisection in `[1/4, 10¹⁸]`, relative precision
    /// 1e-9) such that for every survivor count `s` in `[min_survivors, clients]`, `rounds`
    /// rounds of [`DdgMechanism`] meet (ε, δ).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] for a bad target or counts; [`DpError::Unreachable`]
    /// naming the knobs if even σ² = 10¹⁸ per client misses the target.
    pub fn for_target(
        target: Target,
        bound: IntegerBound,
        clients: usize,
        min_survivors: usize,
    ) -> Result<Self> {
        target.validate()?;
        check_counts(clients, min_survivors)?;
        let worst = |var: f64| -> Result<f64> {
            let p = Self {
                clients,
                min_survivors,
                local_variance: var,
                bound,
            };
            Ok(p.worst_rdp()?
                .composed(target.rounds)
                .epsilon(target.delta)?
                .0)
        };
        let var = smallest_meeting(0.25, 1e18, target.epsilon, worst)?.ok_or_else(|| {
            DpError::Unreachable {
                target: target.describe(),
                problem: "even a per-client noise variance of 1e18 (integer units) spends more".into(),
                fix: "raise the target epsilon (--dp-epsilon) or delta (--dp-delta), run fewer rounds, \
                      or lower the clip (--dp-clip) relative to the granularity"
                    .into(),
            }
        })?;
        Ok(Self {
            clients,
            min_survivors,
            local_variance: var,
            bound,
        })
    }

    /// σ² each client adds (integer units).
    pub fn local_variance(&self) -> f64 {
        self.local_variance
    }

    /// The clients the noise was provisioned for.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// The fewest survivors the guarantee covers.
    pub fn min_survivors(&self) -> usize {
        self.min_survivors
    }

    /// The mechanism one round with `survivors` survivors ran (any count: below
    /// `min_survivors` it is weaker than promised, and SecAgg with threshold `min_survivors`
    /// aborts such a round instead of releasing it).
    ///
    /// # Errors
    /// As [`DdgMechanism::new`].
    pub fn achieved(&self, survivors: usize) -> Result<DdgMechanism> {
        DdgMechanism::new(self.bound, survivors, self.local_variance)
    }

    /// The per-round RDP guaranteed for any survivor count in `[min_survivors, clients]`:
    /// the pointwise maximum of their curves.
    ///
    /// # Errors
    /// As [`DdgMechanism::new`].
    pub fn worst_rdp(&self) -> Result<Rdp> {
        let orders = default_orders();
        let mut worst = vec![0.0f64; orders.len()];
        // τ for every survivor count in one pass.
        let c = -2.0 * std::f64::consts::PI.powi(2) * self.local_variance;
        let mut tau_sum = 0.0;
        let base = DdgMechanism::new(self.bound, 1, self.local_variance)?;
        for s in 1..=self.clients {
            if s > 1 {
                let k = (s - 1) as f64;
                tau_sum += (c * k / (k + 1.0)).exp();
            }
            if s < self.min_survivors {
                continue;
            }
            let m = DdgMechanism {
                survivors: s,
                tau: 10.0 * tau_sum,
                ..base
            };
            for (w, a) in worst.iter_mut().zip(&orders) {
                *w = w.max(m.rdp_at(*a));
            }
        }
        Ok(Rdp::from_parts(orders, worst))
    }
}

fn check_counts(clients: usize, min_survivors: usize) -> Result<()> {
    if min_survivors == 0 || min_survivors > clients {
        return Err(invalid(
            "min_survivors",
            format!("{min_survivors} is not in [1, {clients}]"),
            "use the secure-aggregation threshold t (1 <= t <= clients)",
        ));
    }
    Ok(())
}

/// A signed integer (a rounded update plus noise) as an element of `Z_(2^32)`, the ring
/// secure aggregation sums in (two's complement: wrapping).
pub fn to_ring(x: i64) -> u32 {
    x as u32
}

/// The centered representative in `[−2³¹, 2³¹)` of a (summed) ring element: the true
/// integer sum whenever that sum lies in this range (see [`wrap_probability`]).
pub fn from_ring(v: u32) -> i64 {
    i64::from(v as i32)
}

/// An upper bound on the probability that any of `dim` coordinates of the sum of
/// `survivors` clients' (rounded update + N_Z(0, `local_variance`)) leaves
/// `[−2^(bits−1), 2^(bits−1))`, i.e. that decoding the `Z_(2^bits)` sum wraps around.
///
/// Each client's coordinate is at most its L2 norm `l2` (Δ₂) in magnitude, so the signal part
/// of a coordinate's sum is at most `s·Δ₂`; the summed noise is sub-Gaussian with variance
/// proxy `s·σ²` (the discrete Gaussian is σ²-sub-Gaussian, CKS20), so it exceeds the headroom
/// `h = 2^(bits−1) − s·Δ₂` with probability at most `2·exp(−h²/(2sσ²))`; a union bound over
/// the coordinates gives the result (1 when `h ≤ 0`). A run picks the granularity so that this
/// is negligible (e.g. below 2⁻⁴⁰) and says so.
///
/// ```
/// use flspec::dp::ddg::wrap_probability;
///
/// // 100 clients, 10^6 coordinates, Δ₂ = 2^16, σ = 2^10: no wrap in Z_(2^32) in practice.
/// let p = wrap_probability(100, 1_000_000, 65536.0, 1048576.0, 32);
/// assert!(p < 2f64.powi(-40));
/// // A 20-bit ring is far too small for that.
/// assert_eq!(wrap_probability(100, 1_000_000, 65536.0, 1048576.0, 20), 1.0);
/// ```
pub fn wrap_probability(
    survivors: usize,
    dim: usize,
    l2: f64,
    local_variance: f64,
    bits: u32,
) -> f64 {
    let s = survivors as f64;
    let headroom = 2f64.powi(bits as i32 - 1) - s * l2;
    if headroom <= 0.0 {
        return 1.0;
    }
    let per_coord = 2.0 * (-headroom * headroom / (2.0 * s * local_variance)).exp();
    (dim as f64 * per_coord).min(1.0)
}

/// A complete DDG setting for a run: the granularity γ, the integer-domain bound, the noise
/// each client adds, and the wrap-around probability of the sum in `Z_(2^bits)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdgPlan {
    /// The granularity: an update clipped to `C` becomes integers of norm about `C/γ`.
    pub gamma: f64,
    /// The integer-domain bound after conditional rounding (clip `C/γ`).
    pub bound: IntegerBound,
    /// The per-client noise, provisioned for any `min_survivors` of `clients`.
    pub provisioning: Provisioning,
    /// [`wrap_probability`] of a round with all `clients` surviving (the largest sum).
    pub wrap_probability: f64,
}

impl DdgPlan {
    /// The finest granularity γ (the largest clip in integer units `C/γ`, at most 2³⁰) such
    /// that the noise provisioned for `target` ([`Provisioning::for_target`]) keeps the
    /// probability of a wrap-around in `Z_(2^bits)` at most `max_wrap` with all `clients`
    /// surviving; bisection on `log(C/γ)`. A finer grid loses less to rounding; a coarser one
    /// leaves more headroom in the ring.
    ///
    /// ```
    /// use flspec::dp::accountant::Target;
    /// use flspec::dp::ddg::DdgPlan;
    ///
    /// // epsilon 3 over 10 rounds; clip 1.0; the MNIST CNN's 21,840 values; 10 clients, any
    /// // 7 survive; beta = e^-0.5; SecAgg's 32-bit ring; wraps below 2^-40.
    /// let target = Target { epsilon: 3.0, delta: 1e-5, rounds: 10 };
    /// let beta = (-0.5f64).exp();
    /// let plan = DdgPlan::new(target, 1.0, 21_840, 10, 7, beta, 32, 2f64.powi(-40))?;
    /// assert!(plan.wrap_probability <= 2f64.powi(-40));
    /// assert!(plan.gamma < 1e-6); // a fine grid: rounding costs nothing visible
    /// # Ok::<(), flspec::dp::DpError>(())
    /// ```
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] for a bad clip, β, `bits` (2 to 63) or `max_wrap`;
    /// errors of [`Provisioning::for_target`] at the coarsest grid (16 integer units);
    /// [`DpError::Unreachable`] naming the knobs if even that grid wraps too often.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: Target,
        clip: f64,
        dim: usize,
        clients: usize,
        min_survivors: usize,
        beta: f64,
        bits: u32,
        max_wrap: f64,
    ) -> Result<Self> {
        IntegerBound::new(clip, dim, beta)?;
        if !(2..=63).contains(&bits) {
            return Err(invalid(
                "bits",
                format!("{bits} is not in [2, 63]"),
                "use the ring of secure aggregation (32)",
            ));
        }
        if !(max_wrap > 0.0 && max_wrap < 1.0) {
            return Err(invalid(
                "max_wrap",
                format!("{max_wrap} is not in (0, 1)"),
                "use a negligible probability such as 2^-40",
            ));
        }
        let at = |c_int: f64| -> Result<Self> {
            let bound = IntegerBound::new(c_int, dim, beta)?;
            let provisioning = Provisioning::for_target(target, bound, clients, min_survivors)?;
            let wrap = wrap_probability(
                clients,
                dim,
                bound.l2(),
                provisioning.local_variance(),
                bits,
            );
            Ok(Self {
                gamma: clip / c_int,
                bound,
                provisioning,
                wrap_probability: wrap,
            })
        };
        let (lo, hi) = (16.0f64, 2f64.powi(30));
        let low = at(lo)?;
        if low.wrap_probability > max_wrap {
            return Err(DpError::Unreachable {
                target: format!(
                    "a wrap-around probability of at most {max_wrap:e} in Z_(2^{bits})"
                ),
                problem: format!(
                    "even a clip of 16 integer units wraps with probability up to {:e} with {clients} clients",
                    low.wrap_probability
                ),
                fix: "use fewer clients per round, a looser --dp-epsilon, or a larger ring".into(),
            });
        }
        // A grid so fine that no provisionable noise meets the target counts as too fine.
        let fits = |c_int: f64| -> Result<Option<Self>> {
            match at(c_int) {
                Ok(p) if p.wrap_probability <= max_wrap => Ok(Some(p)),
                Ok(_) | Err(DpError::Unreachable { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        if let Some(high) = fits(hi)? {
            return Ok(high);
        }
        let (mut lo, mut hi, mut best) = (lo.ln(), hi.ln(), low);
        while hi - lo > 1e-3 {
            let mid = 0.5 * (lo + hi);
            match fits(mid.exp())? {
                Some(p) => {
                    lo = mid;
                    best = p;
                }
                None => hi = mid,
            }
        }
        Ok(best)
    }
}
