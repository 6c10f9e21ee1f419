//! The flows a director or an envoy may run: registered by type, never shipped as code.
//!
//! ```no_run
//! # use flspec::prelude::*;
//! # #[derive(Clone, Default, Serialize, Deserialize)] struct MyFlow;
//! # struct Site;
//! # #[flow(collaborator = Site)] impl MyFlow {
//! #   #[aggregator] fn start(&mut self, ctx: &Ctx) -> Next<Self> { next!(self.work, foreach = ctx.collaborators()) }
//! #   #[collaborator] fn work(&mut self, _s: &mut Site) -> Next<Self> { next!(self.join) }
//! #   #[aggregator] fn join(&mut self, _i: Inputs<Self>) -> Next<Self> { next!(self.end) }
//! #   #[aggregator] fn end(&mut self) {}
//! # }
//! use flspec_federated::Registry;
//! // On an envoy: how to build the site's private state for a run.
//! let envoy = Registry::new().flow::<MyFlow>(|_name| Site);
//! // On the director: the aggregator's private state (`()` here).
//! let director = Registry::new().aggregator::<MyFlow>(|| ());
//! ```
//!
//! A registration records the flow's name and its graph's
//! [fingerprint](flspec::Graph::fingerprint); a run between participants whose fingerprints
//! differ is refused, naming both.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use flspec::checkpoint::{CheckpointStore, RunCheckpoints};
use flspec::driver::{Resume, RunSetup, dropout_reason, panic_message, run_collaborator};
use flspec::{BoxError, Flow, Role, StepId};

use crate::codec::Limits;
use crate::director::fan_out::{Remote, drive_typed, resume_typed};
use crate::wire::{FlowInfo, TaskOutcome};

type CollaboratorFactory<C> = dyn Fn(&str) -> Result<C, BoxError> + Send + Sync;
type AggregatorFactory<A> = dyn Fn() -> A + Send + Sync;

/// What an envoy runs for one collaborator: the first step, the encoded state, and (for a task
/// of a batch) the collaborator's own entries of the addressed fields.
pub(crate) struct TaskInput<'a> {
    pub(crate) step: &'a str,
    pub(crate) state: &'a [u8],
    pub(crate) parts: Option<&'a [u8]>,
}

/// The collaborator side of a registered flow, with its type erased.
pub(crate) trait EnvoyFlow: Send + Sync {
    fn info(&self) -> &FlowInfo;
    fn build_private(&self, name: &str) -> Result<Box<dyn Any + Send>, String>;
    fn run(
        &self,
        name: &str,
        private: &mut (dyn Any + Send),
        input: TaskInput<'_>,
        setup: &RunSetup<'_>,
        limits: &Limits,
    ) -> TaskOutcome;
}

/// The aggregator side of a registered flow, with its type erased.
pub(crate) trait DirectorFlow: Send + Sync {
    fn info(&self) -> &FlowInfo;
    /// The flow's graph (for the director's dashboard).
    fn graph(&self) -> &'static flspec::Graph;
    fn run(
        &self,
        state: &[u8],
        setup: &RunSetup<'_>,
        remote: &mut Remote<'_>,
        checkpoint_dir: Option<&Path>,
    ) -> flspec::Result<Bytes>;
    /// Creates run `run_id`'s checkpoint folder under `dir` with its initial `state`, so that
    /// the run survives a crash of the director from the moment it is accepted.
    fn begin(
        &self,
        dir: &Path,
        run_id: &str,
        collaborators: &[String],
        state: &[u8],
    ) -> flspec::Result<()>;
    /// Runs run `run_id` from where its checkpoints under `dir` leave off (its start, for a run
    /// only [`begin`](Self::begin)), appending to them.
    fn resume(
        &self,
        dir: &Path,
        setup: &RunSetup<'_>,
        remote: &mut Remote<'_>,
    ) -> flspec::Result<Bytes>;
}

/// The flows a participant can run. See the [crate docs](crate).
#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) collaborators: BTreeMap<&'static str, Arc<dyn EnvoyFlow>>,
    pub(crate) aggregators: BTreeMap<&'static str, Arc<dyn DirectorFlow>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("collaborator_flows", &self.collaborators.keys())
            .field("aggregator_flows", &self.aggregators.keys())
            .finish()
    }
}

fn info<F: Flow>() -> FlowInfo {
    FlowInfo {
        name: F::NAME.to_string(),
        fingerprint: F::graph().fingerprint(),
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the collaborator side of flow `F` (for an envoy): `factory` builds a
    /// collaborator's private state from its name, once per run, on the envoy, where it stays.
    pub fn flow<F: Flow>(
        self,
        factory: impl Fn(&str) -> F::Collaborator + Send + Sync + 'static,
    ) -> Self
    where
        F::Collaborator: Send,
    {
        self.try_flow::<F, BoxError>(move |name| Ok(factory(name)))
    }

    /// As [`flow`](Self::flow), with a factory that may fail (e.g. a site whose data is
    /// missing); the run then fails, naming the collaborator.
    pub fn try_flow<F: Flow, E: Into<BoxError>>(
        mut self,
        factory: impl Fn(&str) -> Result<F::Collaborator, E> + Send + Sync + 'static,
    ) -> Self
    where
        F::Collaborator: Send,
    {
        let entry = CollaboratorEntry::<F> {
            info: info::<F>(),
            factory: Box::new(move |name| factory(name).map_err(Into::into)),
        };
        self.collaborators.insert(F::NAME, Arc::new(entry));
        self
    }

    /// Registers the aggregator side of flow `F` (for the director): `factory` builds the
    /// aggregator's private state at the start of each run; it never leaves the director.
    pub fn aggregator<F: Flow>(
        mut self,
        factory: impl Fn() -> F::Aggregator + Send + Sync + 'static,
    ) -> Self {
        let entry = AggregatorEntry::<F> {
            info: info::<F>(),
            factory: Box::new(factory),
        };
        self.aggregators.insert(F::NAME, Arc::new(entry));
        self
    }

    /// The flows registered for envoys, with their fingerprints.
    pub fn collaborator_flows(&self) -> Vec<FlowInfo> {
        self.collaborators
            .values()
            .map(|e| e.info().clone())
            .collect()
    }

    /// The flows registered for the director, with their fingerprints.
    pub fn aggregator_flows(&self) -> Vec<FlowInfo> {
        self.aggregators
            .values()
            .map(|e| e.info().clone())
            .collect()
    }
}

struct CollaboratorEntry<F: Flow> {
    info: FlowInfo,
    factory: Box<CollaboratorFactory<F::Collaborator>>,
}

impl<F: Flow> EnvoyFlow for CollaboratorEntry<F>
where
    F::Collaborator: Send,
{
    fn info(&self) -> &FlowInfo {
        &self.info
    }

    fn build_private(&self, name: &str) -> Result<Box<dyn Any + Send>, String> {
        match catch_unwind(AssertUnwindSafe(|| (self.factory)(name))) {
            Ok(Ok(p)) => Ok(Box::new(p)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(payload) => Err(format!(
                "the factory panicked: {}",
                panic_message(payload.as_ref())
            )),
        }
    }

    fn run(
        &self,
        name: &str,
        private: &mut (dyn Any + Send),
        input: TaskInput<'_>,
        setup: &RunSetup<'_>,
        limits: &Limits,
    ) -> TaskOutcome {
        let TaskInput { step, state, parts } = input;
        let refused = |message: String| TaskOutcome::Refused { message };
        let step: F::Step = match step.parse() {
            Ok(s) => s,
            Err(e) => return refused(format!("{e}")),
        };
        if F::graph().step(step.index()).map(|s| s.role()) != Some(Role::Collaborator) {
            return refused(format!(
                "step `{step}` of flow `{}` is not a collaborator step",
                F::NAME
            ));
        }
        let mut state: F = match flspec::codec::decode_state(state) {
            Ok(s) => s,
            Err(e) => return refused(e.to_string()),
        };
        if let Some(parts) = parts {
            // A batch's task: the shared state, plus this collaborator's own entries.
            let mut parts: F = match flspec::codec::decode_state(parts) {
                Ok(p) => p,
                Err(e) => return refused(e.to_string()),
            };
            F::give_addressed(&mut state, &mut parts, name);
        }
        let Some(private) = private.downcast_mut::<F::Collaborator>() else {
            return refused("the envoy's private state is of another flow".into());
        };
        match run_collaborator(name, state, step, private, setup) {
            Ok(arrival) => match flspec::codec::encode_state(&arrival.state) {
                Ok(bytes) => {
                    if let Err(e) =
                        limits.check_state(|| format!("the state `{name}` returns"), bytes.len())
                    {
                        return refused(e.to_string());
                    }
                    TaskOutcome::Arrived {
                        join: arrival.join.as_str().to_string(),
                        state: Bytes::from(bytes),
                    }
                }
                Err(e) => refused(e.to_string()),
            },
            Err(e) => {
                if let Some(reason) = dropout_reason(&e) {
                    return TaskOutcome::Dropout { reason };
                }
                match e {
                    flspec::Error::StepFailed { step, source, .. } => TaskOutcome::StepFailed {
                        step: step.to_string(),
                        message: source.to_string(),
                    },
                    flspec::Error::StepPanicked { step, message, .. } => {
                        TaskOutcome::StepPanicked {
                            step: step.to_string(),
                            message,
                        }
                    }
                    other => refused(other.to_string()),
                }
            }
        }
    }
}

struct AggregatorEntry<F: Flow> {
    info: FlowInfo,
    factory: Box<AggregatorFactory<F::Aggregator>>,
}

impl<F: Flow> DirectorFlow for AggregatorEntry<F> {
    fn info(&self) -> &FlowInfo {
        &self.info
    }

    fn graph(&self) -> &'static flspec::Graph {
        F::graph()
    }

    fn run(
        &self,
        state: &[u8],
        setup: &RunSetup<'_>,
        remote: &mut Remote<'_>,
        checkpoint_dir: Option<&Path>,
    ) -> flspec::Result<Bytes> {
        let state: F = flspec::codec::decode_state(state)?;
        let mut private = self.private()?;
        let final_state = drive_typed::<F>(state, setup, &mut private, remote, checkpoint_dir)?;
        Ok(Bytes::from(flspec::codec::encode_state(&final_state)?))
    }

    fn begin(
        &self,
        dir: &Path,
        run_id: &str,
        collaborators: &[String],
        state: &[u8],
    ) -> flspec::Result<()> {
        let state: F = flspec::codec::decode_state(state)?;
        CheckpointStore::create::<F>(dir, run_id, collaborators)?.record_initial(&state)
    }

    fn resume(
        &self,
        dir: &Path,
        setup: &RunSetup<'_>,
        remote: &mut Remote<'_>,
    ) -> flspec::Result<Bytes> {
        let run = RunCheckpoints::open(dir, setup.run_id)?;
        let resume = Resume::<F>::from_checkpoint(&run)?;
        let store = CheckpointStore::reopen::<F>(&run)?;
        let mut private = self.private()?;
        let final_state = resume_typed::<F>(resume, setup, &mut private, remote, &store)?;
        Ok(Bytes::from(flspec::codec::encode_state(&final_state)?))
    }
}

impl<F: Flow> AggregatorEntry<F> {
    /// A run's aggregator private state, from the registered factory.
    fn private(&self) -> flspec::Result<F::Aggregator> {
        catch_unwind(AssertUnwindSafe(|| (self.factory)())).map_err(|payload| {
            flspec::Error::PrivateState {
                name: "aggregator".into(),
                source: format!("the factory panicked: {}", panic_message(payload.as_ref())).into(),
            }
        })
    }
}
