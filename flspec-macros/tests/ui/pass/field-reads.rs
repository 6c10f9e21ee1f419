//! Field reads the field check must accept: a field carried by at least one transition into
//! the step, a field the step sets before reading it, a field set by an earlier collaborator
//! step, and reads the check does not follow (helpers, macros, other iterators).

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Reads {
    model: Vec<f32>,
    loss: f32,
    seen: Vec<f32>,
    rounds: u32,
    validate: bool,
}

#[flow]
impl Reads {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.rounds = 2;
        next!(self.train, foreach = ctx.collaborators(), include = [model, validate])
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        // Dropped by the fan-out, but set here before being read.
        self.loss = 0.5;
        self.seen.push(self.loss);
        let last = self.seen.len();
        self.model.truncate(last);
        if self.validate {
            next!(self.validate_locally)
        } else {
            // `loss` is dropped here but carried by `validate_locally -> join`.
            next!(self.join, include = [model])
        }
    }

    #[collaborator]
    fn validate_locally(&mut self) -> Next<Self> {
        // Set by `train`, carried by `train -> validate_locally`.
        self.loss *= 2.0;
        let seen = self.seen.len() as f32;
        self.model.push(seen);
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.loss = inputs.iter().map(|i| i.loss).sum();
        for input in &inputs {
            self.model.extend(input.model.iter().copied());
        }
        // Not followed by the check: inside a macro, and through another iterator.
        debug_assert!(inputs.iter().all(|i| i.rounds == 0));
        let rounds: Vec<u32> = self.model.iter().map(|i| *i as u32).collect();
        self.rounds = self.rounds.saturating_sub(rounds.len() as u32);
        next!(self.wrap_up, include = [model])
    }

    #[aggregator]
    fn wrap_up(&mut self) -> Next<Self> {
        // `loss` was reset by the include: set it again before reading it.
        self.loss = self.model.iter().sum();
        let total = self.loss;
        self.seen = vec![total];
        // A helper may read anything: not followed.
        self.report();
        next!(self.end)
    }

    fn report(&self) {
        let _ = self.rounds;
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {
    assert_eq!(Reads::graph().transitions().len(), 6);
}
