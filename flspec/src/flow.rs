//! The [`Flow`] trait, implemented by `#[flow]`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::graph::TransitionId;
use crate::{Ctx, Graph, Inputs, Next, Result, Runtime, StepError, StepId};

/// What a step returned: the next transition, or `None` after `end`.
pub type StepOutcome<F> = std::result::Result<Option<Next<F>>, StepError>;

/// The step enum of a flow, implemented by `#[flow]` beside [`Flow`].
///
/// It is apart from [`Flow`] so that [`Next`] needs only the steps: a flow state that misses one
/// of the traits [`Flow`] requires then gets one compile error, at the state, rather than one
/// at every step that returns `Next<Self>`.
pub trait FlowSteps {
    /// The generated step enum.
    type Step: StepId;
}

/// A federated-learning flow: a state struct whose steps `#[flow]` compiled into a typed state
/// machine.
///
/// Users never implement this trait by hand: `#[flow]` does, from the `impl` block of the state
/// struct. Runtimes drive a flow through the methods below; users call [`Flow::run`].
///
/// The state must be `Clone + Default + Serialize + DeserializeOwned`: a fan-out gives each
/// collaborator its own copy, fields a transition does not carry arrive with their value in
/// `Default::default()`, and checkpoints and the federated runtime store and send the state
/// with serde. Private state ([`Flow::Collaborator`], [`Flow::Aggregator`]) is none of these:
/// it never leaves its participant.
pub trait Flow:
    FlowSteps + Clone + Default + Serialize + DeserializeOwned + Send + 'static
{
    /// The private state of each collaborator (`#[flow(collaborator = T)]`, `()` if none). It is
    /// `Send`: runtimes build it on, and move it between, worker threads.
    type Collaborator: Send + 'static;
    /// The private state of the aggregator (`#[flow(aggregator = T)]`, `()` if none).
    type Aggregator: 'static;
    /// The flow's name (the state struct's name).
    const NAME: &'static str;
    /// Whether the flow goes on without collaborators that drop out of a fan-out
    /// (`#[flow(tolerate_dropouts)]`): its joins then receive the inputs of the survivors only.
    /// A collaborator drops out when a step returns [`Dropout`](crate::Dropout) or when a runtime
    /// loses it (an envoy that misses its deadline). Without it, a dropout ends the run.
    const TOLERATES_DROPOUTS: bool = false;
    /// The aggregator steps a resumed run may start over after (`#[flow(resume_from = [..])]`,
    /// checked at compile time); empty for any aggregator step. A run resumed from a
    /// checkpoint restarts after the last recorded step among these, and runs again everything
    /// that came after it, recovering no collaborator's arrival: a flow whose aggregator keeps
    /// per-round secrets in private state (a secure-aggregation round, lost with the process)
    /// lists the steps between its rounds, so a resumed round starts over with fresh keys.
    /// Without the list a run resumes after the aggregator's last recorded step, with the
    /// arrivals of an interrupted fan-out recovered.
    const RESUME_FROM: &'static [&'static str] = &[];

    /// The step graph, built at compile time.
    fn graph() -> &'static Graph;

    /// Runs the flow on a runtime, from `start` to `end`, and returns the final state.
    ///
    /// # Errors
    /// Whatever the runtime reports: a step that failed or panicked (named with the
    /// participant), a bad fan-out list, a checkpoint that could not be written, a lost
    /// participant.
    fn run<R: Runtime<Self> + ?Sized>(self, runtime: &R) -> Result<Self> {
        runtime.execute(self)
    }

    /// Runs one aggregator step. Runtimes call this; `inputs` must be `Some` exactly for joins.
    ///
    /// # Errors
    /// The step's own error, or a [`StepError`] if the runtime broke the step protocol.
    fn run_aggregator_step(
        &mut self,
        step: Self::Step,
        ctx: &Ctx<'_>,
        private: &mut Self::Aggregator,
        inputs: Option<Inputs<Self>>,
    ) -> StepOutcome<Self>;

    /// Runs one collaborator step. Runtimes call this.
    ///
    /// # Errors
    /// The step's own error, or a [`StepError`] if the step is not a collaborator step.
    fn run_collaborator_step(
        &mut self,
        step: Self::Step,
        ctx: &Ctx<'_>,
        private: &mut Self::Collaborator,
    ) -> StepOutcome<Self>;

    /// Applies a transition's `exclude`/`include` to this state, in place: fields the transition
    /// does not carry are replaced by their value in `Self::default()`. Does nothing for a
    /// transition without a filter.
    fn filter_in_place(&mut self, transition: TransitionId);

    /// Moves the addressed fields (`#[flow(addressed = [..])]`) out of `self` into an otherwise
    /// default state, leaving them empty in `self`. Returns `None` for a flow without addressed
    /// fields.
    fn take_addressed(&mut self) -> Option<Self>;

    /// Gives `copy` the part of each addressed field of `parts` that is addressed to
    /// `collaborator`, moving it out of `parts`.
    fn give_addressed(copy: &mut Self, parts: &mut Self, collaborator: &str);

    /// A copy of this state holding only what a transition carries (fields it does not carry
    /// have their value in `Self::default()`); `self` is left unchanged. Excluded fields are
    /// never cloned.
    fn filtered_clone(&mut self, transition: TransitionId) -> Self;
}

/// A flow whose collaborators' private state is `C` and whose aggregator's is `A`; `#[flow]`
/// implements it with the types of `#[flow(collaborator = C, aggregator = A)]` (`()` for one not
/// given).
///
/// Runtimes whose type names the private states implement [`Runtime`] for the flows that have
/// those states (`impl<F: PrivateStates<C, A>, C, A> Runtime<F> for MyRuntime<C, A>`), so that a
/// mismatch (a flow with an aggregator state run on a runtime built without one) is a compile
/// error that says what to do, rather than a type mismatch.
#[diagnostic::on_unimplemented(
    message = "the flow `{Self}` cannot run on this runtime: the runtime's private states are `{C}` for each collaborator and `{A}` for the aggregator",
    label = "this runtime's private states are not the flow's",
    note = "build the runtime with the flow's private states: a flow with `#[flow(aggregator = A)]` needs `.with_aggregator(|| A::new(..))`, one with `#[flow(collaborator = C)]` a factory that returns a `C` for each collaborator"
)]
pub trait PrivateStates<C, A>: Flow<Collaborator = C, Aggregator = A> {}

/// Compile-time checks that `#[flow]` puts on its `Flow` impl, each on the user's tokens: as the
/// impl's `where` clauses, a missing derive is one error at the state struct (no cascade through
/// the impl's methods) that names the derive to add.
#[doc(hidden)]
pub mod checks {
    /// The flow state is `Clone`.
    #[diagnostic::on_unimplemented(
        message = "the flow state `{Self}` does not implement `Clone`",
        label = "add `#[derive(Clone)]` to `{Self}`",
        note = "a fan-out gives each collaborator its own copy of the flow state"
    )]
    pub trait StateClone: Clone {}
    impl<T: Clone> StateClone for T {}

    /// The flow state is `Default`.
    #[diagnostic::on_unimplemented(
        message = "the flow state `{Self}` does not implement `Default`",
        label = "add `#[derive(Default)]` to `{Self}`",
        note = "a field a transition does not carry arrives with its `Default` value"
    )]
    pub trait StateDefault: Default {}
    impl<T: Default> StateDefault for T {}

    /// The flow state is `Serialize`.
    #[diagnostic::on_unimplemented(
        message = "the flow state `{Self}` does not implement `Serialize`",
        label = "add `#[derive(Serialize)]` to `{Self}`",
        note = "checkpoints and the federated runtime store and send the flow state with serde"
    )]
    pub trait StateSerialize: serde::Serialize {}
    impl<T: serde::Serialize> StateSerialize for T {}

    /// The flow state is `Deserialize`.
    #[diagnostic::on_unimplemented(
        message = "the flow state `{Self}` does not implement `Deserialize`",
        label = "add `#[derive(Deserialize)]` to `{Self}`",
        note = "checkpoints and the federated runtime read the flow state back with serde"
    )]
    pub trait StateDeserialize: for<'de> serde::Deserialize<'de> {}
    impl<T: for<'de> serde::Deserialize<'de>> StateDeserialize for T {}

    /// The flow state is `Send`.
    #[diagnostic::on_unimplemented(
        message = "the flow state `{Self}` does not implement `Send`",
        label = "every field of `{Self}` must be `Send`",
        note = "runtimes move the flow state between threads"
    )]
    pub trait StateSend: Send {}
    impl<T: Send> StateSend for T {}

    /// The collaborators' private state is `Send`.
    #[diagnostic::on_unimplemented(
        message = "the collaborators' private state `{Self}` is not `Send`",
        label = "runtimes build and keep each collaborator's private state on worker threads",
        note = "hold thread-bound values (`Rc`, `RefCell` shared through `Rc`) as `Arc`/`Mutex`, or build them inside a step"
    )]
    pub trait CollaboratorSend: Send {}
    impl<T: Send> CollaboratorSend for T {}
}
