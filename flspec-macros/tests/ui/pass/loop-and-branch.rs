//! A loop (join → foreach again), collaborator steps that chain, and a run-time branch.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Rounds {
    rounds: u32,
    round: u32,
    loss: f32,
    validate: bool,
}

#[flow]
impl Rounds {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.loss /= 2.0;
        if self.validate {
            next!(self.local_validation)
        } else {
            next!(self.join)
        }
    }

    #[collaborator]
    fn local_validation(&mut self) -> Next<Self> {
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.round += 1;
        if self.round < self.rounds {
            next!(self.train, foreach = inputs.names())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {
    let graph = Rounds::graph();
    assert_eq!(graph.steps().len(), 5);
    assert_eq!(graph.transitions().len(), 6);
    assert_eq!(RoundsStep::LocalValidation.as_str(), "local_validation");
}
