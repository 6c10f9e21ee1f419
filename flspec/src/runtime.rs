//! The [`Runtime`] trait and the [`Observer`] hook shared by all runtimes.

use std::time::Duration;

use crate::{Flow, Result, Role};

/// Something that runs a flow from `start` to `end`.
///
/// The trait is small on purpose: a runtime takes the initial state and returns the final one.
/// The local runtime simulates every participant in one process; the federated runtime runs
/// collaborator steps on the envoys of their sites. A flow runs unchanged on either, so the switch
/// is one line:
///
/// ```ignore
/// let flow = MyFlow::default().run(&local)?;      // or .run(&federated)?
/// ```
pub trait Runtime<F: Flow> {
    /// Runs `flow` from `start` to `end` and returns its final state.
    ///
    /// # Errors
    /// Any failure of a step or of the runtime; see [`crate::Error`].
    fn execute(&self, flow: F) -> Result<F>;
}

/// Progress of a run, as reported to an [`Observer`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A run began.
    RunStarted {
        /// The flow's name.
        flow: &'static str,
        /// The run's identifier.
        run_id: &'a str,
        /// How many collaborators the run has.
        collaborators: usize,
    },
    /// A step began on a participant.
    StepStarted {
        /// The step's name.
        step: &'static str,
        /// The role running it.
        role: Role,
        /// The participant: a collaborator's name or `"aggregator"`.
        participant: &'a str,
    },
    /// A step ended on a participant.
    StepFinished {
        /// The step's name.
        step: &'static str,
        /// The role running it.
        role: Role,
        /// The participant: a collaborator's name or `"aggregator"`.
        participant: &'a str,
        /// How long the step took.
        elapsed: Duration,
    },
    /// The aggregator fanned out to collaborators.
    FanOut {
        /// The step the collaborators run.
        step: &'static str,
        /// How many collaborators.
        collaborators: usize,
    },
    /// A collaborator dropped out of a fan-out.
    Dropped {
        /// The step the fan-out targets.
        step: &'static str,
        /// The collaborator.
        participant: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// A join received its inputs.
    Joined {
        /// The join step.
        step: &'static str,
        /// How many inputs.
        inputs: usize,
    },
    /// A run resumed from a checkpoint.
    Resumed {
        /// The last step the checkpoint had completed on the aggregator.
        after_step: &'static str,
        /// Collaborators of the interrupted fan-out whose work was recovered.
        recovered: usize,
    },
    /// A run ended.
    RunFinished {
        /// The run's wall time.
        elapsed: Duration,
    },
}

/// A hook that sees the progress of a run, e.g. to draw a progress bar.
///
/// Called from the runtime's threads; keep it quick.
pub trait Observer: Send + Sync {
    /// Called for every [`Event`] of a run.
    fn on_event(&self, event: &Event<'_>);
}

impl<T: Fn(&Event<'_>) + Send + Sync> Observer for T {
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// The collaborators of a run, as a step sees them through [`Ctx::roster`](crate::Ctx::roster):
/// a list of names, or a numbered [`Population`] whose names are made when asked for.
///
/// A flow that samples each round works with either, and never walks the whole population:
///
/// ```
/// use flspec::fl::sampling::ClientSampler;
/// use flspec::runtime::{Population, Roster};
///
/// let population = Population::new(1_000_000);
/// let roster = Roster::Population(&population);
/// let sampler = ClientSampler::new(7).fraction(0.0).min_clients(100);
/// let picked = roster.sample(&sampler, 1)?; // 100 names, made for the sample only
/// assert_eq!(picked.len(), 100);
/// assert!(picked.iter().all(|n| population.position(n).is_some()));
/// # Ok::<(), flspec::fl::sampling::SamplingError>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Roster<'a> {
    /// Every name, in the order the runtime was given them.
    List(&'a [String]),
    /// A numbered population.
    Population(&'a Population),
}

impl<'a> Roster<'a> {
    /// How many collaborators the run has.
    pub fn len(&self) -> usize {
        match self {
            Roster::List(names) => names.len(),
            Roster::Population(p) => p.len(),
        }
    }

    /// Whether the run has no collaborators.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name of the collaborator at `index`, or `None` past the end.
    pub fn name(&self, index: usize) -> Option<std::borrow::Cow<'a, str>> {
        match *self {
            Roster::List(names) => names.get(index).map(|n| n.as_str().into()),
            Roster::Population(p) => p.name(index).map(Into::into),
        }
    }

    /// The position of `name`, if it is one of the run's collaborators. On a list this scans
    /// the names; on a population it reads the number in the name.
    pub fn position(&self, name: &str) -> Option<usize> {
        match self {
            Roster::List(names) => names.iter().position(|n| n == name),
            Roster::Population(p) => p.position(name),
        }
    }

    /// The names as a slice if they exist already: a list's, or a population's once made.
    pub(crate) fn listed(&self) -> Option<&'a [String]> {
        match *self {
            Roster::List(names) => Some(names),
            Roster::Population(p) => p.names.get().map(Vec::as_slice),
        }
    }

    /// Every name, as a slice. A population makes its names the first time this is called and
    /// keeps them (tens of bytes per collaborator); prefer [`Roster::sample`] or
    /// [`Roster::name`] on a large one.
    pub fn as_names(&self) -> &'a [String] {
        match *self {
            Roster::List(names) => names,
            Roster::Population(p) => p.names(),
        }
    }

    /// Round `round`'s sample: the names [`ClientSampler::sample`] picks among all the
    /// collaborators (every one counted online). On a population it costs what the sample
    /// costs, whatever the population's size, and picks the names `sample` would pick from
    /// the full list, since a population's names sort in their numbers' order.
    ///
    /// [`ClientSampler::sample`]: crate::fl::sampling::ClientSampler::sample
    ///
    /// # Errors
    /// As [`ClientSampler::sample`](crate::fl::sampling::ClientSampler::sample).
    pub fn sample(
        &self,
        sampler: &crate::fl::sampling::ClientSampler,
        round: u64,
    ) -> std::result::Result<Vec<String>, crate::fl::sampling::SamplingError> {
        match *self {
            Roster::List(names) => Ok(sampler
                .sample(round, names)?
                .into_iter()
                .map(str::to_owned)
                .collect()),
            Roster::Population(p) => Ok(sampler
                .sample_indices(round, p.len())?
                .into_iter()
                .filter_map(|i| p.name(i))
                .collect()),
        }
    }
}

/// A numbered population of collaborators: `len` names `<prefix><number>`, the number
/// zero-padded to the width of the largest (`site-000000` to `site-999999` for a million), so
/// that names sort in their numbers' order.
///
/// It holds no name until asked: a name is made from its number, and a number read back from
/// its name, so a population of a million costs a few bytes, not a million strings. Runtimes
/// that host one (`LocalRuntime::population` in `flspec-local`) build a collaborator's private
/// state only when a fan-out first names it.
///
/// ```
/// use flspec::runtime::Population;
///
/// let p = Population::new(1_000);
/// assert_eq!(p.name(7).as_deref(), Some("site-007"));
/// assert_eq!(p.position("site-007"), Some(7));
/// assert_eq!(p.position("site-7"), None); // not zero-padded: not a name of this population
/// assert_eq!(Population::with_prefix("phone-", 12).name(3).as_deref(), Some("phone-03"));
/// ```
#[derive(Clone)]
pub struct Population {
    prefix: String,
    len: usize,
    width: usize,
    names: std::sync::OnceLock<Vec<String>>,
}

impl Population {
    /// `len` collaborators named `site-<number>`.
    pub fn new(len: usize) -> Self {
        Self::with_prefix("site-", len)
    }

    /// `len` collaborators named `<prefix><number>`.
    pub fn with_prefix(prefix: impl Into<String>, len: usize) -> Self {
        let width = len
            .saturating_sub(1)
            .checked_ilog10()
            .map_or(1, |d| d as usize + 1);
        Population {
            prefix: prefix.into(),
            len,
            width,
            names: std::sync::OnceLock::new(),
        }
    }

    /// How many collaborators.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the population is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The names' common prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name of collaborator `index`, or `None` if `index >= len`.
    pub fn name(&self, index: usize) -> Option<String> {
        if index >= self.len {
            return None;
        }
        let mut name = String::with_capacity(self.prefix.len() + self.width);
        name.push_str(&self.prefix);
        let mut digits = [b'0'; 20];
        let (mut rest, mut at) = (index, digits.len());
        while rest > 0 {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        // `width` covers the largest index, so the digits fit; the rest of the field is zeros.
        let field = &digits[digits.len() - self.width.min(digits.len())..];
        name.extend(field.iter().map(|&d| char::from(d)));
        Some(name)
    }

    /// The number of the collaborator called `name`, or `None` if no collaborator of this
    /// population has that name.
    pub fn position(&self, name: &str) -> Option<usize> {
        let digits = name.strip_prefix(self.prefix.as_str())?;
        if digits.len() != self.width || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|&i| i < self.len)
    }

    /// Every name, made on the first call and kept (tens of bytes per collaborator).
    pub fn names(&self) -> &[String] {
        self.names
            .get_or_init(|| (0..self.len).filter_map(|i| self.name(i)).collect())
    }
}

/// Shows the pattern and the size, never a million names.
impl std::fmt::Debug for Population {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Population")
            .field("prefix", &self.prefix)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
