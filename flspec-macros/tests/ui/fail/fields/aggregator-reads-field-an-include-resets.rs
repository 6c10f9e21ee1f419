use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    model: Vec<f32>,
    rounds: u32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        self.rounds = 3;
        next!(self.prepare, include = [model])
    }

    #[aggregator]
    fn prepare(&mut self, ctx: &Ctx) -> Next<Self> {
        let names = ctx.collaborators().iter().take(self.rounds as usize);
        next!(self.train, foreach = names)
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.model.push(1.0);
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
