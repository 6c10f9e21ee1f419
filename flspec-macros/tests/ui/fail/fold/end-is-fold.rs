use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    sum: f32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        next!(self.end)
    }

    // `end` runs once; a folding join runs once per input.
    #[aggregator]
    fn end(&mut self, input: Input<Self>) {
        self.sum += input.sum;
    }
}

fn main() {}
