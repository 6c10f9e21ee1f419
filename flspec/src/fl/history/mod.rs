//! A run's history: what a flow's aggregator records each round (aggregate metrics, and per
//! collaborator loss, accuracy, samples, time, bytes and dropouts), and what users read back,
//! write out and draw.
//!
//! - [`History`], [`RoundRecord`], [`ParticipantRecord`]: the records. Typed fields for the
//!   well-known metrics, plus an open map of extra named metrics per round and per
//!   collaborator (a FedProx flow's proximal term, a robust aggregator's rejections). Serde,
//!   so a history lives in the aggregator's state and is checkpointed with it.
//! - [`HistoryWriter`] and [`History::read_jsonl`]: JSON lines, appended and flushed per round.
//! - [`History::rounds_csv`], [`History::participants_csv`], [`History::write_csv`]: CSV.
//! - [`EventWriter`]: TensorBoard event files (our own writer; see [`tensorboard`] for why).
//! - `plot` (cargo feature `plot`): line charts of metrics over rounds, several runs to a
//!   chart, and per-site label-histogram charts, as SVG or PNG.
//!
//! ```
//! use flspec::fl::history::{History, HistoryWriter, ParticipantRecord};
//!
//! let dir = tempfile::tempdir()?;
//! let mut jsonl = HistoryWriter::create(dir.path().join("history.jsonl"))?;
//! let mut history = History::new();
//! for round in 1..=2 {
//!     history
//!         .record(round)
//!         .accuracy(0.6 + 0.1 * round as f64)
//!         .participant(ParticipantRecord::new("Portland").loss(0.5).samples(600));
//!     jsonl.write(history.last().expect("just recorded"))?;
//! }
//! assert_eq!(history.best("accuracy").map(|(round, _)| round), Some(2));
//! history.write_csv(dir.path().join("history"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod csv;
mod jsonl;
#[cfg(feature = "plot")]
pub mod plot;
mod record;
pub mod tensorboard;

use std::path::{Path, PathBuf};

pub use csv::{PARTICIPANT_COLUMNS, ROUND_COLUMNS};
pub use jsonl::HistoryWriter;
pub use record::{
    Goal, History, PARTICIPANT_METRICS, ParticipantRecord, ROUND_METRICS, RoundRecord,
};
pub use tensorboard::{EventWriter, crc32c, masked_crc32c};

/// What went wrong reading or writing a history.
///
/// ```
/// use flspec::fl::history::{History, HistoryError};
///
/// let err = History::read_jsonl_from("{\"round\":1}\nnot json\n".as_bytes(), None).unwrap_err();
/// assert!(matches!(err, HistoryError::Json { line: 2, .. }));
/// assert!(err.to_string().contains("line 2"));
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A file could not be created, opened, read or written.
    #[error("{}: {source}; check the path and its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON line is not a round record.
    #[error(
        "{}line {line} is not a round record ({source}); fix or delete that line",
        at(path.as_deref())
    )]
    Json {
        /// The file, if reading one.
        path: Option<PathBuf>,
        /// The line (from 1; 0 when writing).
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The last line is cut short: the run likely stopped while writing it.
    #[error(
        "{}line {line} is cut short (no newline, incomplete JSON): the run likely stopped \
         while writing it; delete that line to read the rounds before it",
        at(path.as_deref())
    )]
    Truncated {
        /// The file, if reading one.
        path: Option<PathBuf>,
        /// The line (from 1).
        line: usize,
    },
    /// A chart could not be drawn or written.
    #[error("{}: cannot draw the chart: {why}", path.display())]
    Plot {
        /// The file being drawn.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

impl HistoryError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        HistoryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn at(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

/// Prints the message, as flspec's errors do.
impl std::fmt::Debug for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::error::write_chain(self, f)
    }
}
