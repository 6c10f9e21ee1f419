//! [`Ctx`]: what a step may know about the run it is part of.

use crate::Role;
use crate::runtime::Roster;

/// The run-time context a step may ask for with a `ctx: &Ctx` parameter.
///
/// It names the participant running the step and lists the run's collaborators, so that a step
/// can fan out to all of them (`next!(self.train, foreach = ctx.collaborators())`) or to a subset.
/// On a large population, [`Ctx::roster`] samples a round without listing every name
/// (`next!(self.train, foreach = ctx.roster().sample(&sampler, round)?)`).
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    flow: &'static str,
    run_id: &'a str,
    roster: Roster<'a>,
    participant: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    /// A context for the aggregator.
    pub fn aggregator(flow: &'static str, run_id: &'a str, collaborators: &'a [String]) -> Self {
        Self::aggregator_in(flow, run_id, Roster::List(collaborators))
    }

    /// A context for the aggregator of a run over `roster`.
    pub fn aggregator_in(flow: &'static str, run_id: &'a str, roster: Roster<'a>) -> Self {
        Ctx {
            flow,
            run_id,
            roster,
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
        Self::collaborator_in(flow, run_id, Roster::List(collaborators), name)
    }

    /// A context for a collaborator of a run over `roster`.
    pub fn collaborator_in(
        flow: &'static str,
        run_id: &'a str,
        roster: Roster<'a>,
        name: &'a str,
    ) -> Self {
        Ctx {
            flow,
            run_id,
            roster,
            participant: Some(name),
        }
    }

    /// All the collaborators of the run, in the order the runtime was given them.
    ///
    /// On a [`Population`](crate::runtime::Population) this makes every name the first time
    /// (tens of bytes each, kept for the run's life): sample with [`Ctx::roster`] instead.
    pub fn collaborators(&self) -> &'a [String] {
        self.roster.as_names()
    }

    /// The collaborators of the run: a list, or a numbered population whose names are made on
    /// demand. [`Roster::sample`] picks a round's sample at a cost that does not grow with the
    /// population.
    pub fn roster(&self) -> Roster<'a> {
        self.roster
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
