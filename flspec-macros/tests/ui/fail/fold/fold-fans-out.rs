use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    sum: f32,
    round: u32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        next!(self.add)
    }

    // A folding join runs once per input: a fan-out from it would start once per input.
    #[aggregator]
    fn add(&mut self, ctx: &Ctx, input: Input<Self>) -> Next<Self> {
        self.sum += input.sum;
        if self.round < 3 {
            next!(self.train, foreach = ctx.collaborators())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
