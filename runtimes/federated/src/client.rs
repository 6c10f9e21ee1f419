//! The client side: [`FederatedRuntime`] implements [`flspec::Runtime`], so a flow switches
//! from the local runtime to a federation in one line.
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
//! The runtime owns a small tokio runtime; its methods block, so call them from ordinary
//! threads, not from inside an async task.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flspec::{Flow, Observer, Role, StepId};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::codec::Limits;
use crate::rpc::director_client::DirectorClient;
use crate::tls::TlsConfig;
use crate::wire::{
    CancelRequest, EnvoyInfo, EnvoysRequest, FlowInfo, PROTOCOL_VERSION, RunStatus, RunUpdate,
    StatusRequest, SubmitRequest, WatchRequest, WireError, WireEvent, WireRole,
};
use crate::{Error, Result};

/// The deadline of the short calls (submit, status, cancel, envoys).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One unary call to the director, from a thread outside the runtime, bounded by
/// [`CALL_TIMEOUT`]; a failure names the director and, for TLS, the certificate problem.
fn call_blocking<T>(
    runtime: &tokio::runtime::Runtime,
    addr: &str,
    probe: &crate::net::TlsProbe,
    what: &str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    runtime.block_on(async {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Err(_) => Err(Error::Timeout {
                what: format!("{what} at {addr}"),
                after: CALL_TIMEOUT,
            }),
            Ok(Err(status)) => Err(Error::from_status(&status, addr, probe)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    })
}

/// A connection to a director that runs flows on its envoys. See the [module docs](self).
pub struct FederatedRuntime {
    runtime: Arc<tokio::runtime::Runtime>,
    client: DirectorClient<Channel>,
    addr: String,
    collaborators: Option<Vec<String>>,
    observer: Option<Arc<dyn Observer>>,
    step_timeout: Option<Duration>,
    limits: Limits,
    probe: crate::net::TlsProbe,
}

impl std::fmt::Debug for FederatedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedRuntime")
            .field("director", &self.addr)
            .field("collaborators", &self.collaborators)
            .field("step_timeout", &self.step_timeout)
            .finish_non_exhaustive()
    }
}

impl FederatedRuntime {
    /// Connects to the director at `addr` (`HOST:PORT`) and checks the connection with one
    /// call, so a wrong address or a refused certificate fails here, saying why.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Tls`], [`Error::TlsConfig`], [`Error::Rpc`].
    pub fn connect(addr: &str, tls: TlsConfig) -> Result<Self> {
        Self::connect_with(addr, tls, Limits::default())
    }

    /// As [`connect`](Self::connect), with message size limits.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(addr: &str, tls: TlsConfig, limits: Limits) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flspec-client")
            .enable_all()
            .build()
            .map_err(Error::AsyncRuntime)?;
        let (channel, probe) = runtime.block_on(crate::net::connect(addr, &tls))?;
        let client = DirectorClient::new(channel)
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let rt = FederatedRuntime {
            runtime: Arc::new(runtime),
            client,
            addr: addr.to_string(),
            collaborators: None,
            observer: None,
            step_timeout: None,
            limits,
            probe,
        };
        rt.envoys()?;
        Ok(rt)
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

    /// Reports the progress of runs (the events of the director and of the envoys).
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

    /// The envoys the director knows, with their status (OpenFL's `get_envoys()`).
    ///
    /// # Errors
    /// [`Error::Rpc`], [`Error::Tls`] or [`Error::Timeout`].
    pub fn envoys(&self) -> Result<Vec<EnvoyInfo>> {
        let mut client = self.client.clone();
        let reply = self.call("listing envoys", async move {
            client.envoys(request(EnvoysRequest {})).await
        })?;
        Ok(reply.envoys)
    }

    /// The status of a run on the director, by id (see also [`RunHandle::status`]).
    ///
    /// # Errors
    /// [`Error::Rpc`] (`NotFound` for an unknown run) or [`Error::Timeout`].
    pub fn run_status(&self, run_id: &str) -> Result<RunStatus> {
        let mut client = self.client.clone();
        let req = StatusRequest {
            run_id: run_id.to_string(),
        };
        self.call("querying the run's status", async move {
            client.status(request(req)).await
        })
    }

    fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        call_blocking(&self.runtime, &self.addr, &self.probe, what, fut)
    }

    /// Submits a run of `flow` and returns at once with its handle; the run goes on on the
    /// director. The handle reports the run's events to the [`observer`](Self::observer) and
    /// its participants' log lines to this program's `tracing` subscriber (target
    /// `flspec_federated::remote`).
    ///
    /// # Errors
    /// The director's refusal: an unknown flow, another version of it (naming both
    /// fingerprints), an envoy offline or with another version, a state over the size limit.
    pub fn submit<F: Flow>(&self, flow: F) -> Result<RunHandle<F>> {
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
        let reply = self.call("submitting the run", async move {
            client.submit(request(req)).await
        })?;
        let run_id = reply.run_id;
        tracing::info!(run_id = %run_id, flow = F::NAME, collaborators = reply.collaborators.len(), "run submitted");
        let (done_tx, done_rx) = watch::channel(None);
        let mut client = self.client.clone();
        let observer = self.observer.clone();
        let id = run_id.clone();
        self.runtime.spawn(async move {
            let end = follow::<F>(&mut client, &id, observer.as_deref()).await;
            let _ = done_tx.send(Some(Arc::new(end)));
        });
        Ok(RunHandle {
            run_id,
            collaborators: reply.collaborators,
            runtime: self.runtime.clone(),
            client: self.client.clone(),
            addr: self.addr.clone(),
            probe: self.probe.clone(),
            done: done_rx,
            _flow: PhantomData,
        })
    }
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

impl<F: Flow> flspec::Runtime<F> for FederatedRuntime {
    fn execute(&self, flow: F) -> flspec::Result<F> {
        self.submit(flow)?.wait()
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

/// Follows a run's updates to its end.
async fn follow<F: Flow>(
    client: &mut DirectorClient<Channel>,
    run_id: &str,
    observer: Option<&dyn Observer>,
) -> Ending {
    let mut stream = match client
        .watch(WatchRequest {
            run_id: run_id.to_string(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return Err(RunEnd::Lost(s.message().to_string())),
    };
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
                RunUpdate::Finished { state } => return Ok(state),
                RunUpdate::Failed { error } => return Err(RunEnd::Failed(error)),
                RunUpdate::Cancelled => return Err(RunEnd::Cancelled),
            },
            Ok(None) => {
                return Err(RunEnd::Lost(
                    "the director ended the run's stream without a result".into(),
                ));
            }
            Err(s) => return Err(RunEnd::Lost(s.message().to_string())),
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

/// A submitted run: query its status, wait for its final state, or cancel it.
pub struct RunHandle<F> {
    run_id: String,
    collaborators: Vec<String>,
    runtime: Arc<tokio::runtime::Runtime>,
    client: DirectorClient<Channel>,
    addr: String,
    probe: crate::net::TlsProbe,
    done: watch::Receiver<Option<Arc<Ending>>>,
    _flow: PhantomData<fn() -> F>,
}

impl<F> std::fmt::Debug for RunHandle<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl<F: Flow> RunHandle<F> {
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
    pub fn status(&self) -> Result<RunStatus> {
        let mut client = self.client.clone();
        let req = StatusRequest {
            run_id: self.run_id.clone(),
        };
        call_blocking(
            &self.runtime,
            &self.addr,
            &self.probe,
            "querying the run's status",
            async move { client.status(request(req)).await },
        )
    }

    /// Asks the director to cancel the run: it stops at its next fan-out (a step that is
    /// running finishes first). Returns whether the run was still running.
    ///
    /// # Errors
    /// [`Error::Rpc`] or [`Error::Timeout`].
    pub fn cancel(&self) -> Result<bool> {
        let mut client = self.client.clone();
        let req = CancelRequest {
            run_id: self.run_id.clone(),
        };
        let reply = call_blocking(
            &self.runtime,
            &self.addr,
            &self.probe,
            "cancelling the run",
            async move { client.cancel(request(req)).await },
        )?;
        Ok(reply.was_running)
    }

    /// Whether the run has ended (its result is ready for [`wait`](Self::wait)).
    pub fn is_finished(&self) -> bool {
        self.done.borrow().is_some()
    }

    /// Waits for the run to end and returns its final state.
    ///
    /// # Errors
    /// The run's failure, as the local runtime reports it where it can
    /// ([`flspec::Error::StepFailed`], [`flspec::Error::StepPanicked`]), else as
    /// [`flspec::Error::Runtime`] holding an [`Error`]: the director's message
    /// ([`Error::RunFailed`]), [`Error::Cancelled`], or [`Error::Disconnected`].
    pub fn wait(self) -> flspec::Result<F> {
        self.wait_for(None)
    }

    /// As [`wait`](Self::wait), giving up after `timeout` (the run goes on; cancel it if
    /// needed).
    ///
    /// # Errors
    /// As [`wait`](Self::wait), or [`Error::Timeout`].
    pub fn wait_timeout(self, timeout: Duration) -> flspec::Result<F> {
        self.wait_for(Some(timeout))
    }

    fn wait_for(mut self, timeout: Option<Duration>) -> flspec::Result<F> {
        let mut done = self.done.clone();
        let waited = self.runtime.block_on(async {
            let wait = done.wait_for(Option::is_some);
            match timeout {
                Some(t) => tokio::time::timeout(t, wait)
                    .await
                    .ok()
                    .map(|r| r.ok().and_then(|v| v.clone())),
                None => Some(wait.await.ok().and_then(|v| v.clone())),
            }
        });
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
