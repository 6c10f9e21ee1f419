//! `flspec::fl::history`: records, JSON lines, CSV, TensorBoard event files and (feature
//! `plot`) charts.
//!
//! The TensorBoard golden file `tests/data/tensorboard_small.tfevents` was read by TensorBoard
//! 2.21.0's `EventAccumulator` (`scripts/reference/tensorboard_events.py`); the live test
//! `tensorboard_reads_a_fresh_file` runs that script on a new file when `python3 -c "import
//! tensorboard"` works, with the project's `.venv-check` (`scripts/setup-python-check.sh`, which
//! `make test` runs), or with the Python named by `FLSPEC_TENSORBOARD_PYTHON`.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use flspec::fl::history::{
    EventWriter, Goal, History, HistoryError, HistoryWriter, ParticipantRecord, RoundRecord,
    crc32c, masked_crc32c,
};

/// The history behind the TensorBoard golden file: exactly representable values only.
fn small_history() -> History {
    let mut h = History::new();
    h.record(1)
        .loss(0.5)
        .accuracy(0.75)
        .participant(ParticipantRecord::new("a").loss(0.25).samples(10));
    h.record(2).loss(0.25).accuracy(0.875);
    h
}

/// A history with everything: typed fields, extras, dropouts, awkward names.
fn full_history() -> History {
    let mut h = History::new();
    h.record(1)
        .seconds(2.5)
        .loss(0.9)
        .accuracy(0.71)
        .metric("prox_term", 0.02)
        .participant(
            ParticipantRecord::new("Portland, OR")
                .loss(1.1)
                .accuracy(0.6)
                .samples(600)
                .seconds(1.25)
                .bytes(87_360, 87_424)
                .metric("grad_norm", 3.5),
        )
        .participant(ParticipantRecord::dropout("Seattle \"SEA\""));
    h.record(2)
        .seconds(2.0)
        .loss(0.5)
        .accuracy(0.84)
        .participant(
            ParticipantRecord::new("Portland, OR")
                .loss(0.7)
                .samples(600),
        );
    h
}

// ---------------------------------------------------------------- records

#[test]
fn rounds_stay_sorted_and_rerecording_edits_the_same_round() {
    let mut h = History::new();
    h.record(3).accuracy(0.3);
    h.record(1).accuracy(0.1);
    h.record(2).accuracy(0.2);
    h.record(3).loss(1.0);
    let rounds: Vec<u64> = h.rounds().iter().map(|r| r.round).collect();
    assert_eq!(rounds, [1, 2, 3]);
    assert_eq!(
        h.last().map(|r| (r.loss, r.accuracy)),
        Some((Some(1.0), Some(0.3)))
    );
}

#[test]
fn series_skips_rounds_without_the_metric() {
    let h = full_history();
    assert_eq!(h.series("accuracy"), [(1, 0.71), (2, 0.84)]);
    assert_eq!(h.series("prox_term"), [(1, 0.02)]);
    assert_eq!(h.series("dropouts"), [(1, 1.0), (2, 0.0)]);
    assert_eq!(h.series("participants"), [(1, 2.0), (2, 1.0)]);
    assert!(h.series("nope").is_empty());
    assert_eq!(
        h.participant_series("Portland, OR", "loss"),
        [(1, 1.1), (2, 0.7)]
    );
    assert_eq!(
        h.participant_series("Seattle \"SEA\"", "dropped"),
        [(1, 1.0)]
    );
    let dropouts: Vec<&str> = h.rounds()[0].dropouts().collect();
    assert_eq!(dropouts, ["Seattle \"SEA\""]);
}

#[test]
fn best_follows_the_metric_goal_skips_nan_and_prefers_the_earliest_tie() {
    let mut h = History::new();
    h.record(1).loss(f64::NAN).accuracy(0.8);
    h.record(2).loss(0.4).accuracy(0.9);
    h.record(3).loss(0.3).accuracy(0.9);
    h.record(4).loss(0.3).accuracy(0.7);
    assert_eq!(h.best("loss"), Some((3, 0.3)));
    assert_eq!(h.best("accuracy"), Some((2, 0.9)));
    assert_eq!(h.best_by("accuracy", Goal::Min), Some((4, 0.7)));
    assert_eq!(h.best("missing"), None);
    let mut all_nan = History::new();
    all_nan.record(1).loss(f64::NAN);
    assert_eq!(all_nan.best("loss"), None);
}

#[test]
fn metric_routes_well_known_names_to_typed_fields() {
    let mut r = RoundRecord::new(1);
    r.metric("loss", 0.5)
        .metric("accuracy", 0.9)
        .metric("seconds", 3.0);
    r.metric("rejected", 2.0);
    assert_eq!(
        (r.loss, r.accuracy, r.seconds),
        (Some(0.5), Some(0.9), Some(3.0))
    );
    assert_eq!(r.extra.len(), 1);
    let p = ParticipantRecord::new("x")
        .metric("loss", 0.1)
        .metric("mu", 0.01);
    assert_eq!(p.loss, Some(0.1));
    assert_eq!(p.extra.keys().collect::<Vec<_>>(), ["mu"]);
}

#[test]
fn a_history_survives_the_flow_state_codec() {
    // Flows checkpoint their state with postcard, which is not self-describing: every field
    // must be serialized, none skipped.
    let h = full_history();
    let bytes = postcard::to_stdvec(&h).expect("serializes");
    let back: History = postcard::from_bytes(&bytes).expect("deserializes");
    assert_eq!(back, h);
}

// ---------------------------------------------------------------- JSON lines

#[test]
fn jsonl_reads_floats_back_bit_for_bit() {
    let mut h = History::new();
    let values = [
        0.420_513_235_598_139_25,
        1.0 / 3.0,
        2.0_f64.sqrt(),
        1e-300,
        123_456.789,
    ];
    for (i, v) in values.into_iter().enumerate() {
        h.record(i as u64).loss(v).metric("x", v);
    }
    let mut bytes = Vec::new();
    HistoryWriter::new(&mut bytes).write_all(&h).expect("write");
    let back = History::read_jsonl_from(std::io::Cursor::new(bytes), None).expect("read");
    for (i, v) in values.into_iter().enumerate() {
        let r = &back.rounds()[i];
        assert_eq!(r.loss.map(f64::to_bits), Some(v.to_bits()), "round {i}");
        assert_eq!(r.extra["x"].to_bits(), v.to_bits(), "round {i}");
    }
}

#[test]
fn jsonl_round_trips_and_leaves_out_what_is_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let h = full_history();
    let mut w = HistoryWriter::create(&path).expect("create");
    for r in h.rounds() {
        w.write(r).expect("write");
        // Flushed per round: the file already holds the line.
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count() as u64, r.round);
    }
    assert_eq!(History::read_jsonl(&path).expect("read back"), h);
    let text = std::fs::read_to_string(&path).expect("read");
    let second = text.lines().nth(1).expect("two lines");
    assert_eq!(
        second,
        r#"{"round":2,"seconds":2.0,"loss":0.5,"accuracy":0.84,"participants":[{"name":"Portland, OR","loss":0.7,"samples":600}]}"#
    );
    assert!(
        text.lines()
            .next()
            .expect("a line")
            .contains(r#"{"name":"Seattle \"SEA\"","dropped":true}"#)
    );
}

#[test]
fn jsonl_leaves_out_non_finite_values() {
    let mut r = RoundRecord::new(1);
    r.loss(f64::NAN)
        .accuracy(f64::INFINITY)
        .metric("x", f64::NAN)
        .metric("y", 1.0);
    let mut w = HistoryWriter::new(Vec::new());
    w.write(&r).expect("write");
    let text = String::from_utf8(w.into_inner()).expect("utf-8");
    assert_eq!(text, "{\"round\":1,\"extra\":{\"y\":1.0}}\n");
    let back = History::read_jsonl_from(text.as_bytes(), None).expect("reads");
    assert_eq!(
        (back.rounds()[0].loss, back.rounds()[0].accuracy),
        (None, None)
    );
}

#[test]
fn jsonl_refuses_a_line_cut_short_by_a_crash_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let mut w = HistoryWriter::create(&path).expect("create");
    w.write_all(&full_history()).expect("write");
    drop(w);
    // A crash in the middle of writing round 3's line.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    f.write_all(br#"{"round":3,"loss":0.4,"parti"#)
        .expect("append");
    drop(f);
    let err = History::read_jsonl(&path).expect_err("must fail");
    assert!(
        matches!(&err, HistoryError::Truncated { line: 3, path: Some(p) } if p == &path),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("line 3") && msg.contains("delete that line"),
        "{msg}"
    );
    assert!(msg.contains("history.jsonl"), "{msg}");
}

#[test]
fn jsonl_refuses_a_bad_line_in_the_middle_naming_it() {
    let text = "{\"round\":1}\n\n{\"round\":\"two\"}\n{\"round\":3}\n";
    let err = History::read_jsonl_from(text.as_bytes(), None).expect_err("must fail");
    assert!(matches!(err, HistoryError::Json { line: 3, .. }), "{err}");
    // A complete but bad last line is a bad line, not a truncation.
    let err = History::read_jsonl_from("{\"round\":1}\n{\"loss\":1}".as_bytes(), None)
        .expect_err("must fail");
    assert!(matches!(err, HistoryError::Json { line: 2, .. }), "{err}");
}

#[test]
fn jsonl_appended_by_a_resumed_run_keeps_the_last_line_of_a_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let mut first = History::new();
    first.record(1).accuracy(0.5);
    first.record(2).accuracy(0.6);
    HistoryWriter::create(&path)
        .expect("create")
        .write_all(&first)
        .expect("write");
    // Resumed from the round-1 checkpoint: round 2 runs again.
    let mut again = HistoryWriter::append(&path).expect("append");
    again
        .write(RoundRecord::new(2).accuracy(0.65))
        .expect("write");
    again
        .write(RoundRecord::new(3).accuracy(0.7))
        .expect("write");
    let h = History::read_jsonl(&path).expect("read");
    assert_eq!(h.series("accuracy"), [(1, 0.5), (2, 0.65), (3, 0.7)]);
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_tables_have_stable_columns_and_quote_names() {
    let h = full_history();
    assert_eq!(
        h.rounds_csv(),
        "round,seconds,loss,accuracy,participants,dropouts,prox_term\n\
         1,2.5,0.9,0.71,2,1,0.02\n\
         2,2,0.5,0.84,1,0,\n"
    );
    assert_eq!(
        h.participants_csv(),
        "round,name,dropped,loss,accuracy,samples,seconds,bytes_sent,bytes_received,grad_norm\n\
         1,\"Portland, OR\",false,1.1,0.6,600,1.25,87360,87424,3.5\n\
         1,\"Seattle \"\"SEA\"\"\",true,,,,,,,\n\
         2,\"Portland, OR\",false,0.7,,600,,,,\n"
    );
}

#[test]
fn csv_quotes_line_breaks_and_metric_names() {
    let mut h = History::new();
    h.record(1)
        .metric("a,b", 1.0)
        .participant(ParticipantRecord::new("two\nlines"));
    assert_eq!(
        h.rounds_csv(),
        "round,seconds,loss,accuracy,participants,dropouts,\"a,b\"\n1,,,,1,0,1\n"
    );
    assert!(h.participants_csv().contains("1,\"two\nlines\",false"));
}

#[test]
fn write_csv_writes_both_tables_next_to_the_stem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = full_history();
    let [rounds, participants] = h.write_csv(dir.path().join("run")).expect("write");
    assert_eq!(rounds, dir.path().join("run_rounds.csv"));
    assert_eq!(participants, dir.path().join("run_participants.csv"));
    assert_eq!(
        std::fs::read_to_string(&rounds).expect("read"),
        h.rounds_csv()
    );
    assert_eq!(
        std::fs::read_to_string(&participants).expect("read"),
        h.participants_csv()
    );
}

// ---------------------------------------------------------------- TensorBoard

/// RFC 3720 appendix B.4 (iSCSI CRC32C examples) and the "123456789" check value.
#[test]
fn crc32c_matches_rfc_3720_vectors() {
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    let ascending: Vec<u8> = (0..32).collect();
    assert_eq!(crc32c(&ascending), 0x46DD_794E);
    let descending: Vec<u8> = (0..32).rev().collect();
    assert_eq!(crc32c(&descending), 0x113F_DB5C);
    // The iSCSI read command PDU of B.4.
    let pdu: [u8; 48] = [
        0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
        0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];
    assert_eq!(crc32c(&pdu), 0xD996_3A56);
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
}

/// Values from TensorBoard 2.21.0's own `masked_crc32c`
/// (`tensorboard.compat.tensorflow_stub.pywrap_tensorflow`), an independent implementation.
#[test]
fn masked_crc_matches_tensorboards() {
    assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    assert_eq!(masked_crc32c(&24u64.to_le_bytes()), 0x224b_7fa3);
    assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    assert_eq!(masked_crc32c(b"brain.Event:2"), 0x7c06_01ee);
}

/// The small history as an event file with a fixed wall time.
fn small_event_file() -> Vec<u8> {
    let mut w = EventWriter::new(Vec::new()).fixed_wall_time(1_700_000_000.5);
    w.write_history(&small_history()).expect("write");
    w.into_inner().expect("bytes")
}

/// The exact bytes TensorBoard 2.21.0's reader accepted (see the module docs).
#[test]
fn tensorboard_event_file_bytes_are_pinned() {
    let golden = include_bytes!("data/tensorboard_small.tfevents");
    let bytes = small_event_file();
    if std::env::var_os("FLSPEC_BLESS").is_some() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tensorboard_small.tfevents");
        std::fs::write(path, &bytes).expect("write the golden file");
        return;
    }
    assert_eq!(
        bytes,
        golden.as_slice(),
        "the event file changed; if on purpose, check it with \
         scripts/reference/tensorboard_events.py before updating the golden file"
    );
}

/// Reads TFRecord frames back, checking each CRC: the framing we write is self-consistent.
#[test]
fn tensorboard_records_are_framed_with_valid_crcs() {
    let bytes = small_event_file();
    let mut rest = bytes.as_slice();
    let mut records = 0;
    while !rest.is_empty() {
        let (len_bytes, after) = rest.split_at(8);
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let len_crc = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
        assert_eq!(len_crc, masked_crc32c(len_bytes));
        let data = &after[4..4 + len];
        let data_crc = u32::from_le_bytes(after[4 + len..8 + len].try_into().expect("4"));
        assert_eq!(data_crc, masked_crc32c(data));
        rest = &after[8 + len..];
        records += 1;
    }
    // The file-version event, then one event per round.
    assert_eq!(records, 3);
    // The first event: wall_time (field 1, double) and file_version (field 3).
    let first = &bytes[12..12 + 24];
    assert_eq!(first[0], 0x09);
    assert_eq!(
        f64::from_le_bytes(first[1..9].try_into().expect("8")),
        1_700_000_000.5
    );
    assert_eq!(&first[9..11], &[0x1A, 13]);
    assert_eq!(&first[11..], b"brain.Event:2");
}

#[test]
fn event_writer_create_names_the_file_as_tensorboard_expects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("runs").join("fedavg");
    let mut w = EventWriter::create(&log_dir).expect("create");
    w.add_scalar("loss", 1, 0.5).expect("write");
    let path = w.path().expect("a file").to_path_buf();
    drop(w);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name");
    let parts: Vec<&str> = name.splitn(5, '.').collect();
    assert_eq!(&parts[..3], ["events", "out", "tfevents"], "{name}");
    assert!(parts[3].parse::<u64>().is_ok(), "{name}");
    assert!(!parts[4].is_empty(), "{name}");
    // Written through: the scalar's event is on disk without closing anything.
    assert!(std::fs::metadata(&path).expect("exists").len() > 40);
}

#[test]
fn negative_steps_are_encoded_as_ten_byte_varints() {
    let mut w = EventWriter::new(Vec::new()).fixed_wall_time(0.0);
    w.add_scalar("t", -1, 1.0).expect("write");
    let bytes = w.into_inner().expect("bytes");
    let second = &bytes[40..];
    let data = &second[12..];
    // wall_time (9 bytes), then field 2 varint: key 0x10 and ten bytes of -1.
    assert_eq!(data[9], 0x10);
    assert_eq!(
        &data[10..20],
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
    );
}

/// A Python that has TensorBoard: `FLSPEC_TENSORBOARD_PYTHON`, else the project's
/// `.venv-check` (`scripts/setup-python-check.sh`, run by `make test`), else `python3` if it can
/// `import tensorboard`.
fn tensorboard_python() -> Option<String> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-check/bin/python");
    let candidates = std::env::var("FLSPEC_TENSORBOARD_PYTHON")
        .ok()
        .into_iter()
        .chain([venv.display().to_string(), "python3".to_string()]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    None
}

/// TensorBoard's reader on `path`, through scripts/reference/tensorboard_events.py.
fn read_with_tensorboard(python: &str, path: &Path) -> serde_json::Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/reference/tensorboard_events.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(path)
        .output()
        .expect("runs python");
    assert!(
        out.status.success(),
        "tensorboard_events.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[test]
fn tensorboard_reads_a_fresh_file() {
    let Some(python) = tensorboard_python() else {
        eprintln!(
            "skipped: no Python with tensorboard (`python3 -c \"import tensorboard\"` failed \
             and FLSPEC_TENSORBOARD_PYTHON is unset); the golden-bytes test still checks the \
             format"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let h = full_history();
    let mut w = EventWriter::create(dir.path()).expect("create");
    w.write_history(&h).expect("write");
    drop(w);
    let read = read_with_tensorboard(&python, dir.path());
    // TensorBoard parses "brain.Event:2" into its version number.
    assert_eq!(read["file_version"], 2.0);
    let scalars = read["scalars"].as_object().expect("scalars");
    let values = |tag: &str| -> Vec<(u64, f64)> {
        scalars
            .get(tag)
            .unwrap_or_else(|| panic!("tag {tag} missing; tags: {:?}", scalars.keys()))
            .as_array()
            .expect("list")
            .iter()
            .map(|e| (e[0].as_u64().expect("step"), e[1].as_f64().expect("value")))
            .collect()
    };
    let close = |a: &[(u64, f64)], b: &[(u64, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() < 1e-6)
    };
    for metric in ["loss", "accuracy", "seconds", "prox_term", "dropouts"] {
        assert!(close(&values(metric), &h.series(metric)), "{metric}");
    }
    assert!(close(
        &values("Portland, OR/loss"),
        &h.participant_series("Portland, OR", "loss")
    ));
    assert!(close(&values("Portland, OR/bytes_sent"), &[(1, 87_360.0)]));
    assert!(close(&values("Seattle \"SEA\"/dropped"), &[(1, 1.0)]));
    assert!(close(&values("Portland, OR/grad_norm"), &[(1, 3.5)]));
}

/// Runs TensorBoard's reader on the golden file too, so that the pinned bytes stay the ones
/// it accepts.
#[test]
fn tensorboard_reads_the_golden_file() {
    let Some(python) = tensorboard_python() else {
        eprintln!("skipped: no Python with tensorboard (see tensorboard_reads_a_fresh_file)");
        return;
    };
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tensorboard_small.tfevents");
    let read = read_with_tensorboard(&python, &golden);
    let expected = serde_json::json!({
        "a/dropped": [[1, 0.0, 1_700_000_000.5]],
        "a/loss": [[1, 0.25, 1_700_000_000.5]],
        "a/samples": [[1, 10.0, 1_700_000_000.5]],
        "accuracy": [[1, 0.75, 1_700_000_000.5], [2, 0.875, 1_700_000_000.5]],
        "dropouts": [[1, 0.0, 1_700_000_000.5], [2, 0.0, 1_700_000_000.5]],
        "loss": [[1, 0.5, 1_700_000_000.5], [2, 0.25, 1_700_000_000.5]],
        "participants": [[1, 1.0, 1_700_000_000.5], [2, 0.0, 1_700_000_000.5]],
    });
    assert_eq!(read["scalars"], expected);
    // The reader checks the CRCs: with the last record's data CRC flipped it drops round 2,
    // so the CRCs above are what made it accept the file.
    let mut bad = std::fs::read(&golden).expect("read");
    *bad.last_mut().expect("not empty") ^= 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_path = dir.path().join("bad.tfevents");
    std::fs::write(&bad_path, bad).expect("write");
    let read = read_with_tensorboard(&python, &bad_path);
    assert_eq!(
        read["scalars"]["loss"],
        serde_json::json!([[1, 0.5, 1_700_000_000.5]])
    );
}

// ---------------------------------------------------------------- charts

#[cfg(feature = "plot")]
mod charts {
    use flspec::fl::history::History;
    use flspec::fl::history::plot::{LabelHistogramChart, LineChart};
    use flspec::fl::partition::Partitioner;

    fn runs() -> [(&'static str, History); 3] {
        let mut out = [
            ("FedAvg", History::new()),
            ("FedProx mu=0.01", History::new()),
            ("FedProx mu=0.1", History::new()),
        ];
        for (i, (_, h)) in out.iter_mut().enumerate() {
            for round in 1..=20u64 {
                let acc = 0.9 - 0.5 / (round as f64 + i as f64);
                h.record(round).accuracy(acc).loss(1.0 - acc);
            }
        }
        out
    }

    fn chart() -> LineChart {
        runs().iter().fold(
            LineChart::new("Validation accuracy").y_label("accuracy"),
            |c, (name, h)| c.history(*name, h, "accuracy"),
        )
    }

    /// The contents of every `<text>` element, trimmed.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR");
        let w = u32::from_be_bytes(bytes[16..20].try_into().expect("4"));
        let h = u32::from_be_bytes(bytes[20..24].try_into().expect("4"));
        (w, h)
    }

    #[test]
    fn line_chart_svg_has_every_series_label_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("accuracy.svg");
        let drawn = chart().draw(&path).expect("draws");
        assert_eq!(drawn.warning, None, "this machine has DejaVu Sans");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg:.200}"
        );
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
        let texts = svg_texts(&svg);
        for label in [
            "FedAvg",
            "FedProx mu=0.01",
            "FedProx mu=0.1",
            "Validation accuracy",
            "round",
        ] {
            assert!(
                texts.iter().any(|t| t == label),
                "{label} missing from {texts:?}"
            );
        }
        // One polyline per series, plus three legend samples.
        assert!(svg.matches("<polyline").count() >= 3, "lines missing");
        assert!(svg.contains("width=\"800\"") && svg.contains("height=\"500\""));
    }

    #[test]
    fn a_few_rounds_get_one_tick_label_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        for rounds in [2_u64, 4, 7] {
            let path = dir.path().join(format!("r{rounds}.svg"));
            LineChart::new("t")
                .series("a", (1..=rounds).map(|r| (r, r as f64 * 0.1)))
                .draw(&path)
                .expect("draws");
            let texts = svg_texts(&std::fs::read_to_string(&path).expect("read"));
            for r in 1..=rounds {
                let label = r.to_string();
                // The y axis may print the same text, never the x axis twice: at most 2.
                let n = texts.iter().filter(|t| **t == label).count();
                assert!(
                    (1..=2).contains(&n),
                    "round {r} of {rounds}: {n} labels in {texts:?}"
                );
            }
        }
    }

    #[test]
    fn line_chart_png_has_the_asked_size_and_text_pixels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let with = dir.path().join("with.png");
        let without = dir.path().join("without.png");
        chart().size(640, 400).draw(&with).expect("draws");
        let drawn = chart()
            .size(640, 400)
            .without_text()
            .draw(&without)
            .expect("draws");
        assert_eq!(
            drawn.warning, None,
            "asked for no text: nothing to warn about"
        );
        let a = std::fs::read(&with).expect("read");
        let b = std::fs::read(&without).expect("read");
        assert_eq!(png_size(&a), (640, 400));
        assert_eq!(png_size(&b), (640, 400));
        assert_ne!(a, b, "text changes the pixels");
    }

    #[test]
    fn charts_without_text_still_draw_the_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plain.svg");
        chart().without_text().draw(&path).expect("draws");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(!svg.contains("<text"), "no text asked for");
        assert!(svg.matches("<polyline").count() >= 3);
    }

    #[test]
    fn chart_refuses_an_unknown_extension_and_draws_an_empty_chart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = chart()
            .draw(dir.path().join("a.jpeg"))
            .expect_err("must fail");
        assert!(err.to_string().contains(".svg or .png"), "{err}");
        LineChart::new("empty")
            .draw(dir.path().join("empty.svg"))
            .expect("an empty chart draws");
        LineChart::new("flat")
            .series("one point", [(1, 0.5)])
            .series("nan", [(1, f64::NAN)])
            .draw(dir.path().join("flat.png"))
            .expect("a single point draws");
    }

    #[test]
    fn label_histogram_chart_draws_one_bar_segment_per_site_and_class() {
        let labels: Vec<u8> = (0..400).map(|i| (i % 4) as u8).collect();
        let h = Partitioner::Shards {
            classes_per_site: 2,
        }
        .partition(&labels, 4, 4, 3)
        .expect("partition")
        .histogram(&labels, 4)
        .expect("histogram");
        let segments: usize = (0..h.sites())
            .map(|s| h.counts(s).iter().filter(|&&c| c > 0).count())
            .sum();
        let dir = tempfile::tempdir().expect("tempdir");
        let svg_path = dir.path().join("labels.svg");
        LabelHistogramChart::new("Shards, 2 classes per site", &h)
            .draw(&svg_path)
            .expect("draws");
        let svg = std::fs::read_to_string(&svg_path).expect("read");
        let texts = svg_texts(&svg);
        for label in [
            "label 0",
            "label 3",
            "site",
            "samples",
            "Shards, 2 classes per site",
        ] {
            assert!(
                texts.iter().any(|t| t == label),
                "{label} missing from {texts:?}"
            );
        }
        let plain = dir.path().join("plain.svg");
        LabelHistogramChart::new("t", &h)
            .without_text()
            .draw(&plain)
            .expect("draws");
        let plain = std::fs::read_to_string(&plain).expect("read");
        // Bars are filled rects: the background plus one per non-empty (site, class).
        let bars = plain.matches("<rect").count();
        assert!(bars > segments, "{bars} rects for {segments} segments");
        let png = dir.path().join("labels.png");
        LabelHistogramChart::new("t", &h)
            .size(900, 300)
            .draw(&png)
            .expect("draws");
        assert_eq!(png_size(&std::fs::read(&png).expect("read")), (900, 300));
    }
}
