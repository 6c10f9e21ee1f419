use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

pub struct Site;

#[collaborator]
fn train(demo: &mut Demo) {
    demo.loss = 0.0;
}

fn main() {}
