//! Helper methods without a role attribute sit beside the steps and are called from them.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Helped {
    values: Vec<u32>,
    mean: u32,
}

#[flow]
impl Helped {
    /// An associated constructor: not a step.
    pub fn with_values(values: Vec<u32>) -> Self {
        Helped { values, mean: 0 }
    }

    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.work, foreach = ctx.collaborators())
    }

    /// A helper taking `&self`: not a step.
    fn sum(&self) -> u32 {
        self.values.iter().sum()
    }

    #[collaborator]
    fn work(&mut self) -> Next<Self> {
        self.mean = self.sum() / self.len().max(1);
        next!(self.join)
    }

    fn len(&self) -> u32 {
        u32::try_from(self.values.len()).unwrap_or(u32::MAX)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.mean = inputs.iter().map(|i| i.mean).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}

    /// An associated const beside the steps.
    pub const LABEL: &'static str = "helped";
}

fn main() {
    let h = Helped::with_values(vec![1, 2, 3]);
    assert_eq!(h.sum(), 6);
    assert_eq!(Helped::LABEL, "helped");
}
