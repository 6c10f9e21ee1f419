//! The `byzantine` example's claims on the bundled data (10 collaborators, 1 libtorch thread):
//! two sign-flip attackers wreck the mean but not the median or Krum; label-flip and noise
//! attackers run and do what they say; bad attacker specs are refused with a clear error.

mod common;

use std::sync::Arc;

use flspec_examples::fedavg_mnist::{Attacker, FedAvgMnist, Rule, RunOptions};
use flspec_tch::datasets::mnist::Mnist;

/// The bundled subset: 4,000 training images (400 per collaborator) and 1,000 test images.
fn data() -> Arc<Mnist> {
    common::mnist::bundled()
}

/// 10 collaborators on an IID split, `rounds` rounds at learning rate 0.05.
fn options(rule: Rule, rounds: u32, attackers: &[&str]) -> RunOptions {
    let mut options = RunOptions::new(10, data());
    options.partition = "iid".parse().expect("a partition");
    options.settings.rounds = rounds;
    options.settings.learning_rate = "0.05".parse().expect("a schedule");
    options.settings.rule = rule;
    options.attackers = attackers
        .iter()
        .map(|a| a.parse::<Attacker>().expect("an attacker"))
        .collect();
    options
}

fn run(options: &RunOptions) -> FedAvgMnist {
    common::mnist::run(options.local_runtime(), options.initial_state())
}

fn final_accuracy(flow: &FedAvgMnist) -> f64 {
    flow.results.last().expect("a round").accuracy
}

const SIGN_FLIP: [&str; 2] = [
    "collaborator-009:sign-flip:10",
    "collaborator-010:sign-flip:10",
];

#[test]
fn two_sign_flip_attackers_wreck_the_mean_but_not_the_median_or_krum() {
    let clean = final_accuracy(&run(&options(Rule::Mean, 3, &[])));
    let mean = final_accuracy(&run(&options(Rule::Mean, 3, &SIGN_FLIP)));
    let median = final_accuracy(&run(&options(Rule::Median, 3, &SIGN_FLIP)));
    let krum = final_accuracy(&run(&options(Rule::Krum { f: 2 }, 3, &SIGN_FLIP)));
    let all = format!("no attack {clean}, mean {mean}, median {median}, krum {krum}");
    eprintln!("{all}");
    assert!(clean > 0.6, "{all}");
    // The mean moves the model against the honest updates: no better than guessing.
    assert!(mean < 0.2, "{all}");
    assert!(median > clean - 0.1, "{all}");
    assert!(krum > clean - 0.15, "{all}");
}

#[test]
fn label_flip_and_noise_attackers_run_and_the_median_resists_them() {
    let attackers = ["collaborator-009:label-flip", "collaborator-010:noise:1"];
    let mean = run(&options(Rule::Mean, 2, &attackers));
    let median = run(&options(Rule::Median, 2, &attackers));
    let all = format!(
        "mean {}, median {}",
        final_accuracy(&mean),
        final_accuracy(&median)
    );
    eprintln!("{all}");
    // The noise (std 1, a tenth of it in the mean) drowns the honest updates in the mean.
    assert!(
        final_accuracy(&median) > final_accuracy(&mean) + 0.2,
        "{all}"
    );
    let last = median.results.last().expect("a round");
    let local = |name: &str| {
        last.participants
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.report.local_accuracy)
            .expect("a participant")
    };
    let honest: Vec<f64> = last
        .participants
        .iter()
        .filter(|p| p.name != "collaborator-009")
        .map(|p| p.report.local_accuracy)
        .collect();
    let worst_honest = honest.iter().copied().fold(1.0, f64::min);
    // Trained on 9 - y, the label flipper gets its true test labels wrong.
    let flipper = local("collaborator-009");
    eprintln!("label flipper {flipper}, honest {honest:?}");
    assert!(
        flipper < 0.2 && flipper < worst_honest - 0.1,
        "label flipper {flipper}, honest {honest:?}"
    );
    assert!(last.rejected.is_empty());
}

#[test]
fn an_attacker_that_is_not_a_collaborator_is_a_clear_error() {
    let err = options(Rule::Median, 1, &["Lisbon:sign-flip"])
        .validate()
        .expect_err("Lisbon is not one of the 10");
    let msg = err.to_string();
    assert!(msg.contains("no collaborator `Lisbon`"), "{msg}");
    assert!(msg.contains("collaborator-010"), "{msg}");

    let err = options(Rule::Median, 1, &["Portland:sign-flip", "Portland:noise"])
        .validate()
        .expect_err("two attacks for one collaborator");
    assert!(err.to_string().contains("already has an attack"), "{err}");

    let err = "Portland:flip"
        .parse::<Attacker>()
        .expect_err("no such attack");
    let msg = format!("{err:#}");
    assert!(msg.contains("unknown attack `flip`"), "{msg}");
    assert!(msg.contains("sign-flip"), "{msg}");

    let err = options(Rule::Krum { f: 4 }, 1, &SIGN_FLIP)
        .validate()
        .expect_err("Krum with F = 4 needs 11");
    assert!(err.to_string().contains("at least 11"), "{err}");
}
