//! The engine every runtime shares: the aggregator's loop, a collaborator's chain of steps, and
//! resuming from a checkpoint.
//!
//! A runtime supplies a [`FanOut`]: how the collaborators of a fan-out run their steps (threads
//! in one process for the local runtime, envoys over the network for the federated one). The
//! driver does the rest, identically for every runtime: it runs aggregator steps, applies each
//! transition's field filter, checks fan-out lists, checks that all collaborators reach the same
//! join, records checkpoints and reports progress.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use tracing::{debug, info_span};

use crate::checkpoint::{CheckpointStore, RecordKind, RunCheckpoints, stored_next};
use crate::next::RosterScope;
use crate::runtime::{Population, Roster};
use crate::{
    Ctx, Error, Event, FanOutList, Flow, Input, Inputs, Next, Observer, ParticipantName, Result,
    Role, StepError, StepId, TransitionId,
};

/// A collaborator's state on its arrival at a join.
#[derive(Debug)]
pub struct Arrival<F: Flow> {
    /// The collaborator.
    pub name: String,
    /// The join it reached.
    pub join: F::Step,
    /// Its state, already filtered by the transition into the join.
    pub state: F,
}

/// A collaborator that left a fan-out (see [`Dropout`](crate::Dropout)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// The collaborator.
    pub name: String,
    /// Why it left: the reason of its [`Dropout`](crate::Dropout), or what the runtime saw.
    pub reason: String,
}

/// What a fan-out produced: the collaborators that reached the join, in fan-out order, and
/// those that dropped out.
#[derive(Debug)]
pub struct FanOutResult<F: Flow> {
    /// Arrivals at the join, in fan-out order.
    pub arrivals: Vec<Arrival<F>>,
    /// Collaborators that dropped out.
    pub dropped: Vec<Departure>,
}

impl<F: Flow> FanOutResult<F> {
    /// Sorts the outcome of one collaborator into arrivals and departures: a step that returned
    /// a [`Dropout`](crate::Dropout) is a departure, any other error ends the fan-out.
    ///
    /// # Errors
    /// `outcome`'s error, unless it is a dropout.
    #[inline]
    pub fn push(&mut self, name: &str, outcome: Result<Arrival<F>>) -> Result<()> {
        match outcome {
            Ok(arrival) => self.arrivals.push(arrival),
            Err(e) => match dropout_reason(&e) {
                Some(reason) => self.dropped.push(Departure {
                    name: name.to_string(),
                    reason,
                }),
                None => return Err(e),
            },
        }
        Ok(())
    }
}

impl<F: Flow> Default for FanOutResult<F> {
    fn default() -> Self {
        FanOutResult {
            arrivals: Vec::new(),
            dropped: Vec::new(),
        }
    }
}

/// The reason of a [`Dropout`](crate::Dropout) a step returned, if `error` is one.
pub fn dropout_reason(error: &Error) -> Option<String> {
    match error {
        Error::StepFailed { source, .. } => source
            .downcast_ref::<crate::Dropout>()
            .map(|d| d.reason().to_string()),
        _ => None,
    }
}

/// One fan-out, as the driver hands it to a runtime.
pub struct FanOutRequest<'a, F: Flow> {
    /// The first collaborator step.
    pub step: F::Step,
    /// The fan-out's edge; its field filter applies to the copies the collaborators receive.
    pub transition: TransitionId,
    /// The collaborators to run, in fan-out order.
    pub names: &'a [String],
    /// Each name's position in [`RunSetup::collaborators`] (in the run's [`Roster`] for
    /// [`drive_with`]), in the same order.
    pub positions: FanOutPositions<'a>,
    /// The aggregator's state. Give each collaborator its copy with [`Copies`].
    pub state: &'a mut F,
}

/// Where the collaborators of a fan-out stand among the run's collaborators
/// ([`FanOutRequest::positions`]).
#[derive(Debug, Clone, Copy)]
pub enum FanOutPositions<'a> {
    /// Every collaborator, in the roster's order: the fan-out's `i`-th collaborator is the
    /// roster's `i`-th (no list is built, whatever the fan-out's size).
    Whole,
    /// Each collaborator's position, in the fan-out's order.
    Listed(&'a [usize]),
}

impl FanOutPositions<'_> {
    /// The position of the fan-out's `i`-th collaborator.
    ///
    /// ```
    /// use flspec::driver::FanOutPositions;
    ///
    /// assert_eq!(FanOutPositions::Whole.at(7), 7);
    /// assert_eq!(FanOutPositions::Listed(&[4, 2]).at(1), 2);
    /// ```
    ///
    /// # Panics
    /// If `i` is past the end of a listed fan-out.
    pub fn at(&self, i: usize) -> usize {
        match self {
            FanOutPositions::Whole => i,
            FanOutPositions::Listed(positions) => positions[i],
        }
    }
}

/// The collaborators' copies of the state in a fan-out, made one at a time.
///
/// It makes one filtered copy of the aggregator's state (the transition's `exclude`/`include`
/// applied), moves the addressed fields out of it, and then gives each collaborator a clone of
/// that copy plus its own entries of the addressed fields. The last collaborator takes the copy
/// itself, so a fan-out to n collaborators makes n copies in all, never more, and each entry of
/// an addressed field is moved, never cloned.
pub struct Copies<F: Flow> {
    template: Option<F>,
    addressed: Option<F>,
}

impl<F: Flow> Copies<F> {
    /// Prepares the copies of a fan-out.
    pub fn new(state: &mut F, transition: TransitionId) -> Self {
        let mut template = state.filtered_clone(transition);
        let addressed = template.take_addressed();
        Copies {
            template: Some(template),
            addressed,
        }
    }

    /// The copy for `collaborator`; `last` hands over the template itself.
    ///
    /// # Panics
    /// If called again after a call with `last = true`.
    pub fn copy_for(&mut self, collaborator: &str, last: bool) -> F {
        let mut copy = if last {
            self.template
                .take()
                .expect("copy_for is not called after the last copy")
        } else {
            self.template
                .as_ref()
                .expect("copy_for is not called after the last copy")
                .clone()
        };
        if let Some(parts) = &mut self.addressed {
            F::give_addressed(&mut copy, parts, collaborator);
        }
        copy
    }

    /// The template, with the addressed fields taken out (the part every collaborator shares).
    pub fn shared(&self) -> Option<&F> {
        self.template.as_ref()
    }

    /// Whether the flow has addressed fields, so that collaborators' copies differ.
    pub fn has_addressed(&self) -> bool {
        self.addressed.is_some()
    }

    /// `collaborator`'s own entries of the addressed fields, moved into an otherwise default
    /// state (`None` for a flow without addressed fields): with [`shared`](Self::shared), what
    /// [`copy_for`](Self::copy_for) would give it, for a runtime that sends the shared part once
    /// to a process hosting many collaborators.
    pub fn parts_for(&mut self, collaborator: &str) -> Option<F> {
        let parts = self.addressed.as_mut()?;
        let mut mine = F::default();
        F::give_addressed(&mut mine, parts, collaborator);
        Some(mine)
    }
}

/// How a runtime runs the collaborator side of a fan-out.
pub trait FanOut<F: Flow> {
    /// Runs every named collaborator from `request.step` until it reaches a join, and returns
    /// their arrivals in the order of `request.names`, with the collaborators that dropped out
    /// (a [`Dropout`](crate::Dropout) from a step, or a participant the runtime lost).
    ///
    /// # Errors
    /// The first failure in fan-out order (a step error or panic) other than a dropout.
    fn run(&mut self, request: FanOutRequest<'_, F>) -> Result<FanOutResult<F>>;

    /// Runs the fan-out as [`run`](Self::run) does, but hands each arrival to `sink` in
    /// fan-out order, as soon as it and every collaborator before it are done, instead of
    /// returning them; returns the collaborators that dropped out. The driver uses it for a
    /// fan-out into a folding join (`input: Input<Self>`), which then holds one collaborator's
    /// state at a time rather than all of them.
    ///
    /// The provided implementation calls [`run`](Self::run) and hands its arrivals over
    /// afterwards (correct, but holding every arrival at once); a runtime streams by
    /// overriding it.
    ///
    /// # Errors
    /// As [`run`](Self::run), and the first error `sink` returns (the fan-out then stops).
    fn run_streaming(
        &mut self,
        request: FanOutRequest<'_, F>,
        sink: &mut dyn FnMut(Arrival<F>) -> Result<()>,
    ) -> Result<Vec<Departure>> {
        let FanOutResult { arrivals, dropped } = self.run(request)?;
        for arrival in arrivals {
            sink(arrival)?;
        }
        Ok(dropped)
    }
}

/// What the driver needs to know about a run.
pub struct RunSetup<'a> {
    /// The run's identifier.
    pub run_id: &'a str,
    /// All collaborators of the run (unique names).
    pub collaborators: &'a [String],
    /// Progress reports.
    pub observer: Option<&'a dyn Observer>,
    /// Where checkpoints go, if checkpointing is on.
    pub checkpoints: Option<&'a CheckpointStore>,
}

impl RunSetup<'_> {
    /// Reports an event to the observer, if any.
    pub fn emit(&self, event: Event<'_>) {
        if let Some(o) = self.observer {
            o.on_event(&event);
        }
    }
}

/// Where a run begins: at `start`, or where a checkpoint left off.
pub struct Resume<F: Flow> {
    state: F,
    position: Position<F>,
}

enum Position<F: Flow> {
    /// From `start`; `recorded` if the checkpoints hold the initial state already.
    Start {
        recorded: bool,
    },
    After {
        step: F::Step,
        next: Next<F>,
        recovered: Vec<Arrival<F>>,
    },
    Finished,
}

impl<F: Flow> Resume<F> {
    /// A fresh run from `start`.
    pub fn start(state: F) -> Self {
        Resume {
            state,
            position: Position::Start { recorded: false },
        }
    }

    /// Where a checkpointed run left off: after the aggregator's last recorded step, with the
    /// collaborators of an interrupted fan-out that had already reached the join recovered from
    /// their checkpoints (the others run again). A flow with resume points
    /// ([`Flow::RESUME_FROM`]) restarts after the last recorded one of them instead, recovering
    /// nothing after it.
    ///
    /// Private state is not checkpointed: the runtime builds it afresh, so a flow whose steps
    /// carry information between rounds in private state resumes with that information reset.
    ///
    /// # Errors
    /// [`Error::CheckpointFormat`] if the run is of another flow or version, or its journal
    /// does not describe a run of this flow; [`Error::Checkpoint`] on I/O errors.
    pub fn from_checkpoint(run: &RunCheckpoints) -> Result<Self> {
        run.check_flow::<F>()?;
        let records = run.records();
        // With resume points (`#[flow(resume_from = [..])]`), the last recorded one among
        // them (or the initial state); everything after it runs again.
        let rewinds = !F::RESUME_FROM.is_empty();
        let Some(last_agg) = records.iter().rposition(|r| {
            r.role == Role::Aggregator
                && (!rewinds
                    || r.kind == RecordKind::Initial
                    || F::RESUME_FROM.contains(&r.step.as_str()))
        }) else {
            return Err(Error::CheckpointFormat {
                path: run.folder().to_path_buf(),
                reason: "the journal holds no aggregator record; start a new run".into(),
            });
        };
        let record = &records[last_agg];
        let state: F = run.load(record)?;
        let bad = |reason: String| Error::CheckpointFormat {
            path: run.folder().join("journal.jsonl"),
            reason,
        };
        if record.kind == RecordKind::Initial {
            return Ok(Resume {
                state,
                position: Position::Start { recorded: true },
            });
        }
        let step: F::Step = record.step.parse().map_err(|e| bad(format!("{e}")))?;
        let Some(stored) = &record.next else {
            return Ok(Resume {
                state,
                position: Position::Finished,
            });
        };
        let next = stored_next::<F>(run, stored)?;
        let mut recovered = Vec::new();
        if let Some(list) = next.foreach().filter(|_| !rewinds) {
            for later in &records[last_agg + 1..] {
                let Some(n) = &later.next else { continue };
                let arrived = F::graph()
                    .transition(TransitionId::new(n.transition))
                    .and_then(|t| F::graph().step(t.to()))
                    .is_some_and(|s| s.role() == Role::Aggregator);
                // On a fan-out to the whole roster, every collaborator is in it.
                let listed = list
                    .names()
                    .is_none_or(|names| names.contains(&later.participant));
                if !arrived || !listed {
                    continue;
                }
                let into_join = stored_next::<F>(run, n)?;
                let mut state: F = run.load(later)?;
                state.filter_in_place(into_join.transition());
                recovered.push(Arrival {
                    name: later.participant.clone(),
                    join: into_join.step(),
                    state,
                });
            }
        }
        Ok(Resume {
            state,
            position: Position::After {
                step,
                next,
                recovered,
            },
        })
    }

    /// How many collaborators of an interrupted fan-out were recovered.
    pub fn recovered(&self) -> usize {
        match &self.position {
            Position::After { recovered, .. } => recovered.len(),
            _ => 0,
        }
    }
}

/// Runs a flow's aggregator side from `resume` to `end`.
///
/// # Errors
/// See [`Error`]: failures of steps (named with their participant), bad fan-out lists,
/// collaborators that reach different joins, checkpoint I/O, and whatever `fan_out` reports.
pub fn drive<'a, F: Flow>(
    resume: Resume<F>,
    setup: &RunSetup<'a>,
    private: &mut F::Aggregator,
    fan_out: &mut dyn FanOut<F>,
) -> Result<F> {
    drive_with(
        resume,
        setup,
        Roster::List(setup.collaborators),
        private,
        fan_out,
    )
}

/// [`drive`] over `roster` rather than [`RunSetup::collaborators`]: steps see it through
/// [`Ctx::roster`], and fan-outs name its collaborators. On a [`Population`], checking a
/// fan-out costs what its list costs, whatever the population's size.
///
/// # Errors
/// As [`drive`].
pub fn drive_with<'a, F: Flow>(
    resume: Resume<F>,
    setup: &RunSetup<'a>,
    roster: Roster<'a>,
    private: &mut F::Aggregator,
    fan_out: &mut dyn FanOut<F>,
) -> Result<F> {
    // The clock is read only for an observer (the run's `elapsed`).
    let started = setup.observer.map(|_| Instant::now());
    setup.emit(Event::RunStarted {
        flow: F::NAME,
        run_id: setup.run_id,
        collaborators: roster.len(),
    });
    let Resume {
        mut state,
        position,
    } = resume;
    let mut fan = FanOutContext {
        roster,
        index: None,
        seen: Vec::new(),
    };
    let mut reached = match position {
        Position::Start { recorded } => {
            if let Some(store) = setup.checkpoints.filter(|_| !recorded) {
                store.record_initial(&state)?;
            }
            Reached::Step(F::Step::START, None)
        }
        Position::Finished => {
            if let Some(started) = started {
                setup.emit(Event::RunFinished {
                    elapsed: started.elapsed(),
                });
            }
            return Ok(state);
        }
        Position::After {
            step,
            next,
            recovered,
        } => {
            setup.emit(Event::Resumed {
                after_step: step.as_str(),
                recovered: recovered.len(),
            });
            follow(
                &mut state, next, recovered, setup, private, fan_out, &mut fan,
            )?
        }
    };
    loop {
        let next = match reached {
            Reached::Step(step, inputs) => {
                run_aggregator_step(&mut state, step, inputs, setup, roster, private)?
            }
            Reached::Folded(next) => Some(next),
        };
        let Some(next) = next else {
            if let Some(started) = started {
                setup.emit(Event::RunFinished {
                    elapsed: started.elapsed(),
                });
            }
            return Ok(state);
        };
        reached = follow(
            &mut state,
            next,
            Vec::new(),
            setup,
            private,
            fan_out,
            &mut fan,
        )?;
    }
}

/// Where a transition took the aggregator.
enum Reached<F: Flow> {
    /// An aggregator step to run, with the inputs of a fan-out if it is a join.
    Step(F::Step, Option<Inputs<F>>),
    /// Through a fan-out into a folding join, already run on every arrival: the transition it
    /// returned.
    Folded(Next<F>),
}

/// What the driver keeps between fan-outs: the collaborators' positions by name and a scratch
/// set for spotting duplicates, both built on the first fan-out to a proper subset or another
/// order (a fan-out to every collaborator in the runtime's order needs neither).
struct FanOutContext<'a> {
    roster: Roster<'a>,
    index: Option<HashMap<&'a str, usize>>,
    seen: Vec<bool>,
}

/// Takes one transition from the aggregator: on to the next aggregator step, or through a
/// fan-out to its join.
fn follow<'a, F: Flow>(
    state: &mut F,
    mut next: Next<F>,
    recovered: Vec<Arrival<F>>,
    setup: &RunSetup<'a>,
    private: &mut F::Aggregator,
    fan_out: &mut dyn FanOut<F>,
    fan: &mut FanOutContext<'a>,
) -> Result<Reached<F>> {
    let Some(list) = next.take_foreach() else {
        state.filter_in_place(next.transition());
        return Ok(Reached::Step(next.step(), None));
    };
    let (mut names, positions) = match list {
        // `foreach = ctx.collaborators()`: the run's own list, never copied.
        FanOutList::Roster if !fan.roster.is_empty() => (Vec::new(), Positions::Whole),
        FanOutList::Roster => {
            return Err(Error::EmptyFanOut {
                step: next.step().as_str(),
            });
        }
        FanOutList::Names(names) => {
            let positions =
                match fan.roster {
                    Roster::Population(population) => Positions::Listed(
                        check_population_fan_out::<F>(next.step(), &names, population)?,
                    ),
                    _ => check_fan_out::<F>(next.step(), &names, fan.roster.as_names(), fan)?,
                };
            (names, positions)
        }
    };
    // A fan-out to every collaborator in the roster's order runs over the runtime's own list
    // (a list the step built with the same names is freed before the collaborators run), and
    // without a list of positions.
    let (whole, listed) = match positions {
        Positions::Whole => {
            drop(std::mem::take(&mut names));
            (true, Vec::new())
        }
        Positions::Listed(listed) => (false, listed),
    };
    let all: &[String] = if whole { fan.roster.as_names() } else { &names };
    setup.emit(Event::FanOut {
        step: next.step().as_str(),
        collaborators: all.len(),
    });
    let remaining: (Vec<String>, Vec<usize>);
    let (to_run, to_run_positions) = if !recovered.is_empty() {
        let done: HashSet<&str> = recovered.iter().map(|a| a.name.as_str()).collect();
        remaining = all
            .iter()
            .enumerate()
            .filter(|(_, n)| !done.contains(n.as_str()))
            .map(|(i, n)| (n.clone(), if whole { i } else { listed[i] }))
            .unzip();
        (&remaining.0[..], FanOutPositions::Listed(&remaining.1))
    } else if whole {
        (all, FanOutPositions::Whole)
    } else {
        (all, FanOutPositions::Listed(&listed))
    };
    // Into a folding join, arrivals stream: each is folded as it comes, in fan-out order. A
    // resumed fan-out with recovered arrivals collects them all first, to fold them in order.
    let streams =
        recovered.is_empty() && !to_run.is_empty() && F::graph().reaches_fold(next.step().index());
    if streams {
        // The collaborators' copies come from a copy of the state as it was at the fan-out,
        // since the folding join changes the aggregator's state while they run.
        let mut at_fan_out = state.filtered_clone(next.transition());
        let mut folder = Folder::new(next.step(), state, setup, fan.roster, private);
        let dropped = fan_out.run_streaming(
            FanOutRequest {
                step: next.step(),
                transition: next.transition(),
                names: to_run,
                positions: to_run_positions,
                state: &mut at_fan_out,
            },
            &mut |arrival| folder.add(arrival),
        )?;
        drop(at_fan_out);
        if folder.count + dropped.len() != to_run.len() {
            return Err(miscount(folder.count, dropped.len(), to_run.len()));
        }
        check_dropouts::<F>(next.step(), &dropped, folder.count, setup)?;
        return folder.finish();
    }
    let result = if to_run.is_empty() {
        FanOutResult::default()
    } else {
        fan_out.run(FanOutRequest {
            step: next.step(),
            transition: next.transition(),
            names: to_run,
            positions: to_run_positions,
            state,
        })?
    };
    let FanOutResult {
        mut arrivals,
        dropped,
    } = result;
    if arrivals.len() + dropped.len() != to_run.len() {
        return Err(miscount(arrivals.len(), dropped.len(), to_run.len()));
    }
    check_dropouts::<F>(
        next.step(),
        &dropped,
        arrivals.len() + recovered.len(),
        setup,
    )?;
    if !recovered.is_empty() {
        arrivals.extend(recovered);
        let order: std::collections::HashMap<&str, usize> = all
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        arrivals.sort_by_key(|a| order.get(a.name.as_str()).copied().unwrap_or(usize::MAX));
    }
    let join = check_same_join::<F>(next.step(), &arrivals)?;
    if F::graph().step(join.index()).is_some_and(|s| s.is_fold()) {
        // A resumed fan-out into a folding join: fold what was recovered and what ran, in
        // fan-out order.
        let mut folder = Folder::new(next.step(), state, setup, fan.roster, private);
        for arrival in arrivals {
            folder.add(arrival)?;
        }
        return folder.finish();
    }
    setup.emit(Event::Joined {
        step: join.as_str(),
        inputs: arrivals.len(),
    });
    let inputs = Inputs::new(
        arrivals
            .into_iter()
            .map(|a| Input::new(a.name, a.state))
            .collect(),
    );
    Ok(Reached::Step(join, Some(inputs)))
}

fn miscount(arrivals: usize, dropped: usize, asked: usize) -> Error {
    Error::Runtime(
        format!(
            "the runtime reported {arrivals} arrivals and {dropped} dropouts for a fan-out to {asked} collaborators"
        )
        .into(),
    )
}

/// A folding join at work: runs the join once per arrival, in the order they come, and keeps
/// only the transition it returns (the same for every input) and a few names for errors.
struct Folder<'s, 'r, F: Flow> {
    /// The fan-out's first step.
    fan_out: F::Step,
    state: &'s mut F,
    setup: &'s RunSetup<'r>,
    roster: Roster<'r>,
    private: &'s mut F::Aggregator,
    /// The join the first arrival reached.
    join: Option<F::Step>,
    /// The transition the join returned so far, with the collaborator whose input returned it.
    next: Option<(Next<F>, String)>,
    /// How many arrivals were folded.
    count: usize,
    /// The first collaborators folded (for an error about collaborators reaching other joins).
    first_names: Vec<String>,
    /// The time spent in the join, for an observer.
    elapsed: Option<std::time::Duration>,
}

impl<'s, 'r, F: Flow> Folder<'s, 'r, F> {
    fn new(
        fan_out: F::Step,
        state: &'s mut F,
        setup: &'s RunSetup<'r>,
        roster: Roster<'r>,
        private: &'s mut F::Aggregator,
    ) -> Self {
        Folder {
            fan_out,
            state,
            setup,
            roster,
            private,
            join: None,
            next: None,
            count: 0,
            first_names: Vec::new(),
            elapsed: setup.observer.map(|_| std::time::Duration::ZERO),
        }
    }

    /// Folds one arrival into the aggregator's state.
    fn add(&mut self, arrival: Arrival<F>) -> Result<()> {
        let join = *self.join.get_or_insert(arrival.join);
        if arrival.join != join {
            return Err(Error::SplitJoin {
                flow: F::NAME,
                fan_out: self.fan_out.as_str(),
                first_join: join.as_str(),
                first_collaborators: if self.count > self.first_names.len() {
                    format!(
                        "{}, ... ({} in all)",
                        self.first_names.join(", "),
                        self.count
                    )
                } else {
                    self.first_names.join(", ")
                },
                other_join: arrival.join.as_str(),
                other_collaborators: arrival.name,
            });
        }
        if !F::graph().step(join.index()).is_some_and(|s| s.is_fold()) {
            return Err(Error::Protocol {
                flow: F::NAME,
                source: StepError::Failed(
                    format!(
                        "collaborator `{}` reached `{}`, which is not a folding join, in a fan-out the driver streams",
                        arrival.name,
                        join.as_str()
                    )
                    .into(),
                ),
            });
        }
        if self.count == 0 {
            self.setup.emit(Event::StepStarted {
                step: join.as_str(),
                role: Role::Aggregator,
                participant: "aggregator",
            });
        }
        let span = info_span!(
            "step",
            run = self.setup.run_id,
            flow = F::NAME,
            step = join.as_str(),
            participant = "aggregator"
        );
        let _entered = span.enter();
        let began = self.elapsed.map(|_| Instant::now());
        let ctx = Ctx::aggregator_in(F::NAME, self.setup.run_id, self.roster);
        let Arrival { name, state, .. } = arrival;
        if self.first_names.len() < 8 {
            self.first_names.push(name.clone());
        }
        let input = Inputs::new(vec![Input::new(name, state)]);
        let (state, private) = (&mut *self.state, &mut *self.private);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            state.run_aggregator_step(join, &ctx, private, Some(input))
        }));
        let next = step_result::<F>(outcome, join, || ParticipantName::Aggregator)?;
        if let (Some(total), Some(began)) = (&mut self.elapsed, began) {
            *total += began.elapsed();
        }
        // The input's name went into the step; name the collaborator from the count instead
        // of keeping every name.
        let who = || format!("input {} of the fan-out", self.count + 1);
        let Some(next) = next else {
            return Err(fold_protocol::<F>(format!(
                "folding join `{}` returned no transition for {}; a folding join returns the step to go on to",
                join.as_str(),
                who()
            )));
        };
        if next.foreach().is_some() {
            return Err(fold_protocol::<F>(format!(
                "folding join `{}` fanned out on {}; a folding join cannot fan out",
                join.as_str(),
                who()
            )));
        }
        match &self.next {
            Some((first, by)) if first.transition() != next.transition() => {
                return Err(fold_protocol::<F>(format!(
                    "folding join `{}` moved on to `{}` after {by} but to `{}` after {}; a folding join must return the same transition for every input",
                    join.as_str(),
                    first.step().as_str(),
                    next.step().as_str(),
                    who()
                )));
            }
            Some(_) => {}
            None => self.next = Some((next, who())),
        }
        self.count += 1;
        Ok(())
    }

    /// After the last arrival: the transition the join returned, recorded as the join's step.
    fn finish(self) -> Result<Reached<F>> {
        let (Some(join), Some((next, _))) = (self.join, self.next) else {
            return Err(Error::EmptyFanOut {
                step: self.fan_out.as_str(),
            });
        };
        self.setup.emit(Event::Joined {
            step: join.as_str(),
            inputs: self.count,
        });
        if let Some(elapsed) = self.elapsed {
            self.setup.emit(Event::StepFinished {
                step: join.as_str(),
                role: Role::Aggregator,
                participant: "aggregator",
                elapsed,
            });
        }
        if let Some(store) = self.setup.checkpoints {
            store.record_step(
                join,
                Role::Aggregator,
                "aggregator",
                Some(&next),
                self.state,
            )?;
        }
        Ok(Reached::Folded(next))
    }
}

fn fold_protocol<F: Flow>(message: String) -> Error {
    Error::Protocol {
        flow: F::NAME,
        source: StepError::Failed(message.into()),
    }
}

fn check_dropouts<F: Flow>(
    step: F::Step,
    dropped: &[Departure],
    survivors: usize,
    setup: &RunSetup<'_>,
) -> Result<()> {
    if dropped.is_empty() {
        return Ok(());
    }
    for d in dropped {
        tracing::warn!(step = step.as_str(), participant = %d.name, reason = %d.reason, "collaborator dropped out");
        setup.emit(Event::Dropped {
            step: step.as_str(),
            participant: &d.name,
            reason: &d.reason,
        });
    }
    let hint = if !F::TOLERATES_DROPOUTS {
        "declare the flow `#[flow(tolerate_dropouts)]` if it can go on with the survivors"
    } else if survivors == 0 {
        "every collaborator of the fan-out dropped out"
    } else {
        return Ok(());
    };
    let names = dropped
        .iter()
        .take(8)
        .map(|d| format!("`{}` ({})", d.name, d.reason))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::Dropped {
        flow: F::NAME,
        step: step.as_str(),
        names,
        hint,
    })
}

/// Where the names of a checked fan-out list stand among the run's collaborators.
enum Positions {
    /// The list is every collaborator, in the runtime's order.
    Whole,
    /// Each name's position, in the list's order.
    Listed(Vec<usize>),
}

/// Checks a fan-out list and returns each name's position among the run's collaborators.
fn check_fan_out<'a, F: Flow>(
    step: F::Step,
    names: &[String],
    known: &'a [String],
    fan: &mut FanOutContext<'a>,
) -> Result<Positions> {
    if names.is_empty() {
        return Err(Error::EmptyFanOut {
            step: step.as_str(),
        });
    }
    // The common case: every collaborator, in the runtime's order (whose names are unique).
    if names == known {
        return Ok(Positions::Whole);
    }
    let index = fan.index.get_or_insert_with(|| {
        known
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect()
    });
    fan.seen.resize(known.len(), false);
    let mut positions = Vec::with_capacity(names.len());
    let mut result = Ok(());
    for name in names {
        let Some(&p) = index.get(name.as_str()) else {
            result = Err(Error::UnknownCollaborator {
                step: step.as_str(),
                name: name.clone(),
                known: short_list(known.iter().map(String::as_str)),
            });
            break;
        };
        if std::mem::replace(&mut fan.seen[p], true) {
            result = Err(Error::DuplicateCollaborator {
                step: step.as_str(),
                name: name.clone(),
            });
            break;
        }
        positions.push(p);
    }
    for &p in &positions {
        fan.seen[p] = false;
    }
    result.map(|()| Positions::Listed(positions))
}

/// Checks a fan-out list over a population: each name's number, read from the name, is its
/// position; no index of the population is built.
fn check_population_fan_out<F: Flow>(
    step: F::Step,
    names: &[String],
    population: &Population,
) -> Result<Vec<usize>> {
    if names.is_empty() {
        return Err(Error::EmptyFanOut {
            step: step.as_str(),
        });
    }
    let mut positions = Vec::with_capacity(names.len());
    for name in names {
        let Some(p) = population.position(name) else {
            let first: Vec<String> = (0..population.len().min(3))
                .filter_map(|i| population.name(i))
                .collect();
            return Err(Error::UnknownCollaborator {
                step: step.as_str(),
                name: name.clone(),
                known: format!(
                    "{}, ... ({} in all, named {}<number>)",
                    first.join(", "),
                    population.len(),
                    population.prefix()
                ),
            });
        };
        positions.push(p);
    }
    // A sample comes sorted: then a strictly increasing list has no repeat. Otherwise sort a
    // copy to find one.
    if !positions.windows(2).all(|w| w[0] < w[1]) {
        let mut sorted: Vec<(usize, usize)> =
            positions.iter().copied().zip(0..names.len()).collect();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateCollaborator {
                step: step.as_str(),
                name: names[w[1].1].clone(),
            });
        }
    }
    Ok(positions)
}

fn short_list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let shown: Vec<&str> = names.take(8).collect();
    if total > shown.len() {
        format!("{}, ... ({total} in all)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn check_same_join<F: Flow>(fan_out: F::Step, arrivals: &[Arrival<F>]) -> Result<F::Step> {
    let first = arrivals.first().map(|a| a.join).ok_or(Error::EmptyFanOut {
        step: fan_out.as_str(),
    })?;
    if let Some(other) = arrivals.iter().find(|a| a.join != first) {
        let who = |join: F::Step| {
            short_list(
                arrivals
                    .iter()
                    .filter(|a| a.join == join)
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        };
        return Err(Error::SplitJoin {
            flow: F::NAME,
            fan_out: fan_out.as_str(),
            first_join: first.as_str(),
            first_collaborators: who(first),
            other_join: other.join.as_str(),
            other_collaborators: who(other.join),
        });
    }
    Ok(first)
}

fn run_aggregator_step<F: Flow>(
    state: &mut F,
    step: F::Step,
    inputs: Option<Inputs<F>>,
    setup: &RunSetup<'_>,
    roster: Roster<'_>,
    private: &mut F::Aggregator,
) -> Result<Option<Next<F>>> {
    let span = info_span!(
        "step",
        run = setup.run_id,
        flow = F::NAME,
        step = step.as_str(),
        participant = "aggregator"
    );
    let _entered = span.enter();
    setup.emit(Event::StepStarted {
        step: step.as_str(),
        role: Role::Aggregator,
        participant: "aggregator",
    });
    let began = setup.observer.map(|_| Instant::now());
    let ctx = Ctx::aggregator_in(F::NAME, setup.run_id, roster);
    let outcome = {
        let _roster = roster.listed().map(RosterScope::enter);
        catch_unwind(AssertUnwindSafe(|| {
            state.run_aggregator_step(step, &ctx, private, inputs)
        }))
    };
    let next = step_result::<F>(outcome, step, || ParticipantName::Aggregator)?;
    check_end::<F>(step, next.as_ref())?;
    debug!("step done");
    if let Some(began) = began {
        setup.emit(Event::StepFinished {
            step: step.as_str(),
            role: Role::Aggregator,
            participant: "aggregator",
            elapsed: began.elapsed(),
        });
    }
    if let Some(store) = setup.checkpoints {
        store.record_step(step, Role::Aggregator, "aggregator", next.as_ref(), state)?;
    }
    Ok(next)
}

fn check_end<F: Flow>(step: F::Step, next: Option<&Next<F>>) -> Result<()> {
    if next.is_none() && step != F::Step::END {
        return Err(Error::Protocol {
            flow: F::NAME,
            source: StepError::Failed(
                format!(
                    "step `{}` returned no transition; only `end` may finish the flow",
                    step.as_str()
                )
                .into(),
            ),
        });
    }
    Ok(())
}

/// Turns a step's outcome (or panic) into a run error naming the step and participant.
fn step_result<F: Flow>(
    outcome: std::thread::Result<crate::StepOutcome<F>>,
    step: F::Step,
    participant: impl FnOnce() -> ParticipantName,
) -> Result<Option<Next<F>>> {
    match outcome {
        Ok(Ok(next)) => Ok(next),
        Ok(Err(StepError::Failed(source))) => Err(Error::StepFailed {
            flow: F::NAME,
            step: step.as_str(),
            participant: participant(),
            source,
        }),
        Ok(Err(other)) => Err(Error::Protocol {
            flow: F::NAME,
            source: other,
        }),
        Err(payload) => Err(Error::StepPanicked {
            flow: F::NAME,
            step: step.as_str(),
            participant: participant(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Runs one collaborator from the first step of a fan-out until it reaches a join, on the
/// participant that holds its private state. The state arrives filtered by the transition into
/// the join.
///
/// # Errors
/// A step's error or panic, named with the collaborator; a step returning no transition.
pub fn run_collaborator<F: Flow>(
    name: &str,
    state: F,
    first: F::Step,
    private: &mut F::Collaborator,
    setup: &RunSetup<'_>,
) -> Result<Arrival<F>> {
    run_collaborator_with(
        name,
        state,
        first,
        private,
        setup,
        Roster::List(setup.collaborators),
    )
}

/// [`run_collaborator`] in a run over `roster` (see [`drive_with`]): the steps' [`Ctx`] lists
/// it rather than [`RunSetup::collaborators`].
///
/// # Errors
/// As [`run_collaborator`].
pub fn run_collaborator_with<F: Flow>(
    name: &str,
    mut state: F,
    first: F::Step,
    private: &mut F::Collaborator,
    setup: &RunSetup<'_>,
    roster: Roster<'_>,
) -> Result<Arrival<F>> {
    let ctx = Ctx::collaborator_in(F::NAME, setup.run_id, roster, name);
    let mut step = first;
    loop {
        let span = info_span!(
            "step",
            run = setup.run_id,
            flow = F::NAME,
            step = step.as_str(),
            participant = name
        );
        let _entered = span.enter();
        // Events are built only for an observer: a run without one pays a branch per step.
        let began = setup.observer.map(|o| {
            o.on_event(&Event::StepStarted {
                step: step.as_str(),
                role: Role::Collaborator,
                participant: name,
            });
            Instant::now()
        });
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            state.run_collaborator_step(step, &ctx, private)
        }));
        let participant = || ParticipantName::Collaborator(name.to_string());
        let next = step_result::<F>(outcome, step, participant)?;
        let Some(next) = next else {
            return Err(Error::Protocol {
                flow: F::NAME,
                source: StepError::Failed(
                    format!(
                        "collaborator step `{}` returned no transition on `{name}`",
                        step.as_str()
                    )
                    .into(),
                ),
            });
        };
        if let Some(began) = began {
            setup.emit(Event::StepFinished {
                step: step.as_str(),
                role: Role::Collaborator,
                participant: name,
                elapsed: began.elapsed(),
            });
        }
        if let Some(store) = setup.checkpoints {
            store.record_step(step, Role::Collaborator, name, Some(&next), &state)?;
        }
        state.filter_in_place(next.transition());
        let target = F::graph()
            .step(next.step().index())
            .map(|s| s.role())
            .ok_or_else(|| Error::Protocol {
                flow: F::NAME,
                source: StepError::Failed("a transition to a step outside the graph".into()),
            })?;
        if target == Role::Aggregator {
            return Ok(Arrival {
                name: name.to_string(),
                join: next.step(),
                state,
            });
        }
        step = next.step();
    }
}
