//! The plain FedAvg MNIST flow on the bundled data (1 libtorch thread): one round
//! learns, runs are deterministic for a seed, partitions and rules are wired in, and bad
//! options are refused with a clear error.

mod common;

use std::sync::Arc;

use flspec::fl::history::History;
use flspec_examples::fedavg_mnist::{FedAvgMnist, Rule, RunOptions};
use flspec_tch::datasets::mnist::Mnist;

/// The bundled subset: 4,000 training and 1,000 test images.
fn data() -> Arc<Mnist> {
    common::mnist::bundled()
}

fn run(options: &RunOptions) -> FedAvgMnist {
    common::mnist::run(options.local_runtime(), options.initial_state())
}

#[test]
fn one_round_learns_and_reports_every_collaborator() {
    let mut options = RunOptions::new(4, data());
    options.settings.rounds = 1;
    options.settings.learning_rate = "0.05".parse().expect("a schedule");
    let flow = run(&options);
    assert_eq!(flow.round, 1);
    assert_eq!(flow.results.len(), 1);
    let row = &flow.results[0];
    // The untrained model guesses (about 0.1); one epoch on 4,000 images is well above that.
    let untrained = row.participants[0].report.global_accuracy;
    assert!(untrained < 0.2, "{row:?}");
    assert!(row.accuracy > 0.4, "{row:?}");
    assert!(row.train_loss > 0.1 && row.train_loss < 2.4, "{row:?}");
    assert_eq!(row.samples, 4000);
    let names: Vec<&str> = row.participants.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Bengaluru",
            "Portland",
            "collaborator-003",
            "collaborator-004"
        ]
    );
    for p in &row.participants {
        // The strided split: 1,000 training and 250 test images each.
        assert_eq!(
            (p.report.samples, p.report.test_samples),
            (1000, 250),
            "{p:?}"
        );
        assert!(p.report.seconds > 0.0);
    }
    assert!(row.rejected.is_empty());
    assert_eq!(
        flow.model.len(),
        flspec_tch::models::mnist_cnn::NUM_PARAMETERS
    );
}

#[test]
fn same_seed_same_model_and_parallel_workers_change_nothing() {
    let mut options = RunOptions::new(3, data());
    options.settings.rounds = 2;
    options.settings.rule = Rule::Median;
    options.partition = "dirichlet:1.0".parse().expect("a partition");
    let a = run(&options);
    let b = run(&options);
    assert_eq!(a.model, b.model);
    assert_eq!(a.results[1].accuracy, b.results[1].accuracy);
    options.workers = 3;
    let c = run(&options);
    assert_eq!(a.model, c.model);
    // Another partition seed gives other sites, so another model.
    options.partition_seed += 1;
    let d = run(&options);
    assert_ne!(a.model, d.model);
    let sizes = |f: &FedAvgMnist| -> Vec<u64> {
        f.results[0]
            .participants
            .iter()
            .map(|p| p.report.samples)
            .collect()
    };
    assert_eq!(sizes(&a).iter().sum::<u64>(), 4000);
    assert_ne!(sizes(&a), sizes(&d));
}

#[test]
fn bad_options_are_refused_with_a_clear_error() {
    let mut options = RunOptions::new(4, data());
    options.attackers = vec!["Lisbon:sign-flip".parse().expect("a spec")];
    let err = options
        .local_runtime()
        .err()
        .expect("Lisbon is not a collaborator");
    assert!(
        err.to_string().contains("no collaborator `Lisbon`"),
        "{err}"
    );

    let mut options = RunOptions::new(4, data());
    options.settings.rule = Rule::Krum { f: 1 };
    let err = options.validate().expect_err("Krum with f = 1 needs 5");
    assert!(err.to_string().contains("at least 5"), "{err}");
}

#[test]
fn schedules_set_each_round_and_the_history_is_written_per_round() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("history.jsonl");
    let mut options = RunOptions::new(2, data());
    options.settings.rounds = 2;
    options.settings.learning_rate = "step:0.04,every=1,gamma=0.5".parse().expect("lr");
    options.settings.epochs = "piecewise:0=2,1=1".parse().expect("epochs");
    options.history_jsonl = Some(path.clone());
    let flow = run(&options);
    let lr: Vec<f64> = flow.results.iter().map(|r| r.learning_rate).collect();
    let epochs: Vec<usize> = flow.results.iter().map(|r| r.epochs).collect();
    assert_eq!(lr, [0.04, 0.02]);
    assert_eq!(epochs, [2, 1]);
    // The aggregator wrote one JSON line per round; it reads back as the run's history.
    let written = History::read_jsonl(&path).expect("the JSON lines read back");
    let expected = flow.history();
    assert_eq!(written.len(), 2);
    for (w, e) in written.rounds().iter().zip(expected.rounds()) {
        // serde_json's default float parsing may be one ulp off; the values are the same.
        assert_eq!(w.round, e.round);
        assert_eq!(w.participants.len(), e.participants.len());
        for name in ["accuracy", "loss", "local_accuracy", "samples", "epochs"] {
            let (a, b) = (w.value(name).expect(name), e.value(name).expect(name));
            assert!((a - b).abs() <= 1e-12 * b.abs(), "{name}: {a} vs {b}");
        }
    }
    let first = &written.rounds()[0];
    assert_eq!(first.round, 1);
    assert_eq!(first.accuracy, Some(flow.results[0].accuracy));
    assert_eq!(first.value("learning_rate"), Some(0.04));
    assert_eq!(first.participants.len(), 2);
    assert_eq!(first.participants[0].samples, Some(2000));
}

#[test]
fn a_large_fedprox_mu_keeps_the_local_models_near_the_global_one() {
    let mut options = RunOptions::new(2, data());
    options.settings.rounds = 1;
    let fedavg = run(&options);
    options.settings.mu = 10.0;
    let fedprox = run(&options);
    for (a, p) in fedavg.results[0]
        .participants
        .iter()
        .zip(&fedprox.results[0].participants)
    {
        assert!(
            p.report.distance < 0.5 * a.report.distance,
            "FedAvg moved {} by {}, FedProx(10) by {}",
            a.name,
            a.report.distance,
            p.report.distance
        );
        assert_eq!(a.report.proximal_term, 0.0);
        assert!(p.report.proximal_term > 0.0);
    }
}
