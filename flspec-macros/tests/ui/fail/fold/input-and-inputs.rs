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
        next!(self.add)
    }

    #[aggregator]
    fn add(&mut self, inputs: Inputs<Self>, input: Input<Self>) -> Next<Self> {
        self.sum = inputs.iter().map(|i| i.sum).sum::<f32>() + input.sum;
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
