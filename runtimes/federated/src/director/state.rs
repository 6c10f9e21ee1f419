//! The director's state folder ([`DirectorOptions::state_dir`](super::DirectorOptions::state_dir),
//! `--state DIR`): what a restarted director needs to go on with its runs.
//!
//! ```text
//! DIR/lock                      held (an advisory lock) while a director uses the folder
//! DIR/runs/<run_id>.json        the run's record: flow, owner, collaborators, deadline, outcome
//! DIR/runs/<run_id>.final       the final state of a finished run
//! DIR/checkpoints/<run_id>/     the run's checkpoints (`flspec::checkpoint`): its state after
//!                               every aggregator step, and the arrivals of its fan-outs
//! ```
//!
//! A run is accepted only once its record and its initial state are on disk; its outcome is
//! recorded before its watchers hear of it. Every file is written to a temporary name and
//! renamed, so a crash leaves either the old or the new version. Private states (the
//! aggregator's and the collaborators') are never written.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::wire::WireError;
use crate::{Error, Result};

/// How a recorded run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Finished; its final state is in `<run_id>.final`.
    Finished,
    /// Failed with this error.
    Failed { error: WireError },
    /// Cancelled by its submitter.
    Cancelled,
}

/// One run's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub(crate) run_id: String,
    pub(crate) flow: String,
    pub(crate) fingerprint: String,
    /// The name in the submitter's certificate (`None` in plaintext mode).
    pub(crate) owner: Option<String>,
    pub(crate) participants: Vec<String>,
    pub(crate) step_timeout_ms: u64,
    /// When the run was submitted, in milliseconds since the Unix epoch.
    pub(crate) submitted_unix_ms: u64,
    /// How the run ended; `None` while it runs (a restarted director resumes it).
    pub(crate) outcome: Option<Outcome>,
}

/// A state folder, locked for one director.
#[derive(Debug)]
pub(crate) struct StateDir {
    root: PathBuf,
    /// Held for the director's life: a second director on the same folder is refused.
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::State {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// Opens (creating it if needed) and locks the state folder at `root`.
    ///
    /// # Errors
    /// [`Error::State`] if it cannot be created or written, [`Error::StateInUse`] if another
    /// director holds it.
    pub(crate) fn open(root: &Path) -> Result<StateDir> {
        for dir in [
            root.to_path_buf(),
            root.join("runs"),
            root.join("checkpoints"),
        ] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::StateInUse {
                    path: root.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// Where the runs' checkpoint folders go.
    pub(crate) fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    fn record_path(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(format!("{run_id}.json"))
    }

    fn final_path(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(format!("{run_id}.final"))
    }

    /// Writes a run's record.
    ///
    /// # Errors
    /// [`Error::State`] if it cannot be written.
    pub(crate) fn save(&self, record: &RunRecord) -> Result<()> {
        let text = serde_json::to_vec_pretty(record).map_err(|e| Error::Malformed {
            what: "run record",
            reason: e.to_string(),
        })?;
        write_atomic(&self.record_path(&record.run_id), &text)
    }

    /// Records a run's end: its final state first (if it finished), then its outcome.
    ///
    /// # Errors
    /// [`Error::State`] if a file cannot be written.
    pub(crate) fn save_end(
        &self,
        record: &mut RunRecord,
        outcome: Outcome,
        final_state: Option<&[u8]>,
    ) -> Result<()> {
        if let Some(state) = final_state {
            write_atomic(&self.final_path(&record.run_id), state)?;
        }
        record.outcome = Some(outcome);
        self.save(record)
    }

    /// Every recorded run, oldest first, with the final state of the finished ones. A record
    /// that cannot be read is skipped with a warning naming its file.
    pub(crate) fn load(&self) -> Vec<(RunRecord, Option<Bytes>)> {
        let dir = self.root.join("runs");
        let Ok(entries) = fs::read_dir(&dir) else {
            warn!(path = %dir.display(), "cannot list the state folder's runs");
            return Vec::new();
        };
        let mut runs = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record: RunRecord = match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(reason) => {
                    warn!(path = %path.display(), %reason, "skipped an unreadable run record");
                    continue;
                }
            };
            if path.file_stem().and_then(|s| s.to_str()) != Some(record.run_id.as_str()) {
                warn!(path = %path.display(), run_id = %record.run_id, "skipped a run record whose file name is not its run id");
                continue;
            }
            let final_state = match record.outcome {
                Some(Outcome::Finished) => match fs::read(self.final_path(&record.run_id)) {
                    Ok(b) => Some(Bytes::from(b)),
                    Err(e) => {
                        warn!(run_id = %record.run_id, error = %e, "a finished run's final state is missing; it is reported as failed");
                        None
                    }
                },
                _ => None,
            };
            runs.push((record, final_state));
        }
        runs.sort_by_key(|(r, _)| r.submitted_unix_ms);
        runs
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `bytes` to `path` through a temporary file, synced, then renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, at: u64) -> RunRecord {
        RunRecord {
            run_id: id.into(),
            flow: "Flow".into(),
            fingerprint: "f".into(),
            owner: Some("client".into()),
            participants: vec!["Portland".into()],
            step_timeout_ms: 1000,
            submitted_unix_ms: at,
            outcome: None,
        }
    }

    #[test]
    fn records_round_trip_with_outcomes_and_final_states() {
        let root = std::env::temp_dir().join(format!("flspec-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let state = StateDir::open(&root).expect("test I/O");
        let mut done = record("run-b", 2);
        state.save(&record("run-a", 1)).expect("test I/O");
        state.save(&done).expect("test I/O");
        state
            .save_end(&mut done, Outcome::Finished, Some(b"final"))
            .expect("test I/O");
        fs::write(root.join("runs/garbage.json"), b"{").expect("test I/O");
        let loaded = state.load();
        assert_eq!(loaded.len(), 2, "the unreadable record is skipped");
        assert_eq!(loaded[0].0, record("run-a", 1));
        assert_eq!(loaded[0].1, None);
        assert_eq!(loaded[1].0.outcome, Some(Outcome::Finished));
        assert_eq!(loaded[1].1.as_deref(), Some(&b"final"[..]));
        drop(state);
        fs::remove_dir_all(&root).expect("test I/O");
    }

    #[test]
    fn a_second_director_on_the_same_folder_is_refused() {
        let root = std::env::temp_dir().join(format!("flspec-state-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let first = StateDir::open(&root).expect("test I/O");
        let second = StateDir::open(&root).expect_err("refused");
        assert!(matches!(second, Error::StateInUse { .. }), "{second}");
        assert!(second.to_string().contains("another director"), "{second}");
        drop(first);
        StateDir::open(&root).expect("free again once the first lets go");
        fs::remove_dir_all(&root).expect("test I/O");
    }
}
