//! Port of OpenFL's `testflow_privateattributes.py`: the private state of each role stays with
//! its role. The type system does most of it (a collaborator step cannot name the aggregator's
//! private state, and private state is not part of the flow state); these tests check what
//! happens at run time:
//! - a collaborator's private state persists across the rounds of one run, on its own site, and
//!   is distinct per collaborator;
//! - the aggregator's private state is reached only by aggregator steps, and each collaborator's
//!   only by that collaborator's steps;
//! - checkpoints never contain anything stored in private state.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{CITIES, StepLog};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

/// Bytes that only private state holds; no checkpoint file may contain them.
const COLLAB_MARKER: &str = "COLLAB-PRIVATE-MARKER-5b1f0c";
const AGG_MARKER: &str = "AGGREGATOR-PRIVATE-MARKER-9e77d2";
/// Bytes the flow state holds: the positive control of the checkpoint scan.
const PUBLIC_MARKER: &str = "PUBLIC-FLOW-STATE-MARKER-41aa";

/// Who touched a private state: `(step, participant)`.
type AccessLog = Arc<Mutex<Vec<(String, String)>>>;

/// A collaborator's private state (OpenFL: `train_loader`, `test_loader`).
struct Site {
    name: String,
    train_loader: Vec<f32>,
    test_loader: Vec<f32>,
    secret: String,
    /// How many rounds this site has trained in this run.
    rounds_trained: u32,
    accesses: AccessLog,
}

/// The aggregator's private state (OpenFL: its `test_loader`).
struct Server {
    test_loader: Vec<f32>,
    secret: String,
    accesses: AccessLog,
}

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct TestFlowPrivateAttributes {
    rounds: u32,
    round: u32,
    public: String,
    include_agg_to_collab: u32,
    exclude_agg_to_collab: u32,
    /// Set by a collaborator from its private state.
    site_name: String,
    loader_len: usize,
    rounds_trained: u32,
    /// Per round, per collaborator (in fan-out order): `(name, rounds_trained, loader_len)`.
    table: Vec<Vec<(String, u32, usize)>>,
    server_loader_len: usize,
}

#[flow(collaborator = Site, aggregator = Server)]
impl TestFlowPrivateAttributes {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, server: &mut Server) -> Next<Self> {
        touch(&server.accesses, "start", ctx);
        assert_eq!(server.test_loader.len(), 10 * 28);
        self.public = PUBLIC_MARKER.to_string();
        next!(self.aggregator_step)
    }

    #[aggregator]
    fn aggregator_step(&mut self, ctx: &Ctx, server: &mut Server) -> Next<Self> {
        touch(&server.accesses, "aggregator_step", ctx);
        self.server_loader_len = server.test_loader.len();
        self.include_agg_to_collab = 42;
        self.exclude_agg_to_collab = 40;
        next!(
            self.collaborator_step_a,
            foreach = ctx.collaborators(),
            exclude = [exclude_agg_to_collab]
        )
    }

    #[collaborator]
    fn collaborator_step_a(&mut self, ctx: &Ctx, site: &mut Site) -> Next<Self> {
        touch(&site.accesses, "collaborator_step_a", ctx);
        assert_eq!(
            site.name,
            ctx.name(),
            "each collaborator gets its own private state"
        );
        assert!(!site.train_loader.is_empty() && !site.test_loader.is_empty());
        assert!(site.secret.starts_with(COLLAB_MARKER));
        assert_eq!(self.exclude_agg_to_collab, 0);
        site.rounds_trained += 1;
        next!(self.collaborator_step_b)
    }

    #[collaborator]
    fn collaborator_step_b(&mut self, ctx: &Ctx, site: &mut Site) -> Next<Self> {
        touch(&site.accesses, "collaborator_step_b", ctx);
        assert_eq!(site.name, ctx.name());
        self.site_name = site.name.clone();
        self.loader_len = site.train_loader.len();
        self.rounds_trained = site.rounds_trained;
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>, server: &mut Server) -> Next<Self> {
        touch(&server.accesses, "join", ctx);
        self.table.push(
            inputs
                .iter()
                .map(|i| (i.site_name.clone(), i.rounds_trained, i.loader_len))
                .collect(),
        );
        self.round += 1;
        if self.round < self.rounds {
            next!(self.aggregator_step)
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self, ctx: &Ctx, server: &mut Server) {
        touch(&server.accesses, "end", ctx);
        assert!(server.secret.starts_with(AGG_MARKER));
    }
}

fn touch(log: &AccessLog, step: &str, ctx: &Ctx) {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((step.to_string(), ctx.name().to_string()));
}

struct Setup {
    runtime: LocalRuntime<Site, Server>,
    collab_accesses: AccessLog,
    agg_accesses: AccessLog,
    factory_calls: Arc<AtomicUsize>,
}

fn setup(names: &[&str]) -> Setup {
    let collab_accesses = AccessLog::default();
    let agg_accesses = AccessLog::default();
    let factory_calls = Arc::new(AtomicUsize::new(0));
    let (c, a, f) = (
        collab_accesses.clone(),
        agg_accesses.clone(),
        factory_calls.clone(),
    );
    let order: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let runtime = LocalRuntime::new(names.to_vec(), move |name: &str| {
        f.fetch_add(1, Ordering::SeqCst);
        let idx = order.iter().position(|n| n == name).unwrap_or(0) + 1;
        Site {
            name: name.to_string(),
            train_loader: vec![0.5; idx * 50],
            test_loader: vec![0.25; idx * 10],
            secret: format!("{COLLAB_MARKER}-{name}"),
            rounds_trained: 0,
            accesses: c.clone(),
        }
    })
    .with_aggregator(move || Server {
        test_loader: vec![1.0; 10 * 28],
        secret: format!("{AGG_MARKER}-server"),
        accesses: a.clone(),
    });
    Setup {
        runtime,
        collab_accesses,
        agg_accesses,
        factory_calls,
    }
}

fn entries(log: &AccessLog) -> Vec<(String, String)> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn check_private_state_run(names: &[&str], workers: usize) -> flspec::Result<()> {
    let s = setup(names);
    let runtime = s.runtime.parallel(workers);
    let flow = TestFlowPrivateAttributes {
        rounds: 3,
        ..Default::default()
    }
    .run(&runtime)?;
    // Private state persists across rounds on its own site and is distinct per collaborator.
    assert_eq!(flow.table.len(), 3);
    for (round, row) in flow.table.iter().enumerate() {
        let expected: Vec<(String, u32, usize)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), round as u32 + 1, (i + 1) * 50))
            .collect();
        assert_eq!(row, &expected, "round {round}");
    }
    // Built once per collaborator per run, not once per round.
    assert_eq!(s.factory_calls.load(Ordering::SeqCst), names.len());
    // The aggregator's private state was reached only by aggregator steps...
    let agg = entries(&s.agg_accesses);
    assert!(agg.iter().all(|(_, who)| who == "aggregator"), "{agg:?}");
    let agg_steps: Vec<&str> = agg.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        agg_steps,
        [
            "start",
            "aggregator_step",
            "join",
            "aggregator_step",
            "join",
            "aggregator_step",
            "join",
            "end"
        ]
    );
    // ...and the collaborators' only by collaborator steps, each on its own site.
    let collab = entries(&s.collab_accesses);
    assert_eq!(collab.len(), 3 * 2 * names.len());
    assert!(
        collab
            .iter()
            .all(|(step, who)| step.starts_with("collaborator_step")
                && names.contains(&who.as_str()))
    );
    assert_eq!(flow.server_loader_len, 10 * 28);
    Ok(())
}

#[test]
fn private_state_persists_per_collaborator_across_rounds() -> flspec::Result<()> {
    check_private_state_run(&CITIES, 1)
}

#[test]
fn private_state_persists_per_collaborator_across_rounds_in_parallel() -> flspec::Result<()> {
    check_private_state_run(&CITIES, 3)
}

#[test]
fn each_run_builds_private_state_afresh() -> flspec::Result<()> {
    let s = setup(&CITIES[..3]);
    for _ in 0..2 {
        let flow = TestFlowPrivateAttributes {
            rounds: 2,
            ..Default::default()
        }
        .run(&s.runtime)?;
        // Rounds trained restart at 1 in the second run: a new run, new private state.
        let trained: Vec<u32> = flow.table[0].iter().map(|r| r.1).collect();
        assert_eq!(trained, vec![1, 1, 1]);
    }
    assert_eq!(s.factory_calls.load(Ordering::SeqCst), 2 * 3);
    Ok(())
}

/// Every byte of every file under `dir`, with its path.
fn all_files(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read the checkpoint folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            let bytes = std::fs::read(&path).expect("read a checkpoint file");
            out.push((path, bytes));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn checkpoints_never_contain_private_state() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = setup(&CITIES[..4]);
    let log = StepLog::default();
    let runtime = s
        .runtime
        .checkpoint_dir(dir.path())
        .run_id("private-scan")
        .parallel(2)
        .observer(log.observer());
    let flow = TestFlowPrivateAttributes {
        rounds: 2,
        ..Default::default()
    }
    .run(&runtime)?;
    assert_eq!(flow.round, 2);
    let mut files = Vec::new();
    all_files(dir.path(), &mut files);
    // run.json, journal.jsonl and one state per step and participant (plus the initial state).
    assert_eq!(files.len(), 2 + 1 + log.entries().len(), "{files:?}");
    let mut public_seen = 0;
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, COLLAB_MARKER),
            "{} holds collaborator private state",
            path.display()
        );
        assert!(
            !contains(bytes, AGG_MARKER),
            "{} holds aggregator private state",
            path.display()
        );
        // Nor the private loaders' contents (0.5f32 repeated) in any recognisable run.
        let half = 0.5f32.to_le_bytes().repeat(50);
        assert!(
            !bytes.windows(half.len()).any(|w| w == half),
            "{}",
            path.display()
        );
        if contains(bytes, PUBLIC_MARKER) {
            public_seen += 1;
        }
    }
    // Positive control: the scan does find what the flow state holds.
    assert!(
        public_seen > 0,
        "the scan must see flow state in the state files"
    );
    Ok(())
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check("flows_private", &[TestFlowPrivateAttributes::graph()]);
}
