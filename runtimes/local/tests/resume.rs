//! Resuming a checkpointed run after a crash: a collaborator's step panics halfway through
//! round 2 of 3, or the aggregator's join panics; after the fault is gone, `resume` finishes
//! the run with the same final state as an uninterrupted run, runs again only what had not
//! been checkpointed, and keeps every record the crashed run wrote.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use flspec::checkpoint::{Record, RunCheckpoints};
use flspec::prelude::*;
use flspec::{Error, Event, ParticipantName};
use flspec_local::LocalRuntime;

const SITES: [&str; 4] = ["A", "B", "C", "D"];

/// A collaborator's private state: derived from its name only, so a resumed run (which builds
/// private state afresh) computes the same as an uninterrupted one.
struct Site {
    seed: f64,
}

fn site(name: &str) -> Site {
    Site {
        seed: name.bytes().map(f64::from).sum::<f64>() / 100.0,
    }
}

/// Defines a three-round training flow whose steps panic where the given switches say.
macro_rules! training_flow {
    ($name:ident, $train_armed:ident, $train_victim:ident, $join_armed:ident) => {
        static $train_armed: AtomicBool = AtomicBool::new(false);
        static $train_victim: Mutex<&'static str> = Mutex::new("C");
        static $join_armed: AtomicBool = AtomicBool::new(false);

        #[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
        struct $name {
            rounds: u32,
            round: u32,
            model: Vec<f64>,
            update: Vec<f64>,
            losses: Vec<f64>,
            history: Vec<Vec<String>>,
        }

        #[flow(collaborator = Site)]
        impl $name {
            #[aggregator]
            fn start(&mut self, ctx: &Ctx) -> Next<Self> {
                self.model = vec![0.5; 8];
                next!(
                    self.train,
                    foreach = ctx.collaborators(),
                    exclude = [history]
                )
            }

            #[collaborator]
            fn train(&mut self, ctx: &Ctx, site: &mut Site) -> Next<Self> {
                let victim = *$train_victim.lock().unwrap_or_else(|e| e.into_inner());
                // Round 2 of 3 (round index 1), halfway through the collaborators.
                if self.round == 1 && ctx.name() == victim && $train_armed.load(Ordering::SeqCst) {
                    panic!("injected crash in train on {}", ctx.name());
                }
                self.update = self
                    .model
                    .iter()
                    .enumerate()
                    .map(|(i, w)| w * 0.9 + site.seed * (i as f64 + 1.0) + f64::from(self.round))
                    .collect();
                next!(self.evaluate)
            }

            #[collaborator]
            fn evaluate(&mut self, site: &mut Site) -> Next<Self> {
                let loss = self.update.iter().sum::<f64>() * site.seed;
                self.losses = vec![loss];
                next!(self.join, include = [update, losses])
            }

            #[aggregator]
            fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
                self.round += 1;
                if self.round == 2 && $join_armed.load(Ordering::SeqCst) {
                    panic!("injected crash in join");
                }
                let n = inputs.len() as f64;
                for (i, w) in self.model.iter_mut().enumerate() {
                    *w = inputs.iter().map(|x| x.update[i]).sum::<f64>() / n;
                }
                self.losses.extend(inputs.iter().map(|x| x.losses[0]));
                self.history
                    .push(inputs.names().map(str::to_string).collect());
                if self.round < self.rounds {
                    next!(self.train, foreach = inputs.names(), exclude = [history])
                } else {
                    next!(self.end)
                }
            }

            #[aggregator]
            fn end(&mut self) {}
        }

        impl $name {
            fn initial() -> Self {
                $name {
                    rounds: 3,
                    ..Default::default()
                }
            }
        }
    };
}

/// What a run reported: steps started (step, participant) and `Resumed` events.
#[derive(Clone, Default)]
struct Seen {
    steps: Arc<Mutex<Vec<(String, String)>>>,
    resumed: Arc<Mutex<Vec<(String, usize)>>>,
}

impl Seen {
    fn runtime(&self, dir: &Path, id: &str, workers: usize) -> LocalRuntime<Site> {
        let (steps, resumed) = (self.steps.clone(), self.resumed.clone());
        LocalRuntime::new(SITES, site)
            .checkpoint_dir(dir)
            .run_id(id)
            .parallel(workers)
            .observer(move |e: &Event<'_>| match e {
                Event::StepStarted {
                    step, participant, ..
                } => steps
                    .lock()
                    .expect("lock")
                    .push((step.to_string(), participant.to_string())),
                Event::Resumed {
                    after_step,
                    recovered,
                } => resumed
                    .lock()
                    .expect("lock")
                    .push((after_step.to_string(), *recovered)),
                _ => {}
            })
    }

    fn take_steps(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.steps.lock().expect("lock"))
    }

    fn resumed(&self) -> Vec<(String, usize)> {
        self.resumed.lock().expect("lock").clone()
    }
}

/// The journal and the bytes of every state file it names.
fn snapshot(dir: &Path, id: &str) -> (Vec<Record>, Vec<Vec<u8>>) {
    let run = RunCheckpoints::open(dir, id).expect("open the run");
    let bytes = run
        .records()
        .iter()
        .map(|r| std::fs::read(run.folder().join(&r.file)).expect("a state file"))
        .collect();
    (run.records().to_vec(), bytes)
}

/// Everything checkpointed before is still there, unchanged, at the head of the journal.
fn assert_kept(before: &(Vec<Record>, Vec<Vec<u8>>), after: &(Vec<Record>, Vec<Vec<u8>>)) {
    assert!(after.0.len() > before.0.len());
    assert_eq!(after.0[..before.0.len()], before.0[..]);
    assert_eq!(after.1[..before.1.len()], before.1[..]);
    for (i, r) in after.0.iter().enumerate() {
        assert_eq!(
            r.seq, i as u64,
            "sequence numbers go on from the crashed run"
        );
    }
}

training_flow!(CollabCrash, COLLAB_ARMED, COLLAB_VICTIM, COLLAB_JOIN_ARMED);

#[test]
fn resume_after_a_collaborator_panics_in_round_2_of_3() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let seen = Seen::default();
    let expected = CollabCrash::initial().run(&seen.runtime(dir.path(), "clean", 1))?;
    assert_eq!(expected.round, 3);
    seen.take_steps();

    COLLAB_ARMED.store(true, Ordering::SeqCst);
    let rt = seen.runtime(dir.path(), "crashed", 1);
    let err = CollabCrash::initial()
        .run(&rt)
        .expect_err("the armed step must crash the run");
    match &err {
        Error::StepPanicked {
            step, participant, ..
        } => {
            assert_eq!(*step, "train");
            assert_eq!(participant, &ParticipantName::Collaborator("C".into()));
        }
        other => panic!("expected StepPanicked, got {other:?}"),
    }
    assert_eq!(rt.last_run_id().as_deref(), Some("crashed"));
    let crashed_steps = seen.take_steps();
    // Round 2 ran A and B to the join and crashed on C; D never started.
    let round2: Vec<(String, String)> = crashed_steps[crashed_steps
        .iter()
        .position(|(s, _)| s == "join")
        .expect("a first join")
        + 1..]
        .to_vec();
    let as_pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        round2,
        as_pairs(&[
            ("train", "A"),
            ("evaluate", "A"),
            ("train", "B"),
            ("evaluate", "B"),
            ("train", "C")
        ])
    );
    let before = snapshot(dir.path(), "crashed");
    let run = RunCheckpoints::open(dir.path(), "crashed")?;
    assert!(!run.is_finished());

    COLLAB_ARMED.store(false, Ordering::SeqCst);
    let resumed = rt.resume::<CollabCrash>("crashed")?;
    assert_eq!(
        resumed, expected,
        "the resumed run ends as the uninterrupted one"
    );
    // It resumed after the first join and recovered A and B, which do not run round 2 again.
    assert_eq!(seen.resumed(), vec![("join".to_string(), 2)]);
    let steps = seen.take_steps();
    let trains: Vec<&str> = steps
        .iter()
        .filter(|(s, _)| s == "train")
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(trains, ["C", "D", "A", "B", "C", "D"]);
    assert_eq!(steps.first().map(|(s, _)| s.as_str()), Some("train"));
    assert_eq!(steps.last().map(|(s, _)| s.as_str()), Some("end"));
    let after = snapshot(dir.path(), "crashed");
    assert_kept(&before, &after);
    // The resumed journal holds, per step and participant, as many records as the clean one.
    let clean = snapshot(dir.path(), "clean");
    let mut a: Vec<(String, String)> = after
        .0
        .iter()
        .map(|r| (r.step.clone(), r.participant.clone()))
        .collect();
    let mut c: Vec<(String, String)> = clean
        .0
        .iter()
        .map(|r| (r.step.clone(), r.participant.clone()))
        .collect();
    a.sort();
    c.sort();
    assert_eq!(a, c);
    let finished = RunCheckpoints::open(dir.path(), "crashed")?;
    assert!(finished.is_finished());
    assert_eq!(finished.last_state::<CollabCrash>()?, expected);
    Ok(())
}

training_flow!(TwiceCrash, TWICE_ARMED, TWICE_VICTIM, TWICE_JOIN_ARMED);

#[test]
fn resume_twice_after_two_crashes_in_the_same_round() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let seen = Seen::default();
    let expected = TwiceCrash::initial().run(&seen.runtime(dir.path(), "clean", 1))?;
    let rt = seen.runtime(dir.path(), "twice", 1);

    TWICE_ARMED.store(true, Ordering::SeqCst);
    *TWICE_VICTIM.lock().expect("lock") = "B";
    TwiceCrash::initial().run(&rt).expect_err("crash on B");
    let first = snapshot(dir.path(), "twice");
    // Still crashing, now on D: the resumed run recovers A, runs B and C, crashes on D.
    *TWICE_VICTIM.lock().expect("lock") = "D";
    let err = rt.resume::<TwiceCrash>("twice").expect_err("crash on D");
    assert!(err.to_string().contains("collaborator `D`"), "{err}");
    let second = snapshot(dir.path(), "twice");
    assert_kept(&first, &second);
    TWICE_ARMED.store(false, Ordering::SeqCst);
    seen.take_steps();
    let resumed = rt.resume::<TwiceCrash>("twice")?;
    assert_eq!(resumed, expected);
    assert_eq!(
        seen.resumed(),
        vec![("join".to_string(), 1), ("join".to_string(), 3)]
    );
    let trains_round_2: Vec<String> = seen
        .take_steps()
        .into_iter()
        .filter(|(s, _)| s == "train")
        .map(|(_, p)| p)
        .take(1)
        .collect();
    assert_eq!(trains_round_2, ["D"]);
    assert_kept(&second, &snapshot(dir.path(), "twice"));
    Ok(())
}

training_flow!(JoinCrash, JOIN_TRAIN_ARMED, JOIN_VICTIM, JOIN_ARMED);

#[test]
fn resume_after_the_aggregator_panics_in_a_join() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let seen = Seen::default();
    let expected = JoinCrash::initial().run(&seen.runtime(dir.path(), "clean", 1))?;
    seen.take_steps();

    JOIN_ARMED.store(true, Ordering::SeqCst);
    let rt = seen.runtime(dir.path(), "join-crash", 1);
    match JoinCrash::initial().run(&rt) {
        Err(Error::StepPanicked {
            step, participant, ..
        }) => {
            assert_eq!(step, "join");
            assert_eq!(participant, ParticipantName::Aggregator);
        }
        other => panic!("expected a panic in join, got {:?}", other.map(|_| ())),
    }
    let before = snapshot(dir.path(), "join-crash");
    seen.take_steps();
    JOIN_ARMED.store(false, Ordering::SeqCst);
    let resumed = rt.resume::<JoinCrash>("join-crash")?;
    assert_eq!(resumed, expected);
    // Every collaborator of round 2 had reached the join: all four are recovered and none
    // trains round 2 again.
    assert_eq!(seen.resumed(), vec![("join".to_string(), 4)]);
    let steps = seen.take_steps();
    assert_eq!(steps[0], ("join".to_string(), "aggregator".to_string()));
    assert_eq!(
        steps.iter().filter(|(s, _)| s == "train").count(),
        4,
        "round 3 only"
    );
    assert_kept(&before, &snapshot(dir.path(), "join-crash"));
    Ok(())
}

training_flow!(ParallelCrash, PAR_ARMED, PAR_VICTIM, PAR_JOIN_ARMED);

#[test]
fn resume_after_a_crash_in_a_parallel_run() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let seen = Seen::default();
    let expected = ParallelCrash::initial().run(&seen.runtime(dir.path(), "clean", 1))?;
    PAR_ARMED.store(true, Ordering::SeqCst);
    let rt = seen.runtime(dir.path(), "par", 2);
    ParallelCrash::initial().run(&rt).expect_err("crash on C");
    let before = snapshot(dir.path(), "par");
    PAR_ARMED.store(false, Ordering::SeqCst);
    let resumed = rt.resume::<ParallelCrash>("par")?;
    assert_eq!(resumed, expected);
    let resumed_events = seen.resumed();
    assert_eq!(resumed_events.len(), 1);
    // A and B at least were done before C crashed; D may have been too.
    assert!((2..=3).contains(&resumed_events[0].1), "{resumed_events:?}");
    assert_kept(&before, &snapshot(dir.path(), "par"));
    Ok(())
}

/// A crash in `start` (nothing but the initial state checkpointed) and in `end`.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Edges {
    value: u32,
    ended: bool,
}

static EDGE_START: AtomicBool = AtomicBool::new(false);
static EDGE_END: AtomicBool = AtomicBool::new(false);

#[flow(collaborator = Site)]
impl Edges {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        assert!(!EDGE_START.load(Ordering::SeqCst), "crash in start");
        next!(self.add, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn add(&mut self) -> Next<Self> {
        self.value = 1;
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.value = inputs.iter().map(|i| i.value).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {
        assert!(!EDGE_END.load(Ordering::SeqCst), "crash in end");
        self.ended = true;
    }
}

#[test]
fn resume_after_a_crash_in_start_or_end() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let expected = Edges {
        value: 4,
        ended: true,
    };
    let rt = LocalRuntime::new(SITES, site)
        .checkpoint_dir(dir.path())
        .run_id("start-crash");
    EDGE_START.store(true, Ordering::SeqCst);
    assert!(Edges::default().run(&rt).is_err());
    let before = snapshot(dir.path(), "start-crash");
    assert_eq!(before.0.len(), 1, "only the initial state");
    EDGE_START.store(false, Ordering::SeqCst);
    assert_eq!(rt.resume::<Edges>("start-crash")?, expected);
    assert_kept(&before, &snapshot(dir.path(), "start-crash"));

    let rt = LocalRuntime::new(SITES, site)
        .checkpoint_dir(dir.path())
        .run_id("end-crash");
    EDGE_END.store(true, Ordering::SeqCst);
    assert!(Edges::default().run(&rt).is_err());
    let before = snapshot(dir.path(), "end-crash");
    EDGE_END.store(false, Ordering::SeqCst);
    assert_eq!(rt.resume::<Edges>("end-crash")?, expected);
    let after = snapshot(dir.path(), "end-crash");
    assert_kept(&before, &after);
    assert_eq!(after.0.len(), before.0.len() + 1, "only `end` ran again");
    Ok(())
}

training_flow!(TornCrash, TORN_ARMED, TORN_VICTIM, TORN_JOIN_ARMED);

/// A crash while the journal line was being written leaves a torn last line, which
/// `RunCheckpoints::open` ignores. Resuming must not append after the torn bytes: the journal
/// must stay readable, for listing, loading and a further resume.
#[test]
fn resume_after_a_torn_journal_line() -> flspec::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let seen = Seen::default();
    let expected = TornCrash::initial().run(&seen.runtime(dir.path(), "clean", 1))?;
    TORN_ARMED.store(true, Ordering::SeqCst);
    let rt = seen.runtime(dir.path(), "torn", 1);
    TornCrash::initial().run(&rt).expect_err("crash on C");
    TORN_ARMED.store(false, Ordering::SeqCst);
    let before = snapshot(dir.path(), "torn");
    // The crash cut the next journal line short.
    let journal = dir.path().join("torn/journal.jsonl");
    let mut bytes = std::fs::read(&journal).expect("journal");
    bytes.extend_from_slice(br#"{"seq":99,"kind":"step","step":"tra"#);
    std::fs::write(&journal, bytes).expect("write the torn line");
    assert_eq!(
        RunCheckpoints::open(dir.path(), "torn")?.records(),
        &before.0[..],
        "the torn line is ignored"
    );
    let resumed = rt
        .resume::<TornCrash>("torn")
        .expect("the resume itself succeeds");
    assert_eq!(resumed, expected);
    let after = RunCheckpoints::open(dir.path(), "torn").expect("the journal stays readable");
    assert!(after.is_finished());
    assert_eq!(after.last_state::<TornCrash>()?, expected);
    assert_kept(&before, &snapshot(dir.path(), "torn"));
    Ok(())
}
