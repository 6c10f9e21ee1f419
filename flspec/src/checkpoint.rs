//! Checkpoints: the state after every step, per participant, in a run folder.
//!
//! A run folder `<dir>/<run_id>/` holds `run.json` (flow, graph fingerprint, collaborators),
//! `journal.jsonl` (one JSON line per step: sequence number, step, participant, the transition
//! it took) and one `<seq>.state` file per step with the postcard encoding of the flow state
//! after that step. State files are written to a temporary name and renamed, and the journal line
//! is appended only after its state file is in place, so a crash never leaves a journal entry
//! without its state.
//!
//! Checkpoints hold flow state only: private state (datasets, keys) is never written.
//!
//! # Example
//! ```
//! # use flspec::prelude::*;
//! # #[derive(Clone, Default, Serialize, Deserialize, PartialEq, Debug)]
//! # struct Tiny { n: u32 }
//! # #[flow] impl Tiny {
//! #   #[aggregator] fn start(&mut self) -> Next<Self> { next!(self.end) }
//! #   #[aggregator] fn end(&mut self) {}
//! # }
//! use flspec::checkpoint::{CheckpointStore, RunCheckpoints};
//!
//! let dir = std::env::temp_dir().join(format!("flspec-doc-{}", std::process::id()));
//! let store = CheckpointStore::create::<Tiny>(&dir, "run-1", &["Portland".to_string()])?;
//! store.record_initial(&Tiny { n: 1 })?;
//! let runs = RunCheckpoints::list(&dir)?;
//! assert_eq!(runs, vec!["run-1".to_string()]);
//! let run = RunCheckpoints::open(&dir, "run-1")?;
//! let first = &run.records()[0];
//! assert_eq!(run.load::<Tiny>(first)?, Tiny { n: 1 });
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), flspec::Error>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::codec::{decode_state, encode_state};
use crate::{Error, FanOutList, Flow, Next, Result, Role, StepId, TransitionId};

/// What a journal line records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The state the run started with, before `start`.
    Initial,
    /// The state after a step.
    Step,
}

/// The transition a step took, as stored in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredNext {
    /// The edge of the graph.
    pub transition: u16,
    /// The target step's name.
    pub step: String,
    /// The fan-out list, for a fan-out to a list of names.
    pub foreach: Option<Vec<String>>,
    /// Whether the transition fans out to every collaborator of the run
    /// ([`FanOutList::Roster`]); absent in journals that list names.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub roster: bool,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the run, from 0.
    pub seq: u64,
    /// Initial state or state after a step.
    pub kind: RecordKind,
    /// The step's name (`start` for the initial state).
    pub step: String,
    /// Who ran it.
    pub role: Role,
    /// The collaborator's name, or `aggregator`.
    pub participant: String,
    /// The transition the step took; `None` after `end`.
    pub next: Option<StoredNext>,
    /// The state file, relative to the run folder.
    pub file: String,
}

/// The header of a run folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    /// The flow's name.
    pub flow: String,
    /// The flow graph's fingerprint.
    pub fingerprint: String,
    /// The run's identifier.
    pub run_id: String,
    /// The run's collaborators.
    pub collaborators: Vec<String>,
}

/// Writes the checkpoints of one run. Safe to share between threads.
#[derive(Debug)]
pub struct CheckpointStore {
    folder: PathBuf,
    journal: Mutex<(File, u64)>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Checkpoint {
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::CheckpointFormat {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl CheckpointStore {
    /// Creates the run folder `<dir>/<run_id>/` for flow `F`.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the folder exists already or cannot be written.
    pub fn create<F: Flow>(dir: &Path, run_id: &str, collaborators: &[String]) -> Result<Self> {
        check_run_id(dir, run_id)?;
        let folder = dir.join(run_id);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::create_dir(&folder).map_err(io_err(&folder))?;
        let header = RunHeader {
            flow: F::NAME.to_string(),
            fingerprint: F::graph().fingerprint(),
            run_id: run_id.to_string(),
            collaborators: collaborators.to_vec(),
        };
        let path = folder.join("run.json");
        let text = serde_json::to_vec_pretty(&header)
            .map_err(|e| format_err(&path, format!("cannot encode the header: {e}")))?;
        write_atomic(&path, &text)?;
        let journal_path = folder.join("journal.jsonl");
        let journal = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&journal_path)
            .map_err(io_err(&journal_path))?;
        Ok(CheckpointStore {
            folder,
            journal: Mutex::new((journal, 0)),
        })
    }

    /// Reopens a run folder to append to it (for a resumed run).
    ///
    /// # Errors
    /// [`Error::Checkpoint`] or [`Error::CheckpointFormat`] if the folder is missing, corrupt, or
    /// holds another flow or another version of this flow.
    pub fn reopen<F: Flow>(run: &RunCheckpoints) -> Result<Self> {
        run.check_flow::<F>()?;
        let journal_path = run.folder.join("journal.jsonl");
        repair_journal(&journal_path)?;
        let journal = OpenOptions::new()
            .append(true)
            .open(&journal_path)
            .map_err(io_err(&journal_path))?;
        let next_seq = run.records.last().map_or(0, |r| r.seq + 1);
        Ok(CheckpointStore {
            folder: run.folder.clone(),
            journal: Mutex::new((journal, next_seq)),
        })
    }

    /// The run folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Records the state a run starts with.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] on an I/O error, [`Error::Codec`] if the state cannot be encoded.
    pub fn record_initial<F: Flow>(&self, state: &F) -> Result<()> {
        self.append(
            RecordKind::Initial,
            F::Step::START.as_str(),
            Role::Aggregator,
            "aggregator",
            None,
            state,
        )
    }

    /// Records the state after a step and the transition it took.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] on an I/O error, [`Error::Codec`] if the state cannot be encoded.
    pub fn record_step<F: Flow>(
        &self,
        step: F::Step,
        role: Role,
        participant: &str,
        next: Option<&Next<F>>,
        state: &F,
    ) -> Result<()> {
        let next = next.map(|n| StoredNext {
            transition: u16::try_from(n.transition().index()).unwrap_or(u16::MAX),
            step: n.step().as_str().to_string(),
            foreach: n
                .foreach()
                .and_then(FanOutList::names)
                .map(<[String]>::to_vec),
            roster: matches!(n.foreach(), Some(FanOutList::Roster)),
        });
        self.append(
            RecordKind::Step,
            step.as_str(),
            role,
            participant,
            next,
            state,
        )
    }

    fn append<F: Flow>(
        &self,
        kind: RecordKind,
        step: &str,
        role: Role,
        participant: &str,
        next: Option<StoredNext>,
        state: &F,
    ) -> Result<()> {
        let bytes = encode_state(state)?;
        let mut guard = self
            .journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = guard.1;
        let file = state_file_name(seq);
        write_atomic(&self.folder.join(&file), &bytes)?;
        let record = Record {
            seq,
            kind,
            step: step.to_string(),
            role,
            participant: participant.to_string(),
            next,
            file,
        };
        let journal_path = self.folder.join("journal.jsonl");
        let mut line = serde_json::to_vec(&record)
            .map_err(|e| format_err(&journal_path, format!("cannot encode a record: {e}")))?;
        line.push(b'\n');
        guard.0.write_all(&line).map_err(io_err(&journal_path))?;
        guard.0.flush().map_err(io_err(&journal_path))?;
        guard.1 += 1;
        Ok(())
    }
}

/// Makes a journal end with a complete line before appending to it: a last line cut short by a
/// crash is removed, a complete last record missing only its newline gets it.
fn repair_journal(path: &Path) -> Result<()> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let complete = serde_json::from_slice::<Record>(&bytes[start..]).is_ok();
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    if complete {
        let mut file = file;
        file.seek(std::io::SeekFrom::End(0)).map_err(io_err(path))?;
        file.write_all(b"\n").map_err(io_err(path))?;
    } else {
        file.set_len(start as u64).map_err(io_err(path))?;
    }
    Ok(())
}

fn check_run_id(dir: &Path, run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !run_id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format_err(
            &dir.join(run_id),
            "a run id may hold only ASCII letters, digits, '-', '_' and '.', and not start with '.'",
        ))
    }
}

/// Refuses a path of a run folder that is not what the store writes there: a plain folder (the
/// run folder) or a plain file, never a symbolic link, which could point anywhere.
fn not_a_link(path: &Path, folder: bool) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    let ok = if folder {
        meta.file_type().is_dir()
    } else {
        meta.file_type().is_file()
    };
    if ok {
        Ok(())
    } else {
        let what = if folder { "folder" } else { "file" };
        Err(format_err(
            path,
            format!(
                "not a plain {what} (the store writes plain {what}s, never links); \
                 restore the run folder from a copy"
            ),
        ))
    }
}

/// The name of the state file of record `seq`, as the store writes it.
fn state_file_name(seq: u64) -> String {
    format!("{seq:08}.state")
}

/// Accepts a record's `file` only if it is the exact name the store writes for its `seq`.
fn check_state_file(record: &Record) -> std::result::Result<(), String> {
    let expected = state_file_name(record.seq);
    if record.file == expected {
        Ok(())
    } else {
        Err(format!(
            "state file {:?} is not the name the store writes for record {} ({expected:?}); \
             the journal was edited or corrupted: restore the run folder from a copy",
            record.file, record.seq
        ))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.flush().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// A run folder, read back: its header and its journal.
#[derive(Debug, Clone)]
pub struct RunCheckpoints {
    folder: PathBuf,
    header: RunHeader,
    records: Vec<Record>,
}

impl RunCheckpoints {
    /// The run ids under a checkpoint folder, sorted.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the folder cannot be read.
    pub fn list(dir: &Path) -> Result<Vec<String>> {
        let mut runs = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if entry.path().join("run.json").is_file() {
                runs.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        runs.sort();
        Ok(runs)
    }

    /// Reads a run folder.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] or [`Error::CheckpointFormat`] if it is missing or corrupt. A last
    /// journal line cut short by a crash is ignored.
    pub fn open(dir: &Path, run_id: &str) -> Result<Self> {
        check_run_id(dir, run_id)?;
        let folder = dir.join(run_id);
        let header_path = folder.join("run.json");
        let journal_path = folder.join("journal.jsonl");
        not_a_link(&folder, true)?;
        not_a_link(&header_path, false)?;
        not_a_link(&journal_path, false)?;
        let text = fs::read(&header_path).map_err(io_err(&header_path))?;
        let header: RunHeader = serde_json::from_slice(&text)
            .map_err(|e| format_err(&header_path, format!("not a run header: {e}")))?;
        let file = File::open(&journal_path).map_err(io_err(&journal_path))?;
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(io_err(&journal_path))?;
        let mut records = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<Record>(line) {
                Ok(r) => {
                    check_state_file(&r).map_err(|reason| {
                        format_err(&journal_path, format!("line {}: {reason}", i + 1))
                    })?;
                    records.push(r);
                }
                // A torn last line: the crash happened while appending it.
                Err(_) if i + 1 == lines.len() => break,
                Err(e) => {
                    return Err(format_err(
                        &journal_path,
                        format!("line {} is not a record: {e}", i + 1),
                    ));
                }
            }
        }
        Ok(RunCheckpoints {
            folder,
            header,
            records,
        })
    }

    /// The run folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The run's header.
    pub fn header(&self) -> &RunHeader {
        &self.header
    }

    /// The journal, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Fails unless the run was made by this flow, at this graph version.
    ///
    /// # Errors
    /// [`Error::CheckpointFormat`] naming both flows or fingerprints.
    pub fn check_flow<F: Flow>(&self) -> Result<()> {
        let path = self.folder.join("run.json");
        if self.header.flow != F::NAME {
            return Err(format_err(
                &path,
                format!(
                    "the run is of flow `{}`, not `{}`",
                    self.header.flow,
                    F::NAME
                ),
            ));
        }
        let fp = F::graph().fingerprint();
        if self.header.fingerprint != fp {
            return Err(format_err(
                &path,
                format!(
                    "the run was made by another version of flow `{}` (graph {} , this build {fp}); resume it with the build that made it",
                    F::NAME,
                    self.header.fingerprint
                ),
            ));
        }
        Ok(())
    }

    /// Loads the state a record points to.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the file is missing, [`Error::Codec`] if it is not a state of
    /// this flow.
    ///
    /// Only the names the store writes are read (`<seq>.state`, the record's own sequence
    /// number in 8 or more digits), and only as plain files: a record whose `file` names
    /// anything else (`../x`, an absolute path, a symbolic link) is refused with
    /// [`Error::CheckpointFormat`], so a journal never makes flspec read outside its run folder.
    /// [`open`](Self::open) likewise refuses a run folder, `run.json` or `journal.jsonl` that
    /// is a symbolic link.
    pub fn load<F: Flow>(&self, record: &Record) -> Result<F> {
        let journal_path = self.folder.join("journal.jsonl");
        check_state_file(record).map_err(|reason| {
            format_err(&journal_path, format!("record {}: {reason}", record.seq))
        })?;
        let path = self.folder.join(&record.file);
        not_a_link(&path, false)?;
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        decode_state(&bytes)
    }

    /// The state after the last step of the run (the final state of a finished run).
    ///
    /// # Errors
    /// As [`load`](Self::load); [`Error::CheckpointFormat`] for an empty journal.
    pub fn last_state<F: Flow>(&self) -> Result<F> {
        let record = self
            .records
            .last()
            .ok_or_else(|| format_err(&self.folder, "the journal is empty"))?;
        self.load(record)
    }

    /// Whether the run reached the end of the flow.
    pub fn is_finished(&self) -> bool {
        self.records
            .iter()
            .rev()
            .find(|r| r.role == Role::Aggregator && r.kind == RecordKind::Step)
            .is_some_and(|r| r.next.is_none())
    }
}

/// Rebuilds a stored transition for flow `F`.
pub(crate) fn stored_next<F: Flow>(run: &RunCheckpoints, next: &StoredNext) -> Result<Next<F>> {
    let foreach = match (&next.foreach, next.roster) {
        (_, true) => Some(FanOutList::Roster),
        (Some(names), false) => Some(FanOutList::Names(names.clone())),
        (None, false) => None,
    };
    Next::from_parts(TransitionId::new(next.transition), foreach).ok_or_else(|| {
        format_err(
            &run.folder.join("journal.jsonl"),
            format!(
                "transition {} to `{}` is not in this flow's graph",
                next.transition, next.step
            ),
        )
    })
}
