//! Per-round schedules for the collaborators' learning rate and local epochs.
//!
//! A [`Schedule<T>`] maps a round (0 for the first; subtract 1 if a flow counts from 1) to a value:
//! [`LrSchedule`] (`Schedule<f64>`) for the client learning rate, [`EpochSchedule`]
//! (`Schedule<usize>`) for the local epochs. The aggregator evaluates it with
//! [`Schedule::at`] and sends the value with the round's model, as Flower's `on_fit_config_fn`
//! does. The shapes are PyTorch's schedulers, evaluated by their closed forms with the round
//! as the epoch:
//!
//! | shape | value at round `t` | PyTorch |
//! |---|---|---|
//! | constant | `v` | — |
//! | step decay | `v · γ^⌊t / every⌋` | `StepLR(step_size = every, gamma = γ)` |
//! | exponential | `v · γ^t` | `ExponentialLR(gamma = γ)` |
//! | cosine | `min + (v − min)(1 + cos(π·t/R))/2` for `t ≤ R`, then `min` | `CosineAnnealingLR(T_max = R, eta_min = min)` |
//! | warm-up | `then(0) · (t + 1)/(w + 1)` for `t < w`, then `then(t − w)` | `LinearLR(start_factor = 1/(w+1), total_iters = w)` then the next, by `SequentialLR(milestones = [w])` |
//! | piecewise | the value of the last piece starting at or before `t` | — |
//!
//! One departure: PyTorch's cosine closed form rises again after `T_max`; here the value stays
//! at `min`, which is what a run of more rounds than planned wants.
//!
//! Epoch schedules compute in `f64` and round to the nearest whole number, never below 1.
//!
//! # Grammar
//! Schedules parse from and print to one-line strings (`FromStr`, `Display`; serde uses the
//! same string), so that a command line takes `--lr cosine:0.1,min=0.001,rounds=20`:
//!
//! ```text
//! schedule  = value                                      constant
//!           | "step:" value ",every=" n ",gamma=" x      step decay
//!           | "exp:" value ",gamma=" x                   exponential decay
//!           | "cosine:" value [",min=" value] ",rounds=" n   cosine annealing (min: 0, or 1 epoch)
//!           | "warmup:" n ",then=" schedule              linear warm-up over n rounds, then the rest
//!           | "piecewise:" n "=" value ("," n "=" value)*   pieces by starting round, the first at 0
//! ```
//!
//! `value` is a learning rate (finite, ≥ 0) or a number of epochs (≥ 1); `n` a whole number of
//! rounds (`every`, `rounds` and warm-up rounds ≥ 1); `x` (γ) finite and > 0. Keys after the first
//! value may come in any order, except `then=`, which takes the rest of the string. `Display`
//! prints the canonical form (keys in the order above, `min=` always), which parses back to the
//! same schedule.
//!
//! ```
//! use flspec::fl::schedule::{EpochSchedule, LrSchedule};
//!
//! let lr: LrSchedule = "warmup:2,then=cosine:0.1,min=0.001,rounds=10".parse()?;
//! assert!(lr.at(0) < lr.at(1) && lr.at(1) < lr.at(2));
//! assert_eq!(lr.at(2), 0.1);
//! assert_eq!(lr.at(12), 0.001);
//!
//! let epochs: EpochSchedule = "piecewise:0=2,5=1".parse()?;
//! assert_eq!((epochs.at(4), epochs.at(5), epochs.at(100)), (2, 1, 1));
//! assert_eq!(epochs.to_string(), "piecewise:0=2,5=1");
//! # Ok::<(), flspec::fl::schedule::ScheduleError>(())
//! ```

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// What is wrong with a schedule or its text.
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The text does not follow the grammar.
    #[error(
        "cannot read schedule `{spec}`: {problem}; write e.g. `0.01`, `step:0.1,every=5,gamma=0.5`, `exp:0.1,gamma=0.95`, `cosine:0.1,min=0.001,rounds=20`, `warmup:3,then=0.1` or `piecewise:0=2,5=1`"
    )]
    Syntax {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A parameter is out of its range.
    #[error("{name} = {value} is out of range: {expected}")]
    InvalidParameter {
        /// The parameter (`"learning rate"`, `"gamma"`, `"every"`, ...).
        name: &'static str,
        /// Its value, as given.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
}

/// Prints the message, as flspec's other errors do.
impl fmt::Debug for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_chain(self, f)
    }
}

/// Result of building or parsing a schedule.
pub type Result<T> = std::result::Result<T, ScheduleError>;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f64 {}
    impl Sealed for usize {}
}

/// A value a schedule can produce: `f64` (learning rates) or `usize` (local epochs). Sealed.
pub trait ScheduleValue:
    sealed::Sealed + Copy + PartialEq + fmt::Debug + fmt::Display + FromStr + Send + Sync + 'static
{
    /// What the value is, for error messages (`"learning rate"`, `"epochs"`).
    const NAME: &'static str;
    /// The allowed range, for error messages.
    const RANGE: &'static str;

    /// The value in `f64`, for the decays.
    ///
    /// ```
    /// use flspec::fl::schedule::ScheduleValue;
    /// assert_eq!(3usize.to_f64(), 3.0);
    /// ```
    fn to_f64(self) -> f64;

    /// A computed value back in `Self`: `f64` as is, epochs rounded to the nearest whole number
    /// and at least 1.
    ///
    /// ```
    /// use flspec::fl::schedule::ScheduleValue;
    /// assert_eq!(<usize as ScheduleValue>::from_f64(0.2), 1);
    /// assert_eq!(<usize as ScheduleValue>::from_f64(2.6), 3);
    /// ```
    fn from_f64(x: f64) -> Self;

    /// Whether the value is in range (`f64`: finite and ≥ 0; epochs: ≥ 1).
    ///
    /// ```
    /// use flspec::fl::schedule::ScheduleValue;
    /// assert!(!(-0.1f64).is_valid() && !0usize.is_valid());
    /// ```
    fn is_valid(self) -> bool;
}

impl ScheduleValue for f64 {
    const NAME: &'static str = "learning rate";
    const RANGE: &'static str = "a learning rate must be finite and at least 0";
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(x: f64) -> Self {
        x
    }
    fn is_valid(self) -> bool {
        self.is_finite() && self >= 0.0
    }
}

impl ScheduleValue for usize {
    const NAME: &'static str = "epochs";
    const RANGE: &'static str = "a number of local epochs must be at least 1";
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        // `as` saturates; NaN (impossible from valid parameters) would give 0, hence the max.
        (x.round() as usize).max(1)
    }
    fn is_valid(self) -> bool {
        self >= 1
    }
}

/// A value per round; see the [module documentation](self) for the shapes and the grammar.
///
/// ```
/// use flspec::fl::schedule::LrSchedule;
/// let lr = LrSchedule::step(0.1, 5, 0.5)?;
/// assert_eq!((lr.at(4), lr.at(5)), (0.1, 0.05));
/// assert_eq!(lr.to_string(), "step:0.1,every=5,gamma=0.5");
/// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Schedule<T: ScheduleValue> {
    kind: Kind<T>,
}

/// Learning-rate schedule.
pub type LrSchedule = Schedule<f64>;

/// Local-epochs schedule.
pub type EpochSchedule = Schedule<usize>;

#[derive(Clone, PartialEq)]
enum Kind<T: ScheduleValue> {
    Constant(T),
    Step { initial: T, every: u64, gamma: f64 },
    Exp { initial: T, gamma: f64 },
    Cosine { initial: T, min: T, rounds: u64 },
    Warmup { rounds: u64, then: Box<Schedule<T>> },
    Piecewise(Vec<(u64, T)>),
}

fn check_value<T: ScheduleValue>(v: T) -> Result<T> {
    if v.is_valid() {
        Ok(v)
    } else {
        Err(ScheduleError::InvalidParameter {
            name: T::NAME,
            value: v.to_string(),
            expected: T::RANGE,
        })
    }
}

fn check_gamma(gamma: f64) -> Result<f64> {
    if gamma.is_finite() && gamma > 0.0 {
        Ok(gamma)
    } else {
        Err(ScheduleError::InvalidParameter {
            name: "gamma",
            value: gamma.to_string(),
            expected: "gamma must be finite and greater than 0 (below 1 to decay)",
        })
    }
}

fn check_rounds(name: &'static str, n: u64) -> Result<u64> {
    if n >= 1 {
        Ok(n)
    } else {
        Err(ScheduleError::InvalidParameter {
            name,
            value: n.to_string(),
            expected: "a number of rounds must be at least 1",
        })
    }
}

impl<T: ScheduleValue> Schedule<T> {
    /// The same value every round.
    ///
    /// # Errors
    /// [`ScheduleError::InvalidParameter`] if the value is out of range.
    ///
    /// ```
    /// let e = flspec::fl::schedule::EpochSchedule::constant(2)?;
    /// assert_eq!(e.at(0), 2);
    /// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
    /// ```
    pub fn constant(value: T) -> Result<Self> {
        Ok(Self::from_kind(Kind::Constant(check_value(value)?)))
    }

    /// Step decay: `initial · gamma^⌊t / every⌋` (PyTorch `StepLR`).
    ///
    /// # Errors
    /// [`ScheduleError::InvalidParameter`] if `initial` is out of range, `every` is 0 or
    /// `gamma` is not finite and positive.
    ///
    /// ```
    /// let lr = flspec::fl::schedule::LrSchedule::step(1.0, 2, 0.5)?;
    /// assert_eq!([lr.at(0), lr.at(1), lr.at(2), lr.at(4)], [1.0, 1.0, 0.5, 0.25]);
    /// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
    /// ```
    pub fn step(initial: T, every: u64, gamma: f64) -> Result<Self> {
        Ok(Self::from_kind(Kind::Step {
            initial: check_value(initial)?,
            every: check_rounds("every", every)?,
            gamma: check_gamma(gamma)?,
        }))
    }

    /// Exponential decay: `initial · gamma^t` (PyTorch `ExponentialLR`).
    ///
    /// # Errors
    /// [`ScheduleError::InvalidParameter`] if `initial` is out of range or `gamma` is not
    /// finite and positive.
    ///
    /// ```
    /// let lr = flspec::fl::schedule::LrSchedule::exponential(1.0, 0.5)?;
    /// assert_eq!(lr.at(3), 0.125);
    /// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
    /// ```
    pub fn exponential(initial: T, gamma: f64) -> Result<Self> {
        Ok(Self::from_kind(Kind::Exp {
            initial: check_value(initial)?,
            gamma: check_gamma(gamma)?,
        }))
    }

    /// Cosine annealing from `initial` down to `min` over `rounds` rounds, then `min`
    /// (PyTorch `CosineAnnealingLR` with `T_max = rounds`, `eta_min = min`).
    ///
    /// # Errors
    /// [`ScheduleError::InvalidParameter`] if a value is out of range, `min > initial`, or
    /// `rounds` is 0.
    ///
    /// ```
    /// let lr = flspec::fl::schedule::LrSchedule::cosine(0.1, 0.0, 4)?;
    /// assert_eq!((lr.at(0), lr.at(4), lr.at(9)), (0.1, 0.0, 0.0));
    /// assert!((lr.at(2) - 0.05).abs() < 1e-15);
    /// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
    /// ```
    pub fn cosine(initial: T, min: T, rounds: u64) -> Result<Self> {
        let (initial, min) = (check_value(initial)?, check_value(min)?);
        if min.to_f64() > initial.to_f64() {
            return Err(ScheduleError::InvalidParameter {
                name: "min",
                value: min.to_string(),
                expected: "the minimum must not exceed the initial value",
            });
        }
        Ok(Self::from_kind(Kind::Cosine {
            initial,
            min,
            rounds: check_rounds("rounds", rounds)?,
        }))
    }

    /// Linear warm-up over `rounds` rounds up to `then`'s first value, then `then` (shifted by
    /// `rounds`): `then(0) · (t + 1)/(rounds + 1)` for `t < rounds`.
    ///
    /// # Errors
    /// [`ScheduleError::InvalidParameter`] if `rounds` is 0.
    ///
    /// ```
    /// use flspec::fl::schedule::LrSchedule;
    /// let lr = LrSchedule::warmup(3, LrSchedule::exponential(0.4, 0.5)?)?;
    /// assert_eq!([lr.at(0), lr.at(1), lr.at(2), lr.at(3), lr.at(4)], [0.1, 0.2, 0.30000000000000004, 0.4, 0.2]);
    /// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
    /// ```
    pub fn warmup(rounds: u64, then: Schedule<T>) -> Result<Self> {
        Ok(Self::from_kind(Kind::Warmup {
            rounds: check_rounds("warm-up rounds", rounds)?,
            then: Box::new(then),
        }))
    }

    /// Pieces `(first round, value)`: the value of the last piece starting at or before `t`.
    /// The first piece must start at round 0 and the starts must increase.
    ///
    /// # Errors
    /// [`ScheduleError::InvalidParameter`] if there are no pieces, the first does not start at
    /// 0, the starts do not increase, or a value is out of range.
    ///
    /// ```
    /// let e = flspec::fl::schedule::EpochSchedule::piecewise([(0, 2), (5, 1)])?;
    /// assert_eq!((e.at(4), e.at(5)), (2, 1));
    /// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
    /// ```
    pub fn piecewise(pieces: impl IntoIterator<Item = (u64, T)>) -> Result<Self> {
        let pieces: Vec<(u64, T)> = pieces.into_iter().collect();
        match pieces.first() {
            None => {
                return Err(ScheduleError::InvalidParameter {
                    name: "pieces",
                    value: "none".into(),
                    expected: "give at least one piece, starting at round 0",
                });
            }
            Some(&(start, _)) if start != 0 => {
                return Err(ScheduleError::InvalidParameter {
                    name: "first piece's round",
                    value: start.to_string(),
                    expected: "the first piece must start at round 0",
                });
            }
            Some(_) => {}
        }
        for w in pieces.windows(2) {
            if w[1].0 <= w[0].0 {
                return Err(ScheduleError::InvalidParameter {
                    name: "piece's round",
                    value: w[1].0.to_string(),
                    expected: "the pieces' starting rounds must increase",
                });
            }
        }
        for &(_, v) in &pieces {
            check_value(v)?;
        }
        Ok(Self::from_kind(Kind::Piecewise(pieces)))
    }

    fn from_kind(kind: Kind<T>) -> Self {
        Self { kind }
    }

    /// The value at `round` (0-based). Never fails: the parameters were checked when the
    /// schedule was built.
    ///
    /// ```
    /// let lr: flspec::fl::schedule::LrSchedule = "exp:0.1,gamma=0.5".parse()?;
    /// assert_eq!(lr.at(1), 0.05);
    /// # Ok::<(), flspec::fl::schedule::ScheduleError>(())
    /// ```
    pub fn at(&self, round: u64) -> T {
        match &self.kind {
            Kind::Constant(v) => *v,
            Kind::Step {
                initial,
                every,
                gamma,
            } => T::from_f64(initial.to_f64() * powu(*gamma, round / every)),
            Kind::Exp { initial, gamma } => T::from_f64(initial.to_f64() * powu(*gamma, round)),
            Kind::Cosine {
                initial,
                min,
                rounds,
            } => {
                if round >= *rounds {
                    return *min;
                }
                let (max, min) = (initial.to_f64(), min.to_f64());
                let c = (PI * round as f64 / *rounds as f64).cos();
                // PyTorch's `min + (max − min)(1 + c)/2`, written to give `max` exactly at
                // round 0 and clamped so that rounding never leaves [min, max].
                T::from_f64((max - (max - min) * (1.0 - c) / 2.0).clamp(min, max))
            }
            Kind::Warmup { rounds, then } => {
                if round >= *rounds {
                    then.at(round - rounds)
                } else {
                    let top = then.at(0).to_f64();
                    T::from_f64(top * (round + 1) as f64 / (*rounds + 1) as f64)
                }
            }
            Kind::Piecewise(pieces) => {
                // The first piece starts at 0, so at least one starts at or before `round`.
                let k = pieces.partition_point(|&(start, _)| start <= round);
                pieces[k.saturating_sub(1)].1
            }
        }
    }
}

/// `x^n` for a whole `n` of any size (`powi` takes an `i32`).
fn powu(x: f64, n: u64) -> f64 {
    match i32::try_from(n) {
        Ok(n) => x.powi(n),
        Err(_) => x.powf(n as f64),
    }
}

impl<T: ScheduleValue> fmt::Display for Schedule<T> {
    /// The canonical text of the [grammar](self#grammar), which parses back to the same schedule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Constant(v) => write!(f, "{v}"),
            Kind::Step {
                initial,
                every,
                gamma,
            } => write!(f, "step:{initial},every={every},gamma={gamma}"),
            Kind::Exp { initial, gamma } => write!(f, "exp:{initial},gamma={gamma}"),
            Kind::Cosine {
                initial,
                min,
                rounds,
            } => write!(f, "cosine:{initial},min={min},rounds={rounds}"),
            Kind::Warmup { rounds, then } => write!(f, "warmup:{rounds},then={then}"),
            Kind::Piecewise(pieces) => {
                f.write_str("piecewise:")?;
                for (i, (start, v)) in pieces.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep}{start}={v}")?;
                }
                Ok(())
            }
        }
    }
}

impl<T: ScheduleValue> fmt::Debug for Schedule<T> {
    /// The same text as `Display`: `Schedule("cosine:0.1,min=0,rounds=20")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.to_string()).finish()
    }
}

/// Parsing state: the whole text, for the error messages.
struct Parser<'a> {
    spec: &'a str,
}

impl Parser<'_> {
    fn syntax(&self, problem: impl Into<String>) -> ScheduleError {
        ScheduleError::Syntax {
            spec: self.spec.to_owned(),
            problem: problem.into(),
        }
    }

    fn value<T: ScheduleValue>(&self, what: &str, text: &str) -> Result<T> {
        text.trim()
            .parse::<T>()
            .map_err(|_| self.syntax(format!("{what} `{text}` is not a valid {} value", T::NAME)))
    }

    fn number<N: FromStr>(&self, what: &str, text: &str, kind: &str) -> Result<N> {
        text.trim()
            .parse::<N>()
            .map_err(|_| self.syntax(format!("{what} `{text}` is not {kind}")))
    }

    /// `key=value` pairs of `args`, each of `keys` at most once; `required` must all be there.
    fn keys<'s>(
        &self,
        shape: &str,
        args: &'s str,
        keys: &[&str],
        required: &[&str],
    ) -> Result<Vec<Option<&'s str>>> {
        let mut found = vec![None; keys.len()];
        for arg in args.split(',').filter(|a| !a.trim().is_empty()) {
            let Some((k, v)) = arg.split_once('=') else {
                return Err(self.syntax(format!(
                    "`{arg}` should be key=value; `{shape}` takes {}",
                    keys.join("=, ") + "="
                )));
            };
            let k = k.trim();
            let Some(i) = keys.iter().position(|key| *key == k) else {
                return Err(self.syntax(format!(
                    "unknown key `{k}` for `{shape}`; it takes {}",
                    keys.join("=, ") + "="
                )));
            };
            if found[i].replace(v).is_some() {
                return Err(self.syntax(format!("`{k}=` is given twice")));
            }
        }
        for r in required {
            if let Some(i) = keys.iter().position(|key| key == r)
                && found[i].is_none()
            {
                return Err(self.syntax(format!("`{shape}` needs `{r}=`")));
            }
        }
        Ok(found)
    }

    fn parse<T: ScheduleValue>(&self, text: &str) -> Result<Schedule<T>> {
        let text = text.trim();
        let Some((shape, rest)) = text.split_once(':') else {
            if text.is_empty() {
                return Err(self.syntax("it is empty"));
            }
            return Schedule::constant(self.value("constant", text)?);
        };
        let shape = shape.trim();
        if shape == "warmup" {
            let (n, then) = rest.split_once(',').ok_or_else(|| {
                self.syntax("`warmup:` needs a number of rounds and `,then=<schedule>`")
            })?;
            let rounds = self.number("warm-up rounds", n, "a whole number of rounds")?;
            let then = then.trim_start().strip_prefix("then=").ok_or_else(|| {
                self.syntax(format!(
                    "after `warmup:{n},` comes `then=<schedule>`, not `{then}`"
                ))
            })?;
            return Schedule::warmup(rounds, self.parse(then)?);
        }
        if shape == "piecewise" {
            let mut pieces = Vec::new();
            for piece in rest.split(',') {
                let (start, v) = piece.split_once('=').ok_or_else(|| {
                    self.syntax(format!("piece `{piece}` should be <first round>=<value>"))
                })?;
                pieces.push((
                    self.number("piece round", start, "a whole number of rounds")?,
                    self.value("piece", v)?,
                ));
            }
            return Schedule::piecewise(pieces);
        }
        let (first, args) = rest.split_once(',').unwrap_or((rest, ""));
        let initial: T = self.value("initial", first)?;
        let rounds = "a whole number of rounds";
        match shape {
            "step" => {
                let k = self.keys(shape, args, &["every", "gamma"], &["every", "gamma"])?;
                let every = self.number("every", k[0].unwrap_or_default(), rounds)?;
                let gamma = self.number("gamma", k[1].unwrap_or_default(), "a number")?;
                Schedule::step(initial, every, gamma)
            }
            "exp" => {
                let k = self.keys(shape, args, &["gamma"], &["gamma"])?;
                let gamma = self.number("gamma", k[0].unwrap_or_default(), "a number")?;
                Schedule::exponential(initial, gamma)
            }
            "cosine" => {
                let k = self.keys(shape, args, &["min", "rounds"], &["rounds"])?;
                let min = match k[0] {
                    Some(m) => self.value("min", m)?,
                    None => T::from_f64(0.0),
                };
                let r = self.number("rounds", k[1].unwrap_or_default(), rounds)?;
                Schedule::cosine(initial, min, r)
            }
            other => Err(self.syntax(format!(
                "unknown shape `{other}:`; shapes: step, exp, cosine, warmup, piecewise (or a bare value for a constant)"
            ))),
        }
    }
}

impl<T: ScheduleValue> FromStr for Schedule<T> {
    type Err = ScheduleError;

    /// Parses the [grammar](self#grammar).
    ///
    /// ```
    /// use flspec::fl::schedule::LrSchedule;
    /// let err = "cosine:0.1,rounds=0".parse::<LrSchedule>().unwrap_err();
    /// assert!(err.to_string().contains("rounds = 0"));
    /// assert!("stepp:0.1".parse::<LrSchedule>().unwrap_err().to_string().contains("unknown shape"));
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        Parser { spec: s }.parse(s)
    }
}

impl<T: ScheduleValue> serde::Serialize for Schedule<T> {
    /// As its [`Display`](fmt::Display) text.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, T: ScheduleValue> serde::Deserialize<'de> for Schedule<T> {
    /// From the text of the [grammar](self#grammar), checked.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
