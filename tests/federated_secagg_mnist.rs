//! The SecAgg MNIST flow through a director and two envoys, each its own process, over mutual
//! TLS on 127.0.0.1 (`scripts/demo-federated.sh`, as `make demo-federated` runs it): one round
//! on the bundled data gives the same table as the local runtime.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn one_round_through_a_director_and_two_envoys_matches_the_local_runtime() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new("bash")
        .arg(format!("{root}/scripts/demo-federated.sh"))
        .args(["--rounds", "1", "--quiet"])
        .env("FLSPEC_PROFILE", "debug")
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs the demo script");
    // Bounded: `cargo test` has built the binaries (the script may relink them); the run takes
    // seconds.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the script's status") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(1200) {
            let _ = child.kill();
            panic!("the federated demo did not finish within 20 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().expect("the script's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "the demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Bengaluru            online"), "{stdout}");
    assert!(stdout.contains("Federation results"), "{stdout}");
    // Round 0 of the seed's flow on the bundled data, as the local runtime computes it.
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("|      0 |"))
        .unwrap_or_else(|| panic!("no round 0 in:\n{stdout}"));
    assert!(
        row.contains("0.0770") && row.contains("2.2630") && row.contains("0.3670"),
        "{row}"
    );
}
