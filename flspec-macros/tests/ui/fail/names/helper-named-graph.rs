use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

#[flow]
impl Demo {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}

    fn graph() -> &'static str {
        "start -> end"
    }
}

fn main() {}
