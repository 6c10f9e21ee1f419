//! `#[flow(aggregator = Coordinator)]` run on a runtime built without `.with_aggregator(..)`.
//! `Runtime` is implemented here exactly as `flspec_local::LocalRuntime` implements it, for a
//! runtime whose private states match the flow's, so this is the error a `LocalRuntime::new(..)`
//! without `.with_aggregator(|| Coordinator::new())` gives: a compile error at the `run` call
//! that says to call `.with_aggregator(..)`.

use flspec::PrivateStates;
use flspec::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Demo {
    loss: f32,
}

pub struct Coordinator;

#[flow(aggregator = Coordinator)]
impl Demo {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, _c: &mut Coordinator) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        self.loss = 1.0;
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.loss = inputs.iter().map(|i| i.loss).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// The shape of `LocalRuntime<C, A = ()>`.
pub struct Local<C, A = ()>(std::marker::PhantomData<(C, A)>);

impl<F: Flow + PrivateStates<C, A>, C, A> Runtime<F> for Local<C, A> {
    fn execute(&self, flow: F) -> flspec::Result<F> {
        Ok(flow)
    }
}

fn main() {
    let runtime: Local<()> = Local(std::marker::PhantomData);
    let _ = Demo::default().run(&runtime);
}
