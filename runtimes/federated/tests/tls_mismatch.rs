//! One side speaks TLS and the other does not: the error says so and names the flag to change,
//! instead of `h2 protocol error: http2 error` or a corrupt TLS message.

mod common;

use std::time::Duration;

use common::{Proc, Tls, certs, director, envoy, within};
use flspec_federated::{Error, FederatedRuntime, TlsConfig};

fn refused(mut proc: Proc) -> String {
    let status = proc.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "{} was not refused within 20 s:\n{}",
            proc.name,
            proc.stderr()
        )
    });
    assert!(!status.success(), "{} exited successfully", proc.name);
    proc.stderr()
}

#[test]
fn a_plaintext_client_of_a_tls_director_is_told_the_director_speaks_tls() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &["Portland"]);
        let (director_proc, addr) = director(&path, &Tls::Certs(path.clone()), &[]);

        let err =
            FederatedRuntime::connect(&addr, TlsConfig::insecure_plaintext()).expect_err("refused");
        let text = err.to_string();
        assert!(matches!(err, Error::Tls { .. }), "{err:?}");
        assert!(
            text.contains("the director speaks TLS") && text.contains("--plaintext"),
            "{text}"
        );
        assert!(!text.contains("h2 protocol error"), "{text}");

        // A plaintext envoy stops with the same explanation.
        let err = refused(envoy(&path, &addr, "Portland", &Tls::Plain, &[]));
        assert!(err.contains("the director speaks TLS"), "{err}");

        // The director's log says what happened too.
        let log = director_proc.stderr();
        assert!(log.contains("the peer speaks plaintext"), "{log}");
    });
}

#[test]
fn a_tls_client_of_a_plaintext_director_is_told_the_director_speaks_plaintext() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &["Portland"]);
        let (director_proc, addr) = director(&path, &Tls::Plain, &[]);

        let err = FederatedRuntime::connect(
            &addr,
            TlsConfig::from_dir(&path, "client").expect("client certificate"),
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(matches!(err, Error::Tls { .. }), "{err:?}");
        assert!(
            text.contains("the director speaks plaintext") && text.contains("--certs"),
            "{text}"
        );

        // A TLS envoy stops with the same explanation.
        let err = refused(envoy(
            &path,
            &addr,
            "Portland",
            &Tls::Certs(path.clone()),
            &[],
        ));
        assert!(err.contains("the director speaks plaintext"), "{err}");

        // The director's log says what happened too.
        let log = director_proc.stderr();
        assert!(log.contains("a peer connects with TLS"), "{log}");

        // Both sides in plaintext still work.
        let runtime =
            FederatedRuntime::connect(&addr, TlsConfig::insecure_plaintext()).expect("connects");
        assert!(runtime.envoys().expect("envoys").is_empty());
    });
}
