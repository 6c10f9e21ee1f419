//! SHA-256 verification against a `SHA256SUMS` list (the output format of `sha256sum`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Error, Result};

/// The conventional name of the checksum list in a data folder.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// A parsed `SHA256SUMS` list: lines `<64 hex digits>  <file name>` (`sha256sum`'s output; a `*`
/// before the name, binary mode, is accepted). Blank lines and lines starting with `#` are skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sha256Sums {
    /// Where the list came from, for error messages.
    source: PathBuf,
    entries: Vec<(String, [u8; 32])>,
}

impl Sha256Sums {
    /// Parses a list; `source` names it in error messages.
    ///
    /// # Errors
    /// [`Error::ChecksumList`] for a malformed line.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Sha256Sums;
    /// let digest = "ab".repeat(32);
    /// let sums = Sha256Sums::parse(&format!("{digest}  a.gz\n# comment\n"), "SHA256SUMS")?;
    /// assert_eq!(sums.names().collect::<Vec<_>>(), ["a.gz"]);
    /// assert!(Sha256Sums::parse("not a digest  a.gz", "SHA256SUMS").is_err());
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn parse(text: &str, source: impl Into<PathBuf>) -> Result<Self> {
        let source = source.into();
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.trim_start().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| Error::ChecksumList {
                path: source.clone(),
                line: i + 1,
                reason: reason.to_owned(),
            };
            let (hex, name) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `<64 hex digits>  <file name>`"))?;
            // `sha256sum` writes `HEX  NAME` (text mode) or `HEX *NAME` (binary mode).
            let name = name
                .strip_prefix(' ')
                .or_else(|| name.strip_prefix('*'))
                .ok_or_else(|| bad("expected two spaces, or ` *`, after the digest"))?;
            if name.is_empty() {
                return Err(bad("missing file name"));
            }
            let digest = parse_hex(hex).ok_or_else(|| bad("the digest is not 64 hex digits"))?;
            entries.push((name.to_owned(), digest));
        }
        Ok(Self { source, entries })
    }

    /// Reads and parses a list file.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; see [`Sha256Sums::parse`].
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::{self, Sha256Sums};
    /// let sums = Sha256Sums::read(&mnist::bundled_dir().join(mnist::SHA256SUMS))?;
    /// assert_eq!(sums.names().count(), 4);
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The listed file names, in list order.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Sha256Sums;
    /// let sums = Sha256Sums::parse(&format!("{}  b\n{}  a\n", "0".repeat(64), "1".repeat(64)), "list")?;
    /// assert_eq!(sums.names().collect::<Vec<_>>(), ["b", "a"]);
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// The listed digest of `name`.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::Sha256Sums;
    /// let sums = Sha256Sums::parse(&format!("{}  a\n", "01".repeat(32)), "list")?;
    /// assert_eq!(sums.get("a"), Some(&[1; 32]));
    /// assert_eq!(sums.get("b"), None);
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<&[u8; 32]> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// Checks that the file at `path` has the digest listed for `name` (the two differ for a
    /// download written to a temporary file first).
    ///
    /// # Errors
    /// [`Error::NotListed`], [`Error::Io`], or [`Error::Checksum`] on a mismatch.
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::{self, Sha256Sums};
    /// let dir = mnist::bundled_dir();
    /// let sums = Sha256Sums::read(&dir.join(mnist::SHA256SUMS))?;
    /// let name = "t10k-labels-idx1-ubyte.gz";
    /// sums.verify_file(name, &dir.join(name))?;
    /// assert!(sums.verify_file(name, &dir.join("train-labels-idx1-ubyte.gz")).is_err());
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn verify_file(&self, name: &str, path: &Path) -> Result<()> {
        let expected = self.get(name).ok_or_else(|| Error::NotListed {
            name: name.to_owned(),
            list: self.source.clone(),
        })?;
        let actual = sha256_file(path)?;
        if &actual != expected {
            return Err(Error::Checksum {
                path: path.to_owned(),
                expected: to_hex(expected),
                actual: to_hex(&actual),
            });
        }
        Ok(())
    }

    /// Checks every listed file, relative to `dir`.
    ///
    /// # Errors
    /// The first failure of [`Sha256Sums::verify_file`].
    ///
    /// ```
    /// use flspec_tch::datasets::mnist::{self, Sha256Sums};
    /// let dir = mnist::bundled_dir();
    /// Sha256Sums::read(&dir.join(mnist::SHA256SUMS))?.verify_dir(&dir)?;
    /// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
    /// ```
    pub fn verify_dir(&self, dir: &Path) -> Result<()> {
        self.names()
            .try_for_each(|name| self.verify_file(name, &dir.join(name)))
    }
}

/// Checks the files of `dir` against its `SHA256SUMS` list.
///
/// # Errors
/// See [`Sha256Sums::read`] and [`Sha256Sums::verify_dir`].
///
/// ```
/// use flspec_tch::datasets::mnist::{self, verify_dir};
/// verify_dir(&mnist::bundled_dir())?;
/// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
/// ```
pub fn verify_dir(dir: &Path) -> Result<()> {
    Sha256Sums::read(&dir.join(SHA256SUMS))?.verify_dir(dir)
}

/// The SHA-256 of a file.
///
/// # Errors
/// [`Error::Io`] when it cannot be read.
///
/// ```
/// use flspec_tch::datasets::mnist::{sha256_file, to_hex};
/// let file = std::env::temp_dir().join("flspec-sha256-doc-example");
/// std::fs::write(&file, b"abc").expect("a writable temp dir");
/// assert!(to_hex(&sha256_file(&file)?).starts_with("ba7816bf"));
/// # Ok::<(), flspec_tch::datasets::mnist::Error>(())
/// ```
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let io_err = |source: io::Error| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Lower-case hex of a digest.
///
/// ```
/// use flspec_tch::datasets::mnist::to_hex;
/// assert_eq!(to_hex(&[0x0f, 0xa0]), "0fa0");
/// ```
pub fn to_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    let digits = hex
        .chars()
        .map(|c| c.to_digit(16))
        .collect::<Option<Vec<u32>>>()?;
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (pair[0] * 16 + pair[1]) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::fs;

    use super::*;

    /// SHA-256("abc"), FIPS 180-2 appendix B.1.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digest_of_abc() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("abc"), "abc").unwrap();
        assert_eq!(to_hex(&sha256_file(&dir.path().join("abc")).unwrap()), ABC);
    }

    #[test]
    fn verifies_a_folder_and_detects_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.gz"), "abc").unwrap();
        fs::write(dir.path().join("b"), "").unwrap();
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        fs::write(
            dir.path().join(SHA256SUMS),
            format!("# comment\n{ABC}  a.gz\n\n{} *b\n", empty.to_uppercase()),
        )
        .unwrap();
        verify_dir(dir.path()).unwrap();

        fs::write(dir.path().join("a.gz"), "abd").unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Checksum { expected, .. } if expected == ABC),
            "{err:?}"
        );
        assert!(err.to_string().contains("a.gz"), "{err}");

        fs::remove_file(dir.path().join("a.gz")).unwrap();
        assert!(matches!(
            verify_dir(dir.path()).unwrap_err(),
            Error::Io { .. }
        ));
    }

    #[test]
    fn verify_file_by_listed_name() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("download.part");
        fs::write(&tmp, "abc").unwrap();
        let sums = Sha256Sums::parse(&format!("{ABC}  a.gz\n"), "<test>").unwrap();
        sums.verify_file("a.gz", &tmp).unwrap();
        let err = sums.verify_file("b.gz", &tmp).unwrap_err();
        assert!(matches!(err, Error::NotListed { .. }), "{err:?}");
    }

    #[test]
    fn malformed_lists_name_the_line() {
        for text in [
            "nothex  a\n",
            "abc\n",
            &format!("{ABC}  \n"),
            &format!("{}  a\n", &ABC[1..]),
        ] {
            let err = Sha256Sums::parse(&format!("{ABC}  ok\n{text}"), "SUMS").unwrap_err();
            assert!(
                matches!(err, Error::ChecksumList { line: 2, .. }),
                "{text:?}: {err:?}"
            );
        }
    }
}
