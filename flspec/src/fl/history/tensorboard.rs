//! TensorBoard event files, written by our own small writer.
//!
//! No maintained Rust crate writes them (checked November 2026): `tensorboard-rs` 0.5.9 was
//! last released in March 2022 and its repository says it is not active (it also pulls in
//! protobuf 2 and image); `tfrecord` 0.15.0 was last released in September 2023 and brings
//! prost 0.12, prost-build and generated TensorFlow protos. A scalar event file needs far less:
//!
//! - **TFRecord framing**: each record is `length` (u64, little-endian), the masked CRC32C of
//!   those 8 bytes (u32 LE), the data, and the masked CRC32C of the data (u32 LE). The mask is
//!   `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
//! - **`Event` protobufs**, hand-encoded: `wall_time` (double, field 1), `step` (int64,
//!   field 2), `file_version` (string, field 3, `"brain.Event:2"` in the first event) and
//!   `summary` (field 5) → `Summary.value` (repeated, field 1) → `Value { tag (string, field
//!   1), simple_value (float, field 2) }`.
//!
//! The files are checked with TensorBoard's own reader (`EventAccumulator`) by
//! `flspec/tests/fl_history.rs` and `scripts/reference/tensorboard_events.py`.
//!
//! ```
//! use flspec::fl::history::{EventWriter, History};
//!
//! let dir = tempfile::tempdir()?;
//! let mut history = History::new();
//! history.record(1).loss(0.9).accuracy(0.7);
//! history.record(2).loss(0.5).accuracy(0.8);
//! let mut events = EventWriter::create(dir.path())?;
//! events.write_history(&history)?;
//! assert!(events.path().expect("a file").file_name().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{History, HistoryError};

/// The `file_version` of the first event; TensorBoard reads files that start with it.
pub const FILE_VERSION: &str = "brain.Event:2";

/// The CRC32C (Castagnoli) lookup table, reflected polynomial 0x82F63B78.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32C (Castagnoli, as in iSCSI, RFC 3720 appendix B.4) of `data`.
///
/// ```
/// use flspec::fl::history::crc32c;
/// assert_eq!(crc32c(b"123456789"), 0xE306_9283);
/// assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA); // RFC 3720 B.4
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| {
        CRC32C_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// TFRecord's masked CRC32C of `data`: `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
///
/// ```
/// use flspec::fl::history::{crc32c, masked_crc32c};
/// let crc = crc32c(b"abc");
/// assert_eq!(masked_crc32c(b"abc"), crc.rotate_right(15).wrapping_add(0xa282_ead8));
/// ```
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

/// Writes scalars to a TensorBoard event file; see the [module documentation](self).
///
/// Each call writes one event and flushes, so TensorBoard shows a running flow's progress.
///
/// ```
/// use flspec::fl::history::EventWriter;
///
/// // A fixed wall time gives the same bytes every run (for tests).
/// let mut events = EventWriter::new(Vec::new()).fixed_wall_time(1.5e9);
/// events.add_scalar("accuracy", 1, 0.75)?;
/// let bytes = events.into_inner()?;
/// assert_eq!(&bytes[..8], &(24u64).to_le_bytes()); // the file_version event's length
/// # Ok::<(), flspec::fl::history::HistoryError>(())
/// ```
#[derive(Debug)]
pub struct EventWriter<W: Write = BufWriter<File>> {
    out: W,
    path: Option<PathBuf>,
    wall_time: Option<f64>,
    started: bool,
    buf: Vec<u8>,
}

impl EventWriter<BufWriter<File>> {
    /// Creates `events.out.tfevents.<seconds>.<host>` in `log_dir` (created if missing); point
    /// `tensorboard --logdir` at `log_dir` or a parent of it. One directory per run gives one
    /// line per run in TensorBoard's charts.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if the directory or file cannot be created.
    ///
    /// ```no_run
    /// # use flspec::fl::history::EventWriter;
    /// let mut events = EventWriter::create("runs/fedprox_mu0.01")?;
    /// events.add_scalar("accuracy", 1, 0.91)?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn create(log_dir: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let dir = log_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| HistoryError::io(dir, e))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = dir.join(format!("events.out.tfevents.{secs}.{}", host_name()));
        let file = File::create(&path).map_err(|e| HistoryError::io(&path, e))?;
        let mut writer = EventWriter::new(BufWriter::new(file));
        writer.path = Some(path);
        writer.start()?;
        Ok(writer)
    }

    /// The file being written.
    ///
    /// ```no_run
    /// # use flspec::fl::history::EventWriter;
    /// let events = EventWriter::create("runs/a")?;
    /// println!("{}", events.path().expect("create names a file").display());
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl<W: Write> EventWriter<W> {
    /// Writes events to `out`. The first event (the file version) is written with the first
    /// scalar, or by [`EventWriter::into_inner`].
    ///
    /// ```
    /// # use flspec::fl::history::EventWriter;
    /// let events = EventWriter::new(Vec::new());
    /// assert!(!events.into_inner()?.is_empty());
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn new(out: W) -> Self {
        EventWriter {
            out,
            path: None,
            wall_time: None,
            started: false,
            buf: Vec::new(),
        }
    }

    /// Stamps every event with this wall time (seconds since the Unix epoch) instead of the
    /// clock's, so that a file's bytes are reproducible.
    ///
    /// ```
    /// # use flspec::fl::history::EventWriter;
    /// let a = EventWriter::new(Vec::new()).fixed_wall_time(1.0).into_inner()?;
    /// let b = EventWriter::new(Vec::new()).fixed_wall_time(1.0).into_inner()?;
    /// assert_eq!(a, b);
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn fixed_wall_time(mut self, seconds: f64) -> Self {
        self.wall_time = Some(seconds);
        self
    }

    /// Writes one scalar (`tag`, at `step`) as one event, and flushes.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if writing fails.
    ///
    /// ```
    /// # use flspec::fl::history::EventWriter;
    /// let mut events = EventWriter::new(Vec::new());
    /// events.add_scalar("loss", 3, 0.25)?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn add_scalar(&mut self, tag: &str, step: i64, value: f32) -> Result<(), HistoryError> {
        self.add_scalars(step, [(tag, value)])
    }

    /// Writes several scalars of the same step as one event (one `Summary` holding a value
    /// per tag), and flushes.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if writing fails.
    ///
    /// ```
    /// # use flspec::fl::history::EventWriter;
    /// let mut events = EventWriter::new(Vec::new());
    /// events.add_scalars(1, [("loss", 0.5), ("accuracy", 0.8)])?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn add_scalars<'a>(
        &mut self,
        step: i64,
        values: impl IntoIterator<Item = (&'a str, f32)>,
    ) -> Result<(), HistoryError> {
        self.start()?;
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::with_capacity(tag.len() + 8);
            put_bytes(&mut v, 1, tag.as_bytes());
            put_key(&mut v, 2, WIRE_FIXED32);
            v.extend_from_slice(&value.to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = self.event_head(step);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)?;
        self.flush()
    }

    /// Writes a history as scalars, one event per round at step = round number: each round
    /// metric under its own tag (`loss`, `accuracy`, `seconds`, extra names, `participants`,
    /// `dropouts`), and each collaborator's metrics as `<name>/<metric>` (`Portland/loss`,
    /// `Portland/samples`, `Portland/dropped`, ...).
    ///
    /// # Errors
    /// [`HistoryError::Io`] if writing fails.
    ///
    /// ```
    /// # use flspec::fl::history::{EventWriter, History, ParticipantRecord};
    /// let mut h = History::new();
    /// h.record(1).accuracy(0.5).participant(ParticipantRecord::new("a").loss(0.7));
    /// let mut events = EventWriter::new(Vec::new());
    /// events.write_history(&h)?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn write_history(&mut self, history: &History) -> Result<(), HistoryError> {
        let mut extra = history.round_metric_names();
        extra.extend(["participants".to_string(), "dropouts".to_string()]);
        for r in history.rounds() {
            let mut values: Vec<(String, f32)> = extra
                .iter()
                .filter_map(|m| r.value(m).map(|v| (m.clone(), v as f32)))
                .collect();
            for p in &r.participants {
                let names = super::record::PARTICIPANT_METRICS
                    .iter()
                    .map(|m| m.to_string())
                    .chain(["dropped".to_string()])
                    .chain(p.extra.keys().cloned());
                for m in names {
                    if let Some(v) = p.value(&m) {
                        values.push((format!("{}/{m}", p.name), v as f32));
                    }
                }
            }
            let step = i64::try_from(r.round).unwrap_or(i64::MAX);
            self.add_scalars(step, values.iter().map(|(t, v)| (t.as_str(), *v)))?;
        }
        Ok(())
    }

    /// Flushes what was written to the underlying writer.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if flushing fails.
    ///
    /// ```
    /// # use flspec::fl::history::EventWriter;
    /// EventWriter::new(Vec::new()).flush()?;
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        let path = self.error_path();
        self.out.flush().map_err(|e| HistoryError::io(&path, e))
    }

    /// Writes the file-version event if nothing was written yet, flushes, and returns the
    /// writer.
    ///
    /// # Errors
    /// [`HistoryError::Io`] if writing fails.
    ///
    /// ```
    /// # use flspec::fl::history::EventWriter;
    /// let bytes = EventWriter::new(Vec::new()).into_inner()?;
    /// assert_eq!(bytes.len(), 8 + 4 + 24 + 4);
    /// # Ok::<(), flspec::fl::history::HistoryError>(())
    /// ```
    pub fn into_inner(mut self) -> Result<W, HistoryError> {
        self.start()?;
        self.flush()?;
        Ok(self.out)
    }

    fn start(&mut self) -> Result<(), HistoryError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let mut event = self.event_head(0);
        put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
        self.record(&event)
    }

    /// An event's `wall_time` and `step` fields.
    fn event_head(&self, step: i64) -> Vec<u8> {
        let wall_time = self.wall_time.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        let mut event = Vec::with_capacity(64);
        put_key(&mut event, 1, WIRE_FIXED64);
        event.extend_from_slice(&wall_time.to_le_bytes());
        if step != 0 {
            put_key(&mut event, 2, WIRE_VARINT);
            // int64: negative numbers are their 64-bit two's complement, as a varint.
            put_varint(&mut event, step as u64);
        }
        event
    }

    /// Frames `data` as one TFRecord and writes it.
    fn record(&mut self, data: &[u8]) -> Result<(), HistoryError> {
        let len = (data.len() as u64).to_le_bytes();
        self.buf.clear();
        self.buf.extend_from_slice(&len);
        self.buf
            .extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        self.buf.extend_from_slice(data);
        self.buf
            .extend_from_slice(&masked_crc32c(data).to_le_bytes());
        let path = self.error_path();
        self.out
            .write_all(&self.buf)
            .map_err(|e| HistoryError::io(&path, e))
    }

    fn error_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from("<event writer>"))
    }
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

fn put_key(out: &mut Vec<u8>, field: u8, wire: u8) {
    // Field numbers here are below 16, so a key is one byte.
    out.push((field << 3) | wire);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// This machine's name for the file name, from the kernel or `HOSTNAME`, reduced to
/// `[A-Za-z0-9._-]`; `localhost` if unknown.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}
