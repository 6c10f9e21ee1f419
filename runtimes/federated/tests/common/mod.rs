//! Helpers of the integration tests: certificates, child processes that die with the test,
//! and bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flspec_federated::certs::{FederationSpec, create_federation};
use flspec_federated::{EnvoyState, FederatedRuntime, TlsConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_fed-testbin");
pub const CLI: &str = env!("CARGO_BIN_EXE_flspec-fed");

/// A child process, killed (SIGKILL) and reaped on drop. Its stdin is a pipe the child watches
/// (`--exit-on-stdin-eof`), so it also dies if the test process dies.
pub struct Proc {
    pub name: String,
    child: Child,
    _stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Proc {
    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(name: &str, dir: &Path, args: &[String]) -> (Proc, Option<std::process::ChildStdout>) {
    let log = dir.join(format!("{}.{}.log", name.replace('/', "_"), unique()));
    let err = std::fs::File::create(&log).expect("the test's temp dir is writable");
    let mut child = Command::new(BIN)
        .arg("--exit-on-stdin-eof")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .env("RUST_LOG", "info")
        .spawn()
        .expect("the test binary starts");
    let stdout = child.stdout.take();
    let stdin = child.stdin.take();
    (
        Proc {
            name: name.to_string(),
            child,
            _stdin: stdin,
            log,
        },
        stdout,
    )
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Makes a federation's certificates in `dir`.
pub fn certs(dir: &Path, envoys: &[&str]) {
    create_federation(
        dir,
        &FederationSpec {
            director_hosts: vec!["127.0.0.1".into()],
            envoys: envoys.iter().map(|s| s.to_string()).collect(),
            clients: vec!["client".into()],
            days: 30,
            new_ca: false,
        },
    )
    .expect("certificates are created");
}

/// How a child connects.
#[derive(Clone)]
pub enum Tls {
    /// `--certs DIR`.
    Certs(PathBuf),
    /// `--plaintext`.
    Plain,
    /// Explicit files (`--ca`, optional `--cert`/`--key`).
    Files {
        ca: PathBuf,
        cert: Option<(PathBuf, PathBuf)>,
    },
}

impl Tls {
    pub fn args(&self) -> Vec<String> {
        match self {
            Tls::Certs(d) => vec!["--certs".into(), d.display().to_string()],
            Tls::Plain => vec!["--plaintext".into()],
            Tls::Files { ca, cert } => {
                let mut v = vec!["--ca".into(), ca.display().to_string()];
                if let Some((c, k)) = cert {
                    v.extend([
                        "--cert".into(),
                        c.display().to_string(),
                        "--key".into(),
                        k.display().to_string(),
                    ]);
                }
                v
            }
        }
    }
}

/// Starts a director; returns it and the address it listens on.
pub fn director(dir: &Path, tls: &Tls, extra: &[&str]) -> (Proc, String) {
    director_at(dir, "127.0.0.1:0", tls, extra)
}

/// Starts a director listening on `listen` (e.g. the address of one that was killed);
/// returns it and the address it listens on.
pub fn director_at(dir: &Path, listen: &str, tls: &Tls, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["director".to_string(), "--listen".into(), listen.into()];
    args.extend(tls.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let (proc, stdout) = spawn("director", dir, &args);
    let stdout = stdout.expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "the director did not report its address within 30 s; its log:\n{}",
                proc.stderr()
            )
        });
    (proc, addr)
}

/// Starts an envoy.
pub fn envoy(dir: &Path, addr: &str, name: &str, tls: &Tls, extra: &[&str]) -> Proc {
    let mut args = vec![
        "envoy".to_string(),
        "--director".into(),
        addr.to_string(),
        "--name".into(),
        name.to_string(),
    ];
    args.extend(tls.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(name, dir, &args).0
}

/// A client with the federation's client certificate.
pub fn client(dir: &Path, addr: &str) -> FederatedRuntime {
    FederatedRuntime::connect(
        addr,
        TlsConfig::from_dir(dir, "client").expect("client certificate"),
    )
    .expect("the client connects")
    .step_timeout(Duration::from_secs(60))
}

/// Waits (at most 30 s) until the named envoys are online.
pub fn wait_online(runtime: &FederatedRuntime, names: &[&str]) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let envoys = runtime.envoys().expect("the director lists envoys");
        let online = names.iter().all(|n| {
            envoys
                .iter()
                .any(|e| e.name == *n && e.state != EnvoyState::Offline)
        });
        if online {
            return;
        }
        assert!(
            Instant::now() < end,
            "envoys {names:?} not online within 30 s: {envoys:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `f` on a thread and fails the test if it takes longer than `limit`.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test did not finish within {limit:?}"),
    }
}
