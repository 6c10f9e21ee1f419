//! Three different mistakes in one flow: all three are reported in one compile, each at its span.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

pub struct Site;

pub struct Books {
    rounds: u32,
}

#[flow(collaborator = Site, aggregator = Books)]
impl Demo {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        // 1. aggregator → collaborator without `foreach`.
        next!(self.train)
    }

    #[collaborator]
    // 2. a collaborator step asking for the aggregator's private state.
    fn train(&mut self, books: &mut Books) -> Next<Self> {
        books.rounds += 1;
        // 3. an unknown step.
        next!(self.jion)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.loss = inputs.iter().map(|i| i.loss).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
