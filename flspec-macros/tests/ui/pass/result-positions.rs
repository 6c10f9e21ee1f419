//! Every place a `next!` may stand: the tail of the body, of `if`/`else` branches and `match`
//! arms there, inside `Ok(..)` / `Ok::<_, _>(..)`, after `return`, and a `break` out of a `loop`
//! in tail position.

use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Positions {
    round: u32,
    rounds: u32,
    loss: f32,
}

#[flow]
impl Positions {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Result<Next<Self>, String> {
        if self.rounds == 0 {
            return Ok(next!(self.end));
        }
        Ok::<_, String>(next!(self.train, foreach = ctx.collaborators()))
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.loss /= 2.0;
        match self.round {
            0 => next!(self.validate),
            _ => {
                if self.loss > 1.0 {
                    return next!(self.train);
                }
                next!(self.join)
            }
        }
    }

    #[collaborator]
    fn validate(&mut self) -> Next<Self> {
        loop {
            self.loss += 1.0;
            if self.loss > 2.0 {
                break next!(self.join);
            }
        }
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<Next<Self>, String> {
        self.loss = inputs.iter().map(|i| i.loss).sum();
        self.round += 1;
        let more = self.round < self.rounds;
        Ok(if more {
            next!(self.train, foreach = inputs.names())
        } else {
            next!(self.end)
        })
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn main() {
    assert_eq!(Positions::graph().transitions().len(), 8);
}
