//! The collaborator side of a fan-out, in one process: one after the other, or on a bounded
//! pool of worker threads.
//!
//! The parallel mode hands the workers batches of collaborators (a few per worker and fan-out),
//! so that a thread wakes up per batch rather than per collaborator; results go back to their
//! place in the fan-out order, so a run gives the same result on any number of workers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError, mpsc};

use flspec::driver::{
    Arrival, Copies, Departure, FanOut, FanOutRequest, FanOutResult, RunSetup, dropout_reason,
    panic_message, run_collaborator_with,
};
use flspec::runtime::Roster;
use flspec::{BoxError, Error, Flow, Result};

use crate::Factory;
use crate::privates::Privates;

/// Batches per worker and fan-out in the parallel mode: enough to balance uneven steps, few
/// enough that hand-offs stay rare.
const BATCHES_PER_WORKER: usize = 4;

/// The largest batch of a streaming fan-out (into a folding join): its copies are alive at
/// once, so batches stay small.
const STREAM_BATCH: usize = 64;

/// Batches per worker a streaming fan-out keeps out at once (dispatched, not yet handed to the
/// join): enough to keep the workers busy while an earlier batch finishes.
const STREAM_WINDOW_BATCHES: usize = 4;

/// Where a fan-out hands each collaborator's outcome, with the collaborator's name.
type Outcomes<'o, F> = dyn FnMut(&str, Result<Arrival<F>>) -> Result<()> + 'o;

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

    /// Runs the collaborators one after the other, handing each outcome to `out` as it comes.
    fn sequential<F: Flow<Collaborator = C>>(
        &mut self,
        request: FanOutRequest<'_, F>,
        out: &mut Outcomes<'_, F>,
    ) -> Result<()> {
        let mut copies = Copies::new(request.state, request.transition);
        let count = request.names.len();
        for (i, name) in request.names.iter().enumerate() {
            let slot = request.positions.at(i);
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
            out(name, outcome)?;
        }
        Ok(())
    }

    /// Runs the collaborators on the workers, in small batches, and hands each outcome to
    /// `out` in fan-out order as soon as it and those before it are done. At most
    /// [`STREAM_WINDOW_BATCHES`] batches per worker are out at once (dispatched and not yet
    /// handed over), so the copies alive stay bounded whatever the fan-out's size.
    fn parallel_streaming<F: Flow<Collaborator = C>>(
        &mut self,
        request: FanOutRequest<'_, F>,
        out: &mut Outcomes<'_, F>,
    ) -> Result<()> {
        let count = request.names.len();
        let workers = self.workers.min(count);
        let batch = count
            .div_ceil(workers * BATCHES_PER_WORKER)
            .clamp(1, STREAM_BATCH);
        let window = workers * STREAM_WINDOW_BATCHES * batch;
        let mut copies = Copies::new(request.state, request.transition);
        let (factory, setup, step, roster) = (self.factory, self.setup, request.step, self.roster);
        let (names, positions) = (request.names, request.positions);
        let privates = &mut self.privates;
        let (job_tx, job_rx) = mpsc::sync_channel::<Vec<Job<F, C>>>(workers);
        let job_rx = Mutex::new(job_rx);
        let (done_tx, done_rx) = mpsc::channel::<Vec<Done<F, C>>>();
        let mut waiting: std::collections::BTreeMap<usize, Result<Arrival<F>>> =
            std::collections::BTreeMap::new();
        let mut handed = 0;
        let mut failure: Option<Error> = None;
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let done_tx = done_tx.clone();
                let job_rx = &job_rx;
                scope.spawn(move || work(job_rx, &done_tx, factory, step, setup, roster));
            }
            drop(done_tx);
            // Takes finished work back and hands over every outcome whose turn has come.
            let mut take_back = |done: Vec<Done<F, C>>,
                                 privates: &mut Privates<C>,
                                 waiting: &mut std::collections::BTreeMap<_, _>,
                                 handed: &mut usize,
                                 failure: &mut Option<Error>| {
                for d in done {
                    if let Some(p) = d.private {
                        privates.put(positions.at(d.position), p);
                    }
                    waiting.insert(d.position, d.result);
                }
                while failure.is_none() {
                    let Some(result) = waiting.remove(handed) else {
                        break;
                    };
                    if let Err(e) = out(&names[*handed], result) {
                        *failure = Some(e);
                    }
                    *handed += 1;
                }
            };
            let mut start = 0;
            while start < count && failure.is_none() {
                // Keep the work out at once within the window: wait for earlier batches.
                while start - handed >= window && failure.is_none() {
                    let Ok(done) = done_rx.recv() else { break };
                    take_back(done, privates, &mut waiting, &mut handed, &mut failure);
                }
                while let Ok(done) = done_rx.try_recv() {
                    take_back(done, privates, &mut waiting, &mut handed, &mut failure);
                }
                if failure.is_some() {
                    break;
                }
                let end = (start + batch).min(count);
                let jobs = (start..end)
                    .map(|position| Job {
                        position,
                        name: &names[position],
                        state: copies.copy_for(&names[position], position + 1 == count),
                        private: privates.take(positions.at(position)),
                    })
                    .collect();
                if job_tx.send(jobs).is_err() {
                    break;
                }
                start = end;
            }
            drop(job_tx);
            for done in done_rx {
                take_back(done, privates, &mut waiting, &mut handed, &mut failure);
            }
        });
        match failure {
            Some(e) => Err(e),
            None if handed == count => Ok(()),
            None => Err(Error::Runtime(
                "a worker thread stopped without reporting its collaborator".into(),
            )),
        }
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
                scope.spawn(move || work(job_rx, &done_tx, factory, step, setup, roster));
            }
            drop(done_tx);
            let mut failed = false;
            let mut collect = |done: Vec<Done<F, C>>, privates: &mut Privates<C>| {
                let mut err = false;
                for d in done {
                    if let Some(p) = d.private {
                        privates.put(positions.at(d.position), p);
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
                        private: privates.take(positions.at(position)),
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
            let mut result = FanOutResult {
                arrivals: Vec::with_capacity(request.names.len()),
                dropped: Vec::new(),
            };
            self.sequential(request, &mut |name, outcome| result.push(name, outcome))?;
            Ok(result)
        }
    }

    fn run_streaming(
        &mut self,
        request: FanOutRequest<'_, F>,
        sink: &mut dyn FnMut(Arrival<F>) -> Result<()>,
    ) -> Result<Vec<Departure>> {
        let mut dropped = Vec::new();
        let mut out = |name: &str, outcome: Result<Arrival<F>>| match outcome {
            Ok(arrival) => sink(arrival),
            Err(e) => match dropout_reason(&e) {
                Some(reason) => {
                    dropped.push(Departure {
                        name: name.to_string(),
                        reason,
                    });
                    Ok(())
                }
                None => Err(e),
            },
        };
        if self.workers > 1 && request.names.len() > 1 {
            self.parallel_streaming(request, &mut out)?;
        } else {
            self.sequential(request, &mut out)?;
        }
        Ok(dropped)
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

/// A worker thread: runs the batches it takes from `jobs` and sends each batch's outcomes back,
/// until the jobs end or nobody listens.
fn work<F: Flow<Collaborator = C>, C>(
    jobs: &Mutex<mpsc::Receiver<Vec<Job<'_, F, C>>>>,
    done: &mpsc::Sender<Vec<Done<F, C>>>,
    factory: &Factory<C>,
    step: F::Step,
    setup: &RunSetup<'_>,
    roster: Roster<'_>,
) {
    loop {
        let batch = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(batch) = batch else { break };
        let outcomes = batch
            .into_iter()
            .map(|job| run_job(job, factory, step, setup, roster))
            .collect();
        if done.send(outcomes).is_err() {
            break;
        }
    }
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
