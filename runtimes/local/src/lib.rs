#![doc = include_str!("../README.md")]
//!
//! ## API
//!
//! [`LocalRuntime`] and its builder calls ([`LocalRuntime::new`], [`LocalRuntime::try_new`],
//! [`LocalRuntime::with_aggregator`], [`LocalRuntime::parallel`],
//! [`LocalRuntime::checkpoint_dir`], [`LocalRuntime::run_id`], [`LocalRuntime::observer`]);
//! [`LocalRuntime::resume`] and [`flspec::checkpoint`] for checkpoints; [`flspec::Error`] for
//! what a run returns on failure.
#![warn(missing_docs)]

mod fan_out;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use flspec::checkpoint::{CheckpointStore, RunCheckpoints};
use flspec::driver::{Resume, RunSetup, drive};
use flspec::{BoxError, Error, Flow, Observer, PrivateStates, Result, Runtime};

type Factory<T> = dyn Fn(&str) -> std::result::Result<T, BoxError> + Send + Sync;

/// Runs flows in one process. See the [crate docs](crate).
///
/// `C` is the collaborators' private state, `A` the aggregator's.
pub struct LocalRuntime<C, A = ()> {
    collaborators: Vec<String>,
    collaborator_factory: Box<Factory<C>>,
    aggregator_factory: Box<Factory<A>>,
    workers: usize,
    checkpoint_dir: Option<PathBuf>,
    run_id: Option<String>,
    observer: Option<Arc<dyn Observer>>,
    last_run_id: Mutex<Option<String>>,
    /// The verdict of [`LocalRuntime::check_collaborators`], computed once.
    checked: OnceLock<std::result::Result<(), String>>,
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
        LocalRuntime {
            collaborators: collaborators.into_iter().map(Into::into).collect(),
            collaborator_factory: Box::new(move |name| factory(name).map_err(Into::into)),
            aggregator_factory: Box::new(|_| Ok(())),
            workers: 1,
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
            collaborators: self.collaborators,
            collaborator_factory: self.collaborator_factory,
            aggregator_factory: Box::new(move |_| Ok(factory())),
            workers: self.workers,
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

    /// The collaborators' names.
    pub fn collaborators(&self) -> &[String] {
        &self.collaborators
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
            .get_or_init(|| check_names(&self.collaborators))
            .clone()
            .map_err(Error::InvalidCollaborators)
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
        let run = RunCheckpoints::open(dir, run_id)?;
        self.check_collaborators()?;
        if run.header().collaborators != self.collaborators {
            return Err(Error::CheckpointFormat {
                path: run.folder().to_path_buf(),
                reason: format!(
                    "the run was made with collaborators {} but this runtime has {}; resume it with the same collaborators",
                    short(&run.header().collaborators),
                    short(&self.collaborators)
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
        let setup = RunSetup {
            run_id,
            collaborators: &self.collaborators,
            observer: self.observer.as_deref(),
            checkpoints: store,
        };
        let mut private =
            (self.aggregator_factory)("aggregator").map_err(|source| Error::PrivateState {
                name: "aggregator".into(),
                source,
            })?;
        let mut fan_out = fan_out::LocalFanOut::new(
            &self.collaborators,
            &*self.collaborator_factory,
            self.workers,
            &setup,
        );
        drive(resume, &setup, &mut private, &mut fan_out)
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
                &self.collaborators,
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
