//! The envoy: sits next to a site's private data, keeps a session with the director, and runs
//! that site's collaborator steps when the director asks.
//!
//! ```no_run
//! # async fn demo(registry: flspec_federated::Registry) -> flspec_federated::Result<()> {
//! use flspec_federated::{envoy, TlsConfig};
//! let tls = TlsConfig::from_dir("certs", "envoys/Portland")?;
//! envoy::serve("director.example:50050", tls, "Portland", registry).await
//! # }
//! ```
//!
//! Each collaborator's private state is built by the registered factory on the first task of a
//! run, stays in this process, and is dropped when the director ends the run. Steps run on
//! tokio's blocking pool, never on an async worker. The envoy reports each step's events and, if
//! its subscriber includes [`log_layer`], its log lines at info level and above while it runs a
//! step, to the director, which streams them to the program that submitted the run.
//!
//! An envoy whose session breaks reconnects (with backoff) and registers again; a TLS failure
//! or a refused registration ends [`serve`] with an error that says why. Its runs' private
//! states outlive a broken session: the director's welcome names the runs it still has (after a
//! partition, or after a restart from its state folder), and the envoy keeps those and drops the
//! others. An envoy process that restarts starts with no private state: its collaborators are
//! built afresh on their next task.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{info, info_span, warn};

use crate::codec::Limits;
use crate::registry::{EnvoyFlow, Registry};
use crate::rpc::director_client::DirectorClient;
use crate::tls::TlsConfig;
use crate::wire::{
    DirectorMsg, EnvoyMsg, FlowInfo, LogLine, PROTOCOL_VERSION, Task, TaskBatch, TaskOutcome,
    WireEvent,
};
use crate::{Error, Result};

/// Settings of an envoy.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// Message size limits (keep them equal to the director's).
    pub limits: Limits,
    /// Whether to reconnect after a lost session (default: yes). TLS failures and refused
    /// registrations never retry.
    pub reconnect: bool,
    /// The longest wait between reconnection attempts. Default: 5 s.
    pub max_backoff: Duration,
    /// How often the envoy pings the director on its connection (HTTP/2 PING); a ping
    /// unanswered for twice this long closes the connection and the envoy reconnects. This is
    /// how an envoy notices a half-open connection (the director's host or a middlebox
    /// vanished without closing it): within three times this. Default: 10 s.
    pub keepalive: Duration,
    /// The most collaborator tasks this envoy runs at once (an envoy that hosts many
    /// collaborators queues the others). Default: the cores this process may use.
    pub max_parallel_tasks: usize,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            limits: Limits::default(),
            reconnect: true,
            max_backoff: Duration::from_secs(5),
            keepalive: crate::net::KEEPALIVE,
            max_parallel_tasks: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// Runs an envoy for the collaborator `name` until a fatal error, reconnecting after lost
/// sessions.
///
/// # Errors
/// [`Error::Tls`] (with the reason: an unknown CA, an expired certificate, none presented, ...),
/// [`Error::Refused`] (e.g. a name other than the certificate's), [`Error::ProtocolVersion`].
pub async fn serve(director: &str, tls: TlsConfig, name: &str, registry: Registry) -> Result<()> {
    Envoy::new(director, tls, name, registry).run().await
}

/// An envoy, with its settings. See the [module docs](self).
#[derive(Debug)]
pub struct Envoy {
    director: String,
    tls: TlsConfig,
    name: String,
    /// The collaborators it hosts (its own name by default).
    hosts: Arc<[String]>,
    registry: Registry,
    options: EnvoyOptions,
    /// Bounds the tasks running at once ([`EnvoyOptions::max_parallel_tasks`]).
    permits: Arc<tokio::sync::Semaphore>,
}

/// One collaborator's private state in a run, built on its first task.
type PrivateSlot = Arc<Mutex<Option<Box<dyn Any + Send>>>>;

/// A run this envoy takes part in.
struct RunCtx {
    entry: std::result::Result<Arc<dyn EnvoyFlow>, String>,
    collaborators: Arc<[String]>,
    /// Each hosted collaborator's private state.
    private: Mutex<HashMap<String, PrivateSlot>>,
}

enum End {
    /// Retry.
    Transient(Error),
    /// Give up.
    Fatal(Error),
}

impl Envoy {
    /// An envoy for collaborator `name` that connects to `director` (`HOST:PORT`).
    pub fn new(
        director: impl Into<String>,
        tls: TlsConfig,
        name: impl Into<String>,
        registry: Registry,
    ) -> Self {
        let name: String = name.into();
        let options = EnvoyOptions::default();
        Envoy {
            director: director.into(),
            tls,
            hosts: Arc::from(vec![name.clone()]),
            name,
            registry,
            permits: Arc::new(tokio::sync::Semaphore::new(
                options.max_parallel_tasks.max(1),
            )),
            options,
        }
    }

    /// Replaces the settings.
    pub fn options(mut self, options: EnvoyOptions) -> Self {
        self.permits = Arc::new(tokio::sync::Semaphore::new(
            options.max_parallel_tasks.max(1),
        ));
        self.options = options;
        self
    }

    /// Hosts these collaborators instead of the envoy's own name alone, each with its own
    /// private state (built by the registry's factory from its name), all behind the envoy's one
    /// mTLS identity. The director accepts them only if its hosting list
    /// ([`crate::DirectorOptions::hosts_file`]) gives them to this envoy.
    pub fn hosting<I, S>(mut self, collaborators: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosts = collaborators.into_iter().map(Into::into).collect();
        self
    }

    /// Runs until a fatal error (or, without reconnection, until the session ends).
    ///
    /// # Errors
    /// See [`serve`].
    pub async fn run(self) -> Result<()> {
        crate::certs::check_name(&self.name)?;
        if self.registry.collaborators.is_empty() {
            warn!("this envoy has no flows registered; it can run nothing");
        }
        let mut backoff = Duration::from_millis(200);
        // The runs this envoy takes part in, kept across sessions: after a partition or a
        // restart of the director, the runs it still has keep their private states.
        let mut runs: HashMap<String, Arc<RunCtx>> = HashMap::new();
        loop {
            match self.session(&mut backoff, &mut runs).await {
                End::Fatal(e) => return Err(e),
                End::Transient(e) if self.options.reconnect => {
                    warn!(error = %e, retry_in = ?backoff, "lost the director; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
                End::Transient(e) => return Err(e),
            }
        }
    }

    async fn session(
        &self,
        backoff: &mut Duration,
        runs: &mut HashMap<String, Arc<RunCtx>>,
    ) -> End {
        let (channel, probe) = match crate::net::connect_with_keepalive(
            &self.director,
            &self.tls,
            self.options.keepalive,
        )
        .await
        {
            Ok(c) => c,
            Err(e @ (Error::Tls { .. } | Error::TlsConfig(_) | Error::Address { .. })) => {
                return End::Fatal(e);
            }
            Err(e) => return End::Transient(e),
        };
        let limit = self.options.limits.max_message_bytes;
        let mut client = DirectorClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let (out, out_rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = out.send(EnvoyMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: self.name.clone(),
            flows: self.registry.collaborator_flows(),
            collaborators: self.hosts.to_vec(),
        });
        let call = tokio::time::timeout(
            Duration::from_secs(15),
            client.session(UnboundedReceiverStream::new(out_rx)),
        )
        .await;
        let mut inbound = match call {
            Err(_) => {
                return End::Transient(Error::Timeout {
                    what: "opening the session with the director".into(),
                    after: Duration::from_secs(15),
                });
            }
            Ok(Err(status)) => return self.refusal(&status, &probe),
            Ok(Ok(r)) => r.into_inner(),
        };
        let welcome = match tokio::time::timeout(Duration::from_secs(15), inbound.message()).await {
            Err(_) => {
                return End::Transient(Error::Timeout {
                    what: "the director's welcome".into(),
                    after: Duration::from_secs(15),
                });
            }
            Ok(Err(status)) => return self.refusal(&status, &probe),
            Ok(Ok(m)) => m,
        };
        let heartbeat = match welcome {
            Some(DirectorMsg::Welcome {
                protocol,
                heartbeat_ms,
                runs: going,
            }) => {
                if protocol != PROTOCOL_VERSION {
                    return End::Fatal(Error::ProtocolVersion {
                        peer: "the director".into(),
                        ours: PROTOCOL_VERSION,
                        theirs: protocol,
                    });
                }
                let (kept, gone): (HashMap<_, _>, HashMap<_, _>) = std::mem::take(runs)
                    .into_iter()
                    .partition(|(id, _)| going.contains(id));
                if !gone.is_empty() {
                    info!(
                        runs = gone.len(),
                        "the director no longer has these runs; dropping their private states"
                    );
                }
                drop_runs(gone.into_values());
                *runs = kept;
                Duration::from_millis(heartbeat_ms.clamp(100, 60_000))
            }
            _ => {
                return End::Transient(Error::Disconnected(
                    "the director did not welcome this envoy".into(),
                ));
            }
        };
        info!(envoy = %self.name, director = %self.director, "registered with the director");
        *backoff = Duration::from_millis(200);
        let beat = out.clone();
        let heartbeats = tokio::spawn(async move {
            let mut tick = tokio::time::interval(heartbeat);
            loop {
                tick.tick().await;
                if beat.send(EnvoyMsg::Heartbeat).is_err() {
                    return;
                }
            }
        });
        let end = loop {
            match inbound.message().await {
                Ok(Some(msg)) => self.handle(msg, runs, &out),
                Ok(None) => {
                    break End::Transient(Error::Disconnected(
                        "the director closed the session".into(),
                    ));
                }
                Err(status) => {
                    break End::Transient(Error::Disconnected(status.message().to_string()));
                }
            }
        };
        heartbeats.abort();
        end
    }

    fn refusal(&self, status: &tonic::Status, probe: &crate::net::TlsProbe) -> End {
        let e = Error::from_status(status, &self.director, probe);
        match (&e, status.code()) {
            (Error::Tls { .. }, _) => End::Fatal(e),
            (
                _,
                tonic::Code::PermissionDenied
                | tonic::Code::Unauthenticated
                | tonic::Code::FailedPrecondition
                | tonic::Code::InvalidArgument,
            ) => End::Fatal(Error::Refused {
                name: self.name.clone(),
                reason: status.message().to_string(),
            }),
            _ => End::Transient(e),
        }
    }

    fn handle(
        &self,
        msg: DirectorMsg,
        runs: &mut HashMap<String, Arc<RunCtx>>,
        out: &UnboundedSender<EnvoyMsg>,
    ) {
        match msg {
            DirectorMsg::RunStarted {
                run_id,
                flow,
                collaborators,
            } => {
                let entry = self.entry_for(&flow);
                if let Err(e) = &entry {
                    warn!(run_id = %run_id, error = %e, "cannot take part in this run");
                } else {
                    info!(run_id = %run_id, flow = %flow.name, "run started");
                }
                // A run announced twice (the director announces a session's runs again when
                // it registers) keeps the private state it has.
                runs.entry(run_id).or_insert_with(|| {
                    Arc::new(RunCtx {
                        entry,
                        collaborators: collaborators.into(),
                        private: Mutex::new(HashMap::new()),
                    })
                });
            }
            DirectorMsg::Task(task) => {
                let ctx = runs.get(&task.run_id).cloned();
                self.spawn_task(ctx, task, None, out);
            }
            DirectorMsg::Tasks(TaskBatch {
                run_id,
                step,
                shared,
                tasks,
            }) => {
                let ctx = runs.get(&run_id).cloned();
                for t in tasks {
                    let task = Task {
                        task: t.task,
                        run_id: run_id.clone(),
                        collaborator: t.collaborator,
                        step: step.clone(),
                        state: shared.clone(),
                    };
                    let parts = (!t.parts.is_empty()).then_some(t.parts);
                    self.spawn_task(ctx.clone(), task, parts, out);
                }
            }
            DirectorMsg::RunEnded { run_id } => {
                if let Some(ctx) = runs.remove(&run_id) {
                    info!(run_id = %run_id, "run ended; dropping its private state");
                    drop_runs(std::iter::once(ctx));
                }
            }
            DirectorMsg::Welcome { .. } => {}
        }
    }

    /// Runs a task once a permit is free, and answers it.
    fn spawn_task(
        &self,
        ctx: Option<Arc<RunCtx>>,
        task: Task,
        parts: Option<bytes::Bytes>,
        out: &UnboundedSender<EnvoyMsg>,
    ) {
        let out = out.clone();
        let hosts = self.hosts.clone();
        let limits = self.options.limits;
        let permits = self.permits.clone();
        tokio::spawn(async move {
            let id = task.task;
            let _permit = permits.acquire_owned().await;
            let outcome = run_task(ctx, task, parts, &hosts, out.clone(), limits).await;
            let _ = out.send(EnvoyMsg::TaskDone { task: id, outcome });
        });
    }

    fn entry_for(&self, flow: &FlowInfo) -> std::result::Result<Arc<dyn EnvoyFlow>, String> {
        let entry = self
            .registry
            .collaborators
            .get(flow.name.as_str())
            .ok_or_else(|| {
                Error::UnknownFlow {
                    flow: flow.name.clone(),
                    who: format!("envoy `{}`", self.name),
                    known: self
                        .registry
                        .collaborators
                        .keys()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                }
                .to_string()
            })?;
        if entry.info().fingerprint != flow.fingerprint {
            return Err(Error::FingerprintMismatch {
                flow: flow.name.clone(),
                here: format!("envoy `{}`", self.name),
                ours: entry.info().fingerprint.clone(),
                who: "the director".into(),
                theirs: flow.fingerprint.clone(),
            }
            .to_string());
        }
        Ok(entry.clone())
    }
}

/// Drops runs' private states off the async workers (a drop may be slow).
fn drop_runs(runs: impl Iterator<Item = Arc<RunCtx>>) {
    let runs: Vec<_> = runs.collect();
    if !runs.is_empty() {
        tokio::task::spawn_blocking(move || drop(runs));
    }
}

async fn run_task(
    ctx: Option<Arc<RunCtx>>,
    task: Task,
    parts: Option<bytes::Bytes>,
    hosts: &[String],
    out: UnboundedSender<EnvoyMsg>,
    limits: Limits,
) -> TaskOutcome {
    let refused = |message: String| TaskOutcome::Refused { message };
    let Some(ctx) = ctx else {
        return refused(format!("this envoy knows no run `{}`", task.run_id));
    };
    if !hosts.contains(&task.collaborator) {
        return refused(format!(
            "this envoy does not host `{}` (it hosts {})",
            task.collaborator,
            if hosts.len() == 1 {
                format!("`{}`", hosts[0])
            } else {
                format!("{} collaborators", hosts.len())
            }
        ));
    }
    let name = task.collaborator.clone();
    let entry = match &ctx.entry {
        Ok(e) => e.clone(),
        Err(m) => return refused(m.clone()),
    };
    let joined = tokio::task::spawn_blocking(move || {
        // Lines between the steps name the task's first step; inside a step, the driver's
        // own span names it.
        let span = info_span!(
            "task",
            run = %task.run_id,
            flow = %entry.info().name,
            step = %task.step,
            participant = %name
        );
        let _entered = span.enter();
        let slot = ctx
            .private
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.clone())
            .or_default()
            .clone();
        let mut slot = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            match entry.build_private(&name) {
                Ok(p) => *slot = Some(p),
                Err(message) => return TaskOutcome::PrivateState { message },
            }
        }
        let Some(private) = slot.as_mut() else {
            return TaskOutcome::Refused {
                message: "the private state vanished".into(),
            };
        };
        let observer = EnvoyObserver {
            out: out.clone(),
            run_id: task.run_id.clone(),
        };
        let setup = flspec::driver::RunSetup {
            run_id: &task.run_id,
            collaborators: &ctx.collaborators,
            observer: Some(&observer),
            checkpoints: None,
        };
        let _sink = SinkGuard::set(out, task.run_id.clone());
        entry.run(
            &name,
            private.as_mut(),
            crate::registry::TaskInput {
                step: &task.step,
                state: &task.state,
                parts: parts.as_deref(),
            },
            &setup,
            &limits,
        )
    })
    .await;
    joined.unwrap_or_else(|e| TaskOutcome::Refused {
        message: format!("the task failed on the envoy: {e}"),
    })
}

/// Sends a collaborator's driver events to the director.
struct EnvoyObserver {
    out: UnboundedSender<EnvoyMsg>,
    run_id: String,
}

impl flspec::Observer for EnvoyObserver {
    fn on_event(&self, event: &flspec::Event<'_>) {
        if let Some(event) = WireEvent::from_event(event) {
            let _ = self.out.send(EnvoyMsg::Event {
                run_id: self.run_id.clone(),
                event,
            });
        }
    }
}

thread_local! {
    /// Where [`log_layer`] sends the log lines of the step running on this thread.
    static SINK: RefCell<Option<(UnboundedSender<EnvoyMsg>, String)>> = const { RefCell::new(None) };
}

struct SinkGuard;

impl SinkGuard {
    fn set(out: UnboundedSender<EnvoyMsg>, run_id: String) -> SinkGuard {
        SINK.with(|s| *s.borrow_mut() = Some((out, run_id)));
        SinkGuard
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        SINK.with(|s| *s.borrow_mut() = None);
    }
}

/// A tracing layer that forwards the envoy's log lines (info and above) emitted while it runs a
/// step to the director, which streams them to the program that submitted the run. Add it to
/// the envoy's subscriber:
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt;
/// let subscriber = tracing_subscriber::registry().with(flspec_federated::envoy::log_layer());
/// tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
/// ```
///
/// # Security
/// Whatever a step logs at info level or above leaves the site: never log private data.
pub fn log_layer() -> LogLayer {
    LogLayer { _private: () }
}

/// See [`log_layer`].
#[derive(Debug)]
pub struct LogLayer {
    _private: (),
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO {
            return;
        }
        SINK.with(|s| {
            let Ok(sink) = s.try_borrow() else { return };
            if let Some((out, run_id)) = &*sink {
                let mut text = MessageVisitor::default();
                event.record(&mut text);
                let _ = out.send(EnvoyMsg::Log {
                    run_id: run_id.clone(),
                    line: LogLine {
                        level: meta.level().to_string(),
                        target: meta.target().to_string(),
                        message: text.0,
                    },
                });
            }
        });
    }
}

#[derive(Default)]
struct MessageVisitor(String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write;
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}
