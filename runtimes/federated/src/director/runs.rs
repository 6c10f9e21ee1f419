//! The director's runs: status, the log of updates that watchers follow, cancellation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::admin::Metrics;
use crate::wire::{RunPhase, RunStatus, RunUpdate, WireError, WireEvent, WireRole};

/// At most this many updates are kept per run; older ones are dropped (a late watcher misses
/// them, and is told so in a log line).
const MAX_UPDATES: usize = 100_000;
/// At most about this many bytes of updates (log lines, events) are kept per run, whatever
/// their number: an envoy that floods its run with log lines cannot grow the director's
/// memory past it. The final state is never dropped.
const MAX_UPDATE_BYTES: usize = 16 << 20;
/// At most this many rounds' marks are kept per run for the dashboard (the newest).
const MAX_ROUND_MARKS: usize = 1000;
/// Finished runs kept for late watchers and status queries.
const KEEP_FINISHED: usize = 64;
/// ... and at most about this many bytes of their final states, together (the newest are
/// kept): a final state may be as large as a message, so 64 of them could otherwise hold
/// gigabytes.
const KEEP_FINISHED_BYTES: usize = 1 << 30;

struct State {
    phase: RunPhase,
    current_step: Option<String>,
    steps_done: u64,
    rounds: u64,
    dropped: Vec<String>,
    error: Option<String>,
    updates: VecDeque<RunUpdate>,
    /// The approximate size of `updates` other than the final state, in bytes.
    update_bytes: usize,
    /// Index of `updates[0]` among all updates of the run.
    first: u64,
    ended_at: Option<Instant>,
    /// The end of each round (a join), newest last, at most [`MAX_ROUND_MARKS`].
    rounds_marks: VecDeque<RoundMark>,
    /// `dropped.len()` at the last join.
    dropped_at_last_join: usize,
}

/// The end of one round of a run (one join), for the dashboard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RoundMark {
    /// The round's number, from 1.
    pub(crate) round: u64,
    /// When it ended, since the run started.
    pub(crate) at: std::time::Duration,
    /// How many inputs the join had.
    pub(crate) inputs: u64,
    /// Dropouts during the round.
    pub(crate) dropouts: u64,
}

/// One run on the director.
pub(crate) struct Run {
    pub(crate) id: String,
    pub(crate) flow: String,
    pub(crate) participants: Vec<String>,
    /// The name in the certificate of the client that submitted the run; only it may watch,
    /// query or cancel the run. `None` in plaintext mode (no verified identity).
    pub(crate) owner: Option<String>,
    started: Instant,
    state: Mutex<State>,
    /// The number of updates so far; watchers wait on it.
    version: watch::Sender<u64>,
    /// Set once to cancel the run.
    pub(crate) cancel: watch::Sender<bool>,
    /// The director's counters, told of steps, dropouts and the run's end.
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl Run {
    pub(crate) fn new(
        id: String,
        flow: String,
        participants: Vec<String>,
        owner: Option<String>,
    ) -> Self {
        Run {
            id,
            flow,
            participants,
            owner,
            started: Instant::now(),
            state: Mutex::new(State {
                phase: RunPhase::Running,
                current_step: None,
                steps_done: 0,
                rounds: 0,
                dropped: Vec::new(),
                error: None,
                updates: VecDeque::new(),
                update_bytes: 0,
                first: 0,
                ended_at: None,
                rounds_marks: VecDeque::new(),
                dropped_at_last_join: 0,
            }),
            version: watch::channel(0).0,
            cancel: watch::channel(false).0,
            metrics: None,
        }
    }

    /// Counts this run's steps, dropouts and end in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, state: &mut State, update: RunUpdate) {
        state.update_bytes += size_of_update(&update);
        state.updates.push_back(update);
        while state.updates.len() > 1
            && (state.updates.len() > MAX_UPDATES || state.update_bytes > MAX_UPDATE_BYTES)
        {
            if let Some(dropped) = state.updates.pop_front() {
                state.update_bytes = state.update_bytes.saturating_sub(size_of_update(&dropped));
            }
            state.first += 1;
        }
        let total = state.first + state.updates.len() as u64;
        self.version.send_replace(total);
    }

    /// Records an event from `source` (`director` or an envoy) and updates the status.
    pub(crate) fn event(&self, source: &str, event: WireEvent) {
        let mut state = self.lock();
        if state.phase != RunPhase::Running {
            return;
        }
        match &event {
            WireEvent::StepStarted { step, .. } => state.current_step = Some(step.clone()),
            WireEvent::StepFinished { .. } => state.steps_done += 1,
            WireEvent::Joined { inputs, .. } => {
                state.rounds += 1;
                let dropouts = state.dropped.len() - state.dropped_at_last_join;
                state.dropped_at_last_join = state.dropped.len();
                let mark = RoundMark {
                    round: state.rounds,
                    at: self.started.elapsed(),
                    inputs: *inputs,
                    dropouts: dropouts as u64,
                };
                if state.rounds_marks.len() == MAX_ROUND_MARKS {
                    state.rounds_marks.pop_front();
                }
                state.rounds_marks.push_back(mark);
            }
            WireEvent::Dropped { participant, .. } => state.dropped.push(participant.clone()),
            _ => {}
        }
        if let Some(metrics) = &self.metrics {
            match &event {
                WireEvent::StepFinished {
                    step,
                    role,
                    elapsed_us,
                    ..
                } => metrics.step_finished(&self.flow, step, *role, *elapsed_us),
                WireEvent::Dropped { step, .. } => metrics.dropout(&self.flow, step),
                _ => {}
            }
        }
        let update = RunUpdate::Event {
            source: source.to_string(),
            event,
        };
        self.push(&mut state, update);
    }

    /// Records a log line of a participant.
    pub(crate) fn log(&self, source: &str, line: crate::wire::LogLine) {
        let mut state = self.lock();
        if state.phase != RunPhase::Running {
            return;
        }
        let update = RunUpdate::Log {
            source: source.to_string(),
            line,
        };
        self.push(&mut state, update);
    }

    /// Ends the run (once): finished, failed or cancelled.
    pub(crate) fn end(&self, outcome: RunUpdate) {
        let mut state = self.lock();
        if state.phase != RunPhase::Running {
            return;
        }
        state.phase = match &outcome {
            RunUpdate::Finished { .. } => RunPhase::Finished,
            RunUpdate::Cancelled => RunPhase::Cancelled,
            RunUpdate::Failed { error } => {
                state.error = Some(match error {
                    WireError::Other { message }
                    | WireError::StepFailed { message, .. }
                    | WireError::StepPanicked { message, .. } => message.clone(),
                });
                RunPhase::Failed
            }
            _ => RunPhase::Failed,
        };
        state.ended_at = Some(Instant::now());
        if let Some(metrics) = &self.metrics {
            metrics.run_ended(state.phase);
        }
        self.push(&mut state, outcome);
    }

    /// Whether the run ended.
    pub(crate) fn is_over(&self) -> bool {
        self.lock().phase != RunPhase::Running
    }

    /// The run's status.
    pub(crate) fn status(&self) -> RunStatus {
        let state = self.lock();
        RunStatus {
            run_id: self.id.clone(),
            flow: self.flow.clone(),
            phase: state.phase,
            current_step: state.current_step.clone(),
            steps_done: state.steps_done,
            rounds: state.rounds,
            participants: self.participants.clone(),
            dropped: state.dropped.clone(),
            elapsed_ms: u64::try_from(
                state
                    .ended_at
                    .unwrap_or_else(Instant::now)
                    .duration_since(self.started)
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            error: state.error.clone(),
        }
    }

    /// The ends of the run's rounds kept (the newest [`MAX_ROUND_MARKS`]), oldest first.
    pub(crate) fn round_marks(&self) -> Vec<RoundMark> {
        self.lock().rounds_marks.iter().copied().collect()
    }

    /// The updates from index `from` on, the index after them, and whether the run is over.
    pub(crate) fn updates_from(&self, from: u64) -> (Vec<RunUpdate>, u64, bool, u64) {
        let state = self.lock();
        let skipped = state.first.saturating_sub(from);
        let start = from.max(state.first);
        let offset = usize::try_from(start - state.first).unwrap_or(usize::MAX);
        let items: Vec<RunUpdate> = state.updates.iter().skip(offset).cloned().collect();
        let next = start + items.len() as u64;
        (items, next, state.phase != RunPhase::Running, skipped)
    }

    /// A receiver that changes with every update.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Whether an event of role `role` on participant `source` belongs to this run.
    pub(crate) fn has_participant(&self, name: &str) -> bool {
        self.participants.iter().any(|p| p == name)
    }
}

/// The approximate memory an update holds, in bytes (the final state counts as nothing: it is
/// bounded by the message size limit and always kept).
fn size_of_update(update: &RunUpdate) -> usize {
    const OVERHEAD: usize = 64;
    match update {
        RunUpdate::Log { source, line } => {
            OVERHEAD + source.len() + line.level.len() + line.target.len() + line.message.len()
        }
        RunUpdate::Event { source, event } => {
            OVERHEAD
                + source.len()
                + match event {
                    WireEvent::StepStarted {
                        step, participant, ..
                    }
                    | WireEvent::StepFinished {
                        step, participant, ..
                    }
                    | WireEvent::Dropped {
                        step, participant, ..
                    } => step.len() + participant.len(),
                    _ => 32,
                }
        }
        RunUpdate::Failed { .. } | RunUpdate::Finished { .. } | RunUpdate::Cancelled => 0,
    }
}

/// All runs of a director.
#[derive(Default)]
pub(crate) struct Runs {
    runs: Mutex<HashMap<String, Arc<Run>>>,
}

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Run>>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a run, first forgetting the oldest finished runs past [`KEEP_FINISHED`] runs or
    /// [`KEEP_FINISHED_BYTES`] of final states.
    pub(crate) fn insert(&self, run: Arc<Run>) {
        let mut runs = self.lock();
        let mut finished: Vec<(Instant, String, usize)> = runs
            .values()
            .filter_map(|r| {
                let state = r.lock();
                let size = match state.updates.back() {
                    Some(RunUpdate::Finished { state }) => state.len(),
                    _ => 0,
                };
                state.ended_at.map(|t| (t, r.id.clone(), size))
            })
            .collect();
        finished.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut kept_bytes = 0usize;
        for (position, (_, id, size)) in finished.iter().enumerate() {
            kept_bytes = kept_bytes.saturating_add(*size);
            if position >= KEEP_FINISHED || kept_bytes > KEEP_FINISHED_BYTES {
                runs.remove(id);
            }
        }
        runs.insert(run.id.clone(), run);
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Run>> {
        self.lock().get(id).cloned()
    }

    /// Every run kept (running, and the recently ended), oldest first.
    pub(crate) fn list(&self) -> Vec<Arc<Run>> {
        let mut runs: Vec<Arc<Run>> = self.lock().values().cloned().collect();
        runs.sort_by_key(|r| r.started);
        runs
    }

    pub(crate) fn running(&self) -> usize {
        self.lock().values().filter(|r| !r.is_over()).count()
    }

    /// Asks every run still going to stop.
    pub(crate) fn cancel_all(&self) {
        for run in self.lock().values() {
            run.cancel.send_replace(true);
        }
    }
}

/// The director-side [`flspec::Observer`] of a run: records the driver's events, and the
/// aggregator step last started in the run's span.
pub(crate) struct RunObserver {
    pub(crate) run: Arc<Run>,
    pub(crate) span: tracing::Span,
}

impl flspec::Observer for RunObserver {
    fn on_event(&self, event: &flspec::Event<'_>) {
        if let flspec::Event::StepStarted {
            step,
            role: flspec::Role::Aggregator,
            ..
        } = event
        {
            // Lines of the run's thread outside a step (the driver's own span) name the
            // aggregator step last started.
            self.span.record("step", *step);
        }
        if let Some(e) = WireEvent::from_event(event) {
            self.run.event("director", e);
        }
    }
}

/// Whether a wire event is a collaborator's (envoys may only report those).
pub(crate) fn is_collaborator_event(event: &WireEvent, envoy: &str) -> bool {
    match event {
        WireEvent::StepStarted {
            role, participant, ..
        }
        | WireEvent::StepFinished {
            role, participant, ..
        } => *role == WireRole::Collaborator && participant == envoy,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::LogLine;

    #[test]
    fn finished_runs_are_forgotten_past_their_count_or_bytes() {
        let runs = Runs::default();
        let big = bytes::Bytes::from(vec![0u8; KEEP_FINISHED_BYTES / 3 + 1]);
        for i in 0..4 {
            let run = Arc::new(Run::new(format!("big-{i}"), "F".into(), Vec::new(), None));
            run.end(RunUpdate::Finished { state: big.clone() });
            runs.insert(run);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        runs.insert(Arc::new(Run::new(
            "next".into(),
            "F".into(),
            Vec::new(),
            None,
        )));
        // Three big final states exceed the budget: only the two newest are kept.
        assert!(runs.get("big-0").is_none() && runs.get("big-1").is_none());
        assert!(runs.get("big-2").is_some() && runs.get("big-3").is_some());
        for i in 0..KEEP_FINISHED + 10 {
            let run = Arc::new(Run::new(format!("small-{i}"), "F".into(), Vec::new(), None));
            run.end(RunUpdate::Cancelled);
            runs.insert(run);
        }
        runs.insert(Arc::new(Run::new(
            "last".into(),
            "F".into(),
            Vec::new(),
            None,
        )));
        let finished = runs.lock().values().filter(|r| r.is_over()).count();
        assert!(finished <= KEEP_FINISHED, "{finished} finished runs kept");
        assert!(
            runs.get("next").is_some(),
            "a running run is never forgotten"
        );
    }

    #[test]
    fn a_flood_of_log_lines_is_bounded_in_bytes_and_the_end_is_kept() {
        let run = Run::new("run-x".into(), "Flow".into(), vec!["Portland".into()], None);
        let line = LogLine {
            level: "INFO".into(),
            target: "t".into(),
            message: "x".repeat(8192),
        };
        for _ in 0..10_000 {
            run.log("Portland", line.clone());
        }
        run.end(RunUpdate::Cancelled);
        let state = run.lock();
        assert!(
            state.update_bytes <= MAX_UPDATE_BYTES,
            "{} bytes kept",
            state.update_bytes
        );
        assert!(state.updates.len() < 10_000 && state.first > 0);
        assert_eq!(state.updates.back(), Some(&RunUpdate::Cancelled));
        drop(state);
        let (_, _, over, skipped) = run.updates_from(0);
        assert!(over && skipped > 0);
    }
}
