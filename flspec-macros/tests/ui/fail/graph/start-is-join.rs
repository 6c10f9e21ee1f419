use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.loss = inputs.iter().map(|i| i.loss).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
