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
        self.loss = 1.0;
        next!(self.train, foreach = ctx.collaborators(), exclude = [loss])
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.model.push(1.0);
        next!(self.validate)
    }

    #[collaborator]
    fn validate(&mut self) -> Next<Self> {
        if self.loss > 0.5 {
            self.model.clear();
        }
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.model = inputs.iter().flat_map(|i| i.model.clone()).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
