//! The operator calls (`runs`, `logs`, cancel by id) keep runs to their submitter: another
//! client certificate of the same federation neither sees nor reads nor cancels them.

mod inproc;
#[path = "../testflows/mod.rs"]
mod testflows;

use flspec_federated::{DirectorOptions, Error, RunPhase};
use testflows::{SlowFlow, director_registry, envoy_registry};

#[test]
fn another_client_neither_lists_reads_nor_cancels_a_run() {
    let fed = inproc::start(
        &["Portland"],
        DirectorOptions::default(),
        director_registry(),
    );
    let _envoy = fed.envoy("Portland", envoy_registry(None));
    let owner = fed.client("client").collaborators(["Portland"]);
    inproc::wait_envoys(&owner, &["Portland"], true);
    let handle = owner
        .submit(SlowFlow {
            slow: "Portland".into(),
            sleep_ms: 1000,
            ..SlowFlow::default()
        })
        .expect("submitted");
    let run_id = handle.id().to_string();

    let other = fed.client("clients/other");
    assert!(
        other.runs().expect("listed").is_empty(),
        "not the other's run"
    );
    let denied = |err: Error| match &err {
        Error::Rpc { code, message } => {
            assert_eq!(*code, tonic::Code::PermissionDenied, "{message}");
            assert!(message.contains(&run_id), "{message}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    };
    denied(
        other
            .run_logs(&run_id, false, |u| panic!("read {u:?}"))
            .expect_err("refused"),
    );
    denied(other.cancel_run(&run_id).expect_err("refused"));

    let mine = owner.runs().expect("listed");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].run_id, run_id);
    let mut updates = 0;
    owner
        .run_logs(&run_id, true, |_| updates += 1)
        .expect("the owner follows the log to the run's end");
    assert!(updates > 0);
    assert_eq!(
        owner.run_status(&run_id).expect("status").phase,
        RunPhase::Finished,
        "the other client did not cancel it"
    );
    handle.wait().expect("the run finishes");
}
