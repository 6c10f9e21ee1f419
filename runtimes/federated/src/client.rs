//! The client side: [`FederatedRuntime`] implements [`flspec::Runtime`], so a flow switches
//! from the local runtime to a federation in one line; [`AsyncClient`] offers the same calls
//! as `async fn`s, for programs that run on tokio.
//!
//! ```no_run
//! # use flspec::prelude::*;
//! # #[derive(Clone, Default, Serialize, Deserialize)] struct MyFlow;
//! # #[flow] impl MyFlow {
//! #   #[aggregator] fn start(&mut self, ctx: &Ctx) -> Next<Self> { next!(self.work, foreach = ctx.collaborators()) }
//! #   #[collaborator] fn work(&mut self) -> Next<Self> { next!(self.join) }
//! #   #[aggregator] fn join(&mut self, _i: Inputs<Self>) -> Next<Self> { next!(self.end) }
//! #   #[aggregator] fn end(&mut self) {}
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use flspec_federated::{FederatedRuntime, TlsConfig};
//! let runtime = FederatedRuntime::connect("127.0.0.1:50050", TlsConfig::from_dir("certs", "client")?)?
//!     .collaborators(["Bengaluru", "Portland"]);
//! for envoy in runtime.envoys()? {
//!     println!("{} {:?}", envoy.name, envoy.state);
//! }
//! let flow = MyFlow::default().run(&runtime)?;
//! # Ok(()) }
//! ```
//!
//! # Blocking or async
//! [`FederatedRuntime`] and [`RunHandle`] **block** the calling thread (each owns a small tokio
//! runtime of its own): call them from ordinary threads. Called on a thread that is inside a
//! tokio runtime (an `async fn`, `#[tokio::main]`, a `spawn_blocking` closure), they return
//! [`Error::BlockingInAsyncContext`] instead of blocking (or panicking, as tokio would).
//! There, use [`AsyncClient`] and [`AsyncRunHandle`], whose calls are `async fn`s that run on
//! the caller's tokio runtime:
//!
//! ```no_run
//! # use flspec::prelude::*;
//! # #[derive(Clone, Default, Serialize, Deserialize)] struct MyFlow;
//! # #[flow] impl MyFlow {
//! #   #[aggregator] fn start(&mut self, ctx: &Ctx) -> Next<Self> { next!(self.work, foreach = ctx.collaborators()) }
//! #   #[collaborator] fn work(&mut self) -> Next<Self> { next!(self.join) }
//! #   #[aggregator] fn join(&mut self, _i: Inputs<Self>) -> Next<Self> { next!(self.end) }
//! #   #[aggregator] fn end(&mut self) {}
//! # }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use flspec_federated::{AsyncClient, TlsConfig};
//! let client = AsyncClient::connect("127.0.0.1:50050", TlsConfig::from_dir("certs", "client")?)
//!     .await?
//!     .collaborators(["Bengaluru", "Portland"]);
//! let run = client.submit(MyFlow::default()).await?;
//! println!("{:?}", run.status().await?.phase);
//! let flow: MyFlow = run.wait().await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flspec::{Flow, Observer, Role, StepId};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::codec::Limits;
use crate::net::TlsProbe;
use crate::rpc::director_client::DirectorClient;
use crate::tls::TlsConfig;
use crate::wire::{
    CancelRequest, EnvoyInfo, EnvoysRequest, FlowInfo, LogsRequest, PROTOCOL_VERSION, RunStatus,
    RunUpdate, RunsRequest, StatusRequest, SubmitRequest, WatchRequest, WireError, WireEvent,
    WireRole,
};
use crate::{Error, Result};

/// The deadline of the short calls (submit, status, cancel, envoys).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One unary call to the director, bounded by [`CALL_TIMEOUT`]; a failure names the director
/// and, for TLS, the certificate problem.
async fn call<T>(
    addr: &str,
    probe: &TlsProbe,
    what: &str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Err(_) => Err(Error::Timeout {
            what: format!("{what} at {addr}"),
            after: CALL_TIMEOUT,
        }),
        Ok(Err(status)) => Err(Error::from_status(&status, addr, probe)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// The tokio runtime a blocking client owns. It refuses to block on a thread that is inside a
/// tokio runtime, and is shut down without waiting when dropped on such a thread (where
/// dropping a runtime the ordinary way panics).
struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl ClientRuntime {
    fn new() -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flspec-client")
            .enable_all()
            .build()
            .map(|rt| ClientRuntime(Some(rt)))
            .map_err(Error::AsyncRuntime)
    }

    /// Runs `fut` to completion on this runtime, blocking the calling thread.
    ///
    /// # Errors
    /// [`Error::BlockingInAsyncContext`] naming `call`, if the thread is inside a tokio runtime.
    fn block_on<T>(
        &self,
        call: &'static str,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        refuse_inside_runtime(call)?;
        let runtime = self
            .0
            .as_ref()
            .expect("the client's runtime is taken only when it is dropped");
        Ok(runtime.block_on(fut))
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            runtime.shutdown_background();
        }
    }
}

/// [`Error::BlockingInAsyncContext`] if this thread is inside a tokio runtime.
///
/// `Handle::try_current` also finds a runtime in `spawn_blocking` closures, where blocking
/// would work; tokio offers no public way to tell them from async tasks, so the blocking client
/// refuses both and says to use [`AsyncClient`] or a thread of one's own.
fn refuse_inside_runtime(call: &'static str) -> Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(Error::BlockingInAsyncContext { call }),
        Err(_) => Ok(()),
    }
}

/// A connection to a director that runs flows on its envoys, with **blocking** calls. See the
/// [crate docs](crate); in async code use [`AsyncClient`].
pub struct FederatedRuntime {
    runtime: Arc<ClientRuntime>,
    inner: AsyncClient,
}

impl std::fmt::Debug for FederatedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedRuntime")
            .field("director", &self.inner.addr)
            .field("collaborators", &self.inner.collaborators)
            .field("step_timeout", &self.inner.step_timeout)
            .finish_non_exhaustive()
    }
}

impl FederatedRuntime {
    /// Connects to the director at `addr` (`HOST:PORT`) and checks the connection with one
    /// call, so a wrong address or a refused certificate fails here, saying why. Blocks.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Tls`], [`Error::TlsConfig`], [`Error::Rpc`];
    /// [`Error::BlockingInAsyncContext`] on a thread inside a tokio runtime (use
    /// [`AsyncClient::connect`] there).
    pub fn connect(addr: &str, tls: TlsConfig) -> Result<Self> {
        Self::connect_with(addr, tls, Limits::default())
    }

    /// As [`connect`](Self::connect), with message size limits. Blocks.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(addr: &str, tls: TlsConfig, limits: Limits) -> Result<Self> {
        refuse_inside_runtime("FederatedRuntime::connect")?;
        let runtime = Arc::new(ClientRuntime::new()?);
        let inner = runtime.block_on(
            "FederatedRuntime::connect",
            AsyncClient::connect_with(addr, tls, limits),
        )??;
        Ok(FederatedRuntime { runtime, inner })
    }

    /// The collaborators of the next runs, in order (what [`flspec::Ctx::collaborators`]
    /// gives). By default: every online envoy that has the flow, by name.
    pub fn collaborators<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner = self.inner.collaborators(names);
        self
    }

    /// Reports the progress of runs (the events of the director and of the envoys).
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.inner = self.inner.observer(observer);
        self
    }

    /// The deadline of each fan-out: an envoy that has not answered by then is lost. Default:
    /// the director's (10 minutes unless configured).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.step_timeout(timeout);
        self
    }

    /// How long a run's handle keeps reconnecting to a director it lost (a restart, a
    /// partition) before [`RunHandle::wait`] gives up. Default: 5 minutes.
    pub fn reconnect_for(mut self, limit: Duration) -> Self {
        self.inner = self.inner.reconnect_for(limit);
        self
    }

    /// The envoys the director knows, with their status (OpenFL's `get_envoys()`). Blocks.
    ///
    /// # Errors
    /// [`Error::Rpc`], [`Error::Tls`] or [`Error::Timeout`];
    /// [`Error::BlockingInAsyncContext`] inside a tokio runtime.
    pub fn envoys(&self) -> Result<Vec<EnvoyInfo>> {
        self.runtime
            .block_on("FederatedRuntime::envoys", self.inner.envoys())?
    }

    /// The status of a run on the director, by id (see also [`RunHandle::status`]). Blocks.
    ///
    /// # Errors
    /// [`Error::Rpc`] (`NotFound` for an unknown run) or [`Error::Timeout`];
    /// [`Error::BlockingInAsyncContext`] inside a tokio runtime.
    pub fn run_status(&self, run_id: &str) -> Result<RunStatus> {
        self.runtime.block_on(
            "FederatedRuntime::run_status",
            self.inner.run_status(run_id),
        )?
    }

    /// The runs this client's certificate submitted (every run, on a plaintext director) that
    /// the director still keeps: running ones and the recently ended, oldest first. Blocks.
    ///
    /// # Errors
    /// [`Error::Rpc`], [`Error::Tls`] or [`Error::Timeout`];
    /// [`Error::BlockingInAsyncContext`] inside a tokio runtime.
    pub fn runs(&self) -> Result<Vec<RunStatus>> {
        self.runtime
            .block_on("FederatedRuntime::runs", self.inner.runs())?
    }

    /// Asks the director to cancel a run, by id (see also [`RunHandle::cancel`]); returns
    /// whether it was still running. Blocks.
    ///
    /// # Errors
    /// [`Error::Rpc`] (`NotFound`, or `PermissionDenied` for another client's run) or
    /// [`Error::Timeout`]; [`Error::BlockingInAsyncContext`] inside a tokio runtime.
    pub fn cancel_run(&self, run_id: &str) -> Result<bool> {
        self.runtime.block_on(
            "FederatedRuntime::cancel_run",
            self.inner.cancel_run(run_id),
        )?
    }

    /// Reads a run's log (its participants' log lines, its events and its end, as
    /// [`RunUpdate`]s; a `Finished` end comes without its state), calling `each` for every
    /// update. With `follow`, waits for new ones until the run ends; without, returns after
    /// those the director keeps now. Blocks.
    ///
    /// # Errors
    /// [`Error::Rpc`] (`NotFound`, or `PermissionDenied` for another client's run),
    /// [`Error::Timeout`] if the director does not answer the call within 30 s,
    /// [`Error::Rpc`] if the stream breaks; [`Error::BlockingInAsyncContext`] inside
    /// a tokio runtime.
    pub fn run_logs(&self, run_id: &str, follow: bool, each: impl FnMut(RunUpdate)) -> Result<()> {
        self.runtime.block_on(
            "FederatedRuntime::run_logs",
            self.inner.run_logs(run_id, follow, each),
        )?
    }

    /// Submits a run of `flow` and returns at once with its handle; the run goes on on the
    /// director. Blocks only for the submission. The handle reports the run's events to the
    /// [`observer`](Self::observer) and its participants' log lines to this program's
    /// `tracing` subscriber (target `flspec_federated::remote`).
    ///
    /// # Errors
    /// The director's refusal: an unknown flow, another version of it (naming both
    /// fingerprints), an envoy offline or with another version, a state over the size limit;
    /// [`Error::BlockingInAsyncContext`] inside a tokio runtime.
    pub fn submit<F: Flow>(&self, flow: F) -> Result<RunHandle<F>> {
        let inner = self
            .runtime
            .block_on("FederatedRuntime::submit", self.inner.submit(flow))??;
        Ok(RunHandle {
            runtime: self.runtime.clone(),
            inner,
        })
    }
}

impl<F: Flow> flspec::Runtime<F> for FederatedRuntime {
    /// Submits the run and waits for its end: blocks (see [`FederatedRuntime::submit`] and
    /// [`RunHandle::wait`]).
    fn execute(&self, flow: F) -> flspec::Result<F> {
        self.submit(flow)?.wait()
    }
}

/// A connection to a director with **async** calls, for programs that run on tokio; the
/// blocking [`FederatedRuntime`] offers the same calls (and [`flspec::Runtime`]). Its
/// connection and the tasks that follow its runs live on the tokio runtime it was connected
/// on. Cloning it is cheap and shares the connection.
#[derive(Clone)]
pub struct AsyncClient {
    client: DirectorClient<Channel>,
    handle: tokio::runtime::Handle,
    addr: String,
    collaborators: Option<Vec<String>>,
    observer: Option<Arc<dyn Observer>>,
    step_timeout: Option<Duration>,
    reconnect_for: Duration,
    limits: Limits,
    probe: TlsProbe,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("director", &self.addr)
            .field("collaborators", &self.collaborators)
            .field("step_timeout", &self.step_timeout)
            .finish_non_exhaustive()
    }
}

impl AsyncClient {
    /// Connects to the director at `addr` (`HOST:PORT`) and checks the connection with one
    /// call, so a wrong address or a refused certificate fails here, saying why.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Tls`], [`Error::TlsConfig`], [`Error::Rpc`];
    /// [`Error::NoAsyncRuntime`] when not polled on a tokio runtime.
    pub async fn connect(addr: &str, tls: TlsConfig) -> Result<Self> {
        Self::connect_with(addr, tls, Limits::default()).await
    }

    /// As [`connect`](Self::connect), with message size limits.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(addr: &str, tls: TlsConfig, limits: Limits) -> Result<Self> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NoAsyncRuntime {
            call: "AsyncClient::connect",
        })?;
        let (channel, probe) = crate::net::connect(addr, &tls).await?;
        let client = DirectorClient::new(channel)
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let c = AsyncClient {
            client,
            handle,
            addr: addr.to_string(),
            collaborators: None,
            observer: None,
            step_timeout: None,
            reconnect_for: Duration::from_secs(300),
            limits,
            probe,
        };
        c.envoys().await?;
        Ok(c)
    }

    /// The collaborators of the next runs, in order (what [`flspec::Ctx::collaborators`]
    /// gives). By default: every online envoy that has the flow, by name.
    pub fn collaborators<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.collaborators = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Reports the progress of runs (the events of the director and of the envoys). The
    /// observer is called on a tokio worker of the client's runtime: keep it quick.
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The deadline of each fan-out: an envoy that has not answered by then is lost. Default:
    /// the director's (10 minutes unless configured).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = Some(timeout);
        self
    }

    /// How long a run's handle keeps reconnecting to a director it lost (a restart, a
    /// partition) before [`AsyncRunHandle::wait`] gives up. A director restarted with its state
    /// folder (`--state`) resumes the run, and the handle follows it again to its end.
    /// Default: 5 minutes.
    pub fn reconnect_for(mut self, limit: Duration) -> Self {
        self.reconnect_for = limit;
        self
    }

    /// The envoys the director knows, with their status (OpenFL's `get_envoys()`).
    ///
    /// # Errors
    /// [`Error::Rpc`], [`Error::Tls`] or [`Error::Timeout`].
    pub async fn envoys(&self) -> Result<Vec<EnvoyInfo>> {
        let mut client = self.client.clone();
        let reply = call(&self.addr, &self.probe, "listing envoys", async move {
            client.envoys(request(EnvoysRequest {})).await
        })
        .await?;
        Ok(reply.envoys)
    }

    /// The status of a run on the director, by id (see also [`AsyncRunHandle::status`]).
    ///
    /// # Errors
    /// [`Error::Rpc`] (`NotFound` for an unknown run) or [`Error::Timeout`].
    pub async fn run_status(&self, run_id: &str) -> Result<RunStatus> {
        let mut client = self.client.clone();
        let req = StatusRequest {
            run_id: run_id.to_string(),
        };
        call(
            &self.addr,
            &self.probe,
            "querying the run's status",
            async move { client.status(request(req)).await },
        )
        .await
    }

    /// The runs this client's certificate submitted (every run, on a plaintext director) that
    /// the director still keeps: running ones and the recently ended, oldest first.
    ///
    /// # Errors
    /// [`Error::Rpc`], [`Error::Tls`] or [`Error::Timeout`].
    pub async fn runs(&self) -> Result<Vec<RunStatus>> {
        let mut client = self.client.clone();
        let reply = call(&self.addr, &self.probe, "listing runs", async move {
            client.runs(request(RunsRequest {})).await
        })
        .await?;
        Ok(reply.runs)
    }

    /// Asks the director to cancel a run, by id (see also [`AsyncRunHandle::cancel`]);
    /// returns whether it was still running.
    ///
    /// # Errors
    /// [`Error::Rpc`] (`NotFound`, or `PermissionDenied` for another client's run) or
    /// [`Error::Timeout`].
    pub async fn cancel_run(&self, run_id: &str) -> Result<bool> {
        let mut client = self.client.clone();
        let req = CancelRequest {
            run_id: run_id.to_string(),
        };
        let reply = call(&self.addr, &self.probe, "cancelling the run", async move {
            client.cancel(request(req)).await
        })
        .await?;
        Ok(reply.was_running)
    }

    /// Reads a run's log; see [`FederatedRuntime::run_logs`].
    ///
    /// # Errors
    /// As [`FederatedRuntime::run_logs`], less the blocking one.
    pub async fn run_logs(
        &self,
        run_id: &str,
        follow: bool,
        mut each: impl FnMut(RunUpdate),
    ) -> Result<()> {
        let mut client = self.client.clone();
        let req = LogsRequest {
            run_id: run_id.to_string(),
            follow,
        };
        // A followed log lasts as long as the run: no deadline on the call itself, only on
        // the director's first answer.
        let call_req = if follow {
            tonic::Request::new(req)
        } else {
            request(req)
        };
        let mut stream = call(
            &self.addr,
            &self.probe,
            "reading the run's log",
            async move { client.logs(call_req).await },
        )
        .await?;
        loop {
            match stream.message().await {
                Ok(Some(update)) => each(update),
                Ok(None) => return Ok(()),
                Err(status) => return Err(Error::from_status(&status, &self.addr, &self.probe)),
            }
        }
    }

    /// Submits a run of `flow` and returns once the director accepted it, with its handle;
    /// the run goes on on the director. A task on the client's runtime follows the run: it
    /// reports the run's events to the [`observer`](Self::observer) and its participants' log
    /// lines to this program's `tracing` subscriber (target `flspec_federated::remote`).
    ///
    /// # Errors
    /// The director's refusal: an unknown flow, another version of it (naming both
    /// fingerprints), an envoy offline or with another version, a state over the size limit.
    pub async fn submit<F: Flow>(&self, flow: F) -> Result<AsyncRunHandle<F>> {
        let state = flspec::codec::encode_state(&flow).map_err(|e| Error::Malformed {
            what: "flow state",
            reason: e.to_string(),
        })?;
        drop(flow);
        self.limits.check_state(
            || format!("the initial state of `{}`", F::NAME),
            state.len(),
        )?;
        let req = SubmitRequest {
            protocol: PROTOCOL_VERSION,
            flow: FlowInfo {
                name: F::NAME.to_string(),
                fingerprint: F::graph().fingerprint(),
            },
            collaborators: self.collaborators.clone(),
            state: Bytes::from(state),
            step_timeout_ms: self.step_timeout.map_or(0, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
            }),
        };
        let mut client = self.client.clone();
        let reply = call(&self.addr, &self.probe, "submitting the run", async move {
            client.submit(request(req)).await
        })
        .await?;
        let run_id = reply.run_id;
        tracing::info!(run_id = %run_id, flow = F::NAME, collaborators = reply.collaborators.len(), "run submitted");
        let (done_tx, done_rx) = watch::channel(None);
        let mut client = self.client.clone();
        let observer = self.observer.clone();
        let reconnect_for = self.reconnect_for;
        let id = run_id.clone();
        self.handle.spawn(async move {
            let end = follow::<F>(&mut client, &id, observer.as_deref(), reconnect_for).await;
            let _ = done_tx.send(Some(Arc::new(end)));
        });
        Ok(AsyncRunHandle {
            run_id,
            collaborators: reply.collaborators,
            client: self.client.clone(),
            addr: self.addr.clone(),
            probe: self.probe.clone(),
            done: done_rx,
            _flow: PhantomData,
        })
    }
}

type Ending = std::result::Result<Bytes, RunEnd>;

/// How a run ended without a final state.
#[derive(Debug)]
enum RunEnd {
    Failed(WireError),
    Cancelled,
    Lost(String),
}

/// Follows a run's updates to its end, reconnecting for up to `reconnect_for` when the
/// director is lost (a restarted director with a state folder has the run again).
async fn follow<F: Flow>(
    client: &mut DirectorClient<Channel>,
    run_id: &str,
    observer: Option<&dyn Observer>,
    reconnect_for: Duration,
) -> Ending {
    let mut lost_since: Option<std::time::Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let (reason, retry) =
            match follow_once::<F>(client, run_id, observer, &mut lost_since).await {
                Followed::Ended(end) => return end,
                Followed::Broken { reason, retry } => (reason, retry),
            };
        let since = *lost_since.get_or_insert_with(std::time::Instant::now);
        if !retry || since.elapsed() >= reconnect_for {
            return Err(RunEnd::Lost(if retry {
                format!("{reason} (gave up after reconnecting for {reconnect_for:?})")
            } else {
                reason
            }));
        }
        tracing::warn!(run_id, %reason, retry_in = ?backoff, "lost the director while following the run; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// How one watch of a run stopped.
enum Followed {
    /// The run ended.
    Ended(Ending),
    /// The watch broke; `retry` if the director may have the run again later.
    Broken { reason: String, retry: bool },
}

/// Whether a failed call may succeed against the same director later (it restarts, the network
/// heals); not for refusals.
fn is_transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Aborted
            | tonic::Code::Internal
            | tonic::Code::DeadlineExceeded
    )
}

/// Follows a run's updates until its end or a broken watch.
async fn follow_once<F: Flow>(
    client: &mut DirectorClient<Channel>,
    run_id: &str,
    observer: Option<&dyn Observer>,
    lost_since: &mut Option<std::time::Instant>,
) -> Followed {
    let broken = |s: &tonic::Status| Followed::Broken {
        reason: s.message().to_string(),
        retry: is_transient(s),
    };
    let mut stream = match client
        .watch(WatchRequest {
            run_id: run_id.to_string(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound && lost_since.is_some() => {
            return Followed::Broken {
                reason: format!(
                    "the director came back without the run ({}); only a director with a state \
                     folder (`--state`) resumes its runs after a restart",
                    s.message()
                ),
                retry: false,
            };
        }
        Err(s) => return broken(&s),
    };
    if lost_since.take().is_some() {
        tracing::info!(run_id, "following the run again");
    }
    loop {
        match stream.message().await {
            Ok(Some(update)) => match update {
                RunUpdate::Event { event, .. } => {
                    if let Some(o) = observer {
                        emit::<F>(o, run_id, &event);
                    }
                }
                RunUpdate::Log { source, line } => {
                    let message = line.message;
                    match line.level.as_str() {
                        "ERROR" => {
                            tracing::error!(target: "flspec_federated::remote", participant = %source, from = %line.target, "{message}")
                        }
                        "WARN" => {
                            tracing::warn!(target: "flspec_federated::remote", participant = %source, from = %line.target, "{message}")
                        }
                        _ => {
                            tracing::info!(target: "flspec_federated::remote", participant = %source, from = %line.target, "{message}")
                        }
                    }
                }
                RunUpdate::Finished { state } => return Followed::Ended(Ok(state)),
                RunUpdate::Failed { error } => {
                    return Followed::Ended(Err(RunEnd::Failed(error)));
                }
                RunUpdate::Cancelled => return Followed::Ended(Err(RunEnd::Cancelled)),
            },
            Ok(None) => {
                return Followed::Broken {
                    reason: "the director ended the run's stream without a result".into(),
                    retry: true,
                };
            }
            Err(s) => return broken(&s),
        }
    }
}

/// Reports a wire event to an observer as the [`flspec::Event`] it stands for.
fn emit<F: Flow>(observer: &dyn Observer, run_id: &str, event: &WireEvent) {
    let step = |name: &str| name.parse::<F::Step>().ok().map(StepId::as_str);
    let role = |r: WireRole| match r {
        WireRole::Aggregator => Role::Aggregator,
        WireRole::Collaborator => Role::Collaborator,
    };
    let us = Duration::from_micros;
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let e = match event {
        WireEvent::RunStarted { collaborators, .. } => flspec::Event::RunStarted {
            flow: F::NAME,
            run_id,
            collaborators: count(*collaborators),
        },
        WireEvent::StepStarted {
            step: s,
            role: r,
            participant,
        } => match step(s) {
            Some(step) => flspec::Event::StepStarted {
                step,
                role: role(*r),
                participant,
            },
            None => return,
        },
        WireEvent::StepFinished {
            step: s,
            role: r,
            participant,
            elapsed_us,
        } => match step(s) {
            Some(step) => flspec::Event::StepFinished {
                step,
                role: role(*r),
                participant,
                elapsed: us(*elapsed_us),
            },
            None => return,
        },
        WireEvent::FanOut {
            step: s,
            collaborators,
        } => match step(s) {
            Some(step) => flspec::Event::FanOut {
                step,
                collaborators: count(*collaborators),
            },
            None => return,
        },
        WireEvent::Dropped {
            step: s,
            participant,
            reason,
        } => match step(s) {
            Some(step) => flspec::Event::Dropped {
                step,
                participant,
                reason,
            },
            None => return,
        },
        WireEvent::Joined { step: s, inputs } => match step(s) {
            Some(step) => flspec::Event::Joined {
                step,
                inputs: count(*inputs),
            },
            None => return,
        },
        WireEvent::Resumed {
            after_step,
            recovered,
        } => match step(after_step) {
            Some(after_step) => flspec::Event::Resumed {
                after_step,
                recovered: count(*recovered),
            },
            None => return,
        },
        WireEvent::RunFinished { elapsed_us } => flspec::Event::RunFinished {
            elapsed: us(*elapsed_us),
        },
    };
    observer.on_event(&e);
}

/// A submitted run, with **blocking** calls: query its status, wait for its final state, or
/// cancel it. Made by [`FederatedRuntime::submit`]; the async twin is [`AsyncRunHandle`].
pub struct RunHandle<F> {
    runtime: Arc<ClientRuntime>,
    inner: AsyncRunHandle<F>,
}

impl<F> std::fmt::Debug for RunHandle<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("run_id", &self.inner.run_id)
            .finish_non_exhaustive()
    }
}

impl<F: Flow> RunHandle<F> {
    /// The run's id on the director.
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// The run's collaborators, in order.
    pub fn collaborators(&self) -> &[String] {
        self.inner.collaborators()
    }

    /// The run's status now: its phase, current step, steps done, rounds, participants.
    /// Blocks.
    ///
    /// # Errors
    /// [`Error::Rpc`] or [`Error::Timeout`]; [`Error::BlockingInAsyncContext`] inside a tokio
    /// runtime.
    pub fn status(&self) -> Result<RunStatus> {
        self.runtime
            .block_on("RunHandle::status", self.inner.status())?
    }

    /// Asks the director to cancel the run: it stops at its next fan-out (a step that is
    /// running finishes first). Returns whether the run was still running. Blocks.
    ///
    /// # Errors
    /// [`Error::Rpc`] or [`Error::Timeout`]; [`Error::BlockingInAsyncContext`] inside a tokio
    /// runtime.
    pub fn cancel(&self) -> Result<bool> {
        self.runtime
            .block_on("RunHandle::cancel", self.inner.cancel())?
    }

    /// Whether the run has ended (its result is ready for [`wait`](Self::wait)). Does not
    /// block.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Waits for the run to end and returns its final state. Blocks until then.
    ///
    /// # Errors
    /// The run's failure, as the local runtime reports it where it can
    /// ([`flspec::Error::StepFailed`], [`flspec::Error::StepPanicked`]), else as
    /// [`flspec::Error::Runtime`] holding an [`Error`]: the director's message
    /// ([`Error::RunFailed`]), [`Error::Cancelled`], or [`Error::Disconnected`];
    /// [`Error::BlockingInAsyncContext`] inside a tokio runtime (the run goes on).
    pub fn wait(self) -> flspec::Result<F> {
        self.runtime
            .block_on("RunHandle::wait", self.inner.wait())?
    }

    /// As [`wait`](Self::wait), giving up after `timeout` (the run goes on; cancel it if
    /// needed). Blocks for at most `timeout`.
    ///
    /// # Errors
    /// As [`wait`](Self::wait), or [`Error::Timeout`].
    pub fn wait_timeout(self, timeout: Duration) -> flspec::Result<F> {
        self.runtime
            .block_on("RunHandle::wait_timeout", self.inner.wait_timeout(timeout))?
    }
}

/// A submitted run, with **async** calls: query its status, wait for its final state, or
/// cancel it. Made by [`AsyncClient::submit`].
pub struct AsyncRunHandle<F> {
    run_id: String,
    collaborators: Vec<String>,
    client: DirectorClient<Channel>,
    addr: String,
    probe: TlsProbe,
    done: watch::Receiver<Option<Arc<Ending>>>,
    _flow: PhantomData<fn() -> F>,
}

impl<F> std::fmt::Debug for AsyncRunHandle<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRunHandle")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl<F: Flow> AsyncRunHandle<F> {
    /// The run's id on the director.
    pub fn id(&self) -> &str {
        &self.run_id
    }

    /// The run's collaborators, in order.
    pub fn collaborators(&self) -> &[String] {
        &self.collaborators
    }

    /// The run's status now: its phase, current step, steps done, rounds, participants.
    ///
    /// # Errors
    /// [`Error::Rpc`] or [`Error::Timeout`].
    pub async fn status(&self) -> Result<RunStatus> {
        let mut client = self.client.clone();
        let req = StatusRequest {
            run_id: self.run_id.clone(),
        };
        call(
            &self.addr,
            &self.probe,
            "querying the run's status",
            async move { client.status(request(req)).await },
        )
        .await
    }

    /// Asks the director to cancel the run: it stops at its next fan-out (a step that is
    /// running finishes first). Returns whether the run was still running.
    ///
    /// # Errors
    /// [`Error::Rpc`] or [`Error::Timeout`].
    pub async fn cancel(&self) -> Result<bool> {
        let mut client = self.client.clone();
        let req = CancelRequest {
            run_id: self.run_id.clone(),
        };
        let reply = call(&self.addr, &self.probe, "cancelling the run", async move {
            client.cancel(request(req)).await
        })
        .await?;
        Ok(reply.was_running)
    }

    /// Whether the run has ended (its result is ready for [`wait`](Self::wait)).
    pub fn is_finished(&self) -> bool {
        self.done.borrow().is_some()
    }

    /// Waits for the run to end and returns its final state.
    ///
    /// # Errors
    /// As [`RunHandle::wait`].
    pub async fn wait(self) -> flspec::Result<F> {
        self.wait_for(None).await
    }

    /// As [`wait`](Self::wait), giving up after `timeout` (the run goes on; cancel it if
    /// needed).
    ///
    /// # Errors
    /// As [`wait`](Self::wait), or [`Error::Timeout`].
    pub async fn wait_timeout(self, timeout: Duration) -> flspec::Result<F> {
        self.wait_for(Some(timeout)).await
    }

    async fn wait_for(mut self, timeout: Option<Duration>) -> flspec::Result<F> {
        let mut done = self.done.clone();
        let waited = {
            let wait = done.wait_for(Option::is_some);
            match timeout {
                Some(t) => tokio::time::timeout(t, wait)
                    .await
                    .ok()
                    .map(|r| r.ok().and_then(|v| v.clone())),
                None => Some(wait.await.ok().and_then(|v| v.clone())),
            }
        };
        let ending = match waited {
            None => {
                return Err(Error::Timeout {
                    what: format!("run `{}`", self.run_id),
                    after: timeout.unwrap_or_default(),
                }
                .into());
            }
            Some(None) => {
                return Err(Error::Disconnected(format!(
                    "the watch of run `{}` stopped without a result",
                    self.run_id
                ))
                .into());
            }
            Some(Some(e)) => e,
        };
        self.done = watch::channel(None).1;
        match &*ending {
            Ok(state) => flspec::codec::decode_state(state),
            Err(end) => Err(self.error(end)),
        }
    }

    fn error(&self, end: &RunEnd) -> flspec::Error {
        let step = |s: &str| s.parse::<F::Step>().ok().map(StepId::as_str);
        let who = |c: &Option<String>| match c {
            None => flspec::ParticipantName::Aggregator,
            Some(n) => flspec::ParticipantName::Collaborator(n.clone()),
        };
        match end {
            RunEnd::Failed(WireError::StepFailed {
                step: s,
                collaborator,
                message,
            }) if step(s).is_some() => flspec::Error::StepFailed {
                flow: F::NAME,
                step: step(s).unwrap_or("?"),
                participant: who(collaborator),
                source: message.clone().into(),
            },
            RunEnd::Failed(WireError::StepPanicked {
                step: s,
                collaborator,
                message,
            }) if step(s).is_some() => flspec::Error::StepPanicked {
                flow: F::NAME,
                step: step(s).unwrap_or("?"),
                participant: who(collaborator),
                message: message.clone(),
            },
            RunEnd::Failed(
                WireError::Other { message }
                | WireError::StepFailed { message, .. }
                | WireError::StepPanicked { message, .. },
            ) => Error::RunFailed {
                run_id: self.run_id.clone(),
                message: message.clone(),
            }
            .into(),
            RunEnd::Cancelled => Error::Cancelled {
                run_id: self.run_id.clone(),
            }
            .into(),
            RunEnd::Lost(reason) => {
                Error::Disconnected(format!("while following run `{}`: {reason}", self.run_id))
                    .into()
            }
        }
    }
}
