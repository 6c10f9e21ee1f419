//! The operator commands of `flspec-fed` (`runs`, `status`, `logs [--follow]`, `cancel`,
//! `envoys`, each with `--json`), run as the real binary against a real director and envoys
//! (child processes, mutual TLS on 127.0.0.1).

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{CLI, Tls, certs, client, director, envoy, wait_online, within};
use flspec_federated::RunPhase;
use testflows::{FanOutFlow, SlowFlow};

const SITES: [&str; 2] = ["Bengaluru", "Portland"];

/// Runs `flspec-fed SUB ARGS --director ADDR --certs DIR`; fails the test if it fails.
fn fed(dir: &Path, addr: &str, args: &[&str]) -> String {
    let out = fed_output(dir, addr, args);
    assert!(
        out.status.success(),
        "flspec-fed {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn fed_output(dir: &Path, addr: &str, args: &[&str]) -> Output {
    Command::new(CLI)
        .args(args)
        .args(["--director", addr, "--certs"])
        .arg(dir)
        .output()
        .expect("flspec-fed runs")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn runs_status_logs_cancel_and_envoys_as_tables_and_json() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &SITES);
        let tls = Tls::Certs(path.clone());
        let (_director, addr) = director(&path, &tls, &[]);
        let _b = envoy(&path, &addr, "Bengaluru", &tls, &[]);
        let _p = envoy(&path, &addr, "Portland", &tls, &[]);
        let runtime = client(&path, &addr).collaborators(SITES);
        wait_online(&runtime, &SITES);

        // envoys
        let table = fed(&path, &addr, &["envoys"]);
        assert!(table.starts_with("NAME"), "{table}");
        assert!(table.contains("Bengaluru") && table.contains("Portland"));
        let envoys = json(&fed(&path, &addr, &["envoys", "--json"]));
        let names: Vec<&str> = envoys
            .as_array()
            .expect("an array")
            .iter()
            .map(|e| e["name"].as_str().expect("a name"))
            .collect();
        assert_eq!(names, SITES);

        // A finished run: status, runs, logs (its envoys' lines, events and end).
        let finished = runtime.submit(FanOutFlow::default()).expect("submitted");
        let finished_id = finished.id().to_string();
        finished.wait().expect("the run finishes");
        let status = json(&fed(&path, &addr, &["status", &finished_id, "--json"]));
        assert_eq!(status["phase"], "Finished");
        assert_eq!(status["flow"], "FanOutFlow");
        let text = fed(&path, &addr, &["status", &finished_id]);
        assert!(text.contains("state:        finished"), "{text}");
        let logs = fed(&path, &addr, &["logs", &finished_id]);
        assert!(
            logs.contains("Portland") && logs.contains("contributing to the sum"),
            "an envoy's log line: {logs}"
        );
        assert!(logs.contains("EVENT step `contribute` finished on Bengaluru"));
        assert!(logs.trim_end().ends_with("END   finished"), "{logs}");
        let lines = fed(&path, &addr, &["logs", &finished_id, "--json"]);
        let updates: Vec<serde_json::Value> = lines.lines().map(json).collect();
        assert!(updates.iter().any(|u| u["Log"]["source"] == "Bengaluru"));
        assert!(
            updates.last().is_some_and(|u| u.get("Finished").is_some()),
            "{lines}"
        );

        // A running run: listed as running; `logs --follow` ends with it; `cancel` stops it.
        let slow = runtime
            .submit(SlowFlow {
                slow: "Portland".into(),
                sleep_ms: 20_000,
                ..SlowFlow::default()
            })
            .expect("submitted");
        let slow_id = slow.id().to_string();
        let runs = json(&fed(&path, &addr, &["runs", "--json"]));
        let listed: Vec<(&str, &str)> = runs
            .as_array()
            .expect("an array")
            .iter()
            .map(|r| {
                (
                    r["run_id"].as_str().expect("an id"),
                    r["phase"].as_str().expect("a phase"),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (finished_id.as_str(), "Finished"),
                (slow_id.as_str(), "Running")
            ]
        );
        let table = fed(&path, &addr, &["runs"]);
        assert!(table.starts_with("RUN"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&slow_id) && l.contains("running"))
        );
        let follower = {
            let (path, addr, id) = (path.clone(), addr.clone(), slow_id.clone());
            std::thread::spawn(move || fed(&path, &addr, &["logs", &id, "--follow"]))
        };
        std::thread::sleep(Duration::from_millis(500));
        assert!(!follower.is_finished(), "--follow waits for the run to end");
        let cancelled = json(&fed(&path, &addr, &["cancel", &slow_id, "--json"]));
        assert_eq!(cancelled["was_running"], true);
        let followed = follower.join().expect("the follower ends");
        assert!(
            followed.trim_end().ends_with("END   cancelled"),
            "{followed}"
        );
        assert!(slow.wait().is_err(), "the run was cancelled");
        assert_eq!(
            runtime.run_status(&slow_id).expect("status").phase,
            RunPhase::Cancelled
        );
        let again = fed(&path, &addr, &["cancel", &slow_id]);
        assert!(again.contains("had already ended"), "{again}");

        // An unknown run: a clear error and a failing exit status.
        let out = fed_output(&path, &addr, &["logs", "run-00"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no run `run-00`"), "{err}");
    });
}
