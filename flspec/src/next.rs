//! [`Next`]: the transition a step returns.

use crate::graph::TransitionId;
use crate::{Flow, FlowSteps, StepId};

/// Where a flow goes after a step: the value of `next!(self.step, ...)`.
///
/// Inside a `#[flow]` impl, `next!` builds it; the macro checks the target step, the fan-out and
/// the field filter at compile time, so a `Next` always describes an edge of
/// [`Flow::graph`](crate::Flow::graph). A step must return the `Next` it builds: `#[flow]`
/// rejects a `next!` whose value is dropped (a second call in sequence, `let _ = next!(..)`),
/// and a `Next` dropped anywhere else is an `unused_must_use` warning:
///
/// ```compile_fail
/// #[deny(unused_must_use)]
/// fn drop_it<F: flspec::FlowSteps>(make: impl Fn() -> flspec::Next<F>) {
///     make();
/// }
/// ```
#[must_use = "a `Next` says where the flow goes; return it from the step"]
pub struct Next<F: FlowSteps> {
    step: F::Step,
    foreach: Option<Vec<String>>,
    transition: TransitionId,
}

impl<F: Flow> Next<F> {
    /// The step the flow continues with.
    pub fn step(&self) -> F::Step {
        self.step
    }

    /// For a fan-out, the collaborators it sends the flow to, in order.
    pub fn foreach(&self) -> Option<&[String]> {
        self.foreach.as_deref()
    }

    /// Takes the collaborator list out of a fan-out.
    pub fn take_foreach(&mut self) -> Option<Vec<String>> {
        self.foreach.take()
    }

    /// The edge of the flow's graph this transition follows.
    pub fn transition(&self) -> TransitionId {
        self.transition
    }

    /// Rebuilds a transition from its parts (for runtimes that receive it over a wire or read it
    /// from a checkpoint). Returns `None` if the graph has no such edge, or if the edge's target
    /// or fan-out does not match.
    pub fn from_parts(transition: TransitionId, foreach: Option<Vec<String>>) -> Option<Self> {
        let edge = F::graph().transition(transition)?;
        let step = F::Step::from_index(edge.to())?;
        if edge.is_foreach() != foreach.is_some() {
            return None;
        }
        Some(Next {
            step,
            foreach,
            transition,
        })
    }
}

impl<F: FlowSteps> Next<F> {
    #[doc(hidden)]
    pub fn __new(step: F::Step, foreach: Option<Vec<String>>, transition: u16) -> Self {
        Next {
            step,
            foreach,
            transition: TransitionId::new(transition),
        }
    }
}

impl<F: FlowSteps> std::fmt::Debug for Next<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("step", &self.step.as_str())
            .field("foreach", &self.foreach.as_ref().map(Vec::len))
            .field("transition", &self.transition)
            .finish()
    }
}

impl<F: FlowSteps> Clone for Next<F> {
    fn clone(&self) -> Self {
        Next {
            step: self.step,
            foreach: self.foreach.clone(),
            transition: self.transition,
        }
    }
}
