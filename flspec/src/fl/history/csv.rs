//! CSV: two tables, one row per round and one row per round and collaborator.
//!
//! Written by hand rather than with the `csv` crate: the tables have a fixed shape, the only
//! free text is a collaborator's (or a metric's) name, and RFC 4180 quoting of that is a few
//! lines, so the DSL crate does not take a dependency for it.
//!
//! Cells: a missing value is empty; numbers use Rust's shortest round-trip form (`0.1`, `600`,
//! `NaN`, `inf`), which pandas, R and spreadsheets read; a cell holding a comma, a quote, a CR
//! or LF is quoted, with quotes doubled. Lines end in `\n`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::{History, HistoryError, ParticipantRecord, RoundRecord};

/// The first columns of [`History::rounds_csv`]; the extra round metrics follow, sorted.
pub const ROUND_COLUMNS: [&str; 6] = [
    "round",
    "seconds",
    "loss",
    "accuracy",
    "participants",
    "dropouts",
];

/// The first columns of [`History::participants_csv`]; the extra metrics follow, sorted.
pub const PARTICIPANT_COLUMNS: [&str; 9] = [
    "round",
    "name",
    "dropped",
    "loss",
    "accuracy",
    "samples",
    "seconds",
    "bytes_sent",
    "bytes_received",
];

impl History {
    /// The rounds table: [`ROUND_COLUMNS`], then one column per extra round metric (sorted by
    /// name; empty where a round lacks it), one row per round.
    ///
    /// ```
    /// # use flspec::fl::history::{History, ParticipantRecord};
    /// let mut h = History::new();
    /// h.record(1).seconds(2.5).accuracy(0.5).metric("mu", 0.01)
    ///     .participant(ParticipantRecord::new("a"))
    ///     .participant(ParticipantRecord::dropout("b"));
    /// assert_eq!(h.rounds_csv(), "\
    /// round,seconds,loss,accuracy,participants,dropouts,mu
    /// 1,2.5,,0.5,2,1,0.01
    /// ");
    /// ```
    pub fn rounds_csv(&self) -> String {
        let extra = self.extra_round_names();
        let mut out = String::new();
        header(&mut out, &ROUND_COLUMNS, &extra);
        for r in self.rounds() {
            round_row(&mut out, r, &extra);
        }
        out
    }

    /// The collaborators table: [`PARTICIPANT_COLUMNS`], then one column per extra
    /// collaborator metric (sorted), one row per round and collaborator in the order they were
    /// recorded. `dropped` is `true` or `false`.
    ///
    /// ```
    /// # use flspec::fl::history::{History, ParticipantRecord};
    /// let mut h = History::new();
    /// h.record(1).participant(ParticipantRecord::new("Portland, OR").loss(0.5).samples(600));
    /// assert_eq!(h.participants_csv(), "\
    /// round,name,dropped,loss,accuracy,samples,seconds,bytes_sent,bytes_received
    /// 1,\"Portland, OR\",false,0.5,,600,,,
    /// ");
    /// ```
    pub fn participants_csv(&self) -> String {
        let extra = self.extra_participant_names();
        let mut out = String::new();
        header(&mut out, &PARTICIPANT_COLUMNS, &extra);
        for r in self.rounds() {
            for p in &r.participants {
                participant_row(&mut out, r.round, p, &extra);
            }
        }
        out
    }

    /// Writes both tables: `<stem>_rounds.csv` and `<stem>_participants.csv` next to each
    /// other (`runs/fedprox/history` gives `runs/fedprox/history_rounds.csv` and
    /// `runs/fedprox/history_participants.csv`). Returns the two paths.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if a file cannot be written.
    ///
    /// ```
    /// # use flspec::fl::history::History;
    /// let dir = tempfile::tempdir()?;
    /// let mut h = History::new();
    /// h.record(1).loss(0.5);
    /// let [rounds, participants] = h.write_csv(dir.path().join("history"))?;
    /// assert!(rounds.ends_with("history_rounds.csv"));
    /// assert_eq!(std::fs::read_to_string(rounds)?, h.rounds_csv());
    /// assert!(participants.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_csv(
        &self,
        stem: impl AsRef<Path>,
    ) -> Result<[std::path::PathBuf; 2], HistoryError> {
        let stem = stem.as_ref();
        let with = |suffix: &str| {
            let mut name = stem.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            stem.with_file_name(name)
        };
        let rounds = with("_rounds.csv");
        let participants = with("_participants.csv");
        fs::write(&rounds, self.rounds_csv()).map_err(|e| HistoryError::io(&rounds, e))?;
        fs::write(&participants, self.participants_csv())
            .map_err(|e| HistoryError::io(&participants, e))?;
        Ok([rounds, participants])
    }
}

fn header(out: &mut String, fixed: &[&str], extra: &[String]) {
    let names = fixed
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str));
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(',');
        }
        cell(out, name);
    }
    out.push('\n');
}

fn round_row(out: &mut String, r: &RoundRecord, extra: &[String]) {
    let _ = write!(out, "{}", r.round);
    num(out, r.seconds);
    num(out, r.loss);
    num(out, r.accuracy);
    let _ = write!(out, ",{},{}", r.participants.len(), r.dropouts().count());
    for name in extra {
        num(out, r.extra.get(name).copied());
    }
    out.push('\n');
}

fn participant_row(out: &mut String, round: u64, p: &ParticipantRecord, extra: &[String]) {
    let _ = write!(out, "{round},");
    cell(out, &p.name);
    let _ = write!(out, ",{}", p.dropped);
    num(out, p.loss);
    num(out, p.accuracy);
    num(out, p.samples);
    num(out, p.seconds);
    num(out, p.bytes_sent);
    num(out, p.bytes_received);
    for name in extra {
        num(out, p.extra.get(name).copied());
    }
    out.push('\n');
}

/// `,` then the value, or just `,` for a missing one.
fn num<T: std::fmt::Display>(out: &mut String, value: Option<T>) {
    out.push(',');
    if let Some(v) = value {
        let _ = write!(out, "{v}");
    }
}

/// A text cell, quoted (RFC 4180) if it holds a comma, a quote, CR or LF.
fn cell(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}
