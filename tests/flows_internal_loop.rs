//! Port of OpenFL's `testflow_internalloop.py`: a loop inside the flow (`join -> internal_loop
//! -> start` until a fixed number of rounds), checked against the exact order of steps.

mod common;

use common::{CITIES, StepLog};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct TestFlowInternalLoop {
    training_rounds: u32,
    train_count: u32,
    end_count: u32,
    model: Vec<f64>,
    agg_mean_value: f64,
    local_mean_value: f64,
    agg_mean: f64,
    /// The aggregated mean of every round.
    history: Vec<f64>,
}

/// Private to each collaborator: its index, standing in for OpenFL's `self.input`.
struct Site {
    index: usize,
}

#[flow(collaborator = Site)]
impl TestFlowInternalLoop {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.model = vec![0.0; 10 * 10 * 10];
        next!(self.agg_model_mean, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn agg_model_mean(&mut self) -> Next<Self> {
        self.agg_mean_value = mean(&self.model);
        assert_eq!(
            self.agg_mean_value, 0.0,
            "each round starts from the zero model"
        );
        next!(self.collab_model_update)
    }

    #[collaborator]
    fn collab_model_update(&mut self, site: &mut Site) -> Next<Self> {
        // Deterministic stand-in for OpenFL's random model.
        let round = f64::from(self.train_count);
        self.model = (0..self.model.len())
            .map(|i| (site.index + 1) as f64 + round + (i % 3) as f64)
            .collect();
        next!(self.local_model_mean)
    }

    #[collaborator]
    fn local_model_mean(&mut self) -> Next<Self> {
        self.local_mean_value = mean(&self.model);
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.agg_mean =
            inputs.iter().map(|i| i.local_mean_value).sum::<f64>() / inputs.len() as f64;
        self.history.push(self.agg_mean);
        next!(self.internal_loop)
    }

    #[aggregator]
    fn internal_loop(&mut self) -> Next<Self> {
        self.train_count += 1;
        if self.train_count == self.training_rounds {
            next!(self.end)
        } else {
            next!(self.start)
        }
    }

    #[aggregator]
    fn end(&mut self) {
        self.end_count += 1;
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn runtime() -> LocalRuntime<Site> {
    LocalRuntime::new(CITIES, |name| Site {
        index: CITIES.iter().position(|c| *c == name).unwrap_or(usize::MAX),
    })
}

/// The exact order of steps of a sequential run.
fn expected_order(rounds: u32) -> Vec<(String, String)> {
    let mut order = Vec::new();
    let agg = |s: &str| (s.to_string(), "aggregator".to_string());
    for _ in 0..rounds {
        order.push(agg("start"));
        for city in CITIES {
            for step in ["agg_model_mean", "collab_model_update", "local_model_mean"] {
                order.push((step.to_string(), city.to_string()));
            }
        }
        order.push(agg("join"));
        order.push(agg("internal_loop"));
    }
    order.push(agg("end"));
    order
}

#[test]
fn internal_loop_runs_the_exact_step_order() -> flspec::Result<()> {
    let log = StepLog::default();
    let runtime = runtime().observer(log.observer());
    let flow = TestFlowInternalLoop {
        training_rounds: 5,
        ..Default::default()
    }
    .run(&runtime)?;
    // 1. The given training rounds were completed; 4. `end` ran once.
    assert_eq!(flow.train_count, 5);
    assert_eq!(flow.end_count, 1);
    // 2. and 3. Every step ran, in order: aggregator steps once per round, collaborator steps
    // once per round and collaborator.
    assert_eq!(log.entries(), expected_order(5));
    for step in ["start", "join", "internal_loop"] {
        assert_eq!(log.count(step), 5, "{step}");
    }
    for step in ["agg_model_mean", "collab_model_update", "local_model_mean"] {
        assert_eq!(log.count(step), 5 * CITIES.len(), "{step}");
    }
    // Mean over collaborators and cells of (index + 1) + round + (cell % 3):
    // 4.5 + round + 0.999 (1000 cells: 334 zeros, 333 ones, 333 twos).
    let expected: Vec<f64> = (0..5).map(|r| 4.5 + f64::from(r) + 0.999).collect();
    for (got, want) in flow.history.iter().zip(&expected) {
        assert!(
            (got - want).abs() < 1e-9,
            "{:?} != {expected:?}",
            flow.history
        );
    }
    assert_eq!(flow.history.len(), 5);
    Ok(())
}

#[test]
fn internal_loop_in_parallel_keeps_each_participants_order() -> flspec::Result<()> {
    let log = StepLog::default();
    let runtime = runtime().parallel(4).observer(log.observer());
    let flow = TestFlowInternalLoop {
        training_rounds: 5,
        ..Default::default()
    }
    .run(&runtime)?;
    let sequential = TestFlowInternalLoop {
        training_rounds: 5,
        ..Default::default()
    }
    .run(&self::runtime())?;
    assert_eq!(flow, sequential);
    let expected = expected_order(5);
    // Each participant runs its own steps in the sequential order...
    for who in CITIES.iter().copied().chain(["aggregator"]) {
        let want: Vec<String> = expected
            .iter()
            .filter(|(_, p)| p == who)
            .map(|(s, _)| s.clone())
            .collect();
        assert_eq!(log.of(who), want, "{who}");
    }
    // ...and the aggregator's steps bracket each round's collaborator steps.
    let entries = log.entries();
    let mut round_start = 0;
    for (i, (step, who)) in entries.iter().enumerate() {
        if who == "aggregator" && step == "join" {
            let collab = entries[round_start..i]
                .iter()
                .filter(|(_, p)| p != "aggregator")
                .count();
            assert_eq!(collab, 3 * CITIES.len());
            assert_eq!(entries[round_start].0, "start");
        }
        if who == "aggregator" && step == "internal_loop" {
            round_start = i + 1;
        }
    }
    Ok(())
}

#[test]
fn one_round() -> flspec::Result<()> {
    let log = StepLog::default();
    let flow = TestFlowInternalLoop {
        training_rounds: 1,
        ..Default::default()
    }
    .run(&runtime().observer(log.observer()))?;
    assert_eq!(flow.train_count, 1);
    assert_eq!(log.entries(), expected_order(1));
    Ok(())
}

/// Loops on one participant: a collaborator step that repeats itself (local epochs) and an
/// aggregator step that repeats itself before fanning out.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct LocalEpochs {
    warmups: u32,
    epochs: u32,
    epoch: u32,
    trace: Vec<String>,
    done: Vec<(String, u32, Vec<String>)>,
}

#[flow]
impl LocalEpochs {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        next!(self.warmup)
    }

    #[aggregator]
    fn warmup(&mut self, ctx: &Ctx) -> Next<Self> {
        self.trace.push(format!("warmup{}", self.warmups));
        if self.warmups > 0 {
            self.warmups -= 1;
            next!(self.warmup)
        } else {
            next!(
                self.epoch_step,
                foreach = ctx.collaborators(),
                exclude = [done]
            )
        }
    }

    #[collaborator]
    fn epoch_step(&mut self, ctx: &Ctx) -> Next<Self> {
        self.epoch += 1;
        self.trace.push(format!("{}:{}", ctx.name(), self.epoch));
        if self.epoch < self.epochs {
            next!(self.epoch_step)
        } else {
            next!(self.join)
        }
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.done = inputs
            .iter()
            .map(|i| (i.name().to_string(), i.epoch, i.trace.clone()))
            .collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn loops_on_one_participant() -> flspec::Result<()> {
    for workers in [1, 2] {
        let log = StepLog::default();
        let runtime = LocalRuntime::new(["a", "b", "c"], |_| ())
            .parallel(workers)
            .observer(log.observer());
        let flow = LocalEpochs {
            warmups: 2,
            epochs: 3,
            ..Default::default()
        }
        .run(&runtime)?;
        assert_eq!(flow.trace, ["warmup2", "warmup1", "warmup0"]);
        assert_eq!(flow.epoch, 0, "the aggregator's own state did not train");
        for (name, epoch, trace) in &flow.done {
            assert_eq!(*epoch, 3);
            let mut want = vec!["warmup2", "warmup1", "warmup0"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            want.extend((1..=3).map(|e| format!("{name}:{e}")));
            assert_eq!(trace, &want);
        }
        assert_eq!(log.count("warmup"), 3);
        assert_eq!(log.count("epoch_step"), 3 * 3);
        assert_eq!(
            log.of("b"),
            ["epoch_step", "epoch_step", "epoch_step"],
            "workers {workers}"
        );
    }
    Ok(())
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check(
        "flows_internal_loop",
        &[TestFlowInternalLoop::graph(), LocalEpochs::graph()],
    );
}
