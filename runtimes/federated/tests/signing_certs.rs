//! SecAgg signing certificates (`flspec_federated::signing`): issued by the federation's CA,
//! written and loaded back, checked by every recipient against the CA, and refused when they
//! come from another CA, name someone else, are TLS certificates, expired, or were altered.
//! A malicious-secure SecAgg round runs on identities loaded from the files and a directory
//! built from the verified certificates.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use flspec::secagg::rng::SecretRng;
use flspec::secagg::{
    Client, ClientId, Config, Quantizer, SecAggError, Security, Server, VerifyingDirectory,
};
use flspec_federated::Error;
use flspec_federated::certs::{Authority, FederationSpec, Validity, create_federation};
use flspec_federated::signing::{
    IssuedSigning, SECAGG_SIGNING_EKU, SigningCredentials, SigningError, SigningTrust,
};
use flspec_federated::tls::CertRole;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

const CLI: &str = env!("CARGO_BIN_EXE_flspec-fed");

fn ca() -> Authority {
    Authority::new("test federation CA", 30).expect("CA")
}

fn trust(ca: &Authority) -> SigningTrust {
    SigningTrust::from_ca_pem(ca.cert_pem()).expect("trust")
}

fn issue(ca: &Authority, name: &str) -> IssuedSigning {
    ca.issue_signing(name, Validity::days(30).expect("days"))
        .expect("issued")
}

fn refusal(result: flspec_federated::Result<[u8; 32]>) -> SigningError {
    match result {
        Err(Error::Signing(e)) => e,
        Err(other) => panic!("refused with another error: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32-byte seed in a key file written by `IssuedSigning::write` (PKCS#8 v1, RFC 8410).
fn seed_of(key_file: &Path) -> Vec<u8> {
    let pem = std::fs::read(key_file).expect("key file");
    let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(&pem).expect("a PEM private key");
    let der = der.secret_der().to_vec();
    assert_eq!(der.len(), 48, "PKCS#8 v1 Ed25519");
    der[16..].to_vec()
}

#[test]
fn issued_credentials_round_trip_through_files_and_verify_to_the_identity_key() {
    let ca = ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let issued = issue(&ca, "Portland");
    let (cert, key) = issued.write(dir.path()).expect("written");
    assert_eq!(cert, dir.path().join("Portland.secagg.crt"));
    assert_eq!(key, dir.path().join("Portland.secagg.key"));

    let loaded = SigningCredentials::load(dir.path(), "Portland").expect("loads");
    assert_eq!(loaded.name, "Portland");
    assert_eq!(loaded.certificate_der, issued.cert_der());
    let public = trust(&ca)
        .verify(&loaded.certificate_der, "Portland")
        .expect("verifies");
    assert_eq!(public, loaded.identity.public_key());

    // In memory, without files (the local runtime's per-run authority).
    let local = Authority::new("flspec local run", 1).expect("CA");
    let creds = local.signing_credentials("site.a").expect("credentials");
    let public = trust(&local)
        .verify(&creds.certificate_der, "site.a")
        .expect("verifies");
    assert_eq!(public, creds.identity.public_key());
    // Each issuance is a new key.
    assert_ne!(
        local
            .signing_credentials("site.a")
            .expect("credentials")
            .identity
            .public_key(),
        public
    );
    // Trust loaded from a federation folder's ca.pem.
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).expect("ca.pem");
    SigningTrust::load(dir.path())
        .expect("trust")
        .verify(&loaded.certificate_der, "Portland")
        .expect("verifies");
}

/// Four collaborators load their identities from files, each builds the directory from the
/// certificates relayed to it, verified against the CA, and a malicious-secure round gives the
/// exact sum. A directory built from a certificate of another key makes the honest clients
/// refuse that collaborator's signature.
#[test]
fn a_malicious_secure_round_runs_on_certified_identities() {
    let ca = ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let names = ["Bengaluru", "Portland", "site.a", "São Paulo"];
    for name in names {
        issue(&ca, name).write(dir.path()).expect("written");
    }
    let trust = trust(&ca);
    let ids: Vec<ClientId> = (1..=4).map(ClientId).collect();
    let mut credentials = BTreeMap::new();
    let mut directory = VerifyingDirectory::new();
    for (&id, name) in ids.iter().zip(names) {
        let creds = SigningCredentials::load(dir.path(), name).expect("loads");
        let public = trust
            .verify(&creds.certificate_der, name)
            .expect("verifies");
        directory.insert(id, public).expect("a valid key");
        credentials.insert(id, creds);
    }
    let directory = Arc::new(directory);
    let config = Config::new(
        ids.clone(),
        3,
        2,
        Quantizer::new(1.0, 8).expect("quantizer"),
    )
    .with_security(Security::Malicious);
    let mut clients: BTreeMap<ClientId, Client> = BTreeMap::new();
    for (id, creds) in credentials {
        let mut rng = SecretRng::from_seed_ref(&[id.0 as u8; 32]);
        let client = Client::new_signed(
            config.clone(),
            id,
            creds.identity,
            directory.clone(),
            &mut rng,
        )
        .expect("client");
        clients.insert(id, client);
    }
    let mut server = Server::new(config.clone())
        .expect("server")
        .with_directory(directory.clone());
    let good = directory;
    for client in clients.values_mut() {
        let msg = client.advertise_signed().expect("advertise");
        server.receive_signed_advertise(msg).expect("received");
    }
    let all = server.broadcast_signed_keys().expect("broadcast");
    for (&id, client) in clients.iter_mut() {
        let shares = client.share_keys_signed(&all).expect("shares");
        server.receive_shares(id, shares).expect("received");
    }
    let routed = server.route_shares().expect("routed");
    for (&id, client) in clients.iter_mut() {
        let inbox = routed.get(&id).map_or(&[][..], Vec::as_slice);
        let x = [0.25 * id.0 as f32, -0.5];
        let msg = client.masked_input(&x, inbox).expect("masked");
        server.receive_masked(msg).expect("received");
    }
    let check = server.consistency_request().expect("check");
    for client in clients.values_mut() {
        let sig = client.sign_survivors(&check).expect("signed");
        server.receive_consistency(sig).expect("received");
    }
    let request = server.checked_unmask_request().expect("request");
    for client in clients.values_mut() {
        let resp = client.unmask_checked(&request).expect("unmask");
        server.receive_unmask(resp).expect("received");
    }
    let sum = server.finish().expect("sum");
    assert_eq!(sum.contributors.len(), 4);
    assert!((sum.values[0] - 2.5).abs() < 1e-3, "{:?}", sum.values);
    assert!((sum.values[1] + 2.0).abs() < 1e-3, "{:?}", sum.values);

    // A directory holding another key for client 2 (what a substituted certificate would
    // give, had it passed the CA check): client 2's advertisement is refused.
    let other = ca.signing_credentials("Portland").expect("credentials");
    let mut substituted = VerifyingDirectory::new();
    for (&id, name) in ids.iter().zip(names) {
        let creds = SigningCredentials::load(dir.path(), name).expect("loads");
        let key = if id == ClientId(2) {
            other.identity.public_key()
        } else {
            creds.identity.public_key()
        };
        substituted.insert(id, key).expect("a valid key");
    }
    let substituted = Arc::new(substituted);
    let creds = SigningCredentials::load(dir.path(), "Bengaluru").expect("loads");
    let mut client1 = Client::new_signed(
        config.clone(),
        ClientId(1),
        creds.identity,
        substituted.clone(),
        &mut SecretRng::from_seed_ref(&[9; 32]),
    )
    .expect("client 1");
    let mut server = Server::new(config).expect("server");
    for (&id, name) in ids.iter().zip(names) {
        let msg = if id == ClientId(1) {
            client1.advertise_signed().expect("advertise")
        } else {
            let creds = SigningCredentials::load(dir.path(), name).expect("loads");
            let mut c = Client::new_signed(
                server.config().clone(),
                id,
                creds.identity,
                good.clone(),
                &mut SecretRng::from_seed_ref(&[id.0 as u8; 32]),
            )
            .expect("client");
            c.advertise_signed().expect("advertise")
        };
        server.receive_signed_advertise(msg).expect("received");
    }
    let all = server.broadcast_signed_keys().expect("broadcast");
    let err = client1.share_keys_signed(&all).expect_err("refused");
    assert!(
        matches!(err, SecAggError::BadSignature { signer, .. } if signer == ClientId(2)),
        "{err}"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let ours = ca();
    let theirs = ca();
    let issued = issue(&theirs, "Portland");
    let err = refusal(trust(&ours).verify(issued.cert_der(), "Portland"));
    assert!(matches!(err, SigningError::UnknownIssuer { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not issued by this federation's CA"),
        "{err}"
    );
}

#[test]
fn a_certificate_naming_someone_else_is_refused_naming_both() {
    let ca = ca();
    let issued = issue(&ca, "Portland");
    let err = refusal(trust(&ca).verify(issued.cert_der(), "Bengaluru"));
    match &err {
        SigningError::WrongName { expected, found } => {
            assert_eq!(expected, "Bengaluru");
            assert_eq!(found, "Portland");
        }
        other => panic!("another refusal: {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("`Bengaluru`") && text.contains("`Portland`"),
        "{text}"
    );
    // Exact: no case folding, no prefix match.
    for near in ["portland", "Portland ", "Port"] {
        let err = refusal(trust(&ca).verify(issued.cert_der(), near));
        assert!(
            matches!(err, SigningError::WrongName { .. }),
            "{near}: {err}"
        );
    }
    // Loading a file pair under another name is refused too.
    let dir = tempfile::tempdir().expect("temp dir");
    issued.write(dir.path()).expect("written");
    std::fs::rename(
        dir.path().join("Portland.secagg.crt"),
        dir.path().join("Bengaluru.secagg.crt"),
    )
    .expect("renamed");
    std::fs::rename(
        dir.path().join("Portland.secagg.key"),
        dir.path().join("Bengaluru.secagg.key"),
    )
    .expect("renamed");
    let err = SigningCredentials::load(dir.path(), "Bengaluru").expect_err("refused");
    assert!(
        matches!(err, Error::Signing(SigningError::WrongName { .. })),
        "{err}"
    );
}

#[test]
fn a_tls_certificate_of_the_same_ca_is_refused_as_a_signing_certificate() {
    let ca = ca();
    let validity = Validity::days(30).expect("days");
    for role in [CertRole::Envoy, CertRole::Client, CertRole::Director] {
        let tls = ca
            .issue(role, "Portland", &["127.0.0.1".to_string()], validity)
            .expect("TLS certificate");
        let der = CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).expect("PEM");
        let err = refusal(trust(&ca).verify(&der, "Portland"));
        assert!(
            matches!(err, SigningError::TlsCertificate { .. }),
            "{role:?}: {err}"
        );
        assert!(err.to_string().contains("Portland.secagg.crt"), "{err}");
    }
}

/// The reverse: a TLS peer verifying with the federation's CA (rustls-webpki, the client and
/// server usages rustls asks for) refuses a signing certificate, so it can never serve for mTLS.
#[test]
fn a_signing_certificate_is_refused_for_tls() {
    let ca = ca();
    let issued = issue(&ca, "Portland");
    let ca_der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("PEM");
    let anchor = webpki::anchor_from_trusted_cert(&ca_der).expect("anchor");
    let der = CertificateDer::from(issued.cert_der());
    let cert = webpki::EndEntityCert::try_from(&der).expect("parses");
    let verify = |usage| {
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            &[],
            rustls_pki_types::UnixTime::now(),
            usage,
            None,
            None,
        )
        .map(|_| ())
    };
    for usage in [
        webpki::KeyUsage::client_auth(),
        webpki::KeyUsage::server_auth(),
    ] {
        let err = verify(usage).expect_err("refused for TLS");
        assert!(
            matches!(err, webpki::Error::RequiredEkuNotFoundContext(_)),
            "{err:?}"
        );
    }
    // The same chain passes with the SecAgg usage: the refusal above is the usage alone.
    verify(webpki::KeyUsage::required(SECAGG_SIGNING_EKU)).expect("SecAgg usage");
}

#[test]
fn an_expired_certificate_is_refused() {
    let ca = ca();
    let issued = ca
        .issue_signing("Portland", Validity::expired())
        .expect("issued");
    let err = refusal(trust(&ca).verify(issued.cert_der(), "Portland"));
    assert!(matches!(err, SigningError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("flspec-fed certs"), "{err}");
}

#[test]
fn an_altered_certificate_is_refused() {
    let ca = ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let issued = issue(&ca, "Portland");
    issued.write(dir.path()).expect("written");
    let public = SigningCredentials::load(dir.path(), "Portland")
        .expect("loads")
        .identity
        .public_key();
    let der = issued.cert_der().to_vec();
    // A flipped bit in the certified key (an attacker's key of its choice) or in the CA's
    // signature.
    let at = der
        .windows(32)
        .position(|w| w == public)
        .expect("the key is in the certificate");
    for i in [at, at + 31, der.len() - 1] {
        let mut tampered = der.clone();
        tampered[i] ^= 0x01;
        let err = refusal(trust(&ca).verify(&tampered, "Portland"));
        assert!(
            matches!(err, SigningError::BadSignature { .. }),
            "byte {i}: {err}"
        );
    }
    // Truncated or garbage bytes are refused, not a panic.
    for bad in [&der[..der.len() / 2], &b"not a certificate"[..], &[][..]] {
        let err = refusal(trust(&ca).verify(bad, "Portland"));
        assert!(matches!(err, SigningError::Invalid { .. }), "{err}");
    }
}

/// A certificate of the CA with the SecAgg usage but an ECDSA key (made with rcgen directly,
/// as a buggy or hostile issuer could) is refused: SecAgg verifies Ed25519 only.
#[test]
fn a_certificate_without_the_usage_or_ed25519_key_is_refused() {
    use rcgen::{BasicConstraints, CertificateParams, CustomExtension, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("ECDSA P-256 key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portland");
    let mut eku = vec![0x30, SECAGG_SIGNING_EKU.len() as u8 + 2, 0x06];
    eku.push(SECAGG_SIGNING_EKU.len() as u8);
    eku.extend_from_slice(SECAGG_SIGNING_EKU);
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(&[2, 5, 29, 37], eku));
    let leaf = params.signed_by(&leaf_key, &issuer).expect("leaf");
    let trust = SigningTrust::from_ca_pem(&ca_cert.pem()).expect("trust");
    let err = refusal(trust.verify(leaf.der(), "Portland"));
    assert!(matches!(err, SigningError::NotEd25519 { .. }), "{err}");
    assert!(err.to_string().contains("ECDSA"), "{err}");

    // An Ed25519 certificate of this CA without the SecAgg usage (no extended key usage at
    // all, or another one) is refused too.
    let ed_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
    for usages in [vec![], vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning]] {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Portland");
        params.extended_key_usages = usages;
        let leaf = params.signed_by(&ed_key, &issuer).expect("leaf");
        let err = refusal(trust.verify(leaf.der(), "Portland"));
        assert!(matches!(err, SigningError::MissingUsage { .. }), "{err}");
    }
}

#[test]
fn a_key_file_of_another_certificate_is_refused() {
    let ca = ca();
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    issue(&ca, "Portland").write(a.path()).expect("written");
    issue(&ca, "Portland").write(b.path()).expect("written");
    std::fs::copy(
        b.path().join("Portland.secagg.key"),
        a.path().join("Portland.secagg.key"),
    )
    .expect("copied");
    let err = SigningCredentials::load(a.path(), "Portland").expect_err("refused");
    assert!(
        matches!(err, Error::Signing(SigningError::KeyMismatch { .. })),
        "{err}"
    );
    // A TLS key in place of the signing key: not an Ed25519 key.
    let tls = ca
        .issue(
            CertRole::Envoy,
            "Portland",
            &[],
            Validity::days(1).expect("days"),
        )
        .expect("TLS");
    std::fs::write(a.path().join("Portland.secagg.key"), tls.key_pem()).expect("written");
    let err = SigningCredentials::load(a.path(), "Portland").expect_err("refused");
    assert!(
        matches!(err, Error::Signing(SigningError::BadFile { .. })),
        "{err}"
    );
    assert!(!err.to_string().contains(tls.key_pem()), "{err}");
}

#[test]
fn missing_files_name_the_file_and_the_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = SigningCredentials::load(dir.path(), "Portland").expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("Portland.secagg.crt"), "{text}");
    assert!(text.contains("flspec-fed certs"), "{text}");
    issue(&ca(), "Portland").write(dir.path()).expect("written");
    std::fs::remove_file(dir.path().join("Portland.secagg.key")).expect("removed");
    let text = SigningCredentials::load(dir.path(), "Portland")
        .expect_err("refused")
        .to_string();
    assert!(text.contains("Portland.secagg.key"), "{text}");
    assert!(text.contains("flspec-fed certs"), "{text}");
    // Names are checked before any path is built.
    let err = SigningCredentials::load(dir.path(), "../Portland").expect_err("refused");
    assert!(
        err.to_string().contains("cannot be a participant name"),
        "{err}"
    );
}

#[test]
fn debug_never_shows_the_secret_key() {
    let ca = ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let issued = issue(&ca, "Portland");
    let (_, key) = issued.write(dir.path()).expect("written");
    let seed = hex(&seed_of(&key));
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let base64_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let loaded = SigningCredentials::load(dir.path(), "Portland").expect("loads");
    for shown in [
        format!("{issued:?}"),
        format!("{loaded:?}"),
        format!("{loaded:#?}"),
    ] {
        assert!(!shown.contains(&seed), "{shown}");
        assert!(!shown.contains(&base64_body), "{shown}");
        assert!(shown.contains("Portland"), "{shown}");
    }
    // The seed in the file is the identity's (the file is what was issued).
    let from_seed = flspec::secagg::SigningIdentity::from_secret_bytes(
        &seed_of(&key).try_into().expect("32 bytes"),
    );
    assert_eq!(from_seed.public_key(), loaded.identity.public_key());
}

#[cfg(unix)]
#[test]
fn the_key_file_has_mode_0600_also_when_it_existed() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let ca = ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = issue(&ca, "Portland").write(dir.path()).expect("written");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&cert), 0o644);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    issue(&ca, "Portland")
        .write(dir.path())
        .expect("written again");
    assert_eq!(mode(&key), 0o600);
}

#[test]
fn names_ending_in_secagg_are_refused() {
    // Envoy `x.secagg`'s TLS key would be `envoys/x.secagg.key`, the signing key of `x`.
    let dir = tempfile::tempdir().expect("temp dir");
    for bad in ["x.secagg", "X.SecAgg"] {
        let spec = FederationSpec {
            director_hosts: vec!["127.0.0.1".into()],
            envoys: vec!["x".into(), bad.into()],
            ..FederationSpec::default()
        };
        let err = create_federation(dir.path(), &spec).expect_err("refused");
        assert!(err.to_string().contains(".secagg"), "{err}");
        assert!(
            ca().issue_signing(bad, Validity::days(1).expect("days"))
                .is_err()
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    // Names that only look like it, or whose bytes 7 from the end fall inside a character,
    // are fine (and the check does not panic on them).
    for good in ["x.secagg2", "secagg", "xxéabcdef", "São Paulo.secagğ"] {
        ca().issue_signing(good, Validity::days(1).expect("days"))
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

/// `flspec-fed certs` (and `create_federation`) write a signing pair per envoy next to its TLS
/// files, and every run issues new ones, as it does for the TLS certificates.
#[test]
fn flspec_fed_certs_writes_a_signing_pair_per_envoy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("certs");
    let run = || {
        let o = Command::new(CLI)
            .args([
                "certs",
                "--out",
                out.to_str().expect("utf-8 path"),
                "--director-host",
                "127.0.0.1",
                "--envoy",
                "Bengaluru",
                "--envoy",
                "site.a",
            ])
            .env("RUST_LOG", "off")
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let stdout = run();
    let trust = SigningTrust::load(&out).expect("trust");
    let envoys = out.join("envoys");
    let mut first = Vec::new();
    for name in ["Bengaluru", "site.a"] {
        assert!(stdout.contains(&format!("{name}.secagg.crt")), "{stdout}");
        assert!(stdout.contains(&format!("{name}.secagg.key")), "{stdout}");
        let creds = SigningCredentials::load(&envoys, name).expect("loads");
        let public = trust
            .verify(&creds.certificate_der, name)
            .expect("verifies");
        assert_eq!(public, creds.identity.public_key());
        first.push(public);
    }
    // No signing pair for the director or the client.
    assert!(!out.join("director.secagg.crt").exists());
    assert!(!out.join("client.secagg.crt").exists());
    // Run again: same CA, new signing keys (re-issued, like the TLS keys).
    run();
    for (name, old) in ["Bengaluru", "site.a"].into_iter().zip(first) {
        let creds = SigningCredentials::load(&envoys, name).expect("loads");
        let public = trust
            .verify(&creds.certificate_der, name)
            .expect("verifies");
        assert_ne!(public, old, "{name}");
    }
    // The library call writes the same files and lists them.
    let spec = FederationSpec {
        director_hosts: vec!["127.0.0.1".into()],
        envoys: vec!["Portland".into()],
        ..FederationSpec::default()
    };
    let written = create_federation(&out, &spec).expect("certificates");
    assert!(
        written.contains(&envoys.join("Portland.secagg.crt")),
        "{written:?}"
    );
    assert!(
        written.contains(&envoys.join("Portland.secagg.key")),
        "{written:?}"
    );
}
