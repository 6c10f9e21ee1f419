//! TLS settings: mutual TLS by default, plaintext only on explicit request.
//!
//! Every participant of a federation holds the federation's CA certificate and its own
//! certificate and key, all made by [`crate::certs`]. The director accepts a connection only
//! from a peer whose certificate the CA issued and that is valid now; it reads the peer's name
//! and role from the certificate (subject common name and organizational unit). An envoy may
//! register only under the name in its certificate. A director may also refuse certificates by
//! their SHA-256 fingerprint ([`fingerprint_of`], `DirectorOptions::revocation_list`).
//!
//! # Security
//! [`TlsConfig::insecure_plaintext`] turns all of this off; it exists for development and for
//! the tests that inspect the bytes on the wire, and logs a warning every time it is used.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName,
    RootCertStore, ServerConfig, SignatureScheme,
};

use crate::{Error, Result};

/// The role a certificate gives its holder (its subject's organizational unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// The director.
    Director,
    /// An envoy: may register under its certificate's name.
    Envoy,
    /// A user's program: may submit runs and list envoys.
    Client,
}

impl CertRole {
    /// The text in the certificate.
    pub fn as_str(self) -> &'static str {
        match self {
            CertRole::Director => "director",
            CertRole::Envoy => "envoy",
            CertRole::Client => "client",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "director" => Some(CertRole::Director),
            "envoy" => Some(CertRole::Envoy),
            "client" => Some(CertRole::Client),
            _ => None,
        }
    }
}

/// Who a verified peer certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The certificate's subject common name.
    pub name: String,
    /// Its role, if the certificate names one flspec knows.
    pub role: Option<CertRole>,
    /// The SHA-256 fingerprint of the certificate (DER), as [`fingerprint_of`] writes it.
    pub fingerprint: String,
}

/// The SHA-256 fingerprint of a DER certificate: 64 lowercase hex digits, no separators (the
/// digest `openssl x509 -noout -fingerprint -sha256` prints, without its colons). A director's
/// revocation list holds these.
pub fn fingerprint_of(der: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The SHA-256 fingerprint of the first certificate of a PEM text (see [`fingerprint_of`]).
///
/// # Errors
/// [`Error::TlsConfig`] if the text holds no PEM certificate.
pub fn fingerprint_pem(cert_pem: &[u8]) -> Result<String> {
    let certs = parse_certs("certificate", cert_pem)?;
    Ok(fingerprint_of(&certs[0]))
}

/// Says whether a certificate (by its [`fingerprint_of`]) is revoked; the director's
/// revocation list.
pub(crate) type RevocationCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The CA's verifier, then the revocation list: a revoked certificate fails the handshake with
/// the `certificate_revoked` alert.
struct RevokingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: RevocationCheck,
}

impl fmt::Debug for RevokingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokingVerifier")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for RevokingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if (self.revoked)(&fingerprint_of(end_entity)) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Reads the subject common name and organizational unit of a DER certificate.
pub(crate) fn identity_of(der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let role = subject
        .iter_organizational_unit()
        .next()
        .and_then(|ou| ou.as_str().ok())
        .and_then(CertRole::parse);
    Some(PeerIdentity {
        name,
        role,
        fingerprint: fingerprint_of(der),
    })
}

/// A participant's certificate material.
struct Material {
    roots: Arc<RootCertStore>,
    chain: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    identity: Option<PeerIdentity>,
    server_name: Option<String>,
}

enum Mode {
    Mutual(Arc<Material>),
    Plaintext,
}

/// How a participant secures its connections. See the [module docs](self).
#[derive(Clone)]
pub struct TlsConfig {
    mode: Arc<Mode>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.mode {
            Mode::Plaintext => f.write_str("TlsConfig::Plaintext"),
            Mode::Mutual(m) => f
                .debug_struct("TlsConfig::Mutual")
                .field("identity", &m.identity)
                .field("has_certificate", &m.chain.is_some())
                .field("private_key", &"<redacted>")
                .finish(),
        }
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn parse_certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::TlsConfig(format!("the {what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::TlsConfig(format!(
            "the {what} holds no certificate (expected a PEM `CERTIFICATE` block)"
        )));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Mutual TLS from PEM files: the federation's CA certificate, this participant's
    /// certificate and its private key. The files are read and checked now, so a wrong path or a
    /// key that does not belong to the certificate fails here, naming the file.
    ///
    /// # Errors
    /// [`Error::ReadFile`] or [`Error::TlsConfig`], naming the file or the problem.
    pub fn mutual(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self> {
        let (ca, cert, key) = (ca.as_ref(), cert.as_ref(), key.as_ref());
        Self::mutual_pem(
            &read("CA certificate", ca)?,
            &read("certificate", cert)?,
            &read("private key", key)?,
        )
        .map_err(|e| match e {
            Error::TlsConfig(m) => Error::TlsConfig(format!(
                "{m} (files: CA {}, certificate {}, key {})",
                ca.display(),
                cert.display(),
                key.display()
            )),
            other => other,
        })
    }

    /// Mutual TLS from PEM text (see [`mutual`](Self::mutual)).
    ///
    /// # Errors
    /// [`Error::TlsConfig`] if the PEM holds no certificate or key, or the key does not belong
    /// to the certificate.
    pub fn mutual_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self> {
        let roots = roots(ca)?;
        let chain = parse_certs("certificate", cert)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            Error::TlsConfig(format!(
                "the private key is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
            ))
        })?;
        let provider = provider();
        let signing = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| Error::TlsConfig(format!("the private key cannot be used: {e}")))?;
        let ck = rustls::sign::CertifiedKey::new(chain.clone(), signing);
        ck.keys_match().map_err(|e| {
            Error::TlsConfig(format!(
                "the private key does not belong to the certificate: {e}"
            ))
        })?;
        let identity = identity_of(&chain[0]);
        Ok(TlsConfig {
            mode: Arc::new(Mode::Mutual(Arc::new(Material {
                roots,
                chain: Some((chain, key)),
                identity,
                server_name: None,
            }))),
        })
    }

    /// The files [`crate::certs`] wrote to `dir` for one participant: `ca.pem` and
    /// `<who>.pem`/`<who>.key`, where `who` is `director`, `client` or `envoys/<name>`.
    ///
    /// # Errors
    /// As [`mutual`](Self::mutual).
    pub fn from_dir(dir: impl AsRef<Path>, who: &str) -> Result<Self> {
        let dir = dir.as_ref();
        Self::mutual(
            dir.join(crate::certs::CA_CERT),
            dir.join(format!("{who}.pem")),
            dir.join(format!("{who}.key")),
        )
    }

    /// TLS that trusts the CA but presents no certificate of its own. A director in mutual
    /// mode refuses it; it exists to test that refusal and to diagnose set-ups.
    ///
    /// # Errors
    /// [`Error::ReadFile`] or [`Error::TlsConfig`] for the CA file.
    pub fn without_client_certificate(ca: impl AsRef<Path>) -> Result<Self> {
        let roots = roots(&read("CA certificate", ca.as_ref())?)?;
        Ok(TlsConfig {
            mode: Arc::new(Mode::Mutual(Arc::new(Material {
                roots,
                chain: None,
                identity: None,
                server_name: None,
            }))),
        })
    }

    /// No TLS at all: every byte, flow states included, travels in the clear and any peer can
    /// claim any name.
    ///
    /// # Security
    /// For development and tests on a trusted machine only. Every use logs a warning.
    pub fn insecure_plaintext() -> Self {
        tracing::warn!(
            "INSECURE: TLS is OFF (plaintext mode); flow states travel unencrypted and peers are \
             not authenticated; use it only for development"
        );
        TlsConfig {
            mode: Arc::new(Mode::Plaintext),
        }
    }

    /// The name to expect in the director's certificate, when it differs from the host in the
    /// address a client or an envoy connects to.
    pub fn with_server_name(self, name: impl Into<String>) -> Self {
        match &*self.mode {
            Mode::Plaintext => self,
            Mode::Mutual(m) => TlsConfig {
                mode: Arc::new(Mode::Mutual(Arc::new(Material {
                    roots: m.roots.clone(),
                    chain: m.chain.as_ref().map(|(c, k)| (c.clone(), k.clone_key())),
                    identity: m.identity.clone(),
                    server_name: Some(name.into()),
                }))),
            },
        }
    }

    /// Whether this is plaintext mode.
    pub fn is_plaintext(&self) -> bool {
        matches!(*self.mode, Mode::Plaintext)
    }

    /// The name and role in this participant's own certificate.
    pub fn identity(&self) -> Option<&PeerIdentity> {
        match &*self.mode {
            Mode::Mutual(m) => m.identity.as_ref(),
            Mode::Plaintext => None,
        }
    }

    /// The rustls server configuration (for the director), or `None` in plaintext mode. A
    /// client certificate for which `revoked` says yes fails the handshake.
    pub(crate) fn server_config(
        &self,
        revoked: Option<RevocationCheck>,
    ) -> Result<Option<Arc<ServerConfig>>> {
        let Mode::Mutual(m) = &*self.mode else {
            tracing::warn!(
                "INSECURE: the director accepts plaintext connections without authentication"
            );
            return Ok(None);
        };
        let Some((chain, key)) = &m.chain else {
            return Err(Error::TlsConfig(
                "the director needs its own certificate and key".into(),
            ));
        };
        let verifier = WebPkiClientVerifier::builder_with_provider(m.roots.clone(), provider())
            .build()
            .map_err(|e| {
                Error::TlsConfig(format!("the CA certificate cannot verify clients: {e}"))
            })?;
        let verifier: Arc<dyn ClientCertVerifier> = match revoked {
            Some(revoked) => Arc::new(RevokingVerifier {
                inner: verifier,
                revoked,
            }),
            None => verifier,
        };
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::TlsConfig(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| Error::TlsConfig(format!("the director's certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// The rustls client configuration and the server name to verify, or `None` in plaintext
    /// mode.
    pub(crate) fn client_config(
        &self,
        host: &str,
    ) -> Result<Option<(Arc<ClientConfig>, ServerName<'static>)>> {
        let Mode::Mutual(m) = &*self.mode else {
            tracing::warn!(
                "INSECURE: connecting to the director in plaintext, without authentication"
            );
            return Ok(None);
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::TlsConfig(e.to_string()))?
            .with_root_certificates(m.roots.clone());
        let mut config = match &m.chain {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| Error::TlsConfig(format!("this participant's certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = m.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_string()).map_err(|e| {
            Error::TlsConfig(format!("`{name}` is not a valid server name for TLS: {e}"))
        })?;
        Ok(Some((Arc::new(config), name)))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &[u8]) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs("CA certificate", ca)? {
        roots
            .add(cert)
            .map_err(|e| Error::TlsConfig(format!("the CA certificate is unusable: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// Explains a TLS failure found anywhere in an error's source chain, in words that say what to
/// do; `None` if the error is not a TLS failure.
pub(crate) fn explain_error(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(explain(t));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(t) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(explain(t));
        }
        next = e.source();
    }
    None
}

/// A rustls error in words.
pub(crate) fn explain(error: &rustls::Error) -> String {
    use rustls::Error as E;
    match error {
        E::AlertReceived(AlertDescription::UnknownCA | AlertDescription::DecryptError) => {
            "the peer refused our certificate: it was not issued by the federation's CA; use the \
             certificate `flspec-fed certs` made for this federation"
                .into()
        }
        E::AlertReceived(AlertDescription::CertificateExpired) => {
            "the peer refused our certificate: it has expired (or is not valid yet); issue a new \
             one with `flspec-fed certs`"
                .into()
        }
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            "the peer requires a client certificate (mutual TLS) and we presented none; give this \
             participant its certificate and key"
                .into()
        }
        E::AlertReceived(AlertDescription::CertificateRevoked) => {
            "the director refused our certificate: it is revoked (its SHA-256 fingerprint is on \
             the director's revocation list); ask the federation's operator for a new certificate"
                .into()
        }
        E::AlertReceived(AlertDescription::BadCertificate) => {
            "the peer refused our certificate as invalid (wrong key usage or corrupt); issue a new \
             one with `flspec-fed certs`"
                .into()
        }
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the peer's certificate was not issued by our CA; check that both sides use the \
                 same federation's `ca.pem`"
                    .into()
            }
            CertificateError::Revoked => {
                "the peer's certificate is revoked (its SHA-256 fingerprint is on the revocation \
                 list)"
                    .into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the peer's certificate has expired; issue new certificates".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the peer's certificate is not valid yet; check the clocks".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the director's certificate does not name the host we connected to; connect with \
                 the host given to `flspec-fed certs --director-host`, or set the expected name \
                 with `TlsConfig::with_server_name`"
                    .into()
            }
            other => format!("the peer's certificate is invalid: {other:?}"),
        },
        E::NoCertificatesPresented => {
            "the peer presented no certificate; it must use mutual TLS".into()
        }
        other => format!("{other}"),
    }
}
