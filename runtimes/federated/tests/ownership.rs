//! Runs belong to the client that submitted them: another client certificate of the same
//! federation can neither query, watch nor cancel them, and run ids cannot be guessed.

mod inproc;
#[path = "../testflows/mod.rs"]
mod testflows;

use flspec_federated::wire::{CancelReply, CancelRequest, RunStatus, StatusRequest};
use flspec_federated::{DirectorOptions, Error, RunPhase};
use testflows::{SlowFlow, director_registry, envoy_registry};

#[test]
fn another_client_cannot_status_watch_or_cancel_a_run() {
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
            sleep_ms: 1500,
            ..SlowFlow::default()
        })
        .expect("submitted");
    let run_id = handle.id().to_string();

    // The blocking client, with the other client certificate.
    let other = fed.client("clients/other");
    let err = other.run_status(&run_id).expect_err("refused");
    match &err {
        Error::Rpc { code, message } => {
            assert_eq!(*code, tonic::Code::PermissionDenied, "{message}");
            assert!(
                message.contains(&run_id),
                "the refusal names the run: {message}"
            );
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }

    // Raw calls with the other certificate: status, watch, cancel.
    let channel = fed.channel("clients/other").expect("connects");
    let denied = |r: Result<(), tonic::Status>| {
        let status = r.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains(&run_id), "{}", status.message());
    };
    denied(
        fed.runtime
            .block_on(inproc::unary::<_, RunStatus>(
                channel.clone(),
                "Status",
                StatusRequest {
                    run_id: run_id.clone(),
                },
            ))
            .map(|_| ()),
    );
    denied(
        fed.runtime
            .block_on(inproc::watch_first(channel.clone(), &run_id))
            .map(|_| ()),
    );
    denied(
        fed.runtime
            .block_on(inproc::unary::<_, CancelReply>(
                channel,
                "Cancel",
                CancelRequest {
                    run_id: run_id.clone(),
                },
            ))
            .map(|_| ()),
    );

    // The owner still can, and the run was not cancelled.
    let status = owner.run_status(&run_id).expect("the owner may query");
    assert_eq!(status.run_id, run_id);
    let flow = handle.wait().expect("the run finishes, not cancelled");
    assert_eq!(flow.arrived, vec!["Portland".to_string()]);
    assert_eq!(
        owner.run_status(&run_id).expect("status").phase,
        RunPhase::Finished
    );
}

#[test]
fn run_ids_are_random_128_bit() {
    let fed = inproc::start(
        &["Portland"],
        DirectorOptions::default(),
        director_registry(),
    );
    let _envoy = fed.envoy("Portland", envoy_registry(None));
    let client = fed.client("client").collaborators(["Portland"]);
    inproc::wait_envoys(&client, &["Portland"], true);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let handle = client.submit(SlowFlow::default()).expect("submitted");
            let id = handle.id().to_string();
            handle.wait().expect("finishes");
            id
        })
        .collect();
    for id in &ids {
        let hex = id.strip_prefix("run-").expect("`run-` prefix");
        assert_eq!(hex.len(), 32, "{id}");
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
    }
    // Consecutive ids share no structure: most hex digits differ (a counter or a clock would
    // leave long common prefixes).
    for pair in ids.windows(2) {
        let differ = pair[0]
            .chars()
            .zip(pair[1].chars())
            .filter(|(a, b)| a != b)
            .count();
        assert!(differ >= 16, "ids look related: {pair:?}");
    }
}
