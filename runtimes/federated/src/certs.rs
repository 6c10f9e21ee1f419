//! Certificates for a federation: one CA, the director's certificate and one per envoy and per
//! client, made with rcgen (ECDSA P-256).
//!
//! [`create_federation`] (the `flspec-fed certs` command) writes:
//! ```text
//! DIR/ca.pem, DIR/ca.key          the federation's CA (keep ca.key offline)
//! DIR/director.pem, .key          the director (its host names or IPs as SANs)
//! DIR/envoys/<name>.pem, .key     one per envoy; the name is the subject common name
//! DIR/client.pem, .key            the program that submits runs
//! ```
//! A certificate's subject organizational unit says its role (`director`, `envoy`, `client`):
//! the director lets only `envoy` certificates register, under their own name, and only
//! `client` certificates submit runs.
//!
//! # Security
//! Private keys are written with mode 0600 and never logged. An existing CA in `DIR` is reused,
//! so running the command again adds envoys to the same federation.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::tls::CertRole;
use crate::{Error, Result};

/// The CA certificate's file name.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name.
pub const CA_KEY: &str = "ca.key";

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not before.
    pub not_before: OffsetDateTime,
    /// Not after.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (for clock skew) to `days` from now.
    pub fn days(days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }

    /// A certificate that expired a day ago (for tests of the refusal).
    pub fn expired() -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        }
    }
}

/// A certificate and its private key, in PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    key_pem: String,
}

impl Issued {
    /// The private key, in PEM.
    ///
    /// # Security
    /// A secret: write it only to a file readable by its owner.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes `<base>.pem` and `<base>.key` (mode 0600).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn write(&self, base: &Path) -> Result<(PathBuf, PathBuf)> {
        let cert = base.with_extension("pem");
        let key = base.with_extension("key");
        write_file(&cert, self.cert_pem.as_bytes(), false)?;
        write_file(&key, self.key_pem.as_bytes(), true)?;
        Ok((cert, key))
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A certificate authority that issues a federation's certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("cert_pem", &self.cert_pem)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn rcgen_err(subject: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |source| Error::Certificate {
        subject: subject.to_string(),
        source,
    }
}

impl Authority {
    /// A new CA, valid for `days`.
    ///
    /// # Errors
    /// [`Error::Certificate`] if rcgen fails.
    pub fn new(name: &str, days: u32) -> Result<Self> {
        let key = KeyPair::generate().map_err(rcgen_err(name))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err(name))?;
        let mut dn = DistinguishedName::new();
        // A distinct name per CA, so that a certificate of another federation is reported as
        // "unknown issuer" rather than as a bad signature.
        let id: String = key.public_key_raw()[1..5]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        dn.push(DnType::CommonName, format!("{name} {id}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::days(days);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.self_signed(&key).map_err(rcgen_err(name))?;
        Ok(Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA that [`create_federation`] wrote to `dir`.
    ///
    /// # Errors
    /// [`Error::ReadFile`] or [`Error::Certificate`].
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |what, name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| Error::ReadFile { what, path, source })
        };
        let cert_pem = read("CA certificate", CA_CERT)?;
        let key = KeyPair::from_pem(&read("CA private key", CA_KEY)?).map_err(rcgen_err("CA"))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(rcgen_err("CA"))?;
        Ok(Authority { issuer, cert_pem })
    }

    /// The CA certificate, in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, in PEM.
    ///
    /// # Security
    /// A secret: write it only to a file readable by its owner, ideally offline.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `name` in `role`. A director's certificate names `hosts`
    /// (IP addresses or DNS names) as subject alternative names; the others need none.
    ///
    /// # Errors
    /// [`Error::Certificate`] if a host is not a valid name, or rcgen fails.
    pub fn issue(
        &self,
        role: CertRole,
        name: &str,
        hosts: &[String],
        validity: Validity,
    ) -> Result<Issued> {
        let key = KeyPair::generate().map_err(rcgen_err(name))?;
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(rcgen_err(name))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationalUnitName, role.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match role {
            CertRole::Director => ExtendedKeyUsagePurpose::ServerAuth,
            CertRole::Envoy | CertRole::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err(name))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What [`create_federation`] makes.
#[derive(Debug, Clone)]
pub struct FederationSpec {
    /// The director's host names or IP addresses (at least one).
    pub director_hosts: Vec<String>,
    /// The envoys' names.
    pub envoys: Vec<String>,
    /// The clients' names (`client` makes `client.pem`; others `clients/<name>.pem`).
    pub clients: Vec<String>,
    /// How long the certificates are valid, in days.
    pub days: u32,
}

/// The SHA-256 fingerprint of the (first) certificate in a PEM text: 64 lowercase hex digits,
/// the digest `openssl x509 -noout -fingerprint -sha256` prints, without its colons. A line of
/// a director's revocation list (`DirectorOptions::revocation_list`).
///
/// # Errors
/// [`Error::TlsConfig`] if the text holds no PEM certificate.
pub fn fingerprint(cert_pem: &str) -> Result<String> {
    crate::tls::fingerprint_pem(cert_pem.as_bytes())
}

/// Checks that a participant name can be a certificate name and a file name.
///
/// # Errors
/// [`Error::TlsConfig`] saying what is wrong.
pub fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 64
        || name.starts_with('.')
        || name.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        });
    if bad {
        return Err(Error::TlsConfig(format!(
            "`{name}` cannot be a participant name: use 1 to 64 characters, not starting with \
             `.`, without `/ \\ : * ? \" < > |` or control characters"
        )));
    }
    Ok(())
}

/// Creates (or extends) a federation's certificates in `out`; see the [module docs](self).
/// Returns the files written.
///
/// # Errors
/// [`Error::Io`], [`Error::Certificate`], or [`Error::TlsConfig`] for a bad name.
pub fn create_federation(out: &Path, spec: &FederationSpec) -> Result<Vec<PathBuf>> {
    if spec.director_hosts.is_empty() {
        return Err(Error::TlsConfig(
            "give the director's host name or IP address (`--director-host`)".into(),
        ));
    }
    for name in spec.envoys.iter().chain(&spec.clients) {
        check_name(name)?;
    }
    create_dir(out)?;
    let mut written = Vec::new();
    let ca = if out.join(CA_CERT).exists() && out.join(CA_KEY).exists() {
        tracing::info!(dir = %out.display(), "reusing the federation's CA");
        Authority::load(out)?
    } else {
        let ca = Authority::new("flspec federation CA", spec.days.max(1) * 2)?;
        write_file(&out.join(CA_CERT), ca.cert_pem().as_bytes(), false)?;
        write_file(&out.join(CA_KEY), ca.key_pem().as_bytes(), true)?;
        written.push(out.join(CA_CERT));
        written.push(out.join(CA_KEY));
        ca
    };
    let validity = Validity::days(spec.days);
    let director = ca.issue(
        CertRole::Director,
        "director",
        &spec.director_hosts,
        validity,
    )?;
    let (c, k) = director.write(&out.join("director"))?;
    written.extend([c, k]);
    if !spec.envoys.is_empty() {
        create_dir(&out.join("envoys"))?;
    }
    for name in &spec.envoys {
        let issued = ca.issue(CertRole::Envoy, name, &[], validity)?;
        let (c, k) = issued.write(&out.join("envoys").join(name))?;
        written.extend([c, k]);
    }
    for name in &spec.clients {
        let base = if name == "client" {
            out.join("client")
        } else {
            create_dir(&out.join("clients"))?;
            out.join("clients").join(name)
        };
        let issued = ca.issue(CertRole::Client, name, &[], validity)?;
        let (c, k) = issued.write(&base)?;
        written.extend([c, k]);
    }
    Ok(written)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)
}
