//! The messages of the director's gRPC service.
//!
//! Every message is a typed serde value encoded with postcard (see [`crate::codec`]); no code
//! and no whole flow object ever travels. Flow states travel as the bytes of
//! [`flspec::codec::encode_state`], holding only the fields the transition carries. Step names
//! travel as strings and become the flow's step enum at once on arrival, or a typed error.
//!
//! Peers exchange [`PROTOCOL_VERSION`] first (envoys in [`EnvoyMsg::Hello`], clients in
//! [`SubmitRequest`]) and refuse a peer of another version.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The version of the messages below. Bump it on any change to them.
pub const PROTOCOL_VERSION: u32 = 2;

/// A flow a participant can run: its name and the fingerprint of its graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// The flow's name ([`flspec::Flow::NAME`]).
    pub name: String,
    /// [`flspec::Graph::fingerprint`] of its graph.
    pub fingerprint: String,
}

/// What an envoy sends on its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EnvoyMsg {
    /// The first message: who the envoy is and which flows it can run.
    Hello {
        /// [`PROTOCOL_VERSION`] of the envoy.
        protocol: u32,
        /// The envoy's name (must match its certificate).
        name: String,
        /// The flows it has registered.
        flows: Vec<FlowInfo>,
        /// The collaborators it hosts, each with its own private state: its own name alone,
        /// or the names the director's hosting list authorises for it.
        collaborators: Vec<String>,
    },
    /// The envoy is alive.
    Heartbeat,
    /// A task finished.
    TaskDone {
        /// The task's id, from [`DirectorMsg::Task`].
        task: u64,
        /// How it ended.
        outcome: TaskOutcome,
    },
    /// Progress of a run on this envoy.
    Event {
        /// The run.
        run_id: String,
        /// The event.
        event: WireEvent,
    },
    /// A log line of this envoy, emitted while it ran a step of a run.
    Log {
        /// The run.
        run_id: String,
        /// The line.
        line: LogLine,
    },
}

/// What the director sends on an envoy's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DirectorMsg {
    /// The registration is accepted.
    Welcome {
        /// [`PROTOCOL_VERSION`] of the director.
        protocol: u32,
        /// How often the envoy must send [`EnvoyMsg::Heartbeat`], in milliseconds.
        heartbeat_ms: u64,
        /// The runs still going that this envoy takes part in (each is announced again with
        /// [`DirectorMsg::RunStarted`]): the envoy keeps their private states from its
        /// previous session, and drops those of any other run.
        runs: Vec<String>,
    },
    /// A run this envoy takes part in begins.
    RunStarted {
        /// The run.
        run_id: String,
        /// The flow.
        flow: FlowInfo,
        /// All collaborators of the run, in the order [`flspec::Ctx::collaborators`] gives.
        collaborators: Vec<String>,
    },
    /// Run one collaborator from `step` until it reaches a join.
    Task(Task),
    /// Run several collaborators of an envoy that hosts many from `step`: one message per
    /// envoy and fan-out, the shared part of the state once.
    Tasks(TaskBatch),
    /// A run ended: the envoy drops the private state it built for it.
    RunEnded {
        /// The run.
        run_id: String,
    },
}

/// One collaborator's part of a fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The task's id, unique on the director.
    pub task: u64,
    /// The run (announced by [`DirectorMsg::RunStarted`]).
    pub run_id: String,
    /// The collaborator (the envoy's name).
    pub collaborator: String,
    /// The first collaborator step.
    pub step: String,
    /// The encoded state, filtered by the fan-out's transition.
    pub state: Bytes,
}

/// The collaborators of one envoy in a fan-out: the state they share, once, and each one's
/// own entries of the addressed fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskBatch {
    /// The run.
    pub run_id: String,
    /// The first collaborator step.
    pub step: String,
    /// The encoded state, filtered by the fan-out's transition, without addressed entries.
    pub shared: Bytes,
    /// One task per collaborator.
    pub tasks: Vec<BatchTask>,
}

/// One collaborator's task in a [`TaskBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchTask {
    /// The task's id, unique on the director.
    pub task: u64,
    /// The collaborator (one the envoy hosts).
    pub collaborator: String,
    /// An encoded state holding only this collaborator's entries of the addressed fields
    /// (empty for a flow without addressed fields).
    pub parts: Bytes,
}

/// How a task ended on an envoy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// The collaborator reached a join.
    Arrived {
        /// The join.
        join: String,
        /// Its state, filtered by the transition into the join.
        state: Bytes,
    },
    /// A step returned a [`flspec::Dropout`].
    Dropout {
        /// The dropout's reason.
        reason: String,
    },
    /// A step returned an error.
    StepFailed {
        /// The step.
        step: String,
        /// The error, as text.
        message: String,
    },
    /// A step panicked.
    StepPanicked {
        /// The step.
        step: String,
        /// The panic message.
        message: String,
    },
    /// The private-state factory failed.
    PrivateState {
        /// The factory's error, as text.
        message: String,
    },
    /// The envoy could not run the task (unknown run or flow, bad state, ...).
    Refused {
        /// Why.
        message: String,
    },
}

/// A participant's role, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireRole {
    /// The aggregator.
    Aggregator,
    /// A collaborator.
    Collaborator,
}

/// A [`flspec::Event`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireEvent {
    /// See [`flspec::Event::RunStarted`].
    RunStarted {
        /// The run.
        run_id: String,
        /// How many collaborators.
        collaborators: u64,
    },
    /// See [`flspec::Event::StepStarted`].
    StepStarted {
        /// The step.
        step: String,
        /// The role.
        role: WireRole,
        /// The participant.
        participant: String,
    },
    /// See [`flspec::Event::StepFinished`].
    StepFinished {
        /// The step.
        step: String,
        /// The role.
        role: WireRole,
        /// The participant.
        participant: String,
        /// How long it took, in microseconds.
        elapsed_us: u64,
    },
    /// See [`flspec::Event::FanOut`].
    FanOut {
        /// The step.
        step: String,
        /// How many collaborators.
        collaborators: u64,
    },
    /// See [`flspec::Event::Dropped`].
    Dropped {
        /// The step.
        step: String,
        /// The collaborator.
        participant: String,
        /// Why.
        reason: String,
    },
    /// See [`flspec::Event::Joined`].
    Joined {
        /// The join.
        step: String,
        /// How many inputs.
        inputs: u64,
    },
    /// See [`flspec::Event::Resumed`].
    Resumed {
        /// The last completed aggregator step.
        after_step: String,
        /// Recovered collaborators.
        recovered: u64,
    },
    /// See [`flspec::Event::RunFinished`].
    RunFinished {
        /// The run's wall time, in microseconds.
        elapsed_us: u64,
    },
}

/// A log line of a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `ERROR`, `WARN` or `INFO`.
    pub level: String,
    /// The tracing target.
    pub target: String,
    /// The message and its fields.
    pub message: String,
}

/// A client's request to run a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// [`PROTOCOL_VERSION`] of the client.
    pub protocol: u32,
    /// The flow and its version, as the client knows them.
    pub flow: FlowInfo,
    /// The collaborators, in order; `None`: every online envoy that has the flow, by name.
    pub collaborators: Option<Vec<String>>,
    /// The initial state, encoded.
    pub state: Bytes,
    /// The deadline of each fan-out, in milliseconds (0: the director's default).
    pub step_timeout_ms: u64,
}

/// The director's answer to a [`SubmitRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitReply {
    /// The new run's id.
    pub run_id: String,
    /// Its collaborators, in order.
    pub collaborators: Vec<String>,
}

/// Follow a run: its events, its participants' logs and its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// The run.
    pub run_id: String,
}

/// One update of a watched run. The stream ends after `Finished`, `Failed` or `Cancelled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunUpdate {
    /// An event of the driver (on the director) or of a collaborator (on an envoy).
    Event {
        /// Where it happened: `director` or an envoy's name.
        source: String,
        /// The event.
        event: WireEvent,
    },
    /// A log line of a participant.
    Log {
        /// `director` or an envoy's name.
        source: String,
        /// The line.
        line: LogLine,
    },
    /// The run finished; its final state.
    Finished {
        /// The final state, encoded.
        state: Bytes,
    },
    /// The run failed.
    Failed {
        /// Why.
        error: WireError,
    },
    /// The run was cancelled.
    Cancelled,
}

/// A run's failure on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireError {
    /// A step returned an error.
    StepFailed {
        /// The step.
        step: String,
        /// `None` for the aggregator, else the collaborator.
        collaborator: Option<String>,
        /// The error, as text.
        message: String,
    },
    /// A step panicked.
    StepPanicked {
        /// The step.
        step: String,
        /// `None` for the aggregator, else the collaborator.
        collaborator: Option<String>,
        /// The panic message.
        message: String,
    },
    /// Any other failure, as text.
    Other {
        /// The director's error message.
        message: String,
    },
}

/// List the runs the caller submitted (every run in plaintext mode), running and recently
/// ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsRequest {}

/// The answer to a [`RunsRequest`]: the runs' statuses, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    /// The runs.
    pub runs: Vec<RunStatus>,
}

/// Read a run's log: its participants' log lines and its events, as the director keeps them
/// (bounded per run; a reader that comes late may miss the oldest, and is told).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsRequest {
    /// The run.
    pub run_id: String,
    /// Keep the stream open and send new lines as they come, until the run ends. Without it,
    /// the stream ends after the lines kept so far.
    pub follow: bool,
}

/// Ask for a run's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// The run.
    pub run_id: String,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunPhase {
    /// Running.
    Running,
    /// Finished with a final state.
    Finished,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A run's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// The run.
    pub run_id: String,
    /// The flow.
    pub flow: String,
    /// Where it is.
    pub phase: RunPhase,
    /// The step running now (the last one started).
    pub current_step: Option<String>,
    /// Steps finished so far, on all participants.
    pub steps_done: u64,
    /// Fan-outs that reached their join so far (rounds, in a flow with one fan-out a round).
    pub rounds: u64,
    /// The run's collaborators.
    pub participants: Vec<String>,
    /// Collaborators that dropped out so far.
    pub dropped: Vec<String>,
    /// Time since the run began, in milliseconds.
    pub elapsed_ms: u64,
    /// The error, once failed.
    pub error: Option<String>,
}

/// Cancel a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The run.
    pub run_id: String,
}

/// The answer to a [`CancelRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelReply {
    /// Whether the run was still running.
    pub was_running: bool,
}

/// List the envoys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvoysRequest {}

/// An envoy's connection status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvoyState {
    /// Connected, idle.
    Online,
    /// Connected, running a task.
    Busy,
    /// Was connected, is not any more.
    Offline,
}

/// An envoy, as the director sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvoyInfo {
    /// Its name (its certificate's name).
    pub name: String,
    /// Its status.
    pub state: EnvoyState,
    /// The address it connected from.
    pub address: String,
    /// The flows it has.
    pub flows: Vec<FlowInfo>,
    /// Milliseconds since it last sent anything.
    pub last_seen_ms: u64,
    /// Milliseconds since it registered.
    pub connected_ms: u64,
    /// Why it went offline.
    pub offline_reason: Option<String>,
    /// The run it works for, if any.
    pub run_id: Option<String>,
}

/// The envoys the director knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvoyList {
    /// The envoys, by name.
    pub envoys: Vec<EnvoyInfo>,
}

impl WireEvent {
    /// The wire form of a driver event (`None` for a kind this version does not know).
    pub fn from_event(event: &flspec::Event<'_>) -> Option<Self> {
        use flspec::Event as E;
        let role = |r: flspec::Role| match r {
            flspec::Role::Aggregator => WireRole::Aggregator,
            flspec::Role::Collaborator => WireRole::Collaborator,
        };
        Some(match *event {
            E::RunStarted {
                run_id,
                collaborators,
                ..
            } => WireEvent::RunStarted {
                run_id: run_id.to_string(),
                collaborators: collaborators as u64,
            },
            E::StepStarted {
                step,
                role: r,
                participant,
            } => WireEvent::StepStarted {
                step: step.to_string(),
                role: role(r),
                participant: participant.to_string(),
            },
            E::StepFinished {
                step,
                role: r,
                participant,
                elapsed,
            } => WireEvent::StepFinished {
                step: step.to_string(),
                role: role(r),
                participant: participant.to_string(),
                elapsed_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            },
            E::FanOut {
                step,
                collaborators,
            } => WireEvent::FanOut {
                step: step.to_string(),
                collaborators: collaborators as u64,
            },
            E::Dropped {
                step,
                participant,
                reason,
            } => WireEvent::Dropped {
                step: step.to_string(),
                participant: participant.to_string(),
                reason: reason.to_string(),
            },
            E::Joined { step, inputs } => WireEvent::Joined {
                step: step.to_string(),
                inputs: inputs as u64,
            },
            E::Resumed {
                after_step,
                recovered,
            } => WireEvent::Resumed {
                after_step: after_step.to_string(),
                recovered: recovered as u64,
            },
            E::RunFinished { elapsed } => WireEvent::RunFinished {
                elapsed_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            },
            _ => return None,
        })
    }
}
