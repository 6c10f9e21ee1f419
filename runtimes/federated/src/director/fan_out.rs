//! The director's [`FanOut`]: each collaborator's filtered copy goes to its envoy, which runs
//! the collaborator's steps with its private state and sends back the state for the join.
//!
//! The filtered template is encoded once; every envoy of the fan-out is sent the same bytes
//! (a reference-counted buffer). A flow with addressed fields (`#[flow(addressed = [..])]`)
//! instead gets one encoding per collaborator, holding only that collaborator's entries. An
//! envoy that hosts several of the fan-out's collaborators gets one message for them all: the
//! shared state once, and each collaborator's own entries of the addressed fields. The
//! fan-out waits for all answers until the step deadline; an envoy that is lost or misses the
//! deadline drops out (in a flow that tolerates dropouts) or ends the run with
//! [`crate::Error::EnvoyLost`].
//!
//! Envoys are not trusted with the graph: the join an envoy names must be one that the
//! fan-out's collaborator steps can reach, the steps it names in a failure must be among those
//! steps, and the state it returns is filtered again by the transition into the join (where
//! transitions with different filters lead there, it must be what one of them carries; see
//! [`Reach`]). An answer counts only on the session of the envoy the task was sent to, so each
//! arrival is bound to the name in that envoy's certificate.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flspec::checkpoint::CheckpointStore;
use flspec::driver::{
    Arrival, Copies, Departure, FanOut, FanOutRequest, FanOutResult, Resume, RunSetup, drive,
};
use flspec::graph::FieldFilter;
use flspec::{Flow, ParticipantName, Role, StepError, StepId, TransitionId};
use tokio::runtime::Handle;

use super::envoys::{Envoys, RemoteOutcome};
use super::runs::Run;
use crate::codec::Limits;
use crate::wire::{Task, TaskOutcome};

/// The untyped half of the fan-out: sends tasks and collects outcomes.
pub(crate) struct Remote<'a> {
    pub(crate) envoys: &'a Envoys,
    pub(crate) run: &'a Arc<Run>,
    pub(crate) runtime: Handle,
    pub(crate) step_timeout: Duration,
    pub(crate) limits: Limits,
}

/// What a fan-out sends: one collaborator's copy to its envoy, or the copies of several
/// collaborators of one envoy in one message (the shared state once, each one's own entries).
pub(crate) enum Planned {
    One {
        position: usize,
        name: String,
        state: Bytes,
    },
    Batch {
        envoy: String,
        shared: Bytes,
        /// `(position, collaborator, parts)`.
        tasks: Vec<(usize, String, Bytes)>,
    },
}

impl Remote<'_> {
    /// Sends what `plan` says to run from `step` for `count` collaborators; returns their
    /// outcomes in fan-out order. Runs on the run's own thread, never on an async worker.
    fn dispatch(
        &mut self,
        step: &str,
        plan: Vec<Planned>,
        count: usize,
    ) -> flspec::Result<Vec<RemoteOutcome>> {
        for planned in &plan {
            let state = match planned {
                Planned::One { state, .. } => state,
                Planned::Batch { shared, .. } => shared,
            };
            self.limits
                .check_state(|| format!("the state sent to step `{step}`"), state.len())?;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut outcomes: Vec<Option<RemoteOutcome>> = (0..count).map(|_| None).collect();
        let mut sent = Vec::with_capacity(count);
        for planned in plan {
            match planned {
                Planned::One {
                    position,
                    name,
                    state,
                } => {
                    let bytes = state.len();
                    let task = Task {
                        task: 0,
                        run_id: self.run.id.clone(),
                        collaborator: name.clone(),
                        step: step.to_string(),
                        state,
                    };
                    match self.envoys.send_task(&name, position, task, tx.clone()) {
                        Ok(id) => {
                            sent.push(id);
                            if let Some(metrics) = &self.run.metrics {
                                metrics.sent(&name, bytes);
                            }
                        }
                        Err(reason) => outcomes[position] = Some(RemoteOutcome::Lost(reason)),
                    }
                }
                Planned::Batch {
                    envoy,
                    shared,
                    tasks,
                } => {
                    let bytes = shared.len() + tasks.iter().map(|t| t.2.len()).sum::<usize>();
                    let positions: Vec<usize> = tasks.iter().map(|t| t.0).collect();
                    match self
                        .envoys
                        .send_batch(&envoy, &self.run.id, step, shared, tasks, &tx)
                    {
                        Ok(ids) => {
                            sent.extend(ids);
                            if let Some(metrics) = &self.run.metrics {
                                metrics.sent(&envoy, bytes);
                            }
                        }
                        Err(reason) => {
                            for position in positions {
                                outcomes[position] = Some(RemoteOutcome::Lost(reason.clone()));
                            }
                        }
                    }
                }
            }
        }
        drop(tx);
        let mut waiting = outcomes.iter().filter(|o| o.is_none()).count();
        let deadline = tokio::time::Instant::now() + self.step_timeout;
        let mut cancel = self.run.cancel.subscribe();
        let cancelled = self.runtime.block_on(async {
            while waiting > 0 {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some((position, outcome)) => {
                            if let Some(slot) = outcomes.get_mut(position) && slot.is_none() {
                                *slot = Some(outcome);
                                waiting -= 1;
                            }
                        }
                        None => break,
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                    _ = cancel.wait_for(|c| *c) => return true,
                }
            }
            false
        });
        self.envoys.forget(&sent);
        if cancelled {
            return Err(crate::Error::Cancelled {
                run_id: self.run.id.clone(),
            }
            .into());
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    RemoteOutcome::Lost(format!(
                        "missed the {} s deadline of step `{step}`; raise the step timeout if \
                         the step is slow, or check the envoy's log",
                        self.step_timeout.as_secs_f32()
                    ))
                })
            })
            .collect())
    }
}

/// What to send for a fan-out to `names`: each collaborator alone on its envoy gets its own
/// copy (one buffer shared by all when no field is addressed); the collaborators of an envoy
/// that hosts several of them go in one batch, the shared state encoded once.
fn plan<F: Flow>(
    envoys: &Envoys,
    copies: &mut Copies<F>,
    names: &[String],
) -> flspec::Result<Vec<Planned>> {
    let envoys: Vec<String> = names.iter().map(|n| envoys.envoy_of(n)).collect();
    let mut per_envoy: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in &envoys {
        *per_envoy.entry(e.as_str()).or_default() += 1;
    }
    let batched = |i: usize| per_envoy[envoys[i].as_str()] > 1;
    let shared = if (0..names.len()).any(batched) || !copies.has_addressed() {
        let template = copies
            .shared()
            .ok_or_else(|| protocol::<F>("the fan-out's template is gone".into()))?;
        Some(Bytes::from(flspec::codec::encode_state(template)?))
    } else {
        None
    };
    let mut plan = Vec::new();
    let mut batches: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let singles = (0..names.len()).filter(|&i| !batched(i)).count();
    let mut single = 0;
    for (i, name) in names.iter().enumerate() {
        if batched(i) {
            let parts = match copies.parts_for(name) {
                Some(mine) => Bytes::from(flspec::codec::encode_state(&mine)?),
                None => Bytes::new(),
            };
            let at = *batches.entry(envoys[i].as_str()).or_insert_with(|| {
                plan.push(Planned::Batch {
                    envoy: envoys[i].clone(),
                    shared: shared.clone().unwrap_or_default(),
                    tasks: Vec::new(),
                });
                plan.len() - 1
            });
            if let Planned::Batch { tasks, .. } = &mut plan[at] {
                tasks.push((i, name.clone(), parts));
            }
            continue;
        }
        single += 1;
        let state = match (&shared, copies.has_addressed()) {
            (Some(bytes), false) => bytes.clone(),
            _ => {
                let copy = copies.copy_for(name, single == singles);
                Bytes::from(flspec::codec::encode_state(&copy)?)
            }
        };
        plan.push(Planned::One {
            position: i,
            name: name.clone(),
            state,
        });
    }
    Ok(plan)
}

/// The typed half: filters and encodes the template, decodes the arrivals.
struct Typed<'r, 'a, F> {
    remote: &'r mut Remote<'a>,
    _flow: PhantomData<fn() -> F>,
}

fn protocol<F: Flow>(message: String) -> flspec::Error {
    flspec::Error::Protocol {
        flow: F::NAME,
        source: StepError::Failed(message.into()),
    }
}

/// What the collaborator steps of a fan-out can do, by the flow's graph: the collaborator steps
/// reachable from its first step, and the transitions from those steps to aggregator steps
/// (the joins the fan-out can reach).
pub(crate) struct Reach {
    /// Per step of the graph: whether it is one of the fan-out's collaborator steps.
    steps: Vec<bool>,
    /// The transitions (positions in the graph) from those steps into aggregator steps.
    exits: Vec<usize>,
}

impl Reach {
    /// The reach of a fan-out whose first collaborator step is `first`.
    pub(crate) fn of<F: Flow>(first: usize) -> Self {
        let graph = F::graph();
        let mut steps = vec![false; graph.steps().len()];
        let mut exits = Vec::new();
        let mut todo = vec![first];
        if let Some(seen) = steps.get_mut(first) {
            *seen = true;
        }
        while let Some(step) = todo.pop() {
            for (index, t) in graph.transitions().iter().enumerate() {
                if t.from() != step {
                    continue;
                }
                match graph.step(t.to()).map(|s| s.role()) {
                    Some(Role::Collaborator) => {
                        if let Some(seen) = steps.get_mut(t.to())
                            && !*seen
                        {
                            *seen = true;
                            todo.push(t.to());
                        }
                    }
                    Some(Role::Aggregator) => exits.push(index),
                    None => {}
                }
            }
        }
        Reach { steps, exits }
    }

    /// Whether `step` is one of the fan-out's collaborator steps.
    pub(crate) fn has_step(&self, step: usize) -> bool {
        self.steps.get(step).copied().unwrap_or(false)
    }

    /// The transitions whose field filters may apply to a state arriving at `join`: one per
    /// distinct filter (a collaborator step may reach the join through several transitions);
    /// `Err(())` if none does (the fan-out cannot reach `join`).
    pub(crate) fn filters_into<F: Flow>(&self, join: usize) -> Result<Vec<TransitionId>, ()> {
        let transitions = F::graph().transitions();
        let mut filters: Vec<(FieldFilter, TransitionId)> = Vec::new();
        for &t in &self.exits {
            let Some(transition) = transitions.get(t).filter(|t| t.to() == join) else {
                continue;
            };
            let Ok(id) = u16::try_from(t) else { continue };
            if !filters.iter().any(|(f, _)| *f == transition.fields()) {
                filters.push((transition.fields(), TransitionId::new(id)));
            }
        }
        if filters.is_empty() {
            return Err(());
        }
        Ok(filters.into_iter().map(|(_, id)| id).collect())
    }
}

/// Applies the filter of the transition into the join to the state an envoy returned. With one
/// possible filter, the state is filtered again. With several (the collaborator steps reach the
/// join through transitions that carry different fields, and the director cannot know which
/// one was taken), the state must already be what one of them carries: an honest envoy's state
/// was filtered by the transition it took, so filtering it again changes nothing; a state that
/// every filter would change carries a field no transition carries, and is refused.
fn refilter<F: Flow>(state: &mut F, filters: &[TransitionId]) -> Result<(), String> {
    if let [only] = filters {
        state.filter_in_place(*only);
        return Ok(());
    }
    let encode = |s: &F| flspec::codec::encode_state(s).map_err(|e| e.to_string());
    let returned = encode(state)?;
    for &transition in filters {
        let mut filtered = state.clone();
        filtered.filter_in_place(transition);
        if encode(&filtered)? == returned {
            return Ok(());
        }
    }
    Err("its state carries fields that no transition into the join carries".to_owned())
}

/// A step an envoy names in a failure, checked against the fan-out's collaborator steps.
fn fan_out_step<F: Flow>(reach: &Reach, envoy: &str, name: &str) -> flspec::Result<&'static str> {
    let step: F::Step = name
        .parse()
        .map_err(|e| protocol::<F>(format!("envoy `{envoy}` named {e}")))?;
    if !reach.has_step(step.index()) {
        return Err(protocol::<F>(format!(
            "envoy `{envoy}` reported a failure in step `{step}`, which is not a step of this \
             fan-out; the envoy is modified or runs another version of the flow, so the answer \
             was refused"
        )));
    }
    Ok(step.as_str())
}

impl<F: Flow> Typed<'_, '_, F> {
    /// Sends the fan-out's tasks and waits for every outcome (the states still encoded).
    fn send(
        &mut self,
        request: FanOutRequest<'_, F>,
    ) -> flspec::Result<(Reach, Vec<RemoteOutcome>)> {
        let reach = Reach::of::<F>(request.step.index());
        // One buffer for all, unless addressed fields give each collaborator its own entries;
        // one message per envoy that hosts several of the collaborators.
        let mut copies = Copies::new(request.state, request.transition);
        let plan = plan(self.remote.envoys, &mut copies, request.names)?;
        drop(copies);
        let outcomes = self
            .remote
            .dispatch(request.step.as_str(), plan, request.names.len())?;
        Ok((reach, outcomes))
    }

    /// One collaborator's outcome: its arrival (state decoded and checked), its dropout, or the
    /// run's error.
    fn settle(
        &self,
        reach: &Reach,
        step: &str,
        name: &str,
        outcome: RemoteOutcome,
    ) -> flspec::Result<Settled<F>> {
        let who = || ParticipantName::Collaborator(name.to_string());
        let outcome = match outcome {
            RemoteOutcome::Done(TaskOutcome::Arrived { join, state }) => {
                let join: F::Step = join
                    .parse()
                    .map_err(|e| protocol::<F>(format!("envoy `{name}` named {e}")))?;
                let filters = reach.filters_into::<F>(join.index()).map_err(|()| {
                    protocol::<F>(format!(
                        "envoy `{name}` says its collaborator reached `{join}`, which the \
                         collaborator steps from `{step}` cannot reach in the flow's graph; \
                         the envoy is modified or runs another version of the flow, so its \
                         answer was refused"
                    ))
                })?;
                let mut state: F = flspec::codec::decode_state(&state).map_err(|e| {
                    protocol::<F>(format!(
                        "envoy `{name}` returned a state that does not decode: {e}"
                    ))
                })?;
                refilter(&mut state, &filters).map_err(|problem| {
                    protocol::<F>(format!(
                        "envoy `{name}` says its collaborator reached `{join}`, but {problem}; \
                         the envoy is modified or runs another version of the flow, so its \
                         answer was refused"
                    ))
                })?;
                Ok(Arrival {
                    name: name.to_string(),
                    join,
                    state,
                })
            }
            RemoteOutcome::Done(TaskOutcome::Dropout { reason }) => {
                return Ok(Settled::Dropped(Departure {
                    name: name.to_string(),
                    reason,
                }));
            }
            RemoteOutcome::Done(TaskOutcome::StepFailed { step, message }) => {
                Err(flspec::Error::StepFailed {
                    flow: F::NAME,
                    step: fan_out_step::<F>(reach, name, &step)?,
                    participant: who(),
                    source: message.into(),
                })
            }
            RemoteOutcome::Done(TaskOutcome::StepPanicked { step, message }) => {
                Err(flspec::Error::StepPanicked {
                    flow: F::NAME,
                    step: fan_out_step::<F>(reach, name, &step)?,
                    participant: who(),
                    message,
                })
            }
            RemoteOutcome::Done(TaskOutcome::PrivateState { message }) => {
                Err(flspec::Error::PrivateState {
                    name: name.to_string(),
                    source: message.into(),
                })
            }
            RemoteOutcome::Done(TaskOutcome::Refused { message }) => Err(crate::Error::Refused {
                name: name.to_string(),
                reason: format!("it could not run step `{step}`: {message}"),
            }
            .into()),
            RemoteOutcome::Lost(reason) => {
                if F::TOLERATES_DROPOUTS {
                    return Ok(Settled::Dropped(Departure {
                        name: name.to_string(),
                        reason: format!("envoy lost: {reason}"),
                    }));
                }
                Err(crate::Error::EnvoyLost {
                    name: name.to_string(),
                    step: step.to_string(),
                    run_id: self.remote.run.id.clone(),
                    reason,
                }
                .into())
            }
        };
        outcome.map(Settled::Arrived)
    }
}

/// What became of one collaborator of a fan-out.
enum Settled<F: Flow> {
    Arrived(Arrival<F>),
    Dropped(Departure),
}

impl<F: Flow> FanOut<F> for Typed<'_, '_, F> {
    fn run(&mut self, request: FanOutRequest<'_, F>) -> flspec::Result<FanOutResult<F>> {
        let (step, names) = (request.step.as_str(), request.names);
        let (reach, outcomes) = self.send(request)?;
        let mut result = FanOutResult::default();
        for (name, outcome) in names.iter().zip(outcomes) {
            match self.settle(&reach, step, name, outcome)? {
                Settled::Arrived(arrival) => result.arrivals.push(arrival),
                Settled::Dropped(departure) => result.dropped.push(departure),
            }
        }
        Ok(result)
    }

    /// Into a folding join: each state is decoded only when its turn comes, so the director
    /// holds the encoded answers and one decoded state at a time.
    fn run_streaming(
        &mut self,
        request: FanOutRequest<'_, F>,
        sink: &mut dyn FnMut(Arrival<F>) -> flspec::Result<()>,
    ) -> flspec::Result<Vec<Departure>> {
        let (step, names) = (request.step.as_str(), request.names);
        let (reach, outcomes) = self.send(request)?;
        let mut dropped = Vec::new();
        for (name, outcome) in names.iter().zip(outcomes) {
            match self.settle(&reach, step, name, outcome)? {
                Settled::Arrived(arrival) => sink(arrival)?,
                Settled::Dropped(departure) => dropped.push(departure),
            }
        }
        Ok(dropped)
    }
}

/// Runs the aggregator side of a run of `F` with the remote fan-out.
pub(crate) fn drive_typed<F: Flow>(
    state: F,
    setup: &RunSetup<'_>,
    private: &mut F::Aggregator,
    remote: &mut Remote<'_>,
    checkpoint_dir: Option<&Path>,
) -> flspec::Result<F> {
    let store = match checkpoint_dir {
        Some(dir) => Some(CheckpointStore::create::<F>(
            dir,
            setup.run_id,
            setup.collaborators,
        )?),
        None => None,
    };
    let setup = RunSetup {
        run_id: setup.run_id,
        collaborators: setup.collaborators,
        observer: setup.observer,
        checkpoints: store.as_ref(),
    };
    let mut fan_out = Typed::<F> {
        remote,
        _flow: PhantomData,
    };
    drive(Resume::start(state), &setup, private, &mut fan_out)
}

/// Runs the aggregator side of a run of `F` from `resume`, appending to its checkpoints.
pub(crate) fn resume_typed<F: Flow>(
    resume: Resume<F>,
    setup: &RunSetup<'_>,
    private: &mut F::Aggregator,
    remote: &mut Remote<'_>,
    store: &CheckpointStore,
) -> flspec::Result<F> {
    let setup = RunSetup {
        run_id: setup.run_id,
        collaborators: setup.collaborators,
        observer: setup.observer,
        checkpoints: Some(store),
    };
    let mut fan_out = Typed::<F> {
        remote,
        _flow: PhantomData,
    };
    drive(resume, &setup, private, &mut fan_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flspec::PerCollaborator;
    use flspec::prelude::*;

    #[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    struct Mail {
        model: Vec<u8>,
        inbox: PerCollaborator<String>,
    }

    #[flow(addressed = [inbox])]
    impl Mail {
        #[aggregator]
        fn start(&mut self, ctx: &Ctx) -> Next<Self> {
            next!(self.read, foreach = ctx.collaborators())
        }

        #[collaborator]
        fn read(&mut self) -> Next<Self> {
            next!(self.join)
        }

        #[aggregator]
        fn join(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
            next!(self.end)
        }

        #[aggregator]
        fn end(&mut self) {}
    }

    fn envoys() -> Envoys {
        let envoys = Envoys::default();
        for (envoy, hosted) in [
            ("site-a", vec!["alpha", "bravo"]),
            ("Portland", vec!["Portland"]),
        ] {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            std::mem::forget(rx);
            envoys
                .register(
                    envoy,
                    None,
                    Vec::new(),
                    hosted.into_iter().map(String::from).collect(),
                    "test".into(),
                    tx,
                    16,
                )
                .expect("registered");
        }
        envoys
    }

    /// The collaborators of an envoy that hosts several go in one message with the shared state
    /// once and each one's own entries; a collaborator alone on its envoy gets its full copy.
    #[test]
    fn one_message_per_envoy_each_collaborator_with_its_own_entries_only() {
        let envoys = envoys();
        let names: Vec<String> = ["alpha", "Portland", "bravo"].map(String::from).to_vec();
        let mut state = Mail {
            model: vec![7; 1000],
            inbox: PerCollaborator::new(),
        };
        for name in &names {
            state.inbox.insert(name.clone(), format!("for {name}"));
        }
        let transition = TransitionId::new(0);
        let mut copies = Copies::new(&mut state, transition);
        let plan = plan(&envoys, &mut copies, &names).expect("a plan");
        assert_eq!(plan.len(), 2, "one message for site-a, one for Portland");
        let decode = |b: &Bytes| flspec::codec::decode_state::<Mail>(b).expect("decodes");
        for planned in &plan {
            match planned {
                Planned::Batch {
                    envoy,
                    shared,
                    tasks,
                } => {
                    assert_eq!(envoy, "site-a");
                    let shared = decode(shared);
                    assert_eq!(shared.model.len(), 1000);
                    assert!(
                        shared.inbox.is_empty(),
                        "no one's entries in the shared part"
                    );
                    let got: Vec<(usize, &str)> =
                        tasks.iter().map(|(p, n, _)| (*p, n.as_str())).collect();
                    assert_eq!(got, [(0, "alpha"), (2, "bravo")]);
                    for (_, name, parts) in tasks {
                        let parts = decode(parts);
                        assert!(parts.model.is_empty(), "the model goes once, shared");
                        let entries: Vec<(&str, &String)> = parts.inbox.iter().collect();
                        assert_eq!(entries, [(name.as_str(), &format!("for {name}"))]);
                    }
                }
                Planned::One {
                    position,
                    name,
                    state,
                } => {
                    assert_eq!((*position, name.as_str()), (1, "Portland"));
                    let copy = decode(state);
                    assert_eq!(copy.model.len(), 1000);
                    let entries: Vec<&str> = copy.inbox.iter().map(|(k, _)| k).collect();
                    assert_eq!(entries, ["Portland"]);
                }
            }
        }
    }
}
