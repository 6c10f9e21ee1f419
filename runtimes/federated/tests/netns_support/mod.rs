//! Network namespaces for the fault tests: the director and each envoy run in a namespace of
//! their own (`ip netns exec`), all joined by a bridge in a hub namespace; the test process (the
//! client, and the userspace fault proxy) reaches them through one veth pair from the root
//! namespace. Everything is torn down on drop (also while a panic unwinds); namespaces left by a
//! test process that died are removed by the next one.
//!
//! Addresses: `10.231.S.0/24` (`S` is per test), the root end `.254`, the director `.10`, the
//! envoys `.11`, `.12`, ... The kernel here has no `netem`: latency, bandwidth, resets and
//! half-open connections come from [`FaultProxy`], a userspace TCP proxy.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use flspec_federated::certs::{FederationSpec, create_federation};

/// The test binary (a director or an envoy with the test flows).
pub const BIN: &str = env!("CARGO_BIN_EXE_fed-testbin");

/// The director's port inside its namespace.
pub const DIRECTOR_PORT: u16 = 50050;

const PREFIX: &str = "flt-";

/// Runs `ip ARGS`; returns its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("could not run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why these tests cannot run here, if they cannot: not root, no `ip`, or no namespaces.
pub fn unavailable() -> Option<String> {
    static ONCE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { geteuid() } != 0 {
        return Some("not root: network namespaces need root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` command (iproute2) is missing".into());
    }
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    let _ = ip(&["netns", "del", &probe]);
    None
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// Skips the calling test (returns from it) with a printed reason when namespaces are
/// unavailable.
#[macro_export]
macro_rules! skip_without_netns {
    () => {
        if let Some(reason) = netns_support::unavailable() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// Removes namespaces of test processes that no longer run (a test killed by its timeout
/// cannot unwind).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
        }
    }
}

/// The file that claims subnet `s` for one test (it holds the claiming process's id).
fn subnet_claim(s: u8) -> PathBuf {
    std::env::temp_dir().join(format!("flt-subnet-{s}"))
}

/// Claims a subnet no other test (of this or another process) uses now; a claim of a process
/// that no longer runs is taken over.
fn claim_subnet(pid: u32, n: u64) -> Result<u8, String> {
    for k in 0..200u64 {
        let s = ((u64::from(pid) * 7 + n + k) % 200 + 20) as u8;
        let path = subnet_claim(s);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{pid}");
                    return Ok(s);
                }
                Err(_) => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    if alive {
                        break;
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    Err("no free subnet in 10.231.20.0 to 10.231.219.0".into())
}

/// A namespaced network: a hub with a bridge, the root namespace's end, and nodes.
pub struct Net {
    /// The subnet's third byte.
    pub subnet: u8,
    tag: String,
    hub: String,
    root_if: String,
    nodes: Vec<String>,
    procs: Vec<NsProc>,
}

impl Net {
    /// Creates the hub and the root namespace's link; the root end is `10.231.S.254`.
    pub fn new() -> Result<Net, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        remove_stale();
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{PREFIX}{pid}-{n}");
        let subnet = claim_subnet(pid, n)?;
        let net = Net {
            subnet,
            hub: format!("{tag}-hub"),
            root_if: format!("flr{}x{n}", pid % 1_000_000),
            tag,
            nodes: Vec::new(),
            procs: Vec::new(),
        };
        let hub = net.hub.clone();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        let root_if = net.root_if.clone();
        ip(&[
            "link", "add", &root_if, "type", "veth", "peer", "name", "vroot", "netns", &hub,
        ])?;
        ip(&["-n", &hub, "link", "set", "vroot", "master", "br0", "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.root_addr()),
            "dev",
            &root_if,
        ])?;
        ip(&["link", "set", &root_if, "up"])?;
        Ok(net)
    }

    /// The root namespace's address (the client and the fault proxy live there).
    pub fn root_addr(&self) -> String {
        format!("10.231.{}.254", self.subnet)
    }

    /// Node `i`'s address (`i` 0 is the director by convention).
    pub fn addr(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, 10 + i)
    }

    /// The director's address and port (node 0).
    pub fn director_addr(&self) -> String {
        format!("{}:{DIRECTOR_PORT}", self.addr(0))
    }

    /// Adds node `i` (a namespace with `eth0` at [`addr`](Self::addr)`(i)` on the bridge);
    /// returns the namespace's name.
    pub fn add_node(&mut self, i: usize) -> Result<String, String> {
        let ns = format!("{}-n{i}", self.tag);
        ip(&["netns", "add", &ns])?;
        self.nodes.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let port = format!("v{i}");
        ip(&[
            "-n", &self.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        ip(&["-n", &self.hub, "link", "set", &port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", self.addr(i)),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(ns)
    }

    /// The namespace of node `i`.
    pub fn node(&self, i: usize) -> String {
        format!("{}-n{i}", self.tag)
    }

    /// Cuts (or heals) node `i`'s link at the bridge: its packets are dropped silently, as on
    /// a cable cut between sites; the node's own interface stays up.
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), String> {
        ip(&[
            "-n",
            &self.hub,
            "link",
            "set",
            &format!("v{i}"),
            if up { "up" } else { "down" },
        ])
    }

    /// Starts `fed-testbin ARGS` in node `i`'s namespace; its stderr goes to a file in `dir`.
    /// It is killed on drop of the returned index's process or of the network.
    pub fn spawn(&mut self, i: usize, name: &str, dir: &Path, args: &[String]) -> usize {
        let log = dir.join(format!("{name}.{}.log", self.procs.len()));
        let err = std::fs::File::create(&log).expect("the test's temp dir is writable");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node(i), BIN, "--exit-on-stdin-eof"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .env("RUST_LOG", "info")
            .spawn()
            .expect("`ip netns exec` starts");
        let stdout = child.stdout.take();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let _ = tx.send(line);
                }
            });
        }
        self.procs.push(NsProc {
            name: name.to_string(),
            child,
            _stdin: stdin,
            log,
            stdout: rx,
        });
        self.procs.len() - 1
    }

    /// Starts the director in node 0 (which must exist) with `--certs dir`; waits (at most
    /// 30 s) until it listens.
    pub fn start_director(&mut self, dir: &Path, extra: &[&str]) -> usize {
        self.start_director_on(0, dir, extra)
    }

    /// Starts a director in node `i` (as [`start_director`](Self::start_director)).
    pub fn start_director_on(&mut self, i: usize, dir: &Path, extra: &[&str]) -> usize {
        let mut args: Vec<String> = vec![
            "director".into(),
            "--listen".into(),
            format!("0.0.0.0:{DIRECTOR_PORT}"),
            "--certs".into(),
            dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let p = self.spawn(i, "director", dir, &args);
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.procs[p].stdout.recv_timeout(left) {
                Ok(line) if line.starts_with("LISTENING ") => return p,
                Ok(_) => {}
                Err(_) => panic!(
                    "the director did not listen within 30 s; its log:\n{}",
                    self.stderr(p)
                ),
            }
        }
    }

    /// Starts an envoy `name` in node `i`, connecting to `director` (`HOST:PORT`).
    pub fn start_envoy(&mut self, i: usize, name: &str, director: &str, dir: &Path) -> usize {
        self.start_envoy_with(i, name, director, dir, &[])
    }

    /// As [`start_envoy`](Self::start_envoy), with more arguments.
    pub fn start_envoy_with(
        &mut self,
        i: usize,
        name: &str,
        director: &str,
        dir: &Path,
        extra: &[&str],
    ) -> usize {
        let mut args: Vec<String> = vec![
            "envoy".into(),
            "--director".into(),
            director.into(),
            "--name".into(),
            name.into(),
            "--certs".into(),
            dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn(i, name, dir, &args)
    }

    /// Writes node `i`'s `/etc/hosts` (`/etc/netns/NS/hosts`, which `ip netns exec` mounts
    /// over `/etc/hosts`). Write it before the node's first process starts; later writes keep
    /// the file (its inode) and so reach the running processes.
    pub fn set_hosts(&self, i: usize, text: &str) {
        let dir = PathBuf::from(format!("/etc/netns/{}", self.node(i)));
        std::fs::create_dir_all(&dir).expect("/etc/netns is writable");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("hosts"))
            .expect("the namespace's hosts file opens");
        f.write_all(text.as_bytes())
            .expect("the namespace's hosts file is written");
    }

    /// Kills process `p` (SIGKILL).
    pub fn kill(&mut self, p: usize) {
        let _ = self.procs[p].child.kill();
        let _ = self.procs[p].child.wait();
    }

    /// What process `p` wrote to stderr so far.
    pub fn stderr(&self, p: usize) -> String {
        std::fs::read_to_string(&self.procs[p].log).unwrap_or_default()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for ns in self.nodes.iter().chain(std::iter::once(&self.hub)) {
            let _ = ip(&["netns", "del", ns]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
        let _ = ip(&["link", "del", &self.root_if]);
        let _ = std::fs::remove_file(subnet_claim(self.subnet));
        // Only if empty: other tests may use it.
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

struct NsProc {
    name: String,
    child: Child,
    _stdin: Option<ChildStdin>,
    log: PathBuf,
    stdout: mpsc::Receiver<String>,
}

/// Makes a federation's certificates in `dir`, the director's certificate valid for `hosts`.
pub fn certs(dir: &Path, hosts: &[String], envoys: &[&str]) {
    create_federation(
        dir,
        &FederationSpec {
            director_hosts: hosts.to_vec(),
            envoys: envoys.iter().map(|s| s.to_string()).collect(),
            clients: vec!["client".into()],
            days: 30,
            new_ca: false,
        },
    )
    .expect("certificates are created");
}

/// How a [`FaultProxy`] degrades the link.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Added one-way latency per direction.
    pub latency: Duration,
    /// Bytes per second per direction (0: unlimited).
    pub bytes_per_sec: u64,
}

/// An open connection of the proxy: its downstream and upstream sockets, and whether it is
/// silenced (half-open).
type Conn = (TcpStream, TcpStream, Arc<AtomicBool>);

/// Another handle to a socket.
fn dup(s: &TcpStream) -> TcpStream {
    s.try_clone().expect("a socket handle can be duplicated")
}

/// A userspace TCP proxy that adds latency and a bandwidth cap in each direction, and on
/// demand cuts every connection (both sides closed mid-stream) or makes them half-open (the
/// upstream side closed, the downstream side kept open and silent, as when a peer vanishes
/// without a FIN).
pub struct FaultProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Conn>>>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    /// Bytes forwarded so far (both directions).
    pub bytes: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks one) and forwards to `upstream`.
    pub fn start(listen: &str, upstream: SocketAddr, link: Link) -> FaultProxy {
        let listener = TcpListener::bind(listen).expect("the proxy binds");
        let addr = listener.local_addr().expect("bound");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        {
            let (stop, conns, accepted, bytes) =
                (stop.clone(), conns.clone(), accepted.clone(), bytes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (down, _) = match listener.accept() {
                        Ok(c) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    };
                    let _ = down.set_nonblocking(false);
                    let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                    else {
                        continue;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let silent = Arc::new(AtomicBool::new(false));
                    pump(dup(&down), dup(&up), link, &silent, &bytes);
                    pump(dup(&up), dup(&down), link, &silent, &bytes);
                    conns
                        .lock()
                        .expect("the proxy's lock")
                        .push((down, up, silent));
                }
            });
        }
        FaultProxy {
            addr,
            stop,
            conns,
            accepted,
            bytes,
        }
    }

    /// The address envoys connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every open connection: both sides are closed mid-stream.
    pub fn cut_all(&self) {
        for (down, up, _) in self.conns.lock().expect("the proxy's lock").drain(..) {
            let _ = down.shutdown(Shutdown::Both);
            let _ = up.shutdown(Shutdown::Both);
        }
    }

    /// Makes every open connection half-open: the upstream side is closed, the downstream side
    /// stays open and nothing more reaches it (the downstream peer is not told).
    pub fn half_open_all(&self) {
        for (_, up, silent) in self.conns.lock().expect("the proxy's lock").iter() {
            silent.store(true, Ordering::Relaxed);
            let _ = up.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut_all();
    }
}

/// Forwards `from` to `to`: a reader thread timestamps each chunk; a writer thread delivers it
/// `latency` later, paced to `bytes_per_sec`. While `silent`, nothing is delivered and a
/// closed `from` is not passed on.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    link: Link,
    silent: &Arc<AtomicBool>,
    bytes: &Arc<AtomicU64>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let (silent, bytes) = (silent.clone(), bytes.clone());
    std::thread::spawn(move || {
        let mut free_at = Instant::now();
        while let Ok((read_at, chunk)) = rx.recv() {
            if silent.load(Ordering::Relaxed) {
                continue;
            }
            let due = read_at + link.latency;
            sleep_until(due);
            if link.bytes_per_sec > 0 {
                free_at = free_at.max(Instant::now())
                    + Duration::from_secs_f64(chunk.len() as f64 / link.bytes_per_sec as f64);
                sleep_until(free_at);
            }
            if silent.load(Ordering::Relaxed) || to.write_all(&chunk).is_err() {
                continue;
            }
            bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        if !silent.load(Ordering::Relaxed) {
            let _ = to.shutdown(Shutdown::Write);
        }
    });
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Runs `f` on a thread and fails the test if it takes longer than `limit` (the other
/// federation tests' helper).
pub use crate::common::within;
