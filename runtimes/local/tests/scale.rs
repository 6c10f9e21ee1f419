//! Many simulated collaborators: a run with 10,000 collaborators and a small state completes
//! quickly, sequentially and in parallel, with every input in fan-out order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flspec::Event;
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Tally {
    rounds: u32,
    round: u32,
    weights: [u32; 4],
    contribution: u64,
    totals: Vec<u64>,
    order_ok: bool,
}

struct Site {
    id: u64,
}

#[flow(collaborator = Site)]
impl Tally {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.weights = [1, 2, 3, 4];
        next!(
            self.contribute,
            foreach = ctx.collaborators(),
            exclude = [totals]
        )
    }

    #[collaborator]
    fn contribute(&mut self, site: &mut Site) -> Next<Self> {
        self.contribution = site.id + u64::from(self.round);
        next!(self.join, include = [contribution])
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Next<Self> {
        self.order_ok = inputs.names().zip(ctx.collaborators()).all(|(a, b)| a == b)
            && inputs.len() == ctx.collaborators().len();
        assert!(self.order_ok);
        self.totals
            .push(inputs.iter().map(|i| i.contribution).sum());
        self.round += 1;
        if self.round < self.rounds {
            next!(
                self.contribute,
                foreach = inputs.names(),
                exclude = [totals]
            )
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

const N: usize = 10_000;

fn run(workers: usize) -> (Tally, usize, Duration) {
    let names: Vec<String> = (0..N).map(|i| format!("site-{i:05}")).collect();
    let steps = Arc::new(AtomicUsize::new(0));
    let counter = steps.clone();
    let runtime = LocalRuntime::new(names, |name: &str| Site {
        id: name[5..].parse().expect("a numbered site"),
    })
    .parallel(workers)
    .observer(move |e: &Event<'_>| {
        if matches!(e, Event::StepStarted { .. }) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let began = Instant::now();
    let flow = Tally {
        rounds: 2,
        ..Default::default()
    }
    .run(&runtime)
    .expect("the run");
    (flow, steps.load(Ordering::Relaxed), began.elapsed())
}

#[test]
fn ten_thousand_collaborators() {
    let sum: u64 = (0..N as u64).sum();
    let (sequential, steps, took) = run(1);
    assert_eq!(sequential.totals, vec![sum, sum + N as u64]);
    assert!(sequential.order_ok);
    // start + join x2 + end, and one step per collaborator and round.
    assert_eq!(steps, 4 + 2 * N);
    let (parallel, steps, took_parallel) = run(2);
    assert_eq!(parallel, sequential);
    assert_eq!(steps, 4 + 2 * N);
    eprintln!(
        "10,000 collaborators x 2 rounds: sequential {took:?}, parallel(2) {took_parallel:?}"
    );
    // Generous bound (debug build, shared machine): the point is "seconds", not minutes.
    assert!(took < Duration::from_secs(30) && took_parallel < Duration::from_secs(30));
}
