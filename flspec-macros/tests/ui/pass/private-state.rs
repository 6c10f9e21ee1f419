//! Private state for both roles: each step asks for its own role's state only.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Fit {
    weight: f32,
    loss: f32,
}

/// Lives on each collaborator; never serialized.
pub struct Site {
    samples: Vec<f32>,
}

/// Lives on the aggregator; never serialized.
pub struct Books {
    rounds_seen: u32,
}

#[flow(collaborator = Site, aggregator = Books)]
impl Fit {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, books: &mut Books) -> Next<Self> {
        books.rounds_seen = 0;
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site, ctx: &Ctx) -> Next<Self> {
        let _ = ctx.name();
        self.loss = site.samples.iter().map(|x| (x - self.weight).abs()).sum();
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, books: &mut Books, inputs: Inputs<Self>) -> Next<Self> {
        books.rounds_seen += 1;
        self.loss = inputs.iter().map(|i| i.loss).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self, books: &mut Books) {
        let _ = books.rounds_seen;
    }
}

fn main() {
    let _: fn() -> &'static flspec::Graph = <Fit as Flow>::graph;
}
