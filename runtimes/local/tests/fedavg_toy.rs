//! The `fedavg_toy` example's logic, run as a test: it converges, the sites' private state
//! persists across rounds, the aggregator's private log is readable after the run, sequential
//! and parallel runs agree, and a failing site's error prints its message from `main`.

#[path = "../examples/fedavg_toy.rs"]
mod fedavg_toy;

use fedavg_toy::{SITES, run};

#[test]
fn the_toy_fits_the_line() -> flspec::Result<()> {
    let outcome = run(&SITES, 20, 1)?;
    let flow = &outcome.flow;
    assert_eq!(flow.round, 20);
    assert_eq!(flow.history.len(), 20);
    assert!((flow.w - 3.0).abs() < 0.01, "w = {}", flow.w);
    assert!((flow.b - 1.0).abs() < 0.01, "b = {}", flow.b);
    assert!(
        flow.history.windows(2).all(|w| w[1] <= w[0]),
        "{:?}",
        flow.history
    );
    assert!(
        flow.history[19] < flow.history[0] / 100.0,
        "{:?}",
        flow.history
    );
    Ok(())
}

#[test]
fn the_aggregator_log_is_read_after_the_run() -> flspec::Result<()> {
    let outcome = run(&SITES, 3, 1)?;
    assert_eq!(outcome.log.len(), 1 + 3 + 1, "{:?}", outcome.log);
    assert!(
        outcome.log[0].ends_with(": 3 sites, 3 rounds"),
        "{:?}",
        outcome.log
    );
    assert!(
        outcome.log[3].starts_with("round 3: loss "),
        "{:?}",
        outcome.log
    );
    assert_eq!(outcome.log[4], "done after 3 rounds");
    Ok(())
}

#[test]
fn parallel_runs_give_the_same_model() -> flspec::Result<()> {
    let one = run(&SITES, 5, 1)?.flow;
    let three = run(&SITES, 5, 3)?.flow;
    assert_eq!((one.w, one.b), (three.w, three.b));
    assert_eq!(one.history, three.history);
    Ok(())
}

#[test]
fn a_site_without_data_fails_the_run_with_a_readable_error() {
    let err = match run(&[("Bengaluru", 40), ("Empty", 0)], 1, 1) {
        Err(e) => e,
        Ok(_) => panic!("a site without samples must fail the run"),
    };
    // What `fn main() -> Result<(), flspec::Error>` prints after `Error: `.
    assert_eq!(
        format!("{err:?}"),
        "step `train` of flow `FedAvgToy` failed on collaborator `Empty`: this site has no samples"
    );
}
