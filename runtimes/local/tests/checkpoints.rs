//! Checkpoints of the local runtime: one journal entry and one state file per step and
//! participant (plus the initial state), runs listed and loaded back, and the errors of a bad
//! checkpoint set-up.

use std::sync::{Arc, Mutex};

use flspec::checkpoint::{RecordKind, RunCheckpoints};
use flspec::prelude::*;
use flspec::{Error, Event};
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Journaled {
    rounds: u32,
    round: u32,
    model: Vec<i64>,
    update: i64,
    validated: bool,
    totals: Vec<i64>,
}

/// A collaborator's private state.
struct Site {
    weight: i64,
}

#[flow(collaborator = Site)]
impl Journaled {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.model = vec![1, 2, 3];
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Next<Self> {
        self.update = self.model.iter().sum::<i64>() * site.weight;
        next!(self.validate)
    }

    #[collaborator]
    fn validate(&mut self) -> Next<Self> {
        self.validated = true;
        next!(self.join, include = [update, validated])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        assert!(inputs.iter().all(|i| i.validated));
        let total: i64 = inputs.iter().map(|i| i.update).sum();
        self.totals.push(total);
        self.model.iter_mut().for_each(|w| *w += total);
        self.round += 1;
        if self.round < self.rounds {
            next!(self.train, foreach = inputs.names())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

const SITES: [&str; 3] = ["Portland", "Seattle", "Chandler"];

fn runtime() -> LocalRuntime<Site> {
    LocalRuntime::new(SITES, |name: &str| Site {
        weight: name.len() as i64,
    })
}

fn initial() -> Journaled {
    Journaled {
        rounds: 2,
        ..Default::default()
    }
}

#[test]
fn one_record_per_step_per_participant() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let finished = Arc::new(Mutex::new(0usize));
    let counter = finished.clone();
    let runtime = runtime()
        .checkpoint_dir(dir.path())
        .run_id("journal-count")
        .observer(move |e: &Event<'_>| {
            if matches!(e, Event::StepFinished { .. }) {
                *counter.lock().expect("lock") += 1;
            }
        });
    let flow = initial().run(&runtime)?;
    let run = RunCheckpoints::open(dir.path(), "journal-count")?;
    let records = run.records();
    // 1 initial state + aggregator: start, join x2, end + per collaborator and round: train,
    // validate.
    assert_eq!(records.len(), 1 + 4 + SITES.len() * 2 * 2);
    assert_eq!(records.len(), 1 + *finished.lock().expect("lock"));
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.file, format!("{i:08}.state"));
        assert!(run.folder().join(&r.file).is_file());
    }
    assert_eq!(records[0].kind, RecordKind::Initial);
    assert!(records[1..].iter().all(|r| r.kind == RecordKind::Step));
    let count = |step: &str, who: &str| {
        records
            .iter()
            .filter(|r| r.kind == RecordKind::Step && r.step == step && r.participant == who)
            .count()
    };
    assert_eq!(count("start", "aggregator"), 1);
    assert_eq!(count("join", "aggregator"), 2);
    assert_eq!(count("end", "aggregator"), 1);
    for site in SITES {
        assert_eq!(count("train", site), 2, "{site}");
        assert_eq!(count("validate", site), 2, "{site}");
        assert!(
            records
                .iter()
                .filter(|r| r.participant == site)
                .all(|r| r.role == Role::Collaborator)
        );
    }
    // The transitions are recorded: a fan-out to every collaborator as such (no copy of the
    // names), `end` with none.
    let start = &records[1];
    assert_eq!(start.step, "start");
    let next = start.next.as_ref().expect("start has a transition");
    assert_eq!(next.step, "train");
    assert!(next.roster && next.foreach.is_none(), "{next:?}");
    // A list the step built (`inputs.names()`) is recorded name by name.
    let join = records
        .iter()
        .find(|r| r.step == "join")
        .and_then(|r| r.next.as_ref())
        .expect("the first join fans out again");
    assert_eq!(join.foreach.as_deref(), Some(&SITES.map(String::from)[..]));
    assert!(!join.roster);
    assert!(records.last().expect("a record").next.is_none());
    // Nothing else in the run folder.
    let mut files: Vec<String> = std::fs::read_dir(run.folder())
        .expect("read the run folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut expected: Vec<String> = records.iter().map(|r| r.file.clone()).collect();
    expected.extend(["journal.jsonl".to_string(), "run.json".to_string()]);
    expected.sort();
    assert_eq!(files, expected);
    assert!(run.is_finished());
    assert_eq!(run.last_state::<Journaled>()?, flow);
    Ok(())
}

#[test]
fn list_runs_and_load_states() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for id in ["run-b", "run-a"] {
        initial().run(&runtime().checkpoint_dir(dir.path()).run_id(id))?;
    }
    let unnamed = runtime().checkpoint_dir(dir.path());
    let flow = initial().run(&unnamed)?;
    let id = unnamed.last_run_id().expect("a run id");
    let mut expected = vec!["run-a".to_string(), "run-b".to_string(), id.clone()];
    expected.sort();
    assert_eq!(RunCheckpoints::list(dir.path())?, expected);

    let run = RunCheckpoints::open(dir.path(), &id)?;
    assert_eq!(run.header().flow, "Journaled");
    assert_eq!(run.header().run_id, id);
    assert_eq!(run.header().collaborators, SITES);
    assert_eq!(run.header().fingerprint, Journaled::graph().fingerprint());
    run.check_flow::<Journaled>()?;
    let records = run.records();
    // The initial state, as given.
    assert_eq!(run.load::<Journaled>(&records[0])?, initial());
    // The state after `start` on the aggregator.
    let after_start: Journaled = run.load(&records[1])?;
    assert_eq!(after_start.model, vec![1, 2, 3]);
    // A collaborator's state after its step (before the transition's filter).
    let first_join = records
        .iter()
        .find(|r| r.step == "join")
        .map(|r| r.seq)
        .expect("a join record");
    for r in records.iter().filter(|r| r.step == "train") {
        let s: Journaled = run.load(r)?;
        let weight = r.participant.len() as i64;
        let model_sum = if r.seq < first_join {
            6
        } else {
            6 + 3 * flow.totals[0]
        };
        assert_eq!(s.update, model_sum * weight, "{r:?}");
        assert!(!s.validated);
        assert_eq!(
            s.model.len(),
            3,
            "the collaborator's own state is stored whole"
        );
    }
    for r in records.iter().filter(|r| r.step == "validate") {
        let s: Journaled = run.load(r)?;
        assert!(s.validated);
    }
    // After each join, the aggregator's state.
    let joins: Vec<Journaled> = records
        .iter()
        .filter(|r| r.step == "join")
        .map(|r| run.load(r))
        .collect::<flspec::Result<_>>()?;
    assert_eq!(joins.len(), 2);
    assert_eq!(joins[0].totals, flow.totals[..1]);
    assert_eq!(joins[1].totals, flow.totals);
    assert_eq!(run.last_state::<Journaled>()?, flow);
    Ok(())
}

#[test]
fn runs_of_one_runtime_get_distinct_ids() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let runtime = runtime().checkpoint_dir(dir.path());
    let mut ids = Vec::new();
    for _ in 0..3 {
        initial().run(&runtime)?;
        ids.push(runtime.last_run_id().expect("an id"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(RunCheckpoints::list(dir.path())?, ids);
    Ok(())
}

#[test]
fn checkpoint_set_up_errors() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    // A run id used twice: the second run must not overwrite the first.
    let rt = runtime().checkpoint_dir(dir.path()).run_id("twice");
    initial().run(&rt).expect("the first run");
    let before = std::fs::read(dir.path().join("twice/journal.jsonl")).expect("journal");
    assert!(matches!(initial().run(&rt), Err(Error::Checkpoint { .. })));
    let after = std::fs::read(dir.path().join("twice/journal.jsonl")).expect("journal");
    assert_eq!(before, after);
    // A run id that is not a plain name.
    for bad in ["../escape", "a/b", ".hidden", ""] {
        let rt = runtime().checkpoint_dir(dir.path()).run_id(bad);
        assert!(
            matches!(initial().run(&rt), Err(Error::CheckpointFormat { .. })),
            "{bad:?}"
        );
    }
    assert!(
        !dir.path()
            .parent()
            .expect("a parent")
            .join("escape")
            .exists()
    );
    // Resume needs checkpointing on, an existing run, and the same flow.
    assert!(matches!(
        runtime().resume::<Journaled>("twice"),
        Err(Error::CheckpointFormat { .. })
    ));
    assert!(matches!(
        runtime()
            .checkpoint_dir(dir.path())
            .resume::<Journaled>("missing"),
        Err(Error::Checkpoint { .. })
    ));
    #[derive(Clone, Default, Serialize, Deserialize)]
    struct Other {}
    #[flow(collaborator = Site)]
    impl Other {
        #[aggregator]
        fn start(&mut self) -> Next<Self> {
            next!(self.end)
        }
        #[aggregator]
        fn end(&mut self) {}
    }
    match runtime()
        .checkpoint_dir(dir.path())
        .resume::<Other>("twice")
    {
        Err(Error::CheckpointFormat { reason, .. }) => {
            assert!(
                reason.contains("Journaled") && reason.contains("Other"),
                "{reason}"
            );
        }
        other => panic!("expected CheckpointFormat, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn resuming_a_finished_run_returns_its_final_state() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let steps = Arc::new(Mutex::new(0usize));
    let counter = steps.clone();
    let rt = runtime()
        .checkpoint_dir(dir.path())
        .run_id("done")
        .observer(move |e: &Event<'_>| {
            if matches!(e, Event::StepStarted { .. }) {
                *counter.lock().expect("lock") += 1;
            }
        });
    let flow = initial().run(&rt)?;
    let ran = *steps.lock().expect("lock");
    let len = RunCheckpoints::open(dir.path(), "done")?.records().len();
    let again = rt.resume::<Journaled>("done")?;
    assert_eq!(again, flow);
    assert_eq!(*steps.lock().expect("lock"), ran, "no step runs again");
    assert_eq!(
        RunCheckpoints::open(dir.path(), "done")?.records().len(),
        len
    );
    Ok(())
}
