//! The async client end to end against a director and two envoys (separate processes), and
//! the blocking client called from inside a tokio runtime: a clear error, never a panic.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{Tls, certs, director, envoy};
use flspec::Flow;
use flspec_federated::{
    AsyncClient, EnvoyState, Error, FederatedRuntime, RunPhase, RunStatus, TlsConfig,
};
use flspec_local::LocalRuntime;
use testflows::{AggSecret, FanOutFlow, Site, SlowFlow};

const SITES: [&str; 2] = ["Bengaluru", "Portland"];

async fn wait_online(client: &AsyncClient, names: &[&str]) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let envoys = client.envoys().await.expect("the director lists envoys");
        let online = names.iter().all(|n| {
            envoys
                .iter()
                .any(|e| e.name == *n && e.state != EnvoyState::Offline)
        });
        if online {
            return;
        }
        assert!(
            Instant::now() < end,
            "envoys {names:?} not online within 30 s: {envoys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_blocking_refusal(e: &Error, call: &str) -> bool {
    matches!(e, Error::BlockingInAsyncContext { call: c } if *c == call)
        && e.to_string().contains("AsyncClient::connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_client_runs_flows_end_to_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    certs(&path, &SITES);
    let tls = Tls::Certs(path.clone());
    let (_director, addr) = director(&path, &tls, &[]);
    let _envoys: Vec<_> = SITES
        .iter()
        .map(|n| envoy(&path, &addr, n, &tls, &[]))
        .collect();
    let test = async {
        let client = AsyncClient::connect(
            &addr,
            TlsConfig::from_dir(&path, "client").expect("client certificate"),
        )
        .await
        .expect("the async client connects")
        .collaborators(SITES)
        .step_timeout(Duration::from_secs(60));
        wait_online(&client, &SITES).await;

        // submit, status, wait: the same final state as the local runtime.
        let run = client
            .submit(FanOutFlow::default())
            .await
            .expect("submitted");
        assert_eq!(run.collaborators(), SITES);
        let status: RunStatus = run.status().await.expect("status");
        assert_eq!(status.run_id, run.id());
        let by_id = client.run_status(run.id()).await.expect("status by id");
        assert_eq!(by_id.run_id, run.id());
        let id = run.id().to_string();
        let got = run.wait().await.expect("the run ends");
        let local = LocalRuntime::new(SITES, Site::new).with_aggregator(AggSecret::new);
        assert_eq!(got, FanOutFlow::default().run(&local).expect("local run"));
        assert_eq!(
            client.run_status(&id).await.expect("status").phase,
            RunPhase::Finished
        );

        // cancel: a slow run stops; wait says so.
        let run = client
            .submit(SlowFlow {
                slow: "Portland".into(),
                sleep_ms: 3_000,
                ..SlowFlow::default()
            })
            .await
            .expect("submitted");
        assert!(!run.is_finished());
        assert!(run.cancel().await.expect("cancel"), "it was running");
        let err = run.wait().await.expect_err("cancelled");
        assert!(err.to_string().contains("cancelled"), "{err}");

        // wait_timeout gives up without ending the run.
        let run = client
            .submit(SlowFlow {
                slow: "Portland".into(),
                sleep_ms: 2_000,
                ..SlowFlow::default()
            })
            .await
            .expect("submitted");
        let id = run.id().to_string();
        let err = run
            .wait_timeout(Duration::from_millis(100))
            .await
            .expect_err("gave up");
        assert!(err.to_string().contains("did not finish"), "{err}");
        let phase = client.run_status(&id).await.expect("status").phase;
        assert!(
            matches!(phase, RunPhase::Running | RunPhase::Finished),
            "{phase:?}"
        );
        let end = Instant::now() + Duration::from_secs(30);
        while client.run_status(&id).await.expect("status").phase == RunPhase::Running {
            assert!(Instant::now() < end, "the slow run did not end within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A client made outside the runtime (on a thread of its own) refuses to block in
        // here, and can be dropped in here without a panic.
        let blocking_addr = addr.clone();
        let blocking_path = path.clone();
        let blocking = std::thread::spawn(move || {
            FederatedRuntime::connect(
                &blocking_addr,
                TlsConfig::from_dir(&blocking_path, "client").expect("client certificate"),
            )
        })
        .join()
        .expect("no panic")
        .expect("connects outside a runtime");
        let err = blocking.envoys().expect_err("refused");
        assert!(
            is_blocking_refusal(&err, "FederatedRuntime::envoys"),
            "{err:?}"
        );
        let err = blocking.submit(FanOutFlow::default()).expect_err("refused");
        assert!(
            is_blocking_refusal(&err, "FederatedRuntime::submit"),
            "{err:?}"
        );
        let err = FanOutFlow::default().run(&blocking).expect_err("refused");
        assert!(err.to_string().contains("AsyncClient"), "{err}");
        // In `spawn_blocking`, tokio gives no way to tell it from async code: refused too,
        // with the same advice.
        let err = tokio::task::spawn_blocking(move || {
            let e = blocking.envoys().expect_err("refused");
            drop(blocking);
            e
        })
        .await
        .expect("no panic");
        assert!(
            is_blocking_refusal(&err, "FederatedRuntime::envoys"),
            "{err:?}"
        );

        // The blocking client still works from a thread of its own, next to the async one.
        let (a, p) = (addr.clone(), path.clone());
        let names = std::thread::spawn(move || {
            let runtime =
                FederatedRuntime::connect(&a, TlsConfig::from_dir(&p, "client").expect("certs"))
                    .expect("connects")
                    .collaborators(SITES);
            let run = runtime.submit(FanOutFlow::default()).expect("submitted");
            assert!(run.status().is_ok());
            run.wait().expect("run").names
        })
        .join()
        .expect("no panic");
        assert_eq!(names, SITES);
    };
    tokio::time::timeout(Duration::from_secs(180), test)
        .await
        .expect("the test finishes within 180 s");
}

/// The blocking client inside `#[tokio::main]`-like code: an error that says what to do, where
/// tokio used to panic ("Cannot start a runtime from within a runtime").
#[tokio::test]
async fn the_blocking_client_inside_a_runtime_says_to_use_the_async_one() {
    let err = FederatedRuntime::connect("127.0.0.1:9", TlsConfig::insecure_plaintext())
        .expect_err("refused");
    assert!(
        is_blocking_refusal(&err, "FederatedRuntime::connect"),
        "{err:?}"
    );
    let text = err.to_string();
    for advice in [
        "tokio runtime",
        "AsyncClient",
        ".await",
        "std::thread::spawn",
    ] {
        assert!(text.contains(advice), "{advice}: {text}");
    }
}

/// Off tokio, the async client says it needs tokio, rather than panicking in tonic.
#[test]
fn the_async_client_off_tokio_says_it_needs_tokio() {
    let fut = AsyncClient::connect("127.0.0.1:9", TlsConfig::insecure_plaintext());
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(e)) => {
            assert!(matches!(e, Error::NoAsyncRuntime { .. }), "{e:?}");
            assert!(e.to_string().contains("FederatedRuntime"), "{e}");
        }
        std::task::Poll::Ready(Ok(_)) => panic!("connected without a runtime"),
        std::task::Poll::Pending => panic!("waited without a runtime"),
    }
}
