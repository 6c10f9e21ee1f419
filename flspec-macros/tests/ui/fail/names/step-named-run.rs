use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.run, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn run(&mut self) -> Next<Self> {
        self.loss = 1.0;
        next!(self.join)
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
