//! Port of OpenFL's `testflow_include.py`: `include = [..]` on every kind of transition. Only
//! the listed fields travel; every other field arrives with its value in `Self::default()`
//! (OpenFL: the attribute is absent). In a fan-out the filter applies to the collaborators'
//! copies only: the aggregator keeps its whole state for the join.

mod common;

use common::{CITIES, StepLog};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct TestFlowInclude {
    collaborators: Vec<String>,
    exclude_agg_to_agg: u32,
    include_agg_to_agg: u32,
    exclude_agg_to_collab: u32,
    include_agg_to_collab: u32,
    exclude_collab_to_collab: u32,
    include_collab_to_collab: u32,
    exclude_collab_to_agg: u32,
    include_collab_to_agg: u32,
    checked_inputs: usize,
}

#[flow]
impl TestFlowInclude {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.collaborators = ctx.collaborators().to_vec();
        self.exclude_agg_to_agg = 10;
        self.include_agg_to_agg = 100;
        next!(
            self.test_include_agg_to_agg,
            include = [include_agg_to_agg, collaborators]
        )
    }

    #[aggregator]
    fn test_include_agg_to_agg(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 100, "included agg -> agg");
        assert_eq!(self.exclude_agg_to_agg, 0, "not included agg -> agg");
        assert_eq!(self.collaborators.len(), 4);
        self.include_agg_to_collab = 100;
        self.exclude_agg_to_collab = 78;
        next!(
            self.test_include_agg_to_collab,
            foreach = self.collaborators.clone(),
            include = [include_agg_to_collab, collaborators]
        )
    }

    #[collaborator]
    fn test_include_agg_to_collab(&mut self) -> Next<Self> {
        assert_eq!(
            self.include_agg_to_agg, 0,
            "not in the fan-out's include list"
        );
        assert_eq!(self.exclude_agg_to_agg, 0);
        assert_eq!(self.exclude_agg_to_collab, 0);
        assert_eq!(self.include_agg_to_collab, 100);
        assert_eq!(self.collaborators.len(), 4);
        self.exclude_collab_to_collab = 10;
        self.include_collab_to_collab = 44;
        next!(
            self.test_include_collab_to_collab,
            include = [include_collab_to_collab]
        )
    }

    #[collaborator]
    fn test_include_collab_to_collab(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 0);
        assert_eq!(
            self.include_agg_to_collab, 0,
            "not in collab -> collab include list"
        );
        assert_eq!(self.include_collab_to_collab, 44);
        assert_eq!(self.exclude_agg_to_agg, 0);
        assert_eq!(self.exclude_agg_to_collab, 0);
        assert_eq!(self.exclude_collab_to_collab, 0);
        assert!(self.collaborators.is_empty());
        self.exclude_collab_to_agg = 20;
        self.include_collab_to_agg = 56;
        next!(self.join, include = [include_collab_to_agg])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 100);
        assert_eq!(self.include_agg_to_collab, 100);
        assert_eq!(
            self.exclude_agg_to_collab, 78,
            "the aggregator keeps its whole state"
        );
        assert_eq!(self.exclude_agg_to_agg, 0);
        assert_eq!(self.collaborators.len(), 4);
        for input in &inputs {
            // Only `include_collab_to_agg` travelled into the join.
            let expected = TestFlowInclude {
                include_collab_to_agg: 56,
                ..TestFlowInclude::default()
            };
            assert_eq!(input.state(), &expected, "{}", input.name());
        }
        self.checked_inputs = inputs.len();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn include_on_every_kind_of_transition() -> flspec::Result<()> {
    let log = StepLog::default();
    let runtime =
        LocalRuntime::new(CITIES.iter().take(4).copied(), |_| ()).observer(log.observer());
    for _ in 0..5 {
        let flow = TestFlowInclude::default().run(&runtime)?;
        assert_eq!(flow.checked_inputs, 4);
        assert_eq!(flow.include_agg_to_collab, 100);
        assert_eq!(flow.exclude_agg_to_collab, 78);
        assert_eq!(flow.exclude_agg_to_agg, 0);
    }
    assert_eq!(log.count("test_include_agg_to_collab"), 5 * 4);
    assert_eq!(log.count("test_include_collab_to_collab"), 5 * 4);
    Ok(())
}

#[test]
fn include_in_parallel() -> flspec::Result<()> {
    let runtime = LocalRuntime::new(CITIES.iter().take(4).copied(), |_| ()).parallel(3);
    let flow = TestFlowInclude::default().run(&runtime)?;
    assert_eq!(flow.checked_inputs, 4);
    Ok(())
}

/// `include = []`-like extremes: a transition that carries one field of a struct with many, and
/// a `Default` that is not all zeros.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct IncludeDefaults {
    a: String,
    b: Vec<u8>,
    c: Option<u64>,
    seen: Vec<(String, Vec<u8>, Option<u64>)>,
}

impl Default for IncludeDefaults {
    fn default() -> Self {
        IncludeDefaults {
            a: "default-a".into(),
            b: vec![0xde, 0xfa],
            c: Some(7),
            seen: Vec::new(),
        }
    }
}

#[flow]
impl IncludeDefaults {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.a = "agg".into();
        self.b = vec![1, 2, 3];
        self.c = None;
        next!(self.visit, foreach = ctx.collaborators(), include = [b])
    }

    #[collaborator]
    fn visit(&mut self, ctx: &Ctx) -> Next<Self> {
        self.seen = vec![(self.a.clone(), self.b.clone(), self.c)];
        self.a = ctx.name().to_string();
        self.c = Some(1);
        next!(self.join, include = [seen, a])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        for input in &inputs {
            assert_eq!(input.a, input.name());
            assert_eq!(input.b, vec![0xde, 0xfa], "b is not carried into the join");
            assert_eq!(input.c, Some(7), "c is not carried into the join");
            self.seen.extend(input.seen.iter().cloned());
        }
        next!(self.end, include = [seen])
    }

    #[aggregator]
    fn end(&mut self) {
        assert_eq!(self.a, "default-a", "agg -> agg include resets the rest");
        assert_eq!(self.b, vec![0xde, 0xfa]);
        assert_eq!(self.c, Some(7));
    }
}

#[test]
fn fields_not_included_arrive_with_their_value_in_self_default() -> flspec::Result<()> {
    let runtime = LocalRuntime::new(["x", "y"], |_| ());
    let flow = IncludeDefaults::default().run(&runtime)?;
    let expected = ("default-a".to_string(), vec![1, 2, 3], Some(7));
    assert_eq!(flow.seen, vec![expected.clone(), expected]);
    Ok(())
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check(
        "flows_include",
        &[TestFlowInclude::graph(), IncludeDefaults::graph()],
    );
}
