//! The SecAgg MNIST flow through a director and two envoys, each its own process, over mutual
//! TLS on 127.0.0.1 (`scripts/demo-federated.sh`, as `make demo-federated` runs it): one round
//! on the bundled data gives the same table as the local runtime.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Malicious-secure (the example's default): each envoy signs with the Ed25519 key
/// `flspec-fed certs` issued it (envoys/NAME.secagg.{crt,key}), and checks its peer's signing
/// certificate against the CA.
#[test]
fn one_round_through_a_director_and_two_envoys_matches_the_local_runtime() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new("bash");
    common::cargo::without_package_env(&mut child);
    let mut child = child
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
    assert!(
        stdout.contains("secure aggregation (malicious-secure)"),
        "{stdout}"
    );
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

/// Child processes killed when the test ends, also on failure.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Builds the example and `flspec-fed` (debug, as the demo script does) and returns their paths.
fn binaries(root: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    for args in [
        &["build", "--example", "secagg_mnist"][..],
        &["build", "-p", "flspec-federated", "--bin", "flspec-fed"][..],
    ] {
        let mut cargo = Command::new(env!("CARGO"));
        common::cargo::without_package_env(&mut cargo);
        let status = cargo
            .args(args)
            .current_dir(root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo {args:?} failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| std::path::Path::new(root).join("target"), Into::into);
    (
        target.join("debug/examples/secagg_mnist"),
        target.join("debug/flspec-fed"),
    )
}

#[test]
fn the_director_refuses_an_envoy_on_its_revocation_list() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (bin, fed) = binaries(root);
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let status = Command::new(&fed)
        .args(["certs", "--director-host", "127.0.0.1"])
        .args(["--envoy", "Bengaluru", "--envoy", "Portland", "--out"])
        .arg(&certs)
        .stdout(Stdio::null())
        .status()
        .expect("flspec-fed runs");
    assert!(status.success());
    let fingerprint = Command::new(&fed)
        .arg("fingerprint")
        .arg(certs.join("envoys/Portland.pem"))
        .output()
        .expect("flspec-fed fingerprint");
    assert!(fingerprint.status.success());
    let revoked = dir.path().join("revoked.txt");
    std::fs::write(&revoked, &fingerprint.stdout).expect("write the list");

    // A list that cannot be read stops the director at once, naming the file.
    let missing = dir.path().join("no-such-list.txt");
    let out = Command::new(&bin)
        .args(["director", "--listen", "127.0.0.1:0", "--certs"])
        .arg(&certs)
        .arg("--revoked")
        .arg(&missing)
        .output()
        .expect("the director runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no-such-list.txt"), "{stderr}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
    let mut children = Children(Vec::new());
    children.0.push(
        Command::new(&bin)
            .args(["director", "--listen", &addr, "--certs"])
            .arg(&certs)
            .arg("--revoked")
            .arg(&revoked)
            .stdout(Stdio::null())
            .stderr(log("director.log"))
            .spawn()
            .expect("the director starts"),
    );
    for name in ["Bengaluru", "Portland"] {
        children.0.push(
            Command::new(&bin)
                .args([
                    "envoy",
                    "--director",
                    &addr,
                    "--name",
                    name,
                    "--threads",
                    "1",
                ])
                .arg("--certs")
                .arg(&certs)
                .stdout(Stdio::null())
                .stderr(log(&format!("envoy-{name}.log")))
                .spawn()
                .expect("the envoy starts"),
        );
    }
    let started = Instant::now();
    let (listing, portland) = loop {
        let out = Command::new(&fed)
            .args(["envoys", "--director", &addr, "--certs"])
            .arg(&certs)
            .output()
            .expect("flspec-fed envoys");
        let listing = String::from_utf8_lossy(&out.stdout).to_string();
        let portland = children.0[2].try_wait().expect("Portland's status");
        if listing.contains("Bengaluru") && portland.is_some() {
            break (listing, portland);
        }
        let logs = || {
            ["director.log", "envoy-Bengaluru.log", "envoy-Portland.log"]
                .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
                .join("\n")
        };
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "after 2 minutes: {listing}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(listing.contains("Bengaluru"), "{listing}");
    assert!(!listing.contains("Portland"), "{listing}");
    let status = portland.expect("Portland's envoy ended");
    assert!(!status.success(), "the revoked envoy must fail");
    let portland_log =
        std::fs::read_to_string(dir.path().join("envoy-Portland.log")).unwrap_or_default();
    assert!(
        portland_log.to_lowercase().contains("revoked"),
        "{portland_log}"
    );
}

#[test]
fn envoys_split_the_data_by_their_partition_and_refuse_a_run_asking_for_another() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (bin, fed) = binaries(root);
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let status = Command::new(&fed)
        .args(["certs", "--director-host", "127.0.0.1"])
        .args(["--envoy", "Bengaluru", "--envoy", "Portland", "--out"])
        .arg(&certs)
        .stdout(Stdio::null())
        .status()
        .expect("flspec-fed runs");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
    let logs = || {
        ["director.log", "envoy-Bengaluru.log", "envoy-Portland.log"]
            .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
            .join("\n")
    };
    let partition = ["--partition", "shards:2", "--partition-seed", "7"];
    let mut children = Children(Vec::new());
    children.0.push(
        Command::new(&bin)
            .args(["director", "--listen", &addr, "--certs"])
            .arg(&certs)
            .stdout(Stdio::null())
            .stderr(log("director.log"))
            .spawn()
            .expect("the director starts"),
    );
    for name in ["Bengaluru", "Portland"] {
        children.0.push(
            Command::new(&bin)
                .args(["envoy", "--director", &addr, "--name", name])
                .args(["--threads", "1"])
                .args(partition)
                .arg("--certs")
                .arg(&certs)
                .stdout(Stdio::null())
                .stderr(log(&format!("envoy-{name}.log")))
                .spawn()
                .expect("the envoy starts"),
        );
    }
    let started = Instant::now();
    loop {
        let out = Command::new(&fed)
            .args(["envoys", "--director", &addr, "--certs"])
            .arg(&certs)
            .output()
            .expect("flspec-fed envoys");
        let listing = String::from_utf8_lossy(&out.stdout).to_lowercase();
        if listing.matches("online").count() + listing.matches("idle").count() >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "after 2 minutes: {listing}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let client = |extra: &[&str]| {
        Command::new(&bin)
            .args(["--runtime", "federated", "--director", &addr, "--certs"])
            .arg(&certs)
            .args(["--rounds", "1", "--quiet"])
            .args(extra)
            .output()
            .expect("the client runs")
    };
    // The run and its envoys agree: the federation's round 0 is the local runtime's.
    let out = client(&partition);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let local = Command::new(&bin)
        .args(["--rounds", "1", "--quiet", "--threads", "1"])
        .args(partition)
        .output()
        .expect("the local run");
    let local = String::from_utf8_lossy(&local.stdout).to_string();
    let round0 = |s: &str| -> String {
        let row = s
            .lines()
            .find(|l| l.trim_start().starts_with("|      0 |"))
            .unwrap_or_else(|| panic!("no round 0 in:\n{s}"));
        // Without the time column.
        row.rsplitn(3, '|').nth(2).unwrap_or(row).to_string()
    };
    assert_eq!(round0(&stdout), round0(&local), "{stdout}\n{local}");
    // ... and not the default split's (whose round 0 trains to a loss of 2.2630).
    assert!(!round0(&stdout).contains("2.2630"), "{stdout}");
    assert!(
        stdout.contains("(`--partition shards:2 --partition-seed 7`)"),
        "{stdout}"
    );
    // A run that asks for another split is refused by the envoys, saying what to do.
    let out = client(&["--partition", "iid", "--partition-seed", "7"]);
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("start every envoy with the run's `--partition`"),
        "{all}\n{}",
        logs()
    );
}

/// A federation's certificates (`flspec-fed certs`) for `envoys` in `dir/certs`, and a free
/// loopback address for its director.
fn certs_and_address(fed: &std::path::Path, dir: &std::path::Path, envoys: &[&str]) -> String {
    let mut certs = Command::new(fed);
    certs.args(["certs", "--director-host", "127.0.0.1"]);
    for name in envoys {
        certs.args(["--envoy", name]);
    }
    let status = certs
        .arg("--out")
        .arg(dir.join("certs"))
        .stdout(Stdio::null())
        .status()
        .expect("flspec-fed runs");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// Starts envoy `name` of the example, logging to `dir/envoy-NAME.log`.
fn spawn_envoy(
    bin: &std::path::Path,
    dir: &std::path::Path,
    addr: &str,
    name: &str,
    extra: &[&str],
) -> std::process::Child {
    Command::new(bin)
        .args(["envoy", "--director", addr, "--name", name])
        .args(["--threads", "1"])
        .args(extra)
        .arg("--certs")
        .arg(dir.join("certs"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("envoy-{name}.log"))).expect("log file"))
        .spawn()
        .expect("the envoy starts")
}

/// Starts the SecAgg MNIST director on `addr` with the certificates in `dir/certs` and `extra`
/// flags, its log in `dir/log_file`.
fn spawn_director(
    bin: &std::path::Path,
    dir: &std::path::Path,
    addr: &str,
    log_file: &str,
    extra: &[&std::ffi::OsStr],
) -> std::process::Child {
    Command::new(bin)
        .args(["director", "--listen", addr, "--certs"])
        .arg(dir.join("certs"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log_file)).expect("log file"))
        .spawn()
        .expect("the director starts")
}

/// The log files `files` in `dir`, one after the other (a missing one reads as empty).
fn read_logs(dir: &std::path::Path, files: &[String]) -> String {
    files
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (at most 2 minutes) until `count` envoys are online; `logs` says why not.
fn wait_envoys(
    fed: &std::path::Path,
    dir: &std::path::Path,
    addr: &str,
    count: usize,
    logs: impl Fn() -> String,
) {
    let started = Instant::now();
    loop {
        let out = Command::new(fed)
            .args(["envoys", "--director", addr, "--certs"])
            .arg(dir.join("certs"))
            .output()
            .expect("flspec-fed envoys");
        let listing = String::from_utf8_lossy(&out.stdout).to_lowercase();
        if listing.matches("online").count() + listing.matches("idle").count() >= count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "after 2 minutes: {listing}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The steps of the run folders under `state/checkpoints`, in journal order, with the folder.
fn journal_steps(state: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let Ok(runs) = std::fs::read_dir(state.join("checkpoints")) else {
        return Vec::new();
    };
    runs.flatten()
        .flat_map(|run| {
            std::fs::read_to_string(run.path().join("journal.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    Some((v["step"].as_str()?.to_string(), run.path()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The rows of rounds 0 and 1 of a results table, without the time column.
fn table_rows(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("|      0 |") || t.starts_with("|      1 |")
        })
        .map(|row| row.rsplitn(3, '|').nth(2).unwrap_or(row).to_string())
        .collect()
}

/// The director is killed with SIGKILL in the middle of round 1 (after its keys were
/// exchanged) and started again on its state folder: the envoys register again, round 1
/// starts over with fresh keys (the run resumes after round 0's `join`, a resume point), the
/// client's run handle reconnects, and the table is the uninterrupted run's.
#[test]
fn a_director_killed_mid_round_starts_the_round_over_with_fresh_keys() {
    use flspec::checkpoint::RunCheckpoints;
    use flspec_examples::secagg_mnist::SecAggMnist;

    let root = env!("CARGO_MANIFEST_DIR");
    let (bin, fed) = binaries(root);
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let state = dir.path().join("state");
    let addr = certs_and_address(&fed, dir.path(), &["Bengaluru", "Portland"]);
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
    let logs = || {
        let files = [
            "director.log",
            "director-2.log",
            "envoy-Bengaluru.log",
            "envoy-Portland.log",
        ];
        read_logs(dir.path(), &files.map(String::from))
    };
    let director = |log_file: &str| {
        spawn_director(
            &bin,
            dir.path(),
            &addr,
            log_file,
            &["--state".as_ref(), state.as_ref()],
        )
    };
    let mut children = Children(vec![director("director.log")]);
    for name in ["Bengaluru", "Portland"] {
        children
            .0
            .push(spawn_envoy(&bin, dir.path(), &addr, name, &[]));
    }
    wait_envoys(&fed, dir.path(), &addr, 2, logs);
    let client = Command::new(&bin)
        .args(["--runtime", "federated", "--director", &addr, "--certs"])
        .arg(&certs)
        .args(["--rounds", "2", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(log("client.log"))
        .spawn()
        .expect("the client runs");
    // Round 1's keys are exchanged: its `generate_collaborator_index` is recorded after round
    // 0's `join`.
    let journal = || journal_steps(&state);
    let mid_round_1 = |steps: &[(String, std::path::PathBuf)]| {
        steps
            .iter()
            .skip_while(|(s, _)| s != "join")
            .any(|(s, _)| s == "generate_collaborator_index")
    };
    let started = Instant::now();
    while !mid_round_1(&journal()) {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "round 1 did not exchange keys within 10 minutes\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let run_dir = journal()[0].1.clone();
    let _ = children.0[0].kill();
    let _ = children.0[0].wait();
    let restarted = Instant::now();
    let recorded = journal().len();
    children.0[0] = director("director-2.log");
    while journal().len() == recorded {
        assert!(
            restarted.elapsed() < Duration::from_secs(120),
            "the resumed run recorded nothing within 2 minutes\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "the resumed SecAgg MNIST run moved again {:?} after the director's restart",
        restarted.elapsed()
    );
    let out = client.wait_with_output().expect("the client's output");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", logs());

    // Round 1 ran twice, each time with its own keys.
    let run = RunCheckpoints::open(
        run_dir.parent().expect("the checkpoints folder"),
        &run_dir.file_name().expect("a run id").to_string_lossy(),
    )
    .expect("the run's checkpoints");
    let exchanges: Vec<SecAggMnist> = run
        .records()
        .iter()
        .filter(|r| r.step == "generate_collaborator_index")
        .map(|r| run.load::<SecAggMnist>(r).expect("a checkpoint"))
        .filter(|s| s.round == 1)
        .collect();
    assert_eq!(exchanges.len(), 2, "round 1 started over once");
    assert_ne!(
        exchanges[0].signed_keys.get("Bengaluru"),
        exchanges[1].signed_keys.get("Bengaluru"),
        "the restarted round has fresh keys"
    );

    let local = Command::new(&bin)
        .args(["--rounds", "2", "--quiet", "--threads", "1"])
        .output()
        .expect("the local run");
    let local = String::from_utf8_lossy(&local.stdout).to_string();
    let rounds = table_rows;
    assert_eq!(rounds(&stdout).len(), 2, "{stdout}");
    assert_eq!(rounds(&stdout), rounds(&local), "{stdout}\n{local}");
}

/// An envoy killed with SIGKILL in round 0 and started again at once (malicious-secure, four
/// envoys: threshold 3) is a dropout of round 0; round 1 invites it again with every peer's
/// signing certificate (its new process lost them), sums its update, and the table says it
/// came back.
#[test]
fn a_restarted_envoy_is_a_dropout_then_comes_back_in_the_next_round() {
    const SITES: [&str; 4] = [
        "Bengaluru",
        "Portland",
        "collaborator-003",
        "collaborator-004",
    ];
    let root = env!("CARGO_MANIFEST_DIR");
    let (bin, fed) = binaries(root);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let addr = certs_and_address(&fed, dir.path(), &SITES);
    let logs = || {
        let files: Vec<String> = std::iter::once("director.log".to_string())
            .chain(SITES.iter().map(|s| format!("envoy-{s}.log")))
            .collect();
        read_logs(dir.path(), &files)
    };
    let mut children = Children(vec![spawn_director(
        &bin,
        dir.path(),
        &addr,
        "director.log",
        &["--state".as_ref(), state.as_ref()],
    )]);
    let four = ["--collaborators", "4"];
    for name in SITES {
        children
            .0
            .push(spawn_envoy(&bin, dir.path(), &addr, name, &four));
    }
    wait_envoys(&fed, dir.path(), &addr, 4, logs);
    let client = Command::new(&bin)
        .args(["--runtime", "federated", "--director", &addr, "--certs"])
        .arg(dir.path().join("certs"))
        .args(["--collaborators", "4", "--rounds", "2", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client runs");
    // Round 0 begins once the identities are exchanged.
    let started = Instant::now();
    while !journal_steps(&state)
        .iter()
        .any(|(s, _)| s == "collect_identities")
    {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no identities exchanged within 10 minutes\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = children.0[2].kill();
    let _ = children.0[2].wait();
    children.0[2] = spawn_envoy(&bin, dir.path(), &addr, "Portland", &four);
    let out = client.wait_with_output().expect("the client's output");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    assert!(
        stdout.contains("round 0: dropped out: Portland"),
        "{stdout}\n{}",
        logs()
    );
    assert!(
        stdout.contains("round 1: came back after dropping out: Portland"),
        "{stdout}\n{}",
        logs()
    );
    assert!(!stdout.contains("round 1: dropped out"), "{stdout}");
}

/// One envoy process hosts three collaborators (`--host`, authorised by the director's
/// `--hosts` list), each with its own share, private state and signing key: a malicious-secure
/// round through it gives the local runtime's table for three collaborators.
#[test]
fn one_envoy_hosting_three_collaborators_matches_the_local_runtime() {
    const SITES: [&str; 3] = ["Bengaluru", "Portland", "collaborator-003"];
    let root = env!("CARGO_MANIFEST_DIR");
    let (bin, fed) = binaries(root);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut names = vec!["site-a"];
    names.extend(SITES);
    let addr = certs_and_address(&fed, dir.path(), &names);
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, format!("site-a {}\n", SITES.join(" "))).expect("the hosting list");
    let logs = || {
        read_logs(
            dir.path(),
            &["director.log".into(), "envoy-site-a.log".into()],
        )
    };
    let mut children = Children(vec![spawn_director(
        &bin,
        dir.path(),
        &addr,
        "director.log",
        &["--hosts".as_ref(), hosts.as_ref()],
    )]);
    let mut hosting = vec!["--collaborators", "3"];
    for site in SITES {
        hosting.extend(["--host", site]);
    }
    children
        .0
        .push(spawn_envoy(&bin, dir.path(), &addr, "site-a", &hosting));
    wait_envoys(&fed, dir.path(), &addr, 1, logs);
    let out = Command::new(&bin)
        .args(["--runtime", "federated", "--director", &addr, "--certs"])
        .arg(dir.path().join("certs"))
        .args(["--collaborators", "3", "--rounds", "1", "--quiet"])
        .output()
        .expect("the client runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    assert!(stdout.contains("malicious-secure"), "{stdout}");
    let local = Command::new(&bin)
        .args([
            "--collaborators",
            "3",
            "--rounds",
            "1",
            "--quiet",
            "--threads",
            "1",
        ])
        .output()
        .expect("the local run");
    let local = String::from_utf8_lossy(&local.stdout).to_string();
    assert_eq!(table_rows(&stdout).len(), 1, "{stdout}");
    assert_eq!(table_rows(&stdout), table_rows(&local), "{stdout}\n{local}");
}
