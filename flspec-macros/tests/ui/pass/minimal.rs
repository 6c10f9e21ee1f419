//! The smallest flow: `start` fans out, one collaborator step, a join, `end`.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Count {
    visits: u32,
    total: u32,
}

#[flow]
impl Count {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.visit, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn visit(&mut self) -> Next<Self> {
        self.visits += 1;
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.total = inputs.iter().map(|i| i.state().visits).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {
    assert_eq!(Count::NAME, "Count");
    assert_eq!(CountStep::Visit.as_str(), "visit");
    assert_eq!(Count::graph().steps().len(), 4);
}
