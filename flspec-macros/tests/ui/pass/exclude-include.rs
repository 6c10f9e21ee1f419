//! `exclude` and `include` on fan-outs, returns and same-participant transitions.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Filtered {
    model: Vec<f32>,
    loss: f32,
    history: Vec<f32>,
    notes: String,
}

#[flow]
impl Filtered {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        next!(self.prepare, exclude = [notes])
    }

    #[aggregator]
    fn prepare(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators(), exclude = [history, notes])
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.loss = self.model.iter().sum();
        next!(self.join, include = [loss, model,])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.history.extend(inputs.iter().map(|i| i.loss));
        next!(self.end, include = [history])
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {
    let fields: Vec<_> = Filtered::graph()
        .transitions()
        .iter()
        .map(|t| t.fields())
        .collect();
    assert_eq!(fields.len(), 4);
}
