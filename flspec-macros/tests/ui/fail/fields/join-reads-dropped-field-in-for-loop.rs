use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    model: Vec<f32>,
    loss: f32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.model.push(1.0);
        self.loss = 0.5;
        next!(self.join, include = [model])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        for input in &inputs {
            self.loss += input.loss;
        }
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
