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

pub(crate) mod envoys;
pub(crate) mod fan_out;
mod runs;

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use flspec::driver::{RunSetup, panic_message};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, info_span, warn};

use self::envoys::Envoys;
use self::fan_out::Remote;
use self::runs::{Run, RunObserver, Runs, is_collaborator_event};
use crate::codec::Limits;
use crate::net::{CONNECTION_WINDOW, MAX_FRAME, PeerInfo, STREAM_WINDOW};
use crate::registry::{DirectorFlow, Registry};
use crate::rpc::director_server::{Director as DirectorService, DirectorServer};
use crate::tls::{CertRole, TlsConfig};
use crate::wire::{
    CancelReply, CancelRequest, DirectorMsg, EnvoyList, EnvoyMsg, EnvoysRequest, LogLine,
    PROTOCOL_VERSION, RunStatus, RunUpdate, StatusRequest, SubmitReply, SubmitRequest,
    WatchRequest, WireError,
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
    /// Where runs write their checkpoints (the aggregator's states), if anywhere.
    pub checkpoint_dir: Option<PathBuf>,
}

impl Default for DirectorOptions {
    fn default() -> Self {
        DirectorOptions {
            heartbeat: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(10),
            step_timeout: Duration::from_secs(600),
            limits: Limits::default(),
            checkpoint_dir: None,
        }
    }
}

struct Shared {
    registry: Registry,
    envoys: Envoys,
    runs: Runs,
    options: DirectorOptions,
    mutual: bool,
    next_run: AtomicU64,
}

/// A running director. Dropping it leaves the director running until its runtime ends; call
/// [`shutdown`](Self::shutdown) to stop it.
#[derive(Debug)]
pub struct Director {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
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
    /// certificate.
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
        let server_tls = tls.server_config()?;
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
        let limits = options.limits;
        let shared = Arc::new(Shared {
            registry,
            envoys: Envoys::default(),
            runs: Runs::default(),
            mutual: server_tls.is_some(),
            options,
            next_run: AtomicU64::new(0),
        });
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
            }
        });
        let service = DirectorServer::new(Service { shared })
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let incoming = crate::net::incoming(listener, server_tls);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        let task =
            tokio::spawn(
                async move { server.await.map_err(|e| Error::Disconnected(e.to_string())) },
            );
        info!(addr = %local, "director listening");
        Ok(Director {
            addr: local,
            stop: Some(stop),
            task,
        })
    }

    /// The address the director listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server stops.
    ///
    /// # Errors
    /// A failure of the server.
    pub async fn wait(mut self) -> Result<()> {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        task.await.map_err(|e| Error::Disconnected(e.to_string()))?
    }

    /// Stops accepting connections and waits for the server to stop (at most 5 s).
    pub async fn shutdown(mut self) {
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

impl Service {
    /// Checks that the caller holds a client certificate (mutual TLS).
    fn check_client<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if !self.shared.mutual {
            return Ok(());
        }
        let id = peer_of(request).and_then(|p| p.identity);
        match id {
            Some(id) if id.role == Some(CertRole::Client) => Ok(()),
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

    fn run(&self, run_id: &str) -> Result<Arc<Run>, Status> {
        self.shared
            .runs
            .get(run_id)
            .ok_or_else(|| Status::not_found(format!("no run `{run_id}` on this director")))
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

    async fn session(
        &self,
        request: Request<tonic::Streaming<EnvoyMsg>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = peer_of(&request);
        let address = peer
            .as_ref()
            .map_or_else(|| "unknown".to_string(), |p| p.addr.to_string());
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
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(Ok(DirectorMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            heartbeat_ms: u64::try_from(self.shared.options.heartbeat.as_millis())
                .unwrap_or(u64::MAX),
        }));
        let session = self
            .shared
            .envoys
            .register(&name, flows, address.clone(), tx);
        info!(envoy = %name, peer = %address, "envoy registered");
        let shared = self.shared.clone();
        let span = info_span!("envoy_session", envoy = %name);
        tokio::spawn(
            async move {
                let reason = loop {
                    match inbound.message().await {
                        Ok(Some(msg)) => handle_envoy_msg(&shared, &name, session, msg),
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
        self.check_client(&request)?;
        let req = request.into_inner();
        let (entry, collaborators) = self.prepare(&req).map_err(|e| status_of(&e))?;
        let n = self.shared.next_run.fetch_add(1, Ordering::Relaxed) + 1;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let run_id = format!("run-{secs}-{n}");
        let run = Arc::new(Run::new(
            run_id.clone(),
            req.flow.name.clone(),
            collaborators.clone(),
        ));
        self.shared.runs.insert(run.clone());
        let step_timeout = if req.step_timeout_ms == 0 {
            self.shared.options.step_timeout
        } else {
            Duration::from_millis(req.step_timeout_ms)
        };
        let shared = self.shared.clone();
        let runtime = tokio::runtime::Handle::current();
        let state = req.state;
        std::thread::Builder::new()
            .name(format!("flspec-{run_id}"))
            .spawn(move || run_thread(&shared, &entry, &run, &state, step_timeout, runtime))
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
        self.check_client(&request)?;
        let run = self.run(&request.get_ref().run_id)?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut version = run.subscribe();
            let mut next = 0;
            loop {
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
                for item in items {
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                next = after;
                if over || version.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<RunStatus>, Status> {
        self.check_client(&request)?;
        Ok(Response::new(self.run(&request.get_ref().run_id)?.status()))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelReply>, Status> {
        self.check_client(&request)?;
        let run = self.run(&request.get_ref().run_id)?;
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

/// Handles one message of an envoy's session.
fn handle_envoy_msg(shared: &Shared, name: &str, session: u64, msg: EnvoyMsg) {
    shared.envoys.seen(name, session);
    match msg {
        EnvoyMsg::Heartbeat => {}
        EnvoyMsg::TaskDone { task, outcome } => {
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
                && run.has_participant(name)
                && is_collaborator_event(&event, name)
            {
                run.event(name, event);
            }
        }
        EnvoyMsg::Log { run_id, mut line } => {
            if let Some(run) = shared.runs.get(&run_id)
                && run.has_participant(name)
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

/// The life of one run, on its own thread.
fn run_thread(
    shared: &Shared,
    entry: &Arc<dyn DirectorFlow>,
    run: &Arc<Run>,
    state: &Bytes,
    step_timeout: Duration,
    runtime: tokio::runtime::Handle,
) {
    let span = info_span!("run", run_id = %run.id, flow = %run.flow);
    let _entered = span.enter();
    for name in &run.participants {
        let _ = shared.envoys.send(
            name,
            DirectorMsg::RunStarted {
                run_id: run.id.clone(),
                flow: entry.info().clone(),
                collaborators: run.participants.clone(),
            },
        );
    }
    let observer = RunObserver(run.clone());
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
    let result = catch_unwind(AssertUnwindSafe(|| {
        entry.run(
            state,
            &setup,
            &mut remote,
            shared.options.checkpoint_dir.as_deref(),
        )
    }));
    for name in &run.participants {
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
