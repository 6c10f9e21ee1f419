use flspec::prelude::*;

pub struct Site {
    cache: std::rc::Rc<Vec<f32>>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

#[flow(collaborator = Site)]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Next<Self> {
        self.loss = site.cache.iter().sum();
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.loss = inputs.iter().map(|i| i.loss).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
