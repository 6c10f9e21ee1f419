//! Port of OpenFL's `testflow_include_exclude.py`: `exclude` and `include` on different
//! transitions of one flow (exclude agg -> agg, include on the fan-out, exclude collab ->
//! collab, include into the join).

mod common;

use common::{CITIES, StepLog};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct TestFlowIncludeExclude {
    collaborators: Vec<String>,
    exclude_agg_to_agg: u32,
    include_agg_to_agg: u32,
    exclude_agg_to_collab: u32,
    include_agg_to_collab: u32,
    exclude_collab_to_collab: u32,
    include_collab_to_collab: u32,
    exclude_collab_to_agg: u32,
    include_collab_to_agg: u32,
    checked_inputs: Vec<String>,
}

#[flow]
impl TestFlowIncludeExclude {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.collaborators = ctx.collaborators().to_vec();
        self.exclude_agg_to_agg = 10;
        self.include_agg_to_agg = 100;
        next!(
            self.test_include_exclude_agg_to_agg,
            exclude = [exclude_agg_to_agg]
        )
    }

    #[aggregator]
    fn test_include_exclude_agg_to_agg(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 100);
        assert_eq!(self.exclude_agg_to_agg, 0);
        self.include_agg_to_collab = 100;
        self.exclude_agg_to_collab = 78;
        next!(
            self.test_include_exclude_agg_to_collab,
            foreach = self.collaborators.clone(),
            include = [include_agg_to_collab, collaborators]
        )
    }

    #[collaborator]
    fn test_include_exclude_agg_to_collab(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 0);
        assert_eq!(self.exclude_agg_to_agg, 0);
        assert_eq!(self.exclude_agg_to_collab, 0);
        assert_eq!(self.include_agg_to_collab, 100);
        self.exclude_collab_to_collab = 10;
        self.include_collab_to_collab = 44;
        next!(
            self.test_include_exclude_collab_to_collab,
            exclude = [exclude_collab_to_collab]
        )
    }

    #[collaborator]
    fn test_include_exclude_collab_to_collab(&mut self) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 0);
        assert_eq!(
            self.include_agg_to_collab, 100,
            "kept by the exclude transition"
        );
        assert_eq!(self.include_collab_to_collab, 44);
        assert_eq!(self.exclude_agg_to_agg, 0);
        assert_eq!(self.exclude_agg_to_collab, 0);
        assert_eq!(self.exclude_collab_to_collab, 0);
        assert_eq!(self.collaborators.len(), 4);
        self.exclude_collab_to_agg = 20;
        self.include_collab_to_agg = 56;
        next!(self.join, include = [include_collab_to_agg])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        assert_eq!(self.include_agg_to_agg, 100);
        assert_eq!(self.include_agg_to_collab, 100);
        assert_eq!(self.exclude_agg_to_collab, 78);
        assert_eq!(self.exclude_agg_to_agg, 0);
        for input in &inputs {
            assert_eq!(input.include_collab_to_collab, 0);
            assert_eq!(input.exclude_collab_to_collab, 0);
            assert_eq!(input.exclude_collab_to_agg, 0);
            assert_eq!(input.include_collab_to_agg, 56);
            assert_eq!(input.include_agg_to_collab, 0);
            assert!(input.collaborators.is_empty());
        }
        self.checked_inputs = inputs.names().map(str::to_string).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn include_and_exclude_on_different_transitions() -> flspec::Result<()> {
    let log = StepLog::default();
    let cities: Vec<&str> = CITIES.iter().take(4).copied().collect();
    let runtime = LocalRuntime::new(cities.clone(), |_| ()).observer(log.observer());
    for _ in 0..5 {
        let flow = TestFlowIncludeExclude::default().run(&runtime)?;
        assert_eq!(flow.checked_inputs, cities);
    }
    assert_eq!(log.count("test_include_exclude_collab_to_collab"), 5 * 4);
    Ok(())
}

#[test]
fn include_and_exclude_in_parallel() -> flspec::Result<()> {
    let cities: Vec<&str> = CITIES.iter().take(4).copied().collect();
    let runtime = LocalRuntime::new(cities.clone(), |_| ()).parallel(4);
    let flow = TestFlowIncludeExclude::default().run(&runtime)?;
    assert_eq!(flow.checked_inputs, cities);
    Ok(())
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check("flows_include_exclude", &[TestFlowIncludeExclude::graph()]);
}
