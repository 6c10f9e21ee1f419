//! JSON lines: one self-describing object per round, appended and flushed as each round ends,
//! and read back into a [`History`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::{History, HistoryError, ParticipantRecord, RoundRecord};

/// Appends one JSON line per round to a file (or any writer), flushing after each, so that a
/// crash loses at most the round being written.
///
/// A line is the round's [`RoundRecord`] as a JSON object, `round` first: unmeasured fields,
/// `"dropped": false`, empty `extra` maps and NaN or infinite values (JSON has no such
/// numbers) are left out, and read back as absent.
///
/// ```
/// use flspec::fl::history::{History, HistoryWriter, RoundRecord};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("history.jsonl");
/// let mut writer = HistoryWriter::create(&path)?;
/// let mut history = History::new();
/// for round in 1..=3 {
///     history.record(round).accuracy(0.5 + round as f64 / 10.0);
///     writer.write(history.last().expect("just recorded"))?;
/// }
/// assert_eq!(History::read_jsonl(&path)?, history);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct HistoryWriter<W: Write = File> {
    out: W,
    path: Option<PathBuf>,
    line: Vec<u8>,
}

impl HistoryWriter<File> {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if the file cannot be created.
    ///
    /// ```no_run
    /// # use flspec::fl::history::HistoryWriter;
    /// let writer = HistoryWriter::create("runs/fedprox/history.jsonl")?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| HistoryError::io(path, e))?;
        Ok(HistoryWriter {
            path: Some(path.to_path_buf()),
            ..HistoryWriter::new(file)
        })
    }

    /// Opens the file at `path` for appending (creating it if needed): a run resumed from a
    /// checkpoint continues its file. Reading it back keeps the last line of a round written
    /// twice.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if the file cannot be opened.
    ///
    /// ```no_run
    /// # use flspec::fl::history::HistoryWriter;
    /// let writer = HistoryWriter::append("runs/fedprox/history.jsonl")?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn append(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| HistoryError::io(path, e))?;
        Ok(HistoryWriter {
            path: Some(path.to_path_buf()),
            ..HistoryWriter::new(file)
        })
    }
}

impl<W: Write> HistoryWriter<W> {
    /// Writes to `out` (a file, a `Vec<u8>`, a socket).
    ///
    /// ```
    /// # use flspec::fl::history::{HistoryWriter, RoundRecord};
    /// let mut w = HistoryWriter::new(Vec::new());
    /// w.write(RoundRecord::new(1).accuracy(0.5))?;
    /// assert_eq!(w.into_inner(), b"{\"round\":1,\"accuracy\":0.5}\n");
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn new(out: W) -> Self {
        HistoryWriter {
            out,
            path: None,
            line: Vec::new(),
        }
    }

    /// Writes one round as one line (in a single `write_all`, so a crash leaves at most a
    /// partial last line), then flushes.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if writing or flushing fails.
    ///
    /// ```
    /// # use flspec::fl::history::{HistoryWriter, RoundRecord};
    /// let mut w = HistoryWriter::new(Vec::new());
    /// w.write(&RoundRecord::new(1))?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn write(&mut self, round: &RoundRecord) -> Result<(), HistoryError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &RoundJson(round)).map_err(|e| {
            HistoryError::Json {
                path: self.path.clone(),
                line: 0,
                source: e,
            }
        })?;
        self.line.push(b'\n');
        let path = self.path.as_deref().unwrap_or(Path::new("<writer>"));
        self.out
            .write_all(&self.line)
            .and_then(|()| self.out.flush())
            .map_err(|e| HistoryError::io(path, e))
    }

    /// Writes every round of a history.
    ///
    /// # Errors
    /// As [`HistoryWriter::write`].
    ///
    /// ```
    /// # use flspec::fl::history::{History, HistoryWriter};
    /// let mut h = History::new();
    /// h.record(1);
    /// h.record(2);
    /// let mut w = HistoryWriter::new(Vec::new());
    /// w.write_all(&h)?;
    /// assert_eq!(w.into_inner(), b"{\"round\":1}\n{\"round\":2}\n");
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn write_all(&mut self, history: &History) -> Result<(), HistoryError> {
        history.rounds().iter().try_for_each(|r| self.write(r))
    }

    /// The writer back.
    ///
    /// ```
    /// # use flspec::fl::history::HistoryWriter;
    /// assert!(HistoryWriter::new(Vec::new()).into_inner().is_empty());
    /// ```
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl History {
    /// Reads a JSON-lines file written by [`HistoryWriter`]. Blank lines are skipped; a round
    /// written more than once (a resumed run) keeps its last line.
    ///
    /// A bad line is refused with its number, never skipped: a last line cut short by a crash
    /// is [`HistoryError::Truncated`] (delete that line to keep the rounds before it), any
    /// other bad line [`HistoryError::Json`].
    ///
    /// # Errors
    /// [`HistoryError::Io`] if the file cannot be read, [`HistoryError::Truncated`] or
    /// [`HistoryError::Json`] for a bad line.
    ///
    /// ```no_run
    /// # use flspec::fl::history::History;
    /// let history = History::read_jsonl("runs/fedprox/history.jsonl")?;
    /// println!("best accuracy {:?}", history.best("accuracy"));
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn read_jsonl(path: impl AsRef<Path>) -> Result<History, HistoryError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| HistoryError::io(path, e))?;
        Self::read_jsonl_from(BufReader::new(file), Some(path))
    }

    /// Reads JSON lines from any reader; `path`, if given, is named in errors.
    ///
    /// # Errors
    /// As [`History::read_jsonl`].
    ///
    /// ```
    /// # use flspec::fl::history::{History, HistoryError};
    /// let text = "{\"round\":1,\"loss\":0.5}\n{\"round\":2,\"lo";
    /// let err = History::read_jsonl_from(text.as_bytes(), None).unwrap_err();
    /// assert!(matches!(err, HistoryError::Truncated { line: 2, .. }));
    /// # Ok::<(), HistoryError>(())
    /// ```
    pub fn read_jsonl_from(
        mut reader: impl BufRead,
        path: Option<&Path>,
    ) -> Result<History, HistoryError> {
        let mut history = History::new();
        let mut buf = String::new();
        let mut line = 0;
        loop {
            buf.clear();
            let n = reader
                .read_line(&mut buf)
                .map_err(|e| HistoryError::io(path.unwrap_or(Path::new("<reader>")), e))?;
            if n == 0 {
                return Ok(history);
            }
            line += 1;
            if buf.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RoundRecord>(&buf) {
                Ok(round) => {
                    history.push(round);
                }
                Err(source) if !buf.ends_with('\n') && source.is_eof() => {
                    return Err(HistoryError::Truncated {
                        path: path.map(Path::to_path_buf),
                        line,
                    });
                }
                Err(source) => {
                    return Err(HistoryError::Json {
                        path: path.map(Path::to_path_buf),
                        line,
                        source,
                    });
                }
            }
        }
    }
}

/// The compact JSON form of a round: what is absent, false, empty or not finite is left out.
/// (The records themselves serialize every field, as postcard checkpoints need.)
struct RoundJson<'a>(&'a RoundRecord);

struct ParticipantJson<'a>(&'a ParticipantRecord);

struct FiniteMap<'a>(&'a BTreeMap<String, f64>);

/// `(name, value)` pairs to write: the present, finite ones.
fn present(fields: &[(&'static str, Option<f64>)]) -> Vec<(&'static str, f64)> {
    fields
        .iter()
        .filter_map(|&(k, v)| v.filter(|v| v.is_finite()).map(|v| (k, v)))
        .collect()
}

impl Serialize for RoundJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("round", &r.round)?;
        for (k, v) in present(&[
            ("seconds", r.seconds),
            ("loss", r.loss),
            ("accuracy", r.accuracy),
        ]) {
            map.serialize_entry(k, &v)?;
        }
        if r.extra.values().any(|v| v.is_finite()) {
            map.serialize_entry("extra", &FiniteMap(&r.extra))?;
        }
        if !r.participants.is_empty() {
            let ps: Vec<ParticipantJson<'_>> = r.participants.iter().map(ParticipantJson).collect();
            map.serialize_entry("participants", &ps)?;
        }
        map.end()
    }
}

impl Serialize for ParticipantJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &p.name)?;
        if p.dropped {
            map.serialize_entry("dropped", &true)?;
        }
        for (k, v) in present(&[("loss", p.loss), ("accuracy", p.accuracy)]) {
            map.serialize_entry(k, &v)?;
        }
        if let Some(n) = p.samples {
            map.serialize_entry("samples", &n)?;
        }
        for (k, v) in present(&[("seconds", p.seconds)]) {
            map.serialize_entry(k, &v)?;
        }
        if let Some(n) = p.bytes_sent {
            map.serialize_entry("bytes_sent", &n)?;
        }
        if let Some(n) = p.bytes_received {
            map.serialize_entry("bytes_received", &n)?;
        }
        if p.extra.values().any(|v| v.is_finite()) {
            map.serialize_entry("extra", &FiniteMap(&p.extra))?;
        }
        map.end()
    }
}

impl Serialize for FiniteMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().filter(|(_, v)| v.is_finite()))
    }
}
