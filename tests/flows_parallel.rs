//! Sequential and parallel runs give identical results: the same final state, and join inputs
//! in the order of the fan-out list whatever order the workers finish in. A property test runs
//! random fan-out sizes (1..=40), random subsets in random orders and random worker counts.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use flspec::prelude::*;
use flspec_local::LocalRuntime;
use proptest::prelude::*;

/// A few rounds of "training" with chained collaborator steps, a subset per round given by the
/// state, and private state that accumulates across rounds.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Rounds {
    /// The fan-out list of each round, in order.
    plan: Vec<Vec<String>>,
    round: usize,
    model: Vec<u64>,
    update: Vec<u64>,
    me: String,
    private_count: u64,
    /// Per round: the join's input names, in order.
    joined: Vec<Vec<String>>,
    /// Per round: `(name, private_count)` of each input.
    counts: Vec<Vec<(String, u64)>>,
    /// Collaborators that sleep a little, to shuffle the finishing order.
    slow: Vec<String>,
}

struct Site {
    seed: u64,
    count: u64,
}

#[flow(collaborator = Site)]
impl Rounds {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        self.model = vec![1, 2, 3, 4];
        let first = self.plan[0].clone();
        next!(self.train, foreach = first, exclude = [joined, counts])
    }

    #[collaborator]
    fn train(&mut self, ctx: &Ctx, site: &mut Site) -> Next<Self> {
        if self.slow.iter().any(|s| s == ctx.name()) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        site.count += 1;
        self.update = self
            .model
            .iter()
            .map(|w| w.wrapping_mul(site.seed).wrapping_add(site.count))
            .collect();
        next!(self.report)
    }

    #[collaborator]
    fn report(&mut self, ctx: &Ctx, site: &mut Site) -> Next<Self> {
        self.me = ctx.name().to_string();
        self.private_count = site.count;
        next!(self.join, include = [update, me, private_count])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.joined
            .push(inputs.names().map(str::to_string).collect());
        self.counts.push(
            inputs
                .iter()
                .map(|i| (i.me.clone(), i.private_count))
                .collect(),
        );
        for (k, w) in self.model.iter_mut().enumerate() {
            // Order-sensitive on purpose: a different input order gives a different model.
            *w = inputs
                .iter()
                .fold(*w, |acc, i| acc.wrapping_mul(31).wrapping_add(i.update[k]));
        }
        self.round += 1;
        if self.round < self.plan.len() {
            let next_round = self.plan[self.round].clone();
            next!(self.train, foreach = next_round, exclude = [joined, counts])
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn runtime(n: usize, workers: usize) -> LocalRuntime<Site> {
    LocalRuntime::new(common::names(n), |name: &str| Site {
        seed: name.bytes().map(u64::from).sum::<u64>() + 1,
        count: 0,
    })
    .parallel(workers)
}

fn check_plan(n: usize, plan: Vec<Vec<String>>, slow: Vec<String>, workers: usize) -> Rounds {
    let flow = Rounds {
        plan: plan.clone(),
        slow,
        ..Default::default()
    };
    let sequential = flow.clone().run(&runtime(n, 1)).expect("sequential run");
    let parallel = flow.run(&runtime(n, workers)).expect("parallel run");
    assert_eq!(sequential, parallel, "sequential != parallel({workers})");
    assert_eq!(
        sequential.joined, plan,
        "join inputs follow the fan-out lists"
    );
    // Private counts: how many rounds so far each collaborator was part of.
    for (r, row) in sequential.counts.iter().enumerate() {
        for (name, count) in row {
            let expected = plan[..=r].iter().filter(|p| p.contains(name)).count() as u64;
            assert_eq!(*count, expected, "round {r}, {name}");
        }
    }
    sequential
}

#[test]
fn sequential_and_parallel_4_give_identical_final_states() {
    let names = common::names(12);
    let plan = vec![
        names.clone(),
        names.iter().rev().cloned().collect(),
        names.iter().step_by(3).cloned().collect(),
        vec![names[5].clone()],
    ];
    // The first collaborators are slow, so parallel workers finish out of order.
    let slow = names[..4].to_vec();
    let result = check_plan(12, plan, slow, 4);
    assert_eq!(result.round, 4);
}

#[test]
fn workers_beyond_the_fan_out_size_are_harmless() {
    let names = common::names(3);
    check_plan(3, vec![names.clone(), names[1..].to_vec()], Vec::new(), 16);
}

/// Counts runs, to make the slow-set in the property test vary.
static RUNS: AtomicU64 = AtomicU64::new(0);

fn plan_strategy() -> impl Strategy<Value = (usize, Vec<Vec<String>>, usize)> {
    (1usize..=40).prop_flat_map(|n| {
        let round = proptest::sample::subsequence((0..n).collect::<Vec<_>>(), 1..=n)
            .prop_shuffle()
            .prop_map(|idx| idx.into_iter().map(|i| format!("c{i}")).collect::<Vec<_>>());
        (Just(n), proptest::collection::vec(round, 1..=3), 1usize..=8)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_fan_outs_keep_order_and_match_sequential((n, plan, workers) in plan_strategy()) {
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        // A couple of slow collaborators per case, different each case.
        let slow = vec![format!("c{}", run % n as u64), format!("c{}", (run * 7) % n as u64)];
        let result = check_plan(n, plan.clone(), slow, workers);
        prop_assert_eq!(result.joined, plan);
    }
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check("flows_parallel", &[Rounds::graph()]);
}
