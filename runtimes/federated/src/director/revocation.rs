//! The director's revocation list: the SHA-256 fingerprints of certificates it refuses, read
//! from a file that the running director reloads when it changes.
//!
//! The file holds one fingerprint per line, as [`crate::certs::fingerprint`] prints it (64 hex
//! digits; upper case and the colons of `openssl x509 -noout -fingerprint -sha256` are
//! accepted too). `#` starts a comment; blank lines are ignored.
//!
//! The director looks at the file's modification time and size at most once a second, on each
//! handshake and each call (and every half second for the envoys' open sessions); when they
//! change it reads the file again. A file that cannot be read or parsed while the director runs
//! keeps the last good list in force and logs a warning: removing or breaking the file never
//! un-revokes a certificate.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::{Error, Result};

/// How often the file is looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

struct State {
    revoked: HashSet<String>,
    /// The file's modification time and size when it was last read.
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// A revocation list backed by a file. See the [module docs](self).
pub(crate) struct Revocations {
    path: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn stamp_of(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len()))
}

/// Parses a revocation list (see the [module docs](self)).
///
/// # Errors
/// A message naming the first bad line.
pub(crate) fn parse(text: &str) -> std::result::Result<HashSet<String>, String> {
    let mut revoked = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let hex: String = entry
            .chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "line {}: `{entry}` is not a SHA-256 fingerprint (64 hex digits, as \
                 `flspec_federated::certs::fingerprint` prints it)",
                number + 1
            ));
        }
        revoked.insert(hex);
    }
    Ok(revoked)
}

impl Revocations {
    /// Reads the list at `path`.
    ///
    /// # Errors
    /// [`Error::ReadFile`] if it cannot be read, [`Error::TlsConfig`] if a line is not a
    /// fingerprint.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let read_error = |source| Error::ReadFile {
            what: "revocation list",
            path: path.to_path_buf(),
            source,
        };
        let stamp = stamp_of(path).map_err(read_error)?;
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let revoked = parse(&text).map_err(|e| {
            Error::TlsConfig(format!("the revocation list {}: {e}", path.display()))
        })?;
        tracing::info!(path = %path.display(), revoked = revoked.len(), "revocation list loaded");
        Ok(Revocations {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                revoked,
                stamp: Some(stamp),
                checked: Instant::now(),
            }),
        })
    }

    /// Whether the certificate with this fingerprint is revoked, reading the file again first
    /// if it changed (looked at once a second at most).
    pub(crate) fn is_revoked(&self, fingerprint: &str) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            self.reload_if_changed(&mut state);
        }
        state.revoked.contains(fingerprint)
    }

    fn reload_if_changed(&self, state: &mut State) {
        let path = self.path.display();
        let stamp = match stamp_of(&self.path) {
            Ok(s) => s,
            Err(e) => {
                if state.stamp.take().is_some() {
                    tracing::warn!(%path, error = %e, "cannot read the revocation list; the last one read stays in force");
                }
                return;
            }
        };
        if state.stamp == Some(stamp) {
            return;
        }
        let parsed = std::fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse(&text));
        match parsed {
            Ok(revoked) => {
                tracing::info!(%path, revoked = revoked.len(), "revocation list reloaded");
                state.revoked = revoked;
                state.stamp = Some(stamp);
            }
            Err(e) => {
                tracing::warn!(%path, error = %e, "the revocation list is invalid; the last good one stays in force");
                state.stamp = Some(stamp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "4f0c2d8f1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4";

    #[test]
    fn parses_comments_case_and_colons() {
        let upper_colons: String = A
            .to_ascii_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect::<Vec<_>>()
            .join(":");
        let text = format!("# revoked\n\n{upper_colons}  # the old laptop\n");
        let set = parse(&text).expect("valid");
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![A.to_string()]);
    }

    #[test]
    fn refuses_a_bad_line_naming_it() {
        let e = parse(&format!("{A}\nnot-a-fingerprint\n")).expect_err("invalid");
        assert!(
            e.contains("line 2") && e.contains("not-a-fingerprint"),
            "{e}"
        );
        assert!(parse("abcd").is_err());
    }

    #[test]
    fn a_broken_file_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, format!("{A}\n")).expect("written");
        let list = Revocations::load(&path).expect("loads");
        assert!(list.is_revoked(A));
        std::fs::write(&path, "garbage that is longer than before\n").expect("written");
        list.state.lock().expect("not poisoned").checked -= RECHECK;
        assert!(list.is_revoked(A), "a broken file must not un-revoke");
        std::fs::remove_file(&path).expect("removed");
        list.state.lock().expect("not poisoned").checked -= RECHECK;
        assert!(list.is_revoked(A), "a missing file must not un-revoke");
        std::fs::write(&path, "# nothing revoked any more\n").expect("written");
        list.state.lock().expect("not poisoned").checked -= RECHECK;
        assert!(!list.is_revoked(A), "a valid new list replaces the old one");
    }
}
