//! Rényi differential privacy (RDP) over rounds, converted to (ε, δ).
//!
//! An [`Rdp`] holds ε(α) on a grid of orders α (by default [`default_orders`], the grid of
//! Google's `dp-accounting` `RdpAccountant`). Mechanisms add up under composition
//! ([`Rdp::compose`]); [`Rdp::epsilon`] converts to (ε, δ)-DP with the conversion of
//! `dp-accounting`'s `compute_epsilon` (Canonne, Kamath, Steinke 2020, Proposition 12;
//! Asoodeh et al. 2020):
//!
//! `ε = min over α of  ε(α) + ln(1 − 1/α) − (ln δ + ln α)/(α − 1)`,
//!
//! with the same special cases (0 when `δ² > 1 − e^{−ε(α)}`, orders ≤ 1.01 skipped), so it
//! matches `dp-accounting` 0.6.0 on the same grid (pinned in `flspec/tests/dp_accountant.rs`).
//!
//! The Gaussian mechanism with noise multiplier z = σ/Δ₂ (no sampling: every collaborator
//! takes part in every round) has ε(α) = α/(2z²) ([`Rdp::gaussian`]); the distributed
//! discrete Gaussian's curve is [`super::ddg::DdgMechanism::rdp`].
//!
//! ```
//! use flspec::dp::accountant::{gaussian_noise_multiplier_for, Rdp};
//!
//! // z = 1, 10 rounds, delta = 1e-5: dp-accounting 0.6.0 says epsilon 19.0536 (order 2.5).
//! let (eps, order) = Rdp::gaussian(1.0)?.composed(10).epsilon(1e-5)?;
//! assert!((eps - 19.05359753163139).abs() < 1e-9 && order == 2.5);
//!
//! // And back: the smallest z for epsilon 19.0536 over 10 rounds is 1.
//! let z = gaussian_noise_multiplier_for(19.05359753163139, 1e-5, 10)?;
//! assert!((z - 1.0).abs() < 1e-6);
//! # Ok::<(), flspec::dp::DpError>(())
//! ```

use super::error::{DpError, Result, invalid};

/// The orders α of `dp-accounting`'s `DEFAULT_RDP_ORDERS`: 1.1, 1.2, …, 10.9, then 11, …, 63,
/// then 128, 256, 512, 1024 (156 orders).
pub fn default_orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    v.extend((11..64).map(f64::from));
    v.extend([128.0, 256.0, 512.0, 1024.0]);
    v
}

/// An RDP curve: ε(α) at each order α of a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Rdp {
    orders: Vec<f64>,
    eps: Vec<f64>,
}

impl Rdp {
    /// The curve of a mechanism that reveals nothing (ε(α) = 0), on `orders`.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `orders` if the grid is empty or has an order
    /// that is not finite or not above 1.
    pub fn zero(orders: Vec<f64>) -> Result<Self> {
        if orders.is_empty() || orders.iter().any(|a| !a.is_finite() || *a <= 1.0) {
            return Err(invalid(
                "orders",
                "the grid is empty or has an order that is not a finite number above 1",
                "use accountant::default_orders()",
            ));
        }
        let eps = vec![0.0; orders.len()];
        Ok(Self { orders, eps })
    }

    /// The curve `f(α)` on `orders`.
    ///
    /// # Errors
    /// As [`Rdp::zero`]; naming `rdp` if `f` gives a NaN or a negative value.
    pub fn from_fn(orders: Vec<f64>, f: impl Fn(f64) -> f64) -> Result<Self> {
        let mut r = Self::zero(orders)?;
        for (e, a) in r.eps.iter_mut().zip(&r.orders) {
            *e = f(*a);
            if e.is_nan() || *e < 0.0 {
                return Err(invalid(
                    "rdp",
                    format!("the curve is {e} at order {a}"),
                    "check the mechanism's parameters",
                ));
            }
        }
        Ok(r)
    }

    /// One round of the Gaussian mechanism with noise multiplier `z` = σ/Δ₂, on
    /// [`default_orders`]: ε(α) = α/(2z²).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `noise_multiplier` unless it is finite and positive.
    pub fn gaussian(z: f64) -> Result<Self> {
        check_positive("noise_multiplier", z)?;
        Self::from_fn(default_orders(), |a| a / (2.0 * z * z))
    }

    /// A curve from its parts (same length, checked by the caller).
    pub(crate) fn from_parts(orders: Vec<f64>, eps: Vec<f64>) -> Self {
        debug_assert_eq!(orders.len(), eps.len());
        Self { orders, eps }
    }

    /// The orders of the grid.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// ε(α) at each order.
    pub fn values(&self) -> &[f64] {
        &self.eps
    }

    /// Adds `times` runs of `other` (on the same grid) to this curve.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `orders` if the grids differ.
    pub fn compose(&mut self, other: &Rdp, times: u32) -> Result<()> {
        if self.orders != other.orders {
            return Err(invalid(
                "orders",
                "the two RDP curves are on different order grids",
                "build both on the same grid (accountant::default_orders())",
            ));
        }
        for (e, o) in self.eps.iter_mut().zip(&other.eps) {
            *e += f64::from(times) * o;
        }
        Ok(())
    }

    /// This curve composed with itself over `rounds` rounds (ε(α)·rounds).
    pub fn composed(&self, rounds: u32) -> Self {
        Self {
            orders: self.orders.clone(),
            eps: self.eps.iter().map(|e| e * f64::from(rounds)).collect(),
        }
    }

    /// The smallest ε over the grid such that the mechanism is (ε, δ)-DP, and the order that
    /// gives it (dp-accounting's `compute_epsilon`; ε = ∞ when no order gives a finite bound).
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `delta` unless `0 < δ < 1`.
    pub fn epsilon(&self, delta: f64) -> Result<(f64, f64)> {
        if !(delta > 0.0 && delta < 1.0) {
            return Err(invalid(
                "delta",
                format!("{delta} is not in (0, 1)"),
                "use a small delta such as 1e-5 (below 1/number of records)",
            ));
        }
        let mut best = (f64::INFINITY, self.orders[0]);
        for (&a, &r) in self.orders.iter().zip(&self.eps) {
            let e = if delta * delta + (-r).exp_m1() > 0.0 {
                0.0
            } else if a > 1.01 {
                r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
            } else {
                f64::INFINITY
            };
            if e < best.0 {
                best = (e, a);
            }
        }
        Ok((best.0.max(0.0), best.1))
    }
}

fn check_positive(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            name,
            format!("{v} is not a finite positive number"),
            "give a positive value",
        ))
    }
}

/// A privacy target: (ε, δ) over a number of rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// ε of the whole run.
    pub epsilon: f64,
    /// δ of the whole run.
    pub delta: f64,
    /// Rounds the budget must cover.
    pub rounds: u32,
}

impl Target {
    /// Checks the fields.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `epsilon`, `delta` or `rounds`.
    pub fn validate(&self) -> Result<()> {
        check_positive("epsilon", self.epsilon)?;
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(invalid(
                "delta",
                format!("{} is not in (0, 1)", self.delta),
                "use a small delta such as 1e-5",
            ));
        }
        if self.rounds == 0 {
            return Err(invalid(
                "rounds",
                "0 rounds",
                "give the number of rounds to account for",
            ));
        }
        Ok(())
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "epsilon {} at delta {:e} over {} round(s)",
            self.epsilon, self.delta, self.rounds
        )
    }
}

/// Finds the smallest `x` in `[lo, hi]` (to relative precision 1e-9) with `eps(x) ≤ target`,
/// for an ε that decreases in `x`; `None` when even `hi` misses it. Bisection on `ln x`.
pub(crate) fn smallest_meeting(
    lo: f64,
    hi: f64,
    target: f64,
    eps: impl Fn(f64) -> Result<f64>,
) -> Result<Option<f64>> {
    if eps(hi)? > target {
        return Ok(None);
    }
    if eps(lo)? <= target {
        return Ok(Some(lo));
    }
    let (mut lo, mut hi) = (lo.ln(), hi.ln());
    while hi - lo > 1e-10 {
        let mid = 0.5 * (lo + hi);
        if eps(mid.exp())? <= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi.exp()))
}

/// The smallest noise multiplier z = σ/Δ₂ of the Gaussian mechanism (no sampling) that gives
/// (ε, δ)-DP over `rounds` rounds, on [`default_orders`], found by bisection in
/// `[1e-3, 1e6]` (relative precision 1e-9; the result meets the target).
///
/// # Errors
/// [`DpError::InvalidParameter`] for a bad ε, δ or `rounds`; [`DpError::Unreachable`] naming
/// `--dp-epsilon` if even z = 10⁶ misses the target.
pub fn gaussian_noise_multiplier_for(epsilon: f64, delta: f64, rounds: u32) -> Result<f64> {
    let target = Target {
        epsilon,
        delta,
        rounds,
    };
    target.validate()?;
    let eps = |z: f64| Ok(Rdp::gaussian(z)?.composed(rounds).epsilon(delta)?.0);
    smallest_meeting(1e-3, 1e6, epsilon, eps)?.ok_or_else(|| DpError::Unreachable {
        target: target.describe(),
        problem: "even a noise multiplier of 1e6 spends more".into(),
        fix: "raise the target epsilon (--dp-epsilon) or delta (--dp-delta), or run fewer rounds"
            .into(),
    })
}

/// What a run has spent so far: the per-round RDP curves composed, and ε after each round.
///
/// The flow records one curve per released round (with the survivors that round actually
/// had) and prints [`Accountant::epsilon_per_round`] in its table.
///
/// ```
/// use flspec::dp::accountant::{Accountant, Rdp};
///
/// let mut acc = Accountant::new(1e-5)?;
/// for _ in 0..10 {
///     acc.record(&Rdp::gaussian(1.0)?)?;
/// }
/// let spent = acc.epsilon_per_round();
/// assert_eq!(spent.len(), 10);
/// assert!((spent[9] - 19.05359753163139).abs() < 1e-9);
/// assert!(spent.windows(2).all(|w| w[0] <= w[1]));
/// # Ok::<(), flspec::dp::DpError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Accountant {
    delta: f64,
    total: Rdp,
    spent: Vec<f64>,
}

impl Accountant {
    /// An empty ledger reporting ε at `delta`, on [`default_orders`].
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `delta` unless `0 < δ < 1`.
    pub fn new(delta: f64) -> Result<Self> {
        let total = Rdp::zero(default_orders())?;
        total.epsilon(delta)?;
        Ok(Self {
            delta,
            total,
            spent: Vec::new(),
        })
    }

    /// Adds one released round's curve; returns ε spent so far.
    ///
    /// # Errors
    /// [`DpError::InvalidParameter`] naming `orders` if `round` is on another grid.
    pub fn record(&mut self, round: &Rdp) -> Result<f64> {
        self.total.compose(round, 1)?;
        let (eps, _) = self.total.epsilon(self.delta)?;
        self.spent.push(eps);
        Ok(eps)
    }

    /// ε spent after each recorded round (cumulative).
    pub fn epsilon_per_round(&self) -> &[f64] {
        &self.spent
    }

    /// The composed curve so far.
    pub fn total(&self) -> &Rdp {
        &self.total
    }

    /// δ of the reported ε.
    pub fn delta(&self) -> f64 {
        self.delta
    }
}
