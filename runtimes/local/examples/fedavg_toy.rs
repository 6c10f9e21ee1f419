//! Federated averaging on a toy problem, in one process and in about a second, without libtorch:
//!
//! ```sh
//! cargo run -p flspec-local --example fedavg_toy
//! cargo run -p flspec-local --example fedavg_toy -- --rounds 30 --parallel 3
//! ```
//!
//! Three sites each hold private samples of `y = 3 x + 1` (plus a site-specific offset in
//! `x`); the flow fits `w` and `b` by federated averaging: each round the aggregator fans the
//! model out, every site takes a few gradient steps on its own data and sends back only its
//! model and loss (`include`), and the join averages the models weighted by the sites' sample
//! counts. The aggregator keeps a log in its private state, which the caller reads after the run
//! through a shared handle (private state is never part of the returned flow state).
//!
//! It shows: both private states, `include`/`exclude`, a loop back to the collaborators, the
//! site's private state persisting across rounds (its step count), the graph as Mermaid, and
//! an error printed from `main` with its cause.

use std::sync::{Arc, Mutex};

use flspec::prelude::*;
use flspec_local::LocalRuntime;

/// The flow state: what travels between the aggregator and the sites.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct FedAvgToy {
    /// The model: `y = w x + b`.
    pub w: f64,
    /// The model's intercept.
    pub b: f64,
    /// How many rounds to run.
    pub rounds: u32,
    /// Rounds done.
    pub round: u32,
    /// Local gradient steps per round.
    pub local_steps: u32,
    /// Set by each site: its loss after training, and its sample count (the join's weights).
    pub loss: f64,
    /// Set by each site: how many samples it trained on.
    pub samples: usize,
    /// The aggregator's: the weighted mean loss of each round. Never sent to the sites.
    pub history: Vec<f64>,
}

/// A site's private state: built once per run by the factory, kept on the site.
pub struct Site {
    data: Vec<(f64, f64)>,
    /// Gradient steps this site has taken in this run (persists across rounds).
    steps_taken: u32,
}

impl Site {
    /// `count` samples of `y = 3 x + 1` with `x` from `offset` on.
    pub fn new(offset: f64, count: usize) -> Self {
        let data = (0..count)
            .map(|i| {
                let x = offset + i as f64 / count as f64;
                (x, 3.0 * x + 1.0)
            })
            .collect();
        Site {
            data,
            steps_taken: 0,
        }
    }
}

/// The aggregator's private state: a log the caller shares through an `Arc`.
pub struct Coordinator {
    log: Arc<Mutex<Vec<String>>>,
}

impl Coordinator {
    fn note(&self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }
}

#[flow(collaborator = Site, aggregator = Coordinator)]
impl FedAvgToy {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, coordinator: &mut Coordinator) -> Next<Self> {
        coordinator.note(format!(
            "run {}: {} sites, {} rounds",
            ctx.run_id(),
            ctx.collaborators().len(),
            self.rounds
        ));
        next!(
            self.train,
            foreach = ctx.collaborators(),
            exclude = [history]
        )
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Result<Next<Self>, String> {
        if site.data.is_empty() {
            return Err("this site has no samples".into());
        }
        let n = site.data.len() as f64;
        for _ in 0..self.local_steps {
            let (mut gw, mut gb) = (0.0, 0.0);
            for (x, y) in &site.data {
                let err = self.w * x + self.b - y;
                gw += 2.0 * err * x / n;
                gb += 2.0 * err / n;
            }
            self.w -= 0.2 * gw;
            self.b -= 0.2 * gb;
            site.steps_taken += 1;
        }
        self.loss = site
            .data
            .iter()
            .map(|(x, y)| (self.w * x + self.b - y).powi(2))
            .sum::<f64>()
            / n;
        self.samples = site.data.len();
        Ok(next!(self.join, include = [w, b, loss, samples]))
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>, coordinator: &mut Coordinator) -> Next<Self> {
        let total: usize = inputs.iter().map(|i| i.samples).sum();
        let weight = |i: &Self| i.samples as f64 / total as f64;
        self.w = inputs.iter().map(|i| weight(i) * i.w).sum();
        self.b = inputs.iter().map(|i| weight(i) * i.b).sum();
        let loss = inputs.iter().map(|i| weight(i) * i.loss).sum();
        self.history.push(loss);
        self.round += 1;
        coordinator.note(format!(
            "round {}: loss {loss:.5}, w = {:.4}, b = {:.4}",
            self.round, self.w, self.b
        ));
        if self.round < self.rounds {
            next!(self.train, foreach = inputs.names(), exclude = [history])
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self, coordinator: &mut Coordinator) {
        coordinator.note(format!("done after {} rounds", self.round));
    }
}

/// The result of [`run`]: the final flow state and the aggregator's log.
pub struct Outcome {
    /// The flow state `end` left.
    pub flow: FedAvgToy,
    /// The aggregator's private log, read after the run.
    pub log: Vec<String>,
}

/// Runs the flow on `sites` (name, sample count; site `i` draws `x` from `i / 2` on) for
/// `rounds` rounds, with `workers` threads for the sites.
///
/// # Errors
/// Any error of the run, e.g. [`flspec::Error::StepFailed`] if a site has no samples.
pub fn run(sites: &[(&str, usize)], rounds: u32, workers: usize) -> flspec::Result<Outcome> {
    let counts: Vec<(String, usize)> = sites.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    let names: Vec<String> = counts.iter().map(|(n, _)| n.clone()).collect();
    let log = Arc::new(Mutex::new(Vec::new()));
    let shared = log.clone();
    let runtime = LocalRuntime::new(names, move |name: &str| {
        let (i, count) = counts
            .iter()
            .enumerate()
            .find(|(_, (n, _))| n == name)
            .map_or((0, 0), |(i, (_, c))| (i, *c));
        Site::new(i as f64 * 0.5, count)
    })
    .with_aggregator(move || Coordinator {
        log: shared.clone(),
    })
    .parallel(workers);
    let flow = FedAvgToy {
        rounds,
        local_steps: 20,
        ..Default::default()
    }
    .run(&runtime)?;
    let log = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(Outcome { flow, log })
}

/// The sites of the example.
pub const SITES: [(&str, usize); 3] = [("Bengaluru", 40), ("Portland", 80), ("Seattle", 120)];

#[allow(dead_code)] // The tests include this file for `run`, not for `main`.
fn main() -> Result<(), flspec::Error> {
    let mut rounds = 20;
    let mut workers = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--rounds", Some(v)) => rounds = v,
            ("--parallel", Some(v)) => workers = v as usize,
            _ => {
                eprintln!("usage: fedavg_toy [--rounds N] [--parallel WORKERS]");
                std::process::exit(2);
            }
        }
    }
    println!("{}", FedAvgToy::graph().to_mermaid());
    let started = std::time::Instant::now();
    let outcome = run(&SITES, rounds, workers)?;
    for line in &outcome.log {
        println!("{line}");
    }
    println!(
        "fitted y = {:.3} x + {:.3} (truth: y = 3 x + 1) in {:.2?}",
        outcome.flow.w,
        outcome.flow.b,
        started.elapsed()
    );
    // An error printed from `main`: a site without samples fails the run, and `main` returning
    // `Err` prints the message and its cause (not the error's fields).
    if std::env::var_os("FEDAVG_TOY_FAIL").is_some() {
        run(&[("Bengaluru", 40), ("Empty", 0)], 1, 1)?;
    }
    Ok(())
}
