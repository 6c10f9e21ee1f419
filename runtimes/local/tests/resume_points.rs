//! Resume points (`#[flow(resume_from = [..])]`): a flow whose aggregator keeps a round's
//! secret in private state (as a secure-aggregation server does) cannot resume in the middle of
//! a round, since a resumed run builds private state afresh. With resume points, a run that
//! crashed mid-round resumes after the last recorded point and runs the whole round again;
//! without them, it resumes after the mid-round step and fails for want of the lost secret.

use std::sync::atomic::{AtomicBool, Ordering};

use flspec::BoxError;
use flspec::checkpoint::RunCheckpoints;
use flspec::prelude::*;
use flspec_local::LocalRuntime;

/// The aggregator's private state: the secret of the round in progress.
#[derive(Default)]
struct RoundKeys {
    round: Option<u32>,
}

macro_rules! keyed_flow {
    ($name:ident, $armed:ident $(, $resume:ident = [$($point:ident),*])?) => {
        static $armed: AtomicBool = AtomicBool::new(false);

        #[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
        struct $name {
            rounds: u32,
            round: u32,
            value: u64,
            total: u64,
            advertised: u32,
        }

        #[flow(aggregator = RoundKeys $(, $resume = [$($point),*])?)]
        impl $name {
            #[aggregator]
            fn start(&mut self, ctx: &Ctx) -> Next<Self> {
                next!(self.advertise, foreach = ctx.collaborators())
            }

            #[collaborator]
            fn advertise(&mut self) -> Next<Self> {
                self.advertised = 1;
                next!(self.collect, include = [advertised])
            }

            /// Mid-round: makes the round's secret, kept only in private state.
            #[aggregator]
            fn collect(&mut self, ctx: &Ctx, inputs: Inputs<Self>, keys: &mut RoundKeys) -> Next<Self> {
                self.advertised += inputs.iter().map(|i| i.advertised).sum::<u32>();
                keys.round = Some(self.round);
                next!(self.mask, foreach = ctx.collaborators())
            }

            #[collaborator]
            fn mask(&mut self, ctx: &Ctx) -> Result<Next<Self>, BoxError> {
                if self.round == 1 && ctx.name() == "B" && $armed.load(Ordering::SeqCst) {
                    return Err("injected crash in round 1".into());
                }
                self.value = ctx.name().len() as u64 + u64::from(self.round);
                Ok(next!(self.close, include = [value]))
            }

            #[aggregator]
            fn close(&mut self, inputs: Inputs<Self>, keys: &mut RoundKeys) -> Result<Next<Self>, BoxError> {
                if keys.round.take() != Some(self.round) {
                    return Err(format!("lost round {}'s secret", self.round).into());
                }
                self.total += inputs.iter().map(|i| i.value).sum::<u64>();
                self.round += 1;
                if self.round < self.rounds {
                    Ok(next!(self.advertise, foreach = inputs.names()))
                } else {
                    Ok(next!(self.end))
                }
            }

            #[aggregator]
            fn end(&mut self) {}
        }
    };
}

keyed_flow!(WithPoints, WITH_ARMED, resume_from = [start, close]);
keyed_flow!(WithoutPoints, WITHOUT_ARMED);

fn runtime(dir: &std::path::Path) -> LocalRuntime<(), RoundKeys> {
    LocalRuntime::new(["A", "B", "C"], |_| ())
        .with_aggregator(RoundKeys::default)
        .checkpoint_dir(dir)
}

#[test]
fn a_round_with_resume_points_starts_over_and_the_run_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flow = WithPoints {
        rounds: 3,
        ..WithPoints::default()
    };
    let uninterrupted = flow.clone().run(&runtime(dir.path())).expect("a whole run");

    let rt = runtime(dir.path());
    WITH_ARMED.store(true, Ordering::SeqCst);
    let crashed = flow.run(&rt).expect_err("the injected crash");
    assert!(crashed.to_string().contains("injected crash"), "{crashed}");
    WITH_ARMED.store(false, Ordering::SeqCst);
    let run_id = rt.last_run_id().expect("a run id");
    let before = RunCheckpoints::open(dir.path(), &run_id)
        .expect("the run's checkpoints")
        .records()
        .len();

    let resumed: WithPoints = rt.resume(&run_id).expect("resumed after round 0's close");
    assert_eq!(resumed, uninterrupted);
    // Round 1 ran again from `advertise`: its `collect` appears twice in the journal.
    let run = RunCheckpoints::open(dir.path(), &run_id).expect("the run's checkpoints");
    let collects = run.records().iter().filter(|r| r.step == "collect").count();
    assert_eq!(collects, 4, "rounds 0, 1 (twice) and 2");
    assert!(run.records().len() > before);
}

#[test]
fn without_resume_points_the_run_resumes_mid_round_and_lacks_the_lost_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = runtime(dir.path());
    WITHOUT_ARMED.store(true, Ordering::SeqCst);
    WithoutPoints {
        rounds: 3,
        ..WithoutPoints::default()
    }
    .run(&rt)
    .expect_err("the injected crash");
    WITHOUT_ARMED.store(false, Ordering::SeqCst);
    let run_id = rt.last_run_id().expect("a run id");
    let err = rt
        .resume::<WithoutPoints>(&run_id)
        .expect_err("the secret of round 1 died with the crashed run");
    assert!(err.to_string().contains("lost round 1's secret"), "{err}");
}
