//! Certificates for a federation: one CA, the director's certificate and one per envoy and per
//! client, made with rcgen (ECDSA P-256).
//!
//! [`create_federation`] (the `flspec-fed certs` command) writes:
//! ```text
//! DIR/ca.pem, DIR/ca.key          the federation's CA (keep ca.key offline)
//! DIR/director.pem, .key          the director (its host names or IPs as SANs)
//! DIR/envoys/<name>.pem, .key     one per envoy; the name is the subject common name
//! DIR/envoys/<name>.secagg.crt, .secagg.key
//!                                 the envoy's SecAgg signing certificate and Ed25519 key
//!                                 ([`crate::signing`])
//! DIR/client.pem, .key            the program that submits runs
//! ```
//! A certificate's subject organizational unit says its role (`director`, `envoy`, `client`):
//! the director lets only `envoy` certificates register, under their own name, and only
//! `client` certificates submit runs.
//!
//! Names are file names: `site.a` writes `envoys/site.a.pem` and `envoys/site.a.key`; a name that
//! cannot be a portable file name (a path separator, a leading `.`, a trailing `.` or space, a
//! reserved Windows device name such as `CON`) is refused, as are two names of one kind that
//! differ only in case (they would share files on macOS and Windows), and a name ending in
//! `.secagg` (the TLS files of `x.secagg` would be the signing files of `x`).
//!
//! Every run of the command issues new certificates (and new keys) for every name it is given,
//! the SecAgg signing certificates included; only the CA is kept.
//!
//! # Security
//! Private keys are written with mode 0600 (also when the file existed before, with another
//! mode) through a new file renamed into place, and never logged. An existing CA in `DIR` is
//! reused, so running the command again adds envoys to the same federation; a `ca.pem` whose
//! `ca.key` is not there (moved offline, as it should be) is refused rather than silently
//! replaced by a new CA, and an existing `ca.key` is never overwritten.

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

/// The longest validity of a certificate, in days (100 years). The CA gets twice the
/// certificates' validity, which stays far inside what X.509 dates can hold (year 9999).
pub const MAX_DAYS: u32 = 36_500;

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
    ///
    /// # Errors
    /// [`Error::Validity`] unless `1 <= days <=` [`MAX_DAYS`] (a CA gets `2 * MAX_DAYS`).
    pub fn days(days: u32) -> Result<Self> {
        Self::checked_days(days, MAX_DAYS)
    }

    fn checked_days(days: u32, max: u32) -> Result<Self> {
        if days == 0 || days > max {
            return Err(Error::Validity { days, max });
        }
        let now = OffsetDateTime::now_utc();
        Ok(Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        })
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

    /// Writes `<base>.pem` and `<base>.key` (mode 0600, also if the file existed). The
    /// suffixes are appended, never substituted: `envoys/site.a` writes `envoys/site.a.pem`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn write(&self, base: &Path) -> Result<(PathBuf, PathBuf)> {
        let cert = with_suffix(base, ".pem");
        let key = with_suffix(base, ".key");
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
    pub(crate) issuer: Issuer<'static, KeyPair>,
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
    /// A new CA, valid for `days` (at most `2 *` [`MAX_DAYS`]).
    ///
    /// # Errors
    /// [`Error::Validity`] for a validity of 0 or over the maximum, [`Error::Certificate`] if
    /// rcgen fails.
    pub fn new(name: &str, days: u32) -> Result<Self> {
        let validity = Validity::checked_days(days, 2 * MAX_DAYS)?;
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
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.self_signed(&key).map_err(rcgen_err(name))?;
        Ok(Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA that [`create_federation`] wrote to `dir`, checking that `ca.key` is the
    /// key of `ca.pem`.
    ///
    /// # Errors
    /// [`Error::ReadFile`], [`Error::Certificate`], or [`Error::CertificateAuthority`] if the
    /// key belongs to another certificate.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |what, name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| Error::ReadFile { what, path, source })
        };
        let cert_pem = read("CA certificate", CA_CERT)?;
        let key = KeyPair::from_pem(&read("CA private key", CA_KEY)?).map_err(rcgen_err("CA"))?;
        if ca_public_key(&cert_pem).as_deref() != Some(key.public_key_raw()) {
            return Err(Error::CertificateAuthority {
                dir: dir.to_path_buf(),
                reason: format!(
                    "{CA_KEY} is not the key of {CA_CERT}; put back the two files of one CA"
                ),
            });
        }
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
    /// How long the certificates are valid, in days (1 to [`MAX_DAYS`]; the CA gets twice
    /// as long).
    pub days: u32,
    /// Make a new CA although `ca.pem` exists without its `ca.key` (`flspec-fed certs
    /// --new-ca`). Every certificate the old CA issued stops being accepted. An existing
    /// `ca.key` is never overwritten, with or without this.
    pub new_ca: bool,
}

impl Default for FederationSpec {
    /// No director host (give at least one), no envoy, one client `client`, 365 days, reuse
    /// the CA.
    fn default() -> Self {
        FederationSpec {
            director_hosts: Vec::new(),
            envoys: Vec::new(),
            clients: vec!["client".to_string()],
            days: 365,
            new_ca: false,
        }
    }
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

/// Checks that a participant name can be a certificate name and a portable file name.
///
/// # Errors
/// [`Error::TlsConfig`] saying what is wrong.
pub fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 64
        || name.starts_with('.')
        || name.starts_with(char::is_whitespace)
        || name.ends_with(['.', ' '])
        || name.ends_with(char::is_whitespace)
        || name.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        });
    if bad {
        return Err(Error::TlsConfig(format!(
            "`{}` cannot be a participant name: use 1 to 64 bytes, not starting with `.` or a \
             space, not ending with `.` or a space, without `/ \\ : * ? \" < > |` or control \
             characters",
            name.escape_debug()
        )));
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let reserved = ["CON", "PRN", "AUX", "NUL"]
        .iter()
        .any(|r| stem.eq_ignore_ascii_case(r))
        || (stem.len() == 4
            && (stem[..3].eq_ignore_ascii_case("COM") || stem[..3].eq_ignore_ascii_case("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if name.to_ascii_lowercase().ends_with(".secagg") {
        return Err(Error::TlsConfig(format!(
            "`{name}` cannot be a participant name: names ending in `.secagg` are kept for the \
             SecAgg signing files (`<name>.secagg.crt`, `<name>.secagg.key`); choose another name"
        )));
    }
    if reserved {
        return Err(Error::TlsConfig(format!(
            "`{name}` cannot be a participant name: `{stem}` is a reserved device name on \
             Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9), so its certificate files could not \
             be written there; choose another name"
        )));
    }
    Ok(())
}

/// Refuses a name given twice, or two names that differ only in case (one file on
/// case-insensitive file systems).
fn check_distinct(kind: &str, names: &[String]) -> Result<()> {
    for (i, a) in names.iter().enumerate() {
        if let Some(b) = names[..i]
            .iter()
            .find(|b| b.to_lowercase() == a.to_lowercase())
        {
            let why = if a == b {
                format!("{kind} `{a}` is given twice; give each name once")
            } else {
                format!(
                    "{kind}s `{b}` and `{a}` differ only in case, so their certificate files \
                     would be the same file on case-insensitive file systems (macOS, Windows); \
                     choose names that differ otherwise"
                )
            };
            return Err(Error::TlsConfig(why));
        }
    }
    Ok(())
}

/// Creates (or extends) a federation's certificates in `out`; see the [module docs](self).
/// Returns the files written.
///
/// Reuses the CA in `out` when `ca.pem` and `ca.key` are both there; makes one when neither
/// is. Otherwise it refuses ([`Error::CertificateAuthority`]): `ca.pem` without `ca.key`
/// (bring the key back, or set [`FederationSpec::new_ca`]), or `ca.key` without `ca.pem`.
///
/// # Errors
/// [`Error::Io`], [`Error::Certificate`], [`Error::Validity`] for `days` out of range,
/// [`Error::CertificateAuthority`] as above, or [`Error::TlsConfig`] for a bad or repeated
/// name. Everything is checked before the first file is written.
pub fn create_federation(out: &Path, spec: &FederationSpec) -> Result<Vec<PathBuf>> {
    if spec.director_hosts.is_empty() {
        return Err(Error::TlsConfig(
            "give the director's host name or IP address (`--director-host`)".into(),
        ));
    }
    for name in spec.envoys.iter().chain(&spec.clients) {
        check_name(name)?;
    }
    check_distinct("envoy", &spec.envoys)?;
    check_distinct("client", &spec.clients)?;
    let validity = Validity::days(spec.days)?;
    let (ca_cert, ca_key) = (out.join(CA_CERT), out.join(CA_KEY));
    let ca_problem = |reason: String| Error::CertificateAuthority {
        dir: out.to_path_buf(),
        reason,
    };
    let reuse = match (ca_cert.exists(), ca_key.exists()) {
        (true, true) if spec.new_ca => {
            return Err(ca_problem(format!(
                "a new CA was asked for (`--new-ca`), but {CA_CERT} and {CA_KEY} are both here \
                 and {CA_KEY} is never overwritten; drop `--new-ca` to add certificates to this \
                 federation, or move both files away first to start another one"
            )));
        }
        (true, true) => true,
        (false, true) => {
            return Err(ca_problem(format!(
                "{CA_KEY} is here but {CA_CERT} is not; put {CA_CERT} back (it is not secret; \
                 every participant has a copy). {CA_KEY} is never overwritten"
            )));
        }
        (true, false) if !spec.new_ca => {
            return Err(ca_problem(format!(
                "{CA_CERT} is here but {CA_KEY} is not (moved offline?): certificates of this \
                 federation can only be issued with its CA key, so bring {CA_KEY} back into \
                 this folder and run again; or pass `--new-ca` to start a new federation, \
                 after which no certificate the old CA issued is accepted"
            )));
        }
        (true, false) | (false, false) => false,
    };
    create_dir(out)?;
    let mut written = Vec::new();
    let ca = if reuse {
        tracing::info!(dir = %out.display(), "reusing the federation's CA");
        Authority::load(out)?
    } else {
        let ca = Authority::new("flspec federation CA", spec.days.saturating_mul(2))?;
        write_file(&ca_cert, ca.cert_pem().as_bytes(), false)?;
        write_file(&ca_key, ca.key_pem().as_bytes(), true)?;
        written.push(ca_cert);
        written.push(ca_key);
        ca
    };
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
        let signing = ca.issue_signing(name, validity)?;
        let (c, k) = signing.write(&out.join("envoys"))?;
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

/// `base` with `suffix` appended to its last component (`site.a` + `.pem` = `site.a.pem`,
/// where `Path::with_extension` would give `site.pem`).
pub(crate) fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut path = base.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

/// The public key (the raw EC point) of a PEM certificate.
fn ca_public_key(cert_pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// Writes `bytes` to a new file next to `path` (mode 0600 if `secret`, from its creation) and
/// renames it over `path`: an existing file, whatever its mode, is replaced whole, a reader
/// never sees half a key, and a symbolic link at `path` is replaced, not followed.
pub(crate) fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().map_or_else(
        || std::ffi::OsString::from("file"),
        std::ffi::OsStr::to_os_string,
    );
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(&name);
    tmp_name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(e))
        }
    }
}
