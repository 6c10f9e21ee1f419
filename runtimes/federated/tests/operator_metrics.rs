//! The director's admin address: Prometheus metrics scraped over real HTTP while a real
//! federation (mutual TLS on 127.0.0.1) runs flows, and the health and readiness probes.

mod inproc;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use flspec::prelude::*;
use flspec_federated::DirectorOptions;
use flspec_federated::certs::{FederationSpec, create_federation};
use testflows::{FanOutFlow, SlowDropFlow, director_registry, envoy_registry};

/// `GET path` on `addr`; the status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("the admin address accepts");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("the request is sent");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("an HTTP answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_string())
}

/// The value of the sample `name` (with its labels exactly as written), if present.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

#[test]
fn metrics_count_envoys_runs_steps_bytes_dropouts_and_tls_failures() {
    let fed = inproc::start(
        &["Bengaluru", "Portland"],
        DirectorOptions {
            admin_addr: Some("127.0.0.1:0".into()),
            ..DirectorOptions::default()
        },
        director_registry(),
    );
    let admin = fed
        .director
        .as_ref()
        .and_then(|d| d.admin_addr())
        .expect("the admin address is bound");
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".into()));
    let _a = fed.envoy("Bengaluru", envoy_registry(None));
    let _b = fed.envoy("Portland", envoy_registry(None));
    let client = fed
        .client("client")
        .collaborators(["Bengaluru", "Portland"]);
    inproc::wait_envoys(&client, &["Bengaluru", "Portland"], true);
    assert_eq!(get(admin, "/readyz"), (200, "ready\n".into()));

    FanOutFlow::default()
        .run(&client)
        .expect("the run finishes");
    // A dropout: Portland sleeps past the 1 s step deadline of a tolerant flow.
    let hasty = fed
        .client("client")
        .collaborators(["Bengaluru", "Portland"])
        .step_timeout(Duration::from_secs(1));
    let dropped = SlowDropFlow {
        slow: "Portland".into(),
        sleep_ms: 2500,
        ..SlowDropFlow::default()
    }
    .run(&hasty)
    .expect("the run finishes without Portland");
    assert_eq!(dropped.arrived, ["Bengaluru"]);

    // A client certificate of another federation: refused at the handshake.
    let stranger = tempfile::tempdir().expect("temp dir");
    create_federation(
        stranger.path(),
        &FederationSpec {
            director_hosts: vec!["127.0.0.1".into()],
            clients: vec!["client".into()],
            days: 30,
            ..FederationSpec::default()
        },
    )
    .expect("another federation's certificates");
    let refused = fed.runtime.block_on(inproc::raw_channel(
        &fed.addr,
        &fed.path().join("ca.pem"),
        &stranger.path().join("client.pem"),
        &stranger.path().join("client.key"),
    ));
    // TLS 1.3 clients finish their side before the server checks their certificate; either
    // way the director refuses it and counts the failure.
    drop(refused);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (code, body) = get(admin, "/metrics");
        assert_eq!(code, 200);
        let failed = sample(
            &body,
            "flspec_director_tls_handshake_failures_total{reason=\"unknown_ca\"}",
        );
        if failed >= Some(1.0) || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let value = |name: &str| {
        sample(&metrics, name).unwrap_or_else(|| panic!("no sample `{name}` in:\n{metrics}"))
    };
    assert_eq!(value("flspec_director_envoys_online"), 2.0, "{metrics}");
    assert_eq!(value("flspec_director_runs{state=\"finished\"}"), 2.0);
    assert_eq!(value("flspec_director_runs{state=\"running\"}"), 0.0);
    assert_eq!(value("flspec_director_runs_submitted_total"), 2.0);
    assert_eq!(
        value(
            "flspec_director_step_seconds_count{flow=\"FanOutFlow\",step=\"contribute\",\
             role=\"collaborator\"}"
        ),
        2.0,
        "one contribute step per envoy:\n{metrics}"
    );
    assert!(
        value(
            "flspec_director_step_seconds_count{flow=\"FanOutFlow\",step=\"join\",\
             role=\"aggregator\"}"
        ) >= 1.0
    );
    assert_eq!(
        value("flspec_director_dropouts_total{flow=\"SlowDropFlow\",step=\"work\"}"),
        1.0
    );
    for envoy in ["Bengaluru", "Portland"] {
        assert!(
            value(&format!(
                "flspec_director_envoy_sent_bytes_total{{envoy=\"{envoy}\"}}"
            )) > 0.0
        );
    }
    assert!(value("flspec_director_envoy_received_bytes_total{envoy=\"Bengaluru\"}") > 0.0);
    // (The raw channel may try its connection more than once.)
    assert!(
        value("flspec_director_tls_handshake_failures_total{reason=\"unknown_ca\"}") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        value("flspec_director_tls_handshake_failures_total{reason=\"expired\"}"),
        0.0
    );
    assert!(metrics.contains("# TYPE flspec_director_step_seconds histogram"));

    assert_eq!(get(admin, "/nope").0, 404);
    let mut fed = fed;
    fed.shutdown();
    // After shutdown the admin address is closed (or answers 503 while stopping).
    if let Ok(mut s) = TcpStream::connect(admin) {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        let _ = write!(s, "GET /readyz HTTP/1.1\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        assert!(!text.contains(" 200 "), "ready after shutdown: {text}");
    }
}
