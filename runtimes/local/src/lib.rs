#![doc = include_str!("../README.md")]
//!
//! ## API
//!
//! [`LocalRuntime`] and its builder calls ([`LocalRuntime::new`], [`LocalRuntime::try_new`],
//! [`LocalRuntime::population`], [`LocalRuntime::try_population`],
//! [`LocalRuntime::with_aggregator`], [`LocalRuntime::parallel`],
//! [`LocalRuntime::private_state_cache`],
//! [`LocalRuntime::checkpoint_dir`], [`LocalRuntime::run_id`], [`LocalRuntime::observer`]);
//! [`LocalRuntime::resume`] and [`flspec::checkpoint`] for checkpoints; [`flspec::Error`] for
//! what a run returns on failure.
#![warn(missing_docs)]

mod fan_out;
mod privates;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use flspec::checkpoint::{CheckpointStore, RunCheckpoints};
use flspec::driver::{Resume, RunSetup, drive_with};
use flspec::runtime::{Population, Roster};
use flspec::{BoxError, Error, Flow, Observer, PrivateStates, Result, Runtime};

type Factory<T> = dyn Fn(&str) -> std::result::Result<T, BoxError> + Send + Sync;

/// Runs flows in one process. See the [crate docs](crate).
///
/// `C` is the collaborators' private state, `A` the aggregator's.
pub struct LocalRuntime<C, A = ()> {
    members: Members,
    collaborator_factory: Box<Factory<C>>,
    aggregator_factory: Box<Factory<A>>,
    workers: usize,
    cache: Option<usize>,
    checkpoint_dir: Option<PathBuf>,
    run_id: Option<String>,
    observer: Option<Arc<dyn Observer>>,
    last_run_id: Mutex<Option<String>>,
    /// The verdict of [`LocalRuntime::check_collaborators`], computed once.
    checked: OnceLock<std::result::Result<(), String>>,
}

/// Who the collaborators are: a list of names, or a numbered population.
enum Members {
    List(Vec<String>),
    Population(Population),
}

impl Members {
    fn roster(&self) -> Roster<'_> {
        match self {
            Members::List(names) => Roster::List(names),
            Members::Population(p) => Roster::Population(p),
        }
    }
}

impl<C> LocalRuntime<C, ()> {
    /// A runtime for the named collaborators, whose private state `factory` builds from a
    /// collaborator's name (once per run, on the collaborator's first step).
    ///
    /// Names must be unique and non-empty; [`Flow::run`] reports a bad list as
    /// [`Error::InvalidCollaborators`].
    pub fn new<I, S>(collaborators: I, factory: impl Fn(&str) -> C + Send + Sync + 'static) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::try_new(collaborators, move |name| Ok::<C, BoxError>(factory(name)))
    }

    /// As [`new`](Self::new), with a factory that may fail (e.g. a site whose data is missing);
    /// its error ends the run as [`Error::PrivateState`], naming the collaborator.
    pub fn try_new<I, S, E>(
        collaborators: I,
        factory: impl Fn(&str) -> std::result::Result<C, E> + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        E: Into<BoxError>,
    {
        Self::with_members(
            Members::List(collaborators.into_iter().map(Into::into).collect()),
            factory,
        )
    }

    /// A runtime for a numbered population (`Population::new(1_000_000)`: `site-000000` to
    /// `site-999999`) that holds no name and no private state until a fan-out names a
    /// collaborator: `factory` builds a collaborator's private state on its first step, so a
    /// collaborator that is never sampled costs nothing. Steps sample a round with
    /// [`Ctx::roster`](flspec::Ctx::roster) and [`Roster::sample`].
    ///
    /// Built states stay for the rest of the run unless
    /// [`private_state_cache`](Self::private_state_cache) bounds them.
    pub fn population(
        population: Population,
        factory: impl Fn(&str) -> C + Send + Sync + 'static,
    ) -> Self {
        Self::try_population(population, move |name| Ok::<C, BoxError>(factory(name)))
    }

    /// As [`population`](Self::population), with a factory that may fail; its error ends the
    /// run as [`Error::PrivateState`], naming the collaborator.
    pub fn try_population<E>(
        population: Population,
        factory: impl Fn(&str) -> std::result::Result<C, E> + Send + Sync + 'static,
    ) -> Self
    where
        E: Into<BoxError>,
    {
        Self::with_members(Members::Population(population), factory)
    }

    fn with_members<E>(
        members: Members,
        factory: impl Fn(&str) -> std::result::Result<C, E> + Send + Sync + 'static,
    ) -> Self
    where
        E: Into<BoxError>,
    {
        LocalRuntime {
            members,
            collaborator_factory: Box::new(move |name| factory(name).map_err(Into::into)),
            aggregator_factory: Box::new(|_| Ok(())),
            workers: 1,
            cache: None,
            checkpoint_dir: None,
            run_id: None,
            observer: None,
            last_run_id: Mutex::new(None),
            checked: OnceLock::new(),
        }
    }
}

impl<C, A> LocalRuntime<C, A> {
    /// Gives the aggregator a private state, built by `factory` at the start of each run.
    pub fn with_aggregator<B>(
        self,
        factory: impl Fn() -> B + Send + Sync + 'static,
    ) -> LocalRuntime<C, B> {
        LocalRuntime {
            members: self.members,
            collaborator_factory: self.collaborator_factory,
            aggregator_factory: Box::new(move |_| Ok(factory())),
            workers: self.workers,
            cache: self.cache,
            checkpoint_dir: self.checkpoint_dir,
            run_id: self.run_id,
            observer: self.observer,
            last_run_id: self.last_run_id,
            checked: self.checked,
        }
    }

    /// Runs the collaborators of each fan-out on `workers` threads (1, the default, runs them
    /// one after the other on the calling thread). Results are identical either way.
    pub fn parallel(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Keeps at most `states` collaborators' private states in a run; putting one more back
    /// evicts the least recently used (dropped at once). An evicted collaborator's state is
    /// rebuilt by the factory when a later fan-out names it again, so anything its steps wrote
    /// into the state is lost: a flow whose private state must outlive a round needs a bound
    /// at least the number of collaborators it reuses, or a factory that restores the state
    /// (e.g. from disk). The bound counts states between fan-outs; during one, each running
    /// collaborator also holds its own. By default there is no bound: a state built stays for
    /// the rest of the run. States never outlive their run.
    pub fn private_state_cache(mut self, states: usize) -> Self {
        self.cache = Some(states);
        self
    }

    /// Turns checkpointing on: every run writes the state after each step, per participant, to
    /// `<dir>/<run id>/` (see [`flspec::checkpoint`]).
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// Names the runs of this runtime (by default each run gets `run-<unix time>-<pid>-<n>`).
    /// With checkpointing on, a second run under the same name fails, since its folder exists:
    /// name each run, or leave the default.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Reports progress to `observer`.
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The collaborators' names. A population makes every name on the first call and keeps
    /// them (tens of bytes each): prefer [`roster`](Self::roster) there.
    pub fn collaborators(&self) -> &[String] {
        self.members.roster().as_names()
    }

    /// The collaborators: a list of names, or a population.
    pub fn roster(&self) -> Roster<'_> {
        self.members.roster()
    }

    /// The id of the last run started, e.g. to [`resume`](Self::resume) it after a failure.
    pub fn last_run_id(&self) -> Option<String> {
        self.last_run_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The checkpoint folder, if checkpointing is on.
    pub fn checkpoint_folder(&self) -> Option<&Path> {
        self.checkpoint_dir.as_deref()
    }

    fn check_collaborators(&self) -> Result<()> {
        self.checked
            .get_or_init(|| match &self.members {
                Members::List(names) => check_names(names),
                Members::Population(p) if p.is_empty() => {
                    Err("a run needs at least one collaborator: the population is empty".into())
                }
                // Names made from distinct numbers are distinct and non-empty.
                Members::Population(_) => Ok(()),
            })
            .clone()
            .map_err(Error::InvalidCollaborators)
    }

    /// The names a checkpointed run records, or why this runtime cannot checkpoint.
    fn checkpoint_names(&self, dir: &Path) -> Result<&[String]> {
        match &self.members {
            Members::List(names) => Ok(names),
            Members::Population(_) => Err(Error::CheckpointFormat {
                path: dir.to_path_buf(),
                reason: "a population runtime does not checkpoint (a run's header would list \
                         every name); turn checkpointing off, or list the names with \
                         `LocalRuntime::new`"
                    .into(),
            }),
        }
    }

    fn new_run_id(&self) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        if let Some(id) = &self.run_id {
            return id.clone();
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("run-{secs}-{}-{n}", std::process::id())
    }

    /// Resumes a checkpointed run from its last completed step: the aggregator's last
    /// recorded step, plus the collaborators of an interrupted fan-out that had already reached
    /// the join. Further checkpoints are appended to the same run folder.
    ///
    /// Private state is built afresh by the factories (it is never checkpointed).
    ///
    /// # Errors
    /// [`Error::Checkpoint`]/[`Error::CheckpointFormat`] if checkpointing is off, or the run is
    /// missing, corrupt, or of another flow or version; then any error of the resumed run.
    pub fn resume<F>(&self, run_id: &str) -> Result<F>
    where
        F: Flow<Collaborator = C, Aggregator = A>,
        C: Send,
    {
        let Some(dir) = &self.checkpoint_dir else {
            return Err(Error::CheckpointFormat {
                path: PathBuf::from(run_id),
                reason:
                    "resume needs checkpointing on: set `checkpoint_dir` to the folder of the run"
                        .into(),
            });
        };
        let collaborators = self.checkpoint_names(dir)?;
        let run = RunCheckpoints::open(dir, run_id)?;
        self.check_collaborators()?;
        if run.header().collaborators != collaborators {
            return Err(Error::CheckpointFormat {
                path: run.folder().to_path_buf(),
                reason: format!(
                    "the run was made with collaborators {} but this runtime has {}; resume it with the same collaborators",
                    short(&run.header().collaborators),
                    short(collaborators)
                ),
            });
        }
        let resume = Resume::<F>::from_checkpoint(&run)?;
        let store = CheckpointStore::reopen::<F>(&run)?;
        self.set_last_run_id(run_id);
        self.execute_from(resume, run_id, Some(&store))
    }

    fn set_last_run_id(&self, id: &str) {
        *self
            .last_run_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id.to_string());
    }

    fn execute_from<F>(
        &self,
        resume: Resume<F>,
        run_id: &str,
        store: Option<&CheckpointStore>,
    ) -> Result<F>
    where
        F: Flow<Collaborator = C, Aggregator = A>,
        C: Send,
    {
        let roster = self.members.roster();
        let setup = RunSetup {
            run_id,
            // A population is reached through `roster`; its names are never listed.
            collaborators: match roster {
                Roster::List(names) => names,
                _ => &[],
            },
            observer: self.observer.as_deref(),
            checkpoints: store,
        };
        let mut private =
            (self.aggregator_factory)("aggregator").map_err(|source| Error::PrivateState {
                name: "aggregator".into(),
                source,
            })?;
        let mut fan_out = fan_out::LocalFanOut::new(
            roster,
            &*self.collaborator_factory,
            self.workers,
            self.cache,
            &setup,
        );
        drive_with(resume, &setup, roster, &mut private, &mut fan_out)
    }
}

/// For the flows whose private states are `C` and `A`: a flow declared with
/// `#[flow(aggregator = A)]` runs on `LocalRuntime::new(..).with_aggregator(|| A::new(..))`, and
/// a runtime without it is a compile error that says so.
impl<F, C, A> Runtime<F> for LocalRuntime<C, A>
where
    F: Flow + PrivateStates<C, A>,
    C: Send,
{
    fn execute(&self, flow: F) -> Result<F> {
        self.check_collaborators()?;
        let run_id = self.new_run_id();
        self.set_last_run_id(&run_id);
        let store = match &self.checkpoint_dir {
            Some(dir) => Some(CheckpointStore::create::<F>(
                dir,
                &run_id,
                self.checkpoint_names(dir)?,
            )?),
            None => None,
        };
        self.execute_from(Resume::start(flow), &run_id, store.as_ref())
    }
}

fn check_names(names: &[String]) -> std::result::Result<(), String> {
    if names.is_empty() {
        return Err("a run needs at least one collaborator".into());
    }
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    for name in names {
        if name.is_empty() {
            return Err("a collaborator name is empty".into());
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("collaborator `{name}` is listed twice"));
        }
    }
    Ok(())
}

fn short(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    if names.len() > shown.len() {
        format!("[{}, ... ({} in all)]", shown.join(", "), names.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}
