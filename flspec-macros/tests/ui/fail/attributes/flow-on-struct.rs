use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

pub struct Site;

#[flow]
pub struct Other {
    loss: f32,
}

fn main() {}
