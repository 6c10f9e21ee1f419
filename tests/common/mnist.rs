//! Set-up shared by the MNIST flows' tests (`byzantine`, `fedavg_mnist`, `fedprox_noniid`,
//! `fedadam_secagg`, `secagg_mnist`): one libtorch thread, so that every run's sums are in the
//! same order; the bundled data loaded once per test binary; a run on the local runtime; and
//! the states a checkpointed SecAgg MNIST run kept and sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use flspec::codec::encode_state;
use flspec::{Flow, Role, Runtime, TransitionId};
use flspec_examples::secagg_mnist::{self, SecAggMnist};
use flspec_tch::datasets::mnist::Mnist;

/// The bundled subset (4,000 training and 1,000 test images), loaded once; the first call also
/// sets libtorch to one thread.
pub fn bundled() -> Arc<Mnist> {
    static DATA: OnceLock<Arc<Mnist>> = OnceLock::new();
    Arc::clone(DATA.get_or_init(|| {
        flspec_tch::threads::set_num_threads(1);
        Arc::new(Mnist::load_bundled().expect("the bundled data loads"))
    }))
}

/// The first `train` training and `test` test images of the bundled subset, cut once per size.
pub fn bundled_first(train: usize, test: usize) -> Arc<Mnist> {
    static CUTS: Mutex<BTreeMap<(usize, usize), Arc<Mnist>>> = Mutex::new(BTreeMap::new());
    let mut cuts = CUTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let data = cuts.entry((train, test)).or_insert_with(|| {
        let all = bundled();
        let first = |n: usize| (0..n).collect::<Vec<_>>();
        Arc::new(Mnist {
            train: all.train.subset(&first(train)).expect("a training subset"),
            test: all.test.subset(&first(test)).expect("a test subset"),
        })
    });
    Arc::clone(data)
}

/// Runs `initial` on `runtime` (both from a `RunOptions`: `local_runtime()`, `initial_state()`),
/// panicking on any error.
pub fn run<F: Flow, R: Runtime<F>>(runtime: anyhow::Result<R>, initial: anyhow::Result<F>) -> F {
    let runtime = runtime.expect("valid options");
    initial
        .expect("the initial model")
        .run(&runtime)
        .expect("the flow runs")
}

/// Runs `initial` on `runtime` (from valid options) and returns the error the run ends with, as
/// text; panics with `why` if the run succeeds.
pub fn run_error<F: Flow, R: Runtime<F>>(
    runtime: anyhow::Result<R>,
    initial: anyhow::Result<F>,
    why: &str,
) -> String {
    let runtime = runtime.expect("valid options");
    initial
        .expect("the initial model")
        .run(&runtime)
        .err()
        .expect(why)
        .to_string()
}

/// One checkpointed state of a SecAgg MNIST run.
pub struct Checkpointed {
    /// Who held the state.
    pub role: Role,
    /// The state as checkpointed, encoded.
    pub state: Vec<u8>,
    /// Where it went next: the role of the next step, and the state filtered by the transition
    /// (what the runtime sends), encoded.
    pub sent: Option<(Role, Vec<u8>)>,
}

/// Every state of a checkpointed run of `options` (in a temporary folder, run id `run_id`).
pub fn secagg_checkpoints(options: &secagg_mnist::RunOptions, run_id: &str) -> Vec<Checkpointed> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = options.clone();
    options.checkpoint = Some(dir.path().to_path_buf());
    let runtime = options.local_runtime().expect("runtime").run_id(run_id);
    options
        .initial_state()
        .expect("model")
        .run(&runtime)
        .expect("run");
    let run = flspec::checkpoint::RunCheckpoints::open(dir.path(), run_id).expect("checkpoints");
    let graph = SecAggMnist::graph();
    run.records()
        .iter()
        .map(|record| {
            let mut state: SecAggMnist = run.load(record).expect("state");
            let encoded = encode_state(&state).expect("encode");
            let sent = record.next.as_ref().map(|next| {
                let t = TransitionId::new(next.transition);
                let to = graph.transition(t).expect("edge").to();
                state.filter_in_place(t);
                (
                    graph.step(to).expect("step").role(),
                    encode_state(&state).expect("encode"),
                )
            });
            Checkpointed {
                role: record.role,
                state: encoded,
                sent,
            }
        })
        .collect()
}
