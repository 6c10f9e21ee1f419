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
