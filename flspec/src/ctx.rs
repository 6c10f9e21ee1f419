//! [`Ctx`]: what a step may know about the run it is part of.

use crate::Role;

/// The run-time context a step may ask for with a `ctx: &Ctx` parameter.
///
/// It names the participant running the step and lists the run's collaborators, so that a step
/// can fan out to all of them (`next!(self.train, foreach = ctx.collaborators())`) or to a subset.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    flow: &'static str,
    run_id: &'a str,
    collaborators: &'a [String],
    participant: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    /// A context for the aggregator.
    pub fn aggregator(flow: &'static str, run_id: &'a str, collaborators: &'a [String]) -> Self {
        Ctx {
            flow,
            run_id,
            collaborators,
            participant: None,
        }
    }

    /// A context for a collaborator.
    pub fn collaborator(
        flow: &'static str,
        run_id: &'a str,
        collaborators: &'a [String],
        name: &'a str,
    ) -> Self {
        Ctx {
            flow,
            run_id,
            collaborators,
            participant: Some(name),
        }
    }

    /// All the collaborators of the run, in the order the runtime was given them.
    pub fn collaborators(&self) -> &'a [String] {
        self.collaborators
    }

    /// The participant running the step: the collaborator's name, or `"aggregator"`.
    pub fn name(&self) -> &'a str {
        self.participant.unwrap_or("aggregator")
    }

    /// The role of the participant running the step.
    pub fn role(&self) -> Role {
        match self.participant {
            Some(_) => Role::Collaborator,
            None => Role::Aggregator,
        }
    }

    /// The flow's name.
    pub fn flow(&self) -> &'static str {
        self.flow
    }

    /// The run's identifier.
    pub fn run_id(&self) -> &'a str {
        self.run_id
    }
}
