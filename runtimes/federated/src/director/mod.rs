//! The director: the envoys register with it, clients submit runs to it, and it runs each run's
//! aggregator side with [`flspec::driver::drive`] on a thread of its own.
//!
//! ```no_run
//! # async fn demo(registry: flspec_federated::Registry) -> flspec_federated::Result<()> {
//! use flspec_federated::{director, TlsConfig};
//! let tls = TlsConfig::from_dir("certs", "director")?;
//! director::serve("0.0.0.0:50050", tls, registry).await
//! # }
//! ```
//!
//! Envoys keep one bidirectional stream (`Session`) open; the director sends tasks on it and the
//! envoy answers, reports events and log lines, and sends heartbeats. A session that ends or
//! goes silent for [`DirectorOptions::heartbeat_timeout`] marks its envoy offline and its
//! tasks lost, at once. Runs are independent: a failed run leaves the director serving others.
//!
//! # Security
//! - **Runs belong to their submitter.** The director records the name in the certificate of
//!   the client that submitted a run; status, watch and cancel from any other certificate are
//!   refused with `PermissionDenied`. Run ids (`run-` and 32 hex digits) are drawn from the
//!   operating system's random generator, so they cannot be guessed either. (In plaintext mode
//!   no one is authenticated, so runs have no owner and any caller may query them.)
//! - **Envoys are checked, not trusted.** An envoy's answers are bound to the name in its
//!   certificate (a task's answer counts only on the session of the envoy it was sent to); the
//!   join an envoy says its collaborator reached must be one the collaborator steps of that
//!   fan-out can reach in the flow's graph; and the state it returns is filtered again by the
//!   transition into that join, so fields the transition does not carry never reach the
//!   aggregator. (Where a fan-out's collaborator steps reach the join through several
//!   transitions with *different* field filters, the director cannot tell which one was taken
//!   and keeps the fields any of them may carry: it filters only when they all agree, and logs a
//!   warning otherwise.)
//! - **Limits.** At most [`DirectorOptions::max_runs`] runs at once,
//!   [`DirectorOptions::max_envoys`] envoy sessions, [`DirectorOptions::max_connections`]
//!   connections and [`DirectorOptions::max_streams_per_connection`] calls on one connection;
//!   past a limit the director refuses with `ResourceExhausted` naming it (a connection past
//!   `max_connections` is closed at once and logged).
//! - **Revocation.** [`DirectorOptions::revocation_list`] names a file of certificate
//!   fingerprints ([`crate::certs::fingerprint`]) that the director refuses at the handshake and
//!   on every call; it reloads the file when it changes, and ends the sessions of envoys whose
//!   certificate it lists.

pub(crate) mod admin;
mod dashboard;
pub(crate) mod envoys;
pub(crate) mod fan_out;
mod revocation;
mod runs;
mod state;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use flspec::driver::{RunSetup, panic_message};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, info_span, warn};

use self::envoys::Envoys;
use self::fan_out::Remote;
use self::revocation::Revocations;
use self::runs::{Run, RunObserver, Runs, is_collaborator_event};
use crate::codec::Limits;
use crate::net::{CONNECTION_WINDOW, MAX_FRAME, PeerInfo, STREAM_WINDOW};
use crate::registry::{DirectorFlow, Registry};
use crate::rpc::director_server::{Director as DirectorService, DirectorServer};
use crate::tls::{CertRole, PeerIdentity, TlsConfig};
use crate::wire::{
    CancelReply, CancelRequest, DirectorMsg, EnvoyList, EnvoyMsg, EnvoysRequest, LogLine,
    LogsRequest, PROTOCOL_VERSION, RunList, RunStatus, RunUpdate, RunsRequest, StatusRequest,
    SubmitReply, SubmitRequest, WatchRequest, WireError,
};
use crate::{Error, Result};

/// Settings of a director.
#[derive(Debug, Clone)]
pub struct DirectorOptions {
    /// How often envoys send heartbeats. Default: 2 s.
    pub heartbeat: Duration,
    /// An envoy silent for this long is lost. Default: 10 s.
    pub heartbeat_timeout: Duration,
    /// The deadline of a fan-out when the client sets none. Default: 10 minutes.
    pub step_timeout: Duration,
    /// Message size limits.
    pub limits: Limits,
    /// Where runs write their checkpoints (the aggregator's states), if anywhere. Superseded by
    /// [`state_dir`](Self::state_dir), which keeps the checkpoints in `DIR/checkpoints`.
    pub checkpoint_dir: Option<PathBuf>,
    /// The state folder (`--state DIR`): each run's record, checkpoints and final state, so that
    /// a director restarted after a crash (even a SIGKILL) resumes every unfinished run from
    /// its last checkpoint, and still answers for the finished ones. A run is accepted only
    /// once it is on disk. A run of a flow with resume points
    /// ([`flspec::Flow::RESUME_FROM`]) restarts after the last one recorded (a secure
    /// aggregation round starts over with fresh keys). Runs that a shutdown interrupts are
    /// resumed too; only a client's cancel ends a run for good. One director at a time may use
    /// a folder (it holds `DIR/lock`). Default: none (runs die with the director).
    pub state_dir: Option<PathBuf>,
    /// The hosting list: a file that authorises envoys to host collaborators other than their
    /// own name (`envoy --host NAME`, each with its own private state behind the envoy's one
    /// mTLS identity). One line per envoy: its name, then the collaborators it may host,
    /// separated by spaces; `#` starts a comment. An envoy that asks to host a name the list
    /// does not give it is refused, naming it. Read once at [`Director::start`].
    /// Default: none (each envoy hosts its own name only).
    pub hosts_file: Option<PathBuf>,
    /// How long a resumed run waits for its collaborators' envoys to register again before it
    /// goes on without those still missing (they are then lost, as any offline envoy: a
    /// dropout where the flow tolerates them). It goes on as soon as all are back. Default:
    /// 60 s.
    pub resume_wait: Duration,
    /// The most runs going at once (each has a thread of its own); one more submission is
    /// refused with `ResourceExhausted`. Default: 16.
    pub max_runs: usize,
    /// The most envoy sessions at once; one more envoy is refused with `ResourceExhausted` (an
    /// envoy that registers again replaces its own session and does not count twice).
    /// Default: 1024.
    pub max_envoys: usize,
    /// The most connections at once (TLS handshakes included); one more is closed at once and
    /// logged. Default: 1024.
    pub max_connections: usize,
    /// The most calls in flight on one connection (HTTP/2 concurrent streams); a client that
    /// opens more is refused by HTTP/2. Default: 128.
    pub max_streams_per_connection: u32,
    /// The revocation list: a file of certificate fingerprints the director refuses; see
    /// [`revocation_list`](Self::revocation_list).
    pub revocation_list: Option<PathBuf>,
    /// The admin address (e.g. `127.0.0.1:9090`): plain HTTP with Prometheus metrics at
    /// `/metrics`, liveness at `/healthz`, readiness at `/readyz` and a read-only dashboard at
    /// `/` (envoys, every client's runs, their graphs and rounds). It has no
    /// authentication and no TLS: bind it to a loopback or cluster-internal address, never a
    /// public one. Port 0 picks a free port ([`Director::admin_addr`]). Default: none.
    pub admin_addr: Option<String>,
    /// How long the admin address waits for one request and its answer before closing the
    /// connection. Default: 5 s.
    pub admin_timeout: Duration,
    /// How often the dashboard (`/` on the admin address) reloads itself in the browser; zero
    /// for never. Default: 5 s.
    pub dashboard_refresh: Duration,
}

impl Default for DirectorOptions {
    fn default() -> Self {
        DirectorOptions {
            heartbeat: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(10),
            step_timeout: Duration::from_secs(600),
            limits: Limits::default(),
            checkpoint_dir: None,
            state_dir: None,
            hosts_file: None,
            resume_wait: Duration::from_secs(60),
            max_runs: 16,
            max_envoys: 1024,
            max_connections: 1024,
            max_streams_per_connection: 128,
            revocation_list: None,
            admin_addr: None,
            admin_timeout: Duration::from_secs(5),
            dashboard_refresh: Duration::from_secs(5),
        }
    }
}

impl DirectorOptions {
    /// Refuses the certificates whose SHA-256 fingerprints the file at `path` lists: one per
    /// line, as [`crate::certs::fingerprint`] prints them, `#` comments allowed. The handshake of
    /// a listed certificate fails with the `certificate_revoked` alert, and a connection opened
    /// before it was listed is refused on its next call (an envoy's session ends within a
    /// second). The running director reads the file again when its modification time or size
    /// changes (looked at once a second at most); a file that becomes unreadable or invalid
    /// keeps the last good list in force.
    ///
    /// [`Director::start`] fails if the file cannot be read or parsed.
    pub fn revocation_list(mut self, path: impl Into<PathBuf>) -> Self {
        self.revocation_list = Some(path.into());
        self
    }
}

struct Shared {
    registry: Registry,
    envoys: Envoys,
    runs: Runs,
    options: DirectorOptions,
    mutual: bool,
    /// Runs going now (bounded by `options.max_runs`).
    active_runs: Arc<AtomicUsize>,
    revocations: Option<Arc<Revocations>>,
    /// Counters for the admin address's `/metrics`.
    metrics: Arc<admin::Metrics>,
    /// Set when the gRPC server's task ends (for `/readyz`).
    server_stopped: std::sync::atomic::AtomicBool,
    /// Set when the director shuts down: watchers end their streams.
    stopping: watch::Sender<bool>,
    /// The state folder, if [`DirectorOptions::state_dir`] is set.
    state: Option<state::StateDir>,
    /// Envoy → the collaborators other than its own name it may host
    /// ([`DirectorOptions::hosts_file`]).
    hosting: HashMap<String, HashSet<String>>,
}

impl Shared {
    /// Whether a peer's certificate is on the revocation list.
    fn is_revoked(&self, id: &PeerIdentity) -> bool {
        self.revocations
            .as_ref()
            .is_some_and(|r| r.is_revoked(&id.fingerprint))
    }

    /// Takes a run slot whatever the limit (for runs accepted before a restart).
    fn force_run_slot(&self) -> RunSlot {
        self.active_runs.fetch_add(1, Ordering::AcqRel);
        RunSlot(self.active_runs.clone())
    }

    /// Takes one of the `max_runs` run slots, or says why not.
    fn claim_run_slot(&self) -> Result<RunSlot, Status> {
        let max = self.options.max_runs;
        self.active_runs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|n| {
                Status::resource_exhausted(format!(
                    "the director runs {n} runs already, its limit (`DirectorOptions::max_runs` = \
                     {max}); wait for one to end, or raise `max_runs` on the director"
                ))
            })?;
        Ok(RunSlot(self.active_runs.clone()))
    }
}

/// One of the director's `max_runs` run slots, given back on drop.
struct RunSlot(Arc<AtomicUsize>);

impl Drop for RunSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new run id: `run-` and 128 bits from the operating system's random generator.
fn new_run_id() -> Result<String, Status> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Status::internal("the operating system's random generator failed"))?;
    Ok(bytes.iter().fold(String::from("run-"), |mut id, b| {
        use std::fmt::Write as _;
        let _ = write!(id, "{b:02x}");
        id
    }))
}

/// A running director. Dropping it leaves the director running until its runtime ends; call
/// [`shutdown`](Self::shutdown) to stop it.
pub struct Director {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Director {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Director")
            .field("addr", &self.addr)
            .field("admin", &self.admin)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// Runs a director on `addr` (e.g. `0.0.0.0:50050`) until the process ends, with the default
/// [`DirectorOptions`].
///
/// # Errors
/// [`Error::Bind`], [`Error::TlsConfig`], or a failure of the server.
pub async fn serve(addr: &str, tls: TlsConfig, registry: Registry) -> Result<()> {
    Director::start(addr, tls, registry, DirectorOptions::default())
        .await?
        .wait()
        .await
}

impl Director {
    /// Starts a director on `addr` and returns once it listens. Port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr). Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Bind`] if it cannot listen, [`Error::TlsConfig`] if `tls` has no director
    /// certificate or the revocation list is invalid, [`Error::ReadFile`] if the revocation
    /// list cannot be read.
    pub async fn start(
        addr: &str,
        tls: TlsConfig,
        registry: Registry,
        options: DirectorOptions,
    ) -> Result<Director> {
        if let Some(id) = tls.identity()
            && id.role != Some(CertRole::Director)
        {
            warn!(name = %id.name, "the director's certificate is not a `director` certificate");
        }
        let revocations = match &options.revocation_list {
            Some(path) => Some(Arc::new(Revocations::load(path)?)),
            None => None,
        };
        if revocations.is_some() && tls.is_plaintext() {
            warn!("the revocation list has no effect in plaintext mode: no certificate is checked");
        }
        let check = revocations.clone().map(|r| {
            Arc::new(move |fingerprint: &str| r.is_revoked(fingerprint))
                as crate::tls::RevocationCheck
        });
        let server_tls = tls.server_config(check)?;
        let state = match &options.state_dir {
            Some(dir) => Some(state::StateDir::open(dir)?),
            None => None,
        };
        let hosting = match &options.hosts_file {
            Some(path) => read_hosting(path)?,
            None => HashMap::new(),
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let admin_listener = match &options.admin_addr {
            Some(admin) => {
                let listener = TcpListener::bind(admin)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: admin.clone(),
                        source,
                    })?;
                Some(listener)
            }
            None => None,
        };
        let admin = match &admin_listener {
            Some(l) => Some(l.local_addr().map_err(|source| Error::Bind {
                addr: options.admin_addr.clone().unwrap_or_default(),
                source,
            })?),
            None => None,
        };
        let limits = options.limits;
        let shared = Arc::new(Shared {
            registry,
            envoys: Envoys::default(),
            runs: Runs::default(),
            mutual: server_tls.is_some(),
            options,
            active_runs: Arc::new(AtomicUsize::new(0)),
            revocations,
            metrics: Arc::new(admin::Metrics::default()),
            server_stopped: std::sync::atomic::AtomicBool::new(false),
            stopping: watch::channel(false).0,
            state,
            hosting,
        });
        recover_runs(&shared);
        if let (Some(listener), Some(addr)) = (admin_listener, admin) {
            tokio::spawn(admin::serve(
                listener,
                Arc::downgrade(&shared),
                shared.options.admin_timeout,
                shared.stopping.subscribe(),
            ));
            info!(%addr, "director admin address (metrics, health, dashboard) listening");
        }
        let monitor = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let Some(shared) = monitor.upgrade() else {
                    return;
                };
                shared
                    .envoys
                    .check_heartbeats(shared.options.heartbeat_timeout);
                end_revoked_sessions(&shared);
            }
        });
        let service = DirectorServer::new(Service {
            shared: shared.clone(),
        })
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
        let metrics = shared.metrics.clone();
        let incoming = crate::net::incoming(
            listener,
            server_tls,
            shared.options.max_connections.max(1),
            Arc::new(move |reason| metrics.tls_failure(reason)),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_concurrent_streams(Some(shared.options.max_streams_per_connection.max(1)))
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        let watched = Arc::downgrade(&shared);
        let task = tokio::spawn(async move {
            let result = server.await.map_err(|e| Error::Disconnected(e.to_string()));
            if let Some(shared) = watched.upgrade() {
                shared.server_stopped.store(true, Ordering::Release);
            }
            result
        });
        info!(addr = %local, "director listening");
        Ok(Director {
            addr: local,
            admin,
            stop: Some(stop),
            task,
            shared,
        })
    }

    /// The address the director listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin address the director serves metrics and health on, if
    /// [`DirectorOptions::admin_addr`] is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Waits until the server stops.
    ///
    /// # Errors
    /// A failure of the server.
    pub async fn wait(mut self) -> Result<()> {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        task.await.map_err(|e| Error::Disconnected(e.to_string()))?
    }

    /// Stops the director: stops listening, cancels the runs still going, ends every envoy's
    /// session (telling the envoy) and every client's `watch` stream, then waits for the
    /// connections to close. Returns as soon as they have (well under a second with live
    /// peers), or after 5 s for a peer that does not close its side.
    pub async fn shutdown(mut self) {
        self.shared.stopping.send_replace(true);
        self.shared.runs.cancel_all();
        self.shared.envoys.end_sessions(
            |_| {
                Some(Status::unavailable(
                    "the director is shutting down; this envoy will reconnect when it is back",
                ))
            },
            "the director shut down",
        );
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            warn!("the director did not stop within 5 s");
        }
    }
}

struct Service {
    shared: Arc<Shared>,
}

fn peer_of<T>(request: &Request<T>) -> Option<PeerInfo> {
    request.extensions().get::<PeerInfo>().cloned()
}

/// The most flows an envoy may register in its `Hello`, and the longest name or fingerprint
/// of one: the director keeps them for as long as it knows the envoy.
const MAX_HELLO_FLOWS: usize = 1024;
const MAX_FLOW_TEXT: usize = 256;

/// The most collaborators one envoy may host.
const MAX_HOSTED: usize = 100_000;

/// Reads a hosting list ([`DirectorOptions::hosts_file`]): per line an envoy's name and the
/// collaborators it may host.
fn read_hosting(path: &std::path::Path) -> Result<HashMap<String, HashSet<String>>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        what: "hosting list",
        path: path.to_path_buf(),
        source,
    })?;
    let mut hosting: HashMap<String, HashSet<String>> = HashMap::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(envoy) = words.next() else { continue };
        let bad = |reason: String| {
            Error::TlsConfig(format!(
                "hosting list {}, line {}: {reason}",
                path.display(),
                number + 1
            ))
        };
        crate::certs::check_name(envoy).map_err(|e| bad(e.to_string()))?;
        let hosted = hosting.entry(envoy.to_string()).or_default();
        for c in words {
            crate::certs::check_name(c).map_err(|e| bad(e.to_string()))?;
            if let Some(other) = owner.insert(c.to_string(), envoy.to_string())
                && other != envoy
            {
                return Err(bad(format!(
                    "collaborator `{c}` is given to envoys `{other}` and `{envoy}`; give it to one"
                )));
            }
            hosted.insert(c.to_string());
        }
    }
    Ok(hosting)
}

/// The refusal of a revoked certificate.
fn revoked_status(id: &PeerIdentity) -> Status {
    Status::permission_denied(format!(
        "certificate `{}` (SHA-256 {}) is revoked on this director; ask the federation's \
         operator for a new certificate",
        id.name, id.fingerprint
    ))
}

/// Ends the sessions of online envoys whose certificate is now on the revocation list.
fn end_revoked_sessions(shared: &Shared) {
    let Some(list) = &shared.revocations else {
        return;
    };
    let revoked = shared.envoys.revoked(|fp| list.is_revoked(fp));
    if revoked.is_empty() {
        return;
    }
    shared.envoys.end_sessions(
        |name| {
            revoked.iter().any(|r| r == name).then(|| {
                Status::permission_denied(format!(
                    "the certificate of envoy `{name}` was revoked on this director; ask the \
                     federation's operator for a new certificate"
                ))
            })
        },
        "its certificate was revoked",
    );
}

impl Service {
    /// Checks that the caller holds a client certificate (mutual TLS) that is not revoked;
    /// returns its name (`None` in plaintext mode, where no one is authenticated).
    fn check_client<T>(&self, request: &Request<T>) -> Result<Option<String>, Status> {
        if !self.shared.mutual {
            return Ok(None);
        }
        let id = peer_of(request).and_then(|p| p.identity);
        match id {
            Some(id) if self.shared.is_revoked(&id) => Err(revoked_status(&id)),
            Some(id) if id.role == Some(CertRole::Client) => Ok(Some(id.name)),
            Some(id) => Err(Status::permission_denied(format!(
                "certificate `{}` (role {}) may not submit or watch runs; use a client \
                 certificate from `flspec-fed certs`",
                id.name,
                id.role.map_or("unknown", CertRole::as_str)
            ))),
            None => Err(Status::unauthenticated(
                "no verified client certificate; connect with mutual TLS",
            )),
        }
    }

    /// The run `run_id`, if the caller (`client`, from [`check_client`](Self::check_client))
    /// submitted it.
    fn owned_run(&self, client: Option<&str>, run_id: &str) -> Result<Arc<Run>, Status> {
        let run = self
            .shared
            .runs
            .get(run_id)
            .ok_or_else(|| Status::not_found(format!("no run `{run_id}` on this director")))?;
        if run.owner.as_deref() != client {
            warn!(
                run_id,
                caller = client.unwrap_or("(none)"),
                "refused a call on another client's run"
            );
            return Err(Status::permission_denied(format!(
                "run `{run_id}` was submitted by another client; only the certificate that \
                 submitted a run may query, watch or cancel it (this one is `{}`)",
                client.unwrap_or("(none)")
            )));
        }
        Ok(run)
    }

    /// The collaborators envoy `name` may host: its own name alone when it asks for none or
    /// only that; otherwise each one it asks for must be on the hosting list for it (checked
    /// when `verified`, i.e. the envoy's name comes from its certificate).
    fn hosted_collaborators(
        &self,
        name: &str,
        asked: Vec<String>,
        verified: bool,
    ) -> Result<Vec<String>, Status> {
        if asked.is_empty() || asked == [name] {
            return Ok(vec![name.to_string()]);
        }
        if asked.len() > MAX_HOSTED {
            return Err(Status::invalid_argument(format!(
                "envoy `{name}` asks to host {} collaborators; an envoy may host at most                  {MAX_HOSTED}",
                asked.len()
            )));
        }
        let mut seen = HashSet::new();
        let allowed = self.shared.hosting.get(name);
        for c in &asked {
            crate::certs::check_name(c).map_err(|e| Status::invalid_argument(e.to_string()))?;
            if !seen.insert(c.as_str()) {
                return Err(Status::invalid_argument(format!(
                    "envoy `{name}` lists collaborator `{c}` twice"
                )));
            }
            if c != name && verified && !allowed.is_some_and(|a| a.contains(c)) {
                return Err(Status::permission_denied(format!(
                    "envoy `{name}` may not host collaborator `{c}`: the director's hosting list \
                     (`--hosts`) does not give it to `{name}`"
                )));
            }
        }
        if !verified {
            warn!(envoy = %name, collaborators = asked.len(), "INSECURE: an envoy without TLS hosts collaborators the director cannot verify");
        }
        Ok(asked)
    }

    /// Validates a submission and picks the collaborators.
    fn prepare(&self, req: &SubmitRequest) -> Result<(Arc<dyn DirectorFlow>, Vec<String>)> {
        if req.protocol != PROTOCOL_VERSION {
            return Err(Error::ProtocolVersion {
                peer: "the client".into(),
                ours: PROTOCOL_VERSION,
                theirs: req.protocol,
            });
        }
        let registry = &self.shared.registry;
        let entry = registry
            .aggregators
            .get(req.flow.name.as_str())
            .cloned()
            .ok_or_else(|| Error::UnknownFlow {
                flow: req.flow.name.clone(),
                who: "the director".into(),
                known: registry
                    .aggregators
                    .keys()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if entry.info().fingerprint != req.flow.fingerprint {
            return Err(Error::FingerprintMismatch {
                flow: req.flow.name.clone(),
                here: "the director".into(),
                ours: entry.info().fingerprint.clone(),
                who: "the client".into(),
                theirs: req.flow.fingerprint.clone(),
            });
        }
        let collaborators = match &req.collaborators {
            Some(c) => c.clone(),
            None => self.shared.envoys.online_with(&req.flow.name),
        };
        if collaborators.is_empty() {
            return Err(Error::Refused {
                name: "(any)".into(),
                reason: format!(
                    "no envoy with flow `{}` is online; start the envoys, then submit again",
                    req.flow.name
                ),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for name in &collaborators {
            if !seen.insert(name.as_str()) {
                return Err(Error::Refused {
                    name: name.clone(),
                    reason: "it is listed twice among the collaborators".into(),
                });
            }
            self.shared.envoys.check(name, entry.info())?;
        }
        Ok((entry, collaborators))
    }
}

fn status_of(e: &Error) -> Status {
    match e {
        Error::UnknownFlow { .. } => Status::not_found(e.to_string()),
        Error::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        _ => Status::failed_precondition(e.to_string()),
    }
}

#[tonic::async_trait]
impl DirectorService for Service {
    type SessionStream = UnboundedReceiverStream<Result<DirectorMsg, Status>>;
    type WatchStream = ReceiverStream<Result<RunUpdate, Status>>;
    type LogsStream = ReceiverStream<Result<RunUpdate, Status>>;

    async fn session(
        &self,
        request: Request<tonic::Streaming<EnvoyMsg>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if *self.shared.stopping.borrow() {
            return Err(Status::unavailable("the director is shutting down"));
        }
        let peer = peer_of(&request);
        let address = peer
            .as_ref()
            .map_or_else(|| "unknown".to_string(), |p| p.addr.to_string());
        if let Some(id) = peer.as_ref().and_then(|p| p.identity.as_ref())
            && self.shared.is_revoked(id)
        {
            warn!(peer = %address, certificate = %id.name, "refused a session: the certificate is revoked");
            return Err(revoked_status(id));
        }
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("no Hello within 10 s of opening the session")
            })??;
        let Some(EnvoyMsg::Hello {
            protocol,
            name,
            flows,
            collaborators,
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message of a session must be Hello",
            ));
        };
        if protocol != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(
                Error::ProtocolVersion {
                    peer: format!("envoy `{name}`"),
                    ours: PROTOCOL_VERSION,
                    theirs: protocol,
                }
                .to_string(),
            ));
        }
        crate::certs::check_name(&name).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if flows.len() > MAX_HELLO_FLOWS
            || flows
                .iter()
                .any(|f| f.name.len() > MAX_FLOW_TEXT || f.fingerprint.len() > MAX_FLOW_TEXT)
        {
            return Err(Status::invalid_argument(format!(
                "envoy `{name}` registers {} flows; an envoy may register at most \
                 {MAX_HELLO_FLOWS}, each with a name and a fingerprint of at most \
                 {MAX_FLOW_TEXT} bytes",
                flows.len()
            )));
        }
        if self.shared.mutual {
            match peer.as_ref().and_then(|p| p.identity.as_ref()) {
                Some(id) if id.role == Some(CertRole::Envoy) && id.name == name => {}
                Some(id) if id.role == Some(CertRole::Envoy) => {
                    warn!(peer = %address, certificate = %id.name, asked = %name, "refused an envoy registering under another name");
                    return Err(Status::permission_denied(format!(
                        "this envoy's certificate is for `{}`; it may register only as `{}`, not \
                         as `{name}`",
                        id.name, id.name
                    )));
                }
                Some(id) => {
                    return Err(Status::permission_denied(format!(
                        "certificate `{}` is a {} certificate, not an envoy certificate; use the \
                         envoy's certificate from `flspec-fed certs`",
                        id.name,
                        id.role.map_or("non-flspec", CertRole::as_str)
                    )));
                }
                None => {
                    return Err(Status::unauthenticated(
                        "no verified envoy certificate; connect with mutual TLS",
                    ));
                }
            }
        } else {
            warn!(envoy = %name, peer = %address, "INSECURE: envoy registered without TLS; its name is not verified");
        }
        for f in &flows {
            if let Some(ours) = self.shared.registry.aggregators.get(f.name.as_str())
                && ours.info().fingerprint != f.fingerprint
            {
                warn!(
                    envoy = %name,
                    flow = %f.name,
                    envoy_version = %f.fingerprint,
                    director_version = %ours.info().fingerprint,
                    "envoy has another version of a flow; runs of it will be refused"
                );
            }
        }
        let collaborators = self
            .hosted_collaborators(&name, collaborators, self.shared.mutual)
            .inspect_err(|status| {
                warn!(envoy = %name, peer = %address, reason = %status.message(), "refused an envoy");
            })?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let going: Vec<Arc<Run>> = self
            .shared
            .runs
            .list()
            .into_iter()
            .filter(|run| !run.is_over() && collaborators.iter().any(|c| run.has_participant(c)))
            .collect();
        let _ = tx.send(Ok(DirectorMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            heartbeat_ms: u64::try_from(self.shared.options.heartbeat.as_millis())
                .unwrap_or(u64::MAX),
            runs: going.iter().map(|run| run.id.clone()).collect(),
        }));
        let fingerprint = peer
            .as_ref()
            .and_then(|p| p.identity.as_ref())
            .map(|id| id.fingerprint.clone());
        let session = self
            .shared
            .envoys
            .register(
                &name,
                fingerprint,
                flows,
                collaborators.clone(),
                address.clone(),
                tx,
                self.shared.options.max_envoys,
            )
            .inspect_err(|status| {
                warn!(envoy = %name, peer = %address, reason = %status.message(), "refused an envoy");
            })?;
        info!(envoy = %name, peer = %address, collaborators = collaborators.len(), "envoy registered");
        // An envoy that registers again mid-run (after a partition, its own restart or the
        // director's) may not know its runs: announce them again, so that the next fan-out
        // finds the run rather than failing on one the envoy does not know.
        for run in going {
            if let Some(entry) = self.shared.registry.aggregators.get(run.flow.as_str()) {
                let _ = self.shared.envoys.send(
                    &name,
                    DirectorMsg::RunStarted {
                        run_id: run.id.clone(),
                        flow: entry.info().clone(),
                        collaborators: run.participants.clone(),
                    },
                );
            }
        }
        let shared = self.shared.clone();
        let span = info_span!("envoy_session", envoy = %name);
        tokio::spawn(
            async move {
                let reason = loop {
                    match inbound.message().await {
                        Ok(Some(msg)) => {
                            handle_envoy_msg(&shared, &name, &collaborators, session, msg)
                        }
                        Ok(None) => break "the envoy closed its session".to_string(),
                        Err(status) => {
                            break format!("its connection broke ({})", status.message());
                        }
                    }
                };
                shared.envoys.lost(&name, session, &reason);
            }
            .instrument(span),
        );
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let owner = self.check_client(&request)?;
        if *self.shared.stopping.borrow() {
            return Err(Status::unavailable("the director is shutting down"));
        }
        let req = request.into_inner();
        let (entry, collaborators) = self.prepare(&req).map_err(|e| status_of(&e))?;
        let slot = self.shared.claim_run_slot().inspect_err(|status| {
            warn!(flow = %req.flow.name, reason = %status.message(), "refused a run");
        })?;
        let run_id = new_run_id()?;
        let run = Arc::new(
            Run::new(
                run_id.clone(),
                req.flow.name.clone(),
                collaborators.clone(),
                owner,
            )
            .with_metrics(self.shared.metrics.clone()),
        );
        self.shared.metrics.run_submitted();
        self.shared.runs.insert(run.clone());
        let step_timeout = if req.step_timeout_ms == 0 {
            self.shared.options.step_timeout
        } else {
            Duration::from_millis(req.step_timeout_ms)
        };
        let start = match &self.shared.state {
            Some(state) => {
                let record = state::RunRecord {
                    run_id: run_id.clone(),
                    flow: req.flow.name.clone(),
                    fingerprint: req.flow.fingerprint.clone(),
                    owner: run.owner.clone(),
                    participants: collaborators.clone(),
                    step_timeout_ms: u64::try_from(step_timeout.as_millis()).unwrap_or(u64::MAX),
                    submitted_unix_ms: state::unix_ms(),
                    outcome: None,
                };
                let stored = entry
                    .begin(&state.checkpoints(), &run_id, &collaborators, &req.state)
                    .map_err(|e| e.to_string())
                    .and_then(|()| state.save(&record).map_err(|e| e.to_string()));
                if let Err(reason) = stored {
                    warn!(run_id = %run_id, %reason, "refused a run: the state folder cannot hold it");
                    run.end(RunUpdate::Failed {
                        error: WireError::Other {
                            message: reason.clone(),
                        },
                    });
                    return Err(Status::unavailable(format!(
                        "the director cannot record the run in its state folder: {reason}"
                    )));
                }
                RunStart::Stored {
                    record,
                    resumed: false,
                }
            }
            None => RunStart::Fresh(req.state),
        };
        spawn_run(self.shared.clone(), entry, run, start, step_timeout, slot)
            .map_err(|e| Status::internal(format!("could not start the run's thread: {e}")))?;
        info!(run_id = %run_id, flow = %req.flow.name, collaborators = collaborators.len(), "run submitted");
        Ok(Response::new(SubmitReply {
            run_id,
            collaborators,
        }))
    }

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let client = self.check_client(&request)?;
        let run = self.owned_run(client.as_deref(), &request.get_ref().run_id)?;
        let identity = peer_of(&request).and_then(|p| p.identity);
        Ok(Response::new(stream_updates(
            self.shared.clone(),
            run,
            identity,
            Follow::Watch,
        )))
    }

    async fn logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let client = self.check_client(&request)?;
        let run = self.owned_run(client.as_deref(), &request.get_ref().run_id)?;
        let identity = peer_of(&request).and_then(|p| p.identity);
        let follow = if request.get_ref().follow {
            Follow::Logs
        } else {
            Follow::LogsSoFar
        };
        Ok(Response::new(stream_updates(
            self.shared.clone(),
            run,
            identity,
            follow,
        )))
    }

    async fn runs(&self, request: Request<RunsRequest>) -> Result<Response<RunList>, Status> {
        let client = self.check_client(&request)?;
        let runs = self
            .shared
            .runs
            .list()
            .into_iter()
            .filter(|r| r.owner.as_deref() == client.as_deref())
            .map(|r| r.status())
            .collect();
        Ok(Response::new(RunList { runs }))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<RunStatus>, Status> {
        let client = self.check_client(&request)?;
        let run = self.owned_run(client.as_deref(), &request.get_ref().run_id)?;
        Ok(Response::new(run.status()))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelReply>, Status> {
        let client = self.check_client(&request)?;
        let run = self.owned_run(client.as_deref(), &request.get_ref().run_id)?;
        let was_running = !run.is_over();
        run.cancel.send_replace(true);
        info!(run_id = %run.id, "run cancellation requested");
        Ok(Response::new(CancelReply { was_running }))
    }

    async fn envoys(&self, request: Request<EnvoysRequest>) -> Result<Response<EnvoyList>, Status> {
        self.check_client(&request)?;
        Ok(Response::new(EnvoyList {
            envoys: self.shared.envoys.list(),
        }))
    }
}

/// What a stream of a run's updates sends, and until when.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// Everything, until the run ends (`watch`).
    Watch,
    /// Log lines and events, the end without its final state, until the run ends (`logs
    /// --follow`).
    Logs,
    /// As `Logs`, only the updates kept so far (`logs`).
    LogsSoFar,
}

/// Streams the updates of `run` to a client holding `identity`, from the first one kept.
fn stream_updates(
    shared: Arc<Shared>,
    run: Arc<Run>,
    identity: Option<PeerIdentity>,
    follow: Follow,
) -> ReceiverStream<Result<RunUpdate, Status>> {
    let mut stopping = shared.stopping.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let mut version = run.subscribe();
        let mut next = 0;
        loop {
            if let Some(id) = &identity
                && shared.is_revoked(id)
            {
                let _ = tx.send(Err(revoked_status(id))).await;
                return;
            }
            if *stopping.borrow_and_update() {
                // With a state folder the run resumes when the director is back (a client
                // reconnects on `Unavailable`); without one it is over.
                let status = if shared.state.is_some() {
                    Status::unavailable(
                        "the director is shutting down; the run resumes from its state folder \
                         when the director is back",
                    )
                } else {
                    Status::cancelled("the director shut down; the run was cancelled")
                };
                let _ = tx.send(Err(status)).await;
                return;
            }
            version.borrow_and_update();
            let (items, after, over, skipped) = run.updates_from(next);
            if skipped > 0 {
                let note = RunUpdate::Log {
                    source: "director".into(),
                    line: LogLine {
                        level: "WARN".into(),
                        target: "flspec_federated".into(),
                        message: format!("{skipped} earlier updates of this run were dropped"),
                    },
                };
                if tx.send(Ok(note)).await.is_err() {
                    return;
                }
            }
            for mut item in items {
                if follow != Follow::Watch
                    && let RunUpdate::Finished { state } = &mut item
                {
                    *state = Bytes::new();
                }
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            next = after;
            if over || follow == Follow::LogsSoFar {
                return;
            }
            tokio::select! {
                changed = version.changed() => if changed.is_err() { return },
                _ = stopping.changed() => {}
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Handles one message of an envoy's session.
fn handle_envoy_msg(
    shared: &Shared,
    name: &str,
    collaborators: &[String],
    session: u64,
    msg: EnvoyMsg,
) {
    shared.envoys.seen(name, session);
    match msg {
        EnvoyMsg::Heartbeat => {}
        EnvoyMsg::TaskDone { task, outcome } => {
            if let crate::wire::TaskOutcome::Arrived { state, .. } = &outcome {
                shared.metrics.received(name, state.len());
            }
            if !shared.envoys.task_done(name, session, task, outcome) {
                tracing::debug!(
                    envoy = name,
                    task,
                    "ignored the answer to a task no longer awaited"
                );
            }
        }
        EnvoyMsg::Event { run_id, event } => {
            if let Some(run) = shared.runs.get(&run_id)
                && let Some(participant) = collaborators
                    .iter()
                    .find(|c| is_collaborator_event(&event, c))
                && run.has_participant(participant)
            {
                run.event(name, event);
            }
        }
        EnvoyMsg::Log { run_id, mut line } => {
            if let Some(run) = shared.runs.get(&run_id)
                && collaborators.iter().any(|c| run.has_participant(c))
            {
                truncate(&mut line.message, 8192);
                truncate(&mut line.target, 256);
                run.log(name, line);
            }
        }
        EnvoyMsg::Hello { .. } => {
            warn!(envoy = name, "ignored a second Hello on a session");
        }
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

/// How a run's thread begins.
enum RunStart {
    /// From this initial state, without a state folder.
    Fresh(Bytes),
    /// From the run's checkpoints in the state folder: its initial state for a new run, or
    /// where it left off for one `resumed` after a restart.
    Stored {
        record: state::RunRecord,
        resumed: bool,
    },
}

/// Starts a run's thread.
fn spawn_run(
    shared: Arc<Shared>,
    entry: Arc<dyn DirectorFlow>,
    run: Arc<Run>,
    start: RunStart,
    step_timeout: Duration,
    slot: RunSlot,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name(format!("flspec-{}", run.id))
        .spawn(move || {
            run_thread(&shared, &entry, &run, start, step_timeout, runtime);
            drop(slot);
        })
        .map(drop)
}

/// After a restart: the runs of the state folder, the finished ones as they ended and the
/// others resumed on threads of their own.
fn recover_runs(shared: &Arc<Shared>) {
    let Some(state) = &shared.state else {
        return;
    };
    for (record, final_state) in state.load() {
        let run = Arc::new(
            Run::new(
                record.run_id.clone(),
                record.flow.clone(),
                record.participants.clone(),
                record.owner.clone(),
            )
            .with_metrics(shared.metrics.clone()),
        );
        shared.runs.insert(run.clone());
        let ended = match (&record.outcome, final_state) {
            (None, _) => None,
            (Some(state::Outcome::Finished), Some(state)) => Some(RunUpdate::Finished { state }),
            (Some(state::Outcome::Finished), None) => Some(RunUpdate::Failed {
                error: WireError::Other {
                    message: "the run finished, but its final state is missing from the director's state folder".into(),
                },
            }),
            (Some(state::Outcome::Failed { error }), _) => Some(RunUpdate::Failed {
                error: error.clone(),
            }),
            (Some(state::Outcome::Cancelled), _) => Some(RunUpdate::Cancelled),
        };
        if let Some(update) = ended {
            run.end(update);
            continue;
        }
        let entry = shared
            .registry
            .aggregators
            .get(record.flow.as_str())
            .cloned()
            .filter(|e| e.info().fingerprint == record.fingerprint);
        let Some(entry) = entry else {
            let message = format!(
                "the director restarted without flow `{}` in the version the run began with ({}); it cannot resume the run",
                record.flow, record.fingerprint
            );
            warn!(run_id = %record.run_id, %message, "run failed");
            let mut record = record;
            let error = WireError::Other { message };
            if let Err(e) = state.save_end(
                &mut record,
                state::Outcome::Failed {
                    error: error.clone(),
                },
                None,
            ) {
                warn!(run_id = %run.id, error = %e, "could not record the run's end");
            }
            run.end(RunUpdate::Failed { error });
            continue;
        };
        info!(run_id = %record.run_id, flow = %record.flow, "resuming a run after a restart");
        let step_timeout = Duration::from_millis(record.step_timeout_ms.max(1));
        let slot = shared.force_run_slot();
        let start = RunStart::Stored {
            record,
            resumed: true,
        };
        if let Err(e) = spawn_run(
            shared.clone(),
            entry,
            run.clone(),
            start,
            step_timeout,
            slot,
        ) {
            warn!(run_id = %run.id, error = %e, "could not start a resumed run's thread");
        }
    }
}

/// A resumed run's wait for its collaborators' envoys to register again: until all are
/// online, [`DirectorOptions::resume_wait`] passes, or the run is cancelled.
fn await_participants(shared: &Shared, run: &Run) {
    let deadline = std::time::Instant::now() + shared.options.resume_wait;
    loop {
        let online = shared.envoys.online_with(&run.flow);
        let missing: Vec<&String> = run
            .participants
            .iter()
            .filter(|p| !online.contains(p))
            .collect();
        if missing.is_empty() {
            info!("every collaborator's envoy is back");
            return;
        }
        if std::time::Instant::now() >= deadline || *run.cancel.borrow() {
            warn!(
                missing = missing.len(),
                first = %missing[0],
                "going on without the envoys still missing after `resume_wait`"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The life of one run, on its own thread.
fn run_thread(
    shared: &Shared,
    entry: &Arc<dyn DirectorFlow>,
    run: &Arc<Run>,
    start: RunStart,
    step_timeout: Duration,
    runtime: tokio::runtime::Handle,
) {
    // `step` is recorded by the run's observer as each aggregator step starts (inside a step
    // the driver's own span names it too).
    let span = info_span!(
        "run",
        run = %run.id,
        flow = %run.flow,
        step = tracing::field::Empty,
        participant = "aggregator"
    );
    let _entered = span.enter();
    let mut envoys: Vec<String> = run
        .participants
        .iter()
        .map(|p| shared.envoys.envoy_of(p))
        .collect();
    envoys.sort();
    envoys.dedup();
    for name in &envoys {
        let _ = shared.envoys.send(
            name,
            DirectorMsg::RunStarted {
                run_id: run.id.clone(),
                flow: entry.info().clone(),
                collaborators: run.participants.clone(),
            },
        );
    }
    let observer = RunObserver {
        run: run.clone(),
        span: span.clone(),
    };
    let setup = RunSetup {
        run_id: &run.id,
        collaborators: &run.participants,
        observer: Some(&observer),
        checkpoints: None,
    };
    let mut remote = Remote {
        envoys: &shared.envoys,
        run,
        runtime,
        step_timeout,
        limits: shared.options.limits,
    };
    let result = catch_unwind(AssertUnwindSafe(|| match (&start, &shared.state) {
        (RunStart::Stored { resumed, .. }, Some(state)) => {
            if *resumed {
                await_participants(shared, run);
            }
            entry.resume(&state.checkpoints(), &setup, &mut remote)
        }
        (RunStart::Fresh(initial), _) => entry.run(
            initial,
            &setup,
            &mut remote,
            shared.options.checkpoint_dir.as_deref(),
        ),
        (RunStart::Stored { .. }, None) => Err(flspec::Error::Runtime(
            "a stored run without a state folder".into(),
        )),
    }));
    for name in &envoys {
        let _ = shared.envoys.send(
            name,
            DirectorMsg::RunEnded {
                run_id: run.id.clone(),
            },
        );
        shared.envoys.run_ended(name, &run.id);
    }
    let update = match result {
        Ok(Ok(state)) => {
            info!("run finished");
            RunUpdate::Finished { state }
        }
        Ok(Err(e)) if is_cancelled(&e) => {
            info!("run cancelled");
            RunUpdate::Cancelled
        }
        Ok(Err(e)) => {
            warn!(error = %e, "run failed");
            RunUpdate::Failed {
                error: wire_error(&e),
            }
        }
        Err(payload) => {
            let message = format!(
                "the director's run thread panicked: {}",
                panic_message(payload.as_ref())
            );
            warn!(%message, "run failed");
            RunUpdate::Failed {
                error: WireError::Other { message },
            }
        }
    };
    if let (RunStart::Stored { mut record, .. }, Some(state)) = (start, &shared.state) {
        // A shutdown cancels the runs still going: they resume on the next start.
        let interrupted = *shared.stopping.borrow() && update == RunUpdate::Cancelled;
        let outcome = match &update {
            RunUpdate::Finished { state } => Some((state::Outcome::Finished, Some(&state[..]))),
            RunUpdate::Failed { error } => Some((
                state::Outcome::Failed {
                    error: error.clone(),
                },
                None,
            )),
            RunUpdate::Cancelled if !interrupted => Some((state::Outcome::Cancelled, None)),
            _ => None,
        };
        if let Some((outcome, final_state)) = outcome
            && let Err(e) = state.save_end(&mut record, outcome, final_state)
        {
            warn!(error = %e, "could not record the run's end in the state folder");
        }
    }
    run.end(update);
    tracing::debug!(running = shared.runs.running(), "runs still running");
}

fn is_cancelled(e: &flspec::Error) -> bool {
    matches!(e, flspec::Error::Runtime(b)
        if b.downcast_ref::<Error>().is_some_and(|e| matches!(e, Error::Cancelled { .. })))
}

fn wire_error(e: &flspec::Error) -> WireError {
    let who = |p: &flspec::ParticipantName| match p {
        flspec::ParticipantName::Aggregator => None,
        flspec::ParticipantName::Collaborator(n) => Some(n.clone()),
    };
    match e {
        flspec::Error::StepFailed {
            step,
            participant,
            source,
            ..
        } => WireError::StepFailed {
            step: (*step).to_string(),
            collaborator: who(participant),
            message: source.to_string(),
        },
        flspec::Error::StepPanicked {
            step,
            participant,
            message,
            ..
        } => WireError::StepPanicked {
            step: (*step).to_string(),
            collaborator: who(participant),
            message: message.clone(),
        },
        other => WireError::Other {
            message: match other {
                flspec::Error::Runtime(inner) => inner.to_string(),
                other => other.to_string(),
            },
        },
    }
}
