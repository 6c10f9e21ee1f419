//! Downloading full MNIST from its public mirrors, verified by SHA-256 before use.
//!
//! Each file is fetched from the first mirror that serves it with the pinned digest, written to a
//! temporary name, verified and only then renamed into place; a `SHA256SUMS` is written beside
//! the files so that [`super::verify_dir`] can check the folder later. Files already present
//! with the right digest are not fetched again.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::checksum::{Sha256Sums, to_hex};
use super::{Error, Result, SHA256SUMS};

/// The mirrors tried in order (torchvision's first).
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// SHA-256 of the four files of the original MNIST distribution.
pub const MNIST_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];

/// The largest file accepted from a mirror (the biggest MNIST file is 9.9 MB).
const MAX_BYTES: u64 = 64 << 20;

/// Downloads full MNIST into `dir` from [`MIRRORS`], verifying [`MNIST_SHA256`].
///
/// # Errors
/// [`Error::Download`] naming the file and what every mirror answered; [`Error::Io`] if `dir`
/// cannot be written.
///
/// ```no_run
/// use flspec_tch::datasets::mnist::{self, Mnist};
/// let dir = std::path::Path::new("data/mnist-full");
/// mnist::download::download(dir)?; // 4 files, ~11 MB, each checked against its SHA-256
/// let data = Mnist::load(dir)?;
/// assert_eq!(data.train.len(), 60_000);
/// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
/// ```
pub fn download(dir: &Path) -> Result<()> {
    download_from(dir, &MIRRORS, &MNIST_SHA256, &mut http_get)
}

/// [`download`] with other mirrors, digests and transport (`fetch` maps a URL to its bytes).
///
/// # Errors
/// As [`download`].
///
/// ```
/// use flspec_tch::datasets::mnist::download::download_from;
/// let dir = tempfile_dir();
/// // A transport that never reaches a mirror: every file fails, and nothing is left behind.
/// let mut offline = |url: &str| Err::<Vec<u8>, _>(format!("offline: {url}"));
/// let err = download_from(&dir, &["https://mirror.invalid/"], &[("a.gz", "00")], &mut offline);
/// assert!(err.is_err());
/// assert!(!dir.join("a.gz").exists());
/// # fn tempfile_dir() -> std::path::PathBuf {
/// #     let dir = std::env::temp_dir().join(format!("flspec-download-doc-{}", std::process::id()));
/// #     std::fs::create_dir_all(&dir).expect("a writable temp dir");
/// #     dir
/// # }
/// ```
pub fn download_from(
    dir: &Path,
    mirrors: &[&str],
    files: &[(&str, &str)],
    fetch: &mut dyn FnMut(&str) -> std::result::Result<Vec<u8>, String>,
) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let list: String = files
        .iter()
        .map(|(name, digest)| format!("{digest}  {name}\n"))
        .collect();
    let sums = Sha256Sums::parse(&list, dir.join(SHA256SUMS))?;
    for (name, _) in files {
        let target = dir.join(name);
        if target.is_file() && sums.verify_file(name, &target).is_ok() {
            continue;
        }
        let mut reasons = Vec::new();
        let mut done = false;
        for mirror in mirrors {
            let url = format!("{mirror}{name}");
            let bytes = match fetch(&url) {
                Ok(b) => b,
                Err(e) => {
                    reasons.push(format!("{url}: {e}"));
                    continue;
                }
            };
            let tmp = dir.join(format!("{name}.part"));
            fs::write(&tmp, &bytes).map_err(io(&tmp))?;
            match sums.verify_file(name, &tmp) {
                Ok(()) => {
                    fs::rename(&tmp, &target).map_err(io(&target))?;
                    done = true;
                    break;
                }
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    let digest = to_hex(&Sha256::digest(&bytes));
                    reasons.push(format!("{url}: wrong SHA-256 {digest} ({e})"));
                }
            }
        }
        if !done {
            return Err(Error::Download {
                name: (*name).to_string(),
                reasons: reasons.join("; "),
            });
        }
    }
    let list_path = dir.join(SHA256SUMS);
    fs::write(&list_path, list).map_err(io(&list_path))?;
    Ok(())
}

fn http_get(url: &str) -> std::result::Result<Vec<u8>, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn digest(bytes: &[u8]) -> String {
        to_hex(&Sha256::digest(bytes))
    }

    #[test]
    fn a_file_with_the_pinned_digest_is_kept_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let d = digest(b"good");
        let files = [("a.gz", d.as_str())];
        let mut fetch = |url: &str| {
            assert_eq!(url, "mirror://one/a.gz");
            Ok(b"good".to_vec())
        };
        download_from(dir.path(), &["mirror://one/"], &files, &mut fetch).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), b"good");
        super::super::verify_dir(dir.path()).unwrap();
    }

    #[test]
    fn a_tampered_mirror_is_refused_and_the_next_one_used() {
        let dir = tempfile::tempdir().unwrap();
        let d = digest(b"good");
        let files = [("a.gz", d.as_str())];
        let mut fetch = |url: &str| {
            Ok(if url.starts_with("mirror://evil/") {
                b"evil".to_vec()
            } else {
                b"good".to_vec()
            })
        };
        download_from(
            dir.path(),
            &["mirror://evil/", "mirror://good/"],
            &files,
            &mut fetch,
        )
        .unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), b"good");
        assert!(!dir.path().join("a.gz.part").exists());
    }

    #[test]
    fn every_mirror_wrong_is_an_error_naming_the_file_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = digest(b"good");
        let files = [("a.gz", d.as_str())];
        let mut fetch = |url: &str| {
            if url.contains("down") {
                Err("connection refused".to_string())
            } else {
                Ok(b"evil".to_vec())
            }
        };
        let err = download_from(
            dir.path(),
            &["mirror://down/", "mirror://evil/"],
            &files,
            &mut fetch,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a.gz"), "{err}");
        assert!(err.contains("connection refused"), "{err}");
        assert!(err.contains("wrong SHA-256"), "{err}");
        assert!(!dir.path().join("a.gz").exists());
    }

    #[test]
    fn files_already_verified_are_not_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.gz"), b"good").unwrap();
        let d = digest(b"good");
        let files = [("a.gz", d.as_str())];
        let mut fetch =
            |_: &str| -> std::result::Result<Vec<u8>, String> { panic!("no fetch expected") };
        download_from(dir.path(), &["mirror://x/"], &files, &mut fetch).unwrap();
    }
}
