use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

pub struct Site;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Generic<T> {
    value: T,
}

#[flow]
impl<T> Generic<T> {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {}
