//! The collaborator side of a fan-out, in one process: one after the other, or on a bounded
//! pool of worker threads.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use flspec::driver::{
    Arrival, Copies, FanOut, FanOutRequest, FanOutResult, RunSetup, panic_message, run_collaborator,
};
use flspec::{BoxError, Error, Flow, Result};

use crate::Factory;

pub(crate) struct LocalFanOut<'a, C> {
    index: HashMap<&'a str, usize>,
    privates: Vec<Option<C>>,
    factory: &'a Factory<C>,
    workers: usize,
    setup: &'a RunSetup<'a>,
}

impl<'a, C: Send> LocalFanOut<'a, C> {
    pub(crate) fn new(
        collaborators: &'a [String],
        factory: &'a Factory<C>,
        workers: usize,
        setup: &'a RunSetup<'a>,
    ) -> Self {
        LocalFanOut {
            index: collaborators
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i))
                .collect(),
            privates: collaborators.iter().map(|_| None).collect(),
            factory,
            workers,
            setup,
        }
    }

    fn slot(&self, name: &str) -> Result<usize> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| Error::InvalidCollaborators(format!("unknown collaborator `{name}`")))
    }

    fn sequential<F: Flow<Collaborator = C>>(
        &mut self,
        request: FanOutRequest<'_, F>,
    ) -> Result<FanOutResult<F>> {
        let mut copies = Copies::new(request.state, request.transition);
        let count = request.names.len();
        let mut result = FanOutResult::default();
        for (i, name) in request.names.iter().enumerate() {
            let slot = self.slot(name)?;
            let state = copies.copy_for(name, i + 1 == count);
            let private = match &mut self.privates[slot] {
                Some(p) => p,
                empty => empty.insert(build_private(self.factory, name)?),
            };
            let outcome = run_collaborator(name, state, request.step, private, self.setup);
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
        let slots: Vec<usize> = request
            .names
            .iter()
            .map(|n| self.slot(n))
            .collect::<Result<_>>()?;
        let mut copies = Copies::new(request.state, request.transition);
        let mut results: Vec<Option<Result<Arrival<F>>>> = (0..count).map(|_| None).collect();
        let (factory, setup, step) = (self.factory, self.setup, request.step);
        let privates = &mut self.privates;
        let (job_tx, job_rx) = mpsc::sync_channel::<Job<F, C>>(workers);
        let job_rx = std::sync::Mutex::new(job_rx);
        let (done_tx, done_rx) = mpsc::channel::<Done<F, C>>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let done_tx = done_tx.clone();
                let job_rx = &job_rx;
                scope.spawn(move || {
                    loop {
                        let job = {
                            let rx = job_rx
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            rx.recv()
                        };
                        let Ok(job) = job else { break };
                        let done = run_job(job, factory, step, setup);
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut failed = false;
            let mut collect = |done: Done<F, C>, privates: &mut Vec<Option<C>>| {
                if let Some(p) = done.private {
                    privates[slots[done.position]] = Some(p);
                }
                let err = done
                    .result
                    .as_ref()
                    .is_err_and(|e| flspec::driver::dropout_reason(e).is_none());
                results[done.position] = Some(done.result);
                err
            };
            for (position, name) in request.names.iter().enumerate() {
                while let Ok(done) = done_rx.try_recv() {
                    failed |= collect(done, privates);
                }
                if failed {
                    break;
                }
                let job = Job {
                    position,
                    name: name.clone(),
                    state: copies.copy_for(name, position + 1 == count),
                    private: privates[slots[position]].take(),
                };
                if job_tx.send(job).is_err() {
                    break;
                }
            }
            drop(job_tx);
            for done in done_rx {
                collect(done, privates);
            }
        });
        let mut out = FanOutResult::default();
        let mut missing = false;
        for (name, r) in request.names.iter().zip(results) {
            match r {
                Some(outcome) => out.push(name, outcome)?,
                // Not dispatched because another collaborator failed; that error comes first.
                None => missing = true,
            }
        }
        if !missing {
            Ok(out)
        } else {
            Err(Error::Runtime(
                "a worker thread stopped without reporting its collaborator".into(),
            ))
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

struct Job<F, C> {
    position: usize,
    name: String,
    state: F,
    private: Option<C>,
}

struct Done<F: Flow, C> {
    position: usize,
    result: Result<Arrival<F>>,
    private: Option<C>,
}

fn run_job<F: Flow<Collaborator = C>, C>(
    job: Job<F, C>,
    factory: &Factory<C>,
    step: F::Step,
    setup: &RunSetup<'_>,
) -> Done<F, C> {
    let mut private = match job.private {
        Some(p) => p,
        None => match build_private(factory, &job.name) {
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
    let result = run_collaborator(&job.name, job.state, step, &mut private, setup);
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
