//! Steps may return `Result<Next<Self>, E>` (and `end` may return `Result<(), E>`).

use flspec::prelude::*;

#[derive(Debug)]
pub struct BadData;

impl std::fmt::Display for BadData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bad data")
    }
}

impl std::error::Error for BadData {}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Checked {
    value: i64,
}

#[flow]
impl Checked {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Result<Next<Self>, BadData> {
        if self.value < 0 {
            return Err(BadData);
        }
        Ok(next!(self.work, foreach = ctx.collaborators()))
    }

    #[collaborator]
    fn work(&mut self) -> Result<Next<Self>, String> {
        self.value = self.value.checked_add(1).ok_or("overflow")?;
        Ok(next!(self.join))
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<Next<Self>, BadData> {
        self.value = inputs.iter().map(|i| i.value).sum();
        Ok(next!(self.end))
    }

    #[aggregator]
    fn end(&mut self) -> Result<(), BadData> {
        Ok(())
    }
}

fn main() {
    assert_eq!(CheckedStep::Work.as_str(), "work");
}
