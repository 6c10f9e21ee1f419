use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    model: Vec<f32>,
    learning_rate: f32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.learning_rate = 0.1;
        next!(self.train, foreach = ctx.collaborators(), include = [model])
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        let step = self.learning_rate;
        self.model.push(step);
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
