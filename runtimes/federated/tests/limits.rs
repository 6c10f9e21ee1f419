//! The director's limits: concurrent runs, envoy sessions and connections are bounded, each
//! with a refusal that names the option to raise; and shutting down with envoys connected is
//! prompt.

mod inproc;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::time::{Duration, Instant};

use flspec_federated::{DirectorOptions, Error};
use inproc::{FakeSession, flow_info};
use testflows::{SlowFlow, TrustFlow, director_registry, envoy_registry};

fn slow(ms: u64) -> SlowFlow {
    SlowFlow {
        slow: "Portland".into(),
        sleep_ms: ms,
        ..SlowFlow::default()
    }
}

#[test]
fn a_run_past_max_runs_is_refused_naming_the_option() {
    let options = DirectorOptions {
        max_runs: 1,
        ..DirectorOptions::default()
    };
    let fed = inproc::start(&["Portland"], options, director_registry());
    let _envoy = fed.envoy("Portland", envoy_registry(None));
    let client = fed.client("client").collaborators(["Portland"]);
    inproc::wait_envoys(&client, &["Portland"], true);

    let first = client
        .submit(slow(3000))
        .expect("the first run is accepted");
    let err = client.submit(slow(0)).expect_err("a second run is refused");
    match &err {
        Error::Rpc { code, message } => {
            assert_eq!(*code, tonic::Code::ResourceExhausted, "{message}");
            assert!(message.contains("max_runs"), "{message}");
        }
        other => panic!("expected ResourceExhausted, got {other:?}"),
    }
    first.wait().expect("the first run finishes");

    // Its slot is free again once it ended.
    let end = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match client.submit(slow(0)) {
            Ok(h) => break h,
            Err(e) if Instant::now() < end => {
                assert!(e.to_string().contains("max_runs"), "{e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the slot was not given back: {e}"),
        }
    };
    again.wait().expect("the next run finishes");
}

#[test]
fn an_envoy_past_max_envoys_is_refused_naming_the_option() {
    let options = DirectorOptions {
        max_envoys: 1,
        ..DirectorOptions::default()
    };
    let fed = inproc::start(&["Bengaluru", "Portland"], options, director_registry());
    let open = |name: &str| {
        let channel = fed
            .channel(&format!("envoys/{name}"))
            .expect("the envoy connects");
        fed.runtime.block_on(FakeSession::open(
            channel,
            name,
            vec![flow_info::<TrustFlow>()],
        ))
    };
    let _bengaluru = open("Bengaluru").expect("the first envoy registers");
    let refusal = open("Portland").err().expect("the second envoy is refused");
    assert_eq!(refusal.code(), tonic::Code::ResourceExhausted);
    assert!(
        refusal.message().contains("max_envoys"),
        "{}",
        refusal.message()
    );
    // An envoy that registers again replaces its own session: not refused.
    let _again = open("Bengaluru").expect("re-registering is not a new envoy");
}

#[test]
fn a_hello_with_too_many_flows_is_refused() {
    let fed = inproc::start(
        &["Portland"],
        DirectorOptions::default(),
        director_registry(),
    );
    let channel = fed.channel("envoys/Portland").expect("connects");
    let flows = (0..2000)
        .map(|i| flspec_federated::wire::FlowInfo {
            name: format!("Flow{i}"),
            fingerprint: "0".repeat(16),
        })
        .collect();
    let refusal = fed
        .runtime
        .block_on(FakeSession::open(channel, "Portland", flows))
        .err()
        .expect("refused");
    assert_eq!(refusal.code(), tonic::Code::InvalidArgument);
    assert!(
        refusal.message().contains("at most 1024"),
        "{}",
        refusal.message()
    );
}

#[test]
fn a_connection_past_max_connections_is_closed() {
    let options = DirectorOptions {
        max_connections: 2,
        ..DirectorOptions::default()
    };
    let fed = inproc::start(&[], options, director_registry());
    let first = fed.channel("client").expect("first connection");
    let second = fed.channel("clients/other").expect("second connection");
    let third = fed.channel("client");
    assert!(
        third.is_err(),
        "a third connection was served past max_connections = 2"
    );
    drop((first, second));
    let end = Instant::now() + Duration::from_secs(10);
    while fed.channel("client").is_err() {
        assert!(
            Instant::now() < end,
            "a slot did not free up after the connections closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn shutdown_with_two_envoys_connected_is_prompt() {
    let mut fed = inproc::start(
        &["Bengaluru", "Portland"],
        DirectorOptions::default(),
        director_registry(),
    );
    let envoys = [
        fed.envoy("Bengaluru", envoy_registry(None)),
        fed.envoy("Portland", envoy_registry(None)),
    ];
    {
        let client = fed.client("client");
        inproc::wait_envoys(&client, &["Bengaluru", "Portland"], true);
        let handle = client
            .collaborators(["Bengaluru", "Portland"])
            .submit(slow(0))
            .expect("submitted");
        handle.wait().expect("a run works before the shutdown");
    }
    let took = fed.shutdown();
    assert!(
        took < Duration::from_secs(1),
        "shutdown with two envoys connected took {took:?}"
    );
    // The envoys were told: their sessions ended (they do not reconnect in this test).
    fed.runtime.block_on(async {
        for envoy in envoys {
            tokio::time::timeout(Duration::from_secs(5), envoy)
                .await
                .expect("the envoy saw its session end")
                .expect("the envoy task did not panic");
        }
    });
    // The port is free again.
    std::net::TcpListener::bind(&fed.addr).expect("the director released its port");
}
