use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    sum: f32,
    secret: Vec<u8>,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.sum = 1.0;
        next!(self.add, exclude = [secret])
    }

    // The transition into the join does not carry `secret`: the input's is always empty.
    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        self.sum += input.sum + input.secret.len() as f32;
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
