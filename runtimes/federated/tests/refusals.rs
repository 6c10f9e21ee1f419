//! Refusals: envoys with a certificate from another CA, an expired one, none, or another
//! name's; a client from another federation; and participants built from another version of
//! a flow. Each is refused quickly, with a message that says why.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Proc, Tls, certs, client, director, envoy, wait_online, within};
use flspec::Flow;
use flspec_federated::certs::{Authority, Validity};
use flspec_federated::tls::CertRole;
use flspec_federated::{Error, FederatedRuntime, TlsConfig};
use testflows::{FanOutFlow, v2};

/// Waits for a refused envoy to exit with an error; returns its stderr.
fn refused(mut proc: Proc) -> String {
    let began = Instant::now();
    let status = proc.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "{} was not refused within 20 s:\n{}",
            proc.name,
            proc.stderr()
        )
    });
    assert!(!status.success(), "{} exited successfully", proc.name);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "refusal took {:?}",
        began.elapsed()
    );
    proc.stderr()
}

fn files(dir: &Path, base: &str) -> Tls {
    Tls::Files {
        ca: dir.join("ca.pem"),
        cert: Some((
            dir.join(format!("{base}.pem")),
            dir.join(format!("{base}.key")),
        )),
    }
}

#[test]
fn bad_certificates_are_refused_with_the_reason() {
    within(Duration::from_secs(180), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &["Bengaluru", "Portland"]);
        let other = path.join("other");
        certs(&other, &["Portland"]);
        let (director_proc, addr) = director(&path, &Tls::Certs(path.clone()), &[]);

        // A certificate from another federation's CA (trusting our CA, so only the director
        // can object).
        let stranger = Tls::Files {
            ca: path.join("ca.pem"),
            cert: Some((
                other.join("envoys/Portland.pem"),
                other.join("envoys/Portland.key"),
            )),
        };
        let err = refused(envoy(&path, &addr, "Portland", &stranger, &[]));
        assert!(err.contains("not issued by the federation's CA"), "{err}");

        // An expired certificate from the right CA.
        let ca = Authority::load(&path).expect("the CA loads");
        let expired = ca
            .issue(CertRole::Envoy, "Portland", &[], Validity::expired())
            .expect("issued");
        expired.write(&path.join("expired")).expect("written");
        let err = refused(envoy(
            &path,
            &addr,
            "Portland",
            &files(&path, "expired"),
            &[],
        ));
        assert!(err.contains("expired"), "{err}");

        // No certificate at all.
        let none = Tls::Files {
            ca: path.join("ca.pem"),
            cert: None,
        };
        let err = refused(envoy(&path, &addr, "Portland", &none, &[]));
        assert!(err.contains("requires a client certificate"), "{err}");

        // A valid envoy certificate, but for another name.
        let err = refused(envoy(
            &path,
            &addr,
            "Portland",
            &files(&path, "envoys/Bengaluru"),
            &[],
        ));
        assert!(err.contains("may register only as `Bengaluru`"), "{err}");

        // The director logged each refusal with its reason, and lists no Portland.
        let log = director_proc.stderr();
        assert!(log.contains("refused a TLS connection"), "{log}");
        let runtime = client(&path, &addr);
        assert!(runtime.envoys().expect("envoys").is_empty());

        // A client of another federation fails at connect, saying why.
        let err = FederatedRuntime::connect(
            &addr,
            TlsConfig::from_dir(&other, "client").expect("client certificate"),
        )
        .expect_err("refused");
        assert!(matches!(err, Error::Tls { .. }), "{err:?}");

        // A client that does not trust the director's CA refuses the director.
        let err = FederatedRuntime::connect(
            &addr,
            TlsConfig::mutual(
                other.join("ca.pem"),
                path.join("client.pem"),
                path.join("client.key"),
            )
            .expect("files load"),
        )
        .expect_err("refused");
        assert!(err.to_string().contains("not issued by our CA"), "{err}");

        // Wrong files fail fast, naming the file.
        let err = TlsConfig::from_dir(&path, "envoys/Nobody").expect_err("no such file");
        assert!(err.to_string().contains("Nobody.pem"), "{err}");
        let err = TlsConfig::mutual(
            path.join("ca.pem"),
            path.join("envoys/Bengaluru.pem"),
            path.join("envoys/Portland.key"),
        )
        .expect_err("key of another certificate");
        assert!(err.to_string().contains("does not belong"), "{err}");
    });
}

#[test]
fn another_version_of_a_flow_is_refused_naming_both_fingerprints() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let sites = ["Bengaluru", "Portland"];
        certs(&path, &sites);
        let tls = Tls::Certs(path.clone());
        let (_director, addr) = director(&path, &tls, &[]);
        let _b = envoy(&path, &addr, "Bengaluru", &tls, &[]);
        let _p = envoy(&path, &addr, "Portland", &tls, &["--variant", "v2"]);
        let runtime = client(&path, &addr).collaborators(sites);
        wait_online(&runtime, &sites);
        let ours = FanOutFlow::graph().fingerprint();
        let theirs = v2::FanOutFlow::graph().fingerprint();
        assert_ne!(ours, theirs);

        // An envoy with another version.
        let err = FanOutFlow::default().run(&runtime).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains(&ours) && text.contains(&theirs) && text.contains("`Portland`"),
            "{text}"
        );

        // A client with another version than the director's.
        let err = v2::FanOutFlow::default()
            .run(&runtime)
            .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains(&ours) && text.contains(&theirs) && text.contains("the client"),
            "{text}"
        );

        // Runs of flows both have still work.
        let flow = testflows::FilterFlow::default().run(&runtime).expect("run");
        assert!(!flow.seen_by_join.is_empty());
    });
}

#[test]
fn oversized_states_are_refused_with_a_clear_error() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let sites = ["Bengaluru", "Portland"];
        certs(&path, &sites);
        let tls = Tls::Certs(path.clone());
        let (_director, addr) = director(&path, &tls, &["--max-message-bytes", "3000000"]);
        let _envoys: Vec<_> = sites
            .iter()
            .map(|n| envoy(&path, &addr, n, &tls, &[]))
            .collect();
        let runtime = client(&path, &addr).collaborators(sites);
        wait_online(&runtime, &sites);
        // Over the director's limit (the client's is the default 256 MiB).
        let flow = testflows::PayloadFlow {
            rounds: 1,
            payload: vec![7; 4_000_000].into(),
            ..Default::default()
        };
        let err = flow.run(&runtime).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("too large") || text.contains("limit"),
            "{text}"
        );
        // Over the client's own limit: refused before sending.
        let small = FederatedRuntime::connect_with(
            &addr,
            TlsConfig::from_dir(&path, "client").expect("certs"),
            flspec_federated::Limits {
                max_message_bytes: 2 << 20,
            },
        )
        .expect("connect");
        let err = small
            .submit(testflows::PayloadFlow {
                rounds: 1,
                payload: vec![7; 3_000_000].into(),
                ..Default::default()
            })
            .expect_err("refused");
        assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
        // The director still serves normal runs.
        testflows::PayloadFlow {
            rounds: 2,
            payload: vec![1; 1000].into(),
            ..Default::default()
        }
        .run(&runtime)
        .expect("run");
    });
}
