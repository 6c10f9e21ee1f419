//! Crash recovery: a director with a state folder (`--state`) is killed with SIGKILL at each kind
//! of point of a run (inside an aggregator step, during a fan-out, between rounds) and started
//! again on the same folder and address. The envoys register again on their own, the run
//! resumes from its last checkpoint, the client's `RunHandle` reconnects, and `wait()` returns
//! a final state equal to an uninterrupted run's. Also: an envoy that restarts mid-run is a
//! dropout for that round and back for the next; a second director on the same folder is
//! refused; a director restarted without its folder makes the handle fail, saying why.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Proc, Tls, certs, client, director, director_at, envoy, wait_online, within};
use flspec::prelude::*;
use flspec_local::LocalRuntime;
use testflows::{RecoveryFlow, Site};

const SITES: [&str; 2] = ["Bengaluru", "Portland"];

fn flow(rounds: u32) -> RecoveryFlow {
    RecoveryFlow {
        rounds,
        work_ms: 1_000,
        agg_ms: 1_000,
        ..RecoveryFlow::default()
    }
}

/// The same run, uninterrupted, on the local runtime.
fn uninterrupted(rounds: u32) -> RecoveryFlow {
    let names: Vec<String> = SITES.iter().map(|s| s.to_string()).collect();
    let mut flow = flow(rounds);
    flow.work_ms = 0;
    flow.agg_ms = 0;
    let mut done = flow
        .run(&LocalRuntime::new(names, Site::new))
        .expect("the local run");
    done.work_ms = 1_000;
    done.agg_ms = 1_000;
    done
}

/// The journal lines of the run's checkpoints so far (empty before the folder exists).
fn journal(state: &Path, run_id: &str) -> Vec<String> {
    std::fs::read_to_string(state.join("checkpoints").join(run_id).join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits (at most 30 s) until `ready` holds of the run's journal.
fn wait_journal(state: &Path, run_id: &str, what: &str, ready: impl Fn(&[String]) -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !ready(&journal(state, run_id)) {
        assert!(
            Instant::now() < end,
            "not within 30 s: {what}; journal: {:?}",
            journal(state, run_id)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn joins(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("\"step\":\"join\"") && l.contains("\"role\":\"Aggregator\""))
        .count()
}

/// A federation whose director keeps its state in `state`.
struct Federation {
    path: PathBuf,
    tls: Tls,
    state: PathBuf,
    addr: String,
    director: Proc,
    envoys: Vec<Proc>,
}

impl Federation {
    fn start(dir: &Path) -> Federation {
        let path = dir.to_path_buf();
        certs(&path, &SITES);
        let tls = Tls::Certs(path.clone());
        let state = path.join("state");
        let args = Self::director_args(&state);
        let (director, addr) = director(&path, &tls, &[args[0].as_str(), args[1].as_str()]);
        let envoys = SITES
            .iter()
            .map(|name| envoy(&path, &addr, name, &tls, &[]))
            .collect();
        Federation {
            path,
            tls,
            state,
            addr,
            director,
            envoys,
        }
    }

    fn director_args(state: &Path) -> [String; 2] {
        ["--state".into(), state.display().to_string()]
    }

    /// Kills the director with SIGKILL and starts another on the same folder and address;
    /// returns when it listens.
    fn crash_and_restart(&mut self) -> Instant {
        self.director.kill();
        let restarted = Instant::now();
        let args = Self::director_args(&self.state);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (director, addr) = director_at(&self.path, &self.addr, &self.tls, &args);
        assert_eq!(addr, self.addr);
        self.director = director;
        restarted
    }
}

/// Waits (at most 30 s) until `ready` holds of the run's status on the director.
fn wait_status(
    runtime: &flspec_federated::FederatedRuntime,
    run_id: &str,
    what: &str,
    ready: impl Fn(&flspec_federated::RunStatus) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let status = runtime.run_status(run_id);
        if status.as_ref().is_ok_and(&ready) {
            return;
        }
        assert!(Instant::now() < end, "not within 30 s: {what}; {status:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where to kill the director: after round 0's `join` is recorded (its checkpoint is the one
/// the run resumes from), when the status also shows `step` started with `steps_done` steps
/// finished (start, two `train`s and `join` make 4 after round 0).
struct KillPoint {
    what: &'static str,
    step: Option<&'static str>,
    steps_done: u64,
}

/// Kills the director at `at`, restarts it, and checks that the run ends as an uninterrupted
/// one. Returns the time from the restart to the resumed run's first step (the run moving
/// again).
fn kill_and_resume(at: KillPoint) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut fed = Federation::start(dir.path());
    let runtime = client(&fed.path, &fed.addr).reconnect_for(Duration::from_secs(60));
    wait_online(&runtime, &SITES);
    let handle = runtime.submit(flow(3)).expect("submitted");
    let run_id = handle.id().to_string();
    wait_journal(&fed.state, &run_id, "round 0's join recorded", |l| {
        joins(l) == 1
    });
    if let Some(step) = at.step {
        wait_status(&runtime, &run_id, at.what, |s| {
            s.current_step.as_deref() == Some(step) && s.steps_done >= at.steps_done
        });
    }
    let restarted = fed.crash_and_restart();
    wait_status(&runtime, &run_id, "the resumed run's first step", |s| {
        s.current_step.is_some()
    });
    let moving = restarted.elapsed();
    let done = handle
        .wait_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| {
            panic!(
                "the resumed run failed ({}): {e}\ndirector log:\n{}",
                at.what,
                fed.director.stderr()
            )
        });
    assert_eq!(done, uninterrupted(3), "killed {}", at.what);
    let log = fed.director.stderr();
    assert!(log.contains("resuming a run after a restart"), "{log}");
    assert_eq!(
        joins(&journal(&fed.state, &run_id)),
        3,
        "one join per round"
    );
    eprintln!(
        "killed {}: the run moved again {moving:?} after the restart",
        at.what
    );
    moving
}

#[test]
fn a_director_killed_inside_an_aggregator_step_resumes_the_run() {
    within(Duration::from_secs(120), || {
        // Inside round 1's `join` (it sleeps 1 s), both of its arrivals in.
        kill_and_resume(KillPoint {
            what: "inside the join of round 1",
            step: Some("join"),
            steps_done: 6,
        });
    });
}

#[test]
fn a_director_killed_during_a_fan_out_resumes_the_run() {
    within(Duration::from_secs(120), || {
        // During round 1's fan-out: its `train` steps are running (1 s each).
        kill_and_resume(KillPoint {
            what: "during the fan-out of round 1",
            step: Some("train"),
            steps_done: 4,
        });
    });
}

#[test]
fn a_director_killed_between_rounds_resumes_the_run() {
    within(Duration::from_secs(120), || {
        // The moment round 0's join is recorded, before round 1's arrivals.
        kill_and_resume(KillPoint {
            what: "between rounds 0 and 1",
            step: None,
            steps_done: 0,
        });
    });
}

#[test]
fn finished_runs_are_answered_after_a_restart_and_a_second_director_is_refused() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut fed = Federation::start(dir.path());
        let runtime = client(&fed.path, &fed.addr);
        wait_online(&runtime, &SITES);
        let mut quick = flow(1);
        quick.work_ms = 0;
        quick.agg_ms = 0;
        let handle = runtime.submit(quick.clone()).expect("submitted");
        let run_id = handle.id().to_string();
        let first = handle.wait().expect("the run finishes");

        // Another director on the same folder is refused, naming the lock.
        let second = std::process::Command::new(common::BIN)
            .args(["director", "--listen", "127.0.0.1:0", "--certs"])
            .arg(&fed.path)
            .args(Federation::director_args(&fed.state))
            .output()
            .expect("the test binary runs");
        let log = String::from_utf8_lossy(&second.stderr);
        assert!(!second.status.success(), "{log}");
        assert!(log.contains("in use by another director"), "{log}");

        fed.crash_and_restart();
        let runtime = client(&fed.path, &fed.addr);
        let status = runtime.run_status(&run_id).expect("the run is known");
        assert_eq!(status.phase, flspec_federated::RunPhase::Finished);
        let again = runtime
            .runs()
            .expect("runs")
            .into_iter()
            .find(|r| r.run_id == run_id)
            .expect("listed");
        assert_eq!(again.phase, flspec_federated::RunPhase::Finished);
        assert_eq!(first.history.len(), 1);
    });
}

#[test]
fn without_its_state_folder_a_restarted_director_no_longer_knows_the_run() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &SITES);
        let tls = Tls::Certs(path.clone());
        let (mut first, addr) = director(&path, &tls, &[]);
        let _envoys: Vec<Proc> = SITES
            .iter()
            .map(|name| envoy(&path, &addr, name, &tls, &[]))
            .collect();
        let runtime = client(&path, &addr).reconnect_for(Duration::from_secs(30));
        wait_online(&runtime, &SITES);
        let mut slow = flow(3);
        slow.work_ms = 2_000;
        let handle = runtime.submit(slow).expect("submitted");
        std::thread::sleep(Duration::from_millis(500));
        first.kill();
        let (_second, _) = director_at(&path, &addr, &tls, &[]);
        let err = handle
            .wait_timeout(Duration::from_secs(40))
            .expect_err("the run is gone");
        let text = err.to_string();
        assert!(
            text.contains("came back without the run") && text.contains("--state"),
            "{text}"
        );
    });
}

#[test]
fn an_envoy_restarted_mid_run_is_a_dropout_then_back_in_the_next_round() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut fed = Federation::start(dir.path());
        let runtime = client(&fed.path, &fed.addr);
        wait_online(&runtime, &SITES);
        let mut slow = flow(3);
        slow.work_ms = 1_500;
        slow.agg_ms = 1_500;
        let handle = runtime.submit(slow).expect("submitted");
        let run_id = handle.id().to_string();
        // Portland's envoy dies in round 0's `train` and starts again at once.
        std::thread::sleep(Duration::from_millis(500));
        fed.envoys[1].kill();
        fed.envoys[1] = envoy(&fed.path, &fed.addr, "Portland", &fed.tls, &[]);
        let done = handle
            .wait_timeout(Duration::from_secs(60))
            .expect("the run goes on without it, then with it");
        assert_eq!(
            done.arrived,
            vec![
                vec!["Bengaluru".to_string()],
                vec!["Bengaluru".to_string(), "Portland".to_string()],
                vec!["Bengaluru".to_string(), "Portland".to_string()],
            ],
            "run {run_id}"
        );
    });
}
