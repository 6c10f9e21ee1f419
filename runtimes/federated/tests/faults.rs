//! Faults: an envoy killed mid-round (SIGKILL), in a flow that tolerates dropouts and in one
//! that does not; an envoy that restarts and registers again; a director that keeps serving.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Proc, Tls, certs, client, director, envoy, wait_online, within};
use flspec::{Event, Flow};
use flspec_federated::{EnvoyState, FederatedRuntime, RunPhase};
use testflows::{FanOutFlow, SlowDropFlow, SlowFlow};

const SITES: [&str; 2] = ["Bengaluru", "Portland"];

/// A client whose observer signals when `Portland` starts the step `work`.
fn watching_client(dir: &std::path::Path, addr: &str) -> (FederatedRuntime, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let runtime = client(dir, addr)
        .collaborators(SITES)
        .observer(move |e: &Event<'_>| {
            if let Event::StepStarted {
                step: "work",
                participant: "Portland",
                ..
            } = e
            {
                let _ = tx.lock().map(|t| t.send(()));
            }
        });
    (runtime, rx)
}

fn kill_when_working(rx: &mpsc::Receiver<()>, envoy: &mut Proc) -> Instant {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("Portland started its step within 30 s");
    envoy.kill();
    Instant::now()
}

#[test]
fn killed_envoys_are_dropouts_or_clear_errors_and_can_come_back() {
    within(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &SITES);
        let tls = Tls::Certs(path.clone());
        let checkpoints = path.join("checkpoints");
        let checkpoint_arg = checkpoints.display().to_string();
        let (director_proc, addr) = director(&path, &tls, &["--checkpoint-dir", &checkpoint_arg]);
        let _bengaluru = envoy(&path, &addr, "Bengaluru", &tls, &[]);
        let mut portland = envoy(&path, &addr, "Portland", &tls, &[]);
        let (runtime, started) = watching_client(&path, &addr);
        wait_online(&runtime, &SITES);

        // 1. A flow that tolerates dropouts goes on with the survivor.
        let handle = runtime
            .submit(SlowDropFlow {
                slow: "Portland".into(),
                sleep_ms: 60_000,
                ..Default::default()
            })
            .expect("submitted");
        let killed = kill_when_working(&started, &mut portland);
        let id = handle.id().to_string();
        let flow = handle
            .wait_timeout(Duration::from_secs(30))
            .expect("the run goes on without Portland");
        let detected_in = killed.elapsed();
        assert_eq!(flow.arrived, ["Bengaluru"]);
        assert!(
            detected_in < Duration::from_secs(8),
            "the loss was seen after {detected_in:?}; it must not wait for a deadline"
        );
        let status = runtime.run_status(&id).expect("status");
        assert_eq!(status.phase, RunPhase::Finished);
        assert_eq!(status.dropped, ["Portland"]);
        let portland_info = runtime
            .envoys()
            .expect("envoys")
            .into_iter()
            .find(|e| e.name == "Portland")
            .expect("Portland is listed");
        assert_eq!(portland_info.state, EnvoyState::Offline);
        assert!(portland_info.offline_reason.is_some());

        // 2. The envoy restarts and registers again; the director serves a new run.
        let mut portland = envoy(&path, &addr, "Portland", &tls, &[]);
        wait_online(&runtime, &SITES);
        let flow = FanOutFlow::default()
            .run(&runtime)
            .expect("a run after the restart");
        assert_eq!(flow.names, SITES);

        // 3. A flow that does not tolerate dropouts ends with an error naming the envoy.
        let handle = runtime
            .submit(SlowFlow {
                slow: "Portland".into(),
                sleep_ms: 60_000,
                ..Default::default()
            })
            .expect("submitted");
        let killed = kill_when_working(&started, &mut portland);
        let err = handle
            .wait_timeout(Duration::from_secs(30))
            .expect_err("the run must fail");
        assert!(
            killed.elapsed() < Duration::from_secs(8),
            "{:?}",
            killed.elapsed()
        );
        let text = err.to_string();
        assert!(
            text.contains("`Portland`") && text.contains("lost") && text.contains("tolerate"),
            "{text}"
        );
        // The failed run left its checkpoint: the aggregator's state up to the fan-out.
        let runs = flspec::checkpoint::RunCheckpoints::list(&checkpoints).expect("checkpoints");
        assert_eq!(runs.len(), 3, "{runs:?}");
        let failed = runs
            .iter()
            .map(|id| flspec::checkpoint::RunCheckpoints::open(&checkpoints, id).expect("opens"))
            .find(|r| !r.is_finished())
            .expect("the failed run's checkpoint");
        let state: SlowFlow = failed.last_state().expect("its last state");
        assert_eq!(state.slow, "Portland");

        // 4. And the director still serves runs.
        let _portland = envoy(&path, &addr, "Portland", &tls, &[]);
        wait_online(&runtime, &SITES);
        FanOutFlow::default()
            .run(&runtime)
            .expect("a run after the failure");
        assert!(director_proc.stderr().contains("envoy lost"));
    });
}

#[test]
fn a_step_deadline_ends_a_run_that_waits_too_long() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &SITES);
        let tls = Tls::Certs(path.clone());
        let (_director, addr) = director(&path, &tls, &[]);
        let _envoys: Vec<_> = SITES
            .iter()
            .map(|n| envoy(&path, &addr, n, &tls, &[]))
            .collect();
        let runtime = client(&path, &addr)
            .collaborators(SITES)
            .step_timeout(Duration::from_millis(1500));
        wait_online(&runtime, &SITES);
        let began = Instant::now();
        let err = SlowFlow {
            slow: "Portland".into(),
            sleep_ms: 20_000,
            ..Default::default()
        }
        .run(&runtime)
        .expect_err("the deadline must end the run");
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
        let text = err.to_string();
        assert!(
            text.contains("`Portland`") && text.contains("deadline"),
            "{text}"
        );

        // Cancelling a run: it ends as cancelled at once.
        let handle = runtime
            .submit(SlowFlow {
                slow: "Portland".into(),
                sleep_ms: 1_000,
                ..Default::default()
            })
            .expect("submitted");
        assert!(handle.cancel().expect("cancel"));
        let err = handle
            .wait_timeout(Duration::from_secs(30))
            .expect_err("cancelled");
        assert!(err.to_string().contains("cancelled"), "{err}");
    });
}
