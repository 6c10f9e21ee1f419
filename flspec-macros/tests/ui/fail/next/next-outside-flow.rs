use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

impl Demo {
    fn start(&mut self) {
        let _ = next!(self.train);
    }
}

fn main() {}
