//! A folding join: `add` runs once per collaborator, in fan-out order, then `average` once.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    round: u32,
    weight: f32,
    sum: f32,
    count: u32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.weight += 1.0;
        next!(self.add, include = [weight])
    }

    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        self.sum += input.weight;
        self.count += 1;
        next!(self.average)
    }

    #[aggregator]
    fn average(&mut self, ctx: &Ctx) -> Next<Self> {
        self.weight = self.sum / self.count.max(1) as f32;
        self.sum = 0.0;
        self.count = 0;
        self.round += 1;
        if self.round < 3 {
            next!(self.train, foreach = ctx.collaborators())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {
    assert!(Demo::graph().steps().iter().any(|s| s.name() == "add" && s.is_fold()));
}
