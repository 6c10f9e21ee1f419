//! The certificate tool, `flspec-fed certs` and `flspec-fed fingerprint`, and the flags of the
//! binaries: names that are file names, key modes, validity limits, a CA key kept offline, and
//! TLS flags that conflict instead of one silently winning.

use std::path::Path;
use std::process::{Command, Output};

use flspec_federated::certs::{FederationSpec, MAX_DAYS, create_federation};
use flspec_federated::{Error, TlsConfig};

const CLI: &str = env!("CARGO_BIN_EXE_flspec-fed");
const BIN: &str = env!("CARGO_BIN_EXE_fed-testbin");

fn spec(envoys: &[&str]) -> FederationSpec {
    FederationSpec {
        director_hosts: vec!["127.0.0.1".into()],
        envoys: envoys.iter().map(|s| s.to_string()).collect(),
        days: 30,
        ..FederationSpec::default()
    }
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn dotted_envoy_names_get_files_of_their_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path();
    create_federation(out, &spec(&["site.a", "site.b"])).expect("certificates");
    for name in ["site.a", "site.b"] {
        let tls = TlsConfig::from_dir(out, &format!("envoys/{name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let identity = tls.identity().expect("a certificate");
        assert_eq!(identity.name, name);
    }
    assert_ne!(
        read(&out.join("envoys/site.a.key")),
        read(&out.join("envoys/site.b.key"))
    );
    assert!(!out.join("envoys/site.key").exists());
    assert!(!out.join("envoys/site.pem").exists());

    // The same through the command.
    let out = dir.path().join("cli");
    let o = run(
        CLI,
        &[
            "certs",
            "--out",
            out.to_str().expect("utf-8 path"),
            "--director-host",
            "127.0.0.1",
            "--envoy",
            "lab.eu",
            "--envoy",
            "lab.us",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["lab.eu", "lab.us"] {
        let identity = TlsConfig::from_dir(&out, &format!("envoys/{name}"))
            .expect("loads")
            .identity()
            .expect("a certificate")
            .clone();
        assert_eq!(identity.name, name);
    }
}

#[test]
fn names_that_are_not_portable_file_names_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for bad in [
        "../x",
        "x/y",
        "a\\b",
        ".hidden",
        "trailing.",
        "trailing ",
        " leading",
        "CON",
        "nul.a",
        "com1",
        "Lpt9.site",
        "",
        "tab\there",
    ] {
        let err = create_federation(dir.path(), &spec(&[bad]))
            .expect_err(&format!("`{}` is refused", bad.escape_debug()));
        assert!(
            err.to_string().contains("cannot be a participant name"),
            "{bad}: {err}"
        );
    }
    for (names, says) in [
        (&["Site", "site"][..], "differ only in case"),
        (&["Portland", "Portland"][..], "given twice"),
    ] {
        let err = create_federation(dir.path(), &spec(names)).expect_err("refused");
        assert!(err.to_string().contains(says), "{names:?}: {err}");
    }
    // Nothing was written by a refused call.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    // Names that merely look like those are fine.
    create_federation(
        dir.path(),
        &spec(&["console", "COM10", "site.a", "São Paulo"]),
    )
    .expect("portable names");
}

#[cfg(unix)]
#[test]
fn every_key_file_ends_with_mode_0600_also_when_it_existed() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path();
    let keys = [
        "ca.key",
        "director.key",
        "client.key",
        "envoys/Portland.key",
    ];
    create_federation(out, &spec(&["Portland"])).expect("certificates");
    for k in keys {
        assert_eq!(mode(&out.join(k)), 0o600, "{k}");
    }
    // Someone loosened the modes; running the command again rewrites the keys, 0600.
    for k in ["director.key", "client.key", "envoys/Portland.key"] {
        std::fs::set_permissions(out.join(k), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let before = read(&out.join("envoys/Portland.key"));
    create_federation(out, &spec(&["Portland"])).expect("certificates again");
    for k in keys {
        assert_eq!(mode(&out.join(k)), 0o600, "{k} after a rewrite");
    }
    assert_ne!(read(&out.join("envoys/Portland.key")), before, "a new key");
    // A symbolic link where a key goes is replaced, not written through.
    let elsewhere = out.join("elsewhere.txt");
    std::fs::write(&elsewhere, "not a key").expect("write");
    std::fs::remove_file(out.join("client.key")).expect("rm");
    std::os::unix::fs::symlink(&elsewhere, out.join("client.key")).expect("symlink");
    create_federation(out, &spec(&["Portland"])).expect("certificates again");
    assert_eq!(read(&elsewhere), b"not a key");
    assert_eq!(mode(&out.join("client.key")), 0o600);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(out)
        .expect("dir")
        .chain(std::fs::read_dir(out.join("envoys")).expect("dir"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn days_out_of_range_are_refused_with_the_maximum_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    for days in [0, MAX_DAYS + 1, u32::MAX / 2 + 1, u32::MAX] {
        let err = create_federation(
            dir.path(),
            &FederationSpec {
                days,
                ..spec(&["Portland"])
            },
        )
        .expect_err("refused");
        assert!(
            matches!(err, Error::Validity { max: MAX_DAYS, .. }),
            "{days}: {err:?}"
        );
        assert!(err.to_string().contains("36500"), "{err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    create_federation(
        dir.path(),
        &FederationSpec {
            days: MAX_DAYS,
            ..spec(&["Portland"])
        },
    )
    .expect("the maximum works");

    let out = dir.path().join("cli");
    for days in ["4294967295", "36501", "0"] {
        let o = run(
            CLI,
            &[
                "certs",
                "--out",
                out.to_str().expect("utf-8 path"),
                "--director-host",
                "127.0.0.1",
                "--days",
                days,
            ],
        );
        let text = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{days}: {text}");
        assert!(text.contains("1..=36500"), "{days}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn a_ca_whose_key_is_offline_is_not_silently_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path();
    create_federation(out, &spec(&["Bengaluru"])).expect("certificates");
    let ca_pem = read(&out.join("ca.pem"));
    let ca_key = read(&out.join("ca.key"));

    // The key moved offline, as the docs advise: adding an envoy is refused, saying what to do.
    let offline = dir.path().join("offline.key");
    std::fs::rename(out.join("ca.key"), &offline).expect("move the key");
    let err = create_federation(out, &spec(&["Portland"])).expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, Error::CertificateAuthority { .. }), "{err:?}");
    assert!(
        text.contains("bring ca.key back") && text.contains("--new-ca"),
        "{text}"
    );
    assert_eq!(read(&out.join("ca.pem")), ca_pem, "ca.pem untouched");
    assert!(!out.join("envoys/Portland.pem").exists());
    assert!(!out.join("ca.key").exists());

    // The same through the command.
    let dir_arg = out.to_str().expect("utf-8 path");
    let args = [
        "certs",
        "--out",
        dir_arg,
        "--director-host",
        "127.0.0.1",
        "--envoy",
        "Portland",
    ];
    let o = run(CLI, &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--new-ca"), "{}", stderr(&o));
    assert_eq!(read(&out.join("ca.pem")), ca_pem, "ca.pem untouched");

    // With the key back, the same CA issues the new certificate.
    std::fs::rename(&offline, out.join("ca.key")).expect("bring the key back");
    let o = run(CLI, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&out.join("ca.pem")), ca_pem, "the same CA");
    assert_eq!(read(&out.join("ca.key")), ca_key, "the same CA key");

    // `--new-ca` with both files there is refused: ca.key is never overwritten.
    let mut with_new = args.to_vec();
    with_new.push("--new-ca");
    let o = run(CLI, &with_new);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("never overwritten"), "{}", stderr(&o));
    assert_eq!(read(&out.join("ca.key")), ca_key);

    // ca.key without ca.pem is refused too.
    std::fs::rename(out.join("ca.pem"), dir.path().join("ca.pem.away")).expect("move");
    let err = create_federation(out, &spec(&["Portland"])).expect_err("refused");
    assert!(err.to_string().contains("put ca.pem back"), "{err}");
    assert_eq!(read(&out.join("ca.key")), ca_key);
    std::fs::rename(dir.path().join("ca.pem.away"), out.join("ca.pem")).expect("move back");

    // An explicit `--new-ca` with the key gone starts a new federation.
    std::fs::rename(out.join("ca.key"), &offline).expect("move the key");
    let o = run(CLI, &with_new);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(read(&out.join("ca.pem")), ca_pem, "a new CA");
    TlsConfig::from_dir(out, "envoys/Portland").expect("a certificate of the new CA");
}

#[test]
fn a_ca_key_of_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    create_federation(&a, &spec(&[])).expect("a");
    create_federation(&b, &spec(&[])).expect("b");
    std::fs::copy(b.join("ca.key"), a.join("ca.key")).expect("copy");
    let err = create_federation(&a, &spec(&["Portland"])).expect_err("refused");
    assert!(
        err.to_string().contains("is not the key of ca.pem"),
        "{err}"
    );
}

#[test]
fn plaintext_and_certificates_conflict_instead_of_one_winning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().to_str().expect("utf-8 path");
    for sub in [
        &["envoys", "--director", "127.0.0.1:1"][..],
        &["status", "--director", "127.0.0.1:1", "--run", "r"][..],
    ] {
        let mut args = sub.to_vec();
        args.extend(["--certs", certs, "--plaintext"]);
        let o = run(CLI, &args);
        let text = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{sub:?}: {text}");
        assert!(text.contains("cannot be used with"), "{text}");
    }
    for tls in [
        &["--plaintext", "--certs", certs][..],
        &["--plaintext", "--ca", "ca.pem"][..],
        &["--certs", certs, "--ca", "ca.pem"][..],
        &["--ca", "ca.pem", "--cert", "c.pem"][..],
    ] {
        let mut args = vec!["envoy", "--director", "127.0.0.1:1", "--name", "a"];
        args.extend(tls);
        let o = run(BIN, &args);
        let text = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{tls:?}: {text}");
        assert!(
            text.contains("cannot be used with") || text.contains("required"),
            "{text}"
        );
    }
}

#[test]
fn fingerprint_prints_the_sha256_of_the_certificate() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path();
    create_federation(out, &spec(&["Portland"])).expect("certificates");
    let mut seen = Vec::new();
    for file in ["client.pem", "envoys/Portland.pem", "ca.pem"] {
        let path = out.join(file);
        let o = run(CLI, &["fingerprint", path.to_str().expect("utf-8 path")]);
        assert!(o.status.success(), "{}", stderr(&o));
        let printed = String::from_utf8(o.stdout).expect("utf-8");
        let printed = printed.trim_end();
        let der = CertificateDer::from_pem_file(&path).expect("a PEM certificate");
        let expected: String = ring::digest::digest(&ring::digest::SHA256, &der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(printed, expected, "{file}");
        seen.push(expected);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
    // A file that is not a certificate, or none, is an error naming it.
    for bad in ["client.key", "missing.pem"] {
        let path = out.join(bad);
        let o = run(CLI, &["fingerprint", path.to_str().expect("utf-8 path")]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(bad), "{}", stderr(&o));
    }
}
