//! `--log-format json`: a real director and envoys (child processes, mutual TLS) write one JSON
//! object per line, and the lines logged inside a run carry its run id, flow, step and
//! participant.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::time::{Duration, Instant};

use common::{Proc, Tls, certs, client, director, envoy, wait_online, within};
use testflows::FanOutFlow;

const SITES: [&str; 2] = ["Bengaluru", "Portland"];

/// The JSON lines of a process's stderr (every line must parse).
fn json_lines(proc: &Proc) -> Vec<serde_json::Value> {
    proc.stderr()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits (at most 10 s) for a line of `proc` whose message is `message`.
fn line_with(proc: &Proc, message: &str) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = json_lines(proc)
            .into_iter()
            .find(|l| l["message"] == message)
        {
            return line;
        }
        assert!(
            Instant::now() < end,
            "no line `{message}` in {}'s log:\n{}",
            proc.name,
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn json_log_lines_name_the_run_flow_step_and_participant() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &SITES);
        let tls = Tls::Certs(path.clone());
        let json = ["--log-format", "json"];
        let (director_proc, addr) = director(&path, &tls, &json);
        let _bengaluru = envoy(&path, &addr, "Bengaluru", &tls, &json);
        let portland = envoy(&path, &addr, "Portland", &tls, &json);
        let runtime = client(&path, &addr).collaborators(SITES);
        wait_online(&runtime, &SITES);
        let handle = runtime.submit(FanOutFlow::default()).expect("submitted");
        let run_id = handle.id().to_string();
        handle.wait().expect("the run finishes");

        // An envoy: the collaborator step's own log line.
        let line = line_with(&portland, "contributing to the sum");
        assert_eq!(line["run"], run_id.as_str(), "{line}");
        assert_eq!(line["flow"], "FanOutFlow");
        assert_eq!(line["step"], "contribute");
        assert_eq!(line["participant"], "Portland");
        assert_eq!(line["site"], "Portland", "the event's own field");
        assert_eq!(line["level"], "INFO");

        // The director: the run's end, logged on the run's thread after its last step.
        let line = line_with(&director_proc, "run finished");
        assert_eq!(line["run"], run_id.as_str(), "{line}");
        assert_eq!(line["flow"], "FanOutFlow");
        assert_eq!(line["step"], "end", "{}", director_proc.stderr());
        assert_eq!(line["participant"], "aggregator");

        // Outside a run, lines have no run fields, and every line parsed above.
        let listening = line_with(&director_proc, "director listening");
        assert!(listening.get("run").is_none(), "{listening}");
        assert!(listening["timestamp"].as_str().is_some());
    });
}
