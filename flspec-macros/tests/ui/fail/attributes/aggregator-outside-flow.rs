use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

pub struct Site;

impl Demo {
    #[aggregator]
    fn start(&mut self) {
        self.loss = 0.0;
    }
}

fn main() {}
