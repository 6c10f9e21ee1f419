//! Port of OpenFL's `testflow_subset_of_collaborators.py`: a fan-out to a subset of the
//! collaborators runs the step on exactly that subset; plus a subset chosen at run time that
//! changes from round to round, whose join inputs come in the subset's order.

mod common;

use common::{CITIES, StepLog};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct TestFlowSubsetCollaborators {
    subset_size: usize,
    subset_collaborators: Vec<String>,
    collaborator_ran: String,
    collaborators_ran: Vec<String>,
}

/// OpenFL's private attribute `name`.
struct Site {
    name: String,
}

#[flow(collaborator = Site)]
impl TestFlowSubsetCollaborators {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.subset_collaborators = ctx.collaborators()[..self.subset_size].to_vec();
        next!(
            self.test_valid_collaborators,
            foreach = self.subset_collaborators.clone()
        )
    }

    #[collaborator]
    fn test_valid_collaborators(&mut self, site: &mut Site) -> Next<Self> {
        self.collaborator_ran = site.name.clone();
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.collaborators_ran = inputs.iter().map(|i| i.collaborator_ran.clone()).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn site(name: &str) -> Site {
    Site {
        name: name.to_string(),
    }
}

#[test]
fn each_subset_size_runs_exactly_that_subset() -> flspec::Result<()> {
    // OpenFL draws the sizes 1..=8 in random order; a fixed permutation keeps this reproducible.
    let sizes = [3, 8, 1, 6, 2, 7, 5, 4];
    for workers in [1, 3] {
        for size in sizes {
            let log = StepLog::default();
            let runtime = LocalRuntime::new(CITIES, site)
                .parallel(workers)
                .observer(log.observer());
            let flow = TestFlowSubsetCollaborators {
                subset_size: size,
                ..Default::default()
            }
            .run(&runtime)?;
            assert_eq!(flow.subset_collaborators, CITIES[..size]);
            assert_eq!(flow.collaborators_ran, flow.subset_collaborators);
            assert_eq!(log.count("test_valid_collaborators"), size);
            let ran: Vec<String> = log
                .entries()
                .into_iter()
                .filter(|(s, _)| s == "test_valid_collaborators")
                .map(|(_, p)| p)
                .collect();
            let mut ran_sorted = ran.clone();
            ran_sorted.sort();
            let mut want: Vec<String> = CITIES[..size].iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(ran_sorted, want, "size {size}, workers {workers}");
        }
    }
    Ok(())
}

/// A subset chosen at run time, different every round, in an order unlike the runtime's.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct RotatingSubset {
    rounds: u32,
    round: u32,
    chosen: Vec<Vec<String>>,
    joined: Vec<Vec<String>>,
    reported: Vec<Vec<String>>,
    /// Per collaborator (runtime order): how many rounds it ran, counted in its private state.
    me: String,
    my_rounds: u32,
    participation: Vec<(String, u32)>,
}

struct Counter {
    name: String,
    rounds: u32,
}

#[flow(collaborator = Counter)]
impl RotatingSubset {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        let subset = pick(ctx.collaborators(), self.round);
        self.chosen.push(subset.clone());
        next!(self.train, foreach = subset)
    }

    #[collaborator]
    fn train(&mut self, ctx: &Ctx, counter: &mut Counter) -> Next<Self> {
        assert_eq!(counter.name, ctx.name());
        counter.rounds += 1;
        self.me = counter.name.clone();
        self.my_rounds = counter.rounds;
        next!(self.join, include = [me, my_rounds])
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Next<Self> {
        self.joined
            .push(inputs.names().map(str::to_string).collect());
        self.reported
            .push(inputs.iter().map(|i| i.me.clone()).collect());
        for input in &inputs {
            match self.participation.iter_mut().find(|(n, _)| n == &input.me) {
                Some(entry) => {
                    assert_eq!(
                        entry.1 + 1,
                        input.my_rounds,
                        "private count of {}",
                        input.me
                    );
                    entry.1 = input.my_rounds;
                }
                None => {
                    assert_eq!(input.my_rounds, 1);
                    self.participation.push((input.me.clone(), 1));
                }
            }
        }
        self.round += 1;
        if self.round < self.rounds {
            let subset = pick(ctx.collaborators(), self.round);
            self.chosen.push(subset.clone());
            next!(self.train, foreach = subset)
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Round `r` picks the collaborators whose index `i` has `(i + r) % 3 != 0`, in reverse order,
/// rotated by `r`.
fn pick(all: &[String], round: u32) -> Vec<String> {
    let r = round as usize;
    let mut subset: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| !(i + r).is_multiple_of(3))
        .map(|(_, n)| n.clone())
        .rev()
        .collect();
    let k = r % subset.len().max(1);
    subset.rotate_left(k);
    subset
}

#[test]
fn a_subset_chosen_at_run_time_changes_between_rounds() -> flspec::Result<()> {
    let mut results = Vec::new();
    for workers in [1, 4] {
        let log = StepLog::default();
        let runtime = LocalRuntime::new(CITIES, |name: &str| Counter {
            name: name.to_string(),
            rounds: 0,
        })
        .parallel(workers)
        .observer(log.observer());
        let flow = RotatingSubset {
            rounds: 6,
            ..Default::default()
        }
        .run(&runtime)?;
        assert_eq!(flow.chosen.len(), 6);
        // The subsets really differ between rounds.
        assert_ne!(flow.chosen[0], flow.chosen[1]);
        assert_ne!(flow.chosen[1], flow.chosen[2]);
        // Join inputs come in the order of the fan-out list, not of the runtime.
        assert_eq!(flow.joined, flow.chosen);
        assert_eq!(flow.reported, flow.chosen);
        // Each collaborator ran exactly the rounds it was chosen for.
        let total: usize = flow.chosen.iter().map(Vec::len).sum();
        assert_eq!(log.count("train"), total);
        for (name, rounds) in &flow.participation {
            let chosen = flow.chosen.iter().filter(|s| s.contains(name)).count();
            assert_eq!(*rounds as usize, chosen, "{name}");
        }
        results.push(flow);
    }
    assert_eq!(results[0], results[1], "sequential == parallel");
    Ok(())
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check(
        "flows_subset",
        &[
            TestFlowSubsetCollaborators::graph(),
            RotatingSubset::graph(),
        ],
    );
}
