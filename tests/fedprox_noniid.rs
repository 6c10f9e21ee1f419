//! The `fedprox_noniid` example's flow (`fedavg_mnist` with FedProx's `mu`) on a small slice of
//! the bundled data: it computes exactly what the hand-written tch loop computes (the overhead
//! bench's baseline), FedProx keeps the local models nearer the global one than FedAvg, and the
//! example's table has one column per variant and one row per round with the runs' values.

mod common;
#[path = "../examples/fedprox_noniid/compare.rs"]
mod compare;

use std::sync::Arc;

use compare::VariantRun;
use flspec::fl::partition::Partitioner;
use flspec_examples::fedavg_mnist::{FedAvgMnist, RunOptions};
use flspec_examples::hand_loop;
use flspec_tch::datasets::mnist::Mnist;

/// The first 1,200 training and 300 test images of the bundled data; one libtorch thread, so
/// that every run's sums are in the same order.
fn data() -> Arc<Mnist> {
    common::mnist::bundled_first(1200, 300)
}

/// 4 collaborators, Dirichlet alpha = 0.1 (seed 42), 2 rounds of 1 epoch at learning rate 0.05.
fn options(mu: f64) -> RunOptions {
    let mut options = RunOptions::new(4, data());
    options.partition = Partitioner::dirichlet(0.1);
    options.partition_seed = 42;
    options.settings.rounds = 2;
    options.settings.learning_rate = "0.05".parse().expect("a learning rate");
    options.settings.mu = mu;
    options
}

fn run_flow(options: &RunOptions) -> FedAvgMnist {
    common::mnist::run(options.local_runtime(), options.initial_state())
}

#[test]
fn the_flow_computes_what_the_hand_written_loop_computes_bit_for_bit() {
    for mu in [0.0, 0.1] {
        let options = options(mu);
        let flow = run_flow(&options);
        let hand = hand_loop::run(&options).expect("the loop runs");
        assert_eq!(flow.results.len(), 2);
        let flow_accuracy: Vec<f64> = flow.results.iter().map(|r| r.accuracy).collect();
        assert_eq!(flow_accuracy, hand.accuracy, "mu = {mu}");
        let flow_loss: Vec<f64> = flow.results.iter().map(|r| r.train_loss).collect();
        assert_eq!(flow_loss, hand.train_loss, "mu = {mu}");
        let differing = flow
            .model
            .iter()
            .zip(&hand.model)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0, "mu = {mu}: the final models differ");
        assert_eq!(flow.model.len(), hand.model.len());
    }
}

#[test]
fn fedprox_keeps_the_local_models_nearer_the_global_one_and_the_table_shows_every_variant() {
    let mus = [0.0, 0.01, 1.0];
    let runs: Vec<VariantRun> = mus
        .iter()
        .map(|&mu| VariantRun {
            mu,
            rows: run_flow(&options(mu)).results,
            seconds: 0.5,
        })
        .collect();
    let (fedavg, small, large) = (&runs[0], &runs[1], &runs[2]);
    // Every variant starts from the same model on the same partition and learns.
    for run in &runs {
        assert_eq!(run.rows.len(), 2);
        assert_eq!(run.rows[0].participants.len(), 4);
        assert_eq!(run.rows[0].samples, 1200);
        assert!(
            run.rows[1].train_loss < run.rows[0].train_loss,
            "{}: {:?}",
            run.name(),
            run.rows
        );
    }
    // FedAvg learns in two rounds despite the skew (0.49 here; chance is 0.1).
    assert!(fedavg.rows[1].accuracy > 0.3, "{:?}", fedavg.rows);
    // mu = 1 pulls the local models in (0.76 vs 1.10 here); mu = 0.01 barely, but still.
    assert!(
        large.mean_drift() < 0.85 * fedavg.mean_drift(),
        "{} vs {}",
        large.mean_drift(),
        fedavg.mean_drift()
    );
    assert!(small.mean_drift() < fedavg.mean_drift());
    for row in &fedavg.rows {
        assert!(
            row.participants
                .iter()
                .all(|p| p.report.proximal_term == 0.0)
        );
    }
    for row in &large.rows {
        for p in &row.participants {
            let expected = 0.5 * p.report.distance * p.report.distance;
            assert!((p.report.proximal_term - expected).abs() < 1e-9 * expected.max(1.0));
        }
    }

    let table = compare::table(&runs);
    let lines: Vec<&str> = table.lines().collect();
    // Header, rule, 2 rounds, 4 summary rows.
    assert_eq!(lines.len(), 8, "{table}");
    assert_eq!(
        lines[0],
        "| round | FedAvg | FedProx mu=0.01 | FedProx mu=1 |"
    );
    assert_eq!(lines[1], "|---:|---:|---:|---:|");
    for (round, line) in lines[2..4].iter().enumerate() {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells[0], (round + 1).to_string());
        for (cell, run) in cells[1..].iter().zip(&runs) {
            assert_eq!(*cell, format!("{:.4}", run.rows[round].accuracy));
        }
    }
    assert!(lines[4].starts_with("| best (round) |"), "{table}");
    let (best_round, best) = fedavg.best().expect("two rounds");
    assert!(
        lines[4].contains(&format!("{best:.4} ({best_round})")),
        "{table}"
    );
    assert!(lines[5].starts_with("| last train loss |"));
    assert!(
        lines[6].contains(&format!("{:.3}", large.mean_drift())),
        "{table}"
    );
    assert_eq!(lines[7], "| time (s) | 0.5 | 0.5 | 0.5 |");
}

#[test]
fn the_hand_written_loop_refuses_attackers() {
    let mut options = options(0.0);
    options.attackers = vec!["Bengaluru:sign-flip".parse().expect("an attack")];
    let err = hand_loop::run(&options).expect_err("attackers refused");
    assert!(err.to_string().contains("no attackers"), "{err}");
}
