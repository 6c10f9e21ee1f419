//! The collaborator side of a fan-out, in one process: one after the other, or on a bounded
//! pool of worker threads.
//!
//! The parallel mode hands the workers batches of collaborators (a few per worker and fan-out),
//! so that a thread wakes up per batch rather than per collaborator; results go back to their
//! place in the fan-out order, so a run gives the same result on any number of workers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError, mpsc};

use flspec::driver::{
    Arrival, Copies, FanOut, FanOutRequest, FanOutResult, RunSetup, dropout_reason, panic_message,
    run_collaborator_with,
};
use flspec::runtime::Roster;
use flspec::{BoxError, Error, Flow, Result};

use crate::Factory;
use crate::privates::Privates;

/// Batches per worker and fan-out in the parallel mode: enough to balance uneven steps, few
/// enough that hand-offs stay rare.
const BATCHES_PER_WORKER: usize = 4;

pub(crate) struct LocalFanOut<'a, C> {
    privates: Privates<C>,
    factory: &'a Factory<C>,
    workers: usize,
    setup: &'a RunSetup<'a>,
    roster: Roster<'a>,
}

impl<'a, C: Send> LocalFanOut<'a, C> {
    /// `cache`: at most this many private states kept (see
    /// [`LocalRuntime::private_state_cache`](crate::LocalRuntime::private_state_cache)).
    pub(crate) fn new(
        roster: Roster<'a>,
        factory: &'a Factory<C>,
        workers: usize,
        cache: Option<usize>,
        setup: &'a RunSetup<'a>,
    ) -> Self {
        LocalFanOut {
            privates: Privates::new(roster.len(), matches!(roster, Roster::List(_)), cache),
            factory,
            workers,
            setup,
            roster,
        }
    }

    fn sequential<F: Flow<Collaborator = C>>(
        &mut self,
        request: FanOutRequest<'_, F>,
    ) -> Result<FanOutResult<F>> {
        let mut copies = Copies::new(request.state, request.transition);
        let count = request.names.len();
        let mut result = FanOutResult {
            arrivals: Vec::with_capacity(count),
            dropped: Vec::new(),
        };
        for (i, (name, &slot)) in request.names.iter().zip(request.positions).enumerate() {
            let state = copies.copy_for(name, i + 1 == count);
            let (step, setup, roster) = (request.step, self.setup, self.roster);
            let outcome = match &mut self.privates {
                Privates::Dense(slots) => {
                    let private = match &mut slots[slot] {
                        Some(p) => p,
                        empty => empty.insert(build_private(self.factory, name)?),
                    };
                    run_collaborator_with(name, state, step, private, setup, roster)
                }
                Privates::Cached(cache) => {
                    let mut private = match cache.take(slot) {
                        Some(p) => p,
                        None => build_private(self.factory, name)?,
                    };
                    let outcome =
                        run_collaborator_with(name, state, step, &mut private, setup, roster);
                    cache.put(slot, private);
                    outcome
                }
            };
            result.push(name, outcome)?;
        }
        Ok(result)
    }

    fn parallel<F: Flow<Collaborator = C>>(
        &mut self,
        request: FanOutRequest<'_, F>,
    ) -> Result<FanOutResult<F>> {
        let count = request.names.len();
        let workers = self.workers.min(count);
        let batch = count.div_ceil(workers * BATCHES_PER_WORKER).max(1);
        let mut copies = Copies::new(request.state, request.transition);
        let mut results: Vec<Option<Result<Arrival<F>>>> = (0..count).map(|_| None).collect();
        let (factory, setup, step, roster) = (self.factory, self.setup, request.step, self.roster);
        let (names, positions) = (request.names, request.positions);
        let privates = &mut self.privates;
        let (job_tx, job_rx) = mpsc::sync_channel::<Vec<Job<F, C>>>(workers);
        let job_rx = Mutex::new(job_rx);
        let (done_tx, done_rx) = mpsc::channel::<Vec<Done<F, C>>>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let done_tx = done_tx.clone();
                let job_rx = &job_rx;
                scope.spawn(move || {
                    loop {
                        let jobs = job_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(jobs) = jobs else { break };
                        let done = jobs
                            .into_iter()
                            .map(|job| run_job(job, factory, step, setup, roster))
                            .collect();
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut failed = false;
            let mut collect = |done: Vec<Done<F, C>>, privates: &mut Privates<C>| {
                let mut err = false;
                for d in done {
                    if let Some(p) = d.private {
                        privates.put(positions[d.position], p);
                    }
                    err |= d
                        .result
                        .as_ref()
                        .is_err_and(|e| dropout_reason(e).is_none());
                    results[d.position] = Some(d.result);
                }
                err
            };
            for start in (0..count).step_by(batch) {
                while let Ok(done) = done_rx.try_recv() {
                    failed |= collect(done, privates);
                }
                if failed {
                    break;
                }
                let jobs = (start..(start + batch).min(count))
                    .map(|position| Job {
                        position,
                        name: &names[position],
                        state: copies.copy_for(&names[position], position + 1 == count),
                        private: privates.take(positions[position]),
                    })
                    .collect();
                if job_tx.send(jobs).is_err() {
                    break;
                }
            }
            drop(job_tx);
            for done in done_rx {
                collect(done, privates);
            }
        });
        let mut out = FanOutResult {
            arrivals: Vec::with_capacity(count),
            dropped: Vec::new(),
        };
        let mut missing = false;
        for (name, r) in names.iter().zip(results) {
            match r {
                Some(outcome) => out.push(name, outcome)?,
                // Not dispatched because another collaborator failed; that error comes first.
                None => missing = true,
            }
        }
        if missing {
            Err(Error::Runtime(
                "a worker thread stopped without reporting its collaborator".into(),
            ))
        } else {
            Ok(out)
        }
    }
}

impl<C: Send, F: Flow<Collaborator = C>> FanOut<F> for LocalFanOut<'_, C> {
    fn run(&mut self, request: FanOutRequest<'_, F>) -> Result<FanOutResult<F>> {
        if self.workers > 1 && request.names.len() > 1 {
            self.parallel(request)
        } else {
            self.sequential(request)
        }
    }
}

struct Job<'n, F, C> {
    position: usize,
    name: &'n str,
    state: F,
    private: Option<C>,
}

struct Done<F: Flow, C> {
    position: usize,
    result: Result<Arrival<F>>,
    private: Option<C>,
}

fn run_job<F: Flow<Collaborator = C>, C>(
    job: Job<'_, F, C>,
    factory: &Factory<C>,
    step: F::Step,
    setup: &RunSetup<'_>,
    roster: Roster<'_>,
) -> Done<F, C> {
    let mut private = match job.private {
        Some(p) => p,
        None => match build_private(factory, job.name) {
            Ok(p) => p,
            Err(e) => {
                return Done {
                    position: job.position,
                    result: Err(e),
                    private: None,
                };
            }
        },
    };
    let result = run_collaborator_with(job.name, job.state, step, &mut private, setup, roster);
    Done {
        position: job.position,
        result,
        private: Some(private),
    }
}

fn build_private<C>(factory: &Factory<C>, name: &str) -> Result<C> {
    match catch_unwind(AssertUnwindSafe(|| factory(name))) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(source)) => Err(Error::PrivateState {
            name: name.to_string(),
            source,
        }),
        Err(payload) => Err(Error::PrivateState {
            name: name.to_string(),
            source: BoxError::from(format!(
                "the factory panicked: {}",
                panic_message(payload.as_ref())
            )),
        }),
    }
}
