//! Port of OpenFL's `testflow_exclude.py`: `exclude = [..]` on every kind of transition
//! (aggregator to aggregator, aggregator to collaborators, collaborator to collaborator,
//! collaborator to the join). An excluded field arrives with its value in `Self::default()`
//! (OpenFL: the attribute is absent); the aggregator keeps its whole state for the join.

mod common;

use common::{CITIES, StepLog};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

/// The attributes of OpenFL's test flow; `0` plays the part of "absent".
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct TestFlowExclude {
    collaborators: Vec<String>,
    exclude_agg_to_agg: u32,
    include_agg_to_agg: u32,
    exclude_agg_to_collab: u32,
    include_agg_to_collab: u32,
    exclude_collab_to_collab: u32,
    include_collab_to_collab: u32,
    exclude_collab_to_agg: u32,
    include_collab_to_agg: u32,
    /// Set by the join: how many inputs it checked.
    checked_inputs: usize,
}

#[flow]
impl TestFlowExclude {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.collaborators = ctx.collaborators().to_vec();
        self.exclude_agg_to_agg = 10;
        self.include_agg_to_agg = 100;
        next!(self.test_exclude_agg_to_agg, exclude = [exclude_agg_to_agg])
    }

    #[aggregator]
    fn test_exclude_agg_to_agg(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 100, "included agg -> agg");
        assert_eq!(self.exclude_agg_to_agg, 0, "excluded agg -> agg");
        self.exclude_agg_to_collab = 20;
        self.include_agg_to_collab = 100;
        next!(
            self.test_exclude_agg_to_collab,
            foreach = self.collaborators.clone(),
            exclude = [exclude_agg_to_collab]
        )
    }

    #[collaborator]
    fn test_exclude_agg_to_collab(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 100);
        assert_eq!(self.include_agg_to_collab, 100);
        assert_eq!(self.exclude_agg_to_agg, 0);
        assert_eq!(self.exclude_agg_to_collab, 0, "excluded agg -> collab");
        self.exclude_collab_to_collab = 10;
        self.include_collab_to_collab = 44;
        next!(
            self.test_exclude_collab_to_collab,
            exclude = [exclude_collab_to_collab]
        )
    }

    #[collaborator]
    fn test_exclude_collab_to_collab(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 100);
        assert_eq!(self.include_agg_to_collab, 100);
        assert_eq!(self.include_collab_to_collab, 44);
        assert_eq!(self.exclude_agg_to_agg, 0);
        assert_eq!(self.exclude_agg_to_collab, 0);
        assert_eq!(
            self.exclude_collab_to_collab, 0,
            "excluded collab -> collab"
        );
        self.exclude_collab_to_agg = 20;
        self.include_collab_to_agg = 56;
        next!(self.join, exclude = [exclude_collab_to_agg])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        // The aggregator's own state: everything it had before the fan-out.
        assert_eq!(self.include_agg_to_agg, 100);
        assert_eq!(self.include_agg_to_collab, 100);
        assert_eq!(
            self.exclude_agg_to_collab, 20,
            "the aggregator keeps its whole state"
        );
        assert_eq!(self.exclude_agg_to_agg, 0);
        // Nothing a collaborator wrote leaks into the aggregator's own state.
        assert_eq!(self.include_collab_to_collab, 0);
        assert_eq!(self.include_collab_to_agg, 0);
        for input in &inputs {
            assert_eq!(input.include_collab_to_collab, 44, "{}", input.name());
            assert_eq!(input.include_collab_to_agg, 56, "{}", input.name());
            assert_eq!(input.exclude_collab_to_collab, 0, "{}", input.name());
            assert_eq!(input.exclude_collab_to_agg, 0, "excluded collab -> agg");
            assert_eq!(input.exclude_agg_to_collab, 0, "{}", input.name());
        }
        self.checked_inputs = inputs.len();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn exclude_on_every_kind_of_transition() -> flspec::Result<()> {
    let log = StepLog::default();
    let runtime =
        LocalRuntime::new(CITIES.iter().take(4).copied(), |_| ()).observer(log.observer());
    // OpenFL runs the same flow object five times; each run starts afresh.
    for _ in 0..5 {
        let flow = TestFlowExclude::default().run(&runtime)?;
        assert_eq!(flow.checked_inputs, 4);
        assert_eq!(flow.exclude_agg_to_collab, 20);
        assert_eq!(flow.exclude_agg_to_agg, 0);
    }
    assert_eq!(log.count("test_exclude_collab_to_collab"), 5 * 4);
    assert_eq!(log.count("join"), 5);
    Ok(())
}

#[test]
fn exclude_in_parallel() -> flspec::Result<()> {
    let runtime = LocalRuntime::new(CITIES, |_| ()).parallel(4);
    let flow = TestFlowExclude::default().run(&runtime)?;
    assert_eq!(flow.checked_inputs, CITIES.len());
    Ok(())
}

#[test]
fn a_rerun_of_a_final_state_behaves_the_same() -> flspec::Result<()> {
    // OpenFL re-runs the flow object that a previous run left behind.
    let runtime = LocalRuntime::new(["Portland", "Chandler"], |_| ());
    let first = TestFlowExclude::default().run(&runtime)?;
    let second = first.clone().run(&runtime)?;
    assert_eq!(first, second);
    Ok(())
}

/// A state whose `Default` is not all zeros: an excluded field must arrive with its value in
/// `Self::default()`, not its type's default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CustomDefault {
    kept: Vec<u32>,
    dropped: Vec<u32>,
    label: String,
    seen_in_collab: Vec<u32>,
    seen_in_join: Vec<Vec<u32>>,
    seen_after_self: Vec<u32>,
}

impl Default for CustomDefault {
    fn default() -> Self {
        CustomDefault {
            kept: vec![1],
            dropped: vec![7, 7, 7],
            label: "default".into(),
            seen_in_collab: Vec::new(),
            seen_in_join: Vec::new(),
            seen_after_self: Vec::new(),
        }
    }
}

/// Reads `dropped` where `#[flow]`'s field check does not look.
fn dropped_of(state: &CustomDefault) -> Vec<u32> {
    state.dropped.clone()
}

#[flow]
impl CustomDefault {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        self.dropped = vec![42];
        self.kept = vec![2, 3];
        next!(self.middle, exclude = [dropped])
    }

    #[aggregator]
    fn middle(&mut self, ctx: &Ctx) -> Next<Self> {
        self.seen_after_self = self.dropped.clone();
        self.dropped = vec![43];
        next!(
            self.work,
            foreach = ctx.collaborators(),
            exclude = [dropped]
        )
    }

    #[collaborator]
    fn work(&mut self) -> Next<Self> {
        self.seen_in_collab = self.dropped.clone();
        self.dropped = vec![99];
        self.label = "collab".into();
        next!(self.join, exclude = [dropped, label])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        // `dropped` reaches the join by no transition: reading it here is on purpose, to see its
        // custom default. `#[flow]` rejects a direct `i.dropped`; it does not follow a helper.
        self.seen_in_join = inputs.iter().map(|i| dropped_of(i)).collect();
        assert!(inputs.iter().all(|i| i.label == "default"));
        assert!(inputs.iter().all(|i| i.kept == vec![2, 3]));
        assert!(inputs.iter().all(|i| i.seen_in_collab == vec![7, 7, 7]));
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn excluded_fields_arrive_with_their_value_in_self_default() -> flspec::Result<()> {
    let runtime = LocalRuntime::new(["a", "b", "c"], |_| ());
    let flow = CustomDefault::default().run(&runtime)?;
    assert_eq!(flow.seen_after_self, vec![7, 7, 7], "agg -> agg");
    assert_eq!(flow.seen_in_join, vec![vec![7, 7, 7]; 3], "collab -> join");
    // The aggregator kept what it excluded from the collaborators' copies.
    assert_eq!(flow.dropped, vec![43]);
    assert_eq!(flow.label, "default");
    Ok(())
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check(
        "flows_exclude",
        &[TestFlowExclude::graph(), CustomDefault::graph()],
    );
}
