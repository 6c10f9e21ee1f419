use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    inbox: Vec<String>,
    seen: usize,
}

#[flow(addressed = [inbox])]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.read, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn read(&mut self) -> Next<Self> {
        self.seen = self.inbox.len();
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.seen = inputs.iter().map(|i| i.seen).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
