//! SecAgg signing certificates: each collaborator's long-term Ed25519 identity for the
//! malicious-secure SecAgg ([`flspec::secagg::Security::Malicious`]), certified by the same CA
//! that issues the federation's mTLS certificates, so no second key distribution exists.
//!
//! - [`Authority::issue_signing`] makes an Ed25519 key and an X.509 certificate for it, issued
//!   by the federation's CA: subject common name = the collaborator's name (the envoy name, as
//!   in its TLS certificate), organizational unit `secagg`, key usage `digitalSignature` only,
//!   and the extended key usage [`SECAGG_SIGNING_EKU`] and no other: no `serverAuth` or
//!   `clientAuth`, so a signing certificate is refused by every TLS peer of the federation and
//!   a TLS certificate is refused as a signing certificate ([`SigningTrust::verify`]).
//! - [`create_federation`](crate::certs::create_federation) (`flspec-fed certs`) issues one per
//!   envoy: `DIR/envoys/<name>.secagg.crt` and `DIR/envoys/<name>.secagg.key`.
//! - [`SigningCredentials::load`] reads them back as a [`SigningIdentity`] and the certificate;
//!   [`Authority::signing_credentials`] makes them in memory for a per-run authority (the local
//!   runtime).
//! - [`SigningTrust`] holds the CA certificate every participant already has (`ca.pem`) and
//!   [`SigningTrust::verify`] checks a peer's signing certificate against it and returns the
//!   certified Ed25519 key for a [`flspec::secagg::VerifyingDirectory`].
//!
//! ```no_run
//! use flspec::secagg::{ClientId, VerifyingDirectory};
//! use flspec_federated::signing::{SigningCredentials, SigningTrust};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `flspec-fed certs --out certs --envoy Portland ...` wrote these.
//! let mine = SigningCredentials::load("certs/envoys".as_ref(), "Portland")?;
//! let trust = SigningTrust::load("certs".as_ref())?;
//! // For each collaborator's certificate, relayed by the (untrusted) aggregator:
//! let mut directory = VerifyingDirectory::new();
//! let key = trust.verify(&mine.certificate_der, "Portland")?;
//! directory.insert(ClientId(1), key)?;
//! # Ok(()) }
//! ```
//!
//! Why a separate key and not the TLS key: the TLS keys are ECDSA P-256; SecAgg signs with
//! Ed25519 (deterministic, 64-byte signatures, batch verification), and a key that signs only
//! SecAgg messages can never be made to sign something that a TLS peer would accept as a
//! handshake signature, nor the reverse (domain separation by key, on top of the distinct
//! extended key usage).
//!
//! # Security
//! The key file is a PKCS#8 Ed25519 private key (RFC 8410), PEM `PRIVATE KEY`, written with mode
//! 0600 like the TLS keys. The 32-byte secret only ever sits in buffers wiped after use (the
//! certificate is made from the public key alone), and no `Debug` output shows it.

use std::fmt;
use std::path::{Path, PathBuf};

use flspec::secagg::SigningIdentity;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
    PublicKeyData, SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use zeroize::{Zeroize, Zeroizing};

use crate::certs::{Authority, CA_CERT, Validity, check_name, with_suffix, write_file};
use crate::{Error, Result};

/// The extended key usage of a SecAgg signing certificate, "flspec SecAgg signing": the OID
/// `2.25.83197044977280047931011760762426812671`, a UUID-derived OID (ITU-T X.667 / RFC 4122
/// §4: `2.25.<UUID as an integer>`, here UUID `3e972b03-665c-4df2-97bb-308602c8e8ff`), which
/// needs no registration and collides with no one's. These are its content octets (the DER
/// value without the tag and length).
pub const SECAGG_SIGNING_EKU: &[u8] = &[
    0x69, 0xfd, 0x97, 0x95, 0xc0, 0xec, 0xe5, 0xe2, 0xb7, 0xe5, 0x97, 0xdd, 0xcc, 0x90, 0xe0, 0x96,
    0xa3, 0xd1, 0x7f,
];

/// The dotted form of [`SECAGG_SIGNING_EKU`].
pub const SECAGG_SIGNING_EKU_DOTTED: &str = "2.25.83197044977280047931011760762426812671";

/// The suffix of a signing certificate's file: `<name>.secagg.crt` (PEM).
pub const SIGNING_CERT_SUFFIX: &str = ".secagg.crt";
/// The suffix of a signing key's file: `<name>.secagg.key` (PEM PKCS#8, mode 0600).
pub const SIGNING_KEY_SUFFIX: &str = ".secagg.key";

/// The organizational unit of a signing certificate's subject (the TLS certificates carry
/// their role there; no TLS role is named `secagg`).
const SIGNING_OU: &str = "secagg";

/// The PKCS#8 v1 encoding of an Ed25519 private key before its 32-byte seed (RFC 8410 §7:
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }`),
/// what `openssl genpkey -algorithm ed25519` writes too.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The OID of Ed25519 keys (RFC 8410), DER content octets.
const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];

/// The OIDs of the TLS extended key usages (RFC 5280 §4.2.1.12), DER content octets.
const SERVER_AUTH_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const CLIENT_AUTH_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// Why a SecAgg signing certificate or its key was refused.
///
/// None of the messages carries key material; names and file paths are not secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// The certificate was not issued by the federation's CA (another federation's CA, or
    /// self-signed).
    #[error(
        "the SecAgg signing certificate presented for `{name}` was not issued by this \
         federation's CA; it must come from `flspec-fed certs` run with this federation's \
         ca.pem and ca.key"
    )]
    UnknownIssuer {
        /// The collaborator the certificate was presented for.
        name: String,
    },
    /// The certificate's CA signature does not verify: it was altered after issuance.
    #[error(
        "the SecAgg signing certificate presented for `{name}` does not carry a valid signature \
         of this federation's CA (altered after it was issued?); refuse it and re-issue it with \
         `flspec-fed certs`"
    )]
    BadSignature {
        /// The collaborator the certificate was presented for.
        name: String,
    },
    /// The certificate expired.
    #[error(
        "the SecAgg signing certificate of `{name}` expired at {not_after}; issue a new one with \
         `flspec-fed certs` (same --out folder and --envoy names)"
    )]
    Expired {
        /// The collaborator.
        name: String,
        /// When it expired (RFC 3339, UTC).
        not_after: String,
    },
    /// The certificate is not valid yet.
    #[error(
        "the SecAgg signing certificate of `{name}` is not valid before {not_before}; check this \
         machine's clock"
    )]
    NotYetValid {
        /// The collaborator.
        name: String,
        /// When it becomes valid (RFC 3339, UTC).
        not_before: String,
    },
    /// The certificate names another collaborator.
    #[error(
        "the SecAgg signing certificate presented for `{expected}` names `{found}`; a \
         collaborator may only sign as itself"
    )]
    WrongName {
        /// The name it was presented for.
        expected: String,
        /// The name in the certificate (its subject common name).
        found: String,
    },
    /// A TLS certificate was given where a SecAgg signing certificate belongs.
    #[error(
        "the certificate presented for `{name}` is a TLS certificate (serverAuth/clientAuth), \
         not a SecAgg signing certificate; use `{name}{SIGNING_CERT_SUFFIX}`, which \
         `flspec-fed certs` writes next to the TLS files"
    )]
    TlsCertificate {
        /// The collaborator.
        name: String,
    },
    /// The certificate lacks the SecAgg signing extended key usage.
    #[error(
        "the certificate presented for `{name}` is not a SecAgg signing certificate: it lacks \
         the extended key usage \"flspec SecAgg signing\" ({SECAGG_SIGNING_EKU_DOTTED}); issue \
         one with `flspec-fed certs`"
    )]
    MissingUsage {
        /// The collaborator.
        name: String,
    },
    /// The certified key is not an Ed25519 key.
    #[error(
        "the SecAgg signing certificate presented for `{name}` certifies a {algorithm} key; \
         SecAgg signs with Ed25519 only"
    )]
    NotEd25519 {
        /// The collaborator.
        name: String,
        /// The key's algorithm (its OID).
        algorithm: String,
    },
    /// The certificate is malformed or otherwise refused by the path validation.
    #[error("the SecAgg signing certificate presented for `{name}` is refused: {reason}")]
    Invalid {
        /// The collaborator.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A signing certificate or key file could not be read.
    #[error(
        "could not read the {what} {path}: {source}; issue the SecAgg signing files with \
         `flspec-fed certs --out DIR --envoy NAME ...` and point to DIR/envoys"
    )]
    ReadFile {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A signing certificate or key file does not hold what it should.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The key file holds another key than the one the certificate certifies.
    #[error(
        "{key} is not the key of {cert}; put back the two files issued together, or issue new \
         ones with `flspec-fed certs`"
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
}

/// An Ed25519 public key for rcgen: the certificate is made from the public key alone, so the
/// secret never enters rcgen.
struct Ed25519Public([u8; 32]);

impl PublicKeyData for Ed25519Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

/// A freshly issued SecAgg signing key and its certificate.
///
/// # Security
/// Holds the secret key: wiped on drop, not `Clone`, and `Debug` prints only the name and the
/// certificate.
pub struct IssuedSigning {
    name: String,
    cert_pem: String,
    cert_der: Vec<u8>,
    seed: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for IssuedSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSigning")
            .field("name", &self.name)
            .field("cert_pem", &self.cert_pem)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl IssuedSigning {
    /// The collaborator's name (the certificate's subject common name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The certificate, in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate, in DER (what travels to the other collaborators).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Writes `dir/<name>.secagg.crt` and `dir/<name>.secagg.key` (mode 0600, also if the file
    /// existed; a new file renamed into place, as the TLS keys). Returns the two paths.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let base = dir.join(&self.name);
        let cert = with_suffix(&base, SIGNING_CERT_SUFFIX);
        let key = with_suffix(&base, SIGNING_KEY_SUFFIX);
        write_file(&cert, self.cert_pem.as_bytes(), false)?;
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(&self.seed[..]);
        // The DER moves into the `Pem` and back out to be wiped; the text is wiped on drop.
        let block = pem::Pem::new("PRIVATE KEY", der);
        let text = Zeroizing::new(pem::encode(&block));
        block.into_contents().zeroize();
        write_file(&key, text.as_bytes(), true)?;
        Ok((cert, key))
    }

    /// The credentials, without going through files (the local runtime's per-run identities).
    pub fn into_credentials(self) -> SigningCredentials {
        SigningCredentials {
            name: self.name.clone(),
            identity: SigningIdentity::from_secret_bytes(&self.seed),
            certificate_der: self.cert_der.clone(),
        }
    }
}

impl Authority {
    /// Issues a SecAgg signing certificate for the collaborator `name`: a new Ed25519 key,
    /// certified by this CA with key usage `digitalSignature`, the extended key usage
    /// [`SECAGG_SIGNING_EKU`] and no TLS usage (see the [module docs](crate::signing)).
    ///
    /// # Errors
    /// [`Error::TlsConfig`] if `name` cannot be a participant name
    /// ([`check_name`]), [`Error::Certificate`] if rcgen fails.
    pub fn issue_signing(&self, name: &str, validity: Validity) -> Result<IssuedSigning> {
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed[..]).map_err(
            |_| Error::TlsConfig("the system's random number generator failed".to_string()),
        )?;
        let identity = SigningIdentity::from_secret_bytes(&seed);
        let public = Ed25519Public(identity.public_key());
        drop(identity);
        let rcgen_err = |source| Error::Certificate {
            subject: name.to_string(),
            source,
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationalUnitName, SIGNING_OU);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // rcgen's OIDs are u64 arcs; ours (2.25.<UUID>) is not, so the extension is written
        // here: ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId (RFC 5280).
        let mut eku = vec![0x30, SECAGG_SIGNING_EKU.len() as u8 + 2, 0x06];
        eku.push(SECAGG_SIGNING_EKU.len() as u8);
        eku.extend_from_slice(SECAGG_SIGNING_EKU);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(&[2, 5, 29, 37], eku));
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.signed_by(&public, &self.issuer).map_err(rcgen_err)?;
        Ok(IssuedSigning {
            name: name.to_string(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            seed,
        })
    }

    /// Issues `name`'s signing credentials in memory, valid for a day: for a per-run authority
    /// such as the local runtime's (`Authority::new("flspec local run", 1)`).
    ///
    /// # Errors
    /// As [`Authority::issue_signing`].
    pub fn signing_credentials(&self, name: &str) -> Result<SigningCredentials> {
        Ok(self
            .issue_signing(name, Validity::days(1)?)?
            .into_credentials())
    }
}

/// A collaborator's SecAgg signing identity and the certificate that certifies it.
///
/// # Security
/// `identity` holds the secret key (wiped on drop); `Debug` prints the name, the public key and
/// the certificate's length only.
pub struct SigningCredentials {
    /// The collaborator's name, as its certificate names it.
    pub name: String,
    /// The Ed25519 key that signs its SecAgg messages.
    pub identity: SigningIdentity,
    /// The certificate (DER), to present to the other collaborators, who check it with
    /// [`SigningTrust::verify`].
    pub certificate_der: Vec<u8>,
}

impl fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field(
                "certificate_der",
                &format_args!("{} bytes", self.certificate_der.len()),
            )
            .finish()
    }
}

impl SigningCredentials {
    /// Reads `dir/<name>.secagg.crt` and `dir/<name>.secagg.key`; for a federation made by
    /// `flspec-fed certs --out CERTS`, `dir` is `CERTS/envoys`. Checks that the key is the
    /// certificate's and that the certificate names `name`; the chain to the CA is checked by
    /// the recipients ([`SigningTrust::verify`]; run it on your own certificate too to catch a
    /// stale one early).
    ///
    /// # Errors
    /// [`Error::TlsConfig`] for a name that cannot be a participant name, and
    /// [`Error::Signing`] with [`SigningError::ReadFile`] (a file is missing: run
    /// `flspec-fed certs`), [`SigningError::BadFile`], [`SigningError::KeyMismatch`],
    /// [`SigningError::NotEd25519`] or [`SigningError::WrongName`].
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        check_name(name)?;
        let base = dir.join(name);
        let cert_path = with_suffix(&base, SIGNING_CERT_SUFFIX);
        let key_path = with_suffix(&base, SIGNING_KEY_SUFFIX);
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| SigningError::ReadFile {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let bad = |path: &Path, reason: String| SigningError::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let cert_pem = read("SecAgg signing certificate", &cert_path)?;
        let cert = pem::parse(&cert_pem)
            .ok()
            .filter(|p| p.tag() == "CERTIFICATE")
            .ok_or_else(|| {
                bad(
                    &cert_path,
                    "holds no PEM `CERTIFICATE`; re-issue it with `flspec-fed certs`".into(),
                )
            })?
            .into_contents();
        let key_pem = Zeroizing::new(read("SecAgg signing key", &key_path)?);
        let seed = parse_key(&key_pem).ok_or_else(|| {
            bad(
                &key_path,
                "holds no Ed25519 private key (PEM `PRIVATE KEY`, PKCS#8 as RFC 8410 and \
                 `flspec-fed certs` write it); re-issue it with `flspec-fed certs`"
                    .into(),
            )
        })?;
        let identity = SigningIdentity::from_secret_bytes(&seed);
        drop(seed);
        let facts = CertFacts::parse(&cert, name)?;
        if facts.public_key? != identity.public_key() {
            return Err(SigningError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            }
            .into());
        }
        if facts.common_name != name {
            return Err(SigningError::WrongName {
                expected: name.to_string(),
                found: facts.common_name,
            }
            .into());
        }
        Ok(SigningCredentials {
            name: name.to_string(),
            identity,
            certificate_der: cert,
        })
    }
}

/// The 32-byte seed of a PEM PKCS#8 Ed25519 private key (RFC 8410 v1 encoding), wiping the
/// decoded copies.
fn parse_key(pem_bytes: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let parsed = pem::parse(pem_bytes).ok()?;
    let tag_ok = parsed.tag() == "PRIVATE KEY";
    let mut der = Zeroizing::new(parsed.into_contents());
    if !tag_ok || der.len() != 48 || der[..16] != PKCS8_ED25519_PREFIX {
        return None;
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&der[16..]);
    der.zeroize();
    Some(seed)
}

/// What [`SigningTrust::verify`] and [`SigningCredentials::load`] read from a certificate.
struct CertFacts {
    common_name: String,
    /// The Ed25519 key, or the refusal naming the key's algorithm.
    public_key: std::result::Result<[u8; 32], SigningError>,
    tls_usage: bool,
    secagg_usage: bool,
}

impl CertFacts {
    /// Parses `der`; `name` is whom it was presented for (for the errors).
    fn parse(der: &[u8], name: &str) -> std::result::Result<Self, SigningError> {
        let invalid = |reason: String| SigningError::Invalid {
            name: name.to_string(),
            reason,
        };
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| invalid(format!("it is not a DER X.509 certificate ({e})")))?;
        if !rest.is_empty() {
            return Err(invalid("bytes follow the certificate".into()));
        }
        let spki = cert.public_key();
        let oid = &spki.algorithm.algorithm;
        let public_key = if oid.as_bytes() == ED25519_OID {
            let key: [u8; 32] = spki
                .subject_public_key
                .data
                .as_ref()
                .try_into()
                .map_err(|_| invalid("its Ed25519 public key is not 32 bytes long".into()))?;
            Ok(key)
        } else {
            let known = match oid.to_id_string().as_str() {
                "1.2.840.10045.2.1" => "ECDSA ",
                "1.2.840.113549.1.1.1" => "RSA ",
                "1.3.101.113" => "Ed448 ",
                _ => "",
            };
            Err(SigningError::NotEd25519 {
                name: name.to_string(),
                algorithm: format!("{known}({oid})"),
            })
        };
        let mut names = cert.subject().iter_common_name();
        let common_name = match (names.next(), names.next()) {
            (Some(cn), None) => cn
                .as_str()
                .map_err(|_| invalid("its subject common name is not a string".into()))?
                .to_string(),
            _ => {
                return Err(invalid(
                    "its subject must hold exactly one common name".into(),
                ));
            }
        };
        let eku = cert
            .extended_key_usage()
            .map_err(|e| invalid(format!("its extended key usage is malformed ({e})")))?;
        let (tls_usage, secagg_usage) = match eku {
            None => (false, false),
            Some(ext) => {
                let eku = ext.value;
                let other = |oid: &[u8]| eku.other.iter().any(|o| o.as_bytes() == oid);
                (
                    eku.server_auth
                        || eku.client_auth
                        || other(SERVER_AUTH_OID)
                        || other(CLIENT_AUTH_OID),
                    other(SECAGG_SIGNING_EKU),
                )
            }
        };
        Ok(CertFacts {
            common_name,
            public_key,
            tls_usage,
            secagg_usage,
        })
    }
}

/// The federation's CA as the trust anchor of SecAgg signing certificates: every collaborator
/// builds it from the `ca.pem` it already has for mTLS, and checks each peer's signing
/// certificate with it, so the (untrusted) aggregator that relays the certificates cannot
/// substitute a key.
#[derive(Clone)]
pub struct SigningTrust {
    ca_der: CertificateDer<'static>,
}

impl fmt::Debug for SigningTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningTrust")
            .field("ca_fingerprint", &crate::tls::fingerprint_of(&self.ca_der))
            .finish()
    }
}

impl SigningTrust {
    /// From the CA certificate in PEM (the first certificate of the text).
    ///
    /// # Errors
    /// [`Error::TlsConfig`] if the text holds no certificate or it cannot be a trust anchor.
    pub fn from_ca_pem(pem: &str) -> Result<Self> {
        use rustls_pki_types::pem::PemObject;
        let ca_der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            Error::TlsConfig(format!(
                "the CA certificate holds no PEM certificate ({e}); use the federation's ca.pem"
            ))
        })?;
        webpki::anchor_from_trusted_cert(&ca_der).map_err(|e| {
            Error::TlsConfig(format!(
                "the CA certificate cannot be a trust anchor ({e}); use the federation's ca.pem"
            ))
        })?;
        Ok(SigningTrust { ca_der })
    }

    /// Reads `dir/ca.pem` (the federation's certificate folder).
    ///
    /// # Errors
    /// [`Error::ReadFile`] naming the file, or as [`SigningTrust::from_ca_pem`].
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CA_CERT);
        let pem = std::fs::read_to_string(&path).map_err(|source| Error::ReadFile {
            what: "CA certificate",
            path,
            source,
        })?;
        Self::from_ca_pem(&pem)
    }

    /// Checks that `certificate_der` is a SecAgg signing certificate of the collaborator
    /// `expected_name`, issued by this CA and valid now, and returns its Ed25519 public key
    /// (32 bytes, for [`flspec::secagg::VerifyingDirectory::insert`]).
    ///
    /// Checked: the CA's signature (the chain, with rustls-webpki), the validity period at
    /// the current time, the extended key usage [`SECAGG_SIGNING_EKU`] and no TLS usage, an
    /// Ed25519 key, and a subject common name equal to `expected_name` (byte for byte).
    ///
    /// # Errors
    /// [`Error::Signing`] with [`SigningError::TlsCertificate`], [`SigningError::MissingUsage`],
    /// [`SigningError::NotEd25519`], [`SigningError::UnknownIssuer`],
    /// [`SigningError::BadSignature`], [`SigningError::Expired`],
    /// [`SigningError::NotYetValid`], [`SigningError::WrongName`] or
    /// [`SigningError::Invalid`].
    pub fn verify(&self, certificate_der: &[u8], expected_name: &str) -> Result<[u8; 32]> {
        self.verify_at(certificate_der, expected_name, UnixTime::now())
    }

    fn verify_at(
        &self,
        certificate_der: &[u8],
        expected_name: &str,
        now: UnixTime,
    ) -> Result<[u8; 32]> {
        let name = || expected_name.to_string();
        let facts = CertFacts::parse(certificate_der, expected_name)?;
        if facts.tls_usage {
            return Err(SigningError::TlsCertificate { name: name() }.into());
        }
        if !facts.secagg_usage {
            return Err(SigningError::MissingUsage { name: name() }.into());
        }
        let public_key = facts.public_key?;
        let anchor = webpki::anchor_from_trusted_cert(&self.ca_der).map_err(|e| {
            Error::TlsConfig(format!("the CA certificate cannot be a trust anchor ({e})"))
        })?;
        let der = CertificateDer::from(certificate_der);
        let end_entity =
            webpki::EndEntityCert::try_from(&der).map_err(|e| SigningError::Invalid {
                name: name(),
                reason: e.to_string(),
            })?;
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &[],
                now,
                webpki::KeyUsage::required(SECAGG_SIGNING_EKU),
                None,
                None,
            )
            .map_err(|e| chain_error(e, expected_name))?;
        if facts.common_name != expected_name {
            return Err(SigningError::WrongName {
                expected: name(),
                found: facts.common_name,
            }
            .into());
        }
        Ok(public_key)
    }
}

fn rfc3339(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{} s after 1970", t.as_secs()))
}

fn chain_error(e: webpki::Error, name: &str) -> SigningError {
    let name = name.to_string();
    match e {
        webpki::Error::UnknownIssuer => SigningError::UnknownIssuer { name },
        webpki::Error::InvalidSignatureForPublicKey => SigningError::BadSignature { name },
        webpki::Error::CertExpired { not_after, .. } => SigningError::Expired {
            name,
            not_after: rfc3339(not_after),
        },
        webpki::Error::CertNotValidYet { not_before, .. } => SigningError::NotYetValid {
            name,
            not_before: rfc3339(not_before),
        },
        webpki::Error::RequiredEkuNotFoundContext(_) => SigningError::MissingUsage { name },
        other => SigningError::Invalid {
            name,
            reason: format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EKU constant is the DER of the dotted OID it documents (decoded here by hand:
    /// x509-parser prints arcs over 64 bits in hex; `openssl x509 -text` shows the dotted
    /// form on a written certificate).
    #[test]
    fn the_eku_constant_encodes_its_documented_oid() {
        let (first, rest) = SECAGG_SIGNING_EKU.split_first().expect("not empty");
        assert_eq!(*first, 2 * 40 + 25, "arcs 2.25");
        let mut arc: u128 = 0;
        for (i, b) in rest.iter().enumerate() {
            arc = (arc << 7) | u128::from(b & 0x7f);
            assert_eq!(b & 0x80 == 0, i == rest.len() - 1, "one base-128 arc");
        }
        assert_eq!(SECAGG_SIGNING_EKU_DOTTED, format!("2.25.{arc}"));
        // And the UUID it comes from.
        let uuid = u128::from_str_radix("3e972b03665c4df297bb308602c8e8ff", 16).expect("hex");
        assert_eq!(arc, uuid);
    }

    /// A certificate valid in an hour is "not valid yet" now (clock checks both ends).
    #[test]
    fn a_certificate_from_the_future_is_not_valid_yet() {
        let ca = Authority::new("test CA", 2).expect("CA");
        let now = time::OffsetDateTime::now_utc();
        let issued = ca
            .issue_signing(
                "Portland",
                Validity {
                    not_before: now + time::Duration::hours(1),
                    not_after: now + time::Duration::days(1),
                },
            )
            .expect("issued");
        let trust = SigningTrust::from_ca_pem(ca.cert_pem()).expect("trust");
        let err = trust
            .verify(issued.cert_der(), "Portland")
            .expect_err("refused");
        assert!(
            matches!(err, Error::Signing(SigningError::NotYetValid { .. })),
            "{err}"
        );
        // An hour and a bit later it is accepted.
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            (now + time::Duration::minutes(61)).unix_timestamp() as u64,
        ));
        trust
            .verify_at(issued.cert_der(), "Portland", later)
            .expect("valid later");
    }
}
