//! Port of OpenFL's `testflow_reference.py` (and its `_with_include`/`_with_exclude`
//! variants): each collaborator works on its own copy of the state. Mutating a copy changes
//! neither the aggregator's state nor any other collaborator's copy, until the join hands the
//! copies to the aggregator. Checked with heap-allocated fields (`Vec`, `String`, maps), by value
//! and by buffer address.

mod common;

use std::collections::BTreeMap;

use common::CITIES;
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct TestFlowReference {
    agg_attr_int: i64,
    agg_attr_str: String,
    agg_attr_list: Vec<i64>,
    agg_attr_dict: BTreeMap<i64, i64>,
    agg_attr_nested: Vec<Vec<u8>>,
    /// Buffer addresses of the aggregator's heap fields, taken in the aggregator.
    agg_ptrs: Vec<usize>,
    collab_attr_list_one: Vec<i64>,
    collab_attr_list_two: Vec<i64>,
    /// Buffer addresses of this copy's heap fields, taken in the collaborator.
    collab_ptrs: Vec<usize>,
    collab_index: i64,
}

struct Site {
    index: i64,
}

/// The values the aggregator gives its fields: int, string, list, dict, nested list.
type Original = (i64, String, Vec<i64>, BTreeMap<i64, i64>, Vec<Vec<u8>>);

impl TestFlowReference {
    fn heap_ptrs(&self) -> Vec<usize> {
        vec![
            self.agg_attr_str.as_ptr() as usize,
            self.agg_attr_list.as_ptr() as usize,
            self.agg_attr_nested.as_ptr() as usize,
            self.agg_attr_nested[0].as_ptr() as usize,
        ]
    }

    fn original() -> Original {
        (
            10,
            "Test string data".to_string(),
            vec![1, 2, 5, 6, 7, 8],
            (0..5).map(|k| (k, k)).collect(),
            vec![vec![1, 2, 3], vec![4, 5]],
        )
    }
}

#[flow(collaborator = Site)]
impl TestFlowReference {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        next!(self.test_create_agg_attr)
    }

    #[aggregator]
    fn test_create_agg_attr(&mut self, ctx: &Ctx) -> Next<Self> {
        let (i, s, l, d, n) = Self::original();
        self.agg_attr_int = i;
        self.agg_attr_str = s;
        self.agg_attr_list = l;
        self.agg_attr_dict = d;
        self.agg_attr_nested = n;
        self.agg_ptrs = self.heap_ptrs();
        next!(self.test_create_collab_attr, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn test_create_collab_attr(&mut self, ctx: &Ctx, site: &mut Site) -> Next<Self> {
        // The copy arrives equal to the aggregator's state...
        let (i, s, l, d, n) = Self::original();
        assert_eq!(
            (
                self.agg_attr_int,
                &self.agg_attr_str,
                &self.agg_attr_list,
                &self.agg_attr_dict,
                &self.agg_attr_nested
            ),
            (i, &s, &l, &d, &n),
            "{}: no other collaborator's changes may show",
            ctx.name()
        );
        // ...and this collaborator changes it in place.
        self.collab_index = site.index;
        self.agg_attr_int += site.index;
        self.agg_attr_str.push(' ');
        self.agg_attr_str.push_str(ctx.name());
        self.agg_attr_list.push(site.index);
        self.agg_attr_dict.insert(100, site.index);
        self.agg_attr_nested[0].push(site.index as u8);
        self.collab_attr_list_one = vec![1, 2, 5, 6, 7, 8, site.index];
        next!(self.test_create_more_collab_attr)
    }

    #[collaborator]
    fn test_create_more_collab_attr(&mut self, site: &mut Site) -> Next<Self> {
        self.collab_attr_list_two = vec![1, 2, 3, 5, 6, 8, site.index];
        self.agg_attr_list.push(-site.index);
        self.collab_ptrs = self.heap_ptrs();
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        // The aggregator's own state is intact: no collaborator's change reached it.
        let (i, s, l, d, n) = Self::original();
        assert_eq!(self.agg_attr_int, i);
        assert_eq!(self.agg_attr_str, s);
        assert_eq!(self.agg_attr_list, l);
        assert_eq!(self.agg_attr_dict, d);
        assert_eq!(self.agg_attr_nested, n);
        assert!(self.collab_attr_list_one.is_empty());
        // Its buffers are the very ones it had (OpenFL: `id()` unchanged).
        assert_eq!(self.heap_ptrs(), self.agg_ptrs);
        // Each input holds exactly its own collaborator's changes.
        for input in &inputs {
            let k = input.collab_index;
            assert_eq!(input.agg_attr_int, i + k);
            assert_eq!(input.agg_attr_str, format!("{s} {}", input.name()));
            let mut list = l.clone();
            list.extend([k, -k]);
            assert_eq!(input.agg_attr_list, list);
            assert_eq!(input.agg_attr_dict.get(&100), Some(&k));
            assert_eq!(input.agg_attr_dict.len(), 6);
            assert_eq!(input.agg_attr_nested[0], vec![1, 2, 3, k as u8]);
            assert_eq!(input.collab_attr_list_one.last(), Some(&k));
            assert_eq!(input.collab_attr_list_two.last(), Some(&k));
            // No buffer is shared with the aggregator...
            for p in &input.collab_ptrs {
                assert!(
                    !self.agg_ptrs.contains(p),
                    "{} shares a buffer with the aggregator",
                    input.name()
                );
            }
        }
        // ...nor between collaborators (all inputs are alive here, so addresses are unique).
        let mut all: Vec<usize> = inputs.iter().flat_map(|i| i.heap_ptrs()).collect();
        let total = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), total, "two collaborators share a buffer");
        let indices: Vec<i64> = inputs.iter().map(|i| i.collab_index).collect();
        let expected: Vec<i64> = (1..=inputs.len() as i64).collect();
        assert_eq!(indices, expected);
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn runtime() -> LocalRuntime<Site> {
    LocalRuntime::new(CITIES.iter().take(4).copied(), |name| Site {
        index: CITIES
            .iter()
            .position(|c| *c == name)
            .map_or(0, |i| i as i64 + 1),
    })
}

#[test]
fn each_collaborator_works_on_its_own_copy() -> flspec::Result<()> {
    // OpenFL runs it twice.
    for _ in 0..2 {
        TestFlowReference::default().run(&runtime())?;
    }
    Ok(())
}

#[test]
fn each_collaborator_works_on_its_own_copy_in_parallel() -> flspec::Result<()> {
    TestFlowReference::default().run(&runtime().parallel(4))?;
    TestFlowReference::default().run(&runtime().parallel(2))?;
    Ok(())
}

/// The `_with_include`/`_with_exclude` variants: filters on the fan-out and into the join do
/// not make copies share anything either.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct ReferenceWithFilters {
    shared: Vec<u32>,
    hidden: Vec<u32>,
    out: Vec<u32>,
    ptr: usize,
    agg_ptr: usize,
}

#[flow]
impl ReferenceWithFilters {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.shared = vec![1, 2, 3];
        self.hidden = vec![9, 9];
        self.agg_ptr = self.shared.as_ptr() as usize;
        next!(
            self.first,
            foreach = ctx.collaborators(),
            include = [shared]
        )
    }

    #[collaborator]
    fn first(&mut self, ctx: &Ctx) -> Next<Self> {
        assert_eq!(self.shared, vec![1, 2, 3], "{}", ctx.name());
        assert!(self.hidden.is_empty());
        self.shared.push(ctx.name().len() as u32);
        self.hidden.push(7);
        next!(self.second, exclude = [hidden])
    }

    #[collaborator]
    fn second(&mut self, ctx: &Ctx) -> Next<Self> {
        assert!(self.hidden.is_empty());
        self.out = self.shared.clone();
        self.ptr = self.shared.as_ptr() as usize;
        assert_ne!(self.ptr, self.agg_ptr, "{}", ctx.name());
        next!(self.join, exclude = [shared])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        assert_eq!(self.shared, vec![1, 2, 3]);
        assert_eq!(self.hidden, vec![9, 9]);
        assert_eq!(self.shared.as_ptr() as usize, self.agg_ptr);
        for input in &inputs {
            assert!(input.shared.is_empty());
            assert_eq!(input.out, vec![1, 2, 3, input.name().len() as u32]);
        }
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn copies_stay_independent_with_include_and_exclude() -> flspec::Result<()> {
    let names = ["a", "bb", "ccc", "dddd", "eeeee"];
    ReferenceWithFilters::default().run(&LocalRuntime::new(names, |_| ()))?;
    ReferenceWithFilters::default().run(&LocalRuntime::new(names, |_| ()).parallel(3))?;
    Ok(())
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check(
        "flows_reference",
        &[TestFlowReference::graph(), ReferenceWithFilters::graph()],
    );
}
