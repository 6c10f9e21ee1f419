//! The director's revocation list: editing the file while the director runs revokes an envoy
//! and a client (new handshakes fail, open connections are refused, the envoy's session ends)
//! without a restart, and editing it back lets them in again.

mod inproc;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::time::{Duration, Instant};

use flspec_federated::certs::fingerprint;
use flspec_federated::{DirectorOptions, EnvoyState, Error, FederatedRuntime, TlsConfig};
use testflows::{director_registry, envoy_registry};

/// Retries `f` for at most 10 s until it returns `Some`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what} did not happen within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_revoked_envoy_and_client_are_refused_while_the_director_runs() {
    let lists = tempfile::tempdir().expect("temp dir");
    let list = lists.path().join("revoked.txt");
    std::fs::write(&list, "# revoked certificates\n").expect("written");
    let options = DirectorOptions::default().revocation_list(&list);
    let fed = inproc::start(&["Bengaluru", "Portland"], options, director_registry());
    let _envoys = [
        fed.envoy("Bengaluru", envoy_registry(None)),
        fed.envoy("Portland", envoy_registry(None)),
    ];
    let client = fed.client("client");
    let other = fed.client("clients/other");
    inproc::wait_envoys(&client, &["Bengaluru", "Portland"], true);
    other.envoys().expect("not revoked yet");

    let pem = |who: &str| std::fs::read_to_string(fed.files(who).0).expect("certificate");
    let portland = fingerprint(&pem("envoys/Portland")).expect("a fingerprint");
    let revoked_client = fingerprint(&pem("clients/other")).expect("a fingerprint");
    assert_eq!(portland.len(), 64);
    std::fs::write(
        &list,
        format!("# revoked certificates\n{portland}  # Portland's old laptop\n{revoked_client}\n"),
    )
    .expect("written");

    // Portland's open session ends, saying why; Bengaluru stays.
    let info = eventually("Portland's session ending", || {
        let envoys = client.envoys().expect("the director lists envoys");
        envoys
            .into_iter()
            .find(|e| e.name == "Portland" && e.state == EnvoyState::Offline)
    });
    let reason = info.offline_reason.unwrap_or_default();
    assert!(reason.contains("revoked"), "{reason}");
    let envoys = client.envoys().expect("listed");
    assert!(
        envoys
            .iter()
            .any(|e| e.name == "Bengaluru" && e.state != EnvoyState::Offline),
        "{envoys:?}"
    );

    // The revoked client's open connection is refused on its next call.
    let err = other.envoys().expect_err("a revoked client is refused");
    match &err {
        Error::Rpc { code, message } => {
            assert_eq!(*code, tonic::Code::PermissionDenied, "{message}");
            assert!(message.contains("revoked"), "{message}");
        }
        e => panic!("expected PermissionDenied, got {e:?}"),
    }
    // A new connection with it fails the handshake, and says why.
    let connect = || {
        FederatedRuntime::connect(
            &fed.addr,
            TlsConfig::from_dir(fed.path(), "clients/other").expect("certificate"),
        )
    };
    // Every attempt is refused, and says why: the director reads what the client still sends
    // after its alert, so no connection reset overtakes the alert.
    let errors: Vec<String> = (0..5)
        .map(|_| connect().expect_err("the handshake is refused").to_string())
        .collect();
    assert!(errors.iter().all(|e| e.contains("revoked")), "{errors:#?}");
    // So does a new envoy session with Portland's certificate.
    let channel = fed.channel("envoys/Portland");
    if let Ok(channel) = channel {
        let refused =
            fed.runtime
                .block_on(inproc::FakeSession::open(channel, "Portland", Vec::new()));
        assert!(refused.is_err(), "a revoked envoy opened a session");
    }

    // Taking the line out lets the client in again, still without a restart.
    std::fs::write(&list, format!("# revoked certificates\n{portland}\n")).expect("written");
    let back = eventually("the client being let in again", || connect().ok());
    back.envoys().expect("the client is not revoked any more");
}
