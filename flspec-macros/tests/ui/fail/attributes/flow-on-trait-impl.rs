use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

pub struct Site;

#[flow]
impl Clone for Site {
    fn clone(&self) -> Self {
        Site
    }
}

fn main() {}
