use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
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
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
